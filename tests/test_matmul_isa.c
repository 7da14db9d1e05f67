/* tests/test_matmul_isa.c - test_matmul.c once more, in an object of its own (see the Makefile):
 * with -DMHC_NO_SIMD (only the portable kernel is built; the others must be refused), or with the
 * build's flags and one run-time kernel forced with mhc_k_matmul_set_isa (portable, avx2+fma,
 * avx512). TEST_MATMUL_GROUP names the group, TEST_MATMUL_ISA the kernel it forces. Where the CPU
 * cannot run that kernel the group says so and skips. */
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#include "../mhc.h"
#include "test.h"
#include <stdlib.h>

#include "test_matmul.c"
