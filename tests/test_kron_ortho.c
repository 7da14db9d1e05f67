/* tests/test_kron_ortho.c - the two exactly doubly stochastic parameterizations of MHC_SPEC.md
 * Sec. 8: the Kronecker mixture (KromHC, projection kron, preset/variant kromhc) and the
 * orthostochastic projection (projection ortho, preset/variant ortho). Against the naive double
 * references of tests/test_hc.c (hct_kron: numpy-style pairwise Kronecker products of
 * permutation mixtures enumerated by counting; hct_ortho: the Newton-Schulz iteration written
 * with plain matrix products), which share no code with mhc.h:
 *   - config resolution: presets, the peer's default factors, overrides, every refusal naming
 *     the key (kron_factors, ns_iters);
 *   - the standalone functions (mhc_kron_*, mhc_sinkhorn_* with ortho): forward vs the naive
 *     reference, backward vs its central differences (double: relative error <= 1e-6), the
 *     backward accumulates; KromHC's row and column sums are 1 to rounding, ortho's at
 *     ns_iters = 100 within 1e-12 (and not at the default 5);
 *   - the layer (fast path and plain references) vs the naive reference and finite differences
 *     (hct_check_case), the fast path vs the references (hrt_pre_case), thread-count
 *     independence, hand-built specs, the parameter initialisation.
 * test_all.c includes test_hc.c and test_hc_ref.c first. */

/* the factor lists of the standalone checks (0-terminated) */
static const int hko_lists[][5] = {{1}, {2}, {3}, {4}, {5}, {2, 2}, {2, 3}, {3, 2}, {2, 2, 2}, {2, 4}, {4, 2},
                                   {1, 2}, {2, 1, 3}, {2, 2, 2, 2}};
#define HKO_NLISTS ((int)(sizeof hko_lists / sizeof hko_lists[0]))

static int hko_count(const int *f) { int k = 0; while (k < 5 && f[k]) k++; return k; }

static int hko_logits(const int *f, int K) {
    int k, R = 0;
    for (k = 0; k < K; k++) R += (int)mhc_perm_count(f[k]);
    return R;
}

static mhc_hc_spec hko_spec(mhc_hc_preset preset, int n, const int *factors, int ns_iters) {
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mhc_ctx ctx;
    int k;
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = preset;
    for (k = 0; factors && k < 5 && factors[k]; k++) cfg.kron_factors[k] = factors[k];
    cfg.ns_iters = ns_iters;
    if (mhc_hc_resolve(&ctx, &cfg, n, &s) != MHC_OK) {
        fprintf(stderr, "hko_spec: %s\n", mhc_ctx_message(&ctx));
        memset(&s, 0, sizeof s);
    }
    return s;
}

