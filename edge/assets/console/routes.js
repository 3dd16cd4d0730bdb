// The console's state lives in the URL's hash, so a link can be shared and Back works:
// `#/search?q=…&from=…&to=…&failed=1`, `#/timeline/<correlationId>`, `#/officer/<badge>`.

/** The view the hash names: `{ view, id }` or `{ view: "search", query }`. */
export function parse(hash) {
  const path = hash.replace(/^#/, "") || "/";
  const [route, rest = ""] = splitOnce(path.slice(1), "/");
  if (route === "timeline" && rest) return { view: "timeline", id: decode(rest) };
  if (route === "officer" && rest) return { view: "officer", id: decode(rest) };
  if (route.startsWith("search")) {
    const [, query = ""] = splitOnce(path, "?");
    return { view: "search", query: fromParams(new URLSearchParams(query)) };
  }
  return { view: "search", query: fromParams(new URLSearchParams()) };
}

function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text] : [text.slice(0, at), text.slice(at + 1)];
}

function decode(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function fromParams(params) {
  return {
    q: (params.get("q") ?? "").trim(),
    from: params.get("from") ?? "",
    to: params.get("to") ?? "",
    failed: params.get("failed") === "1",
  };
}

/** The hash of a search. */
export function searchHref({ q, from, to, failed }) {
  const params = new URLSearchParams();
  if (q) params.set("q", q);
  if (from) params.set("from", from);
  if (to) params.set("to", to);
  if (failed) params.set("failed", "1");
  return `#/search?${params}`;
}

/** The hash of one command's timeline. */
export const timelineHref = (correlationId) => `#/timeline/${encodeURIComponent(correlationId)}`;

/** The hash of one officer. */
export const officerHref = (badge) => `#/officer/${encodeURIComponent(badge)}`;
