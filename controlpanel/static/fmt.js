// Formatting every page shares (app.js, trader.js); the templates load it before them.
// The Python side of an age is controlpanel/values.py age_text (messages); this one is for table cells.
"use strict";

const Fmt = (() => {
  // Seconds as a short age: now, 42s, 17m, 5h, 3d; "–" for nothing or not a number.
  function age(s) {
    if (s === null || s === undefined || s === "" || !isFinite(Number(s))) return "–";
    const n = Math.max(0, Number(s));
    if (n < 1) return "now";
    if (n < 90) return `${Math.round(n)}s`;
    if (n < 5400) return `${Math.round(n / 60)}m`;
    if (n < 172800) return `${Math.round(n / 3600)}h`;
    return `${Math.round(n / 86400)}d`;
  }

  // The same for a sentence: "now", "42s ago".
  function ago(s) {
    const text = age(s);
    return text === "now" || text === "–" ? text : `${text} ago`;
  }

  return { age, ago };
})();
