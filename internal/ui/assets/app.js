// The Tasker console: a hash-routed single page over the REST API.
//   #/tasks?state=&namespace=&name=&created_after=&created_before=&correlation_id=&cursor=
//   #/tasks/{uuid}    #/templates    #/queues
import { api, query, setToken, APIError } from "./api.js";
import { h, badge, fmtTime, fmtDuration, shortID } from "./dom.js";
import { dag, gantt, ganttLegend, waterfall, attempts } from "./draw.js";

const TASK_STATES = ["pending", "initializing", "enqueuing_steps", "steps_in_process", "evaluating_results",
  "waiting_for_dependencies", "waiting_for_retry", "blocked_by_failures", "complete", "error", "cancelled", "resolved_manually"];
const TERMINAL = new Set(["complete", "error", "cancelled", "resolved_manually"]);
const PAGE_SIZE = 25;
// Refresh intervals for views the API cannot push: never faster than this,
// and only while the tab is visible.
const LIST_REFRESH_MS = 10000, TASK_REFRESH_MS = 5000, QUEUES_REFRESH_MS = 5000;

const main = document.getElementById("main");
const live = document.getElementById("live");
let consoleConfig = { jaeger: false };
let templatesCache = null;
// Whatever the current view started (timers, event streams) stops here when
// the route changes, so no view outlives its page.
let cleanups = [];

function onLeave(fn) { cleanups.push(fn); }

function every(ms, fn) {
  const id = setInterval(() => { if (document.visibilityState === "visible") fn(); }, ms);
  onLeave(() => clearInterval(id));
}

function setLive(text) { live.textContent = text; }

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/tasks";
  const [path, qs] = raw.split("?");
  return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(qs || "") };
}

function navCurrent(section) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    if (a.dataset.nav === section) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
}

function render(...nodes) {
  main.replaceChildren(...nodes);
}

function errorBox(err, what) {
  if (err instanceof APIError && err.status === 401) return tokenForm();
  const msg = err instanceof APIError ? `${err.message}${err.code ? ` (${err.code}${err.field ? ", " + err.field : ""})` : ""}` : String(err);
  return h("div", { class: "error-box", role: "alert" }, [`${what}: ${msg}`]);
}

function tokenForm() {
  const input = h("input", { id: "token", type: "password", autocomplete: "off", required: true });
  return h("form", { class: "filters", onsubmit: (e) => { e.preventDefault(); setToken(input.value.trim()); route(); } }, [
    h("label", { for: "token" }, ["This server needs an API token", input]),
    h("button", { class: "primary", type: "submit", text: "Use token" }),
    h("p", { class: "muted", text: "The token stays in this browser tab only and is sent with each request to this server." }),
  ]);
}

async function templates() {
  if (!templatesCache) templatesCache = (await api("/v1/templates")).templates || [];
  return templatesCache;
}

async function route() {
  for (const fn of cleanups) fn();
  cleanups = [];
  setLive("");
  const { parts, params } = parseHash();
  try {
    if (parts[0] === "tasks" && parts[1]) { navCurrent("tasks"); await taskPage(parts[1]); }
    else if (parts[0] === "templates") { navCurrent("templates"); await templatesPage(); }
    else if (parts[0] === "queues") { navCurrent("queues"); await queuesPage(); }
    else { navCurrent("tasks"); await tasksPage(params); }
  } catch (err) {
    render(errorBox(err, "Loading the page failed"));
  }
}

// ---- Tasks list -------------------------------------------------------------

