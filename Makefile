# mhc.h - build, test, demo. `make help` lists every target with one line each.
#
# The tree (includes point one way: library <- model <- tool; tests/ and bench/ may include
# anything, nothing includes them):
#   mhc.h, mhc_cuda.cu   the library (mhc_cuda.cu: the optional CUDA unit)
#   gpt/                 the model the tool trains (gpt_*: the GPT, its CUDA step, the corpus)
#   tools/               build/mhc, the command-line tool (tool_*; its main is tools/main.c)
#   examples/            the teaching ladder ex1..ex5 and examples/python/ (leaves)
#   tests/, bench/       the test runner, vectors, fuzz targets; the benchmarks
#
# Knobs: NO_OMP=1 (no OpenMP), NATIVE=1 (-O3 -march=native; the matmul kernel is picked at run
# time either way), CC=clang, BUILD=dir (where everything goes).
CC      ?= gcc
CXX     ?= g++
OPT     ?= -O2
ifeq ($(NATIVE),1)
  OPT = -O3 -march=native
endif
WARN    = -Wall -Wextra -Wpedantic
CFLAGS  = -std=c99 $(OPT) -g $(WARN) -I.
DEPS    = -MMD -MP
LDLIBS  = -lm
ifeq ($(NO_OMP),1)
  OMPFLAGS =
else
  OMPFLAGS = -fopenmp
endif
BUILD   ?= build
HDR     = mhc.h
# the tool's objects need POSIX (dirent.h, isatty, clock_gettime, mkdir); the library does not
POSIX   = -D_POSIX_C_SOURCE=200809L

.PHONY: all help test test-asan test-cli test-make-case test-train test-hostile test-examples check-compile check-quickstart check-examples examples \
        demo demo-projections bench valgrind valgrind-train fuzz fuzz-build fuzz-check fuzz-replay fuzz-seeds fuzz-targets \
        cuda test-cuda-emu test-clang test-cuda-tsan clean
.SECONDEXPANSION:

all: $(BUILD)/test $(BUILD)/mhc check-compile $(BUILD)/readme_example examples ## build everything (nothing is run)

help: ## list the targets
	@echo "usage: make [target] [NO_OMP=1] [NATIVE=1] [CC=clang] [BUILD=dir]"
	@awk 'BEGIN { FS = ":[^#]*## " } /^##@ / { sub(/^##@ /, ""); print "  " $$0; next } \
	  /^[a-zA-Z0-9_.%$$()\/-]+:[^#]*## / { t = $$1; gsub(/\$$\(BUILD\)/, "build", t); printf "  %-16s %s\n", t, $$2 }' $(MAKEFILE_LIST)

$(BUILD):
	mkdir -p $@

# ---- object kinds ---------------------------------------------------------------------------
# (1) precision pairs: $(BUILD)/<stem>_f32.o and $(BUILD)/<stem>_f64.o (-DMHC_DOUBLE) from one
#     source, SRC_<stem>, with extra flags FLAGS_<stem>. The two rules are generated from one text.
PAIRS = test test_mm_nosimd test_mm_portable test_mm_avx2 test_mm_avx512 verify_impl fuzz_ckpt
SRC_test           = tests/test_all.c
SRC_verify_impl    = tools/verify_impl.c
SRC_fuzz_ckpt      = tests/fuzz/fuzz_ckpt.c
# the matmul tests again, in objects of their own: MHC_NO_SIMD (the portable kernel only), and each
# run-time kernel forced with mhc_k_matmul_set_isa (the groups skip on CPUs without it)
SRC_test_mm_nosimd   = tests/test_matmul_isa.c
SRC_test_mm_portable = tests/test_matmul_isa.c
SRC_test_mm_avx2     = tests/test_matmul_isa.c
SRC_test_mm_avx512   = tests/test_matmul_isa.c
FLAGS_test_mm_nosimd   = -DMHC_NO_SIMD -DTEST_MATMUL_ISA='"portable"' -DTEST_MATMUL_GROUP=test_matmul_nosimd
FLAGS_test_mm_portable = -DTEST_MATMUL_ISA='"portable"' -DTEST_MATMUL_GROUP=test_matmul_portable
FLAGS_test_mm_avx2     = -DTEST_MATMUL_ISA='"avx2+fma"' -DTEST_MATMUL_GROUP=test_matmul_avx2
FLAGS_test_mm_avx512   = -DTEST_MATMUL_ISA='"avx512"' -DTEST_MATMUL_GROUP=test_matmul_avx512
PREC_f32 =
PREC_f64 = -DMHC_DOUBLE
define PREC_RULE
$$(BUILD)/%_$(1).o: $$$$(SRC_$$$$*) | $$(BUILD)
	$$(CC) $$(CFLAGS) $$(DEPS) $$(OMPFLAGS) $$(FLAGS_$$*) $$(PREC_$(1)) -c $$< -o $$@
