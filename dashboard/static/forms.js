// Add a job (validated here before it is sent; the API's 422 details shown beside each
// field), clean a queue, and the audit log.

import { ApiError, api, may, notify, query } from "./api.js";
import { button, confirmAction, empty, field, nav, section, table } from "./components.js";
import { h } from "./dom.js";
import { DASH, json, number, when } from "./format.js";
import { go } from "./state.js";

const NAME = /^[A-Za-z0-9_.:-]{1,100}$/;
// field -> [label, placeholder, check(value) -> error text or null, parse]
const INT = (lo, hi) => (v) => (/^\d+$/.test(v) && Number(v) >= lo && Number(v) <= hi ? null : `a whole number from ${lo} to ${hi}`);
const FIELDS = {
  type: ["Type (handler)", "echo", (v) => (NAME.test(v) ? null : "letters, digits and _ . : - (1 to 100)"), String],
  queue: ["Queue", "default", (v) => (NAME.test(v) ? null : "letters, digits and _ . : - (1 to 100)"), String],
  payload: ["Payload (a JSON object)", '{"x": 1}', objectProblem, JSON.parse],
  priority: ["Priority (0–1000, higher first)", "0", INT(0, 1000), Number],
  attempts: ["Attempts (1–100)", "3", INT(1, 100), Number],
  delay_ms: ["Delay (ms)", "none", INT(0, 365 * 24 * 3600 * 1000), Number],
  timeout_s: ["Timeout (s)", "the handler's", (v) => (Number(v) > 0 && Number(v) <= 86400 ? null : "a number of seconds above 0, at most 86400"), Number],
  backoff: ["Backoff (JSON)", '{"type": "fixed", "delay_ms": 500}', objectProblem, JSON.parse],
  idempotency_key: ["Idempotency key", "none", (v) => (v.length <= 200 ? null : "at most 200 characters"), String],
};
const REQUIRED = new Set(["type"]);

function objectProblem(text) {
  try {
    const value = JSON.parse(text);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? null : "must be a JSON object: {...}";
  } catch (exc) {
    return `not valid JSON: ${exc.message}`;
  }
}

export async function loadAdd(state) {
  if (!state.copy) return {};
  return api("GET", `/jobs/${encodeURIComponent(state.copy)}`).catch(() => ({}));
}

function initial(state, copied) {
  const values = { queue: state.queue || "default", payload: "{}" };
  if (copied.id) {
    Object.assign(values, { type: copied.type, queue: copied.queue, payload: json(copied.payload), priority: String(copied.priority), attempts: String(copied.max_attempts) });
  }
  return values;
}

function showErrors(form, errors) {
  for (const slot of form.querySelectorAll(".field-error")) slot.textContent = "";
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const [name, message] of errors) {
    const slot = form.querySelector(`.field-error[data-field="${CSS.escape(name)}"]`) || form.querySelector('.field-error[data-field="form"]');
    slot.textContent = slot.textContent ? `${slot.textContent}; ${message}` : message;
    form.elements[name]?.setAttribute("aria-invalid", "true");
  }
}

function collect(form) {
  const body = {};
  const errors = [];
  for (const [name, [, , check, parse]] of Object.entries(FIELDS)) {
    const raw = form.elements[name].value.trim();
    if (!raw) {
      if (REQUIRED.has(name)) errors.push([name, "required"]);
      continue;
    }
    const problem = check(raw);
    if (problem) errors.push([name, problem]);
    else body[name] = parse(raw);
  }
  return { body, errors };
}

async function submit(form) {
  const { body, errors } = collect(form);
  showErrors(form, errors);
  if (errors.length) return;
  try {
    const job = await api("POST", "/jobs", body);
    notify(`Job #${job.id} ${job.created ? "submitted" : "already existed (same idempotency key)"}`);
    go({ view: "job", id: job.id });
  } catch (error) {
    if (!(error instanceof ApiError) || !Array.isArray(error.details)) {
      showErrors(form, [["form", error.message]]);
      return;
    }
    showErrors(form, error.details.map((d) => [String(d.path || "form").split(".")[0], `${d.path}: ${d.message}`]));
  }
}

