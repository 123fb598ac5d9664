// The one way the dashboard builds DOM: createElement + textContent. Job data (payloads,
// results, errors, tracebacks, logs, queue and type names) is only ever text: no innerHTML,
// no attribute built from strings, no href whose scheme was not checked.

const ATTRIBUTES = new Set([
  "class", "id", "type", "name", "value", "placeholder", "title", "role", "for", "min",
  "max", "step", "rows", "cols", "colspan", "tabindex", "autocomplete", "spellcheck",
  "inputmode", "pattern", "maxlength", "aria-label", "aria-live", "aria-current",
  "aria-selected", "aria-controls", "aria-expanded", "aria-describedby", "aria-invalid",
  "data-key", "data-nav", "data-action", "data-state", "data-count", "data-field", "data-id",
]);
const FLAGS = new Set(["checked", "disabled", "hidden", "open", "selected", "required", "readonly"]);
const SAFE_SCHEMES = new Set(["http:", "https:"]);

/** The href to use for a link, or null when its scheme is not http(s) (javascript:, data:...). */
export function safeHref(raw) {
  try {
    const url = new URL(String(raw), document.baseURI);
    return SAFE_SCHEMES.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function apply(node, attrs) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "href") {
      const href = safeHref(value);
      if (href !== null) node.setAttribute("href", href);
    } else if (name.startsWith("on") && typeof value === "function") {
      node.addEventListener(name.slice(2), value);
    } else if (FLAGS.has(name)) node[name] = Boolean(value);
    else if (ATTRIBUTES.has(name)) node.setAttribute(name, String(value));
    else throw new Error(`dom: attribute ${name} is not allowed`);
  }
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An element: h("td", {class: "num"}, "text or", nodes). Strings become text nodes. */
export function h(tag, attrs, ...children) {
  const node = document.createElement(tag);
  apply(node, attrs);
  append(node, children);
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
const SVG_ATTRIBUTES = new Set([
  "viewBox", "x", "y", "x1", "x2", "y1", "y2", "width", "height", "d", "class", "role",
  "aria-label", "preserveAspectRatio", "points", "text-anchor", "rx",
]);

/** An SVG element, with the few geometry attributes a chart needs. */
export function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (name === "text") node.textContent = String(value);
    else if (SVG_ATTRIBUTES.has(name)) node.setAttribute(name, String(value));
    else throw new Error(`svg: attribute ${name} is not allowed`);
  }
  append(node, children);
  return node;
}

/** Replace a node's children in one step (no flash, scroll stays where it was). */
export function fill(node, ...children) {
  const fragment = document.createDocumentFragment();
  append(fragment, children);
  node.replaceChildren(fragment);
  return node;
}
