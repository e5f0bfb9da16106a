// Enrollment runs: the run folders under the daemon's --runs-dir, one run's stages, fit progress and
// losses, the selection report with its plot, the test sentences of each saved epoch (listen, pick)
// and packaging the picked SoVITS + GPT epochs into a voice.

import { api } from "./api.js";
import { lineChart } from "./charts.js";
import { clearError, h, showError } from "./dom.js";
import { loadVoices } from "./voices.js";

const MAIN_LOSS = { sovits: "loss_mel", gpt: "loss" };
const MODEL_NAME = { sovits: "SoVITS", gpt: "GPT" };
let openRun = null;
const blobUrls = [];

async function blobUrl(run, path) {
  const url = URL.createObjectURL(await api(`/v1/runs/${encodeURIComponent(run)}/files/${path}`, { blob: true }));
  blobUrls.push(url);
  return url;
}

export async function loadRuns() {
  const data = await api("/v1/runs");
  document.getElementById("runs-caption").textContent = data.runs_dir
    ? `gsvd train run folders in ${data.runs_dir}` : "The daemon was started without --runs-dir: no runs to show.";
  document.querySelector("#runs-table tbody").replaceChildren(...data.runs.map((r) => h("tr", { "data-run": r.name },
    h("th", { scope: "row" }, r.name), h("td", {}, r.voice), h("td", {}, `${r.stages_done} of ${r.stages}`),
    h("td", {}, r.current || "finished"), h("td", {}, r.updated || "–"),
    h("td", {}, h("button", { type: "button", "aria-label": `Open run ${r.name}`, onclick: () => openDetail(r.name) }, "Open")))));
  if (openRun) await renderDetail(openRun, false);
  return data;
}

async function openDetail(name) {
  clearError();
  try {
    await renderDetail(name, true);
  } catch (err) {
    showError(err);
  }
}

// Re-reads the run; `full` rebuilds everything (a newly opened run), else only the progress part.
async function renderDetail(name, full) {
  const run = await api(`/v1/runs/${encodeURIComponent(name)}`);
  const root = document.getElementById("run-detail");
  if (full || openRun !== name || !root.querySelector("#run-progress")) {
    blobUrls.splice(0).forEach((u) => URL.revokeObjectURL(u));
    openRun = name;
    root.replaceChildren(
      h("h3", { id: "run-title", tabindex: "-1" }, `Run ${run.name} (voice ${run.voice})`),
      h("p", {}, "Consent: ", run.consent || h("span", { class: "missing" }, "none recorded")),
      h("div", { id: "run-progress" }),
      await selectSection(run),
      samplesSection(run),
      h("div", { id: "run-package" }));
    root.querySelector("#run-title").focus();
  }
  root.querySelector("#run-progress").replaceChildren(...progress(run));
  drawLosses(run);
  root.querySelector("#run-package").replaceChildren(...packageInfo(run));
}

function summary(info) { // a stage's recorded numbers, without paths and lists
  return Object.entries(info).filter(([, v]) => (typeof v !== "object" || v === null) && !String(v).includes("/"))
    .map(([k, v]) => `${k} ${typeof v === "number" ? Math.round(v * 100) / 100 : v}`).join(", ");
}

function progress(run) {
  const stages = h("ol", { class: "stages", id: "run-stages" }, run.stages.map((s) => h("li", { class: s.done ? "done" : "" },
    h("strong", {}, s.stage), ` ${s.done ? "done" : "not done"}`, s.done && summary(s.info) ? ` (${summary(s.info)})` : "")));
  const bars = ["sovits", "gpt"].map((model) => {
    const fit = run.fit[model];
    const id = `run-fit-${model}`;
    return h("div", { class: "fit" },
      h("label", { for: id }, `${MODEL_NAME[model]} epochs: ${fit.done} of ${fit.epochs ?? "?"}`),
      h("progress", { id, max: fit.epochs || 1, value: fit.done }),
      h("canvas", { id: `run-loss-${model}`, class: "loss", role: "img",
        "aria-label": `${MODEL_NAME[model]} ${MAIN_LOSS[model]} per epoch` }));
  });
  return [h("h4", {}, "Stages"), stages, h("h4", {}, "Fit"), h("div", { class: "fits" }, bars)];
}

function drawLosses(run) {
  for (const model of ["sovits", "gpt"]) {
    const rows = run.fit[model].losses;
    lineChart(document.getElementById(`run-loss-${model}`),
      [{ values: rows.map((r) => r[MAIN_LOSS[model]]), color: "#2b7bb9", length: run.fit[model].epochs }], 3);
  }
}

