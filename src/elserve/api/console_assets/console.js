// elserve console: one page over elserve's own REST API, with the caller's credentials and
// privileges. No framework and no build step; every text from the server is set with
// textContent (never parsed as HTML), and the page's Content-Security-Policy allows no inline code.

// The actions the page may offer, asked of `_has_privileges` at login: a button whose action the
// caller does not hold is not shown.
const ACTIONS = {
  endpoints: "cluster:monitor/xpack/inference/get",
  infer: "cluster:monitor/xpack/inference",
  put: "cluster:admin/xpack/inference/put",
  endpointUpdate: "cluster:admin/xpack/inference/update",
  del: "cluster:admin/xpack/inference/delete",
  start: "cluster:admin/xpack/ml/trained_models/deployment/start",
  stop: "cluster:admin/xpack/ml/trained_models/deployment/stop",
  update: "cluster:admin/xpack/ml/trained_models/deployment/update",
  mlGet: "cluster:monitor/xpack/ml/inference/get",
  mlStats: "cluster:monitor/xpack/ml/inference/stats/get",
  errors: "cluster:monitor/xpack/inference/elserve/errors",
};
const POLL_MS = 3000;          // while answers come
const MAX_POLL_MS = 30000;     // back-off ceiling while they fail
const HIDDEN_POLL_MS = 15000;  // while the tab is hidden
const HISTORY_MS = 10 * 60 * 1000;  // what the charts show
const TOP_TOKENS = 20;

const S = { auth: null, user: null, can: {}, endpoints: [], timer: null, delay: POLL_MS, history: new Map() };

const $ = (id) => document.getElementById(id);

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, body) {
    const e = body && body.error;
    const reason = e && typeof e === "object" ? `${e.type}: ${e.reason}` : typeof e === "string" ? e : `HTTP ${status}`;
    super(`${status} ${reason}`);
    this.status = status;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { ...S.auth };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method, headers, cache: "no-store", credentials: "omit",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

const b64 = (s) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
const enc = encodeURIComponent;

function bytes(n) {
  if (n === null || n === undefined) return "?";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}
const seconds = (ms) => (ms === undefined ? "?" : ms < 1000 ? `${ms} ms` : `${Math.round(ms / 1000)} s`);
const state = (text, kind) => h("span", { class: `state ${kind || ""}` }, text);

function say(id, text, isError = false) {
  const el = $(id);
  el.textContent = text;
  el.className = `result ${isError ? "error" : "ok"}`;
}

// -- login ------------------------------------------------------------------------------------

async function login(auth) {
  S.auth = auth;
  const me = await api("GET", "/_security/_authenticate");
  const asked = await api("POST", "/_security/user/_has_privileges", { cluster: Object.values(ACTIONS) });
  S.user = me.username;
  S.can = Object.fromEntries(Object.entries(ACTIONS).map(([k, action]) => [k, asked.cluster[action] === true]));
  sessionStorage.setItem("elserve-auth", JSON.stringify(auth));
  $("who-name").textContent = `${me.username} (${(me.roles || []).join(", ") || "no roles"})`;
  $("who").hidden = false;
  $("login").hidden = true;
  $("app").hidden = false;
  for (const el of document.querySelectorAll(".needs")) el.hidden = !S.can[el.dataset.needs];
  S.delay = POLL_MS;
  await refresh();
}

function logout() {
  clearTimeout(S.timer);
  sessionStorage.removeItem("elserve-auth");
  Object.assign(S, { auth: null, user: null, can: {}, endpoints: [], history: new Map() });
  $("app").hidden = true;
  $("who").hidden = true;
  $("login").hidden = false;
  $("login-password").value = "";
  $("login-user").focus();
}

async function onLogin(event) {
  event.preventDefault();
  const form = event.target;
  const kind = form.kind.value;
  const auth = kind === "apikey"
    ? { Authorization: `ApiKey ${form.apikey.value.trim()}` }
    : { Authorization: `Basic ${b64(`${form.username.value}:${form.password.value}`)}` };
  $("login-error").textContent = "";
  try {
    await login(auth);
  } catch (e) {
    S.auth = null;
    $("login-error").textContent = e.status === 401 ? "Wrong user name, password or API key." : e.message;
  }
}

// -- polling ----------------------------------------------------------------------------------

async function refresh() {
  clearTimeout(S.timer);
  if (!S.auth) return;
  const jobs = {
    endpoints: S.can.endpoints && api("GET", "/_inference/_all"),
    models: S.can.mlGet && api("GET", "/_ml/trained_models?include=definition_status&size=1000"),
    stats: S.can.mlStats && api("GET", "/_ml/trained_models/_stats?size=1000"),
    memory: S.can.mlStats && api("GET", "/_ml/memory/_stats"),
    errors: S.can.errors && api("GET", "/_elserve/errors"),
  };
  const names = Object.keys(jobs);
  const results = await Promise.allSettled(names.map((n) => jobs[n] || Promise.resolve(null)));
  const got = Object.fromEntries(names.map((n, i) => [n, results[i]]));
  const failed = results.find((r) => r.status === "rejected");
  if (failed && failed.reason.status === 401) { logout(); $("login-error").textContent = "Your session ended: log in again."; return; }
  renderEndpoints(got.endpoints);
  renderModels(got.models, got.stats);
  renderDeployments(got.stats);
  renderNode(got.memory, got.stats);
  renderErrors(got.errors);
  if (failed) {
    S.delay = Math.min(S.delay * 2, MAX_POLL_MS);
    $("status").textContent = `Could not refresh (${failed.reason.message}); trying again in ${Math.round(S.delay / 1000)} s.`;
  } else {
    S.delay = POLL_MS;
    $("status").textContent = `Updated ${new Date().toLocaleTimeString()}.`;
  }
  S.timer = setTimeout(refresh, document.hidden ? Math.max(S.delay, HIDDEN_POLL_MS) : S.delay);
}

const value = (r) => (r && r.status === "fulfilled" ? r.value : null);

function unavailable(target, result, privilege) {
  if (result.status === "fulfilled" && result.value === null) {
    target.replaceChildren(h("p", { class: "muted" }, `Not shown: your roles lack ${privilege}.`));
    return true;
  }
  if (result.status === "rejected") {
    target.replaceChildren(h("p", { class: "error" }, result.reason.message));
    return true;
  }
  return false;
}

function table(headings, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {}, h("thead", {}, h("tr", {}, headings.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows)));
}

