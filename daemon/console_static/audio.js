// Audio in the page: the shared AudioWorklet player, one synthesis "take" (stream, readouts,
// waveform, mouth envelope, WAV download) and the drawing of both curves.

import { speak } from "./api.js";
import { h } from "./dom.js";

let shared = null;

// The page's one player (an AudioContext + the ring-buffer worklet), made on first use (a click).
export async function getPlayer() {
  if (shared) {
    if (shared.ctx.state === "suspended") await shared.ctx.resume();
    return shared;
  }
  const ctx = new AudioContext();
  if (!ctx.audioWorklet) {
    await ctx.close();
    throw new Error("live playback needs a secure context (https, or the daemon on localhost); " +
      "the audio is still received, drawn and downloadable");
  }
  await ctx.audioWorklet.addModule("/console/player-worklet.js");
  const node = new AudioWorkletNode(ctx, "gsvd-player", { numberOfInputs: 0, outputChannelCount: [1] });
  node.connect(ctx.destination);
  const listeners = new Set();
  node.port.onmessage = (event) => listeners.forEach((fn) => fn(event.data));
  shared = {
    ctx,
    rate: ctx.sampleRate,
    listeners,
    reset() { node.port.postMessage({ type: "reset" }); },
    push(samples) {
      const copy = samples.slice(); // the take keeps its own samples for drawing and download
      node.port.postMessage({ type: "push", samples: copy }, [copy.buffer]);
    },
    end() { node.port.postMessage({ type: "end" }); },
  };
  if (ctx.state === "suspended") await ctx.resume();
  return shared;
}

// A RIFF chunk: id, little-endian size, body, a pad byte to an even length.
function riffChunk(id, body) {
  const out = new Uint8Array(8 + body.length + (body.length % 2));
  const view = new DataView(out.buffer);
  [...id].forEach((ch, i) => view.setUint8(i, ch.charCodeAt(0)));
  view.setUint32(4, body.length, true);
  out.set(body, 8);
  return out;
}

// The label's metadata chunks, as gsvd.wavio writes them: LIST/INFO (a comment players show) and the
// label's JSON in an `aigc` chunk (the server's label from the stream's start message, unchanged).
function labelChunks(label) {
  if (!label) return [];
  const utf8 = (s) => new TextEncoder().encode(s);
  const tag = (id, value) => riffChunk(id, new Uint8Array([...utf8(value), 0]));
  const info = [tag("ICMT", `${label.statement}. Voice: ${label.voice}. Generator: ${label.generator}.`),
    tag("ISFT", label.generator), tag("ICRD", label.created), tag("IART", `${label.voice} (synthetic voice)`),
    tag("IGNR", "AI-generated speech")];
  const list = new Uint8Array([...utf8("INFO"), ...info.flatMap((c) => [...c])]);
  return [riffChunk("LIST", list), riffChunk("aigc", utf8(JSON.stringify(label)))];
}

export function wavBlob(chunks, rate, label = null) {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const fmt = new DataView(new ArrayBuffer(16));
  fmt.setUint16(0, 1, true); fmt.setUint16(2, 1, true); fmt.setUint32(4, rate, true);
  fmt.setUint32(8, rate * 2, true); fmt.setUint16(12, 2, true); fmt.setUint16(14, 16, true);
  const pcm = new DataView(new ArrayBuffer(total * 2));
  let offset = 0;
  for (const chunk of chunks) {
    for (const x of chunk) {
      pcm.setInt16(offset, Math.round(Math.max(-1, Math.min(1, x)) * 32767), true);
      offset += 2;
    }
  }
  const parts = [riffChunk("fmt ", new Uint8Array(fmt.buffer)), ...labelChunks(label),
    riffChunk("data", new Uint8Array(pcm.buffer))];
  const head = new DataView(new ArrayBuffer(12));
  [..."RIFF"].forEach((ch, i) => head.setUint8(i, ch.charCodeAt(0)));
  head.setUint32(4, 4 + parts.reduce((n, p) => n + p.length, 0), true);
  [..."WAVE"].forEach((ch, i) => head.setUint8(8 + i, ch.charCodeAt(0)));
  return new Blob([head.buffer, ...parts], { type: "audio/wav" });
}

