/* tests/fuzz/make_seeds.c - writes the committed seed corpora of the fuzz targets (`make
 * fuzz-seeds`; compiled once per precision, each run writes its own files). Deterministic: the
 * same files every time. The test runner checks that the committed files still behave as their
 * names say (tests/test_ckpt.c), so a format change that would leave the corpus stale fails there.
 *   ckpt/valid_<prec>_{full,bare,rng}.ckpt   parse into the fuzz store (tests/fuzz/fuzz_store.h)
 *   ckpt/broken_<prec>_*.ckpt                refused (truncated, NaN value, other layout, bad magic)
 *   npy/broken_*.npy (float32 run only)      hand-made malformed headers
 * Usage: make_seeds OUT_DIR   (OUT_DIR/ckpt and OUT_DIR/npy must exist) */
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "tests/fuzz/fuzz_store.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef MHC_DOUBLE
#define SEED_PREC "f64"
#else
#define SEED_PREC "f32"
#endif

static int seed_write(const char *dir, const char *sub, const char *name, const void *b, size_t n) {
    char path[1024];
    FILE *f;
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fclose(f) != 0) { fprintf(stderr, "make_seeds: cannot write %s\n", path); return 0; }
    return 1;
}

static unsigned char *seed_ckpt(mhc_ctx *ctx, size_t *len, const char *cfg, const mhc_params *p,
                                const mhc_trainer *tr, const mhc_rng *rng) {
    unsigned char *b;
    size_t cb = cfg ? strlen(cfg) : 0;
    if (mhc_checkpoint_serialize(ctx, NULL, 0, len, cfg, cb, p, tr, rng) != MHC_OK) return NULL;
    b = (unsigned char *)malloc(*len);
    if (b && mhc_checkpoint_serialize(ctx, b, *len, len, cfg, cb, p, tr, rng) != MHC_OK) { free(b); return NULL; }
    return b;
}

static void seed_reseal(unsigned char *b, size_t n) {   /* FNV-1a 64 of all but the last 8 bytes */
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i + 8 < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    for (i = 0; i < 8; i++) b[n - 8 + i] = (unsigned char)(h >> (8 * i));
}

int main(int argc, char **argv) {
    mhc_ctx ctx;
    mhc_params p, q;
    mhc_trainer tr;
    mhc_rng rng;
    mhc_adamw_config cfg;
    unsigned char *b;
    size_t len, k;
    int s, ok = 1, sq[1] = {5};
    const char *dir = argc > 1 ? argv[1] : "tests/fuzz";
    mhc_ctx_init(&ctx);
    if (fuzz_store_make(&ctx, &p) != MHC_OK) { fprintf(stderr, "make_seeds: %s\n", mhc_ctx_message(&ctx)); return 1; }
    memset(&cfg, 0, sizeof cfg);
    cfg.schedule.kind = MHC_LR_STEP;
    cfg.schedule.warmup = 2;
    cfg.schedule.total = 10;
    cfg.eps = 1e-20;
    mhc_trainer_init(&ctx, &tr, &cfg);
    mhc_rng_seed(&rng, 2025);
    mhc_rng_fill_normal(&rng, p.data, p.size, 0.0, 1.0);
    for (s = 0; s < 3; s++) {
        mhc_rng_fill_normal(&rng, p.grad, p.size, 0.0, 0.5);
        mhc_trainer_step(&tr, &p);
    }
    b = seed_ckpt(&ctx, &len, "fuzz seed: gpt n=4", &p, &tr, &rng);
    ok &= b && seed_write(dir, "ckpt", "valid_" SEED_PREC "_full.ckpt", b, len);
    ok &= b && seed_write(dir, "ckpt", "broken_" SEED_PREC "_truncated.ckpt", b, len / 2);
    if (b) {   /* a NaN in the parameters, behind a valid checksum */
        size_t off = len - 8 - 32 - 140 - 3 * p.size * sizeof(mhc_real) + 3 * sizeof(mhc_real);
        mhc_real nan_ = (mhc_real)(HUGE_VAL - HUGE_VAL);
        memcpy(b + off, &nan_, sizeof nan_);
        seed_reseal(b, len);
        ok &= seed_write(dir, "ckpt", "broken_" SEED_PREC "_nan.ckpt", b, len);
        b[0] = 'X';
        seed_reseal(b, len);
        ok &= seed_write(dir, "ckpt", "broken_" SEED_PREC "_magic.ckpt", b, len);
    }
    free(b);
    b = seed_ckpt(&ctx, &len, NULL, &p, NULL, NULL);
    ok &= b && seed_write(dir, "ckpt", "valid_" SEED_PREC "_bare.ckpt", b, len);
    free(b);
    b = seed_ckpt(&ctx, &len, "r", &p, NULL, &rng);
    ok &= b && seed_write(dir, "ckpt", "valid_" SEED_PREC "_rng.ckpt", b, len);
    free(b);
    mhc_params_init(&ctx, &q);   /* a valid file of another layout */
    mhc_params_add(&q, "x", 1, sq, MHC_PARAM_NO_DECAY);
    mhc_params_alloc(&q);
    for (k = 0; k < q.size; k++) q.data[k] = (mhc_real)k;
    b = seed_ckpt(&ctx, &len, "other", &q, &tr, NULL);
    ok &= b && seed_write(dir, "ckpt", "broken_" SEED_PREC "_layout.ckpt", b, len);
    free(b);
    mhc_params_free(&q);
#ifndef MHC_DOUBLE
    {   /* malformed .npy headers (the valid seeds are numpy's own files, copied from tests/data/npy) */
        static const char *const hdr[6] = {
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
            "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 2), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3,) ",
            "{'descr': '<f8', 'shape': (1,), 'fortran_order': False, 'shape': (1,), }",
            "{'descr': \"<f8\", 'fortran_order': False, 'shape': (), }",
            "{'descr': '<f8', 'fortran_order': 0, 'shape': (1,1,1,1,1), }"};
        static const char *const names[6] = {"broken_short_data.npy", "broken_huge_dim.npy", "broken_unclosed.npy",
                                             "broken_dup_key.npy", "valid_dq_scalar.npy", "broken_fortran_int.npy"};
        static const size_t data_bytes[6] = {40, 16, 12, 8, 8, 8};
        unsigned char buf[256];
        int i;
        for (i = 0; i < 6; i++) {
            size_t hl = strlen(hdr[i]), total = 10 + hl + 1, j;
            size_t pad = (64 - total % 64) % 64;
            memcpy(buf, "\x93NUMPY\x01\x00", 8);
            buf[8] = (unsigned char)((hl + 1 + pad) & 0xFF);
            buf[9] = (unsigned char)((hl + 1 + pad) >> 8);
            memcpy(buf + 10, hdr[i], hl);
            for (j = 0; j < pad; j++) buf[10 + hl + j] = ' ';
            buf[10 + hl + pad] = '\n';
            total += pad;
            for (j = 0; j < data_bytes[i]; j++) buf[total + j] = (unsigned char)(j * 37);
            ok &= seed_write(dir, "npy", names[i], buf, total + data_bytes[i]);
        }
    }
#endif
    mhc_params_free(&p);
    return ok ? 0 : 1;
}