async function selectSection(run) {
  const section = h("section", { id: "run-select", "aria-labelledby": "run-select-title" },
    h("h4", { id: "run-select-title" }, "Clip selection report"));
  const sel = run.select;
  if (!sel.scores.length) {
    section.append(h("p", {}, "Not selected yet."));
    return section;
  }
  const kept = sel.scores.filter((s) => s.kept);
  section.append(h("p", {}, `${kept.length} of ${sel.scores.length} clips kept, ` +
    `${kept.reduce((t, s) => t + s.seconds, 0).toFixed(1)} s of ${sel.scores.reduce((t, s) => t + s.seconds, 0).toFixed(1)} s.`));
  if (sel.plot) {
    section.append(h("img", { id: "run-plot", src: await blobUrl(run.name, sel.plot),
      alt: "Clip scores (green kept, red dropped) and SNR against music for every clip" }));
  }
  if (sel.report) {
    section.append(h("p", {}, h("a", { href: await blobUrl(run.name, sel.report), download: `${run.name}-report.md` },
      "Download report.md")));
  }
  const cols = [["id", "Clip"], ["seconds", "Seconds"], ["snr_db", "SNR dB"], ["music", "Music"], ["speech_ratio", "Speech"],
    ["overlap", "Other speaker"], ["score", "Score"], ["kept", "Kept"], ["reason", "Why"]];
  section.append(h("table", { class: "grid", id: "run-scores" },
    h("thead", {}, h("tr", {}, cols.map(([, t]) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, [...sel.scores].sort((a, b) => b.score - a.score).map((s) => h("tr", { class: s.kept ? "" : "dropped" },
      cols.map(([k]) => h("td", {}, typeof s[k] === "number" ? (Math.round(s[k] * 100) / 100).toString()
        : typeof s[k] === "boolean" ? (s[k] ? "yes" : "no") : s[k])))))));
  return section;
}

function samplesSection(run) {
  const section = h("section", { id: "run-samples", "aria-labelledby": "run-samples-title" },
    h("h4", { id: "run-samples-title" }, "Test sentences at each saved epoch"),
    h("p", { class: "hint" }, "SoVITS epochs are rendered with the base GPT; GPT epochs with the final SoVITS. " +
      "Listen, pick one epoch of each, and package them into the voice."));
  if (!run.samples.length) {
    section.append(h("p", {}, "No epoch saved yet."));
    return section;
  }
  for (const model of ["sovits", "gpt"]) {
    const rows = run.samples.filter((s) => s.model === model);
    const last = Math.max(0, ...rows.filter((r) => r.weights).map((r) => r.epoch));
    const group = h("fieldset", { class: "epochs", id: `run-epochs-${model}` }, h("legend", {}, `${MODEL_NAME[model]} epoch`));
    for (const row of rows) {
      const id = `pick-${model}-${row.epoch}`;
      group.append(h("div", { class: "epoch", "data-tag": row.tag },
        h("input", { type: "radio", name: `pick-${model}`, id, value: row.epoch, disabled: !row.weights,
          checked: row.epoch === last }),
        h("label", { for: id }, `epoch ${row.epoch}${row.weights ? "" : " (weights not kept)"}`),
        h("ul", {}, row.sentences.map((s, i) => sentence(run.name, row, s, i)))));
    }
    section.append(group);
  }
  const go = h("button", { type: "button", id: "run-package-go", onclick: () => packageRun(run.name) }, "Package the picked epochs");
  section.append(go, h("p", { class: "status", role: "status", id: "run-package-status" }));
  return section;
}

function sentence(runName, row, s, i) {
  const slot = h("span", { class: "player" });
  const listen = h("button", { type: "button", "aria-label": `Listen to sentence ${i + 1} of ${row.tag}`, onclick: async () => {
    try {
      const audio = h("audio", { controls: true, src: await blobUrl(runName, s.audio), "aria-label": `${row.tag} sentence ${i + 1}` });
      slot.replaceChildren(audio);
      await audio.play().catch(() => {}); // autoplay may be refused; the controls stay
    } catch (err) {
      showError(err);
    }
  } }, "Listen");
  slot.append(listen);
  const facts = `${s.seconds} s, ${s.tokens} tokens${s.stopped ? "" : " (no EOS)"}, ${s.tokens_per_phone} tokens/phone, ${s.rms_dbfs} dBFS`;
  return h("li", {}, h("q", {}, s.text), " ", h("small", {}, facts), " ", slot);
}

function packageInfo(run) {
  if (!run.package) return [h("p", {}, run.packaging ? "Packaging now …" : "Not packaged yet.")];
  const s = run.settings;
  const which = (e) => (e ? `epoch ${e}` : "final");
  return [h("h4", {}, "Last packaging"), h("p", { id: "run-packaged" }, `Bundle ${run.package.bundle} from SoVITS ${which(s.sovits_epoch)} ` +
    `and GPT ${which(s.gpt_epoch)}${run.packaging ? " (packaging again now …)" : ""}`)];
}

async function packageRun(name) {
  clearError();
  const note = document.getElementById("run-package-status");
  const pick = (model) => Number(document.querySelector(`input[name="pick-${model}"]:checked`)?.value || 0);
  const body = { sovits_epoch: pick("sovits"), gpt_epoch: pick("gpt") };
  const button = document.getElementById("run-package-go");
  button.disabled = true;
  note.textContent = `Packaging SoVITS epoch ${body.sovits_epoch} + GPT epoch ${body.gpt_epoch} …`;
  try {
    const made = await api(`/v1/runs/${encodeURIComponent(name)}/package`, { method: "POST", admin: true, body });
    note.textContent = `Voice ${made.voice} is packaged and loaded (SoVITS epoch ${made.sovits_epoch}, GPT epoch ${made.gpt_epoch}).`;
    await loadVoices();
    await renderDetail(name, false);
  } catch (err) {
    note.textContent = `Packaging failed: ${err.message}`;
    showError(err);
  } finally {
    button.disabled = false;
  }
}
