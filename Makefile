# The two commands of the quick start: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
NODE_DIR := tests/e2e/node
WEB_DIR  := web
SDK_DIR  := clients/js

.PHONY: setup demo serve test lint node web js compiled clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "ieum-chat needs Python >= 3.11"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

setup: $(BIN)/.installed

# Node.js drives the real JavaScript clients (@stomp/stompjs) in the end-to-end tests.
$(NODE_DIR)/node_modules/.installed: $(NODE_DIR)/package-lock.json
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq nodejs npm; } \
	  || { echo "npm is needed for the end-to-end tests: install Node.js >= 18"; exit 1; }
	cd $(NODE_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

node: $(NODE_DIR)/node_modules/.installed

# The demo page's browser library: the @ieum/chat SDK, built in clients/js (its npm install
# from the lock file, then dist/ with the browser bundle), then web/'s npm install (a link to
# the SDK, from the lock file); the app serves the bundle from web/node_modules at /demo/vendor/.
$(SDK_DIR)/dist/.built: $(SDK_DIR)/package-lock.json $(SDK_DIR)/package.json $(SDK_DIR)/tsconfig.json \
		$(SDK_DIR)/scripts/build.mjs $(wildcard $(SDK_DIR)/src/*.ts)
	command -v npm >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get update -qq && apt-get install -y -qq nodejs npm; } \
	  || { echo "npm is needed for the demo page: install Node.js >= 18"; exit 1; }
	cd $(SDK_DIR) && npm ci --no-audit --no-fund --loglevel=error && npm run build
	touch $@

$(WEB_DIR)/node_modules/.installed: $(WEB_DIR)/package-lock.json | $(SDK_DIR)/dist/.built
	cd $(WEB_DIR) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

web: $(SDK_DIR)/dist/.built $(WEB_DIR)/node_modules/.installed

# The protocol cores and the send path compiled with mypyc (setup.py; the modules are listed in
# src/ieum_chat/_build.py), built in place in a copy of src/: PYTHONPATH=$(COMPILED)/src runs it.
COMPILED := build/compiled
$(COMPILED)/.built: $(BIN)/.installed setup.py pyproject.toml $(shell find src -name '*.py')
	rm -rf $(COMPILED) && mkdir -p $(COMPILED)
	cp -r src setup.py pyproject.toml README.md $(COMPILED)/
	cd $(COMPILED) && IEUM_CHAT_COMPILE=1 $(CURDIR)/$(BIN)/python setup.py --quiet build_ext --inplace
	touch $@

compiled: $(COMPILED)/.built

# What the compiled modules run under, tested again on that build: the unit tests, the store
# conformance suite, the gateway's socket paths, the REST routes over the chat service,
# sessions that drop, resume, fail over to another node, are revoked or shut down, the
# security suite and the real clients.
COMPILED_TESTS := tests/unit tests/conformance/store tests/security \
	tests/integration/test_stomp_chat.py tests/integration/test_wsserver.py \
	tests/integration/test_rest.py \
	tests/integration/test_sockjs_stomp.py tests/integration/test_sockjs_protocol.py \
	tests/integration/test_client.py tests/integration/test_multinode_redis.py \
	tests/integration/test_resilience.py tests/integration/test_lifecycle.py \
	tests/integration/test_shutdown.py \
	tests/e2e/test_stompjs.py tests/e2e/test_stomppy.py tests/e2e/test_sockjs_clients.py

demo: setup web
	$(BIN)/ieum-chat demo

serve: setup
	$(BIN)/ieum-chat serve

lint: setup
	$(BIN)/ruff check src tests bench setup.py
	$(BIN)/ruff format --check src tests bench setup.py
	$(BIN)/mypy
	$(BIN)/lint-imports

# The TypeScript SDK's own tests (Node's test runner, against servers of this checkout's venv)
# and the check that its npm package holds the bundle and the types.
js: setup web
	cd $(SDK_DIR) && npm test && npm run check-pack

# Test files run in TEST_WORKERS processes (pytest-xdist), each file whole in one of them, so a
# module's server starts once. Every test has databases, a Redis key prefix and ports of its
# own. Most of a test's time is spent waiting on its servers, clients and subprocesses, so on
# two cores four workers finish a third sooner than two; TEST_WORKERS=0 runs it in one process.
TEST_WORKERS ?= 4
PYTEST := $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test: setup node web lint js compiled
	IEUM_CHAT_BUILD=pure $(PYTEST)
	IEUM_CHAT_BUILD=compiled PYTHONPATH=$(COMPILED)/src $(PYTEST) $(COMPILED_TESTS)

clean:
	rm -rf $(VENV) build $(NODE_DIR)/node_modules $(WEB_DIR)/node_modules $(SDK_DIR)/node_modules $(SDK_DIR)/dist .mypy_cache .ruff_cache .pytest_cache .hypothesis