// -- endpoints --------------------------------------------------------------------------------

function settingsText(s) {
  if (!s) return "";
  const parts = [];
  if (s.model_id) parts.push(`model ${s.model_id}`);
  if (s.adaptive_allocations && s.adaptive_allocations.enabled) {
    const a = s.adaptive_allocations;
    parts.push(`adaptive ${a.min_number_of_allocations ?? 0}..${a.max_number_of_allocations ?? "?"}`);
  } else if (s.num_allocations !== undefined) parts.push(`${s.num_allocations} allocation(s)`);
  if (s.num_threads !== undefined) parts.push(`${s.num_threads} thread(s)`);
  return parts.join(", ");
}

function renderEndpoints(result) {
  const body = $("endpoints-body");
  if (unavailable(body, result, "monitor_inference")) return;
  const endpoints = value(result).endpoints || [];
  S.endpoints = endpoints;
  const rows = endpoints.map((e) => h("tr", {},
    h("th", { scope: "row" }, e.inference_id),
    h("td", {}, e.task_type),
    h("td", {}, e.service),
    h("td", {}, settingsText(e.service_settings)),
    h("td", {}, e.chunking_settings ? h("code", {}, JSON.stringify(e.chunking_settings)) : "default"),
    h("td", {}, S.can.del && !e.inference_id.startsWith(".")
      ? h("button", { type: "button", class: "danger", "aria-label": `Delete endpoint ${e.inference_id}`,
        onclick: () => deleteEndpoint(e) }, "Delete")
      : "")));
  body.replaceChildren(endpoints.length
    ? table(["Id", "Task", "Service", "Settings", "Chunking", ""], rows)
    : h("p", { class: "muted" }, "No endpoints yet."));
  for (const select of document.querySelectorAll(".endpoint-choice")) {
    const chosen = select.value;
    select.replaceChildren(...endpoints.filter((e) => e.task_type === "sparse_embedding")
      .map((e) => h("option", { value: e.inference_id }, e.inference_id)));
    if (chosen && endpoints.some((e) => e.inference_id === chosen)) select.value = chosen;
  }
}

