# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format venv clean mutate

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/cch reproduce synthetic --quick

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# One pytest worker per core, at most 4 (pytest-xdist), each running whole test files: most
# tests are bound by single-threaded XLA compiles or Python, so a 2-core machine runs two at once.
test: $(STAMP) lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 4 --dist loadfile --durations 15

# Mutation testing (docs/testing.md): not part of `make test`. Installs mutmut on demand; the files
# and tests it covers are in pyproject.toml [tool.mutmut]; MUTANTS selects mutants by name
# (e.g. MUTANTS='theory.risk*'). Results: `.venv/bin/mutmut results`, `mutmut show NAME`. Each mutant
# runs in a fresh fork that would compile every JAX program again; a persistent compilation cache
# (in mutants/, new each run) lets it load the programs its mutant did not change (~2x faster).
MUTANTS ?=
mutate: $(STAMP)
	$(BIN)/python -m pip install -q 'mutmut>=3.8.1,<4'
	rm -rf mutants
	JAX_COMPILATION_CACHE_DIR=$(CURDIR)/mutants/.jax-cache JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 \
	JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 $(BIN)/mutmut run --max-children 2 $(MUTANTS)
	$(BIN)/mutmut results

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
