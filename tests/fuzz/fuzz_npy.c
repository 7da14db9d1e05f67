/* tests/fuzz/fuzz_npy.c - libFuzzer target for the .npy reader (mhc_npy_parse on a memory buffer).
 * Properties checked (abort() = a finding): a refusal leaves the output empty with a message; a
 * success gives 0..MHC_MAX_DIMS dimensions, each >= 1 (trailing ones 1), size = their product,
 * and exactly size * src_bytes data bytes after the header (the whole input is accounted for);
 * every value is read (ASan checks the allocation). */
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    mhc_ctx ctx;
    mhc_npy a;
    mhc_result r;
    mhc_ctx_init(&ctx);
    r = mhc_npy_parse(&ctx, data, size, "fuzz", &a);
    if (r != MHC_OK) {
        if (a.data || !ctx.msg[0]) abort();
    } else {
        size_t n = 1, i;
        volatile double sink = 0;
        int d;
        if (a.ndim < 0 || a.ndim > MHC_MAX_DIMS || !a.data) abort();
        if (a.src_bytes != 4 && a.src_bytes != 8) abort();
        for (d = 0; d < MHC_MAX_DIMS; d++) {
            if (a.shape[d] < 1 || (d >= a.ndim && a.shape[d] != 1)) abort();
            n *= (size_t)a.shape[d];
        }
        if (n != a.size || a.size * (size_t)a.src_bytes > size) abort();
        for (i = 0; i < a.size; i++) sink += a.data[i];
        (void)sink;
    }
    mhc_npy_free(&a);
    return 0;
}
