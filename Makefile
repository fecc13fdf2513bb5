# make demo: the churn example end to end.  make test: the whole test suite.
# Both create .venv with the machine's python3 and install the project into it.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO   := examples/churn/out

.PHONY: demo test lint bench bench-serve clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/churn/train.py --rows 5000 --seed 0 --out $(DEMO)/churn_model
	$(BIN)/modelkeep inspect $(DEMO)/churn_model
	$(BIN)/modelkeep verify $(DEMO)/churn_model
	$(BIN)/python examples/churn/predict.py $(DEMO)/churn_model

# The team-registry tests run against real PostgreSQL and S3 servers on 127.0.0.1, which
# scripts/services.sh installs when missing and starts (a no-op when they already answer).
test: $(STAMP)
	scripts/services.sh start
	set -a; . ./.services.env; set +a; $(BIN)/python -m pytest -q -n 2 --dist loadfile --durations=25

lint: $(STAMP)
	$(BIN)/ruff check --no-cache .
	$(BIN)/ruff format --no-cache --check .
	$(BIN)/mypy

# Batch scoring (issue 15): 1,000,000 churn rows, modelkeep predict against a pandas loop.
.PHONY: bench-batch
bench-batch: $(STAMP)
	$(BIN)/python benchmarks/bench_batch.py

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_bundle.py
	$(BIN)/python benchmarks/bench_onnx.py
	$(BIN)/python benchmarks/bench_pickle.py
	scripts/services.sh start
	set -a; . ./.services.env; set +a; $(BIN)/python benchmarks/bench_registry.py

# modelkeep serve vs mlflow models serve and BentoML: makes benchmarks/.venv-serve for the
# peers on its first run, then about 12 minutes of load (benchmarks/results/serve.json).
bench-serve: $(STAMP)
	$(BIN)/python benchmarks/bench_serve.py

# modelkeep monitor against Evidently's data-drift report on 1M and 5M churn rows: makes
# benchmarks/.venv-monitor (Evidently 0.7, pandas < 3) on its first run.
.PHONY: bench-monitor
bench-monitor: $(STAMP)
	$(BIN)/python benchmarks/bench_monitor.py

clean:
	rm -rf $(VENV) $(DEMO) .services .services.env .pytest_cache .mypy_cache .ruff_cache