async function deleteEndpoint(e) {
  if (!window.confirm(`Delete the endpoint ${e.inference_id}?`)) return;
  try {
    await api("DELETE", `/_inference/${enc(e.task_type)}/${enc(e.inference_id)}`);
    $("status").textContent = `Deleted ${e.inference_id}.`;
  } catch (err) {
    $("status").textContent = `Delete failed: ${err.message}`;
  }
  refresh();
}

async function onCreate(event) {
  event.preventDefault();
  const f = event.target;
  const id = f.inference_id.value.trim();
  const settings = { model_id: f.model_id.value.trim(), num_threads: Number(f.num_threads.value) };
  if (f.service.value === "elser") delete settings.model_id;
  if (f.adaptive.checked) {
    settings.adaptive_allocations = { enabled: true, min_number_of_allocations: Number(f.min.value),
      max_number_of_allocations: Number(f.max.value) };
  } else settings.num_allocations = Number(f.num_allocations.value);
  const config = { service: f.service.value, service_settings: settings };
  if (f.strategy.value) {
    const chunking = { strategy: f.strategy.value };
    if (f.max_chunk_size.value) chunking.max_chunk_size = Number(f.max_chunk_size.value);
    if (f.overlap.value) chunking[f.strategy.value === "sentence" ? "sentence_overlap" : "overlap"] = Number(f.overlap.value);
    if (f.strategy.value === "recursive") chunking.separator_group = "plaintext";
    config.chunking_settings = chunking;
  }
  const button = f.querySelector("button[type=submit]");
  button.disabled = true;
  say("create-result", `Creating ${id}: the model is downloaded and deployed if it is not yet...`);
  try {
    await api("PUT", `/_inference/sparse_embedding/${enc(id)}?timeout=30s`, config);
    say("create-result", `Created ${id}.`);
  } catch (e) {
    say("create-result", e.status === 408
      ? `${id} is stored and still deploying; its state shows under Deployments.` : e.message, e.status !== 408);
  } finally {
    button.disabled = false;
    refresh();
  }
}

// -- models and deployments -------------------------------------------------------------------

function renderModels(models, stats) {
  const body = $("models-body");
  if (unavailable(body, models, "monitor_ml")) return;
  const configs = value(models).trained_model_configs || [];
  const byId = new Map(((value(stats) || {}).trained_model_stats || []).map((s) => [s.model_id, s]));
  const rows = configs.map((m) => {
    const s = byId.get(m.model_id) || {};
    const d = s.download;
    let progress = m.fully_defined ? "ready" : "not fully defined";
    if (d) {
      progress = d.state === "failed"
        ? `download failed: ${d.reason || ""}`
        : `downloading ${bytes(d.downloaded_bytes)} of ${bytes(d.total_bytes)}`
          + (d.bytes_per_second ? `, ${bytes(d.bytes_per_second)}/s` : "")
          + (d.remaining_time_in_millis !== undefined ? `, ${seconds(d.remaining_time_in_millis)} left` : "");
    }
    const kind = d && d.state === "failed" ? "bad" : m.fully_defined ? "good" : "";
    return h("tr", {},
      h("th", { scope: "row" }, m.model_id),
      h("td", {}, (d && d.source) || (m.metadata && m.metadata.source) || m.created_by || ""),
      h("td", {}, bytes(m.model_size_bytes || (s.model_size_stats || {}).model_size_bytes)),
      h("td", {}, m.fully_defined ? "yes" : "no"),
      h("td", {}, state(progress, kind)));
  });
  body.replaceChildren(configs.length
    ? table(["Model", "Source", "Size", "Fully defined", "Progress"], rows)
    : h("p", { class: "muted" }, "No models yet: creating an endpoint downloads its model."));
}

