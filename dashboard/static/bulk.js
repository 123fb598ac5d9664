// Verbs on many jobs: on the selected rows, or on every job the current filter names. Each
// asks first, saying how many jobs it touches (counted by the API, never guessed).

import { api, may, notify, query } from "./api.js";
import { button, confirmAction } from "./components.js";
import { number } from "./format.js";
import { LATEST } from "./settings.js";

// verb -> [route, the states it applies to, the answer's count field, label]
export const VERBS = {
  retry: ["POST /jobs/retry", ["failed", "cancelled", "completed"], "retried", "Retry"],
  promote: ["POST /jobs/promote", ["delayed"], "promoted", "Promote"],
  cancel: ["POST /jobs/cancel", ["pending", "delayed", "active"], "cancelled", "Cancel"],
  remove: ["POST /jobs/remove", ["pending", "delayed", "completed", "failed", "cancelled"], "removed", "Remove"],
};
const MAX_BULK = 100000;
const MAX_IDS = 1000;
const COUNT_PAGES = 10;

export const SEARCH_FIELDS = ["id", "text", "payload", "error"];

/** The state a view's tab filters on, or undefined on the tab of every state. */
export const tabStatus = (state) => (state.status && state.status !== LATEST ? state.status : undefined);

/** The GET /jobs parameters of the view (the search box and the tab). */
export function listParams(state) {
  return {
    queue: state.queue, status: tabStatus(state), type: state.type,
    created_after: state.created_after, created_before: state.created_before,
    ids: state.id, text: state.text, payload: state.payload, error: state.error,
    sort: state.sort && state.sort !== "newest" ? state.sort : undefined,
  };
}

/** The bulk filter of the view, or null where it is a search a bulk filter cannot say. */
export function bulkFilter(state) {
  if (SEARCH_FIELDS.some((name) => state[name])) return null;
  const filter = {};
  for (const name of ["queue", "type", "created_after", "created_before"]) {
    if (state[name]) filter[name] = state[name];
  }
  if (tabStatus(state)) filter.status = tabStatus(state);
  return filter;
}

/** Ids of the jobs the view's search matches, walking pages (at most MAX_IDS). */
async function matchingIds(state) {
  const ids = [];
  let cursor = null;
  do {
    const page = await api("GET", `/jobs${query({ ...listParams(state), limit: 500, cursor })}`);
    ids.push(...page.jobs.map((j) => j.id));
    cursor = page.next_cursor;
  } while (cursor && ids.length < MAX_IDS);
  return { ids: ids.slice(0, MAX_IDS), more: Boolean(cursor) || ids.length > MAX_IDS };
}

/** How many jobs a filter names: the queue's count when it is queue + state, else counted. */
async function countOf(state, filter, counts) {
  const plain = Object.keys(filter).every((k) => k === "queue" || k === "status");
  if (plain && filter.queue && filter.status && counts) return { n: counts[filter.status], more: false };
  let n = 0;
  let cursor = null;
  for (let page = 0; page < COUNT_PAGES; page += 1) {
    const answer = await api("GET", `/jobs${query({ ...listParams(state), limit: 500, cursor })}`);
    n += answer.jobs.length;
    cursor = answer.next_cursor;
    if (!cursor) return { n, more: false };
  }
  return { n, more: true };
}

async function perform(verb, body, touched, refresh) {
  const [route, , field, label] = VERBS[verb];
  const answer = await api("POST", route.split(" ")[1], body);
  let done = `${label}: ${number(answer[field])} job(s)`;
  if (verb === "cancel" && answer.cancel_requested?.length) done += `, ${answer.cancel_requested.length} active job(s) asked to stop`;
  notify(done);
  touched();
  refresh();
}

/** Buttons acting on the selected ids. */
export function selectedButtons(selected, statuses, touched, refresh) {
  return Object.entries(VERBS)
    .filter(([, [route, applies]]) => may(route) && [...statuses].some((s) => applies.includes(s)))
    .map(([verb, [, , , label]]) => button(`${label} selected (${selected.size})`, async () => {
      const ids = [...selected];
      if (!(await confirmAction(`${label} ${ids.length} job(s)`, `${label} the ${ids.length} selected job(s)? Jobs in a state the verb does not apply to are left as they are.`, label))) return;
      await perform(verb, { filter: { ids }, limit: ids.length }, touched, refresh);
    }, { "data-action": `${verb}-selected`, class: verb === "remove" ? "danger" : "" }));
}

/** Buttons acting on every job of the current filter (a tab whose state the verb applies to). */
export function filterButtons(state, counts, refresh) {
  const status = tabStatus(state);
  if (!status) return [];
  return Object.entries(VERBS)
    .filter(([, [route, applies]]) => may(route) && applies.includes(status))
    .map(([verb, [, , , label]]) => button(`${label} all ${status}`, async () => {
      const filter = bulkFilter(state);
      let body;
      let text;
      if (filter) {
        const { n, more } = await countOf(state, filter, counts);
        text = `${label} ${more ? "at least " : ""}${number(n)} ${status} job(s) of this filter?`;
        body = { filter, limit: Math.min(Math.max(n, 1), MAX_BULK) };
        if (n === 0) return notify(`No ${status} job matches`);
      } else {
        const { ids, more } = await matchingIds(state);
        if (!ids.length) return notify("No job matches the search");
        text = `${label} the ${number(ids.length)} job(s) this search matches${more ? ` (the first ${MAX_IDS}; run it again for the rest)` : ""}?`;
        body = { filter: { ids, status }, limit: ids.length };
      }
      if (!(await confirmAction(`${label} ${status} jobs`, text, label))) return;
      await perform(verb, body, () => {}, refresh);
    }, { "data-action": `${verb}-all`, class: verb === "remove" ? "danger" : "" }));
}
