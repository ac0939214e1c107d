# The two entry points of the README, and the developer's checks.
.PHONY: setup setup-test demo test test-fast lint

PYTHON := .venv/bin/python

setup:
	bash scripts/setup.sh

setup-test:
	bash scripts/setup.sh --test

# Set everything up and run the main job.
demo: setup
	bash scripts/main.sh

# Set everything up and run the test suite against a throw-away Neo4j server.
test: setup-test
	.venv/bin/python -m pytest -q

# The environment, set up once (`make setup-test` brings it up to date).
$(PYTHON):
	bash scripts/setup.sh --test

# The tests that need no Neo4j server: tests/conftest.py marks every test that uses the server `neo4j`.
test-fast: $(PYTHON)
	$(PYTHON) -m pytest -q -m "not neo4j"

# Lint, formatting and types; pre-commit runs the same three on every commit.
lint: $(PYTHON)
	$(PYTHON) -m ruff check .
	$(PYTHON) -m ruff format --check .
	$(PYTHON) scripts/typecheck.py
