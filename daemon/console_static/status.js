// Server status: device, GPU memory, resident models, streams, and the daemon's metrics as charts
// (first audio p50/p95 of the requests that finished since the previous poll, active streams, underruns).

import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { bytes, h } from "./dom.js";

const KEEP = 90; // polls shown (3 minutes at 2 s)
const history = { p50: [], p95: [], streams: [], underruns: [] };
let previous = null;

// Prometheus' histogram_quantile over the observations between two snapshots of cumulative buckets.
export function windowQuantile(now, before, q) {
  const buckets = now.buckets.map(([le, count], i) => [le ?? Infinity, count - (before ? before.buckets[i][1] : 0)]);
  const total = buckets.length ? buckets[buckets.length - 1][1] : 0;
  if (total <= 0) return null;
  let lower = 0, below = 0;
  for (const [le, cum] of buckets) {
    if (cum >= q * total) {
      if (!Number.isFinite(le)) return lower;
      return lower + (le - lower) * (cum > below ? (q * total - below) / (cum - below) : 1);
    }
    lower = le;
    below = cum;
  }
  return lower;
}

function push(list, value) {
  list.push(value);
  if (list.length > KEEP) list.shift();
}

function facts(info) {
  const m = info.metrics;
  const p = (s) => (s === null ? "–" : `${(s * 1000).toFixed(1)} ms`);
  const rows = [
    ["Version", info.version], ["Device", `${info.device} (${info.dtype}), ${info.backend}`],
    ["GPU", info.gpu ? `${info.gpu.name}: ${bytes(info.gpu.total_bytes - info.gpu.free_bytes)} of ${bytes(info.gpu.total_bytes)} used, ` +
      `${bytes(info.gpu.allocated_bytes)} allocated by gsvd` : "none (CPU)"],
    ["Streams", `${info.active_streams} active of ${info.limits.max_streams}, ${info.queued} queued; ` +
      `KV slots ${info.runtime.slots_total - info.runtime.slots_free} of ${info.runtime.slots_total} in use`],
    ["Requests", `${m.requests} since start; first audio p50 ${p(m.first_audio_s.p50)}, p95 ${p(m.first_audio_s.p95)}; ` +
      `${m.underruns} underran`],
    ["Errors", Object.entries(m.errors).map(([k, n]) => `${k}: ${n}`).join(", ") || "none"],
  ];
  const models = h("table", { class: "grid", id: "status-models" },
    h("caption", {}, "Resident models"),
    h("thead", {}, h("tr", {}, ["Model", "Version", "Voices", "Weights"].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, info.resident.map((r) => h("tr", {}, h("th", { scope: "row" }, r.model_id), h("td", {}, r.version),
      h("td", {}, r.voices.join(", ")), h("td", {}, bytes(r.weights_bytes))))));
  return [h("dl", { class: "facts-list" }, rows.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])), models];
}

export async function refreshStatus() {
  const info = await api("/v1/server");
  const m = info.metrics;
  const fresh = m.first_audio_s.count > (previous ? previous.count : 0); // the first poll: everything so far
  push(history.p50, fresh ? windowQuantile(m.first_audio_s, previous, 0.5) * 1000 : null);
  push(history.p95, fresh ? windowQuantile(m.first_audio_s, previous, 0.95) * 1000 : null);
  push(history.streams, m.active_streams);
  push(history.underruns, m.underruns);
  previous = m.first_audio_s;
  document.getElementById("status-facts").replaceChildren(...facts(info));
  lineChart(document.getElementById("chart-ttfa"), [{ values: history.p50, color: "#2b7bb9", length: KEEP },
    { values: history.p95, color: "#d9822b", length: KEEP }], 1);
  lineChart(document.getElementById("chart-streams"), [{ values: history.streams, color: "#2b7bb9", length: KEEP }]);
  lineChart(document.getElementById("chart-underruns"), [{ values: history.underruns, color: "#c23030", length: KEEP }]);
  return info;
}
