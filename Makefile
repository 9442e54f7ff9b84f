# Two commands for a fresh clone:
#   make run   set up the virtual environment and run the pipeline (dvc repro)
#   make test  set up the virtual environment and run the tests
# The tests come in two tiers:
#   make test       the whole suite, as CI runs it (.ci/run): the pipeline through dvc, servers, browsers
#   make test-fast  the unit tier for the edit loop (-m "not slow", under 3 minutes on 2 cores): in-process
#                   tests only; one that starts dvc, a stage or the imgpipe command is marked slow
#                   (tests/conftest.py fails it otherwise)
PYTHON ?= python3
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed-stamp
# Stages run as `python -m stages.<name>`, so the venv's python must come first on PATH.
export PATH := $(BIN):$(PATH)

.PHONY: setup run test test-fast lint hooks bench docs docker mlflow-ui mlflow-server clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@echo "setup: creating $(VENV) and installing imgpipe (a few minutes the first time; log in $(VENV)/pip.log)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --no-cache-dir -e '.[dev]' > $(VENV)/pip.log 2>&1 || { tail -n 40 $(VENV)/pip.log; \
		if grep -q "No space left on device" $(VENV)/pip.log; then \
			echo "setup: the disk is full. The venv needs about 7 GB (torch with its CUDA libraries); free:"; df -h $(VENV); fi; \
		exit 1; }
	@touch $@
	@echo "setup: done"

run: setup
	dvc repro

# A worker per core (pytest-xdist, at most 4), each taking whole files.
PYTEST := python -m pytest -n auto --maxprocesses 4 --dist loadfile

test: setup
	$(PYTEST)

test-fast: setup
	$(PYTEST) -m "not slow"

# ruff's lint and format checks (pyproject.toml holds the rules); tests/test_lint.py runs them too.
lint: setup
	ruff check . && ruff format --check .

# Lint and format the staged files before each commit (.pre-commit-config.yaml).
hooks: setup
	pre-commit install

bench: setup
	python bench/pipeline.py

# The docs site (mkdocs.yml, docs/), served at http://127.0.0.1:8000 and rebuilt on every edit.
docs: setup
	mkdocs serve

# A serving image of the registered champion (MLflow's Dockerfile); needs a Docker daemon
# and network. Without Docker it writes the build context to build/docker and says so.
docker: setup
	imgpipe build-docker

mlflow-ui: setup
	mlflow ui --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

# A team tracking server: Debian's PostgreSQL for runs, mlflow-server/artifacts for files.
# Then, in each shell that runs the pipeline: export MLFLOW_TRACKING_URI=http://127.0.0.1:5000
mlflow-server: setup
	imgpipe server --port 5000

clean:
	rm -rf $(VENV) data models mlflow.db mlartifacts mlflow-server .pytest_cache
