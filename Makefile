# The two set-up commands: `make serve` and `make test` (see README).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: serve test test-all test-ray test-console test-postgres test-cluster soak bench docs lint clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# eland's PyTorch import code (tests/e2e/test_eland.py runs it) needs transformers 4, its hub client and
# tokenizers, and sentence-transformers 5, where elserve pins transformers 5; eland's own `pytorch`
# extra would also pull its torch (a CUDA build). So eland itself comes with the `test` extra (it needs
# no torch), and these four go, without their dependencies, into a directory of their own that only
# eland's processes put first on their path: they run on the project's torch. (Installed with the rest:
# a change of these pins takes `make clean` first.)
ELAND_SITE := $(VENV)/eland-site
ELAND_PYTORCH := transformers==4.57.6 tokenizers==0.22.2 huggingface-hub==0.36.2 sentence-transformers==5.7.0

# torch is pinned exactly: pip takes the local CPU build; a range would pull CUDA.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install torch==2.13.0
	$(BIN)/pip install -e '.[test]'
	rm -rf $(ELAND_SITE)
	$(BIN)/pip install --no-deps --target $(ELAND_SITE) $(ELAND_PYTORCH)
	touch $(STAMP)

serve: $(STAMP)
	$(BIN)/elserve serve

# Two pytest processes (pytest-xdist), each test module whole in one of them (its module's server
# started once): most tests wait on a server, a worker or a sleep, so two halve the wall time on 2 cores.
test: $(STAMP)
	$(BIN)/pytest -n 2 --dist loadscope

test-all: $(STAMP)
	$(BIN)/pytest -m ''

# The long hardening runs: 60 s at twice the measured capacity, repeated kill -9 under load, the
# authenticated-abuse run (uploads racing deletes, brute force, idle connections at the cap, a full
# tmpfs), and a long schemathesis run (every phase); they print their figures (see README, "Hardening").
soak: $(STAMP)
	$(BIN)/pytest -s -m soak tests/e2e/test_overload.py tests/e2e/test_abuse_soak.py
	ELSERVE_FUZZ_EXAMPLES=50 $(BIN)/pytest -s -m '' tests/e2e/test_fuzz.py

# `make bench`: the peers (the `bench` extra) into .venv, then `elserve bench` (BENCH_ARGS passes
# options, e.g. BENCH_ARGS="--limit 500" or "--model-shape both").
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/elserve bench $(BENCH_ARGS)

# `make test-ray`: the Ray Serve backend (the `ray` extra into .venv) against a local Ray the tests
# start on this machine: a server on its own Ray, and a simulated two-node cluster.
RAY_STAMP := $(VENV)/.ray-installed
$(RAY_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -e '.[test,ray]'
	touch $(RAY_STAMP)

test-ray: $(RAY_STAMP)
	$(BIN)/pytest -m 'ray and not postgres' tests/deployments/rayserve

# `make test-console`: the console page in a real headless browser. Debian's chromium (Playwright's own
# browser download cannot be reached here) and the `console` extra; screenshots in .test-artifacts/console/.
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CONSOLE_STAMP := $(VENV)/.console-installed
$(CONSOLE_STAMP): pyproject.toml $(STAMP)
	command -v chromium >/dev/null || ($(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q chromium)
	$(BIN)/pip install -e '.[test,console]'
	touch $(CONSOLE_STAMP)

test-console: $(CONSOLE_STAMP)
	$(BIN)/pytest -s -m console tests/console

# `make test-postgres`: the PostgreSQL store and several front ends sharing it. Debian's `postgresql`
# (the tests start their own cluster with its initdb and pg_ctl, on a free port) and the `postgres` extra.
POSTGRES_STAMP := $(VENV)/.postgres-installed
$(POSTGRES_STAMP): pyproject.toml $(STAMP)
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ($(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q postgresql)
	$(BIN)/pip install -e '.[test,postgres]'
	touch $(POSTGRES_STAMP)

test-postgres: $(POSTGRES_STAMP)
	$(BIN)/pytest -m postgres tests/store tests/e2e/test_front_ends.py

# `make test-cluster`: several front ends on one Ray cluster sharing one PostgreSQL (both extras, Debian's
# `postgresql`): the scaler's lease and its failover, one owner of the Serve applications, kill -9 under load.
test-cluster: $(POSTGRES_STAMP) $(RAY_STAMP)
	$(BIN)/pytest -s -m 'ray and postgres' tests/deployments/rayserve

# `make lint`: ruff (lint and format) and mypy on src/, with zero findings (the `lint` extra).
LINT_STAMP := $(VENV)/.lint-installed
$(LINT_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -e '.[lint]'
	touch $(LINT_STAMP)

lint: $(LINT_STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests
	$(BIN)/mypy

# `make docs`: the manual in docs/ as a site (site/), strict: a broken link or anchor fails it.
DOCS_STAMP := $(VENV)/.docs-installed
$(DOCS_STAMP): pyproject.toml $(STAMP)
	$(BIN)/pip install -e '.[docs]'
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) build site src/*.egg-info
