# mhc.h - build, test, demo.  `make` builds everything into build/, `make test` runs the tests.
# NO_OMP=1 builds without OpenMP.  CC=clang works too.  NATIVE=1 optimises for this machine
# (-O3 -march=native: the AVX2 / AVX-512 matmul kernels); the default flags build the portable ones.
CC      ?= gcc
CXX     ?= g++
OPT     ?= -O2
ifeq ($(NATIVE),1)
  OPT = -O3 -march=native
endif
WARN    = -Wall -Wextra -Wpedantic
CFLAGS  = -std=c99 $(OPT) -g $(WARN) -I.
LDLIBS  = -lm
ifeq ($(NO_OMP),1)
  OMPFLAGS =
else
  OMPFLAGS = -fopenmp
endif
BUILD   ?= build
HDR     = mhc.h
TEST_SRC = $(wildcard tests/test_*.c) tests/test.h tests/test_groups.h

.PHONY: all test test-asan check-compile demo clean valgrind bench

all: $(BUILD)/test check-compile $(BUILD)/readme_example

$(BUILD):
	mkdir -p $(BUILD)

# ---- the test runner: test groups compiled once in float and once in double ----
$(BUILD)/test_f32.o: tests/test_all.c $(HDR) $(TEST_SRC) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -c tests/test_all.c -o $@
$(BUILD)/test_f64.o: tests/test_all.c $(HDR) $(TEST_SRC) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -DMHC_DOUBLE -c tests/test_all.c -o $@
$(BUILD)/test_main.o: tests/test_main.c tests/test.h tests/test_groups.h | $(BUILD)
	$(CC) $(CFLAGS) -c tests/test_main.c -o $@

# the matmul tests again, in objects built for each micro-kernel: portable (MHC_NO_SIMD), AVX2+FMA,
# AVX-512 (the ISA flags only where the compiler takes them; the groups skip on CPUs without them)
ISA_FLAGS = $(shell $(CC) $(1) -E -x c /dev/null >/dev/null 2>&1 && echo "$(1)")
AVX2_FLAGS   := $(call ISA_FLAGS,-mavx2 -mfma -mno-avx512f)
AVX512_FLAGS := $(call ISA_FLAGS,-mavx512f -mavx2 -mfma)
MM_FLAGS_nosimd = -DMHC_NO_SIMD -DTEST_MATMUL_ISA='"portable"'
MM_FLAGS_avx2   = $(AVX2_FLAGS) -DTEST_MATMUL_ISA='"$(if $(AVX2_FLAGS),avx2+fma,portable)"'
MM_FLAGS_avx512 = $(AVX512_FLAGS) -DTEST_MATMUL_ISA='"$(if $(AVX512_FLAGS),avx512,portable)"'
MM_OBJS = $(foreach g,nosimd avx2 avx512,$(BUILD)/test_mm_$(g)_f32.o $(BUILD)/test_mm_$(g)_f64.o)
$(BUILD)/test_mm_%_f32.o: tests/test_matmul_isa.c $(HDR) $(TEST_SRC) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) $(MM_FLAGS_$*) -DTEST_MATMUL_GROUP=test_matmul_$* -c $< -o $@
$(BUILD)/test_mm_%_f64.o: tests/test_matmul_isa.c $(HDR) $(TEST_SRC) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) $(MM_FLAGS_$*) -DTEST_MATMUL_GROUP=test_matmul_$* -DMHC_DOUBLE -c $< -o $@

$(BUILD)/test: $(BUILD)/test_main.o $(BUILD)/test_f32.o $(BUILD)/test_f64.o $(MM_OBJS)
	$(CC) $(CFLAGS) $(OMPFLAGS) $^ -o $@ $(LDLIBS)

