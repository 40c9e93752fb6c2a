// The callroute console. Everything it shows comes from the admin API (/v1/schemes…), read
// with the admin token the operator typed, which stays in this tab's sessionStorage.
//
// What it shows includes what CRMs answered, which may be hostile: every value is written as
// text (textContent), never as markup, and the server's Content-Security-Policy lets no other
// script run.
"use strict";

const TOKEN_KEY = "callroute.admin-token";
const REFRESH_MS = 2000;

const state = {
  scheme: null, // the scheme shown, by name
  callId: null, // the call whose exchange is shown
  tab: "calls",
  busy: false, // a refresh is under way
  shown: new Map(), // what each table last showed (to rebuild it only when that changes)
};

const $ = (id) => document.getElementById(id);

/** An element with `attributes`, holding `children` (strings become text). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

/** The API refused the token: back to the sign-in form. */
class SignedOut extends Error {}

/** Call the admin API; resolves to the JSON answer, or throws with the server's message. */
async function api(path, options = {}) {
  const token = sessionStorage.getItem(TOKEN_KEY) ?? "";
  const response = await fetch(path, {
    ...options,
    cache: "no-store",
    headers: { ...(options.headers ?? {}), Authorization: `Bearer ${token}` },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON: the status says enough.
  }
  if (response.status === 401) {
    signOut("That token was not accepted.");
    throw new SignedOut();
  }
  if (!response.ok) {
    throw new Error(body?.error?.message ?? `the server answered ${response.status}`);
  }
  return body;
}

const path = (...segments) => segments.map(encodeURIComponent).join("/");

/** Fill `table`'s body with `rows(items)`, unless it already shows the same `items`: a
 *  refresh that changes nothing keeps the rows, with their focus and selection. */
function fill(table, items, rows) {
  const key = JSON.stringify(items);
  if (state.shown.get(table.id) === key) return;
  state.shown.set(table.id, key);
  table.tBodies[0].replaceChildren(...items.map(rows));
}

/** Show what went wrong with something the operator did. */
function report(error) {
  if (!(error instanceof SignedOut)) $("refreshed").textContent = `error: ${error.message}`;
}
const percent = (share) => `${Math.round(share * 100)} %`;
const ms = (value) => (value === null || value === undefined ? "–" : `${value} ms`);

// --- signing in ---------------------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  // Nothing of what the token showed stays in the page.
  state.scheme = null;
  state.callId = null;
  state.shown.clear();
  for (const table of ["tenants", "calls", "settings"]) $(table).tBodies[0].replaceChildren();
  for (const id of ["exchange", "try-result"]) $(id).replaceChildren();
  $("scheme-panel").hidden = true;
  $("refreshed").textContent = "";
  $("console").hidden = true;
  $("sign-out").hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message ?? "";
  $("token").focus();
}

async function signIn(event) {
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $("token").value.trim());
  $("token").value = "";
  try {
    await api("/v1/schemes");
  } catch (error) {
    if (!(error instanceof SignedOut)) signOut(error.message);
    return;
  }
  $("sign-in").hidden = true;
  $("sign-out").hidden = false;
  $("console").hidden = false;
  await refresh();
}

// --- tenants ------------------------------------------------------------------------------

function tenantRow(scheme) {
  const health = scheme.health;
  const breakers = scheme.breakers.length
    ? scheme.breakers.map((b) => el("span", { class: `breaker ${b.state}` }, `${b.endpoint} ${b.state}`))
    : [el("span", { class: "muted" }, "not called yet")];
  const row = el(
    "tr",
    { "data-scheme": scheme.name, tabindex: "0", class: scheme.name === state.scheme ? "selected" : undefined },
    el("td", {}, el("strong", {}, scheme.name)),
    el("td", {}, String(health.calls)),
    el("td", { class: "routed" }, percent(health.routed)),
    el("td", { class: "fallback" }, percent(health.fallback)),
    el("td", { class: "failed" }, percent(health.failed)),
    el("td", {}, ms(health.p50_ms)),
    el("td", {}, ms(health.p99_ms)),
    el("td", {}, `${scheme.in_flight} of ${scheme.share}`),
    el("td", {}, ...breakers),
  );
  const open = () => selectScheme(scheme.name).catch(report);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => e.key === "Enter" && open());
  return row;
}

async function refreshTenants() {
  const { schemes } = await api("/v1/schemes");
  fill($("tenants"), schemes, tenantRow);
  if (state.scheme && !schemes.some((s) => s.name === state.scheme)) {
    // Gone at a reload.
    state.scheme = null;
    $("scheme-panel").hidden = true;
  }
}

// --- one scheme ---------------------------------------------------------------------------