function toLocalInput(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

async function tasksPage(params) {
  const tpls = await templates().catch(() => []);
  const f = Object.fromEntries(["state", "namespace", "name", "created_after", "created_before", "correlation_id", "parent_correlation_id", "cursor"]
    .map((k) => [k, params.get(k) || ""]));
  const field = (id, label, control) => h("label", { for: id }, [label, control]);
  const stateSel = h("select", { id: "f-state", name: "state" }, [h("option", { value: "", text: "any" }),
    ...TASK_STATES.map((st) => h("option", { value: st, text: st, selected: st === f.state }))]);
  const namespaces = [...new Set(tpls.map((t) => t.namespace))].sort();
  const nsSel = h("select", { id: "f-namespace", name: "namespace" }, [h("option", { value: "", text: "any" }),
    ...namespaces.map((n) => h("option", { value: n, text: n, selected: n === f.namespace }))]);
  const names = [...new Set(tpls.map((t) => t.name))].sort();
  const nameSel = h("select", { id: "f-name", name: "name" }, [h("option", { value: "", text: "any" }),
    ...names.map((n) => h("option", { value: n, text: n, selected: n === f.name }))]);
  const after = h("input", { id: "f-after", type: "datetime-local", value: toLocalInput(f.created_after) });
  const before = h("input", { id: "f-before", type: "datetime-local", value: toLocalInput(f.created_before) });
  const corr = h("input", { id: "f-correlation", class: "uuid mono", type: "search", placeholder: "correlation ID (UUID)", value: f.correlation_id, spellcheck: "false" });
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter tasks", onsubmit: (e) => {
    e.preventDefault();
    const iso = (el) => (el.value ? new Date(el.value).toISOString() : "");
    location.hash = "#/tasks" + query({ state: stateSel.value, namespace: nsSel.value, name: nameSel.value,
      created_after: iso(after), created_before: iso(before), correlation_id: corr.value.trim(), parent_correlation_id: f.parent_correlation_id,
      limit: params.get("limit") });
  } }, [
    field("f-state", "State", stateSel), field("f-namespace", "Namespace", nsSel), field("f-name", "Template", nameSel),
    field("f-after", "Created after", after), field("f-before", "Created before", before),
    field("f-correlation", "Correlation ID", corr),
    h("button", { class: "primary", type: "submit", text: "Search" }),
    h("button", { type: "button", text: "Clear", onclick: () => { location.hash = "#/tasks"; } }),
  ]);
  const results = h("div", { id: "task-results", "aria-live": "polite" }, [h("p", { class: "muted", text: "Loading…" })]);
  const heading = f.parent_correlation_id ? `Child tasks of ${f.parent_correlation_id}` : "Tasks";
  render(h("h1", { text: heading }), form, results);

  const load = async () => {
    const q = { state: f.state, namespace: f.namespace, name: f.name, created_after: f.created_after, created_before: f.created_before,
      correlation_id: f.correlation_id, parent_correlation_id: f.parent_correlation_id, cursor: f.cursor };
    // Only the unfiltered list (and the searches this server always had)
    // take a page size; an older server rejects limit on a correlation search.
    let data;
    try {
      data = await api("/v1/tasks" + query({ ...q, limit: params.get("limit") || PAGE_SIZE }));
    } catch (err) {
      if (err instanceof APIError && err.status === 400 && err.field === "limit") data = await api("/v1/tasks" + query(q));
      else throw err;
    }
    results.replaceChildren(taskTable(data.tasks || []), pager(params, data.next_cursor));
    setLive(`Updated ${new Date().toLocaleTimeString()}`);
  };
  try {
    await load();
  } catch (err) {
    const hint = err instanceof APIError && err.status === 400 && err.code === "missing_field"
      ? h("p", { class: "muted", text: "This server lists tasks only by correlation ID: enter one above." }) : null;
    results.replaceChildren(errorBox(err, "Listing tasks failed"), hint || "");
    return;
  }
  // The newest page follows new tasks; an older page stays put.
  if (!f.cursor) every(LIST_REFRESH_MS, () => load().catch(() => {}));
}

function pager(params, next) {
  const p = h("nav", { class: "pager", "aria-label": "Pages" });
  if (params.get("cursor")) {
    const q = new URLSearchParams(params);
    q.delete("cursor");
    p.append(h("a", { href: "#/tasks?" + q.toString(), text: "← Newest" }));
  }
  if (next) {
    const q = new URLSearchParams(params);
    q.set("cursor", next);
    p.append(h("a", { href: "#/tasks?" + q.toString(), text: "Older →", "data-next": "1" }));
  }
  return p;
}

