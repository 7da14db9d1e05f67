/* tests/test_hc_ref.c - the plain references of the layer (mhc_ref_hc_pre_*, mhc_ref_hc_head_*,
 * mhc_ref_hc_post_*) against the fast path (mhc_hc_pre_*, mhc_hc_head_*, mhc_k_hc_post_*), for
 * every variant (none, hc, mhc, lite), preset, projection (softmax, exp, log, perm) and
 * orientation, n in {1, 2, 3, 4, 5, 8}, with and without norm_weight, at tiny sizes and at
 * C = 67, T = 9 (the fast path's 64-channel and 16-lane blocks with their tails, the 8-token
 * Sinkhorn groups with a short last group); the backward of both accumulates onto the same
 * non-zero gradients, with some incoming gradients absent. Tolerance: the largest difference
 * relative to the tensor's largest value, 1e-12 in double. In float the fast path sums its GEMMs
 * and stream mixes in float: 2e-5 for the forward (tests/test_hc.c's float tolerance), 1e-5 for
 * the gradients at C = 67 (test_hc.c's scaled float tolerance) and 1e-4 at the tiny sizes
 * (test_hc.c: 2e-3 per element there). The tiny sizes need it at n = C = 1: mix is then
 * invariant to the scale of x, so the fast path's dx is the difference of two float terms that
 * cancel exactly (seen: 2.9e-5 of the largest; every other case stays below 7e-6).
 * Then the references against tests/test_hc.c's independent naive reference and the finite
 * differences of it (both builds) and of the references' own forward (double): the whole sweep
 * of hct_test_layer_grads with hct_use_ref set, and test_hc.c's error paths of the pre and
 * head functions on the references. test_all.c includes test_hc.c first (hct_*). */

/* The largest |a - b| over the largest |b| (0 when both are all zero; NaN counts as a miss). */
static double hrt_rel(const mhc_real *a, const mhc_real *b, size_t len) {
    double d = 0.0, m = 0.0;
    size_t k;
    for (k = 0; k < len; k++) {
        double e = fabs((double)a[k] - (double)b[k]);
        if (!(e <= d)) d = e;              /* NaN propagates */
        if (fabs((double)b[k]) > m) m = fabs((double)b[k]);
    }
    if (d == 0.0) return 0.0;
    return m > 0.0 ? d / m : HUGE_VAL;
}

static mhc_real *hrt_new(size_t len) { return (mhc_real *)calloc(len ? len : 1, sizeof(mhc_real)); }

static double TP(hrt_worst_fwd), TP(hrt_worst_bwd);
static int TP(hrt_cases);

/* One pre (head = 0) or head (head = 1) configuration: forward and backward of the fast path and
   of the reference on the same inputs (hct_pre_in_make). nulls: 0 all incoming gradients and outputs given,
   1 no d_h_res, 2 no d_layer_input and d_h_post, 3 the forward without h_pre, h_post, h_res. */