function fitCanvas(canvas) {
  const scale = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * scale));
  const height = Math.max(1, Math.round(canvas.clientHeight * scale));
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const g = canvas.getContext("2d");
  g.clearRect(0, 0, width, height);
  return g;
}

// Min/max of the samples under each pixel column, over `seconds` of width, scaled to the peak.
export function drawWave(canvas, chunks, rate, seconds, peak) {
  const g = fitCanvas(canvas);
  const { width, height } = canvas;
  const gain = 1 / Math.max(peak, 1e-4);
  const perColumn = Math.max(1, (seconds * rate) / width);
  g.fillStyle = getComputedStyle(canvas).color;
  let column = 0, lo = 1, hi = -1, seen = 0;
  for (const chunk of chunks) {
    for (const x of chunk) {
      if (x < lo) lo = x;
      if (x > hi) hi = x;
      if (++seen >= perColumn * (column + 1)) {
        const top = ((1 - hi * gain) / 2) * height, bottom = ((1 - lo * gain) / 2) * height;
        g.fillRect(column, top, 1, Math.max(1, bottom - top));
        column += 1;
        lo = 1;
        hi = -1;
      }
    }
  }
}

// The 20 ms RMS envelope a VTuber rig receives, as bars on the same time axis.
export function drawEnvelope(canvas, envelope, hopSeconds, seconds) {
  const g = fitCanvas(canvas);
  const { width, height } = canvas;
  const peak = Math.max(1e-4, ...envelope);
  g.fillStyle = getComputedStyle(canvas).color;
  const barWidth = Math.max(1, (hopSeconds / seconds) * width);
  envelope.forEach((value, i) => {
    const barHeight = (value / peak) * height;
    g.fillRect((i * hopSeconds / seconds) * width, height - barHeight, barWidth, barHeight);
  });
}

function readout(id, label) {
  const out = h("output", { id, "aria-labelledby": `${id}-label` }, "–");
  return [h("span", { class: "label", id: `${id}-label` }, label), out];
}

// One synthesis: its readouts, drawings and download, under `container` (ids start with container.id).
export class Take {
  constructor(container) {
    const id = container.id;
    this.id = id;
    this.readouts = {};
    const row = h("div", { class: "readouts", role: "group", "aria-label": "Measurements" });
    for (const [key, label] of [["ttfa", "First audio (ms)"], ["rtf", "Real-time factor"], ["seconds", "Audio (s)"],
      ["peak", "Peak (dBFS)"], ["played", "Played (s)"], ["underruns", "Underruns"]]) {
      const [span, out] = readout(`${id}-${key}`, label);
      this.readouts[key] = out;
      row.append(h("span", { class: "readout" }, span, out));
    }
    this.status = h("p", { class: "status", role: "status", id: `${id}-status` });
    this.wave = h("canvas", { class: "wave", id: `${id}-wave`, role: "img", "aria-label": "Waveform of the audio, scaled to its peak" });
    this.mouth = h("canvas", { class: "mouth", id: `${id}-mouth`, role: "img",
      "aria-label": "Mouth envelope: 20 ms loudness, what a VTuber rig receives" });
    this.download = h("a", { id: `${id}-download`, class: "button", hidden: true }, "Download WAV");
    this.play = h("button", { type: "button", id: `${id}-play`, hidden: true, onclick: () => this.replay() }, "Play");
    container.replaceChildren(row, this.status, this.wave, this.mouth, h("div", { class: "buttons" }, this.play, this.download));
    this.chunks = [];
    this.envelope = [];
    this.handle = null;
    this.unsubscribe = null;
  }

