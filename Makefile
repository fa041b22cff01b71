# The one entry point: install, demo, test, test-fast, bench, lint, docs; and the commands
# themselves (sandbox, plan, apply, status, report, pins), which run .venv/bin/oracode-provision.
# make test: lint, then every test; make test-fast: the tests without the `slow` mark (no
# subprocesses, no servers on sockets) and with fewer Hypothesis examples, without lint. Both
# spread the tests over two workers per core (pytest-xdist: many tests wait on a subprocess or a
# server, so one per core leaves the cores half idle), a worker that runs out taking tests from
# another's queue (worksteal: the long end-to-end tests no longer end the run alone); both
# first run `make postgres`, which installs the PostgreSQL server with apt-get when no initdb
# is found (the tests start a throwaway server of their own); it says nothing when the server
# is already there. make test
# also runs `make chromium` (the browser the HTML report's tests open, at CHROMIUM), likewise.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench nightly pins report sandbox plan apply status clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

lint: install
	$(BIN)/ruff check pipeline tests bench
	$(BIN)/ruff format --check pipeline tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

TEST_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))

test: postgres chromium lint
	$(BIN)/pytest --numprocesses=$(TEST_WORKERS) --dist=worksteal

test-fast: postgres install
	$(BIN)/pytest --numprocesses=$(TEST_WORKERS) --dist=worksteal -m 'not slow' --hypothesis-profile=fast

# The server binaries (initdb, pg_ctl) looked for where tests/postgres.py looks: the Debian
# package's /usr/lib/postgresql/<major>/bin, pg_config --bindir, PATH. When none is there,
# Debian's postgresql package through apt-get, as root or with sudo.
.PHONY: postgres
postgres:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| test -x "$$(pg_config --bindir 2>/dev/null)/initdb" \
		|| command -v initdb >/dev/null 2>&1; then exit 0; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make postgres: no initdb, and installing PostgreSQL needs root or sudo" >&2; exit 1; fi; \
	command -v apt-get >/dev/null 2>&1 || { \
		echo "make postgres: no initdb and no apt-get: install the PostgreSQL server (initdb, pg_ctl)" >&2; \
		exit 1; }; \
	echo "make postgres: no initdb found; installing the PostgreSQL server with apt-get"; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql

# The headless browser the HTML report's tests and `make report-screenshot` drive (through
# Playwright's Python package, at its path: never a browser build of Playwright's own):
# CHROMIUM from the environment or make's command line (make test CHROMIUM=/opt/chromium/chrome),
# else Debian's /usr/bin/chromium, as tests/report/chromium.py says, the one place that does
# (the tests import it). When Debian's is missing, make chromium installs its package through
# apt-get, as root or with sudo; another path that is missing is for its owner to fill.
ifndef CHROMIUM
CHROMIUM := $(shell $(PYTHON) tests/report/chromium.py)
endif
export CHROMIUM
.PHONY: chromium
chromium:
	@if test -x "$(CHROMIUM)"; then exit 0; fi; \
	if [ "$(CHROMIUM)" != "$$(env -u CHROMIUM $(PYTHON) tests/report/chromium.py)" ]; then \
		echo "make chromium: no Chromium at CHROMIUM=$(CHROMIUM): install one there, or unset CHROMIUM for Debian's" >&2; \
		exit 1; fi; \
	if [ "$$(id -u)" -eq 0 ]; then sudo=; \
	elif command -v sudo >/dev/null 2>&1; then sudo=sudo; \
	else echo "make chromium: no $(CHROMIUM), and installing Chromium needs root or sudo" >&2; exit 1; fi; \
	command -v apt-get >/dev/null 2>&1 || { \
		echo "make chromium: no $(CHROMIUM) and no apt-get: install Chromium, and set CHROMIUM to its path" >&2; \
		exit 1; }; \
	echo "make chromium: no $(CHROMIUM) found; installing Chromium with apt-get"; \
	$$sudo apt-get update -qq && \
	$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium

