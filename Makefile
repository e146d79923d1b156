# PAI Hub: `make run` starts the platform, `make test` runs everything CI runs.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(HOME)/.pai-hub
PORT ?= 9186

.PHONY: install run test lint bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(BIN)/.installed

run: install
	$(BIN)/pai server --ip 127.0.0.1 --port $(PORT) --data-dir $(DATA_DIR)

lint: install
	$(BIN)/ruff check .

test: install
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q tests

bench: install
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf $(VENV) build *.egg-info