function taskTable(tasks) {
  if (!tasks.length) return h("p", { class: "muted", text: "No tasks match." });
  return h("table", { class: "tasks" }, [
    h("caption", { class: "muted", text: `${tasks.length} task${tasks.length === 1 ? "" : "s"}, newest first` }),
    h("thead", {}, h("tr", {}, ["Created", "Task", "Template", "State", "Steps", "Correlation ID"].map((c) => h("th", { scope: "col", text: c })))),
    h("tbody", {}, tasks.map((t) => h("tr", { "data-task": t.task_uuid, "data-state": t.state, "data-created": t.created_at }, [
      h("td", { text: fmtTime(t.created_at) }),
      h("td", {}, h("a", { href: `#/tasks/${t.task_uuid}`, class: "mono", text: shortID(t.task_uuid), "aria-label": `Task ${t.task_uuid}` })),
      h("td", { text: `${t.namespace}/${t.name}@${t.version}` }),
      h("td", {}, badge(t.state)),
      h("td", { class: "num", text: `${t.completed_steps}/${t.total_steps}${t.failed_steps ? `, ${t.failed_steps} failed` : ""}` }),
      h("td", {}, h("a", { href: "#/tasks" + query({ correlation_id: t.correlation_id }), class: "mono", text: t.correlation_id })),
    ]))),
  ]);
}

// ---- Task page --------------------------------------------------------------

function traceURL(id) {
  const tpl = consoleConfig.trace_url_template;
  return tpl && id ? tpl.replaceAll("{trace_id}", encodeURIComponent(id)) : "";
}

function preview(raw) {
  if (raw === undefined || raw === null) return "";
  const text = JSON.stringify(raw, null, 1);
  return h("pre", { class: "preview", text: text.length > 600 ? text.slice(0, 600) + "…" : text });
}

async function taskPage(id) {
  const view = h("div", {}, [h("p", { class: "muted", text: "Loading…" })]);
  render(view);
  let traceDrawn = "";
  let lastState = "";
  let load = async () => {
    const [task, stepsBody] = await Promise.all([api(`/v1/tasks/${encodeURIComponent(id)}`), api(`/v1/tasks/${encodeURIComponent(id)}/workflow_steps`)]);
    const steps = Array.isArray(stepsBody) ? stepsBody : (stepsBody.steps || []);
    const children = await api("/v1/tasks" + query({ parent_correlation_id: task.correlation_id })).then((d) => d.tasks || []).catch(() => null);
    const focused = document.activeElement && document.activeElement.id;
    view.replaceChildren(...taskView(task, steps, children, load));
    if (focused) document.getElementById(focused)?.focus();
    if (consoleConfig.jaeger && task.trace_id && (traceDrawn !== task.trace_id || lastState !== task.state)) {
      traceDrawn = task.trace_id;
      drawTrace(task.trace_id);
    } else if (traceDrawn) {
      document.getElementById("trace")?.replaceWith(traceSection);
    }
    lastState = task.state;
    setLive(`Updated ${new Date().toLocaleTimeString()}`);
    return task;
  };
  let traceSection = h("section", { id: "trace", "aria-labelledby": "trace-h" });
  const drawTrace = async (traceID) => {
    traceSection = h("section", { id: "trace", "aria-labelledby": "trace-h" }, [h("h2", { id: "trace-h", text: "Trace" }), h("p", { class: "muted", text: "Loading the trace…" })]);
    document.getElementById("trace")?.replaceWith(traceSection);
    try {
      const body = await api(`/v1/traces/${encodeURIComponent(traceID)}`);
      const tr = (body.data || [])[0];
      if (!tr || !(tr.spans || []).length) throw new Error("Jaeger has no spans of this trace (yet)");
      const attrs = h("div", { class: "attrs", id: "span-attrs", "aria-live": "polite" });
      const svg = waterfall(tr, Math.max(700, main.clientWidth - 64), (sp, svc) => attrs.replaceChildren(spanAttrs(sp, svc)));
      traceSection.replaceChildren(h("h2", { id: "trace-h", text: `Trace (${tr.spans.length} spans)` }),
        h("p", { class: "muted", text: "Select a span to see its attributes." }), h("div", { class: "panel" }, svg), attrs);
    } catch (err) {
      const again = h("button", { type: "button", text: "Read the trace again", onclick: () => drawTrace(traceID) });
      const missing = err instanceof APIError && err.status === 404;
      traceSection.replaceChildren(h("h2", { id: "trace-h", text: "Trace" }),
        missing ? h("p", { class: "muted", text: `Jaeger has no trace ${traceID} yet: spans reach it only once exported, in batches.` })
          : errorBox(err, "Reading the trace from Jaeger failed"), again);
    }
  };
  // Live while the task can change: its event stream when the server has
  // one, else a slow refresh. An action can make a finished task live again,
  // so every load decides afresh.
  let pending = null, timer = null, es = null;
  // main's data-live says how the page follows its task: events, refresh or "".
  const stop = () => { es?.close(); es = null; if (timer) clearInterval(timer); timer = null; main.dataset.live = ""; };
  const reload = () => {
    if (pending) return;
    pending = setTimeout(() => { pending = null; load().catch(() => {}); }, 250);
  };
  const fallback = () => {
    if (timer) return;
    timer = setInterval(() => { if (document.visibilityState === "visible") reload(); }, TASK_REFRESH_MS);
    main.dataset.live = "refresh";
  };
  const follow = (t) => {
    if (TERMINAL.has(t.state)) { stop(); return; }
    if (es || timer) return;
    if (typeof EventSource !== "function") { fallback(); return; }
    let opened = false;
    es = new EventSource(`/v1/tasks/${encodeURIComponent(id)}/events`);
    es.onopen = () => { opened = true; main.dataset.live = "events"; };
    es.onmessage = reload;
    for (const name of ["task", "step"]) es.addEventListener(name, reload);
    // The stream ends once the task is finished; EventSource would reconnect.
    es.addEventListener("end", () => { stop(); reload(); });
    es.onerror = () => {
      if (!opened || es.readyState === EventSource.CLOSED) { es.close(); es = null; fallback(); }
    };
  };
  onLeave(() => { stop(); if (pending) clearTimeout(pending); });
  const loaded = load;
  load = async () => { const t = await loaded(); follow(t); return t; };
  try {
    await load();
  } catch (err) {
    view.replaceChildren(errorBox(err, `Reading task ${id} failed`));
  }
}

