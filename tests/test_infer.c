/* tests/test_infer.c - the inference path: mhc_k_attention_kv_forward (attention of new queries
 * against a key/value cache) against a naive double reference and against the rows of the
 * full-sequence kernel mhc_k_attention_forward; gpt_infer (gpt/gpt.h: no tape, a KV cache) against
 * the training forward gpt_forward at every position (a prefill then one token at a time, a whole
 * prefill, and a sequence the cached path generated itself), for every residual variant;
 * gpt_sample_logits.
 *
 * Tolerances (measured: the cached path gives the same bits as the tape today; the bound leaves
 * room for kernels whose rounding depends on how many rows they get):
 *   attention kernel vs naive double: 1e-13 (double), 2e-6 (float) of max(1, max |ref|);
 *   gpt_infer logits vs gpt_forward:  1e-12 (double), 2e-5 (float) of max(1, max |logit|). */
#include "../gpt/gpt.h"

/* naive causal attention of query rows against k, v rows, every sum in double */
static void TP(inf_attn_naive)(double *out, const mhc_real *q, int ldq, const mhc_real *k, const mhc_real *v, int ldkv,
                               int Tq, int p0, int C, int H) {
    const int hs = C / H;
    int i, h, t2, c;
    for (i = 0; i < Tq; i++)
        for (h = 0; h < H; h++) {
            double sc[64], mx = -1e300, s = 0;
            for (t2 = 0; t2 <= p0 + i; t2++) {
                double d = 0;
                for (c = 0; c < hs; c++) d += (double)q[(size_t)i * ldq + h * hs + c] * (double)k[(size_t)t2 * ldkv + h * hs + c];
                sc[t2] = d / sqrt((double)hs);
                if (sc[t2] > mx) mx = sc[t2];
            }
            for (t2 = 0; t2 <= p0 + i; t2++) { sc[t2] = exp(sc[t2] - mx); s += sc[t2]; }
            for (c = 0; c < hs; c++) {
                double o = 0;
                for (t2 = 0; t2 <= p0 + i; t2++) o += sc[t2] / s * (double)v[(size_t)t2 * ldkv + h * hs + c];
                out[(size_t)i * C + h * hs + c] = o;
            }
        }
}