function remember(d, now) {
  // Throughput and latency over the last minutes, from successive counts: per deployment, a
  // point per refresh (the server keeps totals; the page keeps the series it has seen).
  const node = (d.nodes || [])[0] || {};
  const count = d.inference_count || 0;
  const avg = node.average_inference_time_ms || 0;
  const series = S.history.get(d.deployment_id) || [];
  const last = series[series.length - 1];
  if (last && now > last.t) {
    const done = count - last.count;
    const perMinute = done > 0 ? (done * 60000) / (now - last.t) : 0;
    const latency = done > 0 ? Math.max(0, (avg * count - last.avg * last.count) / done) : null;
    series.push({ t: now, count, avg, perMinute, latency });
  } else if (!last) series.push({ t: now, count, avg, perMinute: 0, latency: null });
  while (series.length && series[0].t < now - HISTORY_MS) series.shift();
  S.history.set(d.deployment_id, series);
  return series;
}

function spark(points, label) {
  const w = 160, hgt = 32;
  const values = points.map((p) => (p === null ? 0 : p));
  const top = Math.max(1, ...values);
  const step = values.length > 1 ? w / (values.length - 1) : w;
  const coords = values.map((v, i) => `${(i * step).toFixed(1)},${(hgt - (v / top) * (hgt - 2) - 1).toFixed(1)}`);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("width", w);
  svg.setAttribute("height", hgt);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", label);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", coords.join(" "));
  svg.append(line);
  return svg;
}

function owner(deploymentId) {
  // Elasticsearch refuses to stop a deployment an endpoint uses, and to update through
  // `_ml/.../_update` one an endpoint created (it is updated through the endpoint's `_update`).
  for (const e of S.endpoints) {
    const own = (e.service_settings || {}).deployment_id;
    if ((own || e.inference_id) === deploymentId) return { endpoint: e, created: !own };
  }
  return null;
}

function deploymentActions(d) {
  const cells = [];
  const adaptive = d.adaptive_allocations && d.adaptive_allocations.enabled;
  const used = owner(d.deployment_id);
  const viaEndpoint = used && used.created;
  if ((viaEndpoint ? S.can.endpointUpdate : S.can.update) && d.state === "started") {
    const count = h("input", { type: "number", min: "1", value: String(d.number_of_allocations),
      "aria-label": `Allocations of ${d.deployment_id}` });
    cells.push(count, h("button", { type: "button", onclick: () => update(d, used, { num_allocations: Number(count.value) }) },
      "Set allocations"));
    const min = h("input", { type: "number", min: "0", value: String(adaptive ? d.adaptive_allocations.min_number_of_allocations ?? 0 : 0),
      "aria-label": `Adaptive minimum of ${d.deployment_id}` });
    const max = h("input", { type: "number", min: "1", value: String(adaptive ? d.adaptive_allocations.max_number_of_allocations ?? 2 : 2),
      "aria-label": `Adaptive maximum of ${d.deployment_id}` });
    cells.push(min, max, h("button", { type: "button", onclick: () => update(d, used, { adaptive_allocations: {
      enabled: true, min_number_of_allocations: Number(min.value), max_number_of_allocations: Number(max.value) } }) },
    "Set adaptive"));
  }
  if (S.can.stop && !used && d.state !== "stopping") {
    cells.push(h("button", { type: "button", class: "danger", onclick: () => stop(d) }, "Stop"));
  }
  return h("div", { class: "actions" }, cells);
}

async function update(d, used, settings) {
  // `num_allocations` on the endpoint; `number_of_allocations` on the deployment itself.
  const [path, body] = used && used.created
    ? [`/_inference/${enc(used.endpoint.task_type)}/${enc(used.endpoint.inference_id)}/_update`, { service_settings: settings }]
    : [`/_ml/trained_models/${enc(d.deployment_id)}/deployment/_update`,
      settings.num_allocations === undefined ? settings : { number_of_allocations: settings.num_allocations }];
  try {
    await api(used && used.created ? "PUT" : "POST", path, body);
    $("status").textContent = `Updated ${d.deployment_id}.`;
  } catch (e) {
    $("status").textContent = `Update of ${d.deployment_id} failed: ${e.message}`;
  }
  refresh();
}