function spanAttrs(sp, svc) {
  const rows = [["service", svc], ["span", sp.operationName], ["span ID", sp.spanID], ["duration", fmtDuration(sp.duration / 1000)],
    ...(sp.tags || []).map((t) => [t.key, String(t.value)])];
  return h("table", { "aria-label": `Attributes of ${sp.operationName}` }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, [h("td", { text: k }), h("td", { class: "mono", text: v })]))));
}

function metaRow(label, value) {
  return [h("dt", { text: label }), h("dd", {}, value)];
}

function taskView(task, steps, children, reload) {
  const now = Date.now();
  const trace = traceURL(task.trace_id);
  const out = [];
  out.push(h("h1", {}, [`${task.namespace}/${task.name}@${task.version} `, badge(task.state)]));
  out.push(h("dl", { class: "meta" }, [
    ...metaRow("Task", h("code", { text: task.task_uuid })),
    ...metaRow("Correlation ID", h("a", { class: "mono", href: "#/tasks" + query({ correlation_id: task.correlation_id }), text: task.correlation_id })),
    ...(task.parent_correlation_id ? metaRow("Parent correlation ID", h("a", { class: "mono", href: "#/tasks" + query({ correlation_id: task.parent_correlation_id }), text: task.parent_correlation_id, "data-parent": "1" })) : []),
    ...metaRow("Trace", task.trace_id ? (trace ? h("a", { href: trace, target: "_blank", rel: "noopener", class: "mono", text: task.trace_id, id: "trace-link" }) : h("code", { text: task.trace_id })) : h("span", { class: "muted", text: "none recorded" })),
    ...metaRow("Created", fmtTime(task.created_at)),
    ...(task.completed_at ? metaRow("Completed", `${fmtTime(task.completed_at)} (${fmtDuration(new Date(task.completed_at) - new Date(task.created_at))})`) : []),
    ...metaRow("Steps", `${task.completed_steps}/${task.total_steps} complete, ${task.failed_steps} failed, ${task.enqueued_steps} enqueued, ${task.in_progress_steps} in progress`),
    ...(task.initiator ? metaRow("Initiator", task.initiator) : []),
    ...(task.reason ? metaRow("Reason", task.reason) : []),
    ...(task.tags && task.tags.length ? metaRow("Tags", task.tags.join(", ")) : []),
  ]));
  if (task.error) out.push(h("div", { class: "error-box", text: `${task.error.step_name ? task.error.step_name + ": " : ""}${task.error.message} (${task.error.error_type})` }));
  out.push(actions(task, reload));

  out.push(h("h2", { text: "Workflow" }));
  const selectStep = (name) => { const row = document.getElementById(`step-${name}`); if (row) { row.scrollIntoView({ block: "center" }); row.focus(); } };
  out.push(h("div", { class: "panel", id: "dag" }, dag(steps, { label: `Steps of task ${task.task_uuid}`, onSelect: selectStep })));

  out.push(h("h2", { text: "Timeline" }));
  out.push(ganttLegend());
  out.push(h("div", { class: "panel", id: "timeline" }, gantt(steps, new Date(task.created_at).getTime(), now, Math.max(700, main.clientWidth - 64))));

  out.push(h("h2", { text: "Steps" }));
  out.push(stepTable(task, steps, reload, now));

  out.push(h("h2", { text: "Child tasks" }));
  if (children === null) out.push(h("p", { class: "muted", text: "Child tasks could not be read." }));
  else if (!children.length) out.push(h("p", { class: "muted", text: "None." }));
  else {
    out.push(h("ul", { id: "children" }, children.map((c) => h("li", {}, [h("a", { href: `#/tasks/${c.task_uuid}`, text: `${c.namespace}/${c.name}@${c.version} ${shortID(c.task_uuid)}` }), " ", badge(c.state)]))));
    out.push(h("p", {}, h("a", { href: "#/tasks" + query({ parent_correlation_id: task.correlation_id }), text: "All child tasks, in pages →" })));
  }

  out.push(h("h2", { text: "Context" }));
  out.push(h("pre", { class: "preview", text: JSON.stringify(task.context ?? {}, null, 2) }));
  if (task.result) { out.push(h("h2", { text: "Result" })); out.push(h("pre", { class: "preview", text: JSON.stringify(task.result, null, 2) })); }
  out.push(h("section", { id: "trace" }));
  return out;
}

