// SVG drawings: the DAG as a layered graph, the step timeline (Gantt) and a
// trace's span waterfall.
import { s, h, fmtDuration } from "./dom.js";

const NODE_W = 160, NODE_H = 46, GAP_X = 48, GAP_Y = 16, PAD = 12;

// layers puts each step in the column of its longest path from a root, then
// orders each column by the mean row of its parents, which keeps most edges
// from crossing in the small DAGs templates have.
function layers(steps) {
  const byName = new Map(steps.map((st) => [st.name, st]));
  const depth = new Map();
  const visiting = new Set();
  const depthOf = (name) => {
    if (depth.has(name)) return depth.get(name);
    if (visiting.has(name)) return 0; // a cycle cannot be registered; stay finite anyway
    visiting.add(name);
    const st = byName.get(name);
    let d = 0;
    for (const p of (st && st.depends_on) || []) if (byName.has(p)) d = Math.max(d, depthOf(p) + 1);
    visiting.delete(name);
    depth.set(name, d);
    return d;
  };
  const cols = [];
  for (const st of steps) {
    const d = depthOf(st.name);
    (cols[d] ||= []).push(st);
  }
  const row = new Map();
  cols.forEach((col, i) => {
    if (i > 0) {
      const key = (st) => {
        const ps = (st.depends_on || []).filter((p) => row.has(p));
        return ps.length ? ps.reduce((a, p) => a + row.get(p), 0) / ps.length : 0;
      };
      col.sort((a, b) => key(a) - key(b));
    }
    col.forEach((st, j) => row.set(st.name, j));
  });
  return { cols, row, depth };
}

// dag draws steps ({name, state, depends_on}) left to right. onSelect(name)
// is called when a node is clicked or activated from the keyboard.
export function dag(steps, { label = "Workflow steps", onSelect } = {}) {
  const { cols, row, depth } = layers(steps);
  const maxRows = Math.max(1, ...cols.map((c) => c.length));
  const width = PAD * 2 + cols.length * NODE_W + Math.max(0, cols.length - 1) * GAP_X;
  const height = PAD * 2 + maxRows * NODE_H + (maxRows - 1) * GAP_Y;
  const pos = new Map();
  cols.forEach((col, i) => {
    const offset = ((maxRows - col.length) * (NODE_H + GAP_Y)) / 2;
    col.forEach((st, j) => pos.set(st.name, { x: PAD + i * (NODE_W + GAP_X), y: PAD + offset + j * (NODE_H + GAP_Y) }));
  });
  const svg = s("svg", { class: "dag", width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": label });
  svg.append(s("defs", {}, [s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
    [s("path", { d: "M0,0 L10,5 L0,10 z", fill: "#5b6273" })])]));
  for (const st of steps) {
    const to = pos.get(st.name);
    for (const p of st.depends_on || []) {
      const from = pos.get(p);
      if (!from) continue;
      const x1 = from.x + NODE_W, y1 = from.y + NODE_H / 2, x2 = to.x - 2, y2 = to.y + NODE_H / 2;
      const mx = (x1 + x2) / 2;
      svg.append(s("path", { class: "dag-edge", "data-from": p, "data-to": st.name, d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, "marker-end": "url(#arrow)" }));
    }
  }
  for (const st of steps) {
    const { x, y } = pos.get(st.name);
    const state = st.state || "template";
    const name = st.name.length > 22 ? st.name.slice(0, 21) + "…" : st.name;
    const deps = (st.depends_on || []).length ? `, after ${st.depends_on.join(", ")}` : "";
    const g = s("g", {
      class: `dag-node st-${state}`, "data-step": st.name, "data-state": state, "data-layer": depth.get(st.name),
      transform: `translate(${x},${y})`, tabindex: onSelect ? 0 : undefined, role: onSelect ? "button" : "img",
      "aria-label": `${st.name}${st.state ? ": " + st.state : ""}${deps}`,
    }, [
      s("title", { text: `${st.name}${st.state ? " — " + st.state : ""}` }),
      s("rect", { width: NODE_W, height: NODE_H, rx: 6, class: `fill-${fillVar(state)}` }),
      s("text", { x: 9, y: 19, text: name }),
      s("text", { x: 9, y: 36, class: "state", text: st.state || st.handler || "" }),
    ]);
    if (onSelect) {
      g.addEventListener("click", () => onSelect(st.name));
      g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); onSelect(st.name); } });
    }
    svg.append(g);
  }
  return svg;
}

function fillVar(state) {
  switch (state) {
    case "enqueued_for_orchestration": case "enqueued_as_error_for_orchestration": return "orchestration";
    case "pending": case "enqueued": case "in_progress": case "waiting_for_retry": case "complete":
    case "error": case "cancelled": case "resolved_manually": return state;
    case "template": return "template";
    default: return "pending";
  }
}

