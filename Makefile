# One entry point per job. torch is installed first and pinned: a bare `torch`
# requirement on a machine without it would pull the multi-GB CUDA build.
PYTHON ?= python3
PIP = $(PYTHON) -m pip

.PHONY: install test test-fast bench lint serve experiments

# Debian's chromium drives the browser tests (/ui) through Playwright; Playwright's own browser
# download needs the internet, the package does not. Without root it says so and carries on
# (the browser tests then fail under LIPSPLINE_REQUIRE_SERVICES=1, as CI sets it).
install:
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	@command -v chromium >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq chromium) \
		|| echo "chromium not installed (needs root: apt-get install chromium); the browser tests need it"

test: install
	$(PYTHON) -m pytest -q

# Unit tests and the in-process HTTP tests of every route (no servers, no worker processes);
# not e2e, integration or experiments, nor the tests marked slow (`make test` runs everything).
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests/unit tests/routes

# The embedded default: SQLite, embedded broker, one worker; no servers needed.
serve: install
	$(PYTHON) -m service.cli serve

lint:
	ruff check .

# The reference library `deepsplines` declares torchvision (no CPU build here)
# but its activation modules need only torch: install it without dependencies.
bench: install
	$(PIP) install --quiet --no-deps deepsplines==1.0.0
	$(PYTHON) bench/bench_splines.py
	@if [ -f bench/bench_certificates.py ]; then $(PYTHON) bench/bench_certificates.py; fi
	$(PYTHON) bench/bench_service.py
	$(PYTHON) bench/bench_load.py

# Every paper recipe, full protocol (about 45 minutes on 2 cores): rewrites
# docs/results.md and docs/figures/. `QUICK=1 make experiments` for a smoke run.
experiments: install
	$(PYTHON) -m service.cli experiment run all $(if $(QUICK),--quick,)