static void hko_test_resolve(void) {
    mhc_ctx ctx;
    mhc_hc_config cfg;
    mhc_hc_spec s;
    static const struct { int n, K, f[4]; } defaults[] = {{1, 1, {1}}, {2, 1, {2}}, {3, 1, {3}}, {4, 2, {2, 2}},
                                                          {5, 1, {5}}, {6, 2, {2, 3}}, {8, 3, {2, 2, 2}},
                                                          {12, 3, {2, 2, 3}}, {16, 4, {2, 2, 2, 2}}};
    int i, k;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("kron/ortho config: presets");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_KROMHC;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_KROMHC && s.projection == MHC_PROJ_KRON && s.kron_count == 2);
    CHECK(s.kron_factors[0] == 2 && s.kron_factors[1] == 2 && s.kron_factors[2] == 0 && s.nres == 4 && s.m == 12);
    CHECK(s.norm_eps == 1e-20 && s.pre_eps == 0.0 && s.post_mult == 2.0 && mhc_hc_fn_rows(&s, 0) == 12);
    cfg.preset = MHC_PRESET_ORTHO;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_ORTHO && s.projection == MHC_PROJ_ORTHO && s.ns_iters == 5);
    CHECK(s.orient == MHC_ORIENT_COMB_T && s.nres == 16 && s.m == 24 && s.kron_count == 0);
    CHECK(s.norm_eps == 1e-20 && s.pre_eps == 0.0 && s.post_mult == 2.0);
    TEST_BEGIN("kron config: the peer's default factors (2s, then the rest)");
    for (i = 0; i < (int)(sizeof defaults / sizeof defaults[0]); i++) {
        memset(&cfg, 0, sizeof cfg);
        cfg.preset = MHC_PRESET_KROMHC;
        CHECK_OK(mhc_hc_resolve(&ctx, &cfg, defaults[i].n, &s));
        CHECK_MSG(s.kron_count == defaults[i].K, "n = %d: %d factors, expected %d", defaults[i].n, s.kron_count,
                  defaults[i].K);
        for (k = 0; k < defaults[i].K; k++) CHECK(s.kron_factors[k] == defaults[i].f[k]);
        CHECK(s.nres == hko_logits(defaults[i].f, defaults[i].K) && s.m == 2 * defaults[i].n + s.nres);
    }
    TEST_BEGIN("kron/ortho config: overrides");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_KROMHC;
    cfg.kron_factors[0] = 2; cfg.kron_factors[1] = 4;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 8, &s));
    CHECK(s.kron_count == 2 && s.kron_factors[0] == 2 && s.kron_factors[1] == 4 && s.nres == 2 + 24 && s.m == 16 + 26);
    cfg.variant = MHC_VARIANT_MHC;                   /* mhc forced on the kromhc preset: exp start */
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 8, &s));
    CHECK(s.variant == MHC_VARIANT_MHC && s.projection == MHC_PROJ_EXP && s.nres == 64 && s.kron_count == 0);
    cfg.preset = MHC_PRESET_ORTHO;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.variant == MHC_VARIANT_MHC && s.projection == MHC_PROJ_EXP);
    memset(&cfg, 0, sizeof cfg);                     /* dsv4 + projection kron / ortho = kromhc / ortho */
    cfg.projection = MHC_PROJ_KRON;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 6, &s));
    CHECK(s.variant == MHC_VARIANT_KROMHC && s.kron_count == 2 && s.kron_factors[1] == 3 && s.nres == 8);
    CHECK(s.norm_eps == 1e-6 && s.pre_eps == 1e-6);   /* the dsv4 knobs */
    cfg.projection = MHC_PROJ_ORTHO; cfg.ns_iters = 20;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_ORTHO && s.ns_iters == 20 && s.orient == MHC_ORIENT_COMB_T && s.nres == 16);
    cfg.orient = MHC_ORIENT_H;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.orient == MHC_ORIENT_H);
    memset(&cfg, 0, sizeof cfg);                     /* the variant picks its projection */
    cfg.variant = MHC_VARIANT_KROMHC;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_KRON && s.preset == MHC_PRESET_DSV4 && s.nres == 4);
    cfg.variant = MHC_VARIANT_ORTHO;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_ORTHO && s.ns_iters == 5);
    memset(&cfg, 0, sizeof cfg);                     /* factors are ignored by other projections */
    cfg.kron_factors[0] = 3;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_SOFTMAX && s.kron_count == 0 && s.nres == 16);
    TEST_BEGIN("kron/ortho config: bad values are refused, naming the key");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_KROMHC;
    cfg.kron_factors[0] = 2; cfg.kron_factors[1] = 3;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors = 2,3 has the product 6, not n = 4");
    cfg.kron_factors[1] = 0; cfg.kron_factors[2] = 2;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors[2] = 2 follows a 0");
    cfg.kron_factors[0] = -2; cfg.kron_factors[2] = 0;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors[0] = -2 is negative");
    cfg.kron_factors[0] = 9;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 9, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors[0] = 9 is out of range (each factor 1..8");
    cfg.kron_factors[0] = 8; cfg.kron_factors[1] = 8;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 64, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors = 8,8 take 80640 residual logits per token, at most 65536");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_KROMHC;                  /* the default for 9 would be the one factor 9 */
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 9, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors: the default factors of n = 9");
    cfg.kron_factors[0] = 3; cfg.kron_factors[1] = 3;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 9, &s));
    CHECK(s.nres == 12 && s.m == 30);
    memset(&cfg, 0, sizeof cfg);
    cfg.variant = MHC_VARIANT_KROMHC; cfg.projection = MHC_PROJ_SOFTMAX;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant kromhc needs projection kron, not softmax");
    cfg.variant = MHC_VARIANT_ORTHO; cfg.projection = MHC_PROJ_PERM;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant ortho needs projection ortho, not perm");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_ORTHO; cfg.ns_iters = -1;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ns_iters = -1, expected 1..1000");
    cfg.ns_iters = MHC_NS_MAX_ITERS + 1;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ns_iters = 1001");
    cfg.ns_iters = MHC_NS_MAX_ITERS;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.ns_iters == MHC_NS_MAX_ITERS);
    TEST_BEGIN("kron/ortho config: names");
    {
        mhc_hc_preset pr = MHC_PRESET_DSV4;
        mhc_hc_variant va = MHC_VARIANT_PRESET;
        mhc_projection pj = MHC_PROJ_PRESET;
        CHECK_OK(mhc_hc_preset_parse(&ctx, "kromhc", &pr)); CHECK(pr == MHC_PRESET_KROMHC);
        CHECK_OK(mhc_hc_preset_parse(&ctx, "ortho", &pr)); CHECK(pr == MHC_PRESET_ORTHO);
        CHECK_OK(mhc_hc_variant_parse(&ctx, "kromhc", &va)); CHECK(va == MHC_VARIANT_KROMHC);
        CHECK_OK(mhc_hc_variant_parse(&ctx, "ortho", &va)); CHECK(va == MHC_VARIANT_ORTHO);
        CHECK_OK(mhc_projection_parse(&ctx, "kron", &pj)); CHECK(pj == MHC_PROJ_KRON);
        CHECK_OK(mhc_projection_parse(&ctx, "ortho", &pj)); CHECK(pj == MHC_PROJ_ORTHO);
        CHECK_RESULT(mhc_projection_parse(&ctx, "kromhc", &pj), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected softmax, exp, log, perm, kron or ortho");
    }
}