static void hrt_pre_case(const mhc_hc_spec *s, int head, int T, int C, int with_nw, int nulls, uint64_t seed,
                         const char *label) {
    int n = s->n, m = head ? n : s->m, D = n * C, fncols = (!head && s->variant == MHC_VARIANT_HC) ? C : D;
    int nbase = (!head && s->variant == MHC_VARIANT_HC) ? 2 * n + n * n : m, nnw = fncols, o;
    int nscale = head ? 1 : 3, rows = (!head && s->variant == MHC_VARIANT_NONE) ? 1 : m;
    size_t nn = (size_t)n * n, nx = (size_t)T * D, nfn = (size_t)rows * fncols;
    mhc_real *out[2][4], *grad[2][5];
    size_t olen[4], glen[5];
    double tolf, tolg, ef = 0.0, eg = 0.0;
    hct_pre_in in;
    const mhc_real *nwp;
    mhc_ctx ctx;
    int run;
    static const char *const oname[4] = {"layer_input", "h_pre", "h_post", "h_res"};
    static const char *const gname[5] = {"d_x", "d_fn", "d_scale", "d_base", "d_norm_weight"};
#ifdef MHC_DOUBLE
    tolf = 1e-12; tolg = 1e-12;
#else
    tolf = 2e-5; tolg = C >= 64 ? 1e-5 : 1e-4;
#endif
    mhc_ctx_init(&ctx);
    TEST_BEGIN(label);
    hct_pre_in_make(&in, T, n, C, (size_t)rows, (size_t)fncols, (size_t)nbase, seed);
    nwp = with_nw ? in.nw : NULL;
    olen[0] = (size_t)T * C; olen[1] = (size_t)T * n; olen[2] = (size_t)T * n; olen[3] = (size_t)T * nn;
    glen[0] = nx; glen[1] = nfn; glen[2] = (size_t)nscale; glen[3] = (size_t)nbase; glen[4] = (size_t)nnw;
    for (run = 0; run < 2; run++) {   /* run 0: the fast path, run 1: the reference */
        const mhc_real *gli = nulls == 2 ? NULL : in.gli, *ghq = nulls == 2 ? NULL : in.ghq, *ghr = nulls == 1 ? NULL : in.ghr;
        mhc_real **y = out[run], **g = grad[run];
        mhc_result rf, rb;
        for (o = 0; o < 4; o++) y[o] = hrt_new(olen[o]);
        for (o = 0; o < 5; o++) {
            size_t k;
            g[o] = hrt_new(glen[o]);
            for (k = 0; k < glen[o]; k++) g[o][k] = (mhc_real)(0.25 + 0.001 * (double)(k % 7));   /* accumulates */
        }
        if (head) {
            rf = (run ? mhc_ref_hc_head_forward : mhc_hc_head_forward)(&ctx, s, y[0], nulls == 3 ? NULL : y[1], in.x, in.fn,
                                                                        in.scale, in.base, nwp, T, C);
            rb = (run ? mhc_ref_hc_head_backward : mhc_hc_head_backward)(&ctx, s, g[0], g[1], g[2], g[3], g[4], gli, in.ghp,
                                                                          in.x, in.fn, in.scale, in.base, nwp, T, C);
        } else {
            rf = (run ? mhc_ref_hc_pre_forward : mhc_hc_pre_forward)(&ctx, s, y[0], nulls == 3 ? NULL : y[1],
                                                                      nulls == 3 ? NULL : y[2], nulls == 3 ? NULL : y[3], in.x,
                                                                      in.fn, in.scale, in.base, nwp, T, C);
            rb = (run ? mhc_ref_hc_pre_backward : mhc_hc_pre_backward)(&ctx, s, g[0], g[1], g[2], g[3], g[4], gli, in.ghp, ghq,
                                                                        ghr, in.x, in.fn, in.scale, in.base, nwp, T, C);
        }
        CHECK_MSG(rf == MHC_OK && rb == MHC_OK, "%s: %s returned %d / %d: %s", label, run ? "reference" : "fast path",
                  (int)rf, (int)rb, mhc_ctx_message(&ctx));
    }
    for (o = 0; o < 4; o++) {
        double e;
        if (head && o >= 2) continue;
        e = hrt_rel(out[0][o], out[1][o], olen[o]);
        CHECK_MSG(e <= tolf, "%s: %s of the fast path differs from the reference by %.3g of its largest (tol %.3g)",
                  label, oname[o], e, tolf);
        if (e > ef) ef = e;
    }
    for (o = 0; o < 5; o++) {
        double e = hrt_rel(grad[0][o], grad[1][o], glen[o]);
        CHECK_MSG(e <= tolg, "%s: %s of the fast path differs from the reference by %.3g of its largest (tol %.3g)",
                  label, gname[o], e, tolg);
        if (e > eg) eg = e;
    }
    if (ef > TP(hrt_worst_fwd)) TP(hrt_worst_fwd) = ef;
    if (eg > TP(hrt_worst_bwd)) TP(hrt_worst_bwd) = eg;
    TP(hrt_cases)++;
    for (run = 0; run < 2; run++) {
        for (o = 0; o < 4; o++) free(out[run][o]);
        for (o = 0; o < 5; o++) free(grad[run][o]);
    }
    hct_pre_in_free(&in);
}