async function stop(d) {
  try {
    await api("POST", `/_ml/trained_models/${enc(d.deployment_id)}/deployment/_stop`);
    $("status").textContent = `Stopped ${d.deployment_id}.`;
  } catch (e) {
    $("status").textContent = `Stop of ${d.deployment_id} failed: ${e.message}`;
  }
  refresh();
}

async function start(modelId) {
  $("status").textContent = `Starting ${modelId}...`;
  try {
    await api("POST", `/_ml/trained_models/${enc(modelId)}/deployment/_start?wait_for=starting`);
    $("status").textContent = `Started ${modelId}.`;
  } catch (e) {
    $("status").textContent = `Start of ${modelId} failed: ${e.message}`;
  }
  refresh();
}

function renderDeployments(stats) {
  const body = $("deployments-body");
  if (unavailable(body, stats, "monitor_ml")) return;
  const now = Date.now();
  const entries = value(stats).trained_model_stats || [];
  const deployed = entries.filter((s) => s.deployment_stats).map((s) => s.deployment_stats);
  const rows = deployed.map((d) => {
    const series = remember(d, now);
    const a = d.allocation_status || {};
    const adaptive = d.adaptive_allocations && d.adaptive_allocations.enabled
      ? ` (adaptive ${d.adaptive_allocations.min_number_of_allocations ?? 0}..${d.adaptive_allocations.max_number_of_allocations ?? "?"})` : "";
    const node = (d.nodes || [])[0] || {};
    const kind = d.state === "failed" ? "bad" : a.state === "fully_allocated" ? "good" : "";
    const perMinute = series.map((p) => p.perMinute);
    const latency = series.map((p) => p.latency);
    const lastLatency = latency.filter((v) => v !== null).pop();
    return h("tr", {},
      h("th", { scope: "row" }, d.deployment_id, d.model_id !== d.deployment_id ? h("div", { class: "muted" }, `model ${d.model_id}`) : ""),
      h("td", {}, state(`${d.state}${a.state ? ` / ${a.state}` : ""}`, kind), d.reason ? h("div", { class: "muted" }, d.reason) : ""),
      h("td", {}, `${a.allocation_count ?? 0} / ${a.target_allocation_count ?? d.number_of_allocations}${adaptive}`,
        h("div", { class: "muted" }, `${d.threads_per_allocation} thread(s) each`)),
      h("td", {}, String(node.number_of_pending_requests ?? 0), h("div", { class: "muted" }, `of ${d.queue_capacity}`)),
      h("td", {}, spark(perMinute, `Inferences per minute of ${d.deployment_id}, last minutes`),
        h("div", {}, `${Math.round(perMinute[perMinute.length - 1] || 0)}/min now, ${d.inference_count || 0} in all`)),
      h("td", {}, spark(latency, `Inference time of ${d.deployment_id}, last minutes`),
        h("div", {}, lastLatency === undefined ? "no requests yet" : `${lastLatency.toFixed(1)} ms`)),
      h("td", {}, deploymentActions(d)));
  });
  const idle = entries.filter((s) => !s.deployment_stats).map((s) => s.model_id);
  const parts = [deployed.length
    ? table(["Deployment", "State", "Allocations (now / target)", "Queue", "Throughput", "Latency", ""], rows)
    : h("p", { class: "muted" }, "No deployments.")];
  if (S.can.start && idle.length) {
    parts.push(h("p", { class: "actions" }, "Not deployed:",
      idle.map((m) => h("button", { type: "button", onclick: () => start(m) }, `Start ${m}`))));
  }
  body.replaceChildren(...parts);
}

