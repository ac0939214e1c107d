# The two entry points of the README.
.PHONY: setup setup-test demo test

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
