// The warden dashboard: `GET /v1/status` every 2 s with the token the user
// gives (kept in this tab's sessionStorage only, sent as a bearer token),
// shown as one card per group. Every text from the orchestrator (site
// names, agents' check messages, alerts) is set as text, never as HTML.
"use strict";

const KEY = "warden-token";
const PERIOD_MS = 2000;
const TIMEOUT_MS = 5000;
let inFlight = false;
const $ = (id) => document.getElementById(id);

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

// The cards shown are no longer current: said, and greyed out.
function trouble(msg) {
  $("state").textContent = msg + " — the view below is stale";
  $("state").className = "trouble";
  $("groups").className = "stale";
}

function showLogin(msg) {
  $("login").hidden = false;
  $("forget").hidden = true;
  $("groups").replaceChildren();
  $("groups").className = "";
  $("login-msg").textContent = msg || "";
  $("state").textContent = "";
  $("state").className = "";
}

async function refresh() {
  const token = sessionStorage.getItem(KEY);
  if (!token) {
    showLogin();
    return;
  }
  if (inFlight) return; // one request at a time
  inFlight = true;
  try {
    await ask(token);
  } finally {
    inFlight = false;
  }
}

// One status request with `token`; an answer that comes after the token
// changed (forgotten, or another typed) is not shown.
async function ask(token) {
  const stale = () => sessionStorage.getItem(KEY) !== token;
  let r;
  try {
    r = await fetch("/v1/status", {
      headers: { Authorization: "Bearer " + token },
      cache: "no-store",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
  } catch (e) {
    if (!stale()) trouble("orchestrator unreachable: " + e.message);
    return;
  }
  if (stale()) return;
  if (r.status === 401 || r.status === 403) {
    sessionStorage.removeItem(KEY);
    showLogin("the orchestrator refused this token (" + r.status + ")");
    return;
  }
  if (!r.ok) {
    trouble("GET /v1/status answered " + r.status);
    return;
  }
  let v;
  try {
    v = await r.json();
  } catch (e) {
    trouble("GET /v1/status: not JSON");
    return;
  }
  if (stale()) return;
  $("login").hidden = true;
  $("forget").hidden = false;
  render(v);
}

function render(v) {
  const now = new Date().toLocaleTimeString();
  const l = v.leadership;
  const follower = l && !l.is_leader
    ? " · this orchestrator follows" + (l.leader ? " " + l.leader : "") + ": the leader acts"
    : "";
  $("groups").className = "";
  if (v.isolated) {
    $("state").textContent = "ISOLATED: this orchestrator reaches no site and decides nothing (" + now + ")";
    $("state").className = "trouble";
  } else {
    $("state").textContent = "updated " + now + follower;
    $("state").className = "";
  }
  const own = ownTerm(v);
  const cards = (v.groups || []).map((g) => card(g, own));
  $("groups").replaceChildren(...cards);
}

// The leader term this orchestrator answers agents under: 0 alone; a
// follower hands out no order (none), as `warden status` judges it.
function ownTerm(v) {
  const l = v.leadership;
  if (!l) return 0;
  return l.is_leader && typeof l.term === "number" ? l.term : null;
}

function card(g, own) {
  const c = el("section", "group phase-" + g.phase);
  c.dataset.group = g.name;
  c.append(el("h2", null, g.name));
  const meta = el("p", "meta");
  const active = el("span", "active", g.active);
  active.dataset.active = g.active;
  meta.append("active ", active, " · primary " + g.primary + " · " + g.phase +
    " · epoch " + g.epoch + " · " + g.scheme + (g.maintenance ? " · MAINTENANCE" : ""));
  c.append(meta);
  for (const a of g.alerts || []) c.append(el("p", "alert", "ALERT " + a));
  const p = g.pending;
  if (p) {
    c.append(el("p", "pending", "pending approval: " + p.kind + " → " + p.to +
      (p.reason ? " (" + p.reason + ")" : "")));
  }
  const t = el("table", "sites");
  const head = el("tr");
  for (const h of ["site", "verdict", "why"]) head.append(el("th", null, h));
  t.append(head);
  for (const s of g.sites || []) {
    const tr = el("tr", "site");
    tr.dataset.site = s.name;
    // The last round's verdict; a site confirmed down stays so (and is
    // treated as down) until rise healthy rounds and hold_down have passed,
    // whatever its last round said: shown, as `warden status` marks it.
    const verdict = s.confirmed_down ? s.verdict + " · confirmed down" : s.verdict;
    const cls = "verdict verdict-" + s.verdict + (s.confirmed_down ? " confirmed-down" : "");
    tr.append(el("td", null, s.name), el("td", cls, verdict), el("td", null, s.reason));
    t.append(tr);
  }
  c.append(t);
  // A site whose agent took a higher leader term refuses this leader's
  // orders (the terms started over; the status gives the term only when
  // the agent compares it with this leader's): said under the sites, as
  // `warden status` does; the alert says what to do.
  for (const s of g.sites || []) {
    if (own != null && typeof s.taken_term === "number" && s.taken_term > own) {
      const p = el("p", "alert refuses", "site " + s.name +
        " REFUSES THIS LEADER'S ORDERS: its agent took leader term " + s.taken_term +
        ", this leader's is " + own + " (the alert says what to do)");
      p.dataset.site = s.name;
      c.append(p);
    }
  }
  const rb = g.runbook;
  if (rb) {
    c.append(el("p", "runbook", "last runbook " + rb.id + ": " + rb.kind + " " + rb.from +
      " → " + rb.to + " " + rb.status + (rb.rto_ms != null ? " (RTO " + rb.rto_ms + " ms)" : "")));
  }
  const r = g.replication;
  if (r) {
    c.append(el("p", "replication", "replication " + r.plan + ": " + r.state +
      (r.rpo_ms != null ? " · RPO " + r.rpo_ms + " ms" : "")));
  }
  return c;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = $("token").value.trim();
    $("token").value = "";
    if (t) sessionStorage.setItem(KEY, t);
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    showLogin("token forgotten");
  });
  refresh();
  setInterval(refresh, PERIOD_MS);
});
