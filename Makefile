# The README's two commands. Each sets up .venv (python3 only needed) and runs its job.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test bench notebooks figures lint clean fuzz

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# one stamp per set of extras: `make demo` doesn't install the test tools, `make test` adds them
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[demo]'
	touch $@

$(VENV)/.test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.demo

demo: $(VENV)/.demo
	$(BIN)/python -m tracegrad demo

# the suite runs on every core (pytest-xdist): its notebooks, demo and fuzz runs are long single tests
test: $(VENV)/.test
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -n auto --dist worksteal

bench: $(VENV)/.demo
	$(BIN)/python -m tracegrad bench --plot build/bench.png

# re-execute the notebooks in place (they are committed with their outputs), and redraw the README's picture
notebooks: $(VENV)/.test
	$(BIN)/python tests/test_notebooks.py

figures: $(VENV)/.demo
	$(BIN)/python docs/figures.py

# the differential fuzzer's long profile (issue 12): 10,000 programs eager vs interpreter, 1,000 vs numba
fuzz: $(VENV)/.test
	$(BIN)/python -m tracegrad.fuzz --profile long

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
