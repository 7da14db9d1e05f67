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
TEST_SRC = $(wildcard tests/test_*.c) tests/test.h tests/test_groups.h examples/cli.h examples/verify.h \
           tests/fuzz/fuzz_store.h
# build/mhc and its objects: float (the training precision; the verifier compiles its own float and
# double copies), POSIX for dirent.h, isatty and clock_gettime (see the rules below)
CLI_CFLAGS = $(CFLAGS) -D_POSIX_C_SOURCE=200809L
CLI_LIB    = $(BUILD)/mhc_impl.o $(BUILD)/compare.o
VERIFY_OBJ = $(BUILD)/verify.o $(BUILD)/verify_impl_f32.o $(BUILD)/verify_impl_f64.o

.PHONY: all test test-asan test-cli test-train check-compile demo clean valgrind bench valgrind-train \
        fuzz fuzz-build fuzz-check fuzz-replay fuzz-seeds
# `make cuda` (optional, needs nvcc): mhc_cuda.o and build/test_cuda, see the CUDA rules at the end
.PHONY: cuda test-cuda-emu test-cuda-tsan
.PHONY: examples test-examples check-examples ex1 ex2 ex3 ex4 ex5

all: $(BUILD)/test $(BUILD)/mhc check-compile $(BUILD)/readme_example examples

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

$(BUILD)/test: $(BUILD)/test_main.o $(BUILD)/test_f32.o $(BUILD)/test_f64.o $(MM_OBJS) $(CLI_LIB) $(VERIFY_OBJ)
	$(CC) $(CFLAGS) $(OMPFLAGS) $^ -o $@ $(LDLIBS)

# ---- build/mhc, the command-line tool (examples/). mhc_impl.o holds the one float copy of the
# implementation; compare.o is also linked into the test runner (tests/test_compare.c). ----
EX_HDRS = examples/cli.h examples/gpt.h examples/train.h examples/plot.h examples/corpus.h
$(BUILD)/mhc_impl.o $(BUILD)/compare.o $(BUILD)/verify.o $(BUILD)/mhc_cli.o $(BUILD)/train.o: $(BUILD)/%.o: examples/%.c $(EX_HDRS) $(HDR) | $(BUILD)
	$(CC) $(CLI_CFLAGS) $(OMPFLAGS) -c $< -o $@
# verify: verify.o reads and writes the case (all values as double); the computation
# (verify_impl.c) is compiled twice with the implementation static, once per precision, because
# a case's dtype chooses the precision it runs in. The test runner links them too (test_verify).
$(BUILD)/verify.o: examples/verify.h
$(BUILD)/verify_impl_f64.o: examples/verify_impl.c examples/verify.h $(HDR) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -DMHC_DOUBLE -c examples/verify_impl.c -o $@
$(BUILD)/verify_impl_f32.o: examples/verify_impl.c examples/verify.h $(HDR) | $(BUILD)
	$(CC) $(CFLAGS) $(OMPFLAGS) -c examples/verify_impl.c -o $@
$(BUILD)/mhc: $(BUILD)/mhc_cli.o $(VERIFY_OBJ) $(BUILD)/train.o $(CLI_LIB)
	$(CC) $(CFLAGS) $(OMPFLAGS) $^ -o $@ $(LDLIBS)

# ---- compile-only checks: C99 with gcc and clang (plain, static, double, the CUDA declarations), C++ ----
CHECK_SRC = tests/compile_check.c
check-compile: $(BUILD)/.compile-checked
$(BUILD)/.compile-checked: $(HDR) $(CHECK_SRC) | $(BUILD)
	@for cc in gcc clang; do \
	  if command -v $$cc >/dev/null 2>&1; then \
	    for d in "" "-DMHC_STATIC" "-DMHC_DOUBLE" "-DMHC_STATIC -DMHC_DOUBLE" "-DMHC_CUDA"; do \
	      echo "$$cc -std=c99 -Werror $(WARN) $$d"; \
	      $$cc -std=c99 -Werror $(WARN) -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cc_check.o || exit 1; \
	    done; \
	  else echo "$$cc not installed: skipping its compile check"; fi; \
	done
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  for d in "" "-DMHC_DOUBLE -DMHC_STATIC" "-DMHC_CUDA"; do \
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

