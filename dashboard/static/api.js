// The one fetch wrapper: adds the key, maps 401 (sign in again), 403 (the role may not),
// 422 (details beside the fields), shows every other failure in one place (#notice).

const KEY = "djs.key";
const meta = (name) => document.querySelector(`meta[name="${name}"]`)?.content ?? "";
const BASE = meta("djs-api-url");

export const ROLES = ["submitter", "viewer", "operator", "admin"];
const MINIMUM = JSON.parse(meta("djs-roles") || "{}");

export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

export const session = {
  key: () => sessionStorage.getItem(KEY),
  signIn: (key) => sessionStorage.setItem(KEY, key),
  signOut: () => sessionStorage.removeItem(KEY),
  me: null,
};

/** May the signed-in key's role call this route ("POST /jobs/{raw_id}/retry")? */
export function may(route) {
  const least = MINIMUM[route];
  if (!least || !session.me) return false;
  const role = session.me.role;
  // A scrape key ("metrics") stands outside the ladder: GET /metrics only (common/apikeys.py).
  if (least === "metrics" || role === "metrics") return role === least || role === "admin";
  return ROLES.indexOf(role) >= ROLES.indexOf(least);
}

let onUnauthorized = () => {};
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

/** Call the API; resolves to the parsed JSON body, or rejects with an ApiError. */
export async function api(method, path, body, { quiet = false } = {}) {
  const headers = { Authorization: `Bearer ${session.key() || ""}` };
  const init = { method, headers, credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(BASE + path, init);
  } catch (exc) {
    const error = new ApiError(0, "network", `the API did not answer (${exc.message})`);
    if (!quiet) notify(error.message, "error");
    throw error;
  }
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = null;
  }
  if (response.ok) return parsed;
  const detail = parsed?.error || {};
  const error = new ApiError(response.status, detail.code, detail.message, detail.details);
  if (response.status === 401) {
    onUnauthorized(error.message || "the key is not valid");
  } else if (!quiet && response.status !== 422) {
    notify(`${method} ${path}: ${error.message}`, "error");
  }
  throw error;
}

let noticeTimer = null;
/** The one place failures (and confirmations of done actions) are shown. */
export function notify(text, kind = "info") {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { box.hidden = true; }, kind === "error" ? 12000 : 5000);
}
