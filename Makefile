# wascc: `make run` starts the host, `make test` runs every check.
# Both set up everything first (system packages when root, a .venv, the
# package with its compiled parts), so they work on a fresh clone.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

SOURCES := setup.py setup.cfg pyproject.toml wascc/engine/_ffi_build.py \
           $(wildcard native/host/* native/include/wascc/* native/providers/*/*.[ch] native/Makefile) \
           $(wildcard examples/*/*.c examples/Makefile)

.PHONY: setup examples run test lint typecheck pytest bench fuzz clean

setup: $(STAMP)

# One line per step; the installers' own output goes to .venv/setup.log and is
# shown only when a step fails.
$(STAMP): $(SOURCES)
	@echo "setup: system packages (.ci/system-deps)"
	@bash .ci/system-deps
	@test -x $(PY) || { echo "setup: virtualenv in $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "setup: pip"
	@$(PY) -m pip install --quiet --upgrade pip >$(VENV)/setup.log 2>&1 || { cat $(VENV)/setup.log; exit 1; }
	@echo "setup: wascc and its test tools (compiles the C host, native providers and demo actors)"
	@$(PY) -m pip install -e '.[test]' >$(VENV)/setup.log 2>&1 || { cat $(VENV)/setup.log; exit 1; }
	@touch $@
	@echo "setup: done (log in $(VENV)/setup.log)"

examples: setup
	$(MAKE) -s -C examples WASCC=$(abspath $(VENV)/bin/wascc) PYTHON=$(abspath $(PY))

run: setup examples
	$(VENV)/bin/wascc up --dashboard $${WASCC_DASHBOARD:-127.0.0.1:8090}

test: setup lint typecheck pytest

lint: setup
	$(VENV)/bin/ruff check wascc tests benchmarks capabilities fuzz
	$(VENV)/bin/ruff format --check wascc tests benchmarks capabilities fuzz

typecheck: setup
	$(VENV)/bin/mypy

pytest: setup
	$(PY) -m pytest -q

# benchmarks/deps installs wrk and Debian's nginx (the HTTP anchor) when root:
# only the benchmarks need them, never the tests.
bench: setup
	@bash benchmarks/deps
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) benchmarks/bench_invoke.py
	$(PY) benchmarks/bench_provider.py
	$(PY) benchmarks/bench_backends.py
	$(PY) benchmarks/bench_backends_data.py
	$(PY) benchmarks/bench_messaging.py
	$(PY) benchmarks/bench_dataplane.py
	$(PY) benchmarks/bench_http.py

# Every fuzz target for FUZZ_CASES cases (the test suite runs a 2,000-case smoke pass).
# FUZZ_ENGINE=atheris FUZZ_TARGET=claims: one target under libFuzzer's coverage guidance.
FUZZ_CASES ?= 100000
FUZZ_ENGINE ?= builtin
fuzz: setup
ifeq ($(FUZZ_ENGINE),atheris)
	$(PY) -m pip install --quiet -e '.[fuzz]'
	$(PY) -m fuzz --engine atheris --cases $(FUZZ_CASES) $(FUZZ_TARGET)
else
	$(PY) -m fuzz --cases $(FUZZ_CASES) $(FUZZ_TARGET)
endif

clean:
	rm -rf $(VENV) build *.egg-info wascc/engine/_wascc_ffi*.so wascc/_wascc_ffi*.so
	$(MAKE) -s -C native clean
	$(MAKE) -s -C examples clean
