// Helpers shared by the trader's views (compare.js, chain.js): formatting, fetch, small DOM builders.
"use strict";

const TV = (() => {
  const $ = (sel, root = document) => root.querySelector(sel);

  function setText(el, text) {
    if (el && el.textContent !== text) el.textContent = text;
  }

  function el(tag, cls, text) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  const isNum = (v) => v !== null && v !== undefined && v !== "" && isFinite(Number(v));

  // Prices: more decimals for small numbers, thousands separators for big ones.
  function num(v, digits) {
    if (!isNum(v)) return "–";
    const n = Number(v);
    if (digits !== undefined) return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
    const a = Math.abs(n);
    const d = a >= 1000 ? 2 : a >= 1 ? 4 : a >= 0.01 ? 5 : 8;
    return n.toLocaleString("en-US", { minimumFractionDigits: 0, maximumFractionDigits: d });
  }

  // Rates and IVs are fractions on every exchange (0.0001 = 0.01 %).
  function pct(v, digits = 2, sign = false) {
    if (!isNum(v)) return "–";
    const n = Number(v) * 100;
    return `${sign && n > 0 ? "+" : ""}${n.toFixed(digits)}%`;
  }

  function bps(v, digits = 1, sign = false) {
    if (!isNum(v)) return "–";
    const n = Number(v);
    return `${sign && n > 0 ? "+" : ""}${n.toFixed(digits)}`;
  }

  const age = Fmt.age;  // fmt.js

  // "in 2h 13m" until an ISO time.
  function until(iso, nowS) {
    if (!iso) return "–";
    const t = Date.parse(iso) / 1000;
    if (!isFinite(t)) return "–";
    const s = Math.max(0, t - nowS);
    const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
    return h ? `in ${h}h ${m}m` : m ? `in ${m}m` : `in ${Math.round(s)}s`;
  }

  async function getJSON(url) {
    const resp = await fetch(url, { headers: { Accept: "application/json" }, cache: "no-store" });
    const body = await resp.json().catch(() => ({}));
    if (resp.status === 401) window.location = "/login";
    if (!resp.ok) throw Object.assign(new Error(body.message || resp.statusText), { status: resp.status, body });
    return body;
  }

  function conn(ok, message) {
    const c = $("#conn");
    if (!c) return;
    c.className = `conn ${ok ? "conn--ok" : "conn--bad"}`;
    c.title = ok ? "connected" : `panel unreachable: ${message}`;
  }

  // Poll `fn` every `ms` (slower while the tab is hidden), never two at once.
  function every(ms, fn) {
    async function loop() {
      try { await fn(); } finally { setTimeout(loop, document.hidden ? ms * 3 : ms); }
    }
    loop();
  }

  return { $, setText, el, isNum, num, pct, bps, age, until, getJSON, conn, every };
})();
