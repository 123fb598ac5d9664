// A job's page: its facts, payload and result, progress, logs, every attempt with its
// traceback, the events timeline, and the verbs its state allows.

import { api, may, notify } from "./api.js";
import { badge, button, confirmAction, copyButton, definitions, empty, nav, section, statusBadge, table } from "./components.js";
import { h } from "./dom.js";
import { DASH, ago, duration, json, ms, when } from "./format.js";
import { go } from "./state.js";

export async function load(state) {
  return api("GET", `/jobs/${encodeURIComponent(state.id)}`, undefined, { quiet: true }).catch((error) => {
    if (error.status === 404 || error.status === 422) return { missing: error.message };
    throw error;
  });
}

function jsonBlock(title, value, key) {
  const text = json(value);
  return h("details", { class: "json", open: true, "data-key": key },
    h("summary", null, title, " ", copyButton(() => text)),
    h("pre", { class: "code", "data-field": key }, text));
}

function facts(job) {
  const took = job.started_at && job.finished_at ? duration((new Date(job.finished_at) - new Date(job.started_at)) / 1000) : DASH;
  return definitions([
    ["id", `#${job.id}`], ["type", job.type],
    ["queue", nav({ view: "queue", queue: job.queue }, null, job.queue)],
    ["status", [statusBadge(job.status), job.cancel_requested && job.status === "active" ? badge("cancel requested", "warn") : null], "status"],
    ["priority", String(job.priority)], ["attempt", `${job.attempts_made} of ${job.max_attempts}` + (job.attempts_total > job.attempts_made ? ` (${job.attempts_total} in all)` : ""), "attempt"],
    ["created", when(job.created_at)], ["run at", job.run_at ? `${when(job.run_at)} (${ago(job.run_at)})` : DASH],
    ["started", when(job.started_at)], ["finished", when(job.finished_at)], ["duration", took],
    ["worker", job.worker || DASH], ["timeout", job.timeout_s ? `${job.timeout_s} s` : DASH],
    ["fail reason", job.fail_reason || DASH, "fail_reason"], ["last error", job.last_error || DASH, "last_error"],
  ]);
}

function progress(job) {
  if (job.progress === null || job.progress === undefined) return null;
  const pct = Math.max(0, Math.min(100, Number(job.progress)));
  return section("Progress", h("progress", { max: 100, value: pct, "aria-label": "progress" }), h("span", { class: "muted" }, ` ${pct.toFixed(0)} %`));
}

/** An attempt's log lines with a filter (case-insensitive substring); lines keep their numbers. */
function logs(a) {
  const lines = a.logs.map((line, i) => h("li", { value: i + 1 }, line));
  const count = h("span", { class: "muted", "data-field": "log-count", "aria-live": "polite" });
  const filter = h("input", {
    name: `log-filter-${a.attempt}`, type: "search", autocomplete: "off", spellcheck: "false",
    placeholder: "filter lines", "aria-label": `Filter the log lines of attempt ${a.attempt}`,
    oninput: () => {
      const needle = filter.value.toLowerCase();
      let n = 0;
      a.logs.forEach((line, i) => {
        lines[i].hidden = Boolean(needle) && !String(line).toLowerCase().includes(needle);
        if (!lines[i].hidden) n += 1;
      });
      count.textContent = needle ? `${n} of ${a.logs.length} lines` : "";
    },
  });
  return h("details", { class: "logs", "data-key": `log-${a.attempt}`, open: true },
    h("summary", null, `Log (${a.logs.length} line${a.logs.length === 1 ? "" : "s"})`),
    h("div", { class: "row log-tools" }, filter, count),
    h("ol", { class: "code loglines" }, lines));
}

function attempt(a) {
  return h("article", { class: "attempt card", "data-key": `attempt-${a.attempt}`, "data-state": a.outcome },
    h("header", null, h("h3", null, `Attempt ${a.attempt}`), badge(a.outcome, `s-${a.outcome}`),
      h("span", { class: "muted" }, ` ${when(a.started_at)} · ${ms(a.duration_ms)} · ${a.worker || DASH}`)),
    a.error_type || a.error_message ? h("p", { class: "error-line" }, h("strong", null, a.error_type || "error"), ": ", a.error_message || "") : null,
    a.traceback ? h("details", { class: "traceback", "data-key": `tb-${a.attempt}`, open: true },
      h("summary", null, "Traceback ", copyButton(() => a.traceback)), h("pre", { class: "code" }, a.traceback)) : null,
    a.logs?.length ? logs(a) : null);
}

function timeline(job) {
  const rows = job.events.map((e, i) => h("tr", { "data-key": `ev-${i}` },
    h("td", null, when(e.at)), h("td", null, e.from_status || DASH, " → ", e.to_status), h("td", null, e.cause)));
  const more = job.events_total > job.events.length ? h("p", { class: "muted" }, `the newest ${job.events.length} of ${job.events_total} events`) : null;
  return section("Timeline", table(["at", "change", "cause"], rows, { class: "events" }), more);
}

function verb(job, name, route, label, states, onDone, cls = "") {
  if (!states.includes(job.status) || !may(route)) return null;
  return button(label, async () => {
    const extra = job.status === "active" && name === "cancel" ? " It is running: its handler is asked to stop, and the job fails with reason cancelled." : "";
    if (!(await confirmAction(`${label} job #${job.id}`, `${label} 1 job (#${job.id}, ${job.status}).${extra}`, label))) return;
    if (name === "remove") await api("DELETE", `/jobs/${job.id}`);
    else await api("POST", `/jobs/${job.id}/${name}`, {});
    notify(`${label}: job #${job.id}`);
    onDone(name);
  }, { "data-action": name, class: cls });
}

function verbs(job, refresh) {
  const after = (name) => (name === "remove" ? go({ view: "queue", queue: job.queue }) : refresh());
  return [
    verb(job, "retry", "POST /jobs/{raw_id}/retry", "Retry", ["failed", "cancelled", "completed"], after, "primary"),
    verb(job, "promote", "POST /jobs/{raw_id}/promote", "Promote", ["delayed"], after, "primary"),
    job.cancel_requested ? null : verb(job, "cancel", "POST /jobs/{raw_id}/cancel", "Cancel", ["pending", "delayed", "active"], after),
    verb(job, "remove", "DELETE /jobs/{raw_id}", "Remove", ["pending", "delayed", "completed", "failed", "cancelled"], after, "danger"),
    nav({ view: "add", queue: job.queue, copy: job.id }, { class: "button ghost" }, "Duplicate"),
  ];
}

export function render(state, job, refresh) {
  if (job.missing) return [h("h1", null, `Job ${state.id}`), empty("No such job.", job.missing, "It may have been removed, or it belongs to another key.")];
  const attempts = [...job.history].sort((a, b) => b.attempt - a.attempt);
  return [
    h("div", { class: "page-head" },
      h("h1", null, nav({ view: "queue", queue: job.queue }, { class: "crumb" }, job.queue), " / ", `#${job.id}`, " ", job.type),
      statusBadge(job.status),
      h("div", { class: "row" }, verbs(job, refresh))),
    section("Job", facts(job)),
    progress(job),
    h("div", { class: "two" }, jsonBlock("Payload", job.payload, "payload"), jsonBlock("Result", job.result, "result")),
    section(`Attempts (${job.history.length})`, attempts.length ? attempts.map(attempt) : h("p", { class: "muted" }, "No attempt yet: the job has not run.")),
    timeline(job),
  ];
}
