/* bench/bench_sample.c - the inference path of gpt/gpt.h (gpt_infer: no tape, a key/value cache):
 *   sample KV/recompute       generating 256 tokens one at a time (seq 256, from a 1-token prompt,
 *                              gpt_sample_logits at temperature 0.8) with the cache against the same
 *                              kernels recomputing the whole sequence for every token (the cache reset,
 *                              all t tokens run again); tokens per second, higher is better; ratio =
 *                              cache / recompute. Both produce the same tokens (checked: the note says).
 *   infer/train fwd           the inference forward of a batch (gpt_infer of B x T tokens into an empty
 *                              cache, logits included) against the training forward of the same batch
 *                              (gpt_forward on a tape that records for the backward, with the loss, then
 *                              mhc_tape_reset); milliseconds, lower is better; ratio = inference / training.
 * mHC n = 4, dsv4, as the training rows. Medians of several repetitions. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../gpt/gpt.h"

typedef struct bs_model {
    mhc_ctx ctx;
    gpt_model m;
    int ok;
} bs_model;

static int bs_open(bs_model *r, int dim, int heads, int layers, int seq) {
    gpt_config c;
    mhc_rng rng;
    memset(r, 0, sizeof *r);
    mhc_ctx_init(&r->ctx);
    memset(&c, 0, sizeof c);
    c.vocab = 256; c.seq = seq; c.dim = dim; c.heads = heads; c.layers = layers; c.n = 4;
    c.hc.variant = MHC_VARIANT_MHC;
    c.hc.preset = MHC_PRESET_DSV4;
    if (gpt_create(&r->ctx, &r->m, &c) != MHC_OK) return 0;
    mhc_rng_seed(&rng, 5);
    if (gpt_init(&r->ctx, &r->m, &rng) != MHC_OK) { gpt_destroy(&r->m); return 0; }
    r->ok = 1;
    return 1;
}

/* Generate T tokens with the cache (recompute = 0) or by running the whole sequence again for each
   token (recompute = 1) into tok[T] (tok[0] is the prompt). Returns the seconds, or -1. */
static double bs_generate(bs_model *r, gpt_cache *c, mhc_real *logits, int *tok, int T, int recompute) {
    const int V = r->m.cfg.vocab;
    int t, scratch[512];
    mhc_rng rng;
    double t0 = bench_now();
    mhc_rng_seed(&rng, 77);
    gpt_cache_reset(c);
    if (gpt_infer(&r->ctx, &r->m, c, tok, 1, logits) != MHC_OK) return -1;
    for (t = 1; t < T; t++) {
        const mhc_real *last = logits + (size_t)(recompute ? t - 1 : 0) * V;
        tok[t] = gpt_sample_logits(last, V, 0.8, 0, &rng, scratch);
        if (tok[t] < 0) return -1;
        if (t + 1 == T) break;
        if (recompute) {
            gpt_cache_reset(c);
            if (gpt_infer(&r->ctx, &r->m, c, tok, t + 1, logits) != MHC_OK) return -1;
        } else if (gpt_infer(&r->ctx, &r->m, c, tok + t, 1, logits) != MHC_OK) return -1;
    }
    return bench_now() - t0;
}