/* Central difference (Richardson-extrapolated) of sum(w * ref(z)) with respect to z[k]. */
static double hko_fd(const mhc_hc_spec *s, double *z, int k, const double *w) {
    static const double off[4] = {1.0, -1.0, 0.5, -0.5};
    double z0 = z[k], h = 1e-4, d[4], ref[64 * 64];
    int q, a, nn = s->n * s->n;
    for (q = 0; q < 4; q++) {
        z[k] = z0 + off[q] * h;
        hct_proj_spec(s, z, ref);
        d[q] = 0;
        for (a = 0; a < nn; a++) d[q] += w[a] * ref[a];
    }
    z[k] = z0;
    return (4.0 * (d[2] - d[3]) / h - (d[0] - d[1]) / (2 * h)) / 3.0;
}

/* One standalone configuration: forward vs the naive reference, backward vs its finite
   differences, accumulation; returns the worst errors in *wf, *wg. scale: the logits' spread. */
static void hko_standalone(const mhc_hc_spec *s, int T, double scale, uint64_t seed, const char *label, double *wf,
                           double *wg) {
    mhc_ctx ctx;
    mhc_rng rng;
    int n = s->n, nres = s->nres, nn = n * n, t, k;
    double *z = hct_alloc((size_t)T * nres), *w = hct_alloc((size_t)T * nn), ref[64 * 64], tolf, tolg, e;
    mhc_real *zr, *wr, *out = hct_real(NULL, (size_t)T * nn), *dz = hct_real(NULL, (size_t)T * nres), *dz2;
    mhc_result rf, rb;
#ifdef MHC_DOUBLE
    tolf = 1e-13; tolg = 1e-6;
#else
    tolf = 1e-6; tolg = 2e-3;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, seed);
    for (k = 0; k < T * nres; k++) z[k] = scale * mhc_rng_normal(&rng);
    for (k = 0; k < T * nn; k++) w[k] = mhc_rng_normal(&rng);
    zr = hct_real(z, (size_t)T * nres);
    for (k = 0; k < T * nres; k++) z[k] = (double)zr[k];   /* the reference sees the float logits */
    wr = hct_real(w, (size_t)T * nn);
    for (k = 0; k < T * nn; k++) w[k] = (double)wr[k];
    if (s->projection == MHC_PROJ_KRON) {
        rf = mhc_kron_forward(&ctx, s->kron_count, s->kron_factors, out, zr, T);
        rb = mhc_kron_backward(&ctx, s->kron_count, s->kron_factors, dz, wr, zr, T);
    } else {
        rf = mhc_sinkhorn_forward(&ctx, s->projection, n, s->ns_iters, 0.0, out, zr, T);
        rb = mhc_sinkhorn_backward(&ctx, s->projection, n, s->ns_iters, 0.0, dz, wr, zr, T);
    }
    CHECK_MSG(rf == MHC_OK && rb == MHC_OK, "%s: %s", label, mhc_ctx_message(&ctx));
    for (t = 0; t < T; t++) {
        hct_proj_spec(s, z + (size_t)t * nres, ref);
        e = hct_maxdiff(out + (size_t)t * nn, ref, (size_t)nn);
        if (e > *wf) *wf = e;
        CHECK_MSG(e <= tolf, "%s: token %d: forward differs from the naive reference by %.3g (tol %.3g)", label, t, e, tolf);
        for (k = 0; k < nres; k++) {
            double fd = hko_fd(s, z + (size_t)t * nres, k, w + (size_t)t * nn);
            double r = hct_rel((double)dz[(size_t)t * nres + k], fd, 1e-3);
            if (r > *wg) *wg = r;
            CHECK_MSG(r <= tolg, "%s: d_logits[%d,%d] = %.10g, finite differences %.10g (rel err %.3g)", label, t, k,
                      (double)dz[(size_t)t * nres + k], fd, r);
        }
    }
    dz2 = hct_real(NULL, (size_t)T * nres);                /* the backward accumulates */
    for (k = 0; k < T * nres; k++) dz2[k] = dz[k];
    if (s->projection == MHC_PROJ_KRON) rb = mhc_kron_backward(&ctx, s->kron_count, s->kron_factors, dz2, wr, zr, T);
    else rb = mhc_sinkhorn_backward(&ctx, s->projection, n, s->ns_iters, 0.0, dz2, wr, zr, T);
    CHECK_OK(rb);
    e = 0;
    for (k = 0; k < T * nres; k++) e = fmax(e, fabs((double)dz2[k] - 2.0 * (double)dz[k]) / fmax(1.0, fabs((double)dz[k])));
    CHECK_LE(e, 1e-5);
    free(z); free(w); free(zr); free(wr); free(out); free(dz); free(dz2);
}

