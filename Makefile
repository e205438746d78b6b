# `make run`: the whole system under supervisord (Redis included).  `make test`: the test suite.
VENV ?= .venv
PYTHON ?= python3
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: demo not-running install dev-install system-deps test-deps run test faults lint typecheck sim bench status clean

install: system-deps $(VENV)/.installed
# Tests, simulator, linters: requirements-dev.txt on top of the runtime's.
dev-install: install $(VENV)/.dev-installed

# Debian/Ubuntu packages the project needs: redis-server and venv support for python3.
system-deps:
	@missing=""; \
	command -v redis-server >/dev/null 2>&1 || missing="$$missing redis-server"; \
	$(PYTHON) -c "import ensurepip, venv" >/dev/null 2>&1 || missing="$$missing python3-venv python3-pip"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

# The panel's browser tests drive Debian's chromium; only `make test` needs it.
test-deps:
	@[ -x /usr/bin/chromium ] || { echo "installing Debian package: chromium"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium; }

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q --upgrade pip
	$(VENV)/bin/python -m pip install -q -r requirements.txt
	@# Feeds run with -OO (supervisord.conf): their bytecode cached up front, not compiled at each feed's first start.
	$(VENV)/bin/python -OO -m compileall -q -j 0 $(VENV)/lib workers >/dev/null || true
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt requirements.txt $(VENV)/.installed
	$(VENV)/bin/python -m pip install -q -r requirements-dev.txt
	touch $@

run: install not-running
	mkdir -p logs var
	@echo "panel: http://127.0.0.1:8080   control: $(VENV)/bin/supervisorctl -c supervisord.conf status"
	$(VENV)/bin/supervisord -c supervisord.conf

# The whole system offline: the simulator as a supervisord program, every endpoint pointed at it.
DEMO_PORT ?= 8765
demo: dev-install not-running
	mkdir -p logs var
	$(VENV)/bin/python -m tests.sim.demo --port $(DEMO_PORT) --out var/demo.yaml
	@echo "demo: every feed on the local simulator; panel: http://127.0.0.1:8080"
	LTP_DEMO=1 LTP_SIM_PORT=$(DEMO_PORT) LTP_CONFIG=$(abspath var/demo.yaml) $(VENV)/bin/supervisord -c supervisord.conf

# A second supervisord would fail with "Another program is already listening on a port": say what is going on.
not-running:
	@if [ -S var/supervisor.sock ] && $(VENV)/bin/supervisorctl -c supervisord.conf pid >/dev/null 2>&1; then \
	  echo "ltp is already running (see: $(VENV)/bin/supervisorctl -c supervisord.conf status; stop it: $(VENV)/bin/supervisorctl -c supervisord.conf shutdown)"; \
	  exit 1; fi

# Two phases (docs/testing.md). 1: every test not marked `timing`, in TEST_WORKERS pytest-xdist processes: the
# tests mostly wait (for servers, reconnects, TTLs), so more processes than cores pay; worksteal hands a
# worker that ran dry tests queued on another. 2: the `timing` tests (a wall-clock bound on production
# behaviour), in one process with nothing else competing for the CPU. Both always run; the target fails if
# either fails (exit 5, "no tests collected", in one phase is not a failure; in both, it is). TEST_WORKERS=0: one process,
# in file order (debugging). Each phase ends with its 25 slowest tests.
TEST_WORKERS ?= 6
PYTEST = $(VENV)/bin/python -m pytest -q --durations=25
test: dev-install test-deps
	@$(PYTEST) -n $(TEST_WORKERS) --dist worksteal --timing=exclude $(PYTEST_ARGS); a=$$?; \
	echo "== timing phase: the tests marked timing, in one process =="; \
	$(PYTEST) --timing=only $(PYTEST_ARGS); b=$$?; \
	if [ $$a = 5 ] && [ $$b = 5 ]; then exit 5; fi; \
	for rc in $$a $$b; do [ $$rc = 0 ] || [ $$rc = 5 ] || exit $$rc; done

# The fault-injection suite alone, in one process: the figures of README's Reliability table come from
# this run (production timing; no other test competes for the CPU).
faults: dev-install
	$(VENV)/bin/python -m pytest -q tests/reliability $(PYTEST_ARGS)

lint: dev-install
	$(VENV)/bin/ruff check .

typecheck: dev-install
	$(VENV)/bin/mypy workers controlpanel

bench: dev-install
	$(VENV)/bin/python -m bench.bench $(BENCH_ARGS)
	$(VENV)/bin/python -m bench.venues --out bench/results.md

# Each venue's feeds at 10 symbols beside bybit_futures_orderbook (full speed and 1k frames/s; CPU per message ratios).
.PHONY: bench-venues
bench-venues: dev-install
	$(VENV)/bin/python -m bench.venues $(BENCH_ARGS)

sim: dev-install
	$(VENV)/bin/python -m tests.sim --port 8765

status:
	$(VENV)/bin/supervisorctl -c supervisord.conf status

clean:
	rm -rf $(VENV) var logs .pytest_cache

# Redis beyond one box: every URL form (password, TLS, unix socket, Sentinel, Cluster), every feed on a
# 3-master cluster, and the Sentinel and Cluster failovers, with their figures. All of it also runs in `make test`.
.PHONY: test-redis
test-redis: dev-install
	$(VENV)/bin/python -m pytest -q tests/integration/test_redis_urls.py tests/reliability/test_16_sentinel_failover.py \
	  tests/reliability/test_16_cluster_failover.py tests/e2e/test_redis_cluster.py

# The reference peer side by side (issue 17): cryptofeed, pinned, in its own virtualenv (never the project's),
# on the same Bybit linear ticker frames as bybit_futures_orderbook; prints ratios (bench/peer.py).
PEER_VENV ?= bench/.peer-venv
CRYPTOFEED_VERSION ?= 2.4.1
.PHONY: bench-peer
bench-peer: dev-install $(PEER_VENV)/.installed-$(CRYPTOFEED_VERSION)
	$(VENV)/bin/python -m bench.peer --peer-python $(PEER_VENV)/bin/python $(PEER_ARGS)

# The same virtualenv holds the bare asyncio floor's websockets, uvloop and orjson (bench/requirements-floor.txt):
# bench-only, never in requirements.txt (ltp uses neither websockets nor uvloop).
$(PEER_VENV)/.installed-$(CRYPTOFEED_VERSION): bench/requirements-floor.txt
	rm -rf $(PEER_VENV)
	$(PYTHON) -m venv $(PEER_VENV)
	$(PEER_VENV)/bin/python -m pip install -q --upgrade pip
	$(PEER_VENV)/bin/python -m pip install -q 'cryptofeed[redis]==$(CRYPTOFEED_VERSION)' -r bench/requirements-floor.txt
	touch $@
