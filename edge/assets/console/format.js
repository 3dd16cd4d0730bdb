// How times, durations and outcomes read in the console.

const OUTCOMES = {
  "in-flight": { label: "In flight", tone: "pending" },
  accepted: { label: "Accepted (not projected yet)", tone: "pending" },
  projected: { label: "Projected", tone: "good" },
  refused: { label: "Refused", tone: "bad" },
  failed: { label: "Failed", tone: "bad" },
  "dead-lettered": { label: "Dead-lettered", tone: "bad" },
  parked: { label: "Parked", tone: "bad" },
  superseded: { label: "Superseded", tone: "bad" },
  discarded: { label: "Discarded", tone: "bad" },
};

/** `{ label, tone }` of a timeline outcome; tone is good, pending or bad. */
export function outcome(name) {
  return OUTCOMES[name] ?? { label: name ?? "unknown", tone: "pending" };
}

/** Outcomes a timeline can still move on from, so the view refreshes itself. */
export const unsettled = (name) => name === "in-flight" || name === "accepted";

/** `2026-12-02 10:14:03.120 UTC`: support staff compare times across machines. */
export function time(iso) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso ?? "";
  return date.toISOString().replace("T", " ").replace("Z", " UTC");
}

/** `12.4 ms`, `1.25 s`. */
export function duration(ms) {
  if (typeof ms !== "number" || Number.isNaN(ms)) return "";
  return ms < 1000 ? `${ms.toFixed(1)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

/** `+12.4 ms`: the time since the step before; nothing for the first step. */
export const since = (ms) => (typeof ms === "number" ? `+${duration(ms)}` : "");

/** Milliseconds from `startIso` to `endIso`. */
export const elapsed = (startIso, endIso) => new Date(endIso) - new Date(startIso);

/** A `datetime-local` value as RFC 3339 (UTC), or "" when empty or invalid. */
export function rfc3339(local) {
  if (!local) return "";
  const date = new Date(local);
  return Number.isNaN(date.getTime()) ? "" : date.toISOString();
}

/** An RFC 3339 time as a `datetime-local` value in the browser's zone. */
export function localInput(iso) {
  const date = new Date(iso);
  if (!iso || Number.isNaN(date.getTime())) return "";
  const shifted = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return shifted.toISOString().slice(0, 19);
}