async function selectScheme(name) {
  state.scheme = name;
  state.callId = null;
  $("scheme-name").textContent = name;
  $("scheme-panel").hidden = false;
  $("exchange").hidden = true;
  $("try-result").hidden = true;
  $("try-error").textContent = "";
  // Another scheme's rows never stay under this one's name.
  state.shown.delete("calls");
  state.shown.delete("settings");
  $("calls").tBodies[0].replaceChildren();
  $("settings").tBodies[0].replaceChildren();
  for (const row of $("tenants").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.scheme === name);
  }
  await Promise.all([refreshCalls(), showSettings()]);
}

function selectTab(tab) {
  state.tab = tab;
  for (const button of document.querySelectorAll("[role=tab]")) {
    button.setAttribute("aria-selected", String(button.dataset.tab === tab));
  }
  for (const name of ["calls", "try", "settings"]) {
    $(`${name}-tab`).hidden = name !== tab;
  }
  // The settings as they are now (a reload may have changed them).
  if (tab === "settings" && state.scheme) showSettings().catch(report);
}

/** What a call came to, in a few words: its destination, or its error. */
function verdict(record) {
  const parts = [];
  if (record.destination) {
    parts.push(`${record.destination.target} (${record.destination.kind})`);
  }
  if (record.error) {
    parts.push(`${record.error.kind}: ${record.error.message}`);
  }
  const reported = lastReport(record);
  if (reported) parts.push(`call ${reported.status}`);
  return parts.join(" · ");
}

/** The latest delivery attempt of the call's outcome report, if the PBX reported one. */
function lastReport(record) {
  return record.reports?.length ? record.reports[record.reports.length - 1] : undefined;
}

function callRow(record) {
  const row = el(
    "tr",
    { "data-call-id": record.call_id, tabindex: "0", class: record.call_id === state.callId ? "selected" : undefined },
    el("td", {}, new Date(record.time_ms).toLocaleTimeString()),
    el("td", {}, record.call_id || "–"),
    el("td", {}, record.caller),
    el("td", {}, record.callee),
    el("td", {}, el("span", { class: `outcome ${record.outcome}` }, record.outcome)),
    el("td", { class: "verdict" }, verdict(record)),
    el("td", {}, String(record.elapsed_ms)),
  );
  const open = () => showCall(record);
  row.addEventListener("click", open);
  row.addEventListener("keydown", (e) => e.key === "Enter" && open());
  return row;
}

async function refreshCalls() {
  const scheme = state.scheme;
  if (!scheme) return;
  const { exchanges } = await api(`/v1/schemes/${path(scheme, "exchanges")}`);
  // The operator may have opened another scheme meanwhile.
  if (scheme !== state.scheme) return;
  fill($("calls"), exchanges, callRow);
  $("calls").tBodies[0].dataset.scheme = scheme;
  $("no-calls").hidden = exchanges.length > 0;
}

/** One call's exchange, as the list of recent calls has it. */
function showCall(record) {
  state.callId = record.call_id;
  for (const row of $("calls").tBodies[0].rows) {
    row.classList.toggle("selected", row.dataset.callId === record.call_id);
  }
  showExchange($("exchange"), record);
}

/** One call's exchange: what it came to, then each request to a CRM and its answer. */
function showExchange(container, record) {
  const summary = el(
    "p",
    { class: "summary", "data-outcome": record.outcome },
    el("span", { class: `outcome ${record.outcome}` }, record.outcome),
    " ",
    el("span", { class: "verdict" }, verdict(record)),
    el("span", { class: "muted" }, ` in ${record.elapsed_ms} ms`),
  );
  const call = el(
    "p",
    { class: "muted" },
    `Call ${record.call_id || "(no id)"} from ${record.caller || "–"} to ${record.callee || "–"}`,
  );
  const attempts = record.attempts.length
    ? el("ol", { class: "attempts" }, ...record.attempts.map(attemptItem))
    : el("p", { class: "muted" }, "No request reached a CRM (the host answered before one was sent).");
  container.replaceChildren(summary, call, attempts, ...outcomeOf(record));
  container.hidden = false;
}

/** How the call ended, as the PBX reported it, and each attempt to tell the CRM. */
function outcomeOf(record) {
  const reported = lastReport(record);
  if (!reported) return [];
  const how = [`The call ended ${reported.status}`];
  if (reported.answered_by) how.push(`answered by ${reported.answered_by}`);
  how.push(`rang ${reported.ring_secs} s`, `talked ${reported.talk_secs} s`);
  if (reported.hangup_cause) how.push(`cause ${reported.hangup_cause}`);
  const deliveries = record.reports.map((delivery) =>
    el(
      "li",
      { class: "delivery" },
      el(
        "p",
        {},
        `Attempt ${delivery.attempt} of report ${delivery.report}: `,
        delivery.delivered
          ? el("span", { class: "status ok" }, "delivered")
          : el("span", { class: "status bad" }, `${delivery.error?.kind}: ${delivery.error?.message}`),
        el("span", { class: "muted" }, ` in ${delivery.elapsed_ms} ms`),
      ),
      el("ol", { class: "attempts" }, ...delivery.attempts.map(attemptItem)),
    ),
  );
  return [
    el("h3", {}, "Outcome"),
    el("p", { class: "outcome-report" }, how.join(", ")),
    el("ol", { class: "deliveries" }, ...deliveries),
  ];
}