/* post: mhc_k_hc_post_* against mhc_ref_hc_post_* (with and without f_out). */
static void hrt_post_case(int T, int n, int C, int with_f, uint64_t seed, const char *label) {
    size_t nx = (size_t)T * n * C, nA = (size_t)T * n * n, nf = (size_t)T * C;
    mhc_real *x = hrt_new(nx), *A = hrt_new(nA), *hp = hrt_new((size_t)T * n), *f = hrt_new(nf), *go = hrt_new(nx);
    mhc_real *out[2], *dx[2], *dA[2], *dh[2], *df[2];
    double tol, e;
    mhc_rng rng;
    int run;
#ifdef MHC_DOUBLE
    tol = 1e-12;
#else
    tol = 2e-5;
#endif
    mhc_rng_seed(&rng, seed);
    TEST_BEGIN(label);
    mhc_rng_fill_normal(&rng, x, nx, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, A, nA, 0.25, 0.5);
    mhc_rng_fill_normal(&rng, hp, (size_t)T * n, 1.0, 0.5);
    mhc_rng_fill_normal(&rng, f, nf, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, go, nx, 0.0, 1.0);
    for (run = 0; run < 2; run++) {
        size_t k;
        out[run] = hrt_new(nx); dx[run] = hrt_new(nx); dA[run] = hrt_new(nA); dh[run] = hrt_new((size_t)T * n);
        df[run] = hrt_new(nf);
        for (k = 0; k < nx; k++) dx[run][k] = (mhc_real)0.5;       /* the backward accumulates */
        for (k = 0; k < nA; k++) dA[run][k] = (mhc_real)-0.25;
        for (k = 0; k < (size_t)T * n; k++) dh[run][k] = (mhc_real)0.125;
        for (k = 0; k < nf; k++) df[run][k] = (mhc_real)1.0;
        (run ? mhc_ref_hc_post_forward : mhc_k_hc_post_forward)(out[run], x, A, hp, with_f ? f : NULL, T, n, C);
        (run ? mhc_ref_hc_post_backward : mhc_k_hc_post_backward)(dx[run], dA[run], dh[run], df[run], go, x, A, hp,
                                                                   with_f ? f : NULL, T, n, C);
    }
    e = hrt_rel(out[0], out[1], nx);
    CHECK_MSG(e <= tol, "%s: out differs from the reference by %.3g (tol %.3g)", label, e, tol);
    if (e > TP(hrt_worst_fwd)) TP(hrt_worst_fwd) = e;
    e = fmax(fmax(hrt_rel(dx[0], dx[1], nx), hrt_rel(dA[0], dA[1], nA)),
             fmax(hrt_rel(dh[0], dh[1], (size_t)T * n), hrt_rel(df[0], df[1], nf)));
    CHECK_MSG(e <= tol, "%s: the gradients differ from the reference by %.3g (tol %.3g)", label, e, tol);
    if (e > TP(hrt_worst_bwd)) TP(hrt_worst_bwd) = e;
    if (!with_f) CHECK(memcmp(dh[0], dh[1], (size_t)T * n * sizeof(mhc_real)) == 0 && dh[1][0] == (mhc_real)0.125);
    TP(hrt_cases)++;
    for (run = 0; run < 2; run++) { free(out[run]); free(dx[run]); free(dA[run]); free(dh[run]); free(df[run]); }
    free(x); free(A); free(hp); free(f); free(go);
}

