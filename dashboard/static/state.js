// The URL's query string is the state: view, queue, tab, filters, sort, cursor, job id.
// Every view can be linked and refreshed; the back button walks the views.

export function current() {
  return Object.fromEntries(new URLSearchParams(location.search));
}

export function href(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, String(value));
  }
  return `${location.pathname}?${search.toString()}`;
}

let onChange = () => {};
export function whenChanged(handler) {
  onChange = handler;
  addEventListener("popstate", () => onChange());
}

/** Go to a new state (a new history entry, unless replace). */
export function go(params, { replace = false } = {}) {
  const target = href(params);
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
  onChange();
}

/** Say the new state in the URL without drawing the view again (a filter typed in place). */
export function record(params, { replace = true } = {}) {
  const target = href(params);
  if (replace) history.replaceState(null, "", target);
  else history.pushState(null, "", target);
}

/** Links inside the app navigate without reloading; a modified click opens a new tab. */
export function intercept(event) {
  const anchor = event.target.closest?.("a[data-nav]");
  if (!anchor || event.defaultPrevented || event.button !== 0) return;
  if (event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const url = new URL(anchor.href);
  if (url.origin !== location.origin || url.pathname !== location.pathname) return;
  event.preventDefault();
  history.pushState(null, "", url.pathname + url.search);
  onChange();
}
