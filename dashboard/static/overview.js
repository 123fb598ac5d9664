// The overview: a card per queue, the last hour's chart, the live runners, whole-queue verbs.

import { api, may, notify } from "./api.js";
import { throughputChart, totals } from "./chart.js";
import { STATES, badge, button, confirmAction, empty, field, nav, section, table } from "./components.js";
import { fill, h } from "./dom.js";
import { DASH, ago, duration, ms, number } from "./format.js";
import { current, record } from "./state.js";

const waiting = (q) => q.counts.pending + q.counts.delayed;
const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
// sort -> [label, order]; ties go by name, so a refresh never shuffles equal cards.
const ORDERS = {
  name: ["name", byName],
  waiting: ["most waiting", (a, b) => waiting(b) - waiting(a) || byName(a, b)],
  failed: ["most failed", (a, b) => b.counts.failed - a.counts.failed || byName(a, b)],
};

/** A read the API may not have yet (an older server): null instead of an error. */
async function optional(path) {
  try {
    return await api("GET", path, undefined, { quiet: true });
  } catch (error) {
    if (error.status === 401) throw error;
    return null;
  }
}

export async function load() {
  const [queues, stats, workers] = await Promise.all([
    api("GET", "/queues"),
    optional("/stats"),
    optional("/workers"),
  ]);
  return { queues: queues.queues, stats, workers: workers?.workers ?? null };
}

function latency(stats, name) {
  const row = stats?.queues?.find((q) => q.name === name);
  if (!row) return null;
  return `wait p95 ${ms(row.wait_ms?.p95)} · run p95 ${ms(row.run_ms?.p95)}`;
}

function card(queue, stats) {
  const runners = queue.runners;
  const warn = waiting(queue) > 0 && runners === 0;
  const counts = STATES.map((state) =>
    nav({ view: "queue", queue: queue.name, status: state }, { class: `count s-${state}`, "data-state": state },
      h("span", { class: "n" }, number(queue.counts[state])), h("span", { class: "l" }, state)),
  );
  const lat = latency(stats, queue.name);
  return h(
    "article",
    { class: "card queue-card", "data-key": queue.name },
    h("header", null,
      h("h3", null, nav({ view: "queue", queue: queue.name }, null, queue.name)),
      queue.paused ? badge("paused", "warn") : badge("running", "ok"),
      warn ? badge("no runners", "danger") : null),
    h("div", { class: "counts" }, counts),
    h("p", { class: "meta" },
      h("span", { "data-field": "oldest" }, "oldest waiting: ", queue.oldest_waiting_s == null ? DASH : duration(queue.oldest_waiting_s)),
      " · ",
      h("span", { "data-field": "runners" }, "runners: ", runners == null ? DASH : String(runners)),
      lat ? [" · ", lat] : null),
  );
}

function runnersPanel(workers) {
  if (workers === null) return section("Runners", h("p", { class: "muted" }, DASH, " (this API does not list runners)"));
  if (!workers.length) return section("Runners", empty("No runner is alive.", "Start one: djs worker (or djs dev)."));
  const rows = workers.map((w) =>
    h("tr", { "data-key": w.id },
      h("td", null, w.id), h("td", null, w.queues?.length ? w.queues.join(", ") : "every queue"),
      h("td", { class: "num" }, `${w.in_hand} / ${w.concurrency}`),
      h("td", null, ago(w.started_at)), h("td", null, ago(w.last_beat)), h("td", null, w.version || DASH)),
  );
  return section("Runners", table(["runner", "queues", { text: "in hand", cls: "num" }, "started", "last beat", "version"], rows, { class: "runners" }));
}

async function eachQueue(queues, verb, done) {
  let n = 0;
  for (const queue of queues) {
    await verb(queue);
    n += 1;
  }
  notify(done(n));
}

