/* tests/fuzz/fuzz_ckpt.c - fuzz target body for mhc_checkpoint_parse, compiled twice (float32
 * and float64 builds: -DMHC_STATIC, with and without -DMHC_DOUBLE) and called for every input by
 * tests/fuzz/fuzz_ckpt_main.c. Built with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, so a wrong
 * checksum is ignored and mutations reach the structure and value checks.
 * Properties checked (abort() = a finding):
 *   - a refusal leaves every output untouched and a message in the context;
 *   - a success loads exactly the file: serialising what was loaded gives the input back, byte
 *     for byte (the checksum aside, which the fuzzing build does not verify). */
#define MHC_STATIC
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "tests/fuzz/fuzz_store.h"
#include <stdlib.h>
#include <string.h>

#ifdef MHC_DOUBLE
#define FUZZ_CKPT_FN fuzz_ckpt_f64
#else
#define FUZZ_CKPT_FN fuzz_ckpt_f32
#endif

int FUZZ_CKPT_FN(const unsigned char *data, size_t size);

static void fuzz_ckpt_sentinel(mhc_params *p, mhc_trainer *tr, mhc_rng *rng) {
    size_t i;
    for (i = 0; i < p->size; i++) p->data[i] = p->m[i] = p->v[i] = (mhc_real)(7 + i);
    memset(tr, 0x5A, sizeof *tr);
    memset(rng, 0x33, sizeof *rng);
}

static int fuzz_ckpt_is_sentinel(const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    size_t i;
    const unsigned char *b = (const unsigned char *)tr, *c = (const unsigned char *)rng;
    for (i = 0; i < p->size; i++)
        if (p->data[i] != (mhc_real)(7 + i) || p->m[i] != (mhc_real)(7 + i) || p->v[i] != (mhc_real)(7 + i)) return 0;
    for (i = 0; i < sizeof *tr; i++)
        if (b[i] != 0x5A) return 0;
    for (i = 0; i < sizeof *rng; i++)
        if (c[i] != 0x33) return 0;
    return 1;
}

/* After a successful load with the given outputs: the input serialises back. */
static void fuzz_ckpt_roundtrip(mhc_ctx *ctx, const unsigned char *data, size_t size, const char *cfg, size_t cb,
                                const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    size_t len = 0;
    unsigned char *again;
    if (mhc_checkpoint_serialize(ctx, NULL, 0, &len, cfg, cb, p, tr, rng) != MHC_OK || len != size) abort();
    again = (unsigned char *)malloc(len);
    if (!again) abort();
    if (mhc_checkpoint_serialize(ctx, again, len, &len, cfg, cb, p, tr, rng) != MHC_OK) abort();
    if (memcmp(again, data, size - 8) != 0) abort();
    free(again);
}

int FUZZ_CKPT_FN(const unsigned char *data, size_t size) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    char cfg[64];
    size_t cb = 0;
    mhc_result r;
    mhc_ctx_init(&ctx);
    /* 1. the configuration only (how `mhc train --resume` learns the model's shape) */
    r = mhc_checkpoint_parse(&ctx, data, size, cfg, sizeof cfg, &cb, NULL, NULL, NULL);
    if (r != MHC_OK && !ctx.msg[0]) abort();
    if (r == MHC_OK && cb > sizeof cfg) abort();
    /* 2. everything, into a store of the seeds' layout, with and without trainer and rng */
    if (fuzz_store_make(&ctx, &p) != MHC_OK) abort();
    fuzz_ckpt_sentinel(&p, &tr, &rng);
    mhc_ctx_clear(&ctx);
    r = mhc_checkpoint_parse(&ctx, data, size, cfg, sizeof cfg, &cb, &p, &tr, &rng);
    if (r == MHC_OK) {
        if (!tr.ready || tr.ctx != &ctx) abort();
        fuzz_ckpt_roundtrip(&ctx, data, size, cfg, cb, &p, &tr, &rng);
    } else {
        if (!ctx.msg[0] || !fuzz_ckpt_is_sentinel(&p, &tr, &rng)) abort();
        if (r == MHC_ERR_VALUE) {   /* saved without trainer or rng: load what is there */
            fuzz_ckpt_sentinel(&p, &tr, &rng);
            r = mhc_checkpoint_parse(&ctx, data, size, cfg, sizeof cfg, &cb, &p, NULL, NULL);
            if (r == MHC_OK) {
                const mhc_trainer *t = NULL;
                const mhc_rng *g = NULL;
                mhc_trainer tr2;
                mhc_rng rng2;
                /* which of the optional parts does the file hold? */
                if (mhc_checkpoint_parse(&ctx, data, size, NULL, 0, NULL, NULL, &tr2, NULL) == MHC_OK) t = &tr2;
                if (mhc_checkpoint_parse(&ctx, data, size, NULL, 0, NULL, NULL, NULL, &rng2) == MHC_OK) g = &rng2;
                fuzz_ckpt_roundtrip(&ctx, data, size, cfg, cb, &p, t, g);
            }
        }
    }
    mhc_params_free(&p);
    return 0;
}
