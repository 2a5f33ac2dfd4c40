# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and install the package.
# Afterwards `. .venv/bin/activate` puts `textsampling`, `python` and `pytest` of .venv on the PATH.
#
# Installs cannot drift: every package, direct or transitive, is installed at the exact version of
# requirements.lock (pip-compile of pyproject.toml's ranges, extras dev, lm, fast, book and jupyter, for
# Python 3.11 on Linux x86_64, torch pinned to the CPU build 2.13.0+cpu by constraints.txt; no
# nvidia-* package). `make lock` regenerates it; `make test-latest` runs the tests against the newest
# versions the ranges allow, so drift shows up there first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,lm,fast
LOCK := requirements.lock
PIP_VERSION := 26.3
PIP_TOOLS_VERSION := 7.6.2
LATEST_VENV ?= build/venv-latest
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: build/wheels demo test lint test-fast test-latest flake notebooks book book-clean jupyter bench gpu-check clean install lock student-bundle grade

# `-c $(LOCK)`: the lock covers every extra, so whatever subset is installed, each package gets its
# locked version; scripts/check_lock.py then fails the install if anything differs from the lock.
$(BIN)/.installed: pyproject.toml constraints.txt $(LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet pip==$(PIP_VERSION)
	$(BIN)/python -m pip install --quiet -c $(LOCK) -c constraints.txt -e ".[$(EXTRAS)]"
	$(BIN)/python scripts/check_lock.py $(LOCK)
	touch $@

install: $(BIN)/.installed

# Regenerates requirements.lock from pyproject.toml (and constraints.txt) with pip-tools, installed
# in a scratch virtual environment (not a dependency of the package). Takes about 3 minutes.
lock:
	$(PYTHON) -m venv build/lock-tools
	build/lock-tools/bin/python -m pip install --quiet pip==$(PIP_VERSION) pip-tools==$(PIP_TOOLS_VERSION)
	CUSTOM_COMPILE_COMMAND="make lock" build/lock-tools/bin/pip-compile --quiet --strip-extras --allow-unsafe \
		--no-emit-index-url --no-emit-find-links --extra dev --extra lm --extra fast --extra book --extra jupyter \
		-c constraints.txt --output-file $(LOCK) pyproject.toml

demo: $(BIN)/.installed
	$(BIN)/textsampling demo --output demo-output

# The `particles` wheel (Chopin & Papaspiliopoulos' companion package), downloaded once: tests/
# test_reference_resampling.py runs its resampling.py against ours (not a dependency: it pins numpy<2
# and needs numba; the test reads the one plain-NumPy file from the wheel). Without the wheel that test
# fails and says how to get it; TEXTSAMPLING_SKIP_PARTICLES_CROSSCHECK=1 skips it on purpose.
PARTICLES_WHEEL := build/wheels/particles-0.4-py3-none-any.whl
$(PARTICLES_WHEEL): $(BIN)/.installed
	$(BIN)/python -m pip download --quiet --no-deps particles==0.4 -d build/wheels

build/wheels: $(PARTICLES_WHEEL)

# The whole suite: first the linter (ruff, rules and the 120-column line length in pyproject.toml),
# then tests/ (the chapters too, with a stderr check, in tests/test_notebooks.py) and the chapters once
# more under nbmake, as notebooks, with the CI sizes.
test: $(BIN)/.installed build/notebooks $(PARTICLES_WHEEL)
	$(BIN)/ruff check textsampling tests
	CI=true $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests --nbmake build/notebooks

# The linter alone (`make test` runs it first); `$(BIN)/ruff check --fix textsampling tests` fixes what
# it safely can (import order, unused imports).
lint: $(BIN)/.installed
	$(BIN)/ruff check textsampling tests

# The tests against the newest versions pyproject.toml allows (torch stays at the CPU pin), in a
# separate .venv-latest. CI runs it without blocking on it. To stay inside CI's time it runs the
# library's tests only: the chapters (test_notebooks.py, nbmake) and the trained-model tests are left
# to `make test`.
LATEST_TESTS ?= tests --ignore=tests/test_notebooks.py --ignore=tests/test_scripts_train_tiny_models.py -m "not slow"
test-latest:
	$(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LATEST_VENV)/bin/python -m pip install --quiet --upgrade --upgrade-strategy eager -c constraints.txt \
		-e ".[$(EXTRAS)]"
	test -f $(PARTICLES_WHEEL) || $(LATEST_VENV)/bin/python -m pip download --quiet --no-deps particles==0.4 -d build/wheels
	$(LATEST_VENV)/bin/python -m pip list --format=freeze | $(PYTHON) scripts/check_lock.py --diff $(LOCK) || true
	CI=true $(LATEST_VENV)/bin/python -m pytest -n 2 -q -p no:cacheprovider $(LATEST_TESTS)

# The statistical tests rerun under 30 rotated seeds (TEXTSAMPLING_SEED_OFFSET = 1..30, see
# tests/seed_rotation.py): failures per test against the stated false-fail rate. A discovery run
# (offset 0, about 16 minutes on 2 loaded cores) finds the statistical tests that draw from a seeded
# generator; to fit a time box only those that took at most FLAKE_MAX_SECONDS there are rerun
# (3 s: 98 of 179, about a minute a seed; FLAKE_MAX_SECONDS=1e9 reruns all, hours on 2 cores).
FLAKE_SEEDS ?= 30
FLAKE_MAX_SECONDS ?= 3
flake: $(BIN)/.installed
	$(BIN)/python scripts/flake.py --num-seeds $(FLAKE_SEEDS) --max-seconds $(FLAKE_MAX_SECONDS)

# The book's tools (Jupyter Book 1.x, offline MathJax) at their locked versions.
$(BIN)/.book-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c $(LOCK) -c constraints.txt -e ".[$(EXTRAS),book]"
	$(BIN)/python scripts/check_lock.py $(LOCK)
	touch $@

# Executes every chapter with the full sizes (CI unset) and builds book/_build/html; any warning or
# failing cell fails the build, and tests/test_book_html.py then fails it on raw reStructuredText
# (`.. py:`, `:math:`) or a path of the build machine in a page. Executed chapters are cached in
# book/_build/.jupyter_cache (keyed by each chapter's code): a chapter runs again only when its code
# changed. Measured on the 2-core CPU machine, shared with other jobs (load average 5 to 17): a full
# build (empty cache) took 31 minutes (1,840 s); a rebuild with a warm cache and no chapter edited
# 5 minutes (286 s); after editing one chapter, add that chapter's run (1 to 5 minutes).
# `make book-clean` empties the cache.
book: $(BIN)/.book-installed
	rm -rf book/_build/html book/_build/jupyter_execute book/_build/.doctrees
	env -u CI $(BIN)/jupyter-book build book --all --warningiserror --keep-going --builder html
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/test_book_html.py
	@echo "book: open book/_build/html/index.html"

book-clean:
	rm -rf book/_build

# JupyterLab, to open the chapters as notebooks: `.venv/bin/jupyter lab notebooks/`, then right-click a
# chapter (a jupytext .py file) > Open With > Notebook.
jupyter: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c $(LOCK) -c constraints.txt -e ".[$(EXTRAS),jupyter]"
	$(BIN)/python scripts/check_lock.py $(LOCK)
	@echo "jupyter: run  .venv/bin/jupyter lab notebooks/  (as root add --allow-root) and open a chapter with Open With > Notebook"

# The chapters (jupytext sources, the only source of truth) converted to notebooks.
build/notebooks: $(BIN)/.installed $(wildcard notebooks/[0-9][0-9]_*.py)
	rm -rf build/notebooks && mkdir -p build/notebooks
	for chapter in notebooks/[0-9][0-9]_*.py; do \
		$(BIN)/jupytext --quiet --to ipynb --output build/notebooks/$$(basename $$chapter .py).ipynb $$chapter || exit 1; \
	done

# Executes the chapters under nbmake with the CI sizes.
notebooks: build/notebooks
	CI=true MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --nbmake build/notebooks

# The table of README's "Performance" section, printed as Markdown (pasted from here verbatim): every
# implementation interleaved, 9 repeats per cell (the cores are shared: more repeats, steadier medians),
# one torch thread. About 2 minutes on 2 shared cores (2m16s with the JAX rows; more on a cold Inductor cache).
# The JAX rows need jax in .venv (`$(BIN)/pip install jax`); without it they are skipped with a note.
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_twins.py --threads 1 --repeats 9 --markdown

# The GPU check in one command: `pytest -m gpu`, bench_twins up to 1e7 chains and bench_lm on CUDA, one
# JSON + one Markdown table in $(GPU_CHECK_DIR) (under 8 minutes on an H100/H200). Without CUDA it stops
# with a message (exit 3); `$(BIN)/python scripts/gpu_check.py --cpu-smoke` runs it tiny on the CPU.
GPU_CHECK_DIR ?= build/gpu-check
gpu-check: $(BIN)/.installed
	$(BIN)/python scripts/gpu_check.py --output $(GPU_CHECK_DIR)

# What students get: starters, instructions, autograder; never assignments/solutions (checked before writing).
student-bundle: $(BIN)/.installed
	$(BIN)/python scripts/student_bundle.py --output dist/student-bundle

# Grades a folder of submissions into grades/grades.csv, grades.json and reports/: make grade SUBMISSIONS=folder
grade: $(BIN)/.installed
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder"; exit 2; }
	$(BIN)/python scripts/grade_submissions.py "$(SUBMISSIONS)" --output grades

clean:
	rm -rf $(VENV) $(LATEST_VENV) demo-output book/_build build .pytest_cache dist grades