# The demo: a sandbox on a free port (with some lost answers, to show they are found again),
# apply on the sample, then the sandbox is stopped whatever happened. Every sandbox serves one
# workspace id, so the demo keeps its workspace lock in the checkout's outputs/run: another
# checkout's demo on this host, against a sandbox of its own, is not "another run".
DEMO_LEDGER := outputs/demo-ledger.sqlite
demo: install
	@rm -f $(DEMO_LEDGER) $(DEMO_LEDGER)-wal $(DEMO_LEDGER)-shm
	@port=$$($(BIN)/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'); \
	$(BIN)/oracode-provision sandbox --port $$port --latency-ms 20-80 --drop-after 0.1 --late 0.1 --late-after 3 \
		> outputs/demo-sandbox.log 2>&1 & sandbox=$$!; \
	trap 'kill $$sandbox 2>/dev/null' EXIT; \
	$(BIN)/python -c 'import sys, time, urllib.request as u; url = sys.argv[1]; deadline = time.time() + 30; \
		exec("while True:\n try:\n  u.urlopen(url); break\n except OSError:\n  assert time.time() < deadline, \"sandbox did not start\"; time.sleep(0.2)")' \
		http://127.0.0.1:$$port/_sandbox/stats; \
	echo "sandbox on http://127.0.0.1:$$port (log: outputs/demo-sandbox.log)"; \
	SEAM_API_KEY=seam_demo_key SEAM_ENDPOINT=http://127.0.0.1:$$port ORACODE_RUN_DIR=$(CURDIR)/outputs/run \
		$(BIN)/oracode-provision apply inputs/reservations-sample.csv --config inputs/pipeline.toml \
		--ledger $(DEMO_LEDGER) --results outputs/demo-results.csv --settle-after 5; \
	status=$$?; \
	echo "apply exit code: $$status (1 = some rows were rejected, as the sample intends)"; \
	echo "results: outputs/demo-results.csv  ledger: $(DEMO_LEDGER)"; \
	test $$status -le 1

bench: install
	$(BIN)/python -m bench

# LEDGER (every target that keeps or reads the ledger): a SQLite file or a postgresql:// URL.
# It reaches the commands as written, in their environment as ORACODE_LEDGER rather than as
# --ledger, so that a URL's ?, & and $ are never the shell's or make's, and its password is
# neither echoed with the recipe nor in ps. Without LEDGER the commands' own default holds:
# $ORACODE_LEDGER when set, else outputs/ledger.sqlite.
LEDGER ?=
ifdef LEDGER
export ORACODE_LEDGER = $(value LEDGER)
endif

# The nightly job (oracode-provision nightly): apply on tonight's export, status, the report as
# JSON, then a short summary; each step's output and JSON log lines, the results and the report
# in <out_dir>/nightly-<UTC time>-* (the config's [nightly] out_dir, default outputs/; mode
# 0600), older nights' files removed after [nightly] keep_days (default 14). It exits 1 only
# for trouble new tonight, 0 for known trouble, apply's or status's code from 2 up when one
# couldn't work; make then adds its "*** [nightly] Error" line and exits 2 itself.
# make nightly INPUT="export.csv [...]" [CONFIG=pipeline.toml] [LEDGER=...]
#              [ARGS="--out-dir /var/lib/oracode --keep-days 30 --reissue-changed ..."]
nightly: install
	@test -n "$(INPUT)" || { echo 'usage: make nightly INPUT="export.csv ..." [CONFIG=...] [LEDGER=...] [ARGS=...]' >&2; exit 2; }
	$(BIN)/oracode-provision nightly $(INPUT) $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

# Every reservation's PIN for the guest messages, from the ledger (never a cancelled or
# replaced code): make pins [LEDGER=...] [OUT=outputs/pins.csv] [ARGS="--ready-only ..."]
pins: install
	$(BIN)/oracode-provision pins $(if $(OUT),--out $(OUT)) $(ARGS)

# What the runs did and what needs a person: make report [LEDGER=...]
# [FORMAT=table|csv|parquet|json|html] (html: the page, outputs/report-<UTC time>.html)
FORMAT ?= table
report: install
	$(BIN)/oracode-provision report --format $(FORMAT)

# The README's picture of the HTML report, docs/images/report.png: make demo's ledger through
# report --format html as of REPORT_DAY (the sample's stays check in around then: its next 14
# days hold some of them), then headless Chromium's screenshot of the page's top.
REPORT_DAY ?= 2027-03-08T09:00:00+00:00
SCREENSHOT := docs/images/report.png
.PHONY: report-screenshot
report-screenshot: demo chromium
	@$(BIN)/oracode-provision report --ledger $(DEMO_LEDGER) --format html \
		--out outputs/demo-report.html --as-of '$(REPORT_DAY)'; \
	test $$? -le 1 || exit 1; \
	profile=$$(mktemp -d); trap 'rm -rf "$$profile"' EXIT; \
	mkdir -p $(dir $(SCREENSHOT)); \
	"$(CHROMIUM)" --headless $$([ "$$(id -u)" -eq 0 ] && echo --no-sandbox) --disable-gpu \
		--disable-quic --no-first-run --disable-background-networking --disable-component-update \
		--disable-sync --user-data-dir="$$profile" --hide-scrollbars --window-size=1200,2300 \
		--screenshot=$(SCREENSHOT) "file://$(CURDIR)/outputs/demo-report.html" 2>/dev/null; \
	test -s $(SCREENSHOT) && echo "wrote $(SCREENSHOT) (the page: outputs/demo-report.html)"

# The commands as the README shows them, without .venv/bin on PATH; further options in ARGS:
# make sandbox [PORT=8787] [ARGS="--latency-ms 20-80 ..."]
# make plan INPUT="export.csv ..." [CONFIG=pipeline.toml] [ARGS="--out plan.csv ..."]
# make apply INPUT="export.csv ..." [CONFIG=pipeline.toml] [LEDGER=outputs/ledger.sqlite] [ARGS=...]
# make status [CONFIG=pipeline.toml] [LEDGER=outputs/ledger.sqlite] [ARGS=...]
PORT ?= 8787
sandbox: install
	$(BIN)/oracode-provision sandbox --port $(PORT) $(ARGS)

plan: install
	@test -n "$(INPUT)" || { echo 'usage: make plan INPUT="export.csv ..." [CONFIG=...] [ARGS=...]' >&2; exit 2; }
	$(BIN)/oracode-provision plan $(INPUT) $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

apply: install
	@test -n "$(INPUT)" || { echo 'usage: make apply INPUT="export.csv ..." [CONFIG=...] [LEDGER=...] [ARGS=...]' >&2; exit 2; }
	$(BIN)/oracode-provision apply $(INPUT) $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

status: install
	$(BIN)/oracode-provision status $(if $(CONFIG),--config $(CONFIG)) $(ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# Every door with its site, zone, device_id and user levels (to write [doors.aliases] from):
# make doors [DEVICES=inputs/sandbox-devices.json] [CONFIG=...] [FORMAT=table|csv|json]
# (without DEVICES it asks Seam: needs SEAM_API_KEY)
.PHONY: doors
doors: install
	$(BIN)/oracode-provision doors $(if $(DEVICES),--devices $(DEVICES)) \
		$(if $(CONFIG),--config $(CONFIG)) --format $(FORMAT)

# Seam's webhooks into the ledger (needs SEAM_WEBHOOK_SECRET; see "Getting PINs to guests"):
# make webhooks [WEBHOOK_PORT=8788] [LEDGER=outputs/ledger.sqlite] [ARGS="--host 0.0.0.0 ..."]
.PHONY: webhooks
WEBHOOK_PORT ?= 8788
webhooks: install
	$(BIN)/oracode-provision webhooks --port $(WEBHOOK_PORT) $(ARGS)

# The guide (docs/, mkdocs.yml) built into site/ with --strict: any warning (a dead link or
# anchor, a page left out of the nav, a missing snippet) fails it. make docs-serve serves it on
# http://127.0.0.1:8000 and rebuilds on every change. NO_MKDOCS_2_WARNING: Material prints a
# notice of its own end of life at every start, which says nothing of the guide.
.PHONY: docs docs-serve
MKDOCS := NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs
docs: install
	$(MKDOCS) build --strict --quiet

docs-serve: install
	$(MKDOCS) serve --strict