static void hko_test_standalone(void) {
    static const int Ks[4] = {1, 2, 5, 20};
    char label[128];
    double wf = 0, wg = 0;
    int l, n, ki;
    TEST_BEGIN("kron: forward vs naive, backward vs finite differences");
    for (l = 0; l < HKO_NLISTS; l++) {
        int K = hko_count(hko_lists[l]), k;
        mhc_hc_spec s;
        memset(&s, 0, sizeof s);
        s.projection = MHC_PROJ_KRON; s.n = 1; s.kron_count = K;
        for (k = 0; k < K; k++) { s.kron_factors[k] = hko_lists[l][k]; s.n *= hko_lists[l][k]; }
        s.nres = hko_logits(hko_lists[l], K);
        snprintf(label, sizeof label, "kron factors %d,%d,%d,%d (n = %d)", hko_lists[l][0], hko_lists[l][1],
                 hko_lists[l][2], hko_lists[l][3], s.n);
        hko_standalone(&s, 3, 1.5, (uint64_t)(40 + l), label, &wf, &wg);
    }
    printf("  [%s] kron: worst forward diff %.3g, worst d_logits rel err vs FD(naive) %.3g\n", TEST_PREC, wf, wg);
    wf = wg = 0;
    TEST_BEGIN("ortho: forward vs naive, backward vs finite differences");
    for (n = 1; n <= 5; n++)
        for (ki = 0; ki < 4; ki++) {
            mhc_hc_spec s;
            memset(&s, 0, sizeof s);
            s.projection = MHC_PROJ_ORTHO; s.n = n; s.nres = n * n; s.ns_iters = Ks[ki];
            snprintf(label, sizeof label, "ortho n = %d ns_iters = %d", n, Ks[ki]);
            hko_standalone(&s, 3, 1.0, (uint64_t)(80 + 10 * n + ki), label, &wf, &wg);
        }
    printf("  [%s] ortho: worst forward diff %.3g, worst d_logits rel err vs FD(naive) %.3g\n", TEST_PREC, wf, wg);
}

