// The officer view: what support needs to recognise an officer, and every command on them,
// each linked back to its timeline. Contact details and free-text reasons are not shown.

import * as api from "./api.js";
import { facts, h } from "./dom.js";
import { time } from "./format.js";
import { commandTable, problem } from "./parts.js";
import { timelineHref } from "./routes.js";

/** The officer with badge `badge` and their recent commands. */
export async function render(badge) {
  const [officer, commands] = await Promise.all([
    api.officer(badge),
    api.timelines({ aggregateId: badge, limit: 50 }),
  ]);
  const title = h("h2", { tabindex: "-1" }, `Officer ${badge}`);
  return {
    nodes: [
      title,
      officer.ok ? profile(officer.body) : problem(officer, `Officer ${badge}`),
      h("h3", {}, "Commands on this officer"),
      commands.ok ? commandTable(commands.body.items, `Commands on ${badge}, newest first`) : problem(commands, "Their commands"),
      officer.ok ? history(officer.body.history ?? []) : null,
    ],
  };
}

// An allowlist: a field the read model gains later stays hidden until docs/console.md
// says a support role may see it. Email, phone, hire date and the suspension reason never
// show here.
function profile(officer) {
  return facts([
    ["badge", h("code", {}, officer.badgeNumber)],
    ["name", [officer.firstName, officer.lastName].filter(Boolean).join(" ")],
    ["rank", officer.rank],
    ["status", officer.status],
    ["version", String(officer.version)],
    ["precinct", officer.precinct],
    ["registered", officer.registeredAt ? time(officer.registeredAt) : null],
    ["last change", officer.updatedAt ? time(officer.updatedAt) : null],
    ["retired on", officer.retiredOn],
  ]);
}

/** Events applied to the officer, oldest first, which outlive the timelines' retention. */
function history(entries) {
  if (entries.length === 0) return null;
  return [
    h("h3", {}, "Events applied"),
    h("ol", { class: "history" }, entries.map((entry) => h(
      "li",
      {},
      h("time", { datetime: entry.occurredAt }, time(entry.occurredAt)), " ",
      h("strong", {}, entry.eventType), ` (${entry.outcome}) `,
      h("a", { href: timelineHref(entry.correlationId) }, "timeline of ", h("code", {}, entry.correlationId)),
    ))),
  ];
}
