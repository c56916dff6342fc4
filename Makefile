# Thin wrapper over CMake.  `make run` and `make check` are the README's quick start.
BUILD   ?= build
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON
PY      := /usr/bin/python3
JOBS    := $(shell nproc 2>/dev/null || echo 2)

.PHONY: all deps build run check unit e2e docs clean release bench fuzz

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

# fuzz: build the libFuzzer targets with clang and run each for FUZZ_SECONDS
FUZZ_SECONDS ?= 60
fuzz:
	cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DTERN_FUZZ=ON -DTERN_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug
	cmake --build build-fuzz -j $(JOBS)
	for f in build-fuzz/fuzz_*; do mkdir -p build-fuzz/corpus/$$(basename $$f); \
	  $$f -max_total_time=$(FUZZ_SECONDS) build-fuzz/corpus/$$(basename $$f) || exit 1; done

# bench: tern side by side with a private Postfix (smtp-source), see bench/README.md
BENCH_N ?= 2000
bench:
	./bench/run $(BENCH_N)
