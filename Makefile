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

# -- bench (issue 5): the open question, and a small bench for the demo --------------------------------
.PHONY: bench-open-question demo-bench
OQ := benchmarks/open_question

demo-bench: demo
	$(BIN)/sensprune prune --scores demo-out/scores --by el2n --rule drop-high --fraction 0.2 \
		--out demo-out/pruned --force
	$(BIN)/sensprune bench --config $(OQ)/demo.toml --out demo-out/bench --jobs 2 --force

# finished units are skipped (--resume); `make bench-open-question RERUN=1` deletes the outputs and reruns all
bench-open-question: $(STAMP)
	$(if $(RERUN),rm -rf $(OQ)/digits $(OQ)/mnist1d $(OQ)/fashion-mnist $(OQ)/run.log)
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	BIN=$(BIN) $(OQ)/run_all.sh
