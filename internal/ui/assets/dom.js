// Small DOM helpers: every text goes through textContent or attributes, never
// innerHTML, so task data can hold anything.

const SVG_NS = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "text") el.textContent = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of [].concat(children ?? [])) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h("a", {href: "#"}, ["text", child]) makes an HTML element.
export function h(tag, attrs, children) {
  return build(document.createElement(tag), attrs, children);
}

// s("rect", {...}) makes an SVG element.
export function s(tag, attrs, children) {
  return build(document.createElementNS(SVG_NS, tag), attrs, children);
}

export function badge(state) {
  return h("span", { class: `badge st-${state}`, "data-state": state, text: state });
}

export function fmtTime(t) {
  if (!t) return "";
  const d = new Date(t);
  return d.toLocaleString(undefined, { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtDuration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "";
  if (ms === 0) return "0";
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 1 : 0)} ms`;
  const sec = ms / 1000;
  if (sec < 60) return `${sec.toFixed(sec < 10 ? 2 : 1)} s`;
  const m = Math.floor(sec / 60);
  if (m < 60) return `${m} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

// shortID keeps a UUID's last 12 hex digits: the first ones of a UUIDv7 are
// its creation time, the same for every task made in that millisecond.
export function shortID(id) {
  return id ? "…" + String(id).slice(-12) : "";
}
