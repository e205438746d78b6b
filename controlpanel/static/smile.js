// A volatility smile as inline SVG: implied volatility against strike for calls and puts, the bid-ask IV
// as a band where both are known, the underlying's price as a dashed line. Self-contained, no library.
"use strict";

const Smile = (() => {
  const NS = "http://www.w3.org/2000/svg";
  const PAD = { l: 44, r: 12, t: 12, b: 26 };

  function node(tag, attrs, text) {
    const e = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // About `count` round tick values across [lo, hi].
  function ticks(lo, hi, count) {
    const span = hi - lo || Math.abs(hi) || 1;
    const raw = span / count;
    const mag = 10 ** Math.floor(Math.log10(raw));
    const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
    const out = [];
    for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toFixed(10));
    return out;
  }

  const fmtStrike = (v) => (Math.abs(v) >= 1000 ? `${+(v / 1000).toFixed(2)}k` : `${+v.toFixed(2)}`);

  // rows: [{strike, call: {iv, bid_iv, ask_iv}|null, put: {...}|null}], opts: {spot, atm}
  function draw(svg, rows, opts = {}) {
    const W = Math.max(280, Math.round(svg.getBoundingClientRect().width || 640));
    const H = W < 500 ? 220 : 280;
    svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
    svg.setAttribute("height", String(H));
    const sides = ["call", "put"].map((side) => ({
      side,
      pts: rows.filter((r) => r[side]).map((r) => ({ k: r.strike, iv: r[side].iv, bid: r[side].bid_iv, ask: r[side].ask_iv })),
    }));
    const ivs = sides.flatMap((s) => s.pts.flatMap((p) => [p.iv, p.bid, p.ask])).filter((v) => v !== null && v !== undefined && isFinite(v));
    const strikes = rows.map((r) => r.strike);
    const kids = [];
    if (!ivs.length || !strikes.length) {
      kids.push(node("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "smile__empty" }, "no implied volatility yet"));
      svg.replaceChildren(...kids);
      return;
    }
    let kLo = Math.min(...strikes), kHi = Math.max(...strikes);
    if (opts.spot) { kLo = Math.min(kLo, opts.spot); kHi = Math.max(kHi, opts.spot); }
    if (kLo === kHi) { kLo -= 1; kHi += 1; }
    const kPad = (kHi - kLo) * 0.04;
    kLo -= kPad; kHi += kPad;
    let vLo = Math.min(...ivs), vHi = Math.max(...ivs);
    const vPad = Math.max((vHi - vLo) * 0.15, 0.02);
    vLo = Math.max(0, vLo - vPad); vHi += vPad;
    const x = (k) => PAD.l + ((k - kLo) / (kHi - kLo)) * (W - PAD.l - PAD.r);
    const y = (v) => H - PAD.b - ((v - vLo) / (vHi - vLo)) * (H - PAD.t - PAD.b);

    const grid = node("g", { class: "smile__grid" });
    for (const v of ticks(vLo, vHi, 4)) {
      grid.append(node("line", { x1: PAD.l, x2: W - PAD.r, y1: y(v), y2: y(v) }));
      grid.append(node("text", { x: PAD.l - 6, y: y(v) + 4, "text-anchor": "end" }, `${+(v * 100).toFixed(1)}%`));
    }
    for (const k of ticks(kLo, kHi, W < 500 ? 4 : 7)) {
      grid.append(node("text", { x: x(k), y: H - 8, "text-anchor": "middle" }, fmtStrike(k)));
    }
    grid.append(node("line", { class: "smile__axis", x1: PAD.l, x2: W - PAD.r, y1: H - PAD.b, y2: H - PAD.b }));
    kids.push(grid);

    if (opts.spot) {
      const sx = x(opts.spot);
      kids.push(node("line", { class: "smile__spot", x1: sx, x2: sx, y1: PAD.t, y2: H - PAD.b }));
      kids.push(node("text", { class: "smile__spot-label", x: sx + 4, y: PAD.t + 10 }, `S ${fmtStrike(opts.spot)}`));
    }
    for (const { side, pts } of sides) {
      // The band: bid IV left to right, then ask IV back, where both sides of the quote have an IV.
      const band = pts.filter((p) => p.bid !== null && p.bid !== undefined && p.ask !== null && p.ask !== undefined);
      if (band.length >= 2) {
        const d = band.map((p) => `${x(p.k).toFixed(1)},${y(p.bid).toFixed(1)}`)
          .concat([...band].reverse().map((p) => `${x(p.k).toFixed(1)},${y(p.ask).toFixed(1)}`));
        kids.push(node("polygon", { class: `smile__band smile__band--${side}`, points: d.join(" ") }));
      } else {
        for (const p of band) kids.push(node("line", { class: `smile__whisker smile__whisker--${side}`, x1: x(p.k), x2: x(p.k), y1: y(p.bid), y2: y(p.ask) }));
      }
    }
    for (const { side, pts } of sides) {
      const marks = pts.filter((p) => p.iv !== null && p.iv !== undefined);
      if (marks.length >= 2) {
        kids.push(node("polyline", { class: `smile__line smile__line--${side}`, points: marks.map((p) => `${x(p.k).toFixed(1)},${y(p.iv).toFixed(1)}`).join(" ") }));
      }
      for (const p of marks) {
        const dot = node("circle", { class: `smile__dot smile__dot--${side}${p.k === opts.atm ? " smile__dot--atm" : ""}`, cx: x(p.k), cy: y(p.iv), r: p.k === opts.atm ? 4 : 2.6 });
        dot.append(node("title", {}, `${side} ${p.k}: IV ${(p.iv * 100).toFixed(1)}%`));
        kids.push(dot);
      }
    }
    svg.replaceChildren(...kids);
  }

  return { draw, ticks };
})();
