# pvss-secagg — every set-up step lives here so a fresh clone needs only `make demo` / `make test`.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
PYTEST_ARGS ?=

.PHONY: install demo test bench lint typecheck clean contracts

install: $(STAMP) $(NODE_STAMP)

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch pinned: 2.13.0 is the CPU wheel; an unpinned torch pulls a multi-GB CUDA build.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e ".[fl,evm,dev]"
	touch $(STAMP)

# Solidity toolchain: solc-js and anvil, exact versions from package-lock.json.
$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $(NODE_STAMP)

# Recompile contracts/src + contracts/test into contracts/build/ (committed artifacts).
contracts: $(NODE_STAMP)
	node contracts/build.js

demo: install
	$(BIN)/pvss-secagg demo --out out/demo
	$(BIN)/pvss-secagg verify out/demo/round-10

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# the whole round grid (27 configurations + EVM rows), 3 rounds per side at the target
# configuration and ROUND_REPEATS elsewhere; `make bench ROUND_REPEATS=3` for all (slower)
ROUND_REPEATS ?= 1
bench: install
	$(BIN)/python bench/group_ops.py
	$(BIN)/python bench/batch_keys.py
	$(BIN)/python bench/masking.py
	$(BIN)/python bench/round.py --repeats $(ROUND_REPEATS) --target-repeats 3
	$(BIN)/python bench/deployed.py --ns 30,100 --ds 1e5,1e6 --repeats 3
	$(BIN)/python bench/gas.py
	$(BIN)/python bench/dp.py
	$(BIN)/python bench/plots.py
	$(BIN)/python bench/report.py --update-readme

lint: install
	$(BIN)/ruff check pvss secagg fl bench tests

typecheck: install
	$(BIN)/mypy pvss secagg

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
