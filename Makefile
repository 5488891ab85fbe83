# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint format venv clean mutate mutate-verdicts mutate-sample

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
MUTMUT_RUN := JAX_COMPILATION_CACHE_DIR=$(CURDIR)/mutants/.jax-cache \
	JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS=0 JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES=0 \
	$(BIN)/mutmut run --max-children 2
# The verdict and JSON code of `cch check`, `cch verify` and `cch theory` (docs/testing.md, ~35 min on
# 2 cores): `make mutate-verdicts`.
VERDICT_MUTANTS := 'cch_jax.cli.check.x_verdict_of*' 'cch_jax.cli.check.x__as_labels*' \
	'cch_jax.cli.check.x_run*' 'cch_jax.cli.theory.x_run*' 'cch_jax.cli.theory.x_summarise*' \
	'cch_jax.cli.theory.x_format_table*' 'cch_jax.cli.verify.x_report*' 'cch_jax.cli.verify.x_run*' \
	'cch_jax.cli.verify.x_format_report*' 'cch_jax.mi.check.x__interval*' 'cch_jax.mi.check.x__side*' \
	'cch_jax.mi.check.x__calibrate*' 'cch_jax.mi.check.x__union*' 'cch_jax.mi.check.x_validated_range*' \
	'cch_jax.mi.check.xǁCheckResultǁto_dict*' 'theory.random.xǁAuditǁto_dict*'
mutate-verdicts:
	$(MAKE) mutate MUTANTS="$(VERDICT_MUTANTS)"

# The MI estimators and the losses have ~4800 mutants (hours): `make mutate-sample` runs a uniform
# random sample of 200 of them (seed 0; tools/mutant_sample.py), leaving out the verdict functions
# of cch_jax/mi/check.py that mutate-verdicts runs in full, and all mutants of the training
# schedule and loss (cch_jax/train.py). It reuses mutants/ from an earlier `make mutate` run
# (mutmut generates every mutant whatever it runs); after a source change, run that again first.
SAMPLE_EXCLUDE := $(foreach f,x__interval x__side x__calibrate x__union x_validated_range \
	xǁCheckResultǁto_dict,--exclude 'cch_jax.mi.check.$(f)*')
mutate-sample: $(STAMP)
	test -d mutants || { echo "mutants/ is missing: run make mutate first" >&2; exit 2; }
	$(MUTMUT_RUN) \
	$$($(BIN)/python tools/mutant_sample.py $(SAMPLE_EXCLUDE) 'cch_jax.mi.*' 'cch_jax.losses.*') \
	'cch_jax.train.x_make_optimizer*' 'cch_jax.train.x_make_loss*'
	$(BIN)/mutmut results

mutate: $(STAMP)
	$(BIN)/python -m pip install -q 'mutmut>=3.8.1,<4'
	rm -rf mutants
	$(MUTMUT_RUN) $(MUTANTS)
	$(BIN)/mutmut results

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) results .pytest_cache .ruff_cache