static void TP(inf_test_kernel)(void) {
    const int dbl = sizeof(mhc_real) == 8;
    const double tol = dbl ? 1e-13 : 2e-6;
    static const int cases[4][4] = {   /* C, H, Tq, p0 */
        {8, 2, 1, 0}, {10, 2, 3, 5}, {38, 2, 7, 9}, {48, 3, 1, 40}};
    int k;
    mhc_rng rng;
    TEST_BEGIN("mhc_k_attention_kv_forward against a naive double reference");
    mhc_rng_seed(&rng, 11);
    for (k = 0; k < 4; k++) {
        const int C = cases[k][0], H = cases[k][1], Tq = cases[k][2], p0 = cases[k][3], L = p0 + Tq;
        const int ldq = 3 * C + 1, ldkv = C + 2;   /* strided rows */
        mhc_real *q = (mhc_real *)malloc((size_t)Tq * ldq * sizeof(mhc_real));
        mhc_real *kk = (mhc_real *)malloc((size_t)L * ldkv * sizeof(mhc_real));
        mhc_real *vv = (mhc_real *)malloc((size_t)L * ldkv * sizeof(mhc_real));
        mhc_real *out = (mhc_real *)malloc((size_t)Tq * C * sizeof(mhc_real));
        mhc_real *att = (mhc_real *)malloc((size_t)Tq * H * L * sizeof(mhc_real));
        double *ref = (double *)malloc((size_t)Tq * C * sizeof(double)), mx = 1, err = 0;
        size_t i;
        int r, row_ok = 1;
        mhc_rng_fill_normal(&rng, q, (size_t)Tq * ldq, 0, 2);   /* large scores: a peaked softmax */
        mhc_rng_fill_normal(&rng, kk, (size_t)L * ldkv, 0, 1);
        mhc_rng_fill_normal(&rng, vv, (size_t)L * ldkv, 0, 1);
        mhc_k_attention_kv_forward(out, att, q, ldq, kk, vv, ldkv, Tq, p0, C, H);
        TP(inf_attn_naive)(ref, q, ldq, kk, vv, ldkv, Tq, p0, C, H);
        for (i = 0; i < (size_t)Tq * C; i++) if (fabs(ref[i]) > mx) mx = fabs(ref[i]);
        for (i = 0; i < (size_t)Tq * C; i++) {
            double d = fabs((double)out[i] - ref[i]) / mx;
            if (!(d <= err)) err = d;
        }
        CHECK_MSG(err <= tol, "C=%d H=%d Tq=%d p0=%d: error %.3g > %.3g", C, H, Tq, p0, err, tol);
        /* the probabilities: each row sums to 1 over t2 <= p0 + i and is zero past it */
        for (r = 0; r < Tq * H; r++) {
            double s = 0;
            int t2, last = p0 + r / H;
            for (t2 = 0; t2 < L; t2++) {
                if (t2 > last && att[(size_t)r * L + t2] != 0) row_ok = 0;
                s += (double)att[(size_t)r * L + t2];
            }
            if (fabs(s - 1) > (dbl ? 1e-12 : 1e-5)) row_ok = 0;
        }
        CHECK_MSG(row_ok, "C=%d H=%d Tq=%d p0=%d: att rows do not sum to 1 or are not causal", C, H, Tq, p0);
        free(q); free(kk); free(vv); free(out); free(att); free(ref);
    }

    TEST_BEGIN("mhc_k_attention_kv_forward: the rows of the full-sequence kernel");
    {
        enum { B = 2, T = 9, C = 12, H = 3 };
        mhc_real qkv[B * T * 3 * C], full[B * T * C], fatt[B * H * T * T], out[T * C], att[T * H * T];
        int b, p0, bad = 0;
        double err = 0;
        mhc_rng_fill_normal(&rng, qkv, (size_t)B * T * 3 * C, 0, 1.5);
        mhc_k_attention_forward(full, fatt, qkv, B, T, C, H);
        for (b = 0; b < B; b++)
            for (p0 = 0; p0 < T; p0 += 4) {   /* queries p0 .. T-1 against keys and values 0 .. T-1 */
                const mhc_real *base = qkv + (size_t)b * T * 3 * C;
                int i;
                mhc_k_attention_kv_forward(out, att, base + (size_t)p0 * 3 * C, 3 * C, base + C, base + 2 * C, 3 * C,
                                           T - p0, p0, C, H);
                for (i = 0; i < (T - p0) * C; i++) {
                    double d = fabs((double)out[i] - (double)full[((size_t)b * T + p0) * C + i]);
                    if (!(d <= err)) err = d;
                }
                if (err > (dbl ? 1e-13 : 2e-6)) bad = 1;
            }
        CHECK_MSG(!bad, "cached attention differs from mhc_k_attention_forward by %.3g", err);
    }
}

/* max |a - b| / max(1, max |b|) */
static double TP(inf_err)(const mhc_real *a, const mhc_real *b, size_t n) {
    double mx = 1, err = 0;
    size_t i;
    for (i = 0; i < n; i++) if (fabs((double)b[i]) > mx) mx = fabs((double)b[i]);
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / mx;
        if (!(d <= err)) err = d;
    }
    return err;
}

/* the training forward's logits [B*T, V] of tokens [B, T] (a tape in no-grad mode) */
static int TP(inf_full)(gpt_model *m, const int *tok, int B, int T, mhc_real *out) {
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_tensor *logits = NULL;
    int ok;
    mhc_ctx_init(&ctx);
    if (mhc_arena_init(&ctx, &ar, 1 << 16) != MHC_OK) return 0;
    mhc_tape_init(&ctx, &tp, &ar);
    mhc_tape_set_no_grad(&tp, 1);
    gpt_forward(&tp, m, tok, NULL, B, T, &logits);
    ok = logits != NULL;
    if (ok) memcpy(out, logits->data, (size_t)B * T * m->cfg.vocab * sizeof(mhc_real));
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
    return ok;
}