endef
$(foreach p,f32 f64,$(eval $(call PREC_RULE,$(p))))

# (2) the tool's objects: $(BUILD)/tool_<name>.o from tools/<name>.c (float: the training
#     precision; the verifier's computation is the verify_impl pair above)
TOOL_OBJS = $(addprefix $(BUILD)/tool_,main.o train.o sample.o verify.o compare.o impl.o make_case.o)
$(BUILD)/tool_%.o: tools/%.c | $(BUILD)
	$(CC) $(CFLAGS) $(DEPS) $(POSIX) $(OMPFLAGS) -c $< -o $@

# (3) one-file programs: the ladder examples and the README's usage example (warnings are errors)
EXAMPLES = ex1_sinkhorn ex2_layer ex3_why_constraint ex4_dropin ex5_train_gpt
$(addprefix $(BUILD)/,$(EXAMPLES) readme_example): $(BUILD)/%: $$(SRC_$$*) | $(BUILD)
	$(CC) $(CFLAGS) $(DEPS) -Werror $(OMPFLAGS) $< -o $@ $(LDLIBS)
$(foreach e,$(EXAMPLES),$(eval SRC_$(e) = examples/$(e).c))
SRC_readme_example = $(BUILD)/readme_example.c

-include $(wildcard $(BUILD)/*.d)

# ---- programs -------------------------------------------------------------------------------
VERIFY_OBJS = $(BUILD)/verify_impl_f32.o $(BUILD)/verify_impl_f64.o
MM_OBJS     = $(foreach g,nosimd portable avx2 avx512,$(BUILD)/test_mm_$(g)_f32.o $(BUILD)/test_mm_$(g)_f64.o)

$(BUILD)/mhc: $(TOOL_OBJS) $(VERIFY_OBJS) ## the command-line tool: train, demo, verify, compare, ...
	$(CC) $(CFLAGS) $(OMPFLAGS) $^ -o $@ $(LDLIBS)

# the test runner: every group in float and double, plus the matmul groups per ISA; it links the
# tool's compare and verify objects (tests/test_compare.c, tests/test_verify.c)
$(BUILD)/test_main.o: tests/test_main.c | $(BUILD)
	$(CC) $(CFLAGS) $(DEPS) -c $< -o $@
$(BUILD)/test: $(BUILD)/test_main.o $(BUILD)/test_f32.o $(BUILD)/test_f64.o $(MM_OBJS) \
               $(BUILD)/tool_impl.o $(BUILD)/tool_compare.o $(BUILD)/tool_verify.o $(VERIFY_OBJS)
	$(CC) $(CFLAGS) $(OMPFLAGS) $^ -o $@ $(LDLIBS)

# the README's usage example, extracted from README.md
$(BUILD)/readme_example.c: README.md | $(BUILD)
	awk '/<!-- readme-example -->/{f=1;next} f&&/^```c/{g=1;next} g&&/^```/{exit} g' README.md > $@

# the header's QUICK START example, extracted from mhc.h ("... fill x->data ..." becomes a comment)
$(BUILD)/quickstart.c: $(HDR) | $(BUILD)
	@printf '#include <stdio.h>\n#define MHC_IMPLEMENTATION\n#include "mhc.h"\nint main(void) {\n' > $@
	@awk '/^ \*       mhc_ctx ctx;/{f=1} f{l=$$0; sub(/^ \*       /,"",l); if (l ~ /^\.\.\./) l="/* " l " */"; print l} \
	  f&&/mhc_tape_free\(&tape\)/{exit}' $(HDR) >> $@
	@printf 'return loss ? 0 : 1;\n}\n' >> $@

check-quickstart: $(BUILD)/quickstart.c ## the header's quick-start example compiles (C99 and C++) and runs
	$(CC) -std=c99 -Werror $(WARN) -I. $< -o $(BUILD)/quickstart_c $(LDLIBS) && ./$(BUILD)/quickstart_c
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  echo "$(CXX) -x c++ -Werror $<"; \
	  $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra -I. $< -o $(BUILD)/quickstart_cxx $(LDLIBS) && ./$(BUILD)/quickstart_cxx; \
	else echo "$(CXX) not installed: skipping the quick start's C++ check"; fi

# ---- tests ----------------------------------------------------------------------------------
TEST_STEPS = $(BUILD)/test check-compile check-quickstart $(BUILD)/readme_example test-cli test-make-case test-train test-hostile test-examples \
             check-examples test-cuda-emu test-clang test-python test-version
test: $(TEST_STEPS) ## build and run the whole suite (last line: "N passed, M failed")
	./$(BUILD)/readme_example
	./$(BUILD)/test

test-cli: $(BUILD)/mhc ## build/mhc's exit codes and every golden vector through verify + compare
	@sh tests/test_cli.sh $(BUILD)/mhc

test-train: $(BUILD)/mhc ## mhc train end to end: resume, threads, damaged checkpoints, bad input
	@sh tests/test_train.sh $(BUILD)/mhc

test-make-case: $(BUILD)/mhc ## mhc make-case for every preset and n in {1,2,3,4,8}: each slip of each power table fails compare
	@sh tests/test_make_case.sh $(BUILD)/mhc

test-hostile: $(BUILD)/mhc ## build/mhc given hostile files and paths: devices, FIFOs, links, huge cases
	@sh tests/test_hostile.sh $(BUILD)/mhc

test-asan: ## the test runner and the CUDA emulation under AddressSanitizer + UBSan (build/asan)
	$(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer $(SAN)" LDLIBS="-lm $(SAN_LINK)" build/asan/test
	$(SAN_ENV) ./build/asan/test
	$(SAN_ENV) $(MAKE) BUILD=build/asan OPT="-O1 -fno-omit-frame-pointer $(SAN)" LDLIBS="-lm $(SAN_LINK)" test-cuda-emu
SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_LINK = -fsanitize=address,undefined
SAN_ENV  = ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

valgrind: ## the test runner under valgrind (a build without OpenMP: build/noomp): 0 errors, 0 leaks
	$(MAKE) BUILD=build/noomp NO_OMP=1 build/noomp/test
	MHC_TEST_UNDER_VALGRIND=1 valgrind --leak-check=full --errors-for-leak-kinds=all --error-exitcode=1 ./build/noomp/test

valgrind-train: ## mhc train, verify and compare under valgrind (build/noomp)
	$(MAKE) BUILD=build/noomp NO_OMP=1 build/noomp/mhc
	sh tests/valgrind_train.sh build/noomp/mhc

# compile-only checks of mhc.h: C99 with gcc and clang (plain, static, double, the CUDA
# declarations, the AVX2 and AVX-512 targets) and C++
CHECK_SRC  = tests/compile_check.c
CHECK_DEFS = "" "-DMHC_STATIC" "-DMHC_DOUBLE" "-DMHC_STATIC -DMHC_DOUBLE" "-DMHC_CUDA"
CHECK_ISAS = "-mavx2 -mfma -mno-avx512f" "-mavx512f -mavx2 -mfma"
check-compile: $(BUILD)/.compile-checked ## mhc.h warning-free as C99 (gcc, clang) and C++, every config
$(BUILD)/.compile-checked: $(HDR) $(CHECK_SRC) | $(BUILD)
	@for cc in gcc clang; do \
	  if ! command -v $$cc >/dev/null 2>&1; then echo "$$cc not installed: skipping its compile check"; continue; fi; \
	  for d in $(CHECK_DEFS); do \
	    echo "$$cc -std=c99 -Werror $(WARN) $$d"; \
	    $$cc -std=c99 -Werror $(WARN) -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cc_check.o || exit 1; \
	  done; \
	  for isa in $(CHECK_ISAS); do \
	    $$cc $$isa -E -x c /dev/null >/dev/null 2>&1 || continue; \
	    for d in "" "-DMHC_STATIC -DMHC_DOUBLE"; do \
	      echo "$$cc -std=c99 -Werror $(WARN) $$isa $$d"; \
	      $$cc -std=c99 -Werror $(WARN) $$isa -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cc_check.o || exit 1; \
	    done; \
	  done; \
	done
	@if ! command -v $(CXX) >/dev/null 2>&1; then echo "$(CXX) not installed: skipping the C++ compile check"; exit 0; fi; \
	for d in "" "-DMHC_DOUBLE -DMHC_STATIC" "-DMHC_CUDA" $(CHECK_ISAS); do \
	  case "$$d" in -m*) $(CXX) $$d -E -x c++ /dev/null >/dev/null 2>&1 || continue;; esac; \
	  echo "$(CXX) -x c++ -Werror $$d"; \
	  $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra -I. $$d -c $(CHECK_SRC) -o $(BUILD)/cxx_check.o || exit 1; \
	done
	@touch $@

# ---- the ladder (examples/ex*.c, README "Learn mHC from the code"): each a standalone program
# that checks what it shows and exits non-zero on failure. `make ex1` builds and runs example 1. ----
EX_RUN = $(foreach e,$(EXAMPLES),$(firstword $(subst _, ,$(e))))
.PHONY: $(EX_RUN)
examples: $(addprefix $(BUILD)/,$(EXAMPLES)) check-examples ## build the ladder ex1..ex5
##@ ex1 .. ex5       build and run one example of the ladder
$(EX_RUN): ex%: $$(BUILD)/$$(filter ex$$*_%,$$(EXAMPLES))
	./$<
# warning-free with gcc and clang (C99) and as C++
check-examples: $(BUILD)/.examples-checked ## the examples warning-free with gcc, clang and C++
$(BUILD)/.examples-checked: $(EXAMPLES:%=examples/%.c) gpt/gpt.h gpt/corpus.h $(HDR) | $(BUILD)
	@for cc in gcc clang; do \
	  if ! command -v $$cc >/dev/null 2>&1; then echo "$$cc not installed: skipping its example check"; continue; fi; \
	  echo "$$cc -std=c99 -Werror $(WARN) examples/ex*.c"; \
	  for e in $(EXAMPLES); do $$cc -std=c99 -Werror $(WARN) -I. -fsyntax-only examples/$$e.c || exit 1; done; \
	done
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  echo "$(CXX) -x c++ -Werror examples/ex*.c"; \
	  for e in $(EXAMPLES); do $(CXX) -x c++ -std=c++11 -Werror -Wall -Wextra -I. -fsyntax-only examples/$$e.c || exit 1; done; \
	fi
	@touch $@
# Run every example: exit code 0 and a last line starting with "ok:". (The examples are small:
# passive OpenMP waiting keeps them fast when the machine is busy with other jobs.)
test-examples: $(addprefix $(BUILD)/,$(EXAMPLES)) ## run the ladder; each must end with an "ok:" line
	@for e in $(EXAMPLES); do \
	  OMP_WAIT_POLICY=passive ./$(BUILD)/$$e > $(BUILD)/$$e.out 2>&1 || { \
	    rc=$$?; cat $(BUILD)/$$e.out; echo "FAIL test_examples: $$e exited $$rc"; exit 1; }; \
	  tail -n 1 $(BUILD)/$$e.out | grep -q '^ok: ' || { \
	    cat $(BUILD)/$$e.out; echo "FAIL test_examples: $$e did not end with an 'ok:' line"; exit 1; }; \
	  echo "  $$e: $$(tail -n 1 $(BUILD)/$$e.out)"; \
	done; \
	echo "test_examples: $(words $(EXAMPLES)) passed"

# ---- fuzzing: libFuzzer targets for every file reader (tests/fuzz/README.md) ----------------
# `make fuzz` builds each target with clang, libFuzzer, ASan and UBSan (in build/fuzz, by the same
# object rules as everything else) and runs it for FUZZ_SECONDS seconds (or FUZZ_RUNS
# executions); any finding fails. `make fuzz-replay` builds the same targets with $(CC) + ASan/UBSan
# and a main() that replays the committed seeds (build/fuzz-replay; no libFuzzer needed).
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_RUNS    ?=
FUZZ_TARGETS = npy ckpt case args
FUZZ_OPT     = -O1 -fno-omit-frame-pointer $(SAN) -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
FUZZ_OBJ_npy  =
FUZZ_OBJ_ckpt = $(BUILD)/fuzz_ckpt_f32.o $(BUILD)/fuzz_ckpt_f64.o
FUZZ_OBJ_case = $(BUILD)/tool_verify.o $(BUILD)/tool_impl.o $(VERIFY_OBJS)
FUZZ_OBJ_args = $(BUILD)/tool_verify.o $(BUILD)/tool_compare.o $(BUILD)/tool_sample.o $(BUILD)/tool_make_case.o $(BUILD)/tool_impl.o $(VERIFY_OBJS)
FUZZ_MAIN_ckpt = tests/fuzz/fuzz_ckpt_main.c
FUZZ_MAIN_npy  = tests/fuzz/fuzz_npy.c
FUZZ_MAIN_case = tests/fuzz/fuzz_case.c
FUZZ_MAIN_args = tests/fuzz/fuzz_args.c   # includes tools/train.c (its static option parser)
FUZZ_DRIVER  ?= -fsanitize=fuzzer
# (internal) the targets of one fuzz build; FUZZ_DRIVER is libFuzzer or tests/fuzz/replay.c
fuzz-targets: $(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz_$(t))
$(foreach t,$(FUZZ_TARGETS),$(BUILD)/fuzz_$(t)): $(BUILD)/fuzz_%: $$(FUZZ_MAIN_$$*) $$(FUZZ_OBJ_$$*) tests/fuzz/replay.c | $(BUILD)
	$(CC) $(CFLAGS) $(FUZZ_DRIVER) $(FUZZ_MAIN_$*) $(FUZZ_OBJ_$*) -o $@ $(LDLIBS) $(SAN_LINK)

fuzz-check: ## can clang (FUZZ_CC) build libFuzzer targets here?
	@mkdir -p build/fuzz
	@printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n);\nint LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { (void)d; (void)n; return 0; }\n' > build/fuzz/probe.c
	@if $(FUZZ_CC) -fsanitize=fuzzer,address,undefined build/fuzz/probe.c -o build/fuzz/probe >build/fuzz/probe.log 2>&1; then \
	  echo "fuzz-check: $(FUZZ_CC) with libFuzzer works"; \
	else echo "fuzz-check: $(FUZZ_CC) cannot build a libFuzzer target (install clang and its compiler-rt runtime, e.g. apt-get install clang libclang-rt-14-dev):"; \
	  head -3 build/fuzz/probe.log; exit 1; fi

