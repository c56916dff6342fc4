# Thin wrapper over CMake.  `make run` and `make check` are the README's quick start.
BUILD   ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON
PY      := /usr/bin/python3
JOBS    := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run check unit e2e docs clean release bench

all: build

deps:
	@./scripts/install-deps

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

build: $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

# release: optimised build without sanitizers, for benchmarks
release:
	cmake -S . -B build-release -DCMAKE_BUILD_TYPE=RelWithDebInfo
	cmake --build build-release -j $(JOBS)

run: deps build
	@./scripts/dev-run

unit: build
	cd $(BUILD) && ctest --output-on-failure

e2e: build
	$(PY) -m pytest -q tests/e2e

check: deps build
	@$(MAKE) --no-print-directory unit
	@$(MAKE) --no-print-directory e2e

docs: build
	$(BUILD)/ternd --config-doc > docs/CONFIG.md

clean:
	rm -rf $(BUILD) build-release
