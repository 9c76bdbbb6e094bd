# Two commands on a fresh machine: `make run` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SCENARIO ?= scenarios/rescue.yaml

.PHONY: install run test lint bench clean training-fonts

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# torch==2.13.0 first: this pin takes the CPU build from local disk (any other spec downloads GBs).
$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q "torch==2.13.0" || $(BIN)/python -m pip install -q "torch>=2.2,<3"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m link_sim $(SCENARIO)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/codec_speed.py

# Stage 2's training-time faces (Debian packages, apt-get; docs/text.md): not needed by `test`.
training-fonts:
	sh scripts/install-training-fonts.sh

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info
