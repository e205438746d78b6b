// ltp dashboard: polls /api/status and /api/prices every 2 s and patches the DOM in place
// (only text that changed is touched), so nothing flickers. No framework, no build step.
"use strict";

const REFRESH_MS = 2000;
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (sel, root = document) => root.querySelector(sel);
const pending = new Set();            // service ids with an action in flight
let lastStatus = null;
let pricePrefix = null;
let pricePicked = false;              // the user chose a tab: stop choosing for them
let drawerService = null;
let nodesDown = null;                 // node name -> error, when the panel watches several supervisord nodes

function setText(el, text) {
  if (el && el.textContent !== text) el.textContent = text;
}

function fmtNum(v, digits) {
  const n = Number(v);
  if (v === undefined || v === "" || !isFinite(n)) return "–";
  if (digits !== undefined) return n.toFixed(digits);
  const a = Math.abs(n);
  const d = a >= 1000 ? 2 : a >= 1 ? 4 : a >= 0.01 ? 5 : 8;
  return n.toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: d });
}

function toast(message, kind = "info") {
  const el = document.createElement("div");
  el.className = `toast toast--${kind}`;
  el.textContent = message;
  $("#toasts").appendChild(el);
  setTimeout(() => el.classList.add("toast--out"), 4500);
  setTimeout(() => el.remove(), 5000);
}

async function getJSON(url) {
  const resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw Object.assign(new Error(body.message || resp.statusText), { status: resp.status, body });
  return body;
}

// ---- status: header and cards ------------------------------------------------

const BADGE_TEXT = {
  running: "running", stopped: "stopped", stale: "stale", starting: "starting", stopping: "stopping", unknown: "unknown",
  failed: "failed", config_error: "config error",
};
// Terminal states share the red of "stopped": they need a person (fix the config, add the program).
const BADGE_CLASS = { failed: "stopped", config_error: "stopped" };

// What the card says under the figures: every reason the feed is not delivering, each with its cause,
// from the first failed attempt on; otherwise the last error the feed reported, if any.
function errorLines(s) {
  if (s.problems && s.problems.length) return s.problems.map((p) => p.message);
  if (s.process_state === "RUNNING" && s.last_error) return [`last error: ${s.last_error}`];
  return [];
}

function renderService(s) {
  const row = document.querySelector(`.svc[data-service="${CSS.escape(s.id)}"]`);
  if (!row) return;
  const busy = pending.has(s.id);
  const badge = busy ? "starting" : s.badge;
  const b = $('[data-role="badge"]', row);
  if (b.dataset.badge !== badge) {
    b.dataset.badge = badge;
    b.className = `badge badge--${BADGE_CLASS[badge] || badge}`;
  }
  const label = busy ? "pending…"
    : badge === "failed" ? (s.process_state === "NO_PROGRAM" ? "no program" : "fatal")
    : ["FATAL", "EXITED", "BACKOFF"].includes(s.process_state) && badge !== "config_error" ? s.process_state.toLowerCase()
    : badge === "stale" && (s.problems || []).some((p) => p.kind === "no_data_since_start") ? "no data"
    : BADGE_TEXT[badge] || badge;
  setText(b, label);
  const tip = [`supervisord: ${s.process_state}`];
  if (s.feed_state) tip.push(`feed: ${s.feed_state}`);
  if (s.stale) tip.push(s.process_state === "RUNNING" ? `no current data (stale_after ${s.stale_after}s)` : "its data in Redis is not current");
  if (b.title !== tip.join(" · ")) b.title = tip.join(" · ");
  const nd = $('[data-role="node"]', row);
  // No tag for a program no node has (its badge says "no program"); a red one when its node is down.
  nd.hidden = !nodesDown || (s.node === null && s.process_state !== "UNKNOWN");
  if (!nd.hidden) {
    const down = s.node === null || s.node in nodesDown;
    setText(nd, s.node || "no node");
    nd.classList.toggle("svc__node--down", down);
    const nodeTip = s.node === null ? "on no reachable supervisord node"
      : down ? `supervisord node ${s.node} is down: ${nodesDown[s.node]}` : `supervisord node ${s.node}`;
    if (nd.title !== nodeTip) nd.title = nodeTip;
  }
  $('[data-role="disabled"]', row).hidden = s.enabled;
  setText($('[data-role="points"]', row), s.data_points.toLocaleString("en-US"));
  setText($('[data-role="rate"]', row), s.process_state === "RUNNING" ? fmtNum(s.messages_per_s, 1) : "–");
  setText($('[data-role="age"]', row), Fmt.age(s.last_update_age_s));
  const rc = $('[data-role="reconnects"]', row);
  setText(rc, `${s.reconnects} / ${s.restarts}`);
  const rcTip = `${s.reconnects} reconnects; ${s.restarts} unexpected restarts; ${s.operator_starts} starts and ${s.operator_stops} stops by an operator; ${s.process_starts} process starts in all`;
  if (rc.title !== rcTip) rc.title = rcTip;
  const err = $('[data-role="error"]', row);
  const lines = errorLines(s);
  const key = lines.join("\n");
  if (err.dataset.text !== key) {
    err.dataset.text = key;
    err.replaceChildren(...lines.map((line) => { const d = document.createElement("div"); d.textContent = line; return d; }));
  }
  err.hidden = !lines.length;
  err.title = s.no_data && s.no_data.length ? `no data: ${s.no_data.join(", ")}` : "";
  const running = ["RUNNING", "STARTING", "BACKOFF"].includes(s.process_state);
  $('[data-action="start"]', row).disabled = busy || running;
  $('[data-action="stop"]', row).disabled = busy || !running;
  $('[data-action="restart"]', row).disabled = busy || s.process_state !== "RUNNING";
  row.classList.toggle("svc--busy", busy);
}