function attemptItem(attempt) {
  const result =
    attempt.status !== null && attempt.status !== undefined
      ? el("span", { class: attempt.status < 400 ? "status ok" : "status bad" }, String(attempt.status))
      : el("span", { class: "status bad" }, attempt.error ?? "no answer");
  return el(
    "li",
    { class: "attempt" },
    el(
      "p",
      {},
      el("code", {}, `${attempt.method} ${attempt.url}`),
      " → ",
      result,
      el("span", { class: "muted" }, ` in ${attempt.elapsed_ms} ms`),
    ),
    el("h4", {}, "Sent"),
    el("pre", { class: "request" }, attempt.request_body || "(no body)"),
    el("h4", {}, "Answered"),
    el("pre", { class: "answer" }, attempt.answer || "(nothing)"),
  );
}

async function showSettings() {
  const name = state.scheme;
  const scheme = await api(`/v1/schemes/${path(name)}`);
  if (name !== state.scheme) return;
  fill($("settings"), scheme.settings, ({ key, value }) =>
    el("tr", {}, el("td", {}, el("code", {}, key)), el("td", {}, el("code", {}, value))),
  );
  $("problem").hidden = !scheme.problem;
  $("problem").textContent = scheme.problem ? `This scheme cannot route: ${scheme.problem}` : "";
}

// --- trying a call ------------------------------------------------------------------------

/** The trial the form describes, or an error naming what is wrong. */
function trialOf(form) {
  const vars = new Map();
  const lines = form.elements.vars.value.split("\n").map((l) => l.trim()).filter(Boolean);
  for (const [index, line] of lines.entries()) {
    const at = line.indexOf("=");
    if (at < 1) throw new Error(`Variables, line ${index + 1}: write name=value`);
    const name = line.slice(0, at).trim();
    if (vars.has(name)) throw new Error(`Variables, line ${index + 1}: ${name} is given twice`);
    vars.set(name, line.slice(at + 1).trim());
  }
  const trial = {
    call: {
      call_id: form.elements.call_id.value.trim() || `try-${Date.now()}`,
      caller: form.elements.caller.value.trim(),
      callee: form.elements.callee.value.trim(),
      vars: Object.fromEntries(vars),
    },
  };
  if (form.elements.use_sample.checked) {
    trial.crm_answer = { status: Number(form.elements.status.value), body: form.elements.body.value };
  }
  return trial;
}

async function tryCall(event) {
  event.preventDefault();
  const form = event.target;
  $("try-error").textContent = "";
  const button = form.querySelector("button[type=submit]");
  button.disabled = true;
  const scheme = state.scheme;
  try {
    const record = await api(`/v1/schemes/${path(scheme, "try")}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(trialOf(form)),
    });
    if (scheme === state.scheme) showExchange($("try-result"), record);
  } catch (error) {
    if (!(error instanceof SignedOut)) {
      $("try-error").textContent = error.message;
      $("try-result").hidden = true;
    }
  } finally {
    button.disabled = false;
  }
}

// --- refreshing ---------------------------------------------------------------------------

async function refresh() {
  if (state.busy || $("console").hidden || document.hidden) return;
  state.busy = true;
  try {
    await refreshTenants();
    if (state.scheme && state.tab === "calls") await refreshCalls();
    $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (error) {
    if (!(error instanceof SignedOut)) $("refreshed").textContent = `not updated: ${error.message}`;
  } finally {
    state.busy = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("token-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut());
  $("try-form").addEventListener("submit", tryCall);
  $("try-form").elements.use_sample.addEventListener("change", (e) => {
    $("sample").disabled = !e.target.checked;
    $("sample").hidden = !e.target.checked;
  });
  for (const button of document.querySelectorAll("[role=tab]")) {
    button.addEventListener("click", () => selectTab(button.dataset.tab));
  }
  setInterval(refresh, REFRESH_MS);
  if (sessionStorage.getItem(TOKEN_KEY)) {
    $("sign-in").hidden = true;
    $("sign-out").hidden = false;
    $("console").hidden = false;
    refresh();
  } else {
    signOut();
  }
});
