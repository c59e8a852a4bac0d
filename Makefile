# The two commands: `make run` serves Dormouse and its apps through Traefik on
# http://dormouse.localhost:8000 (apps on viz.dormouse.localhost:8000),
# `make test` runs the whole test suite. Both set everything up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat requirements.txt requirements-dev.txt | cksum | cut -d' ' -f1)

.PHONY: install run dev lint lint-fix test bench clean

$(STAMP): requirements.txt requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Dormouse needs Python 3.11 or newer")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi demo load
	$(BIN)/python -m app.front_door

dev: install
	$(BIN)/flask --app wsgi db upgrade
	$(BIN)/flask --app wsgi demo load
	$(BIN)/python -m app.front_door --dev

# Style holds without review: lint and formatting are checked before any test runs.
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

lint-fix: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The throwaway PostgreSQL is stopped after pytest whatever its outcome (pytest's
# exit status is kept), unless it was running before (see scripts/test-postgres.sh).
test: lint
	scripts/test-system-deps.sh
	scripts/kube-test-cluster.sh build
	trap 'scripts/test-postgres.sh stop $$$$' EXIT; trap 'exit 130' INT TERM HUP; \
	url="$$(scripts/test-postgres.sh start $$$$)" && \
	TEST_POSTGRES_URL="$$url" DORMOUSE_TEST_UV_CACHE="$(TEST_UV_CACHE)" $(BIN)/python -m pytest $(PYTEST_ARGS)

# uv's cache and the default app environments the tests build (tests/envs_cache.py):
# kept between runs outside the repo, beside the kube build cache; never ~/.cache/uv.
TEST_UV_CACHE ?= $(or $(DORMOUSE_TEST_UV_CACHE),$(shell mkdir -p /var/cache/dormouse 2>/dev/null && \
	test -w /var/cache/dormouse && echo /var/cache/dormouse/uv || echo $${XDG_CACHE_HOME:-$$HOME/.cache}/dormouse-uv))

# Measurements, not tests: each prints a ratio against a baseline of the same run (docs/performance.md).
bench: install
	$(BIN)/python bench/forward_auth.py
	$(BIN)/python bench/hot_paths.py
	$(BIN)/python bench/cold_start.py --rounds 3
	$(BIN)/python bench/memory.py --rounds 1
	$(BIN)/python bench/sweep.py --rounds 3
	$(BIN)/python bench/idle_sim.py

clean:
	rm -rf $(VENV) instance .pytest_cache