function renderStatus(st) {
  lastStatus = st;
  const sum = st.summary;
  setText($("#count-total"), String(sum.total));
  setText($("#count-running"), String(sum.running));
  setText($("#count-stale"), String(sum.stale));
  $("#count-stale").className = sum.stale ? "warn" : "";
  setText($("#count-points"), sum.data_points.toLocaleString("en-US"));
  setText($("#last-update"), sum.last_update ? `${new Date(sum.last_update * 1000).toLocaleTimeString()} (${Fmt.age(st.time - sum.last_update)})` : "–");
  const problems = [];
  const nodes = st.nodes || [];
  nodesDown = nodes.length > 1 ? Object.fromEntries(nodes.filter((n) => !n.ok).map((n) => [n.name, n.error])) : null;
  st.services.forEach(renderService);
  document.querySelectorAll(".card[data-exchange]").forEach((card) => {
    const mine = st.services.filter((s) => s.exchange === card.dataset.exchange);
    setText($('[data-role="exsum"]', card), `${mine.filter((s) => s.process_state === "RUNNING").length}/${mine.length} running`);
  });
  if (st.config && !st.config.ok) problems.push(`Configuration unusable, no feed can start: ${st.config.error}`);
  if (!st.redis.ok) problems.push(`Redis unreachable: ${st.redis.error}`);
  if (nodesDown && st.supervisor.answered) {
    nodes.filter((n) => !n.ok).forEach((n) => problems.push(`supervisord node ${n.name} (${n.url}) is down: ${n.error}; its feeds' state is unknown`));
  } else if (!st.supervisor.ok) problems.push(`supervisord unreachable: ${st.supervisor.error}`);
  const sys = $("#system");
  sys.hidden = !problems.length;
  setText(sys, problems.join(" · "));
  renderTabs(st.services);
}

async function refreshStatus() {
  try {
    renderStatus(await getJSON("/api/status"));
    $("#conn").className = "conn conn--ok";
    $("#conn").title = "connected";
  } catch (e) {
    $("#conn").className = "conn conn--bad";
    $("#conn").title = `panel unreachable: ${e.message}`;
  }
}

async function act(id, action) {
  pending.add(id);
  if (lastStatus) lastStatus.services.filter((s) => s.id === id).forEach(renderService);
  try {
    const resp = await fetch(`/api/service/${encodeURIComponent(id)}/${action}`, {
      method: "POST", headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
    });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) { window.location = "/login"; return; }
    if (!resp.ok) toast(`${id}: ${body.message || resp.statusText}`, resp.status === 409 ? "warn" : "error");
    else toast(`${id}: ${action} done (${body.process_state.toLowerCase()}${nodesDown ? ` on ${body.node}` : ""})`, "ok");
  } catch (e) {
    toast(`${id}: ${action} failed: ${e.message}`, "error");
  } finally {
    pending.delete(id);
    await refreshStatus();
  }
}

document.addEventListener("click", (ev) => {
  const btn = ev.target.closest("button[data-action]");
  if (!btn) return;
  const id = btn.closest(".svc").dataset.service;
  if (btn.dataset.action === "log") openDrawer(id);
  else act(id, btn.dataset.action);
});

// ---- prices --------------------------------------------------------------------