// attempts splits a step's transition history into attempts: each starts
// when the step is enqueued and runs through claim (in_progress), result
// (enqueued_for_orchestration) to its outcome (complete, waiting_for_retry,
// error, ...). An attempt still going ends "now".
export function attempts(step, now) {
  const ts = [...(step.transitions || [])].sort((a, b) => new Date(a.at) - new Date(b.at));
  const out = [];
  let cur = null;
  const close = (t, outcome) => {
    if (!cur) return;
    cur.end = t;
    cur.outcome = outcome;
    out.push(cur);
    cur = null;
  };
  for (const tr of ts) {
    const at = new Date(tr.at).getTime();
    switch (tr.to_state) {
      case "enqueued":
        close(at, "requeued");
        cur = { enqueued: at, claimed: null, submitted: null };
        break;
      case "in_progress":
        if (cur) cur.claimed ??= at;
        break;
      case "enqueued_for_orchestration":
      case "enqueued_as_error_for_orchestration":
        if (cur) { cur.submitted ??= at; cur.failed = tr.to_state !== "enqueued_for_orchestration"; }
        break;
      case "complete": close(at, "complete"); break;
      case "waiting_for_retry": close(at, "retry"); break;
      case "error": close(at, "error"); break;
      case "cancelled": close(at, "cancelled"); break;
      case "resolved_manually": close(at, "resolved_manually"); break;
      default: break;
    }
  }
  if (cur) { cur.end = now; cur.outcome = "running"; cur.open = true; out.push(cur); }
  out.forEach((a, i) => { a.n = i + 1; });
  return out;
}

const ROW_H = 24, LABEL_W = 190, AXIS_H = 22;

function ticks(span, width) {
  const target = Math.max(2, Math.floor(width / 110));
  const raw = span / target;
  const mag = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-6)));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((v) => v >= raw) || raw;
  const out = [];
  for (let v = 0; v <= span + 1e-9; v += step) out.push(v);
  return out;
}

// tickLabel keeps the last labels inside the plot by ending them at their tick.
function tickLabel(x, right, text) {
  return x + 60 > right ? s("text", { x: x - 2, y: 12, "text-anchor": "end", text }) : s("text", { x: x + 2, y: 12, text });
}

function axis(g, span, scale, height, left = LABEL_W) {
  for (const v of ticks(span, scale(span))) {
    const x = left + scale(v);
    g.append(s("line", { x1: x, x2: x, y1: AXIS_H - 4, y2: height }));
    g.append(tickLabel(x, left + scale(span), "+" + fmtDuration(v)));
  }
}

// gantt draws one row per step and one bar per attempt, from the task's
// creation (t0, ms) on; the bar's segments are queued, running and result.
export function gantt(steps, t0, now, width) {
  const rows = steps.map((st) => ({ st, at: attempts(st, now) }));
  let end = t0 + 1;
  for (const r of rows) for (const a of r.at) end = Math.max(end, a.end);
  const span = end - t0;
  const plotW = Math.max(200, width - LABEL_W - 20);
  const scale = (ms) => (ms / span) * plotW;
  const height = AXIS_H + rows.length * ROW_H + 6;
  const svg = s("svg", { class: "gantt", width: LABEL_W + plotW + 20, height, role: "img", "aria-label": "Timeline of step attempts" });
  const ax = s("g", { class: "axis" });
  axis(ax, span, scale, height);
  svg.append(ax);
  rows.forEach((r, i) => {
    const y = AXIS_H + i * ROW_H;
    svg.append(s("text", { class: "label", x: 4, y: y + 16, text: r.st.name.length > 26 ? r.st.name.slice(0, 25) + "…" : r.st.name }));
    for (const a of r.at) {
      const seg = (from, to, cls) => {
        if (from === null || to === null || to < from) return null;
        return s("rect", { class: cls, x: LABEL_W + scale(from - t0), y: y + 4, width: Math.max(1.5, scale(to - from)), height: ROW_H - 8 });
      };
      const claimed = a.claimed ?? (a.open ? null : a.end);
      const submitted = a.submitted ?? (a.claimed !== null && !a.open ? a.end : null);
      const outcomeCls = a.outcome === "complete" ? "seg-done" : a.outcome === "retry" ? "seg-retry" : a.outcome === "error" ? "seg-error" : "seg-result";
      const parts = [
        seg(a.enqueued, a.claimed ?? (a.open ? a.end : claimed), "seg-queued"),
        a.claimed !== null ? seg(a.claimed, a.submitted ?? a.end, "seg-running") : null,
        a.submitted !== null ? seg(a.submitted, a.end, outcomeCls) : null,
      ];
      const desc = [`${r.st.name}, attempt ${a.n}: ${a.outcome}`,
        a.claimed !== null ? `queued ${fmtDuration(a.claimed - a.enqueued)}` : `queued ${fmtDuration(a.end - a.enqueued)}`,
        a.claimed !== null ? `ran ${fmtDuration((a.submitted ?? a.end) - a.claimed)}` : null,
        a.submitted !== null ? `result applied in ${fmtDuration(a.end - a.submitted)}` : null,
        `total ${fmtDuration(a.end - a.enqueued)}`].filter(Boolean).join("; ");
      svg.append(s("g", { class: "gantt-attempt", "data-step": r.st.name, "data-attempt": a.n, "data-outcome": a.outcome },
        [s("title", { text: desc }), ...parts.filter(Boolean)]));
    }
  });
  return svg;
}

