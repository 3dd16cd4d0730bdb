// The edge's query API, as the console reads it. Every call answers `{ ok: true, body }` or
// `{ ok: false, status, problem }`, so views show a problem instead of throwing.

const TIMEOUT_MS = 10_000;

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, {
      headers: { accept: "application/json" },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (error) {
    return unreachable(path, error);
  }
  const body = await response.json().catch(() => null);
  if (response.ok && body) return { ok: true, body };
  return { ok: false, status: response.status, problem: body ?? { title: response.statusText } };
}

function unreachable(path, error) {
  const timedOut = error?.name === "TimeoutError";
  return {
    ok: false,
    status: 0,
    problem: {
      title: timedOut ? "The edge did not answer in time" : "The edge cannot be reached",
      detail: `GET ${path}: ${error?.message ?? error}`,
    },
  };
}

const segment = encodeURIComponent;

/** `GET /v1/commands/{correlationId}/timeline`. */
export const timeline = (correlationId) => getJson(`/v1/commands/${segment(correlationId)}/timeline`);

/** `GET /v1/officers/{badge}`. */
export const officer = (badge) => getJson(`/v1/officers/${segment(badge)}`);

/**
 * `GET /v1/timelines` with the filters given (`commandId`, `aggregateId`, `from`, `to`,
 * `failed`, `limit`); empty ones are left out, since the edge refuses an empty filter.
 */
export function timelines(filters) {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(filters)) {
    if (value === undefined || value === null || value === "" || value === false) continue;
    query.set(name, String(value));
  }
  return getJson(`/v1/timelines?${query}`);
}