static void TP(inf_test_gpt)(const char *what, mhc_hc_variant var, mhc_hc_preset preset, int n) {
    enum { B = 2, T = 10, V = 40 };
    const int dbl = sizeof(mhc_real) == 8;
    const double tol = dbl ? 1e-12 : 2e-5;
    gpt_config cfg;
    gpt_model m;
    gpt_cache cache;
    mhc_ctx ctx;
    mhc_rng rng;
    int tok[B * T], gen[T], i, t, scratch[2 * V];
    mhc_real *full = (mhc_real *)malloc((size_t)B * T * V * sizeof(mhc_real));
    mhc_real *inc = (mhc_real *)malloc((size_t)B * T * V * sizeof(mhc_real));
    mhc_real *step = (mhc_real *)malloc((size_t)B * T * V * sizeof(mhc_real));
    double e;
    size_t k;
    test_current = what;
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab = V; cfg.seq = T; cfg.dim = 12; cfg.heads = 3; cfg.layers = 2; cfg.n = n;
    cfg.hc.variant = var; cfg.hc.preset = preset;
    CHECK_OK(gpt_create(&ctx, &m, &cfg));
    mhc_rng_seed(&rng, 21);
    CHECK_OK(gpt_init(&ctx, &m, &rng));
    for (k = 0; k < m.params.size; k++) m.params.data[k] += (mhc_real)(0.15 * mhc_rng_normal(&rng));   /* away from init */
    for (i = 0; i < B * T; i++) tok[i] = (int)mhc_rng_below(&rng, V);
    CHECK(TP(inf_full)(&m, tok, B, T, full));
    CHECK_OK(gpt_cache_init(&ctx, &cache, &m, B));

    /* a prefill of 3 positions, then one token at a time (tokens [B, 1] per call) */
    {
        int pre[B * 3], one[B];
        for (i = 0; i < B; i++) for (t = 0; t < 3; t++) pre[i * 3 + t] = tok[i * T + t];
        CHECK_OK(gpt_infer(&ctx, &m, &cache, pre, 3, step));
        for (i = 0; i < B; i++) memcpy(inc + (size_t)i * T * V, step + (size_t)i * 3 * V, (size_t)3 * V * sizeof(mhc_real));
        for (t = 3; t < T; t++) {
            for (i = 0; i < B; i++) one[i] = tok[i * T + t];
            CHECK_OK(gpt_infer(&ctx, &m, &cache, one, 1, step));
            for (i = 0; i < B; i++) memcpy(inc + ((size_t)i * T + t) * V, step + (size_t)i * V, (size_t)V * sizeof(mhc_real));
        }
        CHECK(cache.len == T);
        e = TP(inf_err)(inc, full, (size_t)B * T * V);
        CHECK_MSG(e <= tol, "%s: prefill 3 + one at a time: logits differ from gpt_forward by %.3g > %.3g", what, e, tol);
    }
    /* the whole sequence as one prefill */
    gpt_cache_reset(&cache);
    CHECK_OK(gpt_infer(&ctx, &m, &cache, tok, T, inc));
    e = TP(inf_err)(inc, full, (size_t)B * T * V);
    CHECK_MSG(e <= tol, "%s: one prefill of T: logits differ from gpt_forward by %.3g > %.3g", what, e, tol);
    /* the cache is full: one more token is refused, nothing changes */
    CHECK_RESULT(gpt_infer(&ctx, &m, &cache, tok, 1, step), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "the cache holds 10 positions");
    CHECK(cache.len == T);
    gpt_cache_free(&cache);

    /* a sequence the cached path generates (sampling at temperature 1): at every position its logits
       are the training forward's on the finished sequence */
    CHECK_OK(gpt_cache_init(&ctx, &cache, &m, 1));
    gen[0] = 3; gen[1] = 17;
    CHECK_OK(gpt_infer(&ctx, &m, &cache, gen, 2, inc));
    for (t = 2; t < T; t++) {
        gen[t] = gpt_sample_logits(inc + (size_t)(t - 1) * V, V, 1.0, 0, &rng, scratch);
        CHECK(gen[t] >= 0 && gen[t] < V);
        if (gen[t] < 0) gen[t] = 0;
        CHECK_OK(gpt_infer(&ctx, &m, &cache, gen + t, 1, inc + (size_t)t * V));
    }
    CHECK(TP(inf_full)(&m, gen, 1, T, full));
    e = TP(inf_err)(inc, full, (size_t)T * V);
    CHECK_MSG(e <= tol, "%s: generated sequence: logits differ from gpt_forward by %.3g > %.3g", what, e, tol);
    if (getenv("MHC_TEST_VERBOSE")) printf("  [%s] %s: inference vs training forward %.2e\n", TEST_PREC, what, e);

    /* bad input */
    gpt_cache_reset(&cache);
    gen[0] = V;
    CHECK_RESULT(gpt_infer(&ctx, &m, &cache, gen, 1, inc), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "is 40, outside [0, 40)");
    gen[0] = -1;
    CHECK_RESULT(gpt_infer(&ctx, &m, &cache, gen, 1, inc), MHC_ERR_VALUE);
    CHECK_RESULT(gpt_infer(&ctx, &m, &cache, gen, 0, inc), MHC_ERR_SIZE);
    CHECK(cache.len == 0);
    gpt_cache_free(&cache);
    CHECK_RESULT(gpt_infer(&ctx, &m, &cache, gen, 1, inc), MHC_ERR_STATE);   /* a freed (zeroed) cache */
    CHECK_RESULT(gpt_cache_init(&ctx, &cache, &m, 0), MHC_ERR_SIZE);
    gpt_destroy(&m);
    free(full); free(inc); free(step);
}

