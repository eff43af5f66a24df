# sensprune: `make demo` runs score -> prune -> a small bench -> report on the embedded digits dataset;
# `make test` runs the test suite. Both create .venv and install everything on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint venv bench-overhead bench-paper bench-scale bench-memorization clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

demo: $(STAMP)
	@start=$$(date +%s); set -e; \
	echo "== 1/4 score: warmup on digits (80 epochs, the default with loss_sensitivity), every online measure + loss_sensitivity =="; \
	$(BIN)/sensprune score --dataset digits --model mlp --seeds 1 \
		--measures input_grad,loss_sensitivity,loss,el2n,forgetting,aum,confidence,variability,correctness \
		--out demo-out/scores --force; \
	echo "== 2/4 prune: drop the 20% most loss-sensitive examples per class (loss_sensitivity, Arpit et al. 2017) =="; \
	$(BIN)/sensprune prune --scores demo-out/scores --by loss_sensitivity --rule drop-high --fraction 0.2 \
		--per-class --out demo-out/pruned --force; \
	echo "== 3/4 bench --selection demo-out/pruned: retrain on that selection vs a random one of the same size per class vs full, 3 paired seeds =="; \
	$(BIN)/sensprune bench --selection demo-out/pruned --config benchmarks/open_question/demo.toml --seeds 3 \
		--out demo-out/bench --force --quiet >/dev/null; \
	echo "== 4/4 report =="; \
	$(BIN)/sensprune report demo-out/scores --force --quiet; \
	echo; echo "Verdict on demo-out/pruned (from demo-out/bench/verdict.md):"; \
	grep -E "the selection pruned .* vs (random|full)" demo-out/bench/verdict.md | sed 's/^ *- /  /'; \
	echo; echo "Folders:"; \
	echo "  scores  $$(pwd)/demo-out/scores   (scores.csv, scores.npz, meta.json)"; \
	echo "  pruned  $$(pwd)/demo-out/pruned   (keep.npy, drop.npy, selection.csv, meta.json)"; \
	echo "  bench   $$(pwd)/demo-out/bench    (verdict.md, summary.csv, results.csv)"; \
	echo "  report  $$(pwd)/demo-out/scores/report/report.html"; \
	echo "[$$(( $$(date +%s) - start )) s]"

test: $(STAMP)
	$(BIN)/python -m pytest

# build the wheel, install it into a fresh venv (torch pinned as above), run `sensprune --help` and a
# one-epoch score from outside the checkout; needs PyPI (or a pip cache) for the dependencies
.PHONY: wheel-check
wheel-check:
	PY=$(PY) .ci/wheel_check.sh

lint: $(STAMP)
	$(BIN)/flake8 sensprune tests benchmarks

bench-overhead: $(STAMP)
	apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	$(BIN)/python benchmarks/overhead.py online
	$(BIN)/python benchmarks/overhead.py parts

# the paper's six experiments at CPU scale (about 10 minutes on 2 cores); outputs in benchmarks/paper/
bench-paper: $(STAMP)
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	$(BIN)/sensprune reproduce --out benchmarks/paper --force

# scoring time and peak memory at 100k, 300k and 1M synthetic examples
bench-scale: $(STAMP)
	$(BIN)/python benchmarks/scale/run.py

# which measure tracks memorization (issue 26): hours on 2 cores (`--estimate` projects it); resumable, rerun to go on
bench-memorization: $(STAMP)
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	$(BIN)/python benchmarks/memorization/compare.py --jobs 2

clean:
	rm -rf demo-out build *.egg-info

# -- bench (issue 5): the open question, and a small bench for the demo --------------------------------
.PHONY: bench-open-question
OQ := benchmarks/open_question

# finished units are skipped (--resume); `make bench-open-question RERUN=1` deletes the outputs and reruns all
bench-open-question: $(STAMP)
	$(if $(RERUN),rm -rf $(OQ)/digits $(OQ)/mnist1d $(OQ)/fashion-mnist $(OQ)/run.log)
	test -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz || \
		apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
	BIN=$(BIN) $(OQ)/run_all.sh