export function renderAdd(state, copied) {
  const values = initial(state, copied);
  const rows = Object.entries(FIELDS).map(([name, [label, placeholder]]) => {
    const big = name === "payload" || name === "backoff";
    const input = big
      ? h("textarea", { name, rows: name === "payload" ? 8 : 2, placeholder, spellcheck: "false", "aria-describedby": `err-${name}` })
      : h("input", { name, placeholder, autocomplete: "off", spellcheck: "false", "aria-describedby": `err-${name}` });
    input.value = values[name] ?? "";
    return h("div", { class: big ? "wide" : "" }, field(label, input), h("p", { class: "field-error", id: `err-${name}`, "data-field": name, "aria-live": "polite" }));
  });
  const form = h("form", { class: "add-job grid" }, rows,
    h("p", { class: "field-error", "data-field": "form", "aria-live": "polite" }),
    h("div", { class: "row end wide" }, h("button", { type: "submit", class: "primary", "data-action": "submit" }, "Submit job")));
  form.addEventListener("submit", (event) => { event.preventDefault(); submit(form); });
  return [h("div", { class: "page-head" }, h("h1", null, nav({ view: "overview" }, { class: "crumb" }, "Queues"), " / Add a job")),
    may("POST /jobs") ? section("New job", form) : empty("This key may not submit jobs.")];
}

export async function loadClean(state) {
  const queues = await api("GET", "/queues");
  return queues.queues.find((q) => q.name === state.queue) || null;
}

export function renderClean(state, queue) {
  const status = h("select", { name: "status" }, ["completed", "failed", "cancelled"].map((s) => h("option", { value: s }, s)));
  const how = h("select", { name: "how" }, h("option", { value: "age_s" }, "older than (seconds)"), h("option", { value: "keep" }, "beyond the newest N"));
  const amount = h("input", { name: "amount", value: "3600", inputmode: "numeric" });
  const go_ = button("Clean", async () => {
    const n = Number(amount.value);
    if (!/^\d+$/.test(amount.value)) return notify("Give a whole number", "error");
    const total = queue ? queue.counts[status.value] : 0;
    const touches = how.value === "keep" ? `${number(Math.max(0, total - n))} of its ${number(total)}` : `those of its ${number(total)} finished more than ${n} s ago (at most ${number(total)})`;
    if (!(await confirmAction(`Clean ${state.queue}`, `Remove ${status.value} jobs of ${state.queue}: ${touches}. Removed jobs are gone with their history.`, "Remove"))) return;
    const answer = await api("POST", `/queues/${encodeURIComponent(state.queue)}/clean`, { status: status.value, [how.value]: n });
    notify(`${answer.removed} job(s) removed`);
    go({ view: "queue", queue: state.queue, status: status.value });
  }, { class: "danger", "data-action": "clean" });
  return [h("div", { class: "page-head" }, h("h1", null, nav({ view: "queue", queue: state.queue }, { class: "crumb" }, state.queue), " / Clean")),
    section("Remove finished jobs", h("div", { class: "row wrap" }, field("State", status), field("Which", how), field("Amount", amount), go_))];
}

export async function loadAudit(state) {
  return api("GET", `/audit${query({ cursor: state.cursor, limit: 100 })}`);
}

export function renderAudit(state, page) {
  const rows = page.entries.map((e) => h("tr", { "data-key": String(e.id) },
    h("td", null, when(e.at)), h("td", null, `${e.key_name} (${e.role})`), h("td", null, e.verb),
    h("td", null, e.target ?? DASH), h("td", { class: "clip" }, e.filter ? JSON.stringify(e.filter) : DASH),
    h("td", { class: "num" }, e.jobs == null ? DASH : number(e.jobs))));
  return [h("div", { class: "page-head" }, h("h1", null, "Audit log")),
    rows.length ? table(["at", "key", "verb", "target", "selection", { text: "jobs", cls: "num" }], rows, { class: "audit" }) : empty("No admin action yet."),
    h("div", { class: "row pager" }, page.next_cursor ? nav({ view: "audit", cursor: page.next_cursor }, { class: "button" }, "Older") : null)];
}
