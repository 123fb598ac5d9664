// The dashboard's entry: sign-in, the views by URL, live refresh that never jumps.

import { api, may, notify, session, whenUnauthorized } from "./api.js";
import { nav } from "./components.js";
import { fill, h } from "./dom.js";
import * as forms from "./forms.js";
import * as job from "./job.js";
import * as overview from "./overview.js";
import * as queue from "./queue.js";
import * as settings from "./settings.js";
import { current, go, intercept, record, whenChanged } from "./state.js";

const main = document.getElementById("main");

// view -> [load(state), render(state, data, refresh), refreshes live]
const VIEWS = {
  overview: [() => overview.load(), overview.render, true],
  queue: [queue.load, queue.render, true],
  job: [job.load, job.render, true],
  add: [forms.loadAdd, forms.renderAdd, false],
  clean: [forms.loadClean, forms.renderClean, false],
  audit: [forms.loadAudit, forms.renderAudit, true],
};

let timer = null;
let generation = 0;

function signInForm(message) {
  const key = h("input", { name: "key", type: "password", autocomplete: "off", placeholder: "djs_…", "aria-label": "API key", spellcheck: "false" });
  const form = h("form", { class: "signin panel" },
    h("h1", null, "Sign in"),
    h("p", null, "Paste an API key. It is kept in this tab only (session storage) and sent as a Bearer header, never as a cookie."),
    h("p", { class: "muted" }, "`djs dev` prints an admin key when it starts; `djs keys current` prints it again; an admin makes more with `djs keys create`."),
    message ? h("p", { class: "field-error", role: "alert" }, message) : null,
    key,
    h("div", { class: "row end" }, h("button", { type: "submit", class: "primary" }, "Sign in")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    session.signIn(key.value.trim());
    await start();
  });
  fill(main, form);
  document.getElementById("who").textContent = "";
  document.getElementById("signout").hidden = true;
  fill(document.getElementById("nav"));
  key.focus();
}

function chrome() {
  const me = session.me;
  document.getElementById("who").textContent = `${me.name} · ${me.role}`;
  document.getElementById("signout").hidden = false;
  const state = current();
  const links = [nav({ view: "overview" }, { "aria-current": (state.view || "overview") === "overview" ? "page" : null }, "Queues")];
  if (may("GET /audit")) links.push(nav({ view: "audit" }, { "aria-current": state.view === "audit" ? "page" : null }, "Audit"));
  fill(document.getElementById("nav"), links);
}

/** What a refresh must keep: open panels, typed text, focus, scroll. */
function snapshot() {
  const open = new Set([...main.querySelectorAll("details[data-key]")].filter((d) => d.open).map((d) => d.dataset.key));
  const closed = new Set([...main.querySelectorAll("details[data-key]")].filter((d) => !d.open).map((d) => d.dataset.key));
  const typed = [...main.querySelectorAll("input[name], textarea[name], select[name]")]
    .filter((i) => i.type !== "checkbox" && i.value !== i.defaultValue)
    .map((i) => [i.name, i.value]);
  const active = document.activeElement;
  const focus = active && main.contains(active) ? (active.name || active.dataset.action || active.dataset.id || active.dataset.nav && active.getAttribute("href")) : null;
  const caret = typeof active?.selectionStart === "number" ? [active.selectionStart, active.selectionEnd] : null;
  return { open, closed, typed, focus, caret, x: scrollX, y: scrollY };
}

