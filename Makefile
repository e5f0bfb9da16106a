# The README's two commands: `make demo` (main job end to end) and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.gsvd-installed
# The CPU build of torch lies on our machines' disks; a range would pull a CUDA build.
TORCH := 2.13.0
EXTRAS := dev,train,asr,trt,client,models
# constraints.txt pins every installed distribution (the lock); `make lock` refreshes it.
LOCK := constraints.txt

.PHONY: setup demo test lint proto-check lock lock-check

setup: $(STAMP)

$(STAMP): pyproject.toml $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c $(LOCK) --upgrade pip
	# torch first, so that the build on disk is the one taken
	$(PY) -m pip install -q -c $(LOCK) "torch==$(TORCH)"
	$(PY) -m pip install -q -c $(LOCK) -e ".[$(EXTRAS)]"
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

# Re-resolve every dependency in a throw-away venv and rewrite $(LOCK); then `make setup` installs it.
lock:
	$(PYTHON) scripts/lock.py write --extras $(EXTRAS) --torch $(TORCH)

# The installed environment against $(LOCK): every pin matches, nothing installed is unpinned.
lock-check: setup
	$(PY) scripts/lock.py check --complete
