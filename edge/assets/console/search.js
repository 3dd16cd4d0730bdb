// The search view: one box that takes a correlationId, a commandId or a badge, narrowed by
// an optional time range and "failures only". An exact correlationId opens its timeline.

import * as api from "./api.js";
import { h } from "./dom.js";
import { time } from "./format.js";
import { commandTable, problem } from "./parts.js";
import { timelineHref } from "./routes.js";

/** Renders the results of `query` (`{ q, from, to, failed }`), or opens a timeline. */
export async function render(query) {
  const filters = { from: query.from, to: query.to, failed: query.failed, limit: 50 };
  if (!query.q) return listing(await api.timelines(filters), heading(query), caption(query));
  const [exact, byCommand, byAggregate] = await Promise.all([
    api.timeline(query.q),
    api.timelines({ ...filters, commandId: query.q }),
    api.timelines({ ...filters, aggregateId: query.q }),
  ]);
  if (exact.ok) {
    // Replace rather than push, so Back leaves the console's search rather than bouncing here.
    location.replace(timelineHref(query.q));
    return null;
  }
  const failedCall = [byCommand, byAggregate].find((r) => !r.ok);
  if (failedCall) return listing(failedCall, heading(query), "The search");
  const items = merge(byCommand.body.items, byAggregate.body.items);
  return listing({ ok: true, body: { items } }, heading(query), `Commands matching “${query.q}”`);
}

function heading({ q, failed }) {
  if (q) return `Search: ${q}`;
  return failed ? "Failed commands" : "Recent commands";
}

function caption({ from, to }) {
  if (!from && !to) return "Commands";
  return `Commands with a step from ${from ? time(from) : "the start"} to ${to ? time(to) : "now"}`;
}

function listing(result, title, caption) {
  if (!result.ok) return [h("h2", { tabindex: "-1" }, title), problem(result, caption)];
  return [
    h("h2", { tabindex: "-1" }, title),
    commandTable(result.body.items, caption),
    h("p", { class: "muted" }, "An exact correlationId opens its timeline; a commandId or a badge lists its commands, newest first."),
  ];
}

/** Both lists as one, each command once, newest first. */
function merge(...lists) {
  const byId = new Map();
  for (const item of lists.flat()) byId.set(item.correlationId, item);
  return [...byId.values()].sort((a, b) => (a.lastAt < b.lastAt ? 1 : -1));
}
