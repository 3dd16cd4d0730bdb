// Builds elements from data. Text always goes in as text nodes, never as HTML, so an id or
// a code from the API cannot inject markup into the page.

/** An element: `h("a", { href: "#/" , class: "x" }, "text", child, [more])`. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces the content of `element` with `children`. */
export function show(element, ...children) {
  element.replaceChildren();
  append(element, children);
}

/** A definition list from `[term, value]` pairs, skipping absent values. */
export function facts(pairs, className = "facts") {
  const present = pairs.filter(([, value]) => value !== undefined && value !== null && value !== "");
  return h("dl", { class: className }, present.map(([term, value]) => h("div", {}, h("dt", {}, term), h("dd", {}, value))));
}