# ---- compile-only checks: C99 with gcc and clang (plain, static, double), C++ ----
CHECK_SRC = tests/compile_check.c
check-compile: $(BUILD)/.compile-checked
$(BUILD)/.compile-checked: $(HDR) $(CHECK_SRC) | $(BUILD)
	@for cc in gcc clang; do \
	  if command -v $$cc >/dev/null 2>&1; then \
	    for d in "" "-DMHC_STATIC" "-DMHC_DOUBLE" "-DMHC_STATIC -DMHC_DOUBLE"; do \
	      echo "$$cc -std=c99 -Werror $(WARN) $$d"; \
	      $$cc -std=c99 -Werror $(WARN) -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cc_check.o || exit 1; \
	    done; \
	  else echo "$$cc not installed: skipping its compile check"; fi; \
	done
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  for d in "" "-DMHC_DOUBLE -DMHC_STATIC"; do \
	    echo "$(CXX) -x c++ -Werror $$d"; \
	    $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cxx_check.o || exit 1; \
	  done; \
	else echo "$(CXX) not installed: skipping the C++ compile check"; fi
	@for isa in "-mavx2 -mfma -mno-avx512f" "-mavx512f -mavx2 -mfma"; do \
	  for cc in gcc clang; do \
	    if command -v $$cc >/dev/null 2>&1 && $$cc $$isa -E -x c /dev/null >/dev/null 2>&1; then \
	      for d in "" "-DMHC_STATIC -DMHC_DOUBLE"; do \
	        echo "$$cc -std=c99 -Werror $(WARN) $$isa $$d"; \
	        $$cc -std=c99 -Werror $(WARN) $$isa -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cc_check.o || exit 1; \
	      done; \
	    fi; \
	  done; \
	  if command -v $(CXX) >/dev/null 2>&1 && $(CXX) $$isa -E -x c++ /dev/null >/dev/null 2>&1; then \
	    echo "$(CXX) -x c++ -Werror $$isa"; \
	    $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra $$isa -I. -c $(CHECK_SRC) -o $(BUILD)/cxx_check.o || exit 1; \
	  fi; \
	done
	@touch $@

# the README's usage example, extracted from README.md, compiled warning-free and run
$(BUILD)/readme_example: README.md $(HDR) | $(BUILD)
	awk '/<!-- readme-example -->/{f=1;next} f&&/^```c/{g=1;next} g&&/^```/{exit} g' README.md > $(BUILD)/readme_example.c
	$(CC) $(CFLAGS) -Werror $(OMPFLAGS) $(BUILD)/readme_example.c -o $@ $(LDLIBS)

test: $(BUILD)/test check-compile $(BUILD)/readme_example
	./$(BUILD)/readme_example
	./$(BUILD)/test

# AddressSanitizer + UndefinedBehaviorSanitizer, in a separate build directory.
test-asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDLIBS="-lm -fsanitize=address,undefined" build/asan/test
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./build/asan/test

# valgrind on a build without OpenMP (libgomp's thread pool is reported as possibly lost).
valgrind:
	$(MAKE) BUILD=build/noomp NO_OMP=1 build/noomp/test
	valgrind --leak-check=full --errors-for-leak-kinds=all --error-exitcode=1 ./build/noomp/test

# ---- benchmarks: build/bench prints a table "name | ours | peer | ratio | note" ----
# Built for this machine (BENCH_OPT). The peer is OpenBLAS when a test program with cblas.h and
# -lopenblas links (Debian: libopenblas-dev), else the rows say it is not installed.
BENCH_OPT ?= -O3 -march=native
BENCH_SRC = $(wildcard bench/*.c bench/*.h)
OPENBLAS_PROBE = printf '\043include <cblas.h>\nint main(void) { openblas_set_num_threads(1); return 0; }\n' | \
  $(CC) -x c - -o /dev/null
BENCH_PEER := $(shell $(OPENBLAS_PROBE) -lopenblas >/dev/null 2>&1 && echo "-DBENCH_OPENBLAS -lopenblas" || \
  ($(OPENBLAS_PROBE) -I/usr/include/openblas -lopenblas >/dev/null 2>&1 && echo "-DBENCH_OPENBLAS -I/usr/include/openblas -lopenblas"))
$(BUILD)/bench: $(BENCH_SRC) $(HDR) | $(BUILD)
	$(CC) -std=c99 $(BENCH_OPT) -g $(WARN) -I. $(OMPFLAGS) bench/bench_main.c bench/bench_all.c -o $@ $(BENCH_PEER) $(LDLIBS)
bench: $(BUILD)/bench
	./$(BUILD)/bench

demo:
	@echo "make demo: the training demo arrives with the training issue (see README)."

clean:
	rm -rf build