/* KromHC is doubly stochastic to rounding; ortho only as the iteration converges. */
static void hko_test_sums(void) {
    mhc_ctx ctx;
    mhc_rng rng;
    int l, k, n;
    double re, ce, tol;
#ifdef MHC_DOUBLE
    tol = 1e-14;
#else
    tol = 1e-6;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 5);
    TEST_BEGIN("kron: rows and columns sum to 1 to rounding, entries >= 0");
    for (l = 0; l < HKO_NLISTS; l++) {
        int K = hko_count(hko_lists[l]), R = hko_logits(hko_lists[l], K), T = 16, N = 1, bad = 0;
        mhc_real *z, *o;
        for (k = 0; k < K; k++) N *= hko_lists[l][k];
        z = hct_real(NULL, (size_t)T * R);
        o = hct_real(NULL, (size_t)T * N * N);
        for (k = 0; k < T * R; k++) z[k] = (mhc_real)(k < T * R / 2 ? 3.0 * mhc_rng_normal(&rng) : 60.0 * (mhc_rng_uniform(&rng) - 0.5));
        CHECK_OK(mhc_kron_forward(&ctx, K, hko_lists[l], o, z, T));
        CHECK_OK(mhc_hc_ds_distance(&ctx, o, (size_t)T, N, &re, &ce));
        CHECK_MSG(re <= tol && ce <= tol, "kron list %d (n = %d): max |rowsum - 1| %.3g, max |colsum - 1| %.3g", l, N, re, ce);
        for (k = 0; k < T * N * N; k++) bad += !(o[k] >= 0);
        CHECK(bad == 0);
        free(z); free(o);
    }
    TEST_BEGIN("ortho: doubly stochastic at convergence (ns_iters = 100), not at the default 5");
    for (n = 2; n <= 6; n++) {
        int T = 50, N = n * n, bad = 0;
        mhc_real *z = hct_real(NULL, (size_t)T * N), *o = hct_real(NULL, (size_t)T * N);
        double d5;
        /* random logits with a dominant diagonal: well conditioned (no tiny singular values, which
           take more iterations to grow to 1) */
        for (k = 0; k < T * N; k++) z[k] = (mhc_real)(mhc_rng_normal(&rng) + ((k % N) % (n + 1) == 0 ? 2.0 * n : 0.0));
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, n, 100, 0.0, o, z, T));
        CHECK_OK(mhc_hc_ds_distance(&ctx, o, (size_t)T, n, &re, &ce));
#ifdef MHC_DOUBLE
        CHECK_MSG(re <= 1e-12 && ce <= 1e-12, "ortho n = %d, 100 iterations: max |rowsum - 1| %.3g, |colsum - 1| %.3g", n,
                  re, ce);
#else
        CHECK_MSG(re <= 2e-6 && ce <= 2e-6, "ortho n = %d, 100 iterations: max |rowsum - 1| %.3g, |colsum - 1| %.3g", n,
                  re, ce);
#endif
        for (k = 0; k < T * N; k++) bad += !(o[k] >= 0);
        CHECK(bad == 0);
        /* the same logits without the diagonal: after 5 iterations far from doubly stochastic */
        for (k = 0; k < T * N; k++) z[k] = (mhc_real)mhc_rng_normal(&rng);
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, n, 5, 0.0, o, z, T));
        CHECK_OK(mhc_hc_ds_distance(&ctx, o, (size_t)T, n, &re, &ce));
        d5 = fmax(re, ce);
        CHECK_MSG(d5 > 1e-2, "ortho n = %d, 5 iterations: distance %.3g (expected the truncation to show)", n, d5);
        printf("  [%s] ortho n = %d: distance from doubly stochastic after 5 iterations %.3g (50 N(0,1) tokens)\n",
               TEST_PREC, n, d5);
        free(z); free(o);
    }
    {   /* Z = 0 is singular: H = 0 whatever the iterations */
        mhc_real z[4] = {0, 0, 0, 0}, o[4];
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, 2, 100, 0.0, o, z, 1));
        CHECK(o[0] == 0 && o[1] == 0 && o[2] == 0 && o[3] == 0);
    }
}

/* In float, the orthostochastic layer checks give the residual logits a dominant diagonal
   (hct_res_diag = 4n): Newton-Schulz amplifies a perturbation of a small singular value of Z about
   3x per iteration, so on generic logits the rounding of the float inputs alone (~6e-8) moves
   the gradients by up to ~7% (seen: 0.07 against the double finite differences, and 3.6e-5
   between the float fast path and the float reference). The double build checks generic logits. */
#ifdef MHC_DOUBLE
#define HKO_ORTHO_DIAG(n) ((void)(n))
#else
#define HKO_ORTHO_DIAG(n) (TP(hct_res_diag) = 4.0 * (n))
#endif

/* The layer: fast path and plain references against the naive reference and its finite
   differences (hct_check_case). */
