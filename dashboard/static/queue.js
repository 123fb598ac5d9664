// A queue's page: a tab per state with counts, the search box, sorting, pages, bulk verbs.

import { api, may, notify, query } from "./api.js";
import { SEARCH_FIELDS, filterButtons, listParams, selectedButtons, tabStatus } from "./bulk.js";
import { STATES, badge, button, confirmAction, empty, field, nav, statusBadge, table } from "./components.js";
import { h } from "./dom.js";
import { DASH, ago, duration, number } from "./format.js";
import { LATEST } from "./settings.js";
import { go } from "./state.js";

const PAGE = 50;
// Selection survives refreshes and pages; it is cleared when the view's filter changes.
const selection = { scope: "", ids: new Set(), statuses: new Map() };

function scopeOf(state) {
  const { cursor, ...rest } = state;
  return JSON.stringify(rest);
}

export async function load(state) {
  const [queues, page] = await Promise.all([
    api("GET", "/queues"),
    api("GET", `/jobs${query({ ...listParams(state), limit: PAGE, cursor: state.cursor })}`),
  ]);
  const queue = queues.queues.find((q) => q.name === state.queue) || null;
  return { queue, page };
}

function tabs(state, queue) {
  const all = queue ? Object.values(queue.counts).reduce((a, b) => a + b, 0) : null;
  const entries = [[LATEST, "latest", all], ...STATES.map((s) => [s, s, queue ? queue.counts[s] : null])];
  return h("nav", { class: "tabs", "aria-label": "States" }, entries.map(([status, label, n]) => {
    const current = (tabStatus(state) || LATEST) === status;
    return nav({ ...state, status, cursor: "" }, { class: `tab${current ? " current" : ""}`, "aria-current": current ? "page" : null, "data-state": status === LATEST ? "all" : status },
      label, h("span", { class: "n" }, n == null ? DASH : number(n)));
  }));
}

function input(name, state, attrs = {}) {
  return h("input", { name, value: state[name] || "", autocomplete: "off", spellcheck: "false", ...attrs });
}

function searchForm(state) {
  const sort = h("select", { name: "sort", "aria-label": "Sort" },
    [["newest", "newest first"], ["oldest", "oldest first"], ["priority", "highest priority"]].map(([v, t]) =>
      h("option", { value: v, selected: (state.sort || "newest") === v }, t)));
  const form = h("form", { class: "search", role: "search" },
    field("Job id", input("id", state, { inputmode: "numeric", placeholder: "e.g. 42" })),
    field("Type", input("type", state, { placeholder: "e.g. echo" })),
    field("Payload text", input("text", state, { placeholder: "any text in the payload" })),
    field("Payload JSON", input("payload", state, { placeholder: '{"user": 7}' })),
    field("Error text", input("error", state, { placeholder: "e.g. timeout" })),
    field("Created after", input("created_after", state, { placeholder: "2026-01-31T00:00:00Z" })),
    field("Created before", input("created_before", state, { placeholder: "RFC 3339" })),
    field("Sort", sort),
    h("div", { class: "row end" },
      h("button", { type: "submit", class: "primary" }, "Search"),
      button("Clear", () => go({ view: "queue", queue: state.queue, status: state.status }), { class: "ghost" })));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(form));
    if (values.payload) {
      try {
        const parsed = JSON.parse(values.payload);
        if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw new Error("not an object");
      } catch (exc) {
        return notify(`Payload JSON must be a JSON object (${exc.message})`, "error");
      }
    }
    go({ view: "queue", queue: state.queue, status: state.status, ...values, sort: values.sort === "newest" ? "" : values.sort });
  });
  return form;
}

function row(job, refreshSelection) {
  const box = h("input", { type: "checkbox", checked: selection.ids.has(job.id), "aria-label": `select job ${job.id}`, "data-id": job.id });
  box.addEventListener("change", () => {
    if (box.checked) { selection.ids.add(job.id); selection.statuses.set(job.id, job.status); }
    else { selection.ids.delete(job.id); selection.statuses.delete(job.id); }
    refreshSelection();
  });
  return h("tr", { "data-key": String(job.id), "data-state": job.status },
    h("td", { class: "pick" }, box),
    h("td", { class: "num" }, nav({ view: "job", id: job.id }, null, `#${job.id}`)),
    h("td", null, job.type),
    h("td", null, statusBadge(job.status), job.fail_reason ? h("span", { class: "muted" }, ` ${job.fail_reason}`) : null),
    h("td", { class: "num" }, String(job.priority)),
    h("td", { class: "num" }, `${job.attempts_made}/${job.max_attempts}`),
    h("td", null, ago(job.created_at)),
    h("td", { class: "clip" }, job.last_error || (job.status === "completed" && job.finished_at && job.started_at ? duration((new Date(job.finished_at) - new Date(job.started_at)) / 1000) : DASH)));
}