export function ganttLegend() {
  const l = h("div", { class: "legend", "aria-hidden": "true" });
  for (const [cls, text] of [["seg-queued", "queued (enqueue → claim)"], ["seg-running", "running (claim → result)"],
    ["seg-done", "result applied → complete"], ["seg-retry", "→ retry"], ["seg-error", "→ error"]]) {
    l.append(h("span", {}, [h("i", { class: cls }), text]));
  }
  return l;
}

// waterfall draws a Jaeger trace ({spans, processes}) as nested rows;
// onSelect(span) shows a span's attributes.
export function waterfall(trace, width, onSelect) {
  const spans = trace.spans || [];
  const byID = new Map(spans.map((sp) => [sp.spanID, sp]));
  const kids = new Map();
  const roots = [];
  for (const sp of spans) {
    const ref = (sp.references || []).find((r) => r.refType === "CHILD_OF" && byID.has(r.spanID)) ||
      (sp.references || []).find((r) => byID.has(r.spanID));
    if (ref) { if (!kids.has(ref.spanID)) kids.set(ref.spanID, []); kids.get(ref.spanID).push(sp); } else roots.push(sp);
  }
  const order = [];
  const walk = (sp, d) => {
    order.push({ sp, d });
    for (const c of (kids.get(sp.spanID) || []).sort((a, b) => a.startTime - b.startTime)) walk(c, d + 1);
  };
  for (const r of roots.sort((a, b) => a.startTime - b.startTime)) walk(r, 0);
  const t0 = Math.min(...spans.map((sp) => sp.startTime));
  const t1 = Math.max(...spans.map((sp) => sp.startTime + sp.duration));
  const span = Math.max(1, (t1 - t0) / 1000);
  const labelW = 330;
  const plotW = Math.max(200, width - labelW - 20);
  const scale = (ms) => (ms / span) * plotW;
  const rowH = 20;
  const height = AXIS_H + order.length * rowH + 6;
  const services = [...new Set(spans.map((sp) => (trace.processes[sp.processID] || {}).serviceName))];
  const svg = s("svg", { class: "waterfall", width: labelW + plotW + 20, height, role: "group", "aria-label": `Trace with ${spans.length} spans` });
  const ax = s("g", { class: "axis" });
  axis(ax, span, scale, height, labelW);
  svg.append(ax);
  order.forEach(({ sp, d }, i) => {
    const y = AXIS_H + i * rowH;
    const svc = (trace.processes[sp.processID] || {}).serviceName || "";
    const isErr = (sp.tags || []).some((t) => (t.key === "error" && t.value === true) || (t.key === "otel.status_code" && t.value === "ERROR"));
    const start = (sp.startTime - t0) / 1000, dur = sp.duration / 1000;
    const label = `${svc}: ${sp.operationName}`;
    const g = s("g", { class: "span-row", tabindex: 0, role: "button", "data-span": sp.spanID, "aria-label": `${label}, ${fmtDuration(dur)}` }, [
      s("title", { text: `${label} — ${fmtDuration(dur)}` }),
      s("rect", { class: "hit", x: 0, y, width: labelW + plotW + 20, height: rowH }),
      s("text", { class: "label", x: 4 + Math.min(d, 12) * 10, y: y + 14, text: label.length > 48 - Math.min(d, 12) ? label.slice(0, 47 - Math.min(d, 12)) + "…" : label }),
      s("rect", { class: `bar ${isErr ? "err" : services.indexOf(svc) === 1 ? "svc1" : ""}`, x: labelW + scale(start), y: y + 3, width: Math.max(1.5, scale(dur)), height: rowH - 6 }),
      durationLabel(labelW + scale(start), Math.max(1.5, scale(dur)), labelW + plotW, y + 14, fmtDuration(dur)),
    ]);
    const pick = () => onSelect && onSelect(sp, svc);
    g.addEventListener("click", pick);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); pick(); } });
    svg.append(g);
  });
  return svg;
}

// durationLabel goes right of its bar, or left of it when the bar ends too
// near the plot's right edge for the text to fit.
function durationLabel(x, w, right, y, text) {
  if (x + w + 60 <= right) return s("text", { class: "label", x: x + w + 4, y, text });
  return s("text", { class: "label", x: x - 4, y, "text-anchor": "end", text });
}