function stepTable(task, steps, reload, now) {
  const dur = (a, b) => (a && b ? fmtDuration(new Date(b) - new Date(a)) : "");
  return h("table", { class: "steps" }, [
    h("thead", {}, h("tr", {}, ["Step", "State", "Attempts", "Queued", "Ran", "Total", "Error", "Result", ""].map((c, i) =>
      h("th", { scope: "col", class: i >= 2 && i <= 5 ? "num" : undefined, text: c, "aria-label": c || "Actions" })))),
    h("tbody", {}, steps.map((st) => {
      const at = attempts(st, now);
      const last = at[at.length - 1];
      const queued = at.reduce((a, x) => a + ((x.claimed ?? x.end) - x.enqueued), 0);
      const ran = at.reduce((a, x) => a + (x.claimed !== null ? (x.submitted ?? x.end) - x.claimed : 0), 0);
      const canResolve = st.state === "error";
      return h("tr", { id: `step-${st.name}`, tabindex: -1, "data-step": st.name, "data-state": st.state }, [
        h("th", { scope: "row" }, [st.name, h("div", { class: "muted mono", text: st.handler })]),
        h("td", {}, badge(st.state)),
        h("td", { class: "num", text: `${st.attempts}/${st.max_attempts}` }),
        h("td", { class: "num", text: at.length ? fmtDuration(queued) : "" }),
        h("td", { class: "num", text: at.length ? fmtDuration(ran) : "" }),
        h("td", { class: "num", text: st.completed_at ? dur(at[0] ? new Date(at[0].enqueued) : st.created_at, st.completed_at) : last ? fmtDuration(last.end - at[0].enqueued) : "" }),
        h("td", {}, st.error ? h("span", { text: `${st.error.message} (${st.error.error_type}${st.error.attempt ? `, attempt ${st.error.attempt}` : ""})` }) : ""),
        h("td", {}, preview(st.result)),
        h("td", {}, canResolve ? h("button", { type: "button", text: "Resolve…", "data-action": "resolve", onclick: () => resolveStep(task, st, reload) }) : ""),
      ]);
    })),
  ]);
}

// ---- Actions ----------------------------------------------------------------

const dialog = document.getElementById("confirm");