# ---- the ladder of examples (examples/ex*.c, see README "Learn mHC from the code"): each a
# standalone program that includes mhc.h with MHC_IMPLEMENTATION, checks what it shows and exits
# non-zero on failure. `make ex1` builds and runs example 1, and so on. ----
EXAMPLES     = ex1_sinkhorn ex2_layer ex3_why_constraint ex4_dropin ex5_train_gpt
EXAMPLE_BINS = $(EXAMPLES:%=$(BUILD)/%)
examples: $(EXAMPLE_BINS) check-examples
$(EXAMPLE_BINS): $(BUILD)/%: examples/%.c $(HDR) | $(BUILD)
	$(CC) $(CFLAGS) -Werror $(OMPFLAGS) $< -o $@ $(LDLIBS)
$(BUILD)/ex5_train_gpt: examples/gpt.h examples/corpus.h
ex1: $(BUILD)/ex1_sinkhorn
	./$<
ex2: $(BUILD)/ex2_layer
	./$<
ex3: $(BUILD)/ex3_why_constraint
	./$<
ex4: $(BUILD)/ex4_dropin
	./$<
ex5: $(BUILD)/ex5_train_gpt
	./$<
# warning-free with gcc and clang (C99) and as C++
check-examples: $(BUILD)/.examples-checked
$(BUILD)/.examples-checked: $(EXAMPLES:%=examples/%.c) examples/gpt.h examples/corpus.h $(HDR) | $(BUILD)
	@for cc in gcc clang; do \
	  if command -v $$cc >/dev/null 2>&1; then \
	    echo "$$cc -std=c99 -Werror $(WARN) examples/ex*.c"; \
	    for e in $(EXAMPLES); do $$cc -std=c99 -Werror $(WARN) -I. -fsyntax-only examples/$$e.c || exit 1; done; \
	  else echo "$$cc not installed: skipping its example check"; fi; \
	done
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  echo "$(CXX) -x c++ -Werror examples/ex*.c"; \
	  for e in $(EXAMPLES); do $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra -I. -fsyntax-only examples/$$e.c || exit 1; done; \
	fi
	@touch $@
# Run every example: exit code 0 and a last line starting with "ok:". (The examples are small:
# passive OpenMP waiting keeps them fast when the machine is busy with other jobs.)
test-examples: $(EXAMPLE_BINS)
	@for e in $(EXAMPLES); do \
	  OMP_WAIT_POLICY=passive ./$(BUILD)/$$e > $(BUILD)/$$e.out 2>&1 || { \
	    rc=$$?; cat $(BUILD)/$$e.out; echo "FAIL test_examples: $$e exited $$rc"; exit 1; }; \
	  tail -n 1 $(BUILD)/$$e.out | grep -q '^ok: ' || { \
	    cat $(BUILD)/$$e.out; echo "FAIL test_examples: $$e did not end with an 'ok:' line"; exit 1; }; \
	  echo "  $$e: $$(tail -n 1 $(BUILD)/$$e.out)"; \
	done; \
	echo "test_examples: $(words $(EXAMPLES)) passed"

test: $(BUILD)/test check-compile $(BUILD)/readme_example test-cli test-train test-examples check-examples test-cuda-emu
	./$(BUILD)/readme_example
	./$(BUILD)/test

# Exit codes of build/mhc on the committed vectors (no Python needed).
test-cli: $(BUILD)/mhc
	@sh tests/test_cli.sh $(BUILD)/mhc

# `mhc train` end to end: resume and thread determinism, damaged checkpoints, bad input.
test-train: $(BUILD)/mhc
	@sh tests/test_train.sh $(BUILD)/mhc

