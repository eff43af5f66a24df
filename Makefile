# sensprune: `make demo` scores the embedded digits dataset; `make test` runs the test suite.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv bench-overhead clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/sensprune score --dataset digits --model mlp --epochs 15 --seeds 2 --out demo-out/scores --force

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/flake8 sensprune tests benchmarks

bench-overhead: $(STAMP)
	apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	$(BIN)/python benchmarks/overhead.py | tee benchmarks/overhead.txt

clean:
	rm -rf demo-out build *.egg-info
