// Pieces more than one view shows: a problem, an outcome badge, a table of commands.

import { h } from "./dom.js";
import { outcome, time } from "./format.js";
import { officerHref, timelineHref } from "./routes.js";

/** What went wrong with a call, in words: status, title, detail, code and correlationId. */
export function problem(result, what) {
  const { status, problem: p = {} } = result;
  const heading = status === 404 ? `${what}: not found` : `${what}: could not be read`;
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("h2", {}, heading),
    h("p", {}, status ? `HTTP ${status}` : "No answer", p.title ? ` — ${p.title}` : ""),
    p.detail ? h("p", {}, p.detail) : null,
    p.code ? h("p", { class: "muted" }, "code ", h("code", {}, p.code)) : null,
    p.correlationId ? h("p", { class: "muted" }, "correlationId of this query ", h("code", {}, p.correlationId)) : null,
    status === 503 ? h("p", {}, "A service behind the edge is unavailable; try again in a moment.") : null,
  );
}

/** The outcome as a badge; its text says it, the colour only repeats it. */
export function badge(name) {
  const { label, tone } = outcome(name);
  return h("span", { class: `badge ${tone}`, "data-outcome": name }, label);
}

/** A link to an officer, or the id as text when it is not a badge we can open. */
export function aggregateLink(aggregateId) {
  return aggregateId ? h("a", { href: officerHref(aggregateId) }, aggregateId) : "—";
}

const COLUMNS = ["Command (correlationId)", "Type", "Aggregate", "Outcome", "Attempts", "Last step"];

/** Commands as `GET /v1/timelines` lists them, each linked to its timeline. */
export function commandTable(items, caption) {
  if (items.length === 0) return h("p", { class: "empty" }, `${caption}: none.`);
  return h(
    "table",
    { class: "commands" },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, COLUMNS.map((c) => h("th", { scope: "col" }, c)))),
    h("tbody", {}, items.map(commandRow)),
  );
}

function commandRow(item) {
  return h(
    "tr",
    { class: item.failure ? "failed" : null },
    h("td", {}, h("a", { href: timelineHref(item.correlationId) }, h("code", {}, item.correlationId)),
      item.commandId ? h("div", { class: "muted" }, "commandId ", h("code", {}, item.commandId)) : null),
    h("td", {}, item.commandType ?? "—"),
    h("td", {}, aggregateLink(item.aggregateId)),
    h("td", {}, badge(item.outcome), item.failure ? h("div", { class: "failure-code" }, item.failure) : null),
    h("td", { class: "num" }, item.attempts),
    h("td", {}, h("time", { datetime: item.lastAt }, time(item.lastAt))),
  );
}