# AddressSanitizer + UndefinedBehaviorSanitizer, in a separate build directory.
test-asan:
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDLIBS="-lm -fsanitize=address,undefined" build/asan/test
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ./build/asan/test
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  $(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	  LDLIBS="-lm -fsanitize=address,undefined" test-cuda-emu

# valgrind on a build without OpenMP (libgomp's thread pool is reported as possibly lost).
valgrind:
	$(MAKE) BUILD=build/noomp NO_OMP=1 build/noomp/test
	valgrind --leak-check=full --errors-for-leak-kinds=all --error-exitcode=1 ./build/noomp/test

# ---- fuzzing: libFuzzer targets for every file reader (tests/fuzz/README.md) ----
# `make fuzz` runs each target for FUZZ_SECONDS seconds (or FUZZ_RUNS executions) with ASan, UBSan
# and leak detection, and fails on any finding. Needs clang with libFuzzer (`make fuzz-check`).
# `make fuzz-replay` runs the committed seeds (and any crash file) through the same targets with
# $(CC) + ASan/UBSan and no libFuzzer. `make fuzz-seeds` regenerates the generated seeds.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_TARGETS = npy ckpt case
FUZZ_DIR     = build/fuzz
FUZZ_CFLAGS  = -std=c99 -g -O1 -fno-omit-frame-pointer $(WARN) -I. -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_SAN     = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_SRC_npy  = tests/fuzz/fuzz_npy.c
FUZZ_SRC_ckpt = tests/fuzz/fuzz_ckpt_main.c
FUZZ_OBJ_ckpt = $(FUZZ_DIR)/fuzz_ckpt_f32.o $(FUZZ_DIR)/fuzz_ckpt_f64.o
FUZZ_SRC_case = tests/fuzz/fuzz_case.c
FUZZ_EX_case  = ex_verify.o ex_verify_impl_f32.o ex_verify_impl_f64.o ex_mhc_impl.o
FUZZ_OBJ_case = $(addprefix $(FUZZ_DIR)/,$(FUZZ_EX_case))
FUZZ_DEPS    = $(HDR) tests/fuzz/fuzz_store.h examples/verify.h

fuzz-check:
	@mkdir -p $(FUZZ_DIR)
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > $(FUZZ_DIR)/probe.c
	@if $(FUZZ_CC) -fsanitize=fuzzer,address,undefined $(FUZZ_DIR)/probe.c -o $(FUZZ_DIR)/probe >$(FUZZ_DIR)/probe.log 2>&1; then \
	  echo "fuzz-check: $(FUZZ_CC) with libFuzzer works"; \
	else echo "fuzz-check: $(FUZZ_CC) cannot build a libFuzzer target (install clang and its compiler-rt runtime, e.g. apt-get install clang libclang-rt-14-dev):"; \
	  head -3 $(FUZZ_DIR)/probe.log; exit 1; fi

$(FUZZ_DIR)/fuzz_ckpt_f32.o: tests/fuzz/fuzz_ckpt.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@
$(FUZZ_DIR)/fuzz_ckpt_f64.o: tests/fuzz/fuzz_ckpt.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DMHC_DOUBLE -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@
$(FUZZ_DIR)/fuzz_%: $(FUZZ_DEPS) tests/fuzz/fuzz_%.c
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(FUZZ_SAN) $(FUZZ_SRC_$*) $(FUZZ_OBJ_$*) -o $@ -lm
$(FUZZ_DIR)/fuzz_ckpt: $(FUZZ_OBJ_ckpt) tests/fuzz/fuzz_ckpt_main.c
$(FUZZ_DIR)/fuzz_case: $(FUZZ_OBJ_case)
# the verifier's objects (examples/), instrumented: the case target links the whole of verify.c
$(FUZZ_DIR)/ex_%.o: examples/%.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -D_POSIX_C_SOURCE=200809L -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@
$(FUZZ_DIR)/ex_verify_impl_f32.o: examples/verify_impl.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@
$(FUZZ_DIR)/ex_verify_impl_f64.o: examples/verify_impl.c $(FUZZ_DEPS)
	@mkdir -p $(FUZZ_DIR)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -DMHC_DOUBLE -fsanitize=fuzzer-no-link $(FUZZ_SAN) -c $< -o $@

fuzz-build: fuzz-check $(foreach t,$(FUZZ_TARGETS),$(FUZZ_DIR)/fuzz_$(t))

fuzz: fuzz-build
	@for t in $(FUZZ_TARGETS); do \
	  sh tests/fuzz/run.sh $$t $(FUZZ_DIR)/fuzz_$$t tests/fuzz/$$t $(FUZZ_DIR)/work_$$t $(FUZZ_SECONDS) $(FUZZ_RUNS) || exit 1; \
	done

# the same targets without libFuzzer: $(CC) + ASan/UBSan, a main() that replays files
REPLAY_DIR = build/fuzz-replay
REPLAY_CC  = $(CC) $(FUZZ_CFLAGS) $(FUZZ_SAN)
$(REPLAY_DIR)/fuzz_ckpt_f32.o: tests/fuzz/fuzz_ckpt.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) -c $< -o $@
$(REPLAY_DIR)/fuzz_ckpt_f64.o: tests/fuzz/fuzz_ckpt.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) -DMHC_DOUBLE -c $< -o $@
$(REPLAY_DIR)/replay_npy: tests/fuzz/fuzz_npy.c tests/fuzz/replay.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) tests/fuzz/fuzz_npy.c tests/fuzz/replay.c -o $@ -lm
$(REPLAY_DIR)/replay_ckpt: tests/fuzz/fuzz_ckpt_main.c tests/fuzz/replay.c $(REPLAY_DIR)/fuzz_ckpt_f32.o $(REPLAY_DIR)/fuzz_ckpt_f64.o
	$(REPLAY_CC) $^ -o $@ -lm