fuzz-build: fuzz-check ## build the libFuzzer targets (build/fuzz)
	$(MAKE) BUILD=build/fuzz CC=$(FUZZ_CC) NO_OMP=1 OPT="$(FUZZ_OPT) -fsanitize=fuzzer-no-link" fuzz-targets

fuzz: fuzz-build ## run every libFuzzer target FUZZ_SECONDS seconds (needs clang + libFuzzer)
	@for t in $(FUZZ_TARGETS); do \
	  sh tests/fuzz/run.sh $$t build/fuzz/fuzz_$$t tests/fuzz/$$t build/fuzz/work_$$t $(FUZZ_SECONDS) $(FUZZ_RUNS) || exit 1; \
	done

fuzz-replay: ## the committed fuzz seeds through every target, gcc (CC) + ASan + UBSan, no libFuzzer
	$(MAKE) BUILD=build/fuzz-replay NO_OMP=1 OPT="$(FUZZ_OPT)" FUZZ_DRIVER=tests/fuzz/replay.c fuzz-targets
	@for t in $(FUZZ_TARGETS); do \
	  printf "replay %s: " $$t; \
	  $(SAN_ENV) build/fuzz-replay/fuzz_$$t tests/fuzz/$$t || exit 1; \
	done

fuzz-seeds: | $(BUILD) ## regenerate the generated fuzz seeds (tests/fuzz/ckpt, tests/fuzz/npy)
	$(CC) $(CFLAGS) tests/fuzz/make_seeds.c -o $(BUILD)/make_seeds_f32 $(LDLIBS)
	$(CC) $(CFLAGS) -DMHC_DOUBLE tests/fuzz/make_seeds.c -o $(BUILD)/make_seeds_f64 $(LDLIBS)
	mkdir -p tests/fuzz/ckpt tests/fuzz/npy
	./$(BUILD)/make_seeds_f32 tests/fuzz && ./$(BUILD)/make_seeds_f64 tests/fuzz