  // Stream `text`; with `live`, play it through the worklet as it arrives. Resolves when the take ends.
  async run({ text, voice, options, live }) {
    this.stop();
    let out = null;
    try {
      out = await getPlayer(); // its rate is the one asked for: no resampling in the page
    } catch (err) {
      this.note = err.message;
    }
    this.rate = out ? out.rate : 48000;
    const player = live ? out : null;
    this.chunks = [];
    this.envelope = [];
    this.samples = 0;
    this.peak = 0;
    Object.values(this.readouts).forEach((o) => { o.textContent = "–"; delete o.dataset.value; });
    this.download.hidden = true;
    this.play.hidden = true;
    this.status.textContent = `Speaking with ${voice} …`;
    if (player) this.follow(player);
    const t0 = performance.now();
    let frame = 0;
    this.label = null;
    this.handle = speak({
      text, voice, options, rate: this.rate,
      onStart: (start) => {
        this.label = start.label || null;
        if (this.label) this.status.textContent = `Speaking with ${voice} … (${this.labelText()})`;
      },
      onChunk: (meta) => { this.envelope.push(...meta.envelope); },
      onAudio: (samples) => {
        if (!samples.length) return;
        if (!this.chunks.length) this.set("ttfa", performance.now() - t0, 1);
        this.chunks.push(samples);
        this.samples += samples.length;
        for (const x of samples) this.peak = Math.max(this.peak, Math.abs(x));
        this.set("peak", 20 * Math.log10(Math.max(this.peak, 1e-9)), 1);
        player?.push(samples);
        this.set("seconds", this.samples / this.rate, 2);
        this.set("rtf", (performance.now() - t0) / 1000 / (this.samples / this.rate), 3);
        if (!frame) frame = requestAnimationFrame(() => { frame = 0; this.draw(); });
      },
    });
    try {
      await this.handle.done;
      const said = this.label ? ` ${this.labelText()}.` : "";
      this.status.textContent = `Done: ${(this.samples / this.rate).toFixed(2)} s of audio.${said}${this.note ? ` (${this.note})` : ""}`;
    } finally {
      player?.end();
      this.handle = null;
      this.draw();
      this.offerDownload(voice);
    }
  }

  follow(out) {
    this.unsubscribe?.();
    out.reset();
    const fn = (stats) => {
      this.set("played", stats.played / out.rate, 2, stats.played);
      this.set("underruns", stats.underruns, 0);
    };
    out.listeners.add(fn);
    this.unsubscribe = () => out.listeners.delete(fn);
  }

  async replay() {
    const out = await getPlayer();
    this.follow(out);
    this.chunks.forEach((c) => out.push(c));
    out.end();
  }

  set(key, value, digits, raw) {
    const o = this.readouts[key];
    o.textContent = Number(value).toFixed(digits);
    o.dataset.value = String(raw ?? value);
  }

  draw() {
    const seconds = Math.max(this.samples / this.rate, 0.5);
    drawWave(this.wave, this.chunks, this.rate, seconds, this.peak);
    drawEnvelope(this.mouth, this.envelope, 0.02, seconds);
  }

  // The stream's label as people read it (the server's words).
  labelText() {
    const mark = this.label.watermark ? ", watermarked" : "";
    return `AI-generated speech: voice ${this.label.voice}, ${this.label.generator}${mark}`;
  }

  offerDownload(voice) {
    if (!this.samples) return;
    if (this.download.href) URL.revokeObjectURL(this.download.href);
    this.download.href = URL.createObjectURL(wavBlob(this.chunks, this.rate, this.label));
    this.download.download = `${voice}-${new Date().toISOString().replaceAll(":", "-").slice(0, 19)}.wav`;
    this.download.hidden = false;
    this.play.hidden = false;
  }

  stop() {
    this.handle?.stop();
  }
}
