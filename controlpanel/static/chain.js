// Option chains page: polls /api/chain/<feed> every 2 s; feed, underlying, expiry and settle coin kept in the URL.
"use strict";

(() => {
  const { $, setText, el, num, pct, getJSON, conn, every } = TV;
  const REFRESH_MS = 2000;
  const q = new URLSearchParams(location.search);
  const state = { feed: q.get("feed") || ($("#feed") && $("#feed").value), underlying: q.get("underlying"), expiry: q.get("expiry"), settle: q.get("settle_coin") };
  let last = null;
  if (!state.feed) return;
  $("#feed").value = state.feed;

  function remember() {
    const p = new URLSearchParams({ feed: state.feed });
    if (state.underlying) p.set("underlying", state.underlying);
    if (state.expiry) p.set("expiry", state.expiry);
    if (state.settle) p.set("settle_coin", state.settle);
    history.replaceState(null, "", `${location.pathname}?${p}`);
  }

  function url() {
    const p = new URLSearchParams();
    if (state.underlying) p.set("underlying", state.underlying);
    if (state.underlying && state.expiry) p.set("expiry", state.expiry);
    if (state.underlying && state.expiry && state.settle) p.set("settle_coin", state.settle);
    return `/api/chain/${encodeURIComponent(state.feed)}${p.toString() ? `?${p}` : ""}`;
  }

  function options(select, values, current) {
    if ([...select.options].map((o) => o.value).join() !== values.join()) {
      select.replaceChildren(...values.map((v) => { const o = el("option", "", v); o.value = v; return o; }));
    }
    if (current !== null && current !== undefined) select.value = current;
  }

  function expiryTabs(data) {
    const box = $("#expiries");
    const have = [...box.children].map((b) => b.dataset.expiry);
    if (have.join() !== data.expiries.join()) {
      box.replaceChildren(...data.expiries.map((e) => {
        const b = el("button", "tab", e);
        b.type = "button";
        b.dataset.expiry = e;
        b.setAttribute("role", "tab");
        b.addEventListener("click", () => { state.expiry = e; state.settle = null; remember(); refresh(); });
        return b;
      }));
    }
    [...box.children].forEach((b) => b.setAttribute("aria-selected", String(b.dataset.expiry === data.expiry)));
  }

  // Option prices: cents above 100, more digits below (ETH and coin-quoted premiums are small).
  function price(v) {
    if (v === null || v === undefined) return "–";
    const a = Math.abs(v);
    return a >= 100 ? Number(v).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 2 })
      : Number(v).toLocaleString("en-US", { maximumFractionDigits: a >= 1 ? 3 : 5 });
  }

  // A chain shown in USD whose contracts settle in a coin (not a USD stablecoin) was converted at the index.
  const coinQuoted = (data) => data.settle_coin && !["USD", "USDC", "USDT"].includes(data.settle_coin);

  function sideCells(side, itm, order, coin) {
    const s = side || {};
    const quote = el("td", "num quote m-only");
    quote.append(el("span", "bid", price(s.bid)), el("span", "ask", price(s.ask)));
    const cells = {
      oi: el("td", "num opt", num(s.oi, 0)), delta: el("td", "num opt", side ? num(s.delta, 3) : "–"),
      iv: el("td", "num iv", pct(s.iv, 1)), mark: el("td", "num opt", price(s.mark)),
      bid: el("td", "num bid d-only", price(s.bid)), ask: el("td", "num ask d-only", price(s.ask)), quote,
    };
    if (s.bid_iv !== null && s.bid_iv !== undefined) cells.iv.title = `bid IV ${pct(s.bid_iv, 1)} · ask IV ${pct(s.ask_iv, 1)}`;
    // Coin-quoted options (Deribit) are shown in USD; the exchange's own coin price on hover.
    if (s.mark_coin !== null && s.mark_coin !== undefined) cells.mark.title = `mark ${price(s.mark_coin)}${coin ? ` ${coin}` : ""} as quoted`;
    return order.map((k) => {
      const c = cells[k];
      if (itm) c.classList.add("itm");
      if (!side) c.classList.add("dim");
      if (side && side.stale) { c.classList.add("cell--stale"); c.title = `${side.symbol}: ${side.stale_reason || "no recent update"}`; }
      return c;
    });
  }

  function renderTable(data) {
    const body = $("#chain tbody");
    const spot = data.underlying_price;
    const rows = data.rows.map((r) => {
      const tr = el("tr");
      tr.dataset.strike = String(r.strike);
      if (r.atm) tr.classList.add("atm");
      if (r.stale) tr.classList.add("row--stale");
      const strike = el("td", "c strike", num(r.strike));
      if (r.atm) strike.append(el("span", "atm__tag", "ATM"));
      if (r.stale) strike.append(el("span", "tag tag--stale", "stale"));
      tr.append(...sideCells(r.call, spot !== null && r.strike < spot, ["oi", "delta", "iv", "mark", "bid", "ask", "quote"], data.settle_coin), strike,
        ...sideCells(r.put, spot !== null && r.strike > spot, ["quote", "bid", "ask", "mark", "iv", "delta", "oi"], data.settle_coin));
      return tr;
    });
    body.replaceChildren(...rows);
    $("#chain-empty").hidden = rows.length > 0;
  }

  function render(data) {
    last = data;
    state.underlying = data.underlying;
    state.expiry = data.expiry;
    state.settle = data.settle_coins.length > 1 ? data.settle_coin : null;
    remember();
    options($("#underlying"), Object.keys(data.underlyings), data.underlying);
    $("#settle-wrap").hidden = data.settle_coins.length < 2;
    options($("#settle"), data.settle_coins, data.settle_coin);
    expiryTabs(data);
    const stale = data.rows.filter((r) => r.stale).length;
    const info = data.underlying
      ? `${data.underlying} ${num(data.underlying_price)} (${data.underlying_price_field || "no price yet"}) · ATM ${num(data.atm_strike)} · ` +
        `expiry ${data.expiry} (${data.days_to_expiry} d) · ${data.rows.length} strikes${data.settle_coin ? ` · settle ${data.settle_coin}` : ""}` +
        `${data.price_unit ? ` · prices in ${data.price_unit}${coinQuoted(data) ? ` (quoted in ${data.settle_coin}, × index)` : ""}` : ""}` +
        `${stale ? ` · ${stale} stale` : ""}`
      : `${data.feed} has no contracts in Redis yet`;
    setText($("#chain-info"), info);
    setText($("#smile-sub"), data.expiry ? `${data.underlying} ${data.expiry}` : "");
    Smile.draw($("#smile"), data.rows, { spot: data.underlying_price, atm: data.atm_strike });
    renderTable(data);
  }

  async function refresh() {
    try {
      render(await getJSON(url()));
      $("#error").hidden = true;
      conn(true);
    } catch (e) {
      if (e.body && e.body.allowed && (state.underlying || state.expiry || state.settle)) {
        // The expiry rolled off or the feed lists something else now: fall back to the defaults.
        state.underlying = e.body.error === "unknown_underlying" ? null : state.underlying;
        state.expiry = null;
        state.settle = null;
        return refresh();
      }
      conn(!e.status ? false : true, e.message);
      const box = $("#error");
      box.hidden = false;
      setText(box, `cannot read the chain: ${e.message}`);
    }
  }

  $("#feed").addEventListener("change", (ev) => { state.feed = ev.target.value; state.underlying = state.expiry = state.settle = null; remember(); refresh(); });
  $("#underlying").addEventListener("change", (ev) => { state.underlying = ev.target.value; state.expiry = state.settle = null; remember(); refresh(); });
  $("#settle").addEventListener("change", (ev) => { state.settle = ev.target.value; remember(); refresh(); });
  let resizeTimer = null;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => last && Smile.draw($("#smile"), last.rows, { spot: last.underlying_price, atm: last.atm_strike }), 150);
  });
  every(REFRESH_MS, refresh);
})();
