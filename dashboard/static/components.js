// The handful of components every view is made of: link, badge, card, table, dialog.

import { h } from "./dom.js";
import { href } from "./state.js";

export const STATES = ["pending", "delayed", "active", "completed", "failed", "cancelled"];

/** A link to another view of the dashboard (a real link: opens in a new tab too). */
export function nav(params, attrs, ...children) {
  return h("a", { ...attrs, href: href(params), "data-nav": "1" }, ...children);
}

export function badge(text, kind) {
  return h("span", { class: `badge ${kind || ""}`.trim() }, text);
}

export function statusBadge(status) {
  return badge(status, `s-${status}`);
}

export function button(text, onclick, attrs = {}) {
  return h("button", { type: "button", ...attrs, onclick }, text);
}

export function empty(title, ...lines) {
  return h("div", { class: "empty" }, h("p", { class: "empty-title" }, title), ...lines.map((l) => h("p", null, l)));
}

export function section(title, ...children) {
  return h("section", { class: "panel" }, h("h2", null, title), ...children);
}

export function table(headings, rows, attrs = {}) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs,
      h("thead", null, h("tr", null, headings.map((t) => h("th", { class: t.cls }, t.text ?? t)))),
      h("tbody", null, rows),
    ),
  );
}

export function field(label, input, hint) {
  return h("label", { class: "field" }, h("span", { class: "label" }, label), input, hint ? h("span", { class: "hint" }, hint) : null);
}

export function definitions(pairs) {
  return h(
    "dl",
    { class: "facts" },
    pairs.map(([term, value, key]) => h("div", { "data-field": key || term }, h("dt", null, term), h("dd", null, value))),
  );
}

const dialog = () => document.getElementById("confirm");

/** Ask before acting; the text says how many jobs the action touches. Resolves true or false. */
export function confirmAction(title, text, okText = "Confirm") {
  const box = dialog();
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  const ok = document.getElementById("confirm-ok");
  ok.textContent = okText;
  return new Promise((resolve) => {
    const done = (answer) => {
      ok.removeEventListener("click", yes);
      cancel.removeEventListener("click", no);
      box.removeEventListener("cancel", no);
      if (box.open) box.close();
      resolve(answer);
    };
    const yes = () => done(true);
    const no = (event) => { event?.preventDefault?.(); done(false); };
    const cancel = document.getElementById("confirm-cancel");
    ok.addEventListener("click", yes);
    cancel.addEventListener("click", no);
    box.addEventListener("cancel", no);
    box.showModal();
    cancel.focus();
  });
}

/** Copy text to the clipboard, saying so. */
export function copyButton(getText, label = "Copy") {
  return button(label, async (event) => {
    const target = event.currentTarget;
    try {
      await navigator.clipboard.writeText(getText());
      target.textContent = "Copied";
    } catch {
      target.textContent = "Select and copy";
    }
    setTimeout(() => { target.textContent = label; }, 1500);
  }, { class: "ghost small" });
}