function restore(saved) {
  for (const d of main.querySelectorAll("details[data-key]")) {
    if (saved.open.has(d.dataset.key)) d.open = true;
    if (saved.closed.has(d.dataset.key)) d.open = false;
  }
  for (const [name, value] of saved.typed) {
    const input = main.querySelector(`[name="${CSS.escape(name)}"]`);
    if (!input) continue;
    input.value = value;
    input.dispatchEvent(new Event("input")); // a filter typed in place applies itself again
  }
  if (saved.focus) {
    const target = [...main.querySelectorAll("input, textarea, select, button, a")].find((el) =>
      el.name === saved.focus || el.dataset.action === saved.focus || el.dataset.id === saved.focus || el.getAttribute("href") === saved.focus);
    target?.focus({ preventScroll: true });
    if (saved.caret && typeof target?.setSelectionRange === "function") target.setSelectionRange(...saved.caret);
  }
  scrollTo(saved.x, saved.y);
}

/** A queue's page whose URL names no tab opens on the default tab, and the URL says which. */
function withDefaults(state) {
  if (state.view !== "queue" || state.status || settings.defaultTab() === settings.LATEST) return state;
  const named = { ...state, status: settings.defaultTab() };
  record(named);
  return named;
}

async function show({ refreshing = false } = {}) {
  const mine = ++generation;
  const state = withDefaults(current());
  const [load, render] = VIEWS[state.view] || VIEWS.overview;
  if (!refreshing) main.setAttribute("aria-busy", "true");
  let data;
  try {
    data = await load(state);
  } catch (error) {
    main.removeAttribute("aria-busy");
    if (error.status === 401 || mine !== generation) return;
    if (!refreshing) fill(main, h("div", { class: "empty" }, h("p", { class: "empty-title" }, "Could not load this page."), h("p", null, error.message)));
    return;
  }
  if (mine !== generation) return; // a newer view or refresh is under way
  if (refreshing && document.querySelector("dialog[open]")) return; // never under a question
  const saved = refreshing ? snapshot() : null;
  fill(main, render(state, data, () => show({ refreshing: true })));
  main.removeAttribute("aria-busy");
  main.dataset.view = state.view || "overview";
  if (saved) restore(saved);
  else chrome();
}

function schedule() {
  clearInterval(timer);
  const seconds = settings.refreshSeconds();
  document.getElementById("refresh").value = String(seconds);
  if (seconds > 0) {
    timer = setInterval(() => {
      const [, , live] = VIEWS[current().view] || VIEWS.overview;
      if (live && session.me && !document.hidden) show({ refreshing: true });
    }, seconds * 1000);
  }
}

function theme(next) {
  const chosen = next ?? settings.theme();
  if (chosen === "light" || chosen === "dark") document.documentElement.dataset.theme = chosen;
  else delete document.documentElement.dataset.theme;
  const dark = chosen ? chosen === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  document.getElementById("theme").textContent = dark ? "Light" : "Dark";
}

async function start() {
  if (!session.key()) return signInForm();
  try {
    session.me = await api("GET", "/me", undefined, { quiet: true });
  } catch (error) {
    if (error.status !== 401) signInForm(`The API did not answer: ${error.message}`);
    return;
  }
  await show();
}

whenUnauthorized((message) => {
  session.signOut();
  session.me = null;
  signInForm(`Signed out: ${message}. Sign in again.`);
});
whenChanged(() => (session.me ? show() : start()));
document.addEventListener("click", intercept);
document.getElementById("refresh").addEventListener("change", (event) => {
  settings.setRefreshSeconds(event.target.value);
  schedule();
});
const tab = document.getElementById("default-tab");
fill(tab, settings.TABS.map((name) => h("option", { value: name, selected: name === settings.defaultTab() }, name)));
tab.addEventListener("change", () => settings.setDefaultTab(tab.value));
document.getElementById("theme").addEventListener("click", () => {
  const dark = document.documentElement.dataset.theme ? document.documentElement.dataset.theme === "dark" : matchMedia("(prefers-color-scheme: dark)").matches;
  settings.setTheme(dark ? "light" : "dark");
  theme();
});
document.getElementById("signout").addEventListener("click", () => {
  session.signOut();
  session.me = null;
  notify("Signed out");
  go({ view: "overview" }, { replace: true });
});
theme();
schedule();
start();