static void TP(inf_test_sample)(void) {
    mhc_real lg[5] = {0, 0, 0, 0, 0};
    int scratch[10], count[5] = {0, 0, 0, 0, 0}, i, a[50], b[50], same = 1;
    mhc_rng r1, r2;
    TEST_BEGIN("gpt_sample_logits");
    lg[1] = 2; lg[3] = 2;
    CHECK(gpt_sample_logits(lg, 5, 0.0, 0, &r1, scratch) == 1);        /* argmax: the lower of equal maxima */
    mhc_rng_seed(&r1, 5);
    for (i = 0; i < 200; i++) if (gpt_sample_logits(lg, 5, 1.0, 1, &r1, scratch) != 1) same = 0;
    CHECK_MSG(same, "top-k 1 must always give the first of the ranked tokens");
    /* frequencies against p_j = exp(l_j / T) / sum at T = 0.7, top-k 3: tokens 1, 3 and then 0 */
    lg[0] = 1; lg[2] = 0.5; lg[4] = -1;
    mhc_rng_seed(&r1, 6);
    for (i = 0; i < 40000; i++) {
        int t = gpt_sample_logits(lg, 5, 0.7, 3, &r1, scratch);
        if (t >= 0 && t < 5) count[t]++;
    }
    {
        double w0 = exp(1 / 0.7), w1 = exp(2 / 0.7), s = w0 + 2 * w1;
        CHECK(count[2] == 0 && count[4] == 0);
        CHECK_NEAR(count[0] / 40000.0, w0 / s, 0.01);
        CHECK_NEAR(count[1] / 40000.0, w1 / s, 0.01);
        CHECK_NEAR(count[3] / 40000.0, w1 / s, 0.01);
    }
    /* the same seed gives the same draws */
    mhc_rng_seed(&r1, 9);
    mhc_rng_seed(&r2, 9);
    for (i = 0; i < 50; i++) { a[i] = gpt_sample_logits(lg, 5, 1.3, 0, &r1, scratch); b[i] = gpt_sample_logits(lg, 5, 1.3, 0, &r2, scratch); }
    CHECK(memcmp(a, b, sizeof a) == 0);
    /* refused: non-finite logits, a negative temperature */
    lg[2] = (mhc_real)NAN;
    CHECK(gpt_sample_logits(lg, 5, 1.0, 0, &r1, scratch) == -1);
    lg[2] = 0;
    CHECK(gpt_sample_logits(lg, 5, -1.0, 0, &r1, scratch) == -1);
}

void TP(test_infer)(void);
void TP(test_infer)(void) {
    TP(inf_test_kernel)();
    TP(inf_test_gpt)("gpt_infer none", MHC_VARIANT_NONE, MHC_PRESET_DSV4, 1);
    TP(inf_test_gpt)("gpt_infer hc", MHC_VARIANT_HC, MHC_PRESET_DSV4, 4);
    TP(inf_test_gpt)("gpt_infer mhc dsv4", MHC_VARIANT_MHC, MHC_PRESET_DSV4, 4);
    TP(inf_test_gpt)("gpt_infer mhc paper n=3", MHC_VARIANT_MHC, MHC_PRESET_PAPER, 3);
    TP(inf_test_gpt)("gpt_infer lite", MHC_VARIANT_LITE, MHC_PRESET_LITE, 4);
    TP(inf_test_sample)();
}
