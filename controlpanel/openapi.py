"""The one OpenAPI description of the panel's API; /openapi.json serves it and /docs renders it."""

from __future__ import annotations

from typing import Any

_ERROR = {"$ref": "#/components/schemas/Error"}
_SERVICE_ID = {"name": "service_id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "A service configured in exchanges.yaml (also its supervisord program name)."}


def _json(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _action(verb: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": f"{verb.capitalize()} a service",
            "description": f"supervisord `{verb}` with wait, on the node that has the program (LTP_PANEL_NODES). Needs a token "
                           "off loopback; browsers also send X-CSRF-Token. Rate-limited.",
            "tags": ["control"],
            "parameters": [_SERVICE_ID],
            "security": [{"bearer": []}, {"session": []}],
            "responses": {
                "200": _json("Done; the process state after the action and the `node` it ran on."),
                "401": _json("No or wrong token.", _ERROR),
                "403": _json("Missing or wrong CSRF token, or cross-origin request.", _ERROR),
                "404": _json("Unknown service id; `valid_ids` lists the configured ones.", _ERROR),
                "409": _json("already_started / not_running.", _ERROR),
                "429": _json("Rate limit; see Retry-After.", _ERROR),
                "500": _json("spawn_error / abnormal_termination: the program died while starting.", _ERROR),
                "503": _json("supervisord (the program's node) is not reachable.", _ERROR),
            },
        }
    }


# -- trader's views (controlpanel/views.py): comparison and option chains --------------------------

_COMPARE_PARAMS = [
    {"name": "usdtinr", "in": "query", "schema": {"type": "string"},
     "description": "USDT/INR rate source as `<feed>:<SYMBOL>`, or `none` to list INR markets apart "
                    "(default: LTP_COMPARE_USDTINR, else `coindcx_spot:I-USDT_INR` when that feed has it)."},
    {"name": "reference", "in": "query", "schema": {"type": "string"},
     "description": "Spot feed to take basis against first (default: LTP_COMPARE_REFERENCE, else the first spot feed "
                    "of the same quote family)."},
]
_COMPARE_DESCRIPTION = (
    "Two pipelined Redis round trips (SMEMBERS of every spot and derivative feed's symbol index, then HMGET per market); "
    "options excluded. Per market: ltp, mark_price, best_bid/best_ask, spread_bps, price (ltp, else mid, mark or index) "
    "and its source, age_s, stale (the hash's `stale` marker or older than the feed's stale_after); perpetuals add "
    "`funding` {rate as sent, interval_hours (hash field, else Bybit 8, Delta 8, Hyperliquid 1; CoinDCX only from the "
    "hash), rate_8h, annualised, next_funding_time}; perpetuals and futures add `basis` {bps, reference}. USD, USDT and "
    "USDC compare directly (ltp_usd, price_usd: per coin); INR markets are converted at `fx.rate` (`converted`) or "
    "listed in `apart` with a `reason`. `highlights`: the widest LTP spread (bps) and the widest annualised funding "
    "differential among fresh, non-testnet spot and perpetual rows.")


def _trader_paths() -> dict[str, Any]:
    compare_ref = {"$ref": "#/components/schemas/Compare"}
    return {
        "/api/compare": {"get": {
            "summary": "Every underlying across exchanges: prices, book, funding, basis, highlights",
            "description": _COMPARE_DESCRIPTION, "tags": ["trader"], "parameters": _COMPARE_PARAMS,
            "responses": {"200": _json("`underlyings`: one entry per underlying, most venues first.", compare_ref),
                          "400": _json("Bad `usdtinr` or `reference`; `allowed` lists the values.", _ERROR),
                          "503": _json("Redis is not reachable.", _ERROR)}}},
        "/api/compare/{underlying}": {"get": {
            "summary": "One underlying across exchanges",
            "description": "As /api/compare, for one underlying (case-insensitive): its fields at the top level.",
            "tags": ["trader"],
            "parameters": [{"name": "underlying", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "BTC, ETH, ... as derived from the feeds' symbols (controlpanel/markets.py)."},
                           *_COMPARE_PARAMS],
            "responses": {"200": _json("underlying, rows, apart, highlights, fx, reference, time."),
                          "400": _json("Bad `usdtinr` or `reference`.", _ERROR),
                          "404": _json("No compared feed lists it; `valid_underlyings` lists those that are.", _ERROR)}}},
        "/api/chain/{feed}": {"get": {
            "summary": "Option chain: calls | strike | puts for one underlying and expiry",
            "description": "From the option feed's hashes (at most three pipelined round trips: index, new contracts' listing, the chosen "
                           "chain). `rows`: strike, call and put "
                           "{symbol, bid, ask, mark, ltp, iv, bid_iv, ask_iv, delta, gamma, vega, theta, oi, age_s, stale}, "
                           "atm, stale. Also `underlyings` {underlying: [expiries]}, `underlying_price` (underlying_price, "
                           "else index_price, of the freshest contract), `atm_strike`, `days_to_expiry`, `settle_coins`.",
            "tags": ["trader"],
            "parameters": [
                {"name": "feed", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "A configured option feed: bybit_options or delta_options."},
                {"name": "underlying", "in": "query", "schema": {"type": "string"}, "description": "Default: the first listed."},
                {"name": "expiry", "in": "query", "schema": {"type": "string", "format": "date"},
                 "description": "ISO date (YYYY-MM-DD); default: the nearest."},
                {"name": "settle_coin", "in": "query", "schema": {"type": "string"},
                 "description": "Where one strike is listed per settle coin (Bybit); default: the most common."},
            ],
            "responses": {"200": _json("The chain."),
                          "400": _json("Malformed expiry; `allowed` lists the expiries.", _ERROR),
                          "404": _json("Unknown feed, underlying, expiry or settle coin; `allowed` lists the valid ones.", _ERROR)}}},
    }


_COMPARE_SCHEMA = {"type": "object", "properties": {
    "time": {"type": "number"},
    "fx": {"type": "object", "description": "pair, feed, symbol, origin, rate (INR per USDT), rate_source, age_s, stale, "
                                            "available, reason"},
    "reference": {"type": "object", "description": "feed (configured reference spot feed or null), origin"},
    "underlyings": {"type": "array", "items": {"type": "object", "description": "underlying, rows, apart, highlights"}}}}


# -- status and health (controlpanel/snapshot.py, health.py) ------------------------------------------

def _p(type_: str, description: str) -> dict[str, Any]:
    return {"type": type_, "description": description}


_SERVICE_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "id": _p("string", "The service id (also its supervisord program)."),
    "enabled": _p("boolean", "`enabled` in exchanges.yaml: started at boot."),
    "expected": _p("boolean", "Expected to deliver: enabled, or running (or being retried) although disabled. Health counts these."),
    "process_state": _p("string", "supervisord's state; NO_PROGRAM: no such program; UNKNOWN: supervisord (its node) unreachable."),
    "node": _p("string", "The supervisord node that has the program (`local` without LTP_PANEL_NODES); null: none reachable has it."),
    "nodes_defining": {"type": "array", "items": {"type": "string"},
                       "description": "With several nodes: the answering nodes that define the program."},
    "feed_state": _p("string", "The feed's own state: connecting, subscribed, reconnecting, stopped, config_error."),
    "badge": _p("string", "running, starting (also: running, no data yet within the grace), stale, stopping, stopped, "
                          "failed (FATAL or no program), config_error, unknown."),
    "delivering": _p("boolean", "Running and its data is current."),
    "starting": _p("boolean", "Within its start-up grace, no data yet and no failure reported."),
    "stale": _p("boolean", "Its data in Redis is not current: running without an update for stale_after (or none since "
                           "start after the grace, or a failed connection), or not running with data left in Redis."),
    "problems": {"type": "array", "description": "Why it is not delivering: {severity (degraded | unhealthy), kind, message}. "
                                                 "Kinds: config_error, no_program, fatal, backoff, stopped, stale, "
                                                 "no_data_since_start, no_status, symbols_without_data, status_unreadable, node_down, "
                                                 "node_conflict (active on two nodes).",
                 "items": {"type": "object"}},
    "last_error": _p("string", "The last error the current (or, when none runs, the last) process reported, with its cause."),
    "no_data": {"type": "array", "items": {"type": "string"}, "description": "Configured symbols without data (the feed's `no_data`)."},
    "messages_per_s": _p("number", "Recent rate of the running process; 0 when it is not running."),
    "last_update": _p("number", "Newest data time (epoch s): recv_ts of the first configured symbols, or last_message_at."),
    "last_update_age_s": _p("number", "Seconds since last_update; keeps growing after a stop."),
    "restarts": _p("integer", "Unexpected process starts: supervisord restarting the feed after a crash. Starts and restarts "
                              "through the panel (page, API, control key) are not counted."),
    "process_starts": _p("integer", "Every process start (service:starts:<id>, counted by the feed)."),
    "operator_starts": _p("integer", "Starts and restarts asked for through the panel, its API or the control key."),
    "operator_stops": _p("integer", "Stops asked for through the panel, its API or the control key."),
    "last_operator_action": _p("object", "{action, at (ISO), via (panel | control key)} or null."),
    "reconnects": _p("integer", "Reconnects of the running process."),
    "control_action": _p("string", "Last command from the Redis control key."),
    "control_result": _p("string", "ok, `error: <supervisord fault>`, or `refused: <why>` (bad input, timestamp more than 60 s "
                                   "away from now)."),
    "exit_status": _p("integer", "supervisord's last exit status, when not running."),
    "spawn_error": _p("string", "supervisord's spawn error, if any."),
}}