static void bs_sample_row(void) {
    enum { T = 256, REPS = 5 };
    const int dim = 128, heads = 4, layers = 4;
    char name[96], note[256];
    bs_model r;
    gpt_cache c;
    mhc_real *logits;
    int tok_a[T], tok_b[T], k, same;
    double ta[REPS], tb, ra, rb;
    snprintf(name, sizeof name, "sample KV/recompute T=%d C=%d", T, dim);
    if (!bench_selected(name)) return;
    if (!bs_open(&r, dim, heads, layers, T)) { printf("bench_sample: %s\n", mhc_ctx_message(&r.ctx)); return; }
    logits = (mhc_real *)malloc((size_t)T * 256 * sizeof(mhc_real));
    if (!logits || gpt_cache_init(&r.ctx, &c, &r.m, 1) != MHC_OK) {
        printf("bench_sample: %s\n", logits ? mhc_ctx_message(&r.ctx) : "out of memory");
        free(logits); gpt_destroy(&r.m);
        return;
    }
    tok_a[0] = tok_b[0] = 'T';
    if (bs_generate(&r, &c, logits, tok_a, T, 0) < 0) goto fail;   /* warm-up */
    for (k = 0; k < REPS; k++) if ((ta[k] = bs_generate(&r, &c, logits, tok_a, T, 0)) < 0) goto fail;
    tb = bs_generate(&r, &c, logits, tok_b, T, 1);                  /* once: it is the slow one */
    if (tb < 0) goto fail;
    same = memcmp(tok_a, tok_b, sizeof tok_a) == 0;
    ra = T / bench_median(ta, REPS);
    rb = T / tb;
    snprintf(note, sizeof note, "tokens/s, higher is better; L=%d H=%d n=4, 1-token prompt, median of %d (recompute: 1 run); "
             "same tokens: %s", layers, heads, REPS, same ? "yes" : "NO");
    bench_row(name, ra, rb, note);
    goto done;
fail:
    printf("bench_sample: %s\n", mhc_ctx_message(&r.ctx));
done:
    gpt_cache_free(&c);
    free(logits);
    gpt_destroy(&r.m);
}

static void bs_forward_row(void) {
    enum { B = 4, T = 128, REPS = 7 };
    const int dim = 256, heads = 4, layers = 4;
    char name[96], note[256];
    bs_model r;
    gpt_cache c;
    mhc_arena arena;
    mhc_tape tape;
    mhc_real *logits;
    int *tok, *tgt, i, k, ok = 1;
    double ti[REPS], tt[REPS];
    mhc_rng rng;
    snprintf(name, sizeof name, "infer/train fwd C=%d T=%d B=%d", dim, T, B);
    if (!bench_selected(name)) return;
    if (!bs_open(&r, dim, heads, layers, T)) { printf("bench_sample: %s\n", mhc_ctx_message(&r.ctx)); return; }
    logits = (mhc_real *)malloc((size_t)B * T * 256 * sizeof(mhc_real));
    tok = (int *)malloc((size_t)B * T * sizeof(int));
    tgt = (int *)malloc((size_t)B * T * sizeof(int));
    if (!logits || !tok || !tgt || gpt_cache_init(&r.ctx, &c, &r.m, B) != MHC_OK ||
        mhc_arena_init(&r.ctx, &arena, 1 << 20) != MHC_OK) {
        printf("bench_sample: %s\n", mhc_ctx_message(&r.ctx));
        free(logits); free(tok); free(tgt); gpt_destroy(&r.m);
        return;
    }
    mhc_tape_init(&r.ctx, &tape, &arena);
    mhc_rng_seed(&rng, 8);
    for (i = 0; i < B * T; i++) { tok[i] = (int)mhc_rng_below(&rng, 256); tgt[i] = (int)mhc_rng_below(&rng, 256); }
    for (k = -1; k < REPS && ok; k++) {   /* interleaved, one warm-up round */
        double t0 = bench_now();
        gpt_cache_reset(&c);
        if (gpt_infer(&r.ctx, &r.m, &c, tok, T, logits) != MHC_OK) ok = 0;
        if (k >= 0) ti[k] = bench_now() - t0;
        t0 = bench_now();
        if (!gpt_forward(&tape, &r.m, tok, tgt, B, T, NULL)) ok = 0;
        mhc_tape_reset(&tape);
        if (k >= 0) tt[k] = bench_now() - t0;
    }
    if (ok) {
        snprintf(note, sizeof note, "ms, lower is better; L=%d H=%d n=4 dsv4; no tape vs a recording tape + loss; median "
                 "of %d interleaved", layers, heads, REPS);
        bench_row(name, 1e3 * bench_median(ti, REPS), 1e3 * bench_median(tt, REPS), note);
    } else printf("bench_sample: %s\n", mhc_ctx_message(&r.ctx));
    mhc_tape_free(&tape);
    mhc_arena_free(&arena);
    gpt_cache_free(&c);
    free(logits); free(tok); free(tgt);
    gpt_destroy(&r.m);
}

void bench_sample(void) {
#if MHC__OMP
    omp_set_num_threads(bench_threads());
#endif
    bs_sample_row();
    bs_forward_row();
}
