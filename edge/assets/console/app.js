// The support console: routes the URL's hash to a view, keeps the search form in step with
// it, and runs the live failures panel.

import { show } from "./dom.js";
import { localInput, rfc3339 } from "./format.js";
import * as live from "./live.js";
import * as officer from "./officer.js";
import { parse, searchHref } from "./routes.js";
import * as search from "./search.js";
import * as timeline from "./timeline.js";

const view = document.getElementById("view");
const form = document.getElementById("search");
let shown = 0; // the newest navigation; an older one's late answer is dropped
let refresh;

const VIEWS = {
  search: (state) => search.render(state.query),
  timeline: (state) => timeline.render(state.id),
  officer: (state) => officer.render(state.id),
};

async function navigate({ focus }) {
  const state = parse(location.hash);
  const ticket = ++shown;
  clearTimeout(refresh);
  if (state.view === "search") fillForm(state.query);
  document.title = `${titleOf(state)} · Ackgate support console`;
  view.setAttribute("aria-busy", "true");
  const answer = await VIEWS[state.view](state);
  if (ticket !== shown || answer === null) return;
  const { nodes, again } = Array.isArray(answer) ? { nodes: answer } : answer;
  show(view, nodes);
  view.setAttribute("aria-busy", "false");
  // Move focus to the new view's heading, as a page load would, so a screen reader reads it
  // and Tab continues from there; a self-refresh leaves focus alone.
  if (focus) view.querySelector("h2")?.focus();
  if (again) refresh = setTimeout(() => navigate({ focus: false }), again);
}

function titleOf(state) {
  if (state.view === "timeline") return `Timeline ${state.id}`;
  if (state.view === "officer") return `Officer ${state.id}`;
  return state.query.q ? `Search ${state.query.q}` : "Search";
}

function fillForm({ q, from, to, failed }) {
  form.elements.q.value = q;
  form.elements.from.value = localInput(from);
  form.elements.to.value = localInput(to);
  form.elements.failed.checked = failed;
}

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const { q, from, to, failed } = form.elements;
  const hash = searchHref({ q: q.value.trim(), from: rfc3339(from.value), to: rfc3339(to.value), failed: failed.checked });
  // The same search again still runs, though the hash does not change.
  if (location.hash === hash) navigate({ focus: true });
  else location.hash = hash;
});

document.addEventListener("click", (event) => {
  if (event.target.closest("[data-action=reload]")) navigate({ focus: true });
});

// "/" jumps to the search box, as on many sites, unless the user is typing somewhere.
document.addEventListener("keydown", (event) => {
  const typing = event.target.closest("input, textarea, select, [contenteditable]");
  if (event.key !== "/" || typing || event.ctrlKey || event.metaKey || event.altKey) return;
  event.preventDefault();
  form.elements.q.focus();
});

window.addEventListener("hashchange", () => navigate({ focus: true }));
live.start({
  list: document.getElementById("live-list"),
  status: document.getElementById("live-status"),
  toggle: document.getElementById("live-toggle"),
});
navigate({ focus: false });