static void hko_test_layer(void) {
    static const int f23[3] = {2, 3, 0}, f32[3] = {3, 2, 0};
    char label[128];
    int n, ref, ki;
    for (ref = 0; ref < 2; ref++) {
        TP(hct_use_ref) = ref;
        for (n = 1; n <= 4; n++) {
            mhc_hc_spec s = hko_spec(MHC_PRESET_KROMHC, n, NULL, 0);
            snprintf(label, sizeof label, "layer kromhc n=%d", n);
            hct_check_case(&s, 3, n == 1 ? 4 : 3, 0, n % 2, (uint64_t)(8100 + n), label);
            HKO_ORTHO_DIAG(n);
            for (ki = 0; ki < 2; ki++) {
                s = hko_spec(MHC_PRESET_ORTHO, n, NULL, ki ? 5 : 1);
                if (ki) s.orient = n % 2 ? MHC_ORIENT_H : MHC_ORIENT_COMB_T;
                snprintf(label, sizeof label, "layer ortho n=%d ns_iters=%d orient %s", n, s.ns_iters,
                         mhc_orient_name(s.orient));
                hct_check_case(&s, 3, n == 1 ? 4 : 3, 0, (n + ki) % 2, (uint64_t)(8200 + 10 * n + ki), label);
            }
            TP(hct_res_diag) = 0.0;
        }
        {
            mhc_hc_spec s = hko_spec(MHC_PRESET_KROMHC, 6, f23, 0);
            hct_check_case(&s, 2, 2, 0, 1, 8301, "layer kromhc n=6 (2,3)");
            s = hko_spec(MHC_PRESET_KROMHC, 6, f32, 0);
            s.orient = MHC_ORIENT_COMB_T;            /* ignored: built directly */
            hct_check_case(&s, 2, 2, 0, 0, 8302, "layer kromhc n=6 (3,2) orient comb_t");
            TP(hct_scaled) = 1;
            s = hko_spec(MHC_PRESET_KROMHC, 4, NULL, 0);
            hct_check_case(&s, 2, 67, 0, 1, 8304, "layer kromhc n=4 C=67");
            HKO_ORTHO_DIAG(4);
            s = hko_spec(MHC_PRESET_ORTHO, 3, NULL, 0);
            hct_check_case(&s, 2, 67, 0, 0, 8305, "layer ortho n=3 C=67");
            TP(hct_scaled) = 0;
            s = hko_spec(MHC_PRESET_DSV4, 4, NULL, 20);
            s.variant = MHC_VARIANT_ORTHO; s.projection = MHC_PROJ_ORTHO;   /* the dsv4 knobs with ortho */
            hct_check_case(&s, 3, 3, 0, 1, 8303, "layer dsv4 knobs + ortho ns_iters=20");
            TP(hct_res_diag) = 0.0;
        }
    }
    TP(hct_use_ref) = 0;
}

static void hko_test_ref_vs_fast(void) {
    static const int ns[7] = {1, 2, 3, 4, 5, 6, 8};
    static const int sz[3][2] = {{1, 1}, {3, 2}, {9, 67}};
    static const int f24[3] = {2, 4, 0}, f42[3] = {4, 2, 0};
    char label[160];
    int ni, zi, nwi, cnt = 0;

    for (ni = 0; ni < 7; ni++)
        for (zi = 0; zi < 3; zi++)
            for (nwi = 0; nwi < 2; nwi++) {
                int n = ns[ni], T = sz[zi][0], C = sz[zi][1], oi;
                mhc_hc_spec s;
                if (n != 5 || C <= 2) {   /* n = 5 is the one factor 5 (120 logits): the tiny sizes only */
                    s = hko_spec(MHC_PRESET_KROMHC, n, NULL, 0);
                    snprintf(label, sizeof label, "ref vs fast: pre kromhc n=%d T=%d C=%d nw=%d", n, T, C, nwi);
                    cnt++;
                    hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(9000 + cnt), label);
                }
                if (n == 8) {
                    s = hko_spec(MHC_PRESET_KROMHC, 8, nwi ? f24 : f42, 0);
                    snprintf(label, sizeof label, "ref vs fast: pre kromhc n=8 (%s) T=%d C=%d", nwi ? "2,4" : "4,2", T, C);
                    cnt++;
                    hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(9000 + cnt), label);
                }
                HKO_ORTHO_DIAG(n);
                for (oi = 0; oi < 2; oi++) {
                    s = hko_spec(MHC_PRESET_ORTHO, n, NULL, oi ? 5 : 2);
                    s.orient = oi ? MHC_ORIENT_COMB_T : MHC_ORIENT_H;
                    snprintf(label, sizeof label, "ref vs fast: pre ortho ns_iters=%d orient %s n=%d T=%d C=%d nw=%d",
                             s.ns_iters, mhc_orient_name(s.orient), n, T, C, nwi);
                    cnt++;
                    hrt_pre_case(&s, 0, T, C, nwi, cnt % 4, (uint64_t)(9000 + cnt), label);
                }
                TP(hct_res_diag) = 0.0;
            }
}

