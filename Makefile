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
TORCH = torch==2.13.0
# `make serve PORT=8080 HOST=0.0.0.0`
PORT ?= 8000
HOST ?= 127.0.0.1
# An install is redone only when what it installs from changed: these stamps are newer than
# pyproject.toml and setup.py after a successful install (delete one to force a reinstall).
RUNTIME_STAMP = $(VENV)/.lipspline-runtime-installed
DEV_STAMP = $(VENV)/.lipspline-dev-installed
NODE_STAMP = $(VENV)/.lipspline-cpp-node-built

.PHONY: install install-runtime test test-fast bench lint serve experiments chromium azurite check-port

$(PYTHON):
	@echo "==> creating the virtual environment $(VENV) ($(BASE_PYTHON) -m venv)"
	$(BASE_PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PIP) install --upgrade --quiet pip

# What `serve` needs: torch, then lipspline and its runtime dependencies (no dev extras, no chromium).
install-runtime: $(RUNTIME_STAMP)
$(RUNTIME_STAMP): pyproject.toml setup.py lipspline/_spline_kernels.c lipspline/csrc/kernel_api.h | $(PYTHON)
	@echo "==> [1/2] $(TORCH) into $(VENV) (the largest download; pinned, CPU build)"
	$(PIP) install --progress-bar on $(TORCH)
	@echo "==> [2/2] lipspline and its runtime dependencies (editable)"
	$(PIP) install --progress-bar on -e '.[server]'
	@touch $@
	@echo "==> installed: activate with 'source $(VENV)/bin/activate', or run $(abspath $(VENV))/bin/lipspline"

# Development: the runtime install plus the dev extras (tests, lint, benchmarks' peers).
install: $(DEV_STAMP) $(NODE_STAMP)
$(DEV_STAMP): pyproject.toml setup.py lipspline/_spline_kernels.c lipspline/csrc/kernel_api.h | $(PYTHON)
	@echo "==> [1/2] $(TORCH) into $(VENV) (the largest download; pinned, CPU build)"
	$(PIP) install --progress-bar on $(TORCH)
	@echo "==> [2/2] lipspline and its dependencies (editable, with the dev extras)"
	$(PIP) install --progress-bar on -e '.[dev]'
	@touch $@ $(RUNTIME_STAMP)
	@echo "==> installed: activate with 'source $(VENV)/bin/activate', or run $(abspath $(VENV))/bin/lipspline"

# The spline activation's C++ autograd nodes (lipspline/nn/native_autograd.py says why): they need
# torch's headers, so they are compiled after torch and the package are in (about 30 s). Without a
# C++ compiler the install goes on with a warning (and tries again next time): training then runs
# the Python nodes, with the same results. `make serve` skips them: they save about 1-2 % of a
# training step, not worth 30 s before a first prediction (`make install` or the image add them).
$(NODE_STAMP): lipspline/csrc/spline_autograd.cpp lipspline/csrc/kernel_api.h lipspline/nn/native_autograd.py $(RUNTIME_STAMP)
	@echo "==> the C++ spline autograd nodes (torch.utils.cpp_extension, about 30 s)"
	@$(PYTHON) -m lipspline.nn.native_autograd --strict && touch $@ \
	  || echo "warning: the C++ spline nodes were not built; training uses the Python nodes"

# Debian's chromium for the browser tests (/docs and the /ui dashboard, through Playwright);
# Playwright's own browser download needs the internet, the distribution's package does not.
chromium:
	@command -v chromium >/dev/null 2>&1 || { \
	  echo "==> installing chromium (apt-get) for the /docs browser test"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium \
	  || echo "warning: could not install chromium; the /docs browser test will fail"; }

# Azurite, Microsoft's Azure Storage emulator (from the npm registry), for the az:// dataset tests;
# installed under .tools/ (git-ignored), once.
AZURITE = .tools/azurite/node_modules/.bin/azurite-blob
azurite: $(AZURITE)
$(AZURITE):
	@if command -v npm >/dev/null 2>&1; then \
	  echo "==> installing azurite (npm) for the az:// dataset tests"; \
	  npm install --no-audit --no-fund --loglevel=error --prefix .tools/azurite azurite@3.37.0 \
	  || echo "warning: could not install azurite; the az:// dataset tests will fail"; \
	else echo "warning: npm not found; the az:// dataset tests will fail"; fi

# chromium and azurite only here: the browser and az:// tests are part of the full suite
test: install chromium azurite
	$(PYTHON) -m pytest -q

# Unit tests and the in-process HTTP tests of every route (no servers, no worker processes);
# not e2e, integration or experiments, nor the tests marked slow (`make test` runs everything).
test-fast:
	$(PYTHON) -m pytest -q -m "not slow" tests/unit tests/routes

# The embedded default: SQLite, embedded broker, one worker; no servers needed.
# The port is checked first, before any install or output: a taken one stops here.
serve: check-port install-runtime
	@$(PYTHON) -m service.cli serve --host $(HOST) --port $(PORT)

check-port:
	@$(BASE_PYTHON) -c 'import socket, sys; s = socket.socket(socket.AF_INET6 if ":" in sys.argv[1] else socket.AF_INET); \
	s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); \
	exec("try: s.bind((sys.argv[1], int(sys.argv[2])))\nexcept OSError as e: sys.exit(f\"make serve: port {sys.argv[2]} on {sys.argv[1]} is not free ({e.strerror}); choose another: make serve PORT=...\")")' \
	  '$(HOST)' '$(PORT)'

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

# The docs site (MkDocs, offline: no CDN, no web fonts) into site/, which the service serves at
# /docs/site/; the reference pages are generated from the code as it builds (docs/hooks/reference.py).
# `--strict`: a broken link or anchor fails the build, as in CI (tests/docs/test_site_build.py).
.PHONY: docs
docs: install
	$(PYTHON) -m mkdocs build --strict
	@echo "==> built site/: open it at /docs/site/ on a running service, or site/index.html"
