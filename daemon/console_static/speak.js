// Speak (one take, played as it streams) and A/B (one sentence, two settings or voices, side by side).

import { bus } from "./api.js";
import { Take } from "./audio.js";
import { clearError, field, fillSelect, h, showError } from "./dom.js";

// [option, label, min, max, step]; the daemon checks the same ranges (SynthesisOptions.validate)
const NUMBERS = [
  ["top_k", "Top-k", 1, 1024, 1],
  ["top_p", "Top-p", 0.01, 1, 0.01],
  ["temperature", "Temperature", 0.01, 2, 0.01],
  ["repetition_penalty", "Repetition penalty", 1, 3, 0.01],
  ["noise_scale", "Noise scale", 0, 1, 0.01],
  ["speed", "Speed", 0.5, 2, 0.05],
  ["seed", "Seed (empty: random)", 0, Number.MAX_SAFE_INTEGER, 1],
  ["max_new_tokens", "Max tokens per sentence", 1, 1500, 1],
];

// Voice, language and the sampling options, as labelled controls under `container` (ids `${prefix}-…`).
export class OptionsForm {
  constructor(container, prefix) {
    this.prefix = prefix;
    this.voice = h("select", { id: `${prefix}-voice`, required: true });
    this.language = h("select", { id: `${prefix}-language` });
    this.inputs = {};
    const numbers = NUMBERS.map(([key, label, min, max, step]) => {
      this.inputs[key] = h("input", { id: `${prefix}-${key.replaceAll("_", "-")}`, type: "number", min, max, step,
        inputmode: step === 1 ? "numeric" : "decimal" });
      return field(label, this.inputs[key]);
    });
    container.append(field("Voice", this.voice), field("Language", this.language),
      h("div", { class: "numbers" }, numbers));
    bus.addEventListener("voices", (event) => this.fill(event.detail));
  }

  fill({ voices, defaults, languages }) {
    fillSelect(this.voice, voices.filter((v) => v.loaded).map((v) => [v.name, `${v.name} (${v.version})`]));
    fillSelect(this.language, languages.map((code) => [code, code]), this.language.value || defaults.language);
    for (const [key, input] of Object.entries(this.inputs)) {
      if (input.dataset.filled) continue; // keep what the user typed
      input.value = defaults[key] ?? "";
      input.dataset.filled = "1";
    }
  }

  read() {
    const options = { language: this.language.value || "auto" };
    for (const [key, input] of Object.entries(this.inputs)) {
      if (input.value === "") continue;
      options[key] = NUMBERS.find((n) => n[0] === key)[4] === 1 ? parseInt(input.value, 10) : parseFloat(input.value);
    }
    return { voice: this.voice.value, options };
  }
}

function submitOnCtrlEnter(textarea, form) {
  textarea.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
}

export function setupSpeak() {
  const form = document.getElementById("speak-form");
  const text = document.getElementById("speak-text");
  const stop = document.getElementById("speak-stop");
  const go = document.getElementById("speak-go");
  const options = new OptionsForm(document.getElementById("speak-options"), "speak");
  const take = new Take(document.getElementById("speak-take"));
  submitOnCtrlEnter(text, form);
  stop.addEventListener("click", () => take.stop());
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    go.disabled = true;
    stop.disabled = false;
    try {
      await take.run({ text: text.value, ...options.read(), live: true });
    } catch (err) {
      take.status.textContent = `Failed: ${err.message}`;
      showError(err);
    } finally {
      go.disabled = false;
      stop.disabled = true;
    }
  });
}

export function setupAB() {
  const form = document.getElementById("ab-form");
  const text = document.getElementById("ab-text");
  const go = document.getElementById("ab-go");
  const sides = ["a", "b"].map((side) => ({
    options: new OptionsForm(document.getElementById(`ab-${side}-options`), `ab-${side}`),
    take: new Take(document.getElementById(`ab-${side}-take`)),
  }));
  submitOnCtrlEnter(text, form);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearError();
    go.disabled = true;
    try {
      for (const side of sides) { // one after the other: each take's timing is its own
        await side.take.run({ text: text.value, ...side.options.read(), live: false });
      }
    } catch (err) {
      showError(err);
    } finally {
      go.disabled = false;
    }
  });
}