#ifdef _OPENMP
/* The same bits for 1 and 2 threads. */
static void hko_test_threads(void) {
    int p, nt0 = omp_get_max_threads();
    TEST_BEGIN("kron/ortho: bitwise identical for 1 and 2 threads");
    for (p = 0; p < 2; p++) {
        mhc_hc_spec s = hko_spec(p ? MHC_PRESET_ORTHO : MHC_PRESET_KROMHC, 4, NULL, 0);
        hct_case kc;
        hct_lib l1, l2;
        double L1, L2;
        mhc_ctx ctx;
        size_t T = 200, C = 40, D = 4 * C;
        mhc_ctx_init(&ctx);
        hct_case_make(&kc, &s, (int)T, (int)C, 0, 1, 56 + p);
        hct_lib_make(&l1, &kc);
        hct_lib_make(&l2, &kc);
        omp_set_num_threads(1);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l1, &L1));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l1));
        omp_set_num_threads(2);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l2, &L2));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l2));
        CHECK(memcmp(l1.A, l2.A, T * 16 * sizeof(mhc_real)) == 0);
        CHECK(memcmp(l1.out, l2.out, T * D * sizeof(mhc_real)) == 0);
        CHECK(memcmp(l1.dx, l2.dx, T * D * sizeof(mhc_real)) == 0);
        CHECK(memcmp(l1.dfn, l2.dfn, (size_t)kc.nfn * sizeof(mhc_real)) == 0);
        CHECK(memcmp(l1.dbase, l2.dbase, (size_t)kc.nbase * sizeof(mhc_real)) == 0);
        hct_lib_free(&l1); hct_lib_free(&l2);
        hct_case_free(&kc);
    }
    omp_set_num_threads(nt0);
}
#endif