function actions(queues, refresh) {
  const failed = queues.reduce((sum, q) => sum + q.counts.failed, 0);
  const running = queues.filter((q) => !q.paused);
  const paused = queues.filter((q) => q.paused);
  const list = [];
  if (may("POST /queues/{name}/pause") && running.length) {
    list.push(button("Pause all", async () => {
      if (!(await confirmAction("Pause all queues", `Pause ${running.length} queue(s)? Their jobs stay where they are and are not claimed until resumed.`, "Pause all"))) return;
      await eachQueue(running, (q) => api("POST", `/queues/${encodeURIComponent(q.name)}/pause`, {}), (n) => `${n} queue(s) paused`);
      refresh();
    }, { "data-action": "pause-all" }));
  }
  if (may("POST /queues/{name}/resume") && paused.length) {
    list.push(button("Resume all", async () => {
      if (!(await confirmAction("Resume all queues", `Resume ${paused.length} paused queue(s)?`, "Resume all"))) return;
      await eachQueue(paused, (q) => api("POST", `/queues/${encodeURIComponent(q.name)}/resume`, {}), (n) => `${n} queue(s) resumed`);
      refresh();
    }, { "data-action": "resume-all" }));
  }
  if (may("POST /jobs/retry") && failed > 0) {
    list.push(button(`Retry all failed (${number(failed)})`, async () => {
      if (!(await confirmAction("Retry all failed jobs", `Retry ${number(failed)} failed job(s) in ${queues.filter((q) => q.counts.failed).length} queue(s)?`, "Retry"))) return;
      let retried = 0;
      for (const q of queues.filter((x) => x.counts.failed)) {
        const answer = await api("POST", "/jobs/retry", { filter: { queue: q.name, status: "failed" }, limit: Math.min(q.counts.failed, 100000) });
        retried += answer.retried;
      }
      notify(`${retried} job(s) retried`);
      refresh();
    }, { "data-action": "retry-all-failed" }));
  }
  return list;
}

/** The queues whose name holds the filter (case-insensitive), in the chosen order. */
export function shown(queues, filter, sort) {
  const needle = (filter || "").toLowerCase();
  const [, order] = ORDERS[sort] || ORDERS.name;
  return queues.filter((q) => q.name.toLowerCase().includes(needle)).sort(order);
}

/** The cards under a name filter and a sort, both kept in the URL and redrawn in place. */
function queueCards(state, queues, stats) {
  const box = h("div", { class: "cards-box" });
  const draw = () => {
    const list = shown(queues, filter.value, sort.value);
    fill(box,
      filter.value ? h("p", { class: "muted", "data-field": "queue-count" }, `${list.length} of ${queues.length} queues`) : null,
      list.length ? h("div", { class: "cards" }, list.map((q) => card(q, stats))) : empty("No queue name holds this text.", "Change or clear the filter."));
  };
  const filter = h("input", { name: "q", type: "search", value: state.q || "", autocomplete: "off", spellcheck: "false", placeholder: "part of a name", oninput: () => { record({ ...current(), q: filter.value }); draw(); } });
  const sort = h("select", { name: "order", onchange: () => { record({ ...current(), q: filter.value, sort: sort.value === "name" ? "" : sort.value }, { replace: false }); draw(); } },
    Object.entries(ORDERS).map(([value, [label]]) => h("option", { value, selected: (ORDERS[state.sort] ? state.sort : "name") === value }, label)));
  const tools = h("div", { class: "row queue-tools", role: "search" }, field("Filter queues", filter), field("Sort", sort));
  draw();
  return [tools, box];
}

export function render(state, data, refresh) {
  const { queues, stats, workers } = data;
  const head = h("div", { class: "page-head" },
    h("h1", null, "Queues"),
    h("div", { class: "row" }, actions(queues, refresh), nav({ view: "add" }, { class: "button primary" }, "Add a job")));
  const cards = queues.length
    ? queueCards(state, queues, stats)
    : empty("No queue has a job yet.", "Submit a first job with the form (Add a job), or: djs submit echo --payload '{\"x\": 1}'", "A queue appears here as soon as it holds a job.");
  const chart = stats
    ? section("Completed and failed per minute", throughputChart(totals(stats)))
    : section("Completed and failed per minute", h("p", { class: "muted" }, DASH, " (this API has no metrics)"));
  return [head, cards, chart, runnersPanel(workers)];
}
