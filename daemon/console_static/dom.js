// Small DOM helpers (no framework): element builder, labelled fields, messages.

export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined && child !== false) el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

// A <label> + control pair wrapped in a div; `control` must carry an id.
export function field(label, control) {
  return h("div", { class: "field" }, h("label", { for: control.id }, label), control);
}

export function select(id, items, chosen) {
  return h("select", { id }, items.map(([value, text]) => h("option", { value, selected: value === chosen }, text)));
}

export function fillSelect(el, items, chosen) {
  const keep = chosen ?? el.value;
  el.replaceChildren(...items.map(([value, text]) => h("option", { value, selected: value === keep }, text)));
}

const alertBox = () => document.getElementById("alert");

export function showError(err) {
  const box = alertBox();
  box.textContent = err.message || String(err);
  box.hidden = false;
}

export function clearError() {
  const box = alertBox();
  box.textContent = "";
  box.hidden = true;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