static void hrt_sweep(void) {
    static const int ns[6] = {1, 2, 3, 4, 5, 8};
    static const int sz[3][2] = {{1, 1}, {3, 2}, {9, 67}};   /* (T, C): one token, tiny, the vector blocks */
    static const mhc_hc_preset presets[3] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER};
    static const mhc_projection projs[3] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG};
    static const mhc_orient ors[2] = {MHC_ORIENT_H, MHC_ORIENT_COMB_T};
    char label[160];
    int ni, zi, pi, ji, oi, nwi, cnt = 0;
    for (ni = 0; ni < 6; ni++)
        for (zi = 0; zi < 3; zi++)
            for (nwi = 0; nwi < 2; nwi++) {
                int n = ns[ni], T = sz[zi][0], C = sz[zi][1];
                mhc_hc_spec s;
                /* mhc: every preset with every Sinkhorn projection and both orientations */
                for (pi = 0; pi < 3; pi++)
                    for (ji = 0; ji < 3; ji++)
                        for (oi = 0; oi < 2; oi++) {
                            s = hct_spec(presets[pi], MHC_VARIANT_MHC, projs[ji], n);
                            s.orient = ors[oi];
                            snprintf(label, sizeof label, "ref vs fast: pre %s+%s orient %s n=%d T=%d C=%d nw=%d",
                                     mhc_hc_preset_name(presets[pi]), mhc_projection_name(projs[ji]),
                                     mhc_orient_name(ors[oi]), n, T, C, nwi);
                            cnt++;
                            hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(7000 + cnt), label);
                        }
                /* one iteration, and no eps */
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_MHC, MHC_PROJ_PRESET, n);
                s.iters = 1; s.sinkhorn_eps = 0.0;
                snprintf(label, sizeof label, "ref vs fast: pre dsv4 iters=1 eps=0 n=%d T=%d C=%d nw=%d", n, T, C, nwi);
                cnt++;
                hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(7000 + cnt), label);
                /* lite (n! logits: n = 8 at the tiny sizes only), in both orientations (ignored) */
                if (n < 8 || C <= 2)
                    for (oi = 0; oi < 2; oi++) {
                        s = hct_spec(MHC_PRESET_LITE, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                        s.orient = ors[oi];
                        snprintf(label, sizeof label, "ref vs fast: pre lite orient %s n=%d T=%d C=%d nw=%d",
                                 mhc_orient_name(ors[oi]), n, T, C, nwi);
                        cnt++;
                        hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(7000 + cnt), label);
                    }
                /* hc */
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "ref vs fast: pre hc n=%d T=%d C=%d nw=%d", n, T, C, nwi);
                cnt++;
                hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(7000 + cnt), label);
                /* none (n = 1 only; a norm weight is ignored) */
                if (n == 1) {
                    s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
                    snprintf(label, sizeof label, "ref vs fast: pre none T=%d C=%d nw=%d", T, C, nwi);
                    cnt++;
                    hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(7000 + cnt), label);
                }
                /* the head, with the knobs of each preset */
                for (pi = 0; pi < 4; pi++) {
                    mhc_hc_preset p = pi < 3 ? presets[pi] : MHC_PRESET_LITE;
                    if (p == MHC_PRESET_LITE && n > 5) continue;
                    s = hct_spec(p, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                    snprintf(label, sizeof label, "ref vs fast: head %s n=%d T=%d C=%d nw=%d", mhc_hc_preset_name(p), n, T,
                             C, nwi);
                    cnt++;
                    hrt_pre_case(&s, 1, T, C, nwi, cnt % 4 == 3 ? 3 : cnt % 3, (uint64_t)(7000 + cnt), label);
                }
                /* post */
                snprintf(label, sizeof label, "ref vs fast: post n=%d T=%d C=%d f=%d", n, T, C, nwi);
                cnt++;
                hrt_post_case(T, n, C, nwi, (uint64_t)(7000 + cnt), label);
            }
}

void TP(test_hc_ref)(void); void TP(test_hc_ref)(void) {
    TP(hrt_worst_fwd) = TP(hrt_worst_bwd) = 0.0;
    TP(hrt_cases) = 0;
    hrt_sweep();
    printf("  [%s] hc ref: %d cases, worst fast-path difference from the plain reference (of the tensor's largest): "
           "forward %.3g, backward %.3g\n", TEST_PREC, TP(hrt_cases), TP(hrt_worst_fwd), TP(hrt_worst_bwd));
    /* the references against test_hc.c's independent naive reference and finite differences,
       and their error paths (the fast functions' checks, with the references' names) */
    TP(hct_worst_fwd) = TP(hct_worst_grad_ref) = TP(hct_worst_grad_lib) = 0;
    TP(hct_use_ref) = 1;
    hct_test_layer_grads();
    hct_test_pre_errors();
    TP(hct_use_ref) = 0;
    printf("  [%s] hc ref: the references vs the naive reference: worst forward diff %.3g, worst grad rel err vs "
           "FD(naive) %.3g, vs FD(reference) %.3g\n", TEST_PREC, TP(hct_worst_fwd), TP(hct_worst_grad_ref),
           TP(hct_worst_grad_lib));
}