$(REPLAY_DIR)/ex_%.o: examples/%.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) -D_POSIX_C_SOURCE=200809L -c $< -o $@
$(REPLAY_DIR)/ex_verify_impl_f32.o: examples/verify_impl.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) -c $< -o $@
$(REPLAY_DIR)/ex_verify_impl_f64.o: examples/verify_impl.c $(FUZZ_DEPS)
	@mkdir -p $(REPLAY_DIR)
	$(REPLAY_CC) -DMHC_DOUBLE -c $< -o $@
$(REPLAY_DIR)/replay_case: tests/fuzz/fuzz_case.c tests/fuzz/replay.c $(addprefix $(REPLAY_DIR)/,$(FUZZ_EX_case))
	$(REPLAY_CC) $^ -o $@ -lm
fuzz-replay: $(foreach t,$(FUZZ_TARGETS),$(REPLAY_DIR)/replay_$(t))
	@for t in $(FUZZ_TARGETS); do \
	  printf "replay %s: " $$t; \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 $(REPLAY_DIR)/replay_$$t tests/fuzz/$$t || exit 1; \
	done

fuzz-seeds: | $(BUILD)
	$(CC) $(CFLAGS) tests/fuzz/make_seeds.c -o $(BUILD)/make_seeds_f32 $(LDLIBS)
	$(CC) $(CFLAGS) -DMHC_DOUBLE tests/fuzz/make_seeds.c -o $(BUILD)/make_seeds_f64 $(LDLIBS)
	mkdir -p tests/fuzz/ckpt tests/fuzz/npy
	./$(BUILD)/make_seeds_f32 tests/fuzz && ./$(BUILD)/make_seeds_f64 tests/fuzz

# `mhc train` under valgrind (tests/valgrind_train.sh), also on a build without OpenMP.
valgrind-train:
	$(MAKE) BUILD=build/noomp NO_OMP=1 build/noomp/mhc
	sh tests/valgrind_train.sh build/noomp/mhc

# The main job: none, hc and mhc trained side by side on the generated corpus (README, "The demo").
# OMP_WAIT_POLICY=passive keeps OpenMP from spinning when the machine is shared.
# Built for this machine (NATIVE=1: the AVX2 / AVX-512 matmul kernels) in its own directory.
demo:
	$(MAKE) BUILD=build/native NATIVE=1 build/native/mhc
	mkdir -p build/demo
	OMP_WAIT_POLICY=passive ./build/native/mhc demo

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

