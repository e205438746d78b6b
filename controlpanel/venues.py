"""/api/venues: every registered exchange as it declares itself, and which of its feeds this config runs.

The panel's pages read names and facts about exchanges from here, never from tables of their own.
"""

from __future__ import annotations

from typing import Any

from workers import registry
from workers.runtime.config import Config


def venues(config: Config) -> dict[str, Any]:
    out = []
    for ex in registry.exchanges():
        feeds = []
        for f in ex.feeds:
            svc = config.services.get(f.id)
            feeds.append({"id": f.id, "kind": f.kind, "summary": f.summary, "uses_rest": f.uses_rest,
                          "configured": svc is not None, "enabled": bool(svc and svc.enabled),
                          "redis_prefix": svc.redis_prefix if svc else None})
        out.append({"exchange": ex.name, "display": ex.display, "funding_interval_hours": ex.funding_interval_hours,
                    "feeds": feeds})
    return {"venues": out}
