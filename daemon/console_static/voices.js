// Voices: what is loaded and what is in the voices folder; load / unload (admin); zero-shot upload.

import { api, bus } from "./api.js";
import { clearError, fillSelect, h, showError } from "./dom.js";

const status = () => document.getElementById("voices-status");

export async function loadVoices() {
  const data = await api("/v1/voices");
  renderTable(data.voices);
  renderDefaults(data.defaults);
  fillSelect(document.getElementById("upload-base"),
    data.voices.filter((v) => v.loaded).map((v) => [v.name, `${v.name} (${v.version})`]));
  fillSelect(document.getElementById("upload-language"), data.languages.map((c) => [c, c]));
  bus.dispatchEvent(new CustomEvent("voices", { detail: data }));
  return data;
}

// A consent record: who agreed, to what, when, recorded by whom (gsvd import, uploads) and/or the statement
// (gsvd train); where it came from and when it was recorded in small print.
function consentText(consent) {
  if (!consent || !(consent.speaker || consent.statement)) return h("span", { class: "missing" }, "none recorded");
  const who = consent.speaker
    ? `${consent.speaker} agreed to ${consent.use} on ${consent.date}; recorded by ${consent.recorded_by}`
    : consent.statement;
  const said = consent.speaker && consent.statement ? ` "${consent.statement}"` : "";
  const extra = [consent.speaker ? "" : consent.recorded_by && `recorded by ${consent.recorded_by}`, consent.source,
    consent.recorded_at].filter(Boolean).join(", ");
  return h("span", {}, who + said, extra ? h("small", {}, ` (${extra})`) : null);
}

function renderTable(voices) {
  const body = document.querySelector("#voices-table tbody");
  body.replaceChildren(...voices.map((v) => {
    const action = v.loaded
      ? h("button", { type: "button", onclick: () => act(`Unload ${v.name}`, () => api(`/v1/voices/${encodeURIComponent(v.name)}`,
        { method: "DELETE", admin: true })), "aria-label": `Unload voice ${v.name}` }, "Unload")
      : h("button", { type: "button", disabled: !!v.error, onclick: () => act(`Load ${v.bundle_path}`, () => api("/v1/voices",
        { method: "POST", admin: true, body: { bundle_path: v.bundle_path } })), "aria-label": `Load voice ${v.name}` }, "Load");
    const state = v.error ? `broken: ${v.error}` : v.loaded ? `loaded${v.source === "upload" ? " (zero-shot)" : ""}` : "on disk";
    return h("tr", { "data-voice": v.name },
      h("th", { scope: "row" }, v.name),
      h("td", { class: v.loaded ? "ok" : "" }, state),
      h("td", {}, v.version ? `${v.version} · ${v.model_id}` : "–"),
      h("td", {}, (v.languages || []).join(", ")),
      h("td", {}, v.reference_text ? `${v.reference_text} [${v.reference_language}]` : "–"),
      h("td", {}, consentText(v.consent)),
      h("td", {}, action));
  }));
}

function renderDefaults(defaults) {
  document.getElementById("defaults").replaceChildren(...Object.entries(defaults).flatMap(([k, v]) =>
    [h("dt", {}, k), h("dd", {}, v === null ? "random" : String(v))]));
}

async function act(what, call) {
  clearError();
  status().textContent = `${what} …`;
  try {
    await call();
    status().textContent = `${what}: done.`;
    await loadVoices();
  } catch (err) {
    status().textContent = `${what} failed: ${err.message}`;
    showError(err);
  }
}

// The clip is decoded by the browser (any format it plays) to mono float32 at 32 kHz and sent as raw PCM.
async function decodeClip(file) {
  const rate = 32000;
  const decoded = await new OfflineAudioContext(1, 1, rate).decodeAudioData(await file.arrayBuffer());
  const mono = new Float32Array(decoded.length);
  for (let c = 0; c < decoded.numberOfChannels; c++) {
    const channel = decoded.getChannelData(c);
    for (let i = 0; i < mono.length; i++) mono[i] += channel[i] / decoded.numberOfChannels;
  }
  return { mono, rate, seconds: decoded.duration };
}

export function setupVoices() {
  const form = document.getElementById("upload-form");
  const note = document.getElementById("upload-status");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    const file = document.getElementById("upload-clip").files[0];
    const name = document.getElementById("upload-name").value.trim();
    try {
      note.textContent = "Decoding the clip …";
      let clip;
      try {
        clip = await decodeClip(file);
      } catch {
        throw new Error(`the browser could not decode ${file.name} as audio`);
      }
      if (clip.seconds < 3 || clip.seconds > 10) throw new Error(`the clip is ${clip.seconds.toFixed(2)} s long; it must be 3-10 s`);
      const body = new FormData();
      for (const key of ["name", "base_voice", "language", "transcript", "consent_speaker", "consent_use", "consent_date",
        "consent_by", "consent_statement"]) body.append(key, form.elements[key].value.trim());
      body.set("name", name);
      body.append("encoding", "pcm_f32le");
      body.append("sample_rate", String(clip.rate));
      body.append("audio", new Blob([clip.mono.buffer], { type: "application/octet-stream" }), "clip.f32");
      note.textContent = `Making voice ${name} from ${clip.seconds.toFixed(2)} s …`;
      const made = await api("/v1/voices", { method: "POST", admin: true, body });
      note.textContent = `Voice ${made.voice.name} is ready.`;
      await loadVoices();
    } catch (err) {
      note.textContent = `Upload failed: ${err.message}`;
      showError(err);
    }
  });
}