# ---- the main job and the benchmarks --------------------------------------------------------
# The demo: none, hc and mhc trained side by side on the generated corpus (README, "The demo"),
# built for this machine (NATIVE=1) in its own directory; OMP_WAIT_POLICY=passive keeps OpenMP
# from spinning when the machine is shared.
demo: ## train none, hc and mhc side by side on the generated corpus (build/native/mhc demo)
	$(MAKE) BUILD=build/native NATIVE=1 build/native/mhc
	mkdir -p build/demo
	OMP_WAIT_POLICY=passive ./build/native/mhc demo
# The same GPT and budget with every residual: none, hc, mhc, lite, kromhc and ortho, one table
# (README, "The projections"); DEMO_ARGS passes train options (e.g. DEMO_ARGS="--steps 200").
demo-projections: ## train none, hc, mhc, lite, kromhc and ortho side by side (build/native/mhc demo --projections)
	$(MAKE) BUILD=build/native NATIVE=1 build/native/mhc
	mkdir -p build/demo
	OMP_WAIT_POLICY=passive ./build/native/mhc demo --projections $(DEMO_ARGS)

# build/bench prints a table "name | ours | peer | ratio | note", built for this machine
# (BENCH_OPT). The peer is OpenBLAS when a test program with cblas.h and -lopenblas links (Debian:
# libopenblas-dev), else the rows say it is not installed; PyTorch when python3-torch is there.
BENCH_OPT ?= -O3 -march=native
BENCH_SRC = $(wildcard bench/*.c bench/*.h) gpt/gpt.h
OPENBLAS_PROBE = printf '\043include <cblas.h>\nint main(void) { openblas_set_num_threads(1); return 0; }\n' | \
  $(CC) -x c - -o /dev/null
BENCH_PEER := $(shell $(OPENBLAS_PROBE) -lopenblas >/dev/null 2>&1 && echo "-DBENCH_OPENBLAS -lopenblas" || \
  ($(OPENBLAS_PROBE) -I/usr/include/openblas -lopenblas >/dev/null 2>&1 && echo "-DBENCH_OPENBLAS -I/usr/include/openblas -lopenblas"))
$(BUILD)/bench: $(BENCH_SRC) $(HDR) | $(BUILD)
	$(CC) -std=c99 $(BENCH_OPT) -g $(WARN) -I. $(OMPFLAGS) bench/bench_main.c bench/bench_all.c -o $@ $(BENCH_PEER) $(LDLIBS)
# build/bench_default: the same program built the way the README builds the library (plain -O2,
# no -march), for bench_step's "step default build/native" rows (run as its child).
$(BUILD)/bench_default: $(BENCH_SRC) $(HDR) | $(BUILD)
	$(CC) -std=c99 -O2 -g $(WARN) -I. $(OMPFLAGS) bench/bench_main.c bench/bench_all.c -o $@ $(BENCH_PEER) $(LDLIBS)
bench: $(BUILD)/bench $(BUILD)/bench_default ## the benchmarks: ratios against OpenBLAS and PyTorch measured in the same run
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
cuda: $(BUILD)/test_cuda $(BUILD)/bench_cuda ## the CUDA unit with nvcc: build/test_cuda, build/bench_cuda
$(BUILD)/mhc_cuda.o: mhc_cuda.cu $(HDR) | $(BUILD)
	$(NVCC) $(NVCC_FLAGS) -c mhc_cuda.cu -o $@
$(BUILD)/test_cuda.o $(BUILD)/bench_cuda.o: $(BUILD)/%.o: $$(SRC_$$*) | $(BUILD)
	$(CC) $(CFLAGS) $(DEPS) -Werror -c $< -o $@
SRC_test_cuda  = tests/test_cuda.c
SRC_bench_cuda = bench/bench_cuda.c
$(BUILD)/test_cuda $(BUILD)/bench_cuda: $(BUILD)/%: $(BUILD)/%.o $(BUILD)/mhc_cuda.o
	$(NVCC) $^ -o $@ $(CUDA_LIBS)

# The same test program on a CPU emulation of the device (no nvcc, no GPU; part of `make test`):
# tests/cuda_emu.cc includes tests/cuda_emulate.h (every launch runs its blocks and threads one
# after the other, cuBLAS is a naive GEMM) and then mhc_cuda.cu, compiled by the host C++ compiler.
$(BUILD)/cuda_emu.o: tests/cuda_emu.cc | $(BUILD)
	$(CXX) -x c++ -std=c++11 $(OPT) -g -Wall -Wextra -Werror -pthread -I. $(DEPS) -c $< -o $@
$(BUILD)/test_cuda_emu: $(BUILD)/test_cuda.o $(BUILD)/cuda_emu.o
	$(CXX) -pthread $^ -o $@ $(LDLIBS)
test-clang: ## the test runner built with clang too (build/clang; skipped when clang is absent)
	@if command -v clang >/dev/null 2>&1; then \
	  omp=; dir=$(BUILD)/clang; mkdir -p $(BUILD); printf 'int main(void){return 0;}\n' > $(BUILD)/omp_probe.c; \
	  clang -fopenmp $(BUILD)/omp_probe.c -o $(BUILD)/omp_probe 2>/dev/null || { omp=NO_OMP=1; dir=$(BUILD)/clang-noomp; \
	    echo "test-clang: clang cannot link OpenMP here (libomp missing): building without it"; }; \
	  $(MAKE) --no-print-directory CC=clang BUILD=$$dir $$omp $$dir/test > /dev/null || exit 1; \
	  ./$$dir/test > $$dir/test.out 2>&1 || { grep FAIL $$dir/test.out; tail -1 $$dir/test.out; \
	    echo "FAIL test-clang"; exit 1; }; \
	  echo "test-clang (the runner built with clang): $$(tail -1 $$dir/test.out)"; \
	else echo "clang not installed: skipping test-clang"; fi

test-cuda-emu: ## the CUDA kernels on the CPU emulation against the CPU (needs only a C++ compiler)
	@if command -v $(CXX) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory $(BUILD)/test_cuda_emu || exit 1; \
	  ./$(BUILD)/test_cuda_emu > $(BUILD)/test_cuda_emu.out 2>&1 || { cat $(BUILD)/test_cuda_emu.out; \
	    echo "FAIL test_cuda_emu"; exit 1; }; \
	  echo "test_cuda_emu (the CUDA kernels on the CPU emulation): $$(tail -n 1 $(BUILD)/test_cuda_emu.out)"; \
	else echo "$(CXX) not installed: skipping test_cuda_emu (the CUDA kernels on the CPU emulation)"; fi
# The emulation under ThreadSanitizer: the block reductions' threads share the static __shared__
# arrays and meet at __syncthreads barriers; a missing barrier is reported as a data race.
test-cuda-tsan: ## the CUDA emulation under ThreadSanitizer (build/tsan)
	$(MAKE) BUILD=build/tsan OPT="-O1 -fsanitize=thread" LDLIBS="-lm -fsanitize=thread" build/tsan/test_cuda_emu
	./build/tsan/test_cuda_emu > build/tsan/test_cuda_emu.out 2>&1 || { cat build/tsan/test_cuda_emu.out; exit 1; }
	@echo "test_cuda_emu under ThreadSanitizer: $$(tail -n 1 build/tsan/test_cuda_emu.out)"

# ---- install (CMake users: CMakeLists.txt). `make install PREFIX=/usr/local DESTDIR=` installs
# mhc.h and mhc_cuda.cu (INCLUDEDIR), build/mhc (BINDIR), mhc.pc (PKGCONFIGDIR), and where they
# were built: build/libmhc_f64.so, build/libmhc_f32.so (LIBDIR), python/mhc.py + mhc_torch.py (PYTHONDIR).
# `make uninstall` removes the same files. One version, the header's: `make version`. ----------
MHC_VERSION := $(shell sed -n 's/^[#]define MHC_VERSION_STRING "\(.*\)"$$/\1/p' $(HDR))
PREFIX       ?= /usr/local
INCLUDEDIR   ?= $(PREFIX)/include
BINDIR       ?= $(PREFIX)/bin
LIBDIR       ?= $(PREFIX)/lib
DATADIR      ?= $(PREFIX)/share
PKGCONFIGDIR ?= $(DATADIR)/pkgconfig
PYTHONDIR    ?= $(DATADIR)/mhc/python
SHARED_LIBS   = libmhc_f64.so libmhc_f32.so
.PHONY: install uninstall version test-version test-consumers .FORCE
version: ## print the version (mhc.h's MHC_VERSION_STRING)
	@echo $(MHC_VERSION)
# (regenerated every time: it records PREFIX)
$(BUILD)/mhc.pc: cmake/mhc.pc.in .FORCE | $(BUILD)
	@sed -e 's|@MHC_PC_PREFIX@|$(PREFIX)|' -e 's|@MHC_PC_INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|' \
	  -e 's|@MHC_PC_VERSION@|$(MHC_VERSION)|' cmake/mhc.pc.in > $@.tmp && mv $@.tmp $@
install: $(BUILD)/mhc $(BUILD)/mhc.pc ## install the header, build/mhc, mhc.pc (+ shared libs, python/mhc.py, mhc_torch.py if built)
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 mhc.h mhc_cuda.cu $(DESTDIR)$(INCLUDEDIR)/
	install -m 755 $(BUILD)/mhc $(DESTDIR)$(BINDIR)/mhc
	install -m 644 $(BUILD)/mhc.pc $(DESTDIR)$(PKGCONFIGDIR)/mhc.pc
	@for l in $(SHARED_LIBS); do [ -f $(BUILD)/$$l ] || continue; \
	  echo "install -m 755 $(BUILD)/$$l $(DESTDIR)$(LIBDIR)/$$l"; \
	  install -d $(DESTDIR)$(LIBDIR) && install -m 755 $(BUILD)/$$l $(DESTDIR)$(LIBDIR)/$$l || exit 1; done
	@if [ -f python/mhc.py ]; then echo "install -m 644 python/mhc.py python/mhc_torch.py $(DESTDIR)$(PYTHONDIR)/"; \
	  install -d $(DESTDIR)$(PYTHONDIR) && install -m 644 python/mhc.py python/mhc_torch.py $(DESTDIR)$(PYTHONDIR)/; fi
uninstall: ## remove what `make install` installed (same PREFIX and DESTDIR)
	rm -f $(DESTDIR)$(INCLUDEDIR)/mhc.h $(DESTDIR)$(INCLUDEDIR)/mhc_cuda.cu $(DESTDIR)$(BINDIR)/mhc \
	  $(DESTDIR)$(PKGCONFIGDIR)/mhc.pc $(addprefix $(DESTDIR)$(LIBDIR)/,$(SHARED_LIBS)) $(DESTDIR)$(PYTHONDIR)/mhc.py \
	  $(DESTDIR)$(PYTHONDIR)/mhc_torch.py
	-rmdir $(DESTDIR)$(PYTHONDIR) $(DESTDIR)$(DATADIR)/mhc 2>/dev/null
test-version: $(BUILD)/mhc $(BUILD)/mhc.pc ## one version in mhc.h, mhc version, CHANGELOG.md, mhc.pc, CMake's version file
	@sh tests/test_version.sh $(BUILD)/mhc $(BUILD)/mhc.pc
# `make install` into build/stage, then the consumer built with pkg-config against it (cmake's
# consumers: .ci/run, which installs with cmake too)
test-consumers: ## tests/consumer/ built outside the tree against `make install` (pkg-config)
	@$(MAKE) --no-print-directory install PREFIX=$(abspath $(BUILD))/stage >/dev/null
	@sh tests/test_consumers.sh --pkg-config $(abspath $(BUILD))/stage

clean: ## remove build/
	rm -rf build

# ---- python (issue 13): build/libmhc_f64.so, build/libmhc_f32.so for python/mhc.py ------------
# The verifier's parser and computation (tools/verify.c, tools/verify_impl.c), the compare table
# (tools/compare.c) and tools/pylib.c, built -fPIC. `make test` runs tests/test_python.py and
# tests/test_python_torch.py (mhc.torch; it says skipped without torch) when /usr/bin/python3 has
# NumPy (else it says skipped).
PY_COMMON = $(addprefix $(BUILD)/pic/,tool_verify.o tool_compare.o tool_impl.o tool_make_case.o verify_impl_f32.o verify_impl_f64.o)
$(BUILD)/pic:
	mkdir -p $@
$(BUILD)/pic/tool_%.o: tools/%.c | $(BUILD)/pic
	$(CC) $(CFLAGS) $(DEPS) $(POSIX) $(OMPFLAGS) -fPIC -c $< -o $@
$(BUILD)/pic/verify_impl_f32.o: tools/verify_impl.c | $(BUILD)/pic
	$(CC) $(CFLAGS) $(DEPS) $(OMPFLAGS) -fPIC -c $< -o $@
$(BUILD)/pic/verify_impl_f64.o: tools/verify_impl.c | $(BUILD)/pic
	$(CC) $(CFLAGS) $(DEPS) $(OMPFLAGS) -DMHC_DOUBLE -fPIC -c $< -o $@
$(BUILD)/pic/pylib_f32.o: tools/pylib.c | $(BUILD)/pic
	$(CC) $(CFLAGS) $(DEPS) $(POSIX) -fPIC -c $< -o $@
$(BUILD)/pic/pylib_f64.o: tools/pylib.c | $(BUILD)/pic
	$(CC) $(CFLAGS) $(DEPS) $(POSIX) -DPYLIB_F64 -fPIC -c $< -o $@
$(BUILD)/libmhc_%.so: $(BUILD)/pic/pylib_%.o $(PY_COMMON)
	$(CC) $(CFLAGS) $(OMPFLAGS) -shared $^ -o $@ $(LDLIBS)
-include $(wildcard $(BUILD)/pic/*.d)
.SECONDARY: $(PY_COMMON) $(BUILD)/pic/pylib_f32.o $(BUILD)/pic/pylib_f64.o
.PHONY: python test-python
python: $(BUILD)/libmhc_f64.so $(BUILD)/libmhc_f32.so $(BUILD)/mhc ## the shared libraries of python/mhc.py
test-python: python ## python/mhc.py against the CLI on the golden vectors (skipped without /usr/bin/python3 + NumPy)
	@if /usr/bin/python3 -c "import numpy" >/dev/null 2>&1; then \
	  MHC_BUILD=$(BUILD) /usr/bin/python3 tests/test_python.py && MHC_BUILD=$(BUILD) /usr/bin/python3 tests/test_python_torch.py && \
	  { /usr/bin/python3 tests/reference/check_power.py >$(BUILD)/check_power.log || { cat $(BUILD)/check_power.log; exit 1; }; } && \
	  tail -1 $(BUILD)/check_power.log; \
	else echo "test-python: skipped (/usr/bin/python3 with NumPy not installed)"; fi