// confirmAction asks before acting; extra is more form content (e.g. a
// result editor) and check() may refuse the input with a message.
function confirmAction(title, text, extra, check) {
  return new Promise((resolve) => {
    document.getElementById("confirm-title").textContent = title;
    document.getElementById("confirm-text").textContent = text;
    document.getElementById("confirm-extra").replaceChildren(...(extra ? [extra] : []));
    const done = () => {
      dialog.removeEventListener("close", done);
      if (dialog.returnValue !== "ok") return resolve(false);
      if (check) {
        const problem = check();
        if (problem) { alert(problem); return resolve(false); }
      }
      resolve(true);
    };
    dialog.returnValue = "";
    dialog.addEventListener("close", done);
    dialog.showModal();
  });
}

async function runAction(label, fn, reload) {
  const status = document.getElementById("action-status");
  try {
    status.textContent = `${label}…`;
    await fn();
    status.textContent = `${label}: done`;
    await reload();
    document.getElementById("action-status").textContent = `${label}: done`;
  } catch (err) {
    status.replaceChildren(errorBox(err, label));
  }
}

function actions(task, reload) {
  const bar = h("div", { class: "actions", role: "group", "aria-label": "Task actions" });
  const enc = encodeURIComponent(task.task_uuid);
  if (!TERMINAL.has(task.state)) {
    bar.append(h("button", { type: "button", class: "danger", id: "cancel-task", "data-action": "cancel", text: "Cancel task…", onclick: async () => {
      const reason = h("input", { id: "cancel-reason", type: "text", value: "cancelled from the console", size: 40 });
      if (!(await confirmAction("Cancel this task?", "Steps not yet run will not run; running steps are asked to stop.", h("label", { for: "cancel-reason" }, ["Reason ", reason])))) return;
      runAction("Cancel", () => api(`/v1/tasks/${enc}/cancel`, { method: "POST", body: { reason: reason.value, actor: "console" } }), reload);
    } }));
  }
  if (task.state === "error") {
    bar.append(h("button", { type: "button", class: "primary", id: "retry-task", "data-action": "retry", text: "Retry failed steps…", onclick: async () => {
      if (!(await confirmAction("Retry this task?", "Its failed steps run again with fresh attempts; completed steps keep their results."))) return;
      runAction("Retry", () => api(`/v1/tasks/${enc}/retry`, { method: "POST", body: { reason: "retried from the console", actor: "console" } }), reload);
    } }));
  }
  bar.append(h("span", { id: "action-status", role: "status", class: "muted" }));
  return bar;
}

async function resolveStep(task, step, reload) {
  const area = h("textarea", { id: "resolve-result", spellcheck: "false" }, ["{}"]);
  const extra = h("label", { for: "resolve-result" }, ["Result (JSON) the dependent steps will see", area]);
  const ok = await confirmAction(`Resolve step ${step.name}?`, "The step is marked resolved manually with this result, and the workflow continues.", extra,
    () => { try { JSON.parse(area.value); return ""; } catch (e) { return `The result is not JSON: ${e.message}`; } });
  if (!ok) return;
  runAction(`Resolve ${step.name}`, () => api(`/v1/tasks/${encodeURIComponent(task.task_uuid)}/steps/${encodeURIComponent(step.name)}/resolve`,
    { method: "POST", body: { result: JSON.parse(area.value), reason: "resolved from the console", actor: "console" } }), reload);
}

// ---- Templates --------------------------------------------------------------

async function templatesPage() {
  templatesCache = null;
  const tpls = await templates();
  render(h("h1", { text: "Templates" }),
    tpls.length ? h("div", { class: "cards" }, tpls.map((t) => h("section", { class: "card template", "data-template": `${t.namespace}/${t.name}@${t.version}`, "aria-labelledby": `tpl-${t.namespace}-${t.name}-${t.version}` }, [
      h("h2", { id: `tpl-${t.namespace}-${t.name}-${t.version}` }, [h("a", { href: "#/tasks" + query({ namespace: t.namespace, name: t.name }), text: `${t.namespace}/${t.name}` }), ` @${t.version}`]),
      t.description ? h("p", { class: "muted", text: t.description }) : "",
      h("div", { class: "body" }, [h("div", { class: "panel" }, dag(t.steps, { label: `Steps of ${t.namespace}/${t.name}` })),
      h("table", {}, [h("thead", {}, h("tr", {}, ["Step", "Handler", "Max attempts", "Timeout"].map((c) => h("th", { scope: "col", text: c })))),
        h("tbody", {}, t.steps.map((st) => h("tr", {}, [h("td", { text: st.name }), h("td", { class: "mono", text: st.handler }),
          h("td", { class: "num", text: st.max_attempts }), h("td", { class: "num", text: st.timeout_seconds ? fmtDuration(st.timeout_seconds * 1000) : "" })])))])]),
    ]))) : h("p", { class: "muted", text: "No templates are registered." }));
}