function queueVerbs(state, queue, refresh) {
  const name = state.queue;
  const list = [];
  const path = `/queues/${encodeURIComponent(name)}`;
  if (queue && !queue.paused && may("POST /queues/{name}/pause")) {
    list.push(button("Pause", async () => {
      const waiting = queue.counts.pending + queue.counts.delayed;
      if (!(await confirmAction(`Pause ${name}`, `Pause ${name}? Its ${number(waiting)} waiting job(s) are not claimed until it is resumed.`, "Pause"))) return;
      await api("POST", `${path}/pause`, {});
      notify(`${name} paused`);
      refresh();
    }, { "data-action": "pause" }));
  }
  if (queue?.paused && may("POST /queues/{name}/resume")) {
    list.push(button("Resume", async () => {
      await api("POST", `${path}/resume`, {});
      notify(`${name} resumed`);
      refresh();
    }, { "data-action": "resume", class: "primary" }));
  }
  if (queue?.counts.failed && may("POST /jobs/redrive")) list.push(button("Redrive failed", () => redrive(name, queue.counts.failed, refresh), { "data-action": "redrive" }));
  if (queue && may("POST /queues/{name}/clean")) list.push(nav({ view: "clean", queue: name }, { class: "button" }, "Clean…"));
  list.push(nav({ view: "add", queue: name }, { class: "button primary" }, "Add a job"));
  return list;
}

async function redrive(name, failed, refresh) {
  if (!(await confirmAction(`Redrive ${name}`, `Retry the ${number(failed)} failed job(s) of ${name}, a thousand at a time?`, "Redrive"))) return;
  let cursor = null;
  let retried = 0;
  for (;;) {
    const answer = await api("POST", "/jobs/redrive", { filter: { queue: name }, limit: 1000, cursor });
    retried += answer.retried;
    cursor = answer.next_cursor;
    if (!answer.more) break;
  }
  notify(`${retried} job(s) retried`);
  refresh();
}

export function render(state, data, refresh) {
  const { queue, page } = data;
  if (selection.scope !== scopeOf(state)) {
    selection.scope = scopeOf(state);
    selection.ids.clear();
    selection.statuses.clear();
  }
  const bar = h("div", { class: "bulkbar row" });
  const touched = () => { selection.ids.clear(); selection.statuses.clear(); };
  const refreshSelection = () => {
    const statuses = new Set(selection.statuses.values());
    bar.replaceChildren(...filterButtons(state, queue?.counts, refresh),
      ...(selection.ids.size ? selectedButtons(selection.ids, statuses, touched, refresh) : []));
  };
  refreshSelection();
  const searching = SEARCH_FIELDS.some((f) => state[f]) || state.type || state.created_after || state.created_before;
  const rows = page.jobs.map((job) => row(job, refreshSelection));
  const list = rows.length
    ? table([{ text: "", cls: "pick" }, { text: "id", cls: "num" }, "type", "status", { text: "prio", cls: "num" }, { text: "attempts", cls: "num" }, "created", "error / duration"], rows, { class: "jobs" })
    : empty(searching ? "No job matches this search." : `No ${tabStatus(state) || ""} job in ${state.queue}.`.replace("  ", " "),
        searching ? "Change or clear the search." : "Add one with the form (Add a job), or: djs submit echo --queue " + state.queue);
  const pager = h("div", { class: "row pager" },
    state.cursor ? nav({ ...state, cursor: "" }, { class: "button ghost" }, "First page") : null,
    page.next_cursor ? nav({ ...state, cursor: page.next_cursor }, { class: "button", "data-action": "next" }, "Next page") : null);
  return [
    h("div", { class: "page-head" },
      h("h1", null, nav({ view: "overview" }, { class: "crumb" }, "Queues"), " / ", state.queue),
      queue?.paused ? badge("paused", "warn") : null,
      queue && queue.runners === 0 && queue.counts.pending + queue.counts.delayed > 0 ? badge("no runners", "danger") : null,
      h("div", { class: "row" }, queueVerbs(state, queue, refresh))),
    tabs(state, queue),
    h("details", { class: "panel search-box", open: searching, "data-key": "search" }, h("summary", null, "Search and sort"), searchForm(state)),
    bar, list, pager,
  ];
}
