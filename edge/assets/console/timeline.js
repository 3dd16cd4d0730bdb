// The timeline view: one command's outcome, ids and every step of every attempt.

import * as api from "./api.js";
import { facts, h } from "./dom.js";
import { duration, elapsed, time, unsettled } from "./format.js";
import { aggregateLink, badge, problem } from "./parts.js";
import { attemptSection, byAttempt } from "./steps.js";

const REFRESH_MS = 2000;

/** The timeline of `correlationId`; `again` asks for a refresh while it can still move on. */
export async function render(correlationId) {
  const result = await api.timeline(correlationId);
  const title = h("h2", { tabindex: "-1" }, "Command timeline");
  if (!result.ok) {
    return { nodes: [title, problem(result, `The timeline of ${correlationId}`), refreshHint()] };
  }
  const timeline = result.body;
  const nodes = [title, summary(timeline), attempts(timeline)];
  return { nodes, again: unsettled(timeline.outcome) ? REFRESH_MS : undefined };
}

function summary(timeline) {
  const { steps } = timeline;
  const span = steps.length ? duration(elapsed(steps[0].at, steps[steps.length - 1].at)) : "";
  return h(
    "div",
    { class: "summary" },
    h("p", { class: "outcome" }, "Outcome ", badge(timeline.outcome)),
    facts([
      ["correlationId", h("code", {}, timeline.correlationId)],
      ["commandId", timeline.commandId ? h("code", {}, timeline.commandId) : null],
      ["command type", timeline.commandType],
      ["aggregate (officer)", timeline.aggregateId ? aggregateLink(timeline.aggregateId) : null],
      ["attempts", String(timeline.attempts)],
      ["started", steps.length ? time(steps[0].at) : null],
      ["first to last step", span],
    ]),
    unsettled(timeline.outcome) ? h("p", { class: "muted" }, "Still moving: this view refreshes itself.") : null,
  );
}

function attempts(timeline) {
  const groups = byAttempt(timeline.steps);
  const total = groups.length;
  return h(
    "div",
    { class: "attempts" },
    groups.map(([attempt, steps]) => attemptSection(attempt, steps, total)),
  );
}

function refreshHint() {
  return h("p", { class: "muted" }, "A command's steps arrive within a moment of each other. ",
    h("button", { type: "button", "data-action": "reload" }, "Look again"));
}