function renderTabs(services) {
  const tabs = $("#price-tabs");
  const current = services.find((s) => s.redis_prefix === pricePrefix);
  if (!pricePicked && !(current && current.data_points > 0)) {
    // Until the user picks, show the first feed that has data (it may appear after the page loaded).
    const best = services.find((s) => s.data_points > 0) || services[0];
    const next = best ? best.redis_prefix : null;
    if (next !== pricePrefix) {
      pricePrefix = next;
      $("#price-table tbody").replaceChildren();
      if (pricePrefix) refreshPrices();
    }
  }
  services.forEach((s) => {
    let t = tabs.querySelector(`[data-prefix="${CSS.escape(s.redis_prefix)}"]`);
    // Tabs only for feeds that have something to show (or are selected): no wall of empty tabs.
    const show = s.data_points > 0 || s.process_state === "RUNNING" || s.redis_prefix === pricePrefix;
    if (!show) { if (t) t.remove(); return; }
    if (!t) {
      t = document.createElement("button");
      t.type = "button";
      t.className = "tab";
      t.dataset.prefix = s.redis_prefix;
      t.setAttribute("role", "tab");
      t.addEventListener("click", () => { pricePrefix = s.redis_prefix; pricePicked = true; $("#price-table tbody").replaceChildren(); refreshPrices(); renderTabs(lastStatus.services); });
      tabs.appendChild(t);
    }
    setText(t, `${s.id} · ${s.data_points}`);
    t.setAttribute("aria-selected", String(s.redis_prefix === pricePrefix));
  });
}

const SVG = "http://www.w3.org/2000/svg";

function sparkline(svg, points) {
  const w = 96, h = 24;
  let line = svg.firstChild;
  if (!line) {
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("class", "spark");
    line = document.createElementNS(SVG, "polyline");
    svg.appendChild(line);
  }
  if (points.length < 2) { line.setAttribute("points", ""); return; }
  const vals = points.map((p) => p[1]);
  const lo = Math.min(...vals), hi = Math.max(...vals), span = hi - lo || 1;
  const step = w / (points.length - 1);
  const pts = vals.map((v, i) => `${(i * step).toFixed(1)},${(h - 2 - ((v - lo) / span) * (h - 4)).toFixed(1)}`).join(" ");
  if (line.getAttribute("points") !== pts) line.setAttribute("points", pts);
  svg.classList.toggle("spark--down", vals[vals.length - 1] < vals[0]);
}

function pct(rate, digits = 4) { return `${fmtNum(Number(rate) * 100, digits)}%`; }

// A funding rate per its interval, and its 8 h equivalent when the interval is another (Hyperliquid: 1 h).
function funding(label, rate, hours) {
  if (!(hours > 0)) return `${label} ${pct(rate)}`;
  const per = `${pct(rate)}/${fmtNum(hours)}h`;
  return hours === 8 ? `${label} ${per}` : `${label} ${per} (${pct((Number(rate) * 8) / hours)}/8h)`;
}

function extras(f) {
  const out = [];
  const hours = Number(f.funding_interval_hours);
  if (f.current_funding_rate !== undefined || f.estimated_funding_rate !== undefined) {
    // CoinDCX: the last settled rate and the estimate for the next settlement.
    if (f.current_funding_rate !== undefined) out.push(funding("fund", f.current_funding_rate, hours));
    if (f.estimated_funding_rate !== undefined) out.push(funding("est", f.estimated_funding_rate, hours));
  } else if (f.funding_rate !== undefined) {
    out.push(funding("fund", f.funding_rate, hours));
  }
  if (f.mark_price !== undefined && f.funding_rate !== undefined) out.push(`mark ${fmtNum(f.mark_price)}`);
  for (const [k, sym] of [["delta", "Δ"], ["gamma", "Γ"], ["vega", "ν"], ["theta", "Θ"]]) {
    if (f[k] !== undefined) out.push(`${sym} ${fmtNum(f[k], 3)}`);
  }
  // implied_volatility is a fraction on every exchange (0.65 = 65 %).
  if (f.implied_volatility !== undefined) out.push(`IV ${fmtNum(Number(f.implied_volatility) * 100, 1)}%`);
  return out.join(" · ") || "–";
}

function cell(tr, i) { return tr.children[i]; }

