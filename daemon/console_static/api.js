// The daemon's public API as the console uses it: JSON over fetch, speech over the WebSocket /v1/ws.
// The tokens live in sessionStorage (entered once per browser tab) and travel as a bearer token;
// on the WebSocket, where a page cannot set headers, as the subprotocol gsvd.bearer.<base64url token>.

export const session = {
  get token() { return sessionStorage.getItem("gsvd.token") || ""; },
  get adminToken() { return sessionStorage.getItem("gsvd.adminToken") || ""; },
  get saved() { return sessionStorage.getItem("gsvd.token") !== null; },
  save(token, adminToken) {
    sessionStorage.setItem("gsvd.token", token);
    sessionStorage.setItem("gsvd.adminToken", adminToken);
  },
};

export const bus = new EventTarget(); // "voices": {voices, defaults, languages}; "connected"

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

function bearer(admin) {
  return admin ? (session.adminToken || session.token) : (session.token || session.adminToken);
}

// One JSON call; rejects with ApiError carrying the daemon's message. `blob: true` returns the body as a Blob.
export async function api(path, { method = "GET", body, admin = false, blob = false } = {}) {
  const headers = {};
  const token = bearer(admin);
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload = body;
  if (body !== undefined && !(body instanceof FormData)) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, { method, headers, body: payload });
  } catch (err) {
    throw new ApiError(0, "UNAVAILABLE", `the daemon did not answer (${err.message})`);
  }
  if (!resp.ok) {
    let code = "", message = `${resp.status} ${resp.statusText}`;
    try {
      const data = await resp.json();
      code = data.error?.code || "";
      message = data.error?.message || message;
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(resp.status, code, message);
  }
  return blob ? resp.blob() : resp.json();
}

function base64url(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

// Stream one text through /v1/ws as float32 PCM at `rate`. Calls onChunk(meta) for each chunk's JSON
// and onAudio(Float32Array, meta) for its audio; resolves at {"type": "end"}, rejects on an error
// message or a lost connection. `stop()` on the returned handle closes the socket.
export function speak({ text, voice, options, rate, onStart, onChunk, onAudio }) {
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/v1/ws`;
  const token = bearer(false);
  const ws = new WebSocket(url, token ? ["gsvd.v1", `gsvd.bearer.${base64url(token)}`] : ["gsvd.v1"]);
  ws.binaryType = "arraybuffer";
  let meta = null;
  let finished = false;
  const done = new Promise((resolve, reject) => {
    ws.onopen = () => {
      ws.send(JSON.stringify({ voice, options, sample_rate: rate, encoding: "pcm_f32le" }));
      ws.send(JSON.stringify({ text }));
      ws.send(JSON.stringify({ end: true }));
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") {
        onAudio(new Float32Array(event.data), meta);
        return;
      }
      const msg = JSON.parse(event.data);
      if (msg.type === "start") {
        onStart?.(msg); // carries the AI-generated label
      } else if (msg.type === "chunk") {
        meta = msg;
        onChunk(msg);
      } else if (msg.type === "end") {
        finished = true;
        resolve();
        ws.close();
      } else if (msg.type === "error") {
        finished = true;
        reject(new ApiError(0, msg.code, msg.message));
      }
    };
    ws.onerror = () => { /* onclose follows with the reason */ };
    ws.onclose = (event) => {
      if (!finished) reject(new ApiError(0, "UNAVAILABLE", `the connection closed before the audio ended (${event.code})`));
    };
  });
  return {
    done,
    stop() {
      finished = true;
      ws.close();
    },
  };
}