// ---- Queues and workers -----------------------------------------------------

async function queuesPage() {
  const view = h("div");
  render(h("h1", { text: "Queues and workers" }), view);
  const load = async () => {
    const [q, w] = await Promise.all([api("/v1/queues"), api("/v1/workers")]);
    const depthOf = new Map(q.queues.map((x) => [x.queue, x]));
    view.replaceChildren(
      h("div", { class: "two-col" }, [
        h("section", { "aria-labelledby": "ns-h" }, [h("h2", { id: "ns-h", text: "Namespaces" }),
          h("table", { id: "namespaces" }, [h("thead", {}, h("tr", {}, ["Namespace", "Live workers", "Waiting steps"].map((c, i) => h("th", { scope: "col", class: i ? "num" : undefined, text: c })))),
            h("tbody", {}, w.namespaces.map((n) => {
              const wq = depthOf.get(`worker_${n.namespace}_queue`);
              const stalled = n.live_workers === 0 && wq && wq.claimable > 0;
              return h("tr", { "data-namespace": n.namespace, "data-live": n.live_workers }, [h("td", { text: n.namespace }),
                h("td", { class: "num" }, [stalled ? h("span", { class: "badge st-error", text: "no worker" }) : "", " ", String(n.live_workers)]),
                h("td", { class: "num", text: wq ? wq.claimable : "" })]);
            }))])]),
        h("section", { "aria-labelledby": "q-h" }, [h("h2", { id: "q-h", text: "Queues" }),
          h("table", { id: "queues" }, [h("thead", {}, h("tr", {}, ["Queue", "Depth", "Claimable", "Oldest claimable"].map((c, i) => h("th", { scope: "col", class: i ? "num" : undefined, text: c })))),
            h("tbody", {}, q.queues.map((x) => h("tr", { "data-queue": x.queue, "data-depth": x.depth }, [h("td", { class: "mono", text: x.queue }),
              h("td", { class: "num", text: x.depth }), h("td", { class: "num", text: x.claimable }),
              h("td", { class: "num", text: x.claimable ? fmtDuration(x.oldest_claimable_age_seconds * 1000) : "" })])))])]),
      ]),
      h("section", { "aria-labelledby": "w-h" }, [h("h2", { id: "w-h", text: `Live workers (${w.workers.length})` }),
        w.workers.length ? h("table", { id: "workers" }, [h("thead", {}, h("tr", {}, ["Worker", "Namespaces", "Host", "PID", "Started", "Last heartbeat"].map((c) => h("th", { scope: "col", text: c })))),
          h("tbody", {}, w.workers.map((x) => h("tr", {}, [h("td", { class: "mono", text: x.worker_id }), h("td", { text: x.namespaces.join(", ") }),
            h("td", { text: x.hostname || "" }), h("td", { class: "num", text: x.pid || "" }), h("td", { text: fmtTime(x.started_at) }), h("td", { text: fmtTime(x.last_heartbeat_at) })])))])
          : h("p", { class: "muted", text: "No worker has sent a heartbeat recently." })]),
    );
    setLive(`Updated ${new Date().toLocaleTimeString()}`);
  };
  await load();
  every(QUEUES_REFRESH_MS, () => load().catch((err) => view.replaceChildren(errorBox(err, "Reading queues failed"))));
}

// ---- Start ------------------------------------------------------------------

window.addEventListener("hashchange", () => { route(); main.focus(); });
api("/ui/config.json").then((c) => { consoleConfig = c || consoleConfig; }).catch(() => {}).finally(route);
