/* tests/test_matmul_isa.c - test_matmul.c once more, in an object of its own compiled with other
 * ISA flags (see the Makefile): -DMHC_NO_SIMD (the portable kernel), -mavx2 -mfma, -mavx512f.
 * TEST_MATMUL_GROUP names the group, TEST_MATMUL_ISA the micro-kernel it must be using. Where the
 * compiler lacks the flags the object is built without them and the group checks the portable
 * kernel; where the CPU lacks the ISA the group says so and skips. */
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#include "../mhc.h"
#include "test.h"
#include <stdlib.h>

#include "test_matmul.c"
