# Two commands do all the set-up: `make demo` and `make test`. Both create .venv and install the package.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
EXTRAS ?= dev,lm
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast notebooks book bench clean install

$(BIN)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

install: $(BIN)/.installed

demo: $(BIN)/.installed
	$(BIN)/textsampling demo --output demo-output

# The whole suite: tests/ (the chapters too, with a stderr check, in tests/test_notebooks.py) and the
# chapters once more under nbmake, as notebooks, with the CI sizes.
test: $(BIN)/.installed build/notebooks
	CI=true $(BIN)/python -m pytest -n 2 -q -p no:cacheprovider tests --nbmake build/notebooks

# The book's tools (Jupyter Book 1.x, offline MathJax); the package itself comes from install.
$(BIN)/.book-installed: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet -c constraints.txt "jupyter-book<2" "jupytext>=1.16" "ipykernel>=6" \
		"sphinx-mathjax-offline==0.0.2"
	touch $@

# Executes every chapter with the full sizes (CI unset) and builds book/_build/html; any warning or
# failing cell fails the build.
book: $(BIN)/.book-installed
	rm -rf book/_build
	env -u CI $(BIN)/jupyter-book build book --all --warningiserror --keep-going --builder html
	@echo "book: open book/_build/html/index.html"

# The chapters (jupytext sources, the only source of truth) converted to notebooks.
build/notebooks: $(BIN)/.installed $(wildcard notebooks/[0-9][0-9]_*.py)
	rm -rf build/notebooks && mkdir -p build/notebooks
	for chapter in notebooks/[0-9][0-9]_*.py; do \
		$(BIN)/jupytext --quiet --to ipynb --output build/notebooks/$$(basename $$chapter .py).ipynb $$chapter || exit 1; \
	done

# Executes the chapters under nbmake with the CI sizes.
notebooks: build/notebooks
	CI=true MPLBACKEND=Agg $(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --nbmake build/notebooks

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_twins.py

clean:
	rm -rf $(VENV) demo-output book/_build build .pytest_cache
