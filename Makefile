# One entry point per job. Everything is installed into the project's virtual environment
# (.venv, created on first use), never into the global interpreter, with pip's progress shown.
# torch is installed first and pinned: a bare `torch` requirement on a machine without it
# would pull the multi-GB CUDA build.
VENV ?= .venv
# e.g. VENV_FLAGS=--system-site-packages to reuse a torch already installed on the machine
VENV_FLAGS ?=
BASE_PYTHON ?= python3
PYTHON = $(VENV)/bin/python
PIP = $(PYTHON) -m pip

.PHONY: install test test-fast bench lint serve experiments chromium

$(PYTHON):
	@echo "==> creating the virtual environment $(VENV) ($(BASE_PYTHON) -m venv)"
	$(BASE_PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PIP) install --upgrade --quiet pip

install: $(PYTHON) chromium
	@echo "==> [1/2] torch==2.13.0 into $(VENV) (the largest download; pinned, CPU build)"
	$(PIP) install --progress-bar on torch==2.13.0
	@echo "==> [2/2] lipspline and its dependencies (editable, with the dev extras)"
	$(PIP) install --progress-bar on -e '.[dev]'
	@echo "==> installed: activate with 'source $(VENV)/bin/activate', or run $(VENV)/bin/lipspline"

# Debian's chromium for the browser tests (/docs and the /ui dashboard, through Playwright);
# Playwright's own browser download needs the internet, the distribution's package does not.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing chromium (apt-get) for the /docs browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium \
	  || echo "warning: could not install chromium; the /docs browser test will fail"; }

test: install
	$(PYTHON) -m pytest -q

# Unit tests and the in-process HTTP tests of every route (no servers, no worker processes);
# not e2e, integration or experiments, nor the tests marked slow (`make test` runs everything).
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests/unit tests/routes

# The embedded default: SQLite, embedded broker, one worker; no servers needed.
serve: install
	@echo "==> starting the service (Ctrl-C stops it)"
	$(PYTHON) -m service.cli serve

lint: $(PYTHON)
	$(PYTHON) -m ruff check .

# The reference library `deepsplines` declares torchvision (no CPU build here)
# but its activation modules need only torch: install it without dependencies.
bench: install
	$(PIP) install --quiet --no-deps deepsplines==1.0.0
	$(PIP) install --quiet -e '.[bench]'   # deel-torchlip for bench_robustness.py (torch already satisfied)
	$(PYTHON) bench/bench_splines.py
	@if [ -f bench/bench_certificates.py ]; then $(PYTHON) bench/bench_certificates.py; fi
	$(PYTHON) bench/bench_service.py
	$(PYTHON) bench/bench_load.py
	$(PYTHON) bench/bench_robustness.py --quick   # the full table: python bench/bench_robustness.py (~20 min)

# Every paper recipe, full protocol (about 45 minutes on 2 cores): rewrites
# docs/results.md and docs/figures/. `QUICK=1 make experiments` for a smoke run.
experiments: install
	$(PYTHON) -m service.cli experiment run all $(if $(QUICK),--quick,)
