// DOM helpers: h() builds elements (text always as text, never as HTML), small widgets.
import { errorText, t } from "./i18n.js";

export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  add(el, children);
  return el;
}

function add(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) add(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

// A message area a screen writes its outcome into (read out by screen readers).
export function notice(kind = "status") {
  const el = h("p", { class: "notice", role: kind === "alert" ? "alert" : "status", "aria-live": "polite" });
  el.show = (text, tone = "info") => {
    el.textContent = text;
    el.dataset.tone = tone;
  };
  el.error = (err) => el.show(errorText(err), "error");
  el.clear = () => {
    el.textContent = "";
    delete el.dataset.tone;
  };
  return el;
}

export function toast(text) {
  const box = document.getElementById("toast");
  const item = h("p", { class: "toast-item" }, text);
  box.append(item);
  setTimeout(() => item.remove(), 6000);
}

// "2026-12-01T21:07:40+08:00" -> "12-01 21:07": already in the community's time zone.
export function when(iso) {
  if (!iso) return "";
  return iso.slice(5, 16).replace("T", " ");
}

export function chip(text, tone) {
  return h("span", { class: `chip chip-${tone || "plain"}` }, text);
}

export function field(label, input, hint) {
  const id = input.id || `f-${Math.random().toString(36).slice(2, 9)}`;
  input.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute("aria-describedby", hintEl.id);
  return h("div", { class: "field" }, h("label", { for: id }, label), input, hintEl);
}

export function busy(button, text) {
  const old = button.textContent;
  button.disabled = true;
  if (text) button.textContent = text;
  return () => {
    button.disabled = false;
    button.textContent = old;
  };
}

// A two-tap action for things that cannot be undone (revoke, leave).
export function confirmButton(label, confirmLabel, action) {
  const wrap = h("div", { class: "confirm" });
  const first = h("button", { type: "button", class: "btn btn-danger-outline" }, label);
  const yes = h("button", { type: "button", class: "btn btn-danger", hidden: true }, confirmLabel);
  const no = h("button", { type: "button", class: "btn btn-plain", hidden: true }, t("cancel"));
  first.addEventListener("click", () => {
    first.hidden = true;
    yes.hidden = false;
    no.hidden = false;
    yes.focus();
  });
  no.addEventListener("click", () => {
    first.hidden = false;
    yes.hidden = true;
    no.hidden = true;
    first.focus();
  });
  yes.addEventListener("click", async () => {
    const done = busy(yes);
    try {
      await action();
    } finally {
      done();
    }
  });
  wrap.append(first, yes, no);
  return wrap;
}

export function screen(title, ...children) {
  return h("section", { class: "screen" }, h("h1", { id: "screen-title" }, title), ...children);
}

export function card(...children) {
  return h("div", { class: "card" }, ...children);
}

export function roomLabel(m) {
  return [m.building, m.unit, m.room].filter(Boolean).join("");
}