function renderNode(memory, stats) {
  const body = $("node-body");
  if (unavailable(body, memory, "monitor_ml")) return;
  const nodes = Object.values(value(memory).nodes || {});
  const deployed = ((value(stats) || {}).trained_model_stats || []).filter((s) => s.deployment_stats);
  const usedThreads = deployed.reduce((n, s) => n + (s.deployment_stats.allocation_status
    ? s.deployment_stats.allocation_status.allocation_count * s.deployment_stats.threads_per_allocation : 0), 0);
  const rows = nodes.map((n) => {
    const ml = n.mem.ml || {};
    const processors = Number((n.attributes || {})["ml.allocated_processors"] || 0);
    const used = (ml.native_inference_in_bytes || 0) + (ml.native_code_overhead_in_bytes || 0);
    return h("tr", {},
      h("th", { scope: "row" }, n.name),
      h("td", {}, `${usedThreads} used / ${processors - usedThreads} free of ${processors}`),
      h("td", {}, `${bytes(used)} used / ${bytes(Math.max(0, ml.max_in_bytes - used))} free of ${bytes(ml.max_in_bytes)}`),
      h("td", {}, bytes(n.mem.total_in_bytes)));
  });
  body.replaceChildren(table(["Node", "Processors", "ML memory", "Machine memory"], rows));
}

function renderErrors(result) {
  const body = $("errors-body");
  if (unavailable(body, result, "monitor_inference")) return;
  const errors = value(result).errors || [];
  body.replaceChildren(errors.length
    ? table(["Time", "Request", "Status", "Error"], errors.slice(0, 20).map((e) => h("tr", {},
      h("td", {}, new Date(e.time_ms).toLocaleTimeString()),
      h("td", {}, h("code", {}, `${e.method} ${e.path}`)),
      h("td", {}, String(e.status)),
      h("td", {}, e.type ? `${e.type}: ${e.reason}` : e.reason))))
    : h("p", { class: "muted" }, "No server-side errors recently."));
}

// -- try it and chunk preview -----------------------------------------------------------------

function topTokens(embedding, n) {
  return Object.entries(embedding).sort((a, b) => b[1] - a[1]).slice(0, n);
}

function bars(tokens, label) {
  const top = tokens.length ? tokens[0][1] : 1;
  return h("ul", { class: "bars", "aria-label": label },
    tokens.map(([token, weight]) => h("li", {},
      h("span", { class: "token" }, token),
      h("span", { class: "bar-fill", "data-width": String(weight / top) }),
      h("span", {}, weight.toFixed(3)))));
}

function sizeBars(root) {
  // Widths set through the CSSOM: the policy allows no inline style attributes.
  for (const el of root.querySelectorAll(".bar-fill")) el.style.width = `${(Number(el.dataset.width) * 100).toFixed(1)}%`;
}

async function onTry(event) {
  event.preventDefault();
  const id = $("try-endpoint").value;
  const text = $("try-text").value;
  if (!id) { say("try-result", "Create an endpoint first.", true); return; }
  say("try-result", "Embedding...");
  try {
    const answer = await api("POST", `/_inference/sparse_embedding/${enc(id)}`, { input: [text] });
    const result = answer.sparse_embedding[0];
    const tokens = topTokens(result.embedding, TOP_TOKENS);
    say("try-result", `${Object.keys(result.embedding).length} tokens; top: ${tokens.length ? tokens[0][0] : "none"}`
      + (result.is_truncated ? " (the text was truncated)" : ""));
    const chart = bars(tokens, `Top ${TOP_TOKENS} tokens and weights`);
    $("try-chart").replaceChildren(chart);
    sizeBars(chart);
    const body = JSON.stringify({ input: [text] });
    $("try-curl").textContent = `curl -u "$USER:$PASSWORD" -X POST "${location.origin}/_inference/sparse_embedding/${id}" `
      + `-H 'Content-Type: application/json' -d '${body.replaceAll("'", "'\\''")}'`;
    $("try-python").textContent = `from elasticsearch import Elasticsearch\n\n`
      + `es = Elasticsearch(${JSON.stringify(location.origin)}, basic_auth=(user, password))\n`
      + `es.inference.sparse_embedding(inference_id=${JSON.stringify(id)}, input=${JSON.stringify([text])})`;
    $("try-code").hidden = false;
  } catch (e) {
    say("try-result", e.message, true);
  }
}