# ---- CUDA (optional): mhc_cuda.cu with nvcc, warnings as errors; build/test_cuda compares every
# device kernel and a few GPT training steps with the CPU, and skips itself without a GPU.
# Plain `make` / `make test` never need nvcc. CUDA_ARCH=-arch=native builds for the GPU present
# (the default: nvcc's default target, JIT-compiled from PTX on newer GPUs). ----
CUDA_HOME  ?= /usr/local/cuda
NVCC       ?= $(shell command -v nvcc 2>/dev/null || echo $(CUDA_HOME)/bin/nvcc)
NVCC_WARN   = -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror
CUDA_ARCH  ?=
NVCC_FLAGS ?= -O2 -std=c++14 -I. $(CUDA_ARCH) $(NVCC_WARN)
CUDA_LIBS   = -L$(CUDA_HOME)/lib64 -Xlinker -rpath,$(CUDA_HOME)/lib64 -lcublas -lm
$(BUILD)/mhc_cuda.o: mhc_cuda.cu $(HDR) | $(BUILD)
	$(NVCC) $(NVCC_FLAGS) -c mhc_cuda.cu -o $@
$(BUILD)/test_cuda.o: tests/test_cuda.c tests/test.h $(HDR) examples/gpt.h examples/gpt_cuda.h | $(BUILD)
	$(CC) $(CFLAGS) -Werror -c tests/test_cuda.c -o $@
$(BUILD)/test_cuda: $(BUILD)/test_cuda.o $(BUILD)/mhc_cuda.o
	$(NVCC) $^ -o $@ $(CUDA_LIBS)
$(BUILD)/bench_cuda.o: bench/bench_cuda.c $(HDR) examples/gpt.h examples/gpt_cuda.h | $(BUILD)
	$(CC) $(CFLAGS) -Werror -c bench/bench_cuda.c -o $@
$(BUILD)/bench_cuda: $(BUILD)/bench_cuda.o $(BUILD)/mhc_cuda.o
	$(NVCC) $^ -o $@ $(CUDA_LIBS)
cuda: $(BUILD)/test_cuda $(BUILD)/bench_cuda

# The same test program on a CPU emulation of the device (no nvcc, no GPU; part of `make test`):
# mhc_cuda.cu compiled by the host C++ compiler with -DMHC_CUDA_EMULATE (tests/cuda_emulate.h:
# every launch runs its blocks and threads one after the other, cuBLAS is a naive GEMM). It checks
# the kernels' arithmetic and indexing and the GPT step's orchestration against the CPU.
$(BUILD)/mhc_cuda_emu.o: mhc_cuda.cu tests/cuda_emulate.h $(HDR) | $(BUILD)
	$(CXX) -x c++ -std=c++11 $(OPT) -g -Wall -Wextra -Werror -pthread -I. -DMHC_CUDA_EMULATE -c mhc_cuda.cu -o $@
$(BUILD)/test_cuda_emu: $(BUILD)/test_cuda.o $(BUILD)/mhc_cuda_emu.o
	$(CXX) -pthread $^ -o $@ $(LDLIBS)
test-cuda-emu:
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(BUILD)/test_cuda_emu || exit 1; \
	  ./$(BUILD)/test_cuda_emu > $(BUILD)/test_cuda_emu.out 2>&1 || { cat $(BUILD)/test_cuda_emu.out; \
	    echo "FAIL test_cuda_emu"; exit 1; }; \
	  echo "test_cuda_emu (the CUDA kernels on the CPU emulation): $$(tail -n 1 $(BUILD)/test_cuda_emu.out)"; \
	else echo "$(CXX) not installed: skipping test_cuda_emu (the CUDA kernels on the CPU emulation)"; fi
# The emulation under ThreadSanitizer: the block reductions' threads share the static __shared__
# arrays and meet at __syncthreads barriers; a missing barrier is reported as a data race.
test-cuda-tsan:
	$(MAKE) BUILD=build/tsan OPT="-O1 -fsanitize=thread" LDLIBS="-lm -fsanitize=thread" build/tsan/test_cuda_emu
	./build/tsan/test_cuda_emu > build/tsan/test_cuda_emu.out 2>&1 || { cat build/tsan/test_cuda_emu.out; exit 1; }
	@echo "test_cuda_emu under ThreadSanitizer: $$(tail -n 1 build/tsan/test_cuda_emu.out)"

clean:
	rm -rf build
