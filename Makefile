# Two commands set vix_ttl up on a fresh machine (see README):
#   make demo   the main job: the lineup-leak scenario simulator
#   make test   lint, types, the docs and the whole test suite, with real Redis and memcached
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test docs bench bench-fleet bench-frontier bench-http serve lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vix-ttl simulate

# The hooks of .pre-commit-config.yaml (ruff, ruff format, mypy, codespell, validate-pyproject)
# on every file, with the tools of the project's venv.
lint: $(STAMP)
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/pre-commit run --all-files

# The documentation site (mkdocs.yml, docs/) into site/: a broken link or docstring fails it.
docs: $(STAMP)
	$(BIN)/mkdocs build --strict

# aiocache's own suite first: the project's pytest run, the whole suite, closes the log.
# It reports vix_ttl's branch coverage, the processes the tests start included, with the
# lines missed, and fails under the floor: pyproject's [tool.coverage.report] fail_under.
test: lint docs
	bash .ci/with-services $(BIN)/python tests/aiocache_suite/run.py
	bash .ci/with-services $(BIN)/python -m pytest tests benchmarks --benchmark-disable \
	  --cov --cov-report=term-missing:skip-covered

bench: $(STAMP)
	bash .ci/with-services $(BIN)/python -m pytest benchmarks
	bash .ci/with-services $(BIN)/python benchmarks/fleet_single_flight.py
	$(BIN)/python benchmarks/frontier_speed.py
	$(BIN)/python benchmarks/http_load.py peers
	$(BIN)/python benchmarks/http_load.py story --seconds 30

bench-fleet: $(STAMP)
	bash .ci/with-services $(BIN)/python benchmarks/fleet_single_flight.py

bench-frontier: $(STAMP)
	$(BIN)/python benchmarks/frontier_speed.py

bench-http: $(STAMP)
	$(BIN)/python benchmarks/http_load.py peers
	$(BIN)/python benchmarks/http_load.py story --seconds 30

# The HTTP example: odds behind VixCacheMiddleware on http://127.0.0.1:8000 (REDIS_URL: in Redis).
serve: $(STAMP)
	$(BIN)/uvicorn examples.odds_service:app --host 127.0.0.1 --port 8000

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .benchmarks .hypothesis site