function chunkingSettings(f) {
  const strategy = f.strategy.value;
  const settings = { strategy };
  if (strategy === "none") return settings;
  settings.max_chunk_size = Number(f.max_chunk_size.value);
  const overlap = Number(f.overlap.value || 0);
  if (strategy === "word") settings.overlap = overlap;
  if (strategy === "sentence") settings.sentence_overlap = overlap;
  if (strategy === "recursive") settings.separator_group = f.separator_group.value;
  return settings;
}

function highlight(text, chunks) {
  // Offsets count UTF-16 code units, as JavaScript strings do: slice them as they are. Chunks may
  // overlap; each piece says which chunks hold it, and each chunk's start is numbered in text.
  const cuts = new Set([0, text.length]);
  chunks.forEach((c) => { cuts.add(c.text_offset.start); cuts.add(c.text_offset.end); });
  const points = [...cuts].sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i + 1 < points.length; i += 1) {
    const [a, b] = [points[i], points[i + 1]];
    const holders = chunks.map((c, n) => (c.text_offset.start <= a && b <= c.text_offset.end ? n : -1)).filter((n) => n >= 0);
    for (const n of holders) if (chunks[n].text_offset.start === a) out.push(h("span", { class: "chunk-no" }, `[${n + 1}]`));
    const piece = text.slice(a, b);
    if (!holders.length) out.push(piece);
    else {
      const cls = holders.length > 1 ? "both" : holders[0] % 2 ? "odd" : "";
      out.push(h("mark", { class: cls, title: `chunk ${holders.map((n) => n + 1).join(" and ")}` }, piece));
    }
  }
  return out;
}

async function onChunks(event) {
  event.preventDefault();
  const f = event.target;
  const id = f.endpoint.value;
  const text = f.text.value;
  if (!id) { say("chunk-result", "Create an endpoint first.", true); return; }
  say("chunk-result", "Chunking and embedding...");
  try {
    const answer = await api("POST", `/_inference/sparse_embedding/${enc(id)}?timeout=5m`,
      { input: [text], chunk: true, return_text: false, chunking_settings: chunkingSettings(f) });
    const chunks = answer.chunked_inference_service_result[0];
    say("chunk-result", `${chunks.length} chunk(s).`);
    $("chunk-doc").replaceChildren(...highlight(text, chunks));
    $("chunk-list").replaceChildren(...chunks.map((c, n) => h("li", {},
      h("strong", {}, `Chunk ${n + 1}`), ` (characters ${c.text_offset.start}..${c.text_offset.end}`,
      c.is_truncated ? ", truncated" : "", "): ",
      topTokens(c.embedding, 5).map(([t, w]) => `${t} ${w.toFixed(2)}`).join(", "))));
  } catch (e) {
    say("chunk-result", e.message, true);
  }
}

// -- start ------------------------------------------------------------------------------------

function wire() {
  $("login-form").addEventListener("submit", onLogin);
  for (const radio of document.querySelectorAll("input[name=kind]")) {
    radio.addEventListener("change", () => {
      const apikey = document.querySelector("input[name=kind]:checked").value === "apikey";
      document.querySelector(".basic-fields").hidden = apikey;
      document.querySelector(".apikey-fields").hidden = !apikey;
    });
  }
  $("logout").addEventListener("click", logout);
  $("create-form").addEventListener("submit", onCreate);
  $("try-form").addEventListener("submit", onTry);
  $("chunk-form").addEventListener("submit", onChunks);
  for (const button of document.querySelectorAll("button.copy")) {
    button.addEventListener("click", () => navigator.clipboard.writeText($(button.dataset.copy).textContent));
  }
  document.addEventListener("visibilitychange", () => { if (!document.hidden && S.auth) refresh(); });
  const saved = sessionStorage.getItem("elserve-auth");
  if (saved) login(JSON.parse(saved)).catch(() => logout());
}

wire();
