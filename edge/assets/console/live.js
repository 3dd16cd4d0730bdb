// The live panel: the newest refusals, failures, dead letters and parked events, polled
// every few seconds, pausable. Only the status line is announced, not each refresh.

import * as api from "./api.js";
import { h, show } from "./dom.js";
import { time } from "./format.js";
import { badge } from "./parts.js";
import { timelineHref } from "./routes.js";

const POLL_MS = 3000;
const SHOWN = 15;

/** Starts polling into the panel's elements; the button pauses and resumes. */
export function start({ list, status, toggle }) {
  let paused = false;
  let timer;
  const poll = async () => {
    clearTimeout(timer);
    if (!paused && !document.hidden) await refresh(list, status);
    timer = setTimeout(poll, POLL_MS);
  };
  toggle.addEventListener("click", () => {
    paused = !paused;
    toggle.setAttribute("aria-pressed", String(paused));
    toggle.textContent = paused ? "Resume" : "Pause";
    status.textContent = paused ? "Paused." : "Resuming…";
    if (!paused) poll();
  });
  document.addEventListener("visibilitychange", () => document.hidden || paused || poll());
  poll();
}

async function refresh(list, status) {
  const result = await api.timelines({ failed: true, limit: SHOWN });
  if (!result.ok) {
    const why = result.problem?.title ?? "no answer";
    status.textContent = `Cannot read failures (${result.status ? `HTTP ${result.status}` : "edge unreachable"}: ${why}).`;
    return;
  }
  const { items } = result.body;
  status.textContent = `${items.length ? items.length : "No"} recent failure${items.length === 1 ? "" : "s"} · updated ${new Date().toLocaleTimeString()}`;
  // Redraw only on change, so a keyboard user's focus in the list survives a poll.
  const key = JSON.stringify(items);
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  show(list, items.map(entry));
}

function entry(item) {
  return h(
    "li",
    { "data-correlation-id": item.correlationId },
    h("a", { href: timelineHref(item.correlationId) },
      h("strong", {}, item.commandType ?? "command"), item.aggregateId ? ` on ${item.aggregateId}` : ""),
    " ",
    badge(item.outcome),
    item.failure ? h("div", { class: "failure-code" }, h("code", {}, item.failure)) : null,
    h("div", { class: "muted" }, "correlationId ", h("code", {}, item.correlationId)),
    h("div", { class: "muted" }, h("time", { datetime: item.lastAt }, time(item.lastAt))),
  );
}
