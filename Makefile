# DreamForge's front door: `make up` runs the whole system, `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PROTO_FILES := $(wildcard protos/dreamforge/v1/*.proto)

.DEFAULT_GOAL := help
.PHONY: help install up test lint proto proto-check bench lock clean

help:
	@echo "make up          run the whole system (Redis, storage, generator, gateway) on this machine"
	@echo "make test        run the test suite"
	@echo "make lint        ruff, mypy and buf lint"
	@echo "make proto       regenerate the gRPC stubs from protos/"
	@echo "make bench       run the benchmarks"
	@echo "make lock        re-pin dependencies into requirements.lock"

# The venv is rebuilt whenever the project or the lock file changes.
$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "DreamForge needs Python 3.10 or newer; set PYTHON=python3.x")'
	@$(PYTHON) -m venv $(VENV) || { echo "Could not create a virtualenv. On Debian/Ubuntu: apt-get install python3-venv" >&2; exit 1; }
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	@touch $@

install: $(STAMP)

up: $(STAMP)
	$(BIN)/dreamforge up

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check services tests benchmarks
	$(BIN)/ruff format --check services tests benchmarks
	$(BIN)/mypy
	npx --yes @bufbuild/buf@1.75.0 lint

# Stubs live next to the protos so `from dreamforge.v1 import storage_pb2` works everywhere.
proto: $(STAMP)
	$(BIN)/python -m grpc_tools.protoc -I protos \
		--python_out=protos --grpc_python_out=protos \
		--plugin=protoc-gen-mypy=$(BIN)/protoc-gen-mypy --mypy_out=protos \
		--plugin=protoc-gen-mypy_grpc=$(BIN)/protoc-gen-mypy_grpc --mypy_grpc_out=protos \
		$(PROTO_FILES)

# Fails when the committed stubs differ from what the protos generate.
proto-check: proto
	git diff --exit-code -- protos/

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# requirements.lock: everything for development and tests; requirements-runtime.lock: the container image.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.10 -o requirements.lock
	$(BIN)/uv pip compile pyproject.toml --universal --python-version 3.10 -o requirements-runtime.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