function renderPrices(data) {
  if (data.prefix !== pricePrefix) return;
  const body = $("#price-table tbody");
  const seen = new Set();
  const now = Date.now();
  data.rows.forEach((r, idx) => {
    seen.add(r.symbol);
    let tr = body.querySelector(`tr[data-symbol="${CSS.escape(r.symbol)}"]`);
    if (!tr) {
      tr = document.createElement("tr");
      tr.dataset.symbol = r.symbol;
      ["l sym", "num", "num", "num opt", "opt x", "c", "num opt"].forEach((cls) => {
        const td = document.createElement("td"); td.className = cls; tr.appendChild(td);
      });
      cell(tr, 5).appendChild(document.createElementNS(SVG, "svg"));
    }
    if (body.children[idx] !== tr) body.insertBefore(tr, body.children[idx] || null);
    const f = r.fields;
    // A `stale` field: the feed says (or the panel found) this value is not current, and why.
    const st = r.stale;
    const staleKey = st ? st.value : "";
    if ((tr.dataset.stale || "") !== staleKey) {
      tr.dataset.stale = staleKey;
      tr.dataset.staleCause = st ? st.cause : "";
      const tip = st ? `stale since ${st.since}: ${st.meaning || st.cause}` : "";
      cell(tr, 0).title = tip;
      cell(tr, 6).title = tip;
      cell(tr, 0).className = st ? "l sym down" : "l sym";
      cell(tr, 6).className = st ? "num opt down" : "num opt";
    }
    setText(cell(tr, 0), st ? `${r.symbol} ⚠` : r.symbol);
    const ltp = fmtNum(f.ltp);
    const prev = tr.dataset.ltp;
    if (prev !== undefined && prev !== f.ltp) {
      tr.classList.remove("tick-up", "tick-down");
      void tr.offsetWidth; // restart the highlight animation
      tr.classList.add(Number(f.ltp) >= Number(prev) ? "tick-up" : "tick-down");
    }
    tr.dataset.ltp = f.ltp;
    setText(cell(tr, 1), ltp);
    // Field names are the contract's (workers/runtime/fields.py), the same on every exchange.
    const ch = f.price_change_percent;
    const chTd = cell(tr, 2);
    setText(chTd, ch === undefined || ch === "" ? "–" : `${Number(ch) > 0 ? "+" : ""}${fmtNum(ch, 2)}%`);
    chTd.className = `num ${Number(ch) > 0 ? "up" : Number(ch) < 0 ? "down" : ""}`;
    const book = cell(tr, 3);
    const hasBook = f.best_bid !== undefined || f.best_ask !== undefined;
    setText(book, hasBook ? `${fmtNum(f.best_bid)} / ${fmtNum(f.best_ask)}` : "–");
    const sizes = f.bid_size !== undefined || f.ask_size !== undefined ? `size ${fmtNum(f.bid_size)} / ${fmtNum(f.ask_size)}` : "";
    if (book.title !== sizes) book.title = sizes;
    setText(cell(tr, 4), extras(f));
    sparkline(cell(tr, 5).firstChild, r.history);
    const age = f.recv_ts ? Fmt.age((now - Number(f.recv_ts)) / 1000) : "–";
    setText(cell(tr, 6), st ? `${st.cause.replaceAll("_", " ")} · ${age}` : age);
  });
  [...body.children].forEach((tr) => { if (!seen.has(tr.dataset.symbol)) tr.remove(); });
  $("#price-empty").hidden = data.rows.length > 0;
  setText($("#price-total"), data.total > data.rows.length ? `${data.rows.length} of ${data.total}` : `${data.total} symbols`);
}

async function refreshPrices() {
  if (!pricePrefix) return;
  try { renderPrices(await getJSON(`/api/prices?prefix=${encodeURIComponent(pricePrefix)}&limit=100`)); } catch (e) { /* status shows the outage */ }
}

// ---- log drawer ------------------------------------------------------------------

function openDrawer(id) {
  drawerService = id;
  setText($("#drawer-title"), `${id} · log`);
  setText($("#drawer-log"), "loading…");
  $("#drawer").classList.add("drawer--open");
  $("#drawer").setAttribute("aria-hidden", "false");
  refreshLog();
}

function closeDrawer() {
  drawerService = null;
  $("#drawer").classList.remove("drawer--open");
  $("#drawer").setAttribute("aria-hidden", "true");
}

async function refreshLog() {
  if (!drawerService) return;
  const id = drawerService;
  const pre = $("#drawer-log");
  try {
    const data = await getJSON(`/api/service/${encodeURIComponent(id)}/log?lines=300`);
    if (id !== drawerService) return;
    setText(pre, data.lines.join("\n") || "(the log is empty)");
  } catch (e) {
    setText(pre, `cannot read the log: ${e.message}`);
  }
  if ($("#drawer-follow").checked) pre.scrollTop = pre.scrollHeight;
}

$("#drawer-close").addEventListener("click", closeDrawer);
document.addEventListener("keydown", (ev) => { if (ev.key === "Escape") closeDrawer(); });

// ---- loop --------------------------------------------------------------------------

async function tick() {
  await Promise.all([refreshStatus(), refreshPrices(), refreshLog()]);
  setTimeout(tick, document.hidden ? REFRESH_MS * 3 : REFRESH_MS);
}
tick();
