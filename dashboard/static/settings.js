// What this browser remembers (local storage): the refresh interval, the theme, and the tab a
// queue's page opens on when its URL names none.

import { STATES } from "./components.js";

const REFRESH = "djs.refresh";
const THEME = "djs.theme";
const TAB = "djs.tab";

/** The tab that shows every state: named in the URL so a default tab cannot override it. */
export const LATEST = "latest";
export const TABS = [LATEST, ...STATES];

export const refreshSeconds = () => Number(localStorage.getItem(REFRESH) ?? "5");
export const setRefreshSeconds = (value) => localStorage.setItem(REFRESH, String(value));

export const theme = () => localStorage.getItem(THEME);
export const setTheme = (value) => localStorage.setItem(THEME, value);

export function defaultTab() {
  const chosen = localStorage.getItem(TAB);
  return TABS.includes(chosen) ? chosen : LATEST;
}
export const setDefaultTab = (value) => localStorage.setItem(TAB, TABS.includes(value) ? value : LATEST);
