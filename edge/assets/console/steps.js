// One attempt of a command as a vertical sequence of steps: who took each step, where, when,
// how long after the one before, what it found, and whether it is a failure.

import { facts, h } from "./dom.js";
import { duration, elapsed, since, time } from "./format.js";

// The step details the console shows, by name. Anything else a step carries stays hidden
// until someone decides a support role may see it (docs/console.md, "Redaction").
const SHOWN = [
  ["method", "method"],
  ["route", "route"],
  ["principal", "principal"],
  ["clientCorrelationId", "client chose correlationId"],
  ["clientCommandId", "client chose commandId"],
  ["subject", "NATS subject"],
  ["redrive", "re-drive"],
  ["outcome", "ledger"],
  ["version", "aggregate version"],
  ["code", "code"],
  ["status", "HTTP status"],
  ["replayed", "replayed reply"],
  ["topic", "topic"],
  ["partition", "partition"],
  ["offset", "offset"],
  ["readModels", "read models"],
  ["lagMs", "lag (ms)"],
  ["reason", "operator's reason"],
];

/** The steps grouped by attempt, oldest first: `[[attempt, steps]]`. */
export function byAttempt(steps) {
  const groups = new Map();
  for (const step of steps) {
    if (!groups.has(step.attempt)) groups.set(step.attempt, []);
    groups.get(step.attempt).push(step);
  }
  return [...groups.entries()].sort(([a], [b]) => a - b);
}

/** One attempt: a heading that says whether it is a retry, then its steps in order. */
export function attemptSection(attempt, steps, total) {
  const failures = steps.filter((s) => s.failure).length;
  const first = steps[0];
  const last = steps[steps.length - 1];
  const label = attempt === 1 ? "first request" : "retry";
  return h(
    "section",
    { class: `attempt${failures ? " has-failure" : ""}`, "aria-labelledby": `attempt-${attempt}` },
    h("h3", { id: `attempt-${attempt}` }, `Attempt ${attempt} of ${total} (${label})`),
    h("p", { class: "muted" },
      "correlationId ", h("code", {}, first.correlationId),
      ` · ${steps.length} steps over ${duration(elapsed(first.at, last.at))}`,
      failures ? ` · ${failures} failed` : ""),
    h("ol", { class: "steps" }, steps.map(stepItem)),
  );
}

function stepItem(step) {
  return h(
    "li",
    { class: `step${step.failure ? " failed" : ""}`, "data-step": step.step },
    h("div", { class: "step-head" },
      h("strong", { class: "step-name" }, step.step),
      h("span", {}, `${step.component} · `, h("code", {}, step.instance)),
      h("time", { datetime: step.at }, time(step.at)),
      h("span", { class: "since", title: "time since the step before" }, since(step.sincePreviousMs))),
    step.failure ? h("p", { class: "failure-code" }, "Failure: ", h("code", {}, step.failure)) : null,
    details(step),
  );
}

function details(step) {
  const pairs = SHOWN.filter(([key]) => key in step).map(([key, term]) => [term, value(step[key])]);
  if (step.detail !== undefined) pairs.push(["detail", "withheld: may quote the event's body"]);
  return pairs.length ? facts(pairs, "details") : null;
}

function value(raw) {
  if (Array.isArray(raw)) return raw.join(", ");
  if (typeof raw === "boolean") return raw ? "yes" : "no";
  return String(raw);
}
