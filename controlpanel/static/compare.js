// Compare page: polls /api/compare every 2 s and draws one card per underlying (rows per venue and market kind).
"use strict";

(() => {
  const { $, setText, el, num, pct, bps, age, until, getJSON, conn, every } = TV;
  const REFRESH_MS = 2000;
  const WIDE_BPS = 25;  // an LTP spread wider than this is drawn amber: worth a look, not noise
  const KIND = { spot: "spot", perpetual: "perp", future: "future" };
  const VENUE = {};  // exchange -> display name, as each exchange declares it (/api/venues)
  const venue = (name) => VENUE[name] || name;
  let picked = decodeURIComponent(location.hash.slice(1)) || "ALL";
  let last = null;

  function td(label, cls, text, title) {
    const c = el("td", cls, text);
    c.dataset.label = label;
    if (title) c.title = title;
    return c;
  }

  function venueCell(r) {
    const c = td("venue", "l venue");
    c.append(el("span", "venue__ex", venue(r.venue)), el("span", "venue__feed", r.feed));
    if (r.testnet) c.append(el("span", "tag", "testnet"));
    return c;
  }

  function marketCell(r) {
    const c = td("market", "l market");
    const line = el("span", "market__line");
    line.append(el("span", `kind kind--${r.kind}`, KIND[r.kind] || r.kind), el("span", "quote", r.expiry ? `${r.quote} · ${r.expiry}` : r.quote));
    if (r.multiplier !== 1) line.append(el("span", "tag", `×${r.multiplier}`));
    if (r.source === "index") line.append(el("span", "tag", "index"));
    if (r.stale) line.append(el("span", "tag tag--stale", "stale"));
    c.append(el("span", "sym", r.symbol), line);
    return c;
  }

  // LTP (or the price used when there is none); INR rows show the converted value and the INR one under it.
  function priceCell(r, hl) {
    const c = td("ltp", "num ltp");
    const conv = r.converted;
    const shown = conv ? conv.ltp : r.ltp;
    c.append(el("span", "", num(shown)));
    if (r.ltp === null && r.price !== null) {
      c.firstChild.textContent = num(conv ? conv.price : r.price);
      c.append(el("span", "sub", r.price_source === "index_price" ? "index" : r.price_source));
    }
    if (conv) {
      c.append(el("span", "sub", `₹${num(r.ltp ?? r.price)}`));
      c.title = `${num(r.ltp ?? r.price)} INR at ${num(conv.rate)} INR/USDT`;
    }
    const key = `${r.feed}:${r.symbol}`;
    if (hl && hl.ltp_spread) {
      if (key === `${hl.ltp_spread.high.feed}:${hl.ltp_spread.high.symbol}`) c.classList.add("is-high");
      if (key === `${hl.ltp_spread.low.feed}:${hl.ltp_spread.low.symbol}`) c.classList.add("is-low");
    }
    return c;
  }

  function fundingCells(r, nowS) {
    const f = r.funding;
    if (!f) return [td("funding", "num dim", ""), td("8h", "num dim", ""), td("annual", "num dim", ""), td("next", "num dim", "")];
    const interval = f.interval_hours ? `/ ${f.interval_hours}h${f.interval_source === "default" ? "*" : ""}` : "/ ?h";
    const rate = td("funding", "num", `${pct(f.rate, 4)} ${interval}`,
      f.interval_source === "default" ? "interval: the exchange's usual one (the hash has none)" : f.interval_hours ? "" : "interval unknown");
    const cls = (v) => `num ${Number(v) > 0 ? "up" : Number(v) < 0 ? "down" : ""}`;
    return [rate, td("8h", cls(f.rate_8h), pct(f.rate_8h, 4)), td("annual", cls(f.annualised), pct(f.annualised, 2)),
      td("next", f.next_funding_time ? "num" : "num dim", until(f.next_funding_time, nowS), f.next_funding_time || "")];
  }

  function basisCell(r) {
    if (!r.basis) return td("basis", "num dim", r.kind === "spot" ? "" : "–");  // spot rows are the reference
    const ref = r.basis.reference;
    return td("basis", `num ${r.basis.bps > 0 ? "up" : r.basis.bps < 0 ? "down" : ""}`, bps(r.basis.bps, 1, true),
      `against ${ref.feed} ${ref.symbol} ${num(ref.price)}${ref.stale ? " (stale)" : ""}`);
  }

  function rowEl(r, hl, nowS) {
    const tr = el("tr");
    tr.dataset.key = `${r.feed}:${r.symbol}`;
    if (r.stale) { tr.classList.add("row--stale"); tr.title = r.stale_reason || "stale"; }
    const book = r.best_bid !== null || r.best_ask !== null ? `${num(r.best_bid)} / ${num(r.best_ask)}` : "–";
    tr.append(venueCell(r), marketCell(r), priceCell(r, hl), td("mark", r.mark_price === null ? "num dim" : "num", num(r.mark_price)),
      td("bid / ask", book === "–" ? "num book dim" : "num book", book), td("spread bps", r.spread_bps === null ? "num dim" : "num", bps(r.spread_bps, 2)),
      ...fundingCells(r, nowS), basisCell(r), td("age", "num", age(r.age_s)));
    return tr;
  }

  function chip(label, value, detail, cls) {
    const c = el("div", `chip ${cls || ""}`);
    c.append(el("span", "chip__label", label), el("strong", "chip__value", value));
    if (detail) c.append(el("span", "chip__detail", detail));
    return c;
  }

  function highlights(u) {
    const box = el("div", "chips");
    const s = u.highlights.ltp_spread, f = u.highlights.funding_diff;
    box.append(s ? chip("widest LTP spread", `${bps(s.bps, 1)} bps`,
      `${venue(s.high.venue)} ${s.high.symbol} ${num(s.high.ltp_usd)} ▲ · ${venue(s.low.venue)} ${s.low.symbol} ${num(s.low.ltp_usd)} ▼`,
      s.bps > WIDE_BPS ? "chip--warn" : "")
      : chip("widest LTP spread", "–", "needs two fresh venues"));
    box.append(f ? chip("widest funding diff", `${pct(f.annualised, 2)} /yr`,
      `${venue(f.high.venue)} ${f.high.symbol} ${pct(f.high.annualised, 2)} · ${venue(f.low.venue)} ${f.low.symbol} ${pct(f.low.annualised, 2)}`, "")
      : chip("widest funding diff", "–", "needs two fresh perpetuals"));
    return box;
  }

  const HEAD = [["venue", "l"], ["market", "l"], ["ltp", ""], ["mark", ""], ["bid / ask", ""], ["spread", "", "bps of the mid"],
    ["funding", "", "rate as sent / interval"], ["8h", "", "8 h equivalent"], ["annual", "", "annualised"], ["next", "", "next funding"],
    ["basis", "", "bps over the reference spot"], ["age", ""]];

  function table(rows, u, nowS) {
    const wrap = el("div", "table-wrap");
    const t = el("table", "ptable ctable");
    const head = el("tr");
    HEAD.forEach(([name, cls, title]) => { const th = el("th", cls, name); if (title) th.title = title; head.append(th); });
    const thead = el("thead");
    thead.append(head);
    const body = el("tbody");
    rows.forEach((r) => body.append(rowEl(r, u.highlights, nowS)));
    t.append(thead, body);
    wrap.append(t);
    return wrap;
  }

  function card(u, nowS) {
    const c = el("section", "card cmp");
    c.dataset.underlying = u.underlying;
    const h = el("h2", "card__title cmp__title", u.underlying);
    h.append(el("span", "card__sub", `${new Set(u.rows.map((r) => r.venue)).size} venues · ${u.rows.length + u.apart.length} markets`));
    // One market has nothing to compare with: no highlight boxes.
    c.append(h);
    if (u.rows.length + u.apart.length > 1) c.append(highlights(u));
    if (u.rows.length) c.append(table(u.rows, u, nowS));
    if (u.apart.length) {
      const note = el("p", "apart__note muted", `Not compared: ${[...new Set(u.apart.map((r) => r.reason))].join("; ")}`);
      c.append(note, table(u.apart, { highlights: {} }, nowS));
    }
    return c;
  }

  function tabs(names) {
    const box = $("#und-tabs");
    const want = ["ALL", ...names];
    const have = [...box.children].map((b) => b.dataset.u);
    if (want.join() !== have.join()) {
      box.replaceChildren(...want.map((n) => {
        const b = el("button", "tab", n === "ALL" ? "all" : n);
        b.type = "button";
        b.dataset.u = n;
        b.setAttribute("role", "tab");
        b.addEventListener("click", () => { picked = n; history.replaceState(null, "", n === "ALL" ? location.pathname : `#${n}`); render(last); });
        return b;
      }));
    }
    [...box.children].forEach((b) => b.setAttribute("aria-selected", String(b.dataset.u === picked)));
  }

  function fxLine(fx) {
    const p = $("#fx");
    if (fx.available) {
      setText(p, `INR converted at ${num(fx.rate)} INR/USDT (${fx.feed} ${fx.symbol}, ${fx.rate_source}, ${Fmt.ago(fx.age_s)}${fx.stale ? ", stale" : ""}; ${fx.origin})`);
      p.className = `tv-fx ${fx.stale ? "warn" : "muted"}`;
    } else {
      setText(p, `INR pairs shown apart: ${fx.reason}`);
      p.className = "tv-fx warn";
    }
  }

  function render(data) {
    if (!data) return;
    const names = data.underlyings.map((u) => u.underlying);
    if (picked !== "ALL" && !names.includes(picked)) picked = "ALL";
    tabs(names);
    fxLine(data.fx);
    const ref = data.reference.feed ? `Basis against ${data.reference.feed} first (${data.reference.origin})` : "Basis against the first spot feed of the same quote family";
    setText($("#ref"), ref);
    const shown = data.underlyings.filter((u) => picked === "ALL" || u.underlying === picked);
    const box = $("#underlyings");
    const scrollY = window.scrollY;
    box.replaceChildren(...shown.map((u) => card(u, data.time)));
    window.scrollTo(0, scrollY);
    $("#empty").hidden = data.underlyings.length > 0;
  }

  async function loadVenues() {
    if (Object.keys(VENUE).length) return;
    try {
      for (const v of (await getJSON("/api/venues")).venues) VENUE[v.exchange] = v.display;
    } catch (e) {
      // names fall back to the exchange ids; the comparison itself still loads
    }
  }

  async function refresh() {
    try {
      await loadVenues();
      last = await getJSON("/api/compare");
      $("#error").hidden = true;
      conn(true);
      render(last);
    } catch (e) {
      conn(false, e.message);
      const box = $("#error");
      box.hidden = false;
      setText(box, `cannot read the comparison: ${e.message}`);
    }
  }

  every(REFRESH_MS, refresh);
})();
