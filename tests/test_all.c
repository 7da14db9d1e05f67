/* tests/test_all.c - every test group, compiled once per precision (see Makefile):
 * the implementation is included static, so the f32 and f64 objects link side by side. */
#if (defined(__unix__) || defined(__APPLE__)) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L   /* fork, kill, waitpid, pipe (tests/test_ckpt.c) under -std=c99 */
#endif
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#define MHC_TEST_HOOKS      /* mhc.h's test-only switches (mhc__sk_group_off, mhc__ckpt_fault_hook) */
#include "../mhc.h"
#include "test.h"
#include <stdlib.h>

#include "test_core.c"
#include "test_ops.c"
#include "test_npy.c"
#include "test_compare.c"
#include "test_optim.c"
#include "test_ckpt.c"
#include "test_interrupt.c" /* (uses tools/interrupt.h and test_ckpt.c's includes) */
#include "test_hostile.c"   /* issue 15: hostile files, paths, sizes and misuse */
#include "test_hc.c"
#include "test_hc_ref.c"     /* (uses test_hc.c's naive reference) */
#include "test_kron_ortho.c" /* (uses test_hc.c and test_hc_ref.c) */
#include "test_gpt.c"
#include "test_infer.c"     /* (uses gpt/gpt.h, as test_gpt.c) */
#include "test_hc_tape.c"
#include "test_recompute.c"
#include "test_verify.c"
#include "test_edge.c"
#include "test_hostile_tool.c"   /* issue 15: the tool's members (uses test_verify.c) */
#include "test_fuzzseeds.c"
#include "test_matmul.c"
#include "test_knobs.c"      /* (uses test_hc.c and test_hc_ref.c) */
