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

test: $(BIN)/.installed
	$(BIN)/python -m pytest -n 2 -q -p no:cacheprovider

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/bench_twins.py

clean:
	rm -rf $(VENV) demo-output book/_build .pytest_cache