static void hko_test_errors(void) {
    mhc_ctx ctx;
    mhc_real x[64] = {0}, o[64];
    int f[MHC_KRON_MAX_FACTORS + 1] = {2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1};
    mhc_hc_spec s, bad;
    mhc_real li[8], fn[8 * 24] = {0}, sc[3] = {1, 1, 1}, b[24] = {0};
    mhc_ctx_init(&ctx);
    TEST_BEGIN("kron/ortho: standalone errors");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_KRON, 4, 1, 0.0, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "projection kron needs its factor list: use mhc_kron_forward");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, 2, 0, 0.0, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "iters = 0 (ns_iters, the Newton-Schulz iterations of ortho), expected 1..1000");
    CHECK_RESULT(mhc_sinkhorn_backward(&ctx, MHC_PROJ_ORTHO, 2, 1001, 0.0, o, x, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "iters = 1001");
    CHECK_RESULT(mhc_kron_forward(&ctx, 2, f, NULL, x, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_kron_forward: an array argument is NULL");
    CHECK_RESULT(mhc_kron_forward(&ctx, 2, NULL, o, x, 2), MHC_ERR_NULL);
    CHECK_RESULT(mhc_kron_forward(&ctx, 2, f, o, x, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "T = 0 tokens");
    CHECK_RESULT(mhc_kron_forward(&ctx, 0, f, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_kron_forward: kron_factors has 0 factors, expected 1..10");
    CHECK_RESULT(mhc_kron_forward(&ctx, MHC_KRON_MAX_FACTORS + 1, f, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors has 11 factors, expected 1..10");
    f[1] = 0;
    CHECK_RESULT(mhc_kron_forward(&ctx, 2, f, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors[1] = 0 is out of range");
    f[0] = f[1] = f[2] = f[3] = 8;
    CHECK_RESULT(mhc_kron_forward(&ctx, 4, f, o, x, 2), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors = 8,8,8,8 has the product 4096: more than 1024 streams");
    CHECK_RESULT(mhc_kron_forward(&ctx, 2, f, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors = 8,8 take 80640 residual logits per token, at most 65536");
    f[0] = f[1] = 2; f[2] = f[3] = 1;
    CHECK_RESULT(mhc_kron_backward(&ctx, 2, f, o, NULL, x, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_kron_backward: d_out is NULL");
    TEST_BEGIN("kron/ortho: hand-built spec errors");
    s = hko_spec(MHC_PRESET_KROMHC, 4, NULL, 0);
    bad = s; bad.kron_count = 0;
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.kron_count = 0");
    bad = s; bad.kron_factors[1] = 3;
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors = 2,3 has the product 6, not n = 4");
    bad = s; bad.nres = 16; bad.m = 24;
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.nres = 16 / spec.m = 24 do not match n = 4");
    bad = s; bad.projection = MHC_PROJ_PERM;
    CHECK_RESULT(mhc_ref_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant kromhc does not go with projection perm");
    s = hko_spec(MHC_PRESET_ORTHO, 2, NULL, 0);
    bad = s; bad.ns_iters = 0;
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.ns_iters = 0, expected 1..1000");
    bad = s; bad.variant = MHC_VARIANT_MHC;
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant mhc does not go with projection ortho");
    bad = s; bad.iters = 0;                          /* sinkhorn_iters is not ortho's */
    CHECK_OK(mhc_hc_pre_forward(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 1));
}

/* The initial residual logits of each peer: kromhc -8 and 0 for every factor's identity (A ~ I),
   ortho 0 on the diagonal and -8 elsewhere. */
static void hko_test_init(void) {
    static const int f23[3] = {2, 3, 0};
    mhc_ctx ctx;
    mhc_params st;
    mhc_rng rng;
    int ids[2][4], p, k;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 3);
    TEST_BEGIN("kron/ortho: parameter initialisation");
    for (p = 0; p < 2; p++) {
        mhc_hc_spec s = p ? hko_spec(MHC_PRESET_ORTHO, 4, NULL, 0) : hko_spec(MHC_PRESET_KROMHC, 6, f23, 0);
        mhc_hc_params w;
        int fs[2], ns, nb, nw;
        mhc_params_init(&ctx, &st);
        CHECK_OK(mhc_hc_params_declare(&st, &s, 5, 0, 1, "l", ids[p]));
        CHECK_OK(mhc_hc_param_shapes(&ctx, &s, 5, 0, fs, &ns, &nb, &nw));
        CHECK(fs[0] == s.m && fs[1] == s.n * 5 && nb == s.m && ns == 3);
        CHECK_OK(mhc_params_alloc(&st));
        CHECK_OK(mhc_hc_params_get(&st, ids[p], &w));
        CHECK_OK(mhc_hc_params_init(&ctx, &s, 0, 0, &w, &rng, 0.02));
        for (k = 0; k < 2 * s.n; k++) CHECK(w.base->data[k] == 0);
        if (!p) {   /* factors 2 (logits 0, 1) and 3 (logits 2..7): the identities at 0 and 2 */
            for (k = 0; k < s.nres; k++) CHECK(w.base->data[2 * s.n + k] == (k == 0 || k == 2 ? 0 : -8));
        } else {
            for (k = 0; k < 16; k++) CHECK(w.base->data[8 + k] == (k % 5 == 0 ? 0 : -8));
        }
        {   /* the resulting A at zero mixing logits: kromhc ~ I (within 2e-3: 1 - 1/(1 + 5 e^-8) for a
               factor 3), ortho ~ J/4 (within 0.003) */
            mhc_real *z = w.base->data + 2 * s.n, A[36];
            double e = 0;
            int i, j;
            if (!p) CHECK_OK(mhc_kron_forward(&ctx, s.kron_count, s.kron_factors, A, z, 1));
            else CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, 4, 5, 0.0, A, z, 1));
            for (i = 0; i < s.n; i++)
                for (j = 0; j < s.n; j++) e = fmax(e, fabs((double)A[i * s.n + j] - (p ? 0.25 : (i == j ? 1.0 : 0.0))));
            CHECK_LE(e, p ? 3e-3 : 2e-3);
        }
        mhc_params_free(&st);
    }
}

void TP(test_kron_ortho)(void); void TP(test_kron_ortho)(void) {
    TP(hct_worst_fwd) = TP(hct_worst_grad_ref) = TP(hct_worst_grad_lib) = 0;
    TP(hrt_worst_fwd) = TP(hrt_worst_bwd) = 0;
    TP(hrt_cases) = 0;
    hko_test_resolve();
    hko_test_standalone();
    hko_test_sums();
    hko_test_layer();
    hko_test_ref_vs_fast();
#ifdef _OPENMP
    hko_test_threads();
#endif
    hko_test_errors();
    hko_test_init();
    printf("  [%s] kron/ortho layer: worst forward diff %.3g, worst grad rel err vs FD(naive) %.3g, vs FD(library) %.3g; "
           "%d fast-vs-reference cases, worst %.3g forward, %.3g backward\n", TEST_PREC, TP(hct_worst_fwd),
           TP(hct_worst_grad_ref), TP(hct_worst_grad_lib), TP(hrt_cases), TP(hrt_worst_fwd), TP(hrt_worst_bwd));
}
