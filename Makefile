# The two commands a newcomer needs: `make demo` and `make test`. Both build .venv/ themselves.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test bench bench-quick lint clean soak labextension browser coverage frontend

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP) browser frontend
	$(BIN)/python -m pytest -q tests

# Debian's Chromium for the browser tests (tests/test_ui_lab.py, tests/test_web.py): apt-get
# installs it when it is missing; where apt cannot run, those tests skip and say why.
browser:
	@bash scripts/ensure-chromium.sh

# The front end's npm packages (labextension/node_modules), so that the tests check that the
# committed build is what the TypeScript source compiles to; without npm they skip and say so.
frontend:
	@if command -v npm >/dev/null 2>&1; then \
		[ -d labextension/node_modules ] || (cd labextension && npm ci --no-audit --no-fund --loglevel=error) \
		|| echo "frontend: npm ci failed; the build check of tests/test_ui_layout.py will be skipped" >&2; \
	else echo "frontend: no npm here; the build check of tests/test_ui_layout.py will be skipped" >&2; fi

# The JupyterLab extension from its TypeScript source (labextension/), with npm: the prebuilt
# result is committed under src/nbstate/labextension/ (and the page of `nbstate serve` under
# src/nbstate/webapp/), so installing nbstate needs no Node.js. Needs Node.js 18+ and npm.
labextension: $(STAMP)
	cd labextension && npm ci --no-audit --no-fund
	cd labextension && npx tsc -p tsconfig.json && npx tsc -p tsconfig.web.json
	cp labextension/style/base.css src/nbstate/webapp/view.css
	rm -rf src/nbstate/labextension
	cd labextension && node node_modules/@jupyterlab/builder/lib/build-labextension.js \
		--core-path "$$(../$(BIN)/python -c 'import jupyterlab, os; print(os.path.join(os.path.dirname(jupyterlab.__file__), "staging"))')" .
	$(BIN)/python -m pip install -q --no-deps -e .
	cd labextension && node --test test/

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

bench: $(STAMP)
	$(BIN)/python -m bench.run

bench-quick: $(STAMP)
	$(BIN)/python -m bench.run --quick

clean:
	rm -rf $(VENV) .pytest_cache

# The library coverage suite alone (it also runs in `make test`); rewrites docs/COVERAGE.md.
coverage: $(STAMP)
	$(BIN)/python tests/coverage/run.py

# Time travel as a property, with many random programs (5,000 of them; about half an hour on 2 cores).
soak: $(STAMP)
	NBSTATE_PROPERTY_EXAMPLES=5000 $(BIN)/python -m pytest -q tests/test_timetravel_property.py
