# cryonb: `make demo` sets up and runs the embedded demo; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch; a plain `pip install torch` would pull several GB of CUDA packages.
TORCH  ?= torch==2.13.0

.PHONY: setup browser-deps demo test docs bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[test,browser,widgets]"
	touch $@

demo: setup
	$(BIN)/cryonb demo --outdir demo-output

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser-deps:
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# Two pytest-xdist workers, one per core of the CI machine (tests/conftest.py shares torch's threads
# out among them); `make test PYTEST_WORKERS=0` runs the tests in one process.
PYTEST_WORKERS ?= 2
test: setup browser-deps
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist worksteal

# The site in docs/_build/html. The notebooks run first, one per core at a time, into the cache
# (by cell source) that the build reads; a notebook already run is not run again.
docs: $(VENV)/.docs-installed
	$(BIN)/python docs/run_notebooks.py
	$(BIN)/sphinx-build -W --keep-going -b html docs docs/_build/html

$(VENV)/.docs-installed: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[docs]"
	touch $@

clean:
	rm -rf $(VENV) demo-output .pytest_cache docs/_build docs/api/generated
