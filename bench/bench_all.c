/* bench/bench_all.c - the library and every benchmark group, in one translation unit. */
#define _POSIX_C_SOURCE 200809L
#define MHC_IMPLEMENTATION
#include "../mhc.h"
#include "bench.h"

#include "bench_matmul.c"
#include "bench_train.c"
#include "bench_step.c"
#include "bench_sample.c"