_HEALTH_SCHEMA: dict[str, Any] = {"type": "object", "properties": {
    "status": _p("string", "healthy, degraded or unhealthy."),
    "reasons": {"type": "array", "items": {"type": "string"}},
    "feeds": _p("object", "Per expected feed: {status, process_state, delivering, reasons, kinds, last_error}."),
    "stale": {"type": "array", "items": {"type": "string"}, "description": "Expected feeds whose data is not current."},
    "delivering": {"type": "array", "items": {"type": "string"}},
    "starting": {"type": "array", "items": {"type": "string"}},
    "running": {"type": "array", "items": {"type": "string"}},
    "redis": _p("boolean", "Redis answered."),
    "supervisor": _p("boolean", "supervisord answered (every node)."),
    "nodes": _p("object", "Per supervisord node: {ok, error}."),
}}


def openapi_spec() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/api/status": {"get": {
            "summary": "Every configured service with process state and live figures",
            "description": "Joins supervisord's getAllProcessInfo with exchanges.yaml and Redis (one pipelined round trip): "
                           "data points, last update age, messages/s, reconnects, restarts, last error, stale flag, "
                           "and `problems`: why a feed is not delivering, each with the cause it reported. "
                           "See the Service schema for each field's meaning.",
            "tags": ["read"], "responses": {"200": _json("Snapshot", {"$ref": "#/components/schemas/Status"})}}},
        "/api/health": {"get": {
            "summary": "healthy / degraded / unhealthy, with reasons",
            "description": "HTTP 200 only when healthy; 503 otherwise. Counts every feed expected to deliver (enabled in "
                           "exchanges.yaml, or running although disabled). `unhealthy`: Redis or supervisord unreachable, a feed "
                           "that cannot start (FATAL, no supervisord program, state=config_error), or no expected feed "
                           "delivering at all (every node down, with several). `degraded`: one of several supervisord nodes "
                           "down, a feed stopped, exiting while starting (BACKOFF), without data since "
                           "it started (after a grace of min(10 s, stale_after), or at once when its connection failed), "
                           "stale, publishing no status, or with symbols in its `no_data` list. `reasons`: one line per "
                           "problem, `<feed>: <what> : <cause from last_error>`; `feeds`: per expected feed, status "
                           "(ok, starting, degraded, unhealthy), reasons, kinds, last_error.",
            "tags": ["read"], "responses": {"200": _json("Healthy", {"$ref": "#/components/schemas/Health"}),
                                            "503": _json("Degraded or unhealthy", {"$ref": "#/components/schemas/Health"})}}},
        "/api/service/{service_id}/log": {"get": {
            "summary": "Tail of a service's log",
            "tags": ["read"],
            "parameters": [_SERVICE_ID, {"name": "lines", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000,
                                                                                      "default": 100}}],
            "security": [{"bearer": []}, {"session": []}, {}],
            "responses": {"200": _json("`lines`: the last N lines (at most 64 KiB)."), "400": _json("Bad `lines`.", _ERROR),
                          "401": _json("Token needed (off loopback).", _ERROR), "404": _json("Unknown service id.", _ERROR)}}},
        "/api/prices": {"get": {
            "summary": "Latest values under a Redis prefix, paged, with recent LTPs for sparklines",
            "tags": ["read"],
            "parameters": [
                {"name": "prefix", "in": "query", "required": True, "schema": {"type": "string"}},
                {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
            ],
            "responses": {"200": _json("`rows`: symbol, fields (the Redis hash), history [[recv_ts_ms, ltp], ...] oldest first."),
                          "404": _json("Unknown prefix; `valid_prefixes` lists them.", _ERROR)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["read"],
                             "responses": {"200": {"description": "Prometheus text format",
                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
        "/openapi.json": {"get": {"summary": "This description", "tags": ["read"], "responses": {"200": _json("OpenAPI 3.0")}}},
    }
    for verb in ("start", "stop", "restart"):
        paths[f"/api/service/{{service_id}}/{verb}"] = _action(verb)
    paths.update(_trader_paths())
    return {
        "openapi": "3.0.3",
        "info": {"title": "ltp control panel", "version": "1",
                 "description": "Controls the ltp feeds under supervisord and shows their live state from Redis."},
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "LTP_PANEL_TOKEN"},
                "session": {"type": "apiKey", "in": "cookie", "name": "ltp_session", "description": "From /login"},
            },
            "schemas": {
                "Error": {"type": "object", "required": ["error", "message"],
                          "description": "Every error under /api/ has this shape, unknown paths (404 not_found) and wrong "
                                         "methods (405 method_not_allowed, with `allowed_methods`) included; never a traceback.",
                          "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
                "Compare": _COMPARE_SCHEMA,
                "Health": _HEALTH_SCHEMA,
                "Service": _SERVICE_SCHEMA,
                "Status": {"type": "object", "properties": {
                    "services": {"type": "array", "items": {"$ref": "#/components/schemas/Service"}},
                    "programs": {"type": "array", "items": {"type": "object"}},
                    "summary": {"type": "object"}, "redis": {"type": "object"},
                    "supervisor": _p("object", "{ok: every node answered, error, answered: how many did, nodes_down}"),
                    "nodes": {"type": "array", "items": {"type": "object"},
                              "description": "Each supervisord node: name, url, ok, error, programs, elapsed_ms."},
                    "nodes_config": _p("object", "{ok, error, source}: LTP_PANEL_NODES's file, when set.")}},
            },
        },
    }
