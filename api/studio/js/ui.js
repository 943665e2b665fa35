// Small DOM helpers shared by the pages: elements, labelled fields, announcements, errors.

let uid = 0;

// h("button", {class: "x", onclick: fn}, "text", child...): an element.
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}

// A labelled form control with an optional hint and an error slot tied to it (aria-describedby).
export function field(label, control, hint = "") {
  const id = control.id || `f${++uid}`;
  control.id = id;
  const hintEl = h("small", { class: "hint", id: `${id}-hint` }, hint);
  const errorEl = h("small", { class: "field-error", id: `${id}-error`, "aria-live": "polite" });
  control.setAttribute("aria-describedby", `${id}-hint ${id}-error`);
  const wrap = h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl, errorEl);
  wrap.control = control;
  wrap.hint = hintEl;
  wrap.error = (text) => {
    errorEl.textContent = text || "";
    control.toggleAttribute("aria-invalid", Boolean(text));
  };
  return wrap;
}

// The page's live region: what just happened, read out by screen readers.
export function announce(text) {
  document.getElementById("status").textContent = text;
}

// An error box (role=alert) with the API's detail and each validation problem.
export function errorBox(error) {
  const items = (error.errors || []).map((e) => h("li", {}, e));
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, error.detail || error.message || String(error)),
    items.length ? h("ul", { class: "problems" }, items) : null,
  );
}

export function showError(slot, error) {
  slot.replaceChildren(errorBox(error));
}

export function table(headers, rows) {
  return h(
    "table",
    {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows),
  );
}

export function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

export function seconds(s) {
  if (s === undefined || s === null) return "";
  s = Math.round(s);
  return s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
}

// Options of a <select> from names; keeps `selected` when it is one of them.
export function options(select, names, selected) {
  select.replaceChildren(...names.map((n) => h("option", { value: n }, n)));
  if (selected && names.includes(selected)) select.value = selected;
}

// Model names as the API accepts them (api/names.py); the first rule broken, or "".
export function nameProblem(name) {
  if (!name) return "Enter a name.";
  if (name.length > 63) return `Too long: ${name.length} characters, at most 63.`;
  if (/[A-Z]/.test(name)) return "Use lowercase letters only.";
  const bad = name.match(/[^a-z0-9._-]/);
  if (bad) return `'${bad[0]}' is not allowed: use a-z, 0-9, '.', '_' and '-'.`;
  if (!/^[a-z0-9]/.test(name)) return "Start with a letter or a digit.";
  if (name.endsWith(".")) return "Do not end with '.'.";
  if (name.includes("..")) return "Do not use '..'.";
  return "";
}
export const NAME_RULES = "1-63 characters: a-z, 0-9, '.', '_', '-'; starts with a letter or digit.";
