# psqs: the two commands a user needs are `make demo` and `make test`; both bootstrap .venv.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.psqs-installed

# The shared simulated jet set, when this checkout sits next to it (never committed into the repo).
SHARED_SIM := $(abspath ../shared/data/jets/sim/jets_sim.npz)
PSQS_DATA ?= $(if $(wildcard $(SHARED_SIM)),$(SHARED_SIM),)
export PSQS_DATA

DEMO_DIR ?= runs/demo

.PHONY: setup test demo demo-remote bench clean board-envs

setup: $(STAMP)

# Two pip steps: TensorFlow 2.14.1 declares protobuf<5 while pynq 4.0.0 pins protobuf>=5 and
# grpcio 1.64; TF runs fine on protobuf 5, so pynq goes in second and pip's conflict note is expected.
$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip setuptools wheel
	$(PY) -m pip install --quiet -e ".[build]"
	$(PY) -m pip install --quiet -e ".[board]"
	touch $@

# Image-like environments (pyenv Python + each PYNQ image's numpy and pynq) for the board-install
# tests; built once and cached, an environment is rebuilt only when missing or its pins change.
BOARD_ENVS ?= .venv-boards
board-envs:
	bash .ci/board_envs.sh $(BOARD_ENVS)

test: setup board-envs
	$(PY) -m pytest -q

demo: setup
	$(VENV)/bin/psqs demo --out $(DEMO_DIR) --force

# The same demo for a ZynqMP board whose PYNQ image serves PYNQ.remote: the bench runs on this PC.
DEMO_REMOTE_DIR ?= runs/demo-remote
demo-remote: setup
	$(VENV)/bin/psqs demo --board zcu104 --out $(DEMO_REMOTE_DIR) --force

bench: setup
	$(PY) bench/qap_training.py

clean:
	rm -rf runs .pytest_cache
