# The README's two commands: `make demo` (main job end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gsvd-installed

.PHONY: setup demo test lint proto-check

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# CPU build of torch first (on disk on our machines); a range would pull a CUDA build.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev,train,asr,trt,client,models]"
	touch $(STAMP)

demo: setup
	$(VENV)/bin/gsvd demo --out out/demo

test: setup
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) || echo "chromium not installed: the console's browser tests skip"
	$(PY) -m pytest -q -n 2 --dist loadgroup --durations=15 tests

lint: setup
	$(VENV)/bin/ruff check .

proto-check: setup
	$(PY) -m gsvd.v1.regen --check
