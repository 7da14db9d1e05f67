/* tests/test_edge.c - numerical edge cases of the hyper-connection layer, each test named after
 * its case (the behaviour is documented in mhc.h, HYPER-CONNECTIONS, "Numerical range"):
 *   - n = 1, T = 1, C = 1 (each alone and all together) through every op of the layer;
 *   - a token whose x is all zero, with the presets' norm_eps (1e-6, 1e-20) and with 0;
 *   - huge logits in the Sinkhorn: the exp start overflows / underflows (NaN, confined to the
 *     token, no error); the log domain, the softmax start and the permutation mixture do not;
 *   - NaN or Inf in any input of `mhc verify` (every op): refused, naming the tensor and element.
 * Uses the naive references and helpers of tests/test_hc.c, the tape chain of
 * tests/test_hc_tape.c and the case writer of tests/test_verify.c (all included before this file). */

static int edge_is_nan(double v) { return v != v; }
static int edge_finite(double v) { return v == v && v <= DBL_MAX && v >= -DBL_MAX; }

/* n, T, C = 1: every preset and variant, the head, with and without a norm weight. */
static void edge_test_ones(void) {
    static const mhc_hc_preset presets[4] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER, MHC_PRESET_LITE};
    static const int dims[5][3] = {{1, 1, 1}, {1, 1, 4}, {1, 3, 1}, {3, 1, 1}, {4, 1, 1}};   /* n, T, C */
    char label[160];
    int d, p, q;
    for (d = 0; d < 5; d++) {
        int n = dims[d][0], T = dims[d][1], C = dims[d][2];
        for (p = 0; p < 4; p++)
            for (q = 0; q < 2; q++) {
                mhc_hc_spec s = hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "edge n=%d T=%d C=%d: layer %s%s vs reference and finite differences", n,
                         T, C, mhc_hc_preset_name(presets[p]), q ? " with norm weight" : "");
                hct_check_case(&s, T, C, 0, q, (uint64_t)(7000 + 100 * d + 10 * p + q), label);
                if (presets[p] == MHC_PRESET_LITE) continue;
                snprintf(label, sizeof label, "edge n=%d T=%d C=%d: head %s%s vs reference and finite differences", n,
                         T, C, mhc_hc_preset_name(presets[p]), q ? " with norm weight" : "");
                hct_check_case(&s, T, C, 1, q, (uint64_t)(8000 + 100 * d + 10 * p + q), label);
            }
        {
            mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, n);
            snprintf(label, sizeof label, "edge n=%d T=%d C=%d: layer hc vs reference and finite differences", n, T, C);
            hct_check_case(&s, T, C, 0, 1, (uint64_t)(9000 + d), label);
            s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_LOG, n);
            snprintf(label, sizeof label, "edge n=%d T=%d C=%d: layer paper+log vs reference and finite differences", n, T, C);
            hct_check_case(&s, T, C, 0, 0, (uint64_t)(9100 + d), label);
            s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_SOFTMAX, n);
            snprintf(label, sizeof label, "edge n=%d T=%d C=%d: layer paper+softmax vs reference and finite differences", n, T, C);
            hct_check_case(&s, T, C, 0, 1, (uint64_t)(9200 + d), label);
            if (n == 1) {
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
                snprintf(label, sizeof label, "edge n=1 T=%d C=%d: layer none vs reference", T, C);
                hct_check_case(&s, T, C, 0, 0, (uint64_t)(9300 + d), label);
            }
        }
    }

    TEST_BEGIN("edge n=1: every projection of a 1x1 matrix vs the reference (1, or s/(s+eps) marginals)");
    {
        static const mhc_projection projs[4] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG, MHC_PROJ_PERM};
        static const double zs[4] = {0.0, -3.5, 12.0, 700.0};
        mhc_ctx ctx;
        int k, z;
        mhc_ctx_init(&ctx);
        for (k = 0; k < 4; k++)
            for (z = 0; z < 4; z++) {
                double eps = k == 1 || k == 2 ? 0.0 : 1e-6, ref, zd = zs[z];
                mhc_real zl = (mhc_real)zd, out = -1, dl = 0, dout = 1;
                CHECK_OK(mhc_sinkhorn_forward(&ctx, projs[k], 1, 20, eps, &out, &zl, 1));
                hct_proj(projs[k], 1, 20, eps, &zd, &ref);
                CHECK_MSG(fabs((double)out - ref) <= 1e-6 && edge_finite((double)out), "%s z=%g: %.17g vs %.17g",
                          mhc_projection_name(projs[k]), zd, (double)out, ref);
                CHECK_OK(mhc_sinkhorn_backward(&ctx, projs[k], 1, 20, eps, &dl, &dout, &zl, 1));
                CHECK_MSG(edge_finite((double)dl) && fabs((double)dl) <= 1e-6, "%s z=%g: d_logit %.3g (A is constant)",
                          mhc_projection_name(projs[k]), zd, (double)dl);
            }
    }

    TEST_BEGIN("edge n=1 T=1 C=1: expand and post kernels");
    {
        mhc_real e = (mhc_real)0.75, x = 0, out = 0, A = (mhc_real)0.5, hp = (mhc_real)2.0, f = (mhc_real)-3.0;
        mhc_real dx = 0, dA = 0, dhp = 0, df = 0, de = 0, dout = (mhc_real)1.5;
        mhc_k_hc_expand_forward(&x, &e, 1, 1, 1);
        CHECK(x == e);
        mhc_k_hc_post_forward(&out, &x, &A, &hp, &f, 1, 1, 1);
        CHECK_NEAR(out, 0.5 * 0.75 + 2.0 * -3.0, 1e-6);
        mhc_k_hc_post_backward(&dx, &dA, &dhp, &df, &dout, &x, &A, &hp, &f, 1, 1, 1);
        CHECK_NEAR(dx, 1.5 * 0.5, 1e-6);
        CHECK_NEAR(dA, 1.5 * 0.75, 1e-6);
        CHECK_NEAR(dhp, 1.5 * -3.0, 1e-6);
        CHECK_NEAR(df, 1.5 * 2.0, 1e-6);
        mhc_k_hc_expand_backward(&de, &dx, 1, 1, 1);
        CHECK_NEAR(de, 0.75, 1e-6);
    }
}

/* The tape chain of tests/test_hc_tape.c (expand -> 2 x (pre, F, post) -> head) with n, T, C = 1:
   mhc_gradcheck in double, a finite backward in float. */
static void edge_test_tape_ones(void) {
    static const mhc_hc_preset presets[4] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER, MHC_PRESET_LITE};
    static const int dims[3][3] = {{1, 1, 1}, {3, 1, 1}, {1, 1, 5}};   /* n, T, C */
    int d, p, count = 0;
    TEST_BEGIN("edge n=1 T=1 C=1: the tape chain expand -> pre -> F -> post -> head (gradcheck in double)");
    for (d = 0; d < 3; d++)
        for (p = 0; p < 7; p++) {
            mhc_ctx ctx;
            mhc_arena ar;
            mhc_tape tp;
            mhc_rng rng;
            hctt_inputs I;
            hctt_user u;
            int n = dims[d][0], T = dims[d][1], C = dims[d][2], k;
            mhc_real rbuf[8], rh[8];
            if (p < 4) u.s = hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
            else if (p == 4) u.s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_LOG, n);
            else if (p == 5) u.s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, n);
            else {
                if (n != 1) continue;
                u.s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
            }
            mhc_ctx_init(&ctx);
            mhc_arena_init(&ctx, &ar, 1 << 14);
            mhc_tape_init(&ctx, &tp, &ar);
            mhc_rng_seed(&rng, (uint64_t)(500 + 10 * d + p));
            hctt_make(&I, &u.s, T, C, &rng);
            u.n = n; u.C = C; u.T = T;
            mhc_rng_fill_normal(&rng, rbuf, (size_t)T * C, 0, 0.3);
            mhc_rng_fill_normal(&rng, rh, (size_t)T * n, 0, 0.3);
            u.r_out = rbuf; u.r_hpre = rh;
#ifdef MHC_DOUBLE
            {
                mhc_gradcheck_result gr;
                CHECK_OK(mhc_gradcheck(&tp, hctt_chain, I.p, 12, &u, HCTT_H, 1e-3, (uint64_t)(77 + p), &gr));
                CHECK_MSG(gr.max_rel_err <= 1e-6 && gr.dir_rel_err <= 1e-6,
                          "%s/%s n=%d T=%d C=%d: gradcheck rel err %.3g (input %d, index %d), direction %.3g",
                          mhc_hc_variant_name(u.s.variant), mhc_hc_preset_name(u.s.preset), n, T, C, gr.max_rel_err,
                          gr.worst_input, gr.worst_index, gr.dir_rel_err);
            }
#else
            {
                mhc_tensor *loss = hctt_chain(&tp, I.p, 12, &u);
                int bad = 0;
                size_t i;
                CHECK(loss != NULL);
                CHECK_OK(mhc_tape_backward(&tp, loss));
                for (k = 0; k < 12; k++)
                    for (i = 0; i < I.t[k].size; i++) bad += !edge_finite((double)I.t[k].grad[i]);
                CHECK(bad == 0);
                mhc_tape_reset(&tp);
            }
#endif
            (void)k;
            count++;
            hctt_free(&I);
            mhc_tape_free(&tp);
            mhc_arena_free(&ar);
        }
    CHECK(count == 3 * 6 + 2);
}

/* One zero token (t = 1 of T = 3) in a layer or head case: the forward against the naive
   reference; every gradient against finite differences of the reference, with a step for the
   zero token's x small against sqrt(norm_eps), the scale on which the RMS factor bends. */
static void edge_zero_token(const mhc_hc_spec *s, int head, const char *label) {
    hct_case k;
    hct_lib l;
    mhc_ctx ctx;
    int n = s->n, C = 3, T = 3, D = n * C, t0 = 1, e;
    double L, worst = 0, worst_other = 0, gmax = 0, tolf, tolg;
    double *li = hct_alloc((size_t)T * C), *hpre = hct_alloc((size_t)T * n), *hpost = hct_alloc((size_t)T * n);
    double *A = hct_alloc((size_t)T * n * n), *out = hct_alloc((size_t)T * D);
#ifdef MHC_DOUBLE
    tolf = 1e-12; tolg = 1e-6;
#else
    tolf = 2e-5; tolg = 2e-3;
#endif
    mhc_ctx_init(&ctx);
    TEST_BEGIN(label);
    hct_case_make(&k, s, T, C, head, 1, 4242);
    for (e = 0; e < D; e++) k.x[t0 * D + e] = 0.0;
    hct_lib_make(&l, &k);
    hct_ref_loss(&k, li, hpre, hpost, A, out);
    CHECK_OK(hct_lib_forward(&ctx, &k, &l, &L));
    {
        double err = hct_maxdiff(l.li, li, (size_t)T * C);
        err = fmax(err, hct_maxdiff(l.hpre, hpre, (size_t)T * n));
        if (!head) {
            err = fmax(err, hct_maxdiff(l.hpost, hpost, (size_t)T * n));
            err = fmax(err, hct_maxdiff(l.A, A, (size_t)T * n * n));
            err = fmax(err, hct_maxdiff(l.out, out, (size_t)T * D));
        }
        CHECK_MSG(err <= tolf, "%s: forward differs from the reference by %.3g", label, err);
    }
    /* the zero token's gates are the bias values: mix = 0 */
    for (e = 0; e < n; e++) {
        double want = hct_sig(k.base[e]) + s->pre_eps;
        CHECK_NEAR(l.hpre[t0 * n + e], want, 1e-6);
    }
    CHECK_OK(hct_lib_backward(&ctx, &k, &l));
    /* x: the zero token with a tiny plain central difference, the others as hct_fd_ref does */
    for (e = 0; e < T * D; e++) {
        double v0 = k.x[e], fd, r;
        int zero = e / D == t0;
        double h = zero ? 1e-4 * sqrt(s->norm_eps) : 1e-4;
        if (zero) {
            double a, b;
            k.x[e] = v0 + h; a = hct_ref_loss(&k, 0, 0, 0, 0, 0);
            k.x[e] = v0 - h; b = hct_ref_loss(&k, 0, 0, 0, 0, 0);
            fd = (a - b) / (2 * h);
        } else {
            double d1, d2;
            k.x[e] = v0 + h; d1 = hct_ref_loss(&k, 0, 0, 0, 0, 0);
            k.x[e] = v0 - h; d1 -= hct_ref_loss(&k, 0, 0, 0, 0, 0);
            k.x[e] = v0 + h / 2; d2 = hct_ref_loss(&k, 0, 0, 0, 0, 0);
            k.x[e] = v0 - h / 2; d2 -= hct_ref_loss(&k, 0, 0, 0, 0, 0);
            fd = (4.0 * (d2 / h) - d1 / (2 * h)) / 3.0;
        }
        k.x[e] = v0;
        r = hct_rel((double)l.dx[e], fd, 1e-3);
        CHECK_MSG(edge_finite((double)l.dx[e]), "%s: d_x[%d] = %g", label, e, (double)l.dx[e]);
        if (zero) { if (r > worst) worst = r; if (fabs(fd) > gmax) gmax = fabs(fd); }
        else if (r > worst_other) worst_other = r;
    }
    CHECK_MSG(worst <= tolg, "%s: zero token's d_x vs finite differences: rel err %.3g", label, worst);
    CHECK_MSG(worst_other <= tolg, "%s: other tokens' d_x vs finite differences: rel err %.3g", label, worst_other);
    /* the gradient is w * rsqrt(norm_eps)-sized: 1e10-ish for norm_eps 1e-20 */
    CHECK_MSG(gmax >= 0.01 / sqrt(s->norm_eps), "%s: the zero token's gradient is only %.3g", label, gmax);
    {
        double g[5];
        int q;
        g[0] = hct_fd_ref(&k, k.fn, k.nfn, l.dfn);
        g[1] = hct_fd_ref(&k, k.scale, k.nscale, l.dscale);
        g[2] = hct_fd_ref(&k, k.base, k.nbase, l.dbase);
        g[3] = hct_fd_ref(&k, k.nw, k.nnw, l.dnw);
        g[4] = k.use_f ? hct_fd_ref(&k, k.f, T * C, l.df) : 0.0;
        for (q = 0; q < 5; q++)
            CHECK_MSG(g[q] <= tolg, "%s: parameter gradient %d vs finite differences: rel err %.3g", label, q, g[q]);
    }
    hct_lib_free(&l);
    hct_case_free(&k);
    free(li); free(hpre); free(hpost); free(A); free(out);
}

static void edge_test_zero_token(void) {
    mhc_hc_spec s;
    mhc_hc_config cfg;
    mhc_ctx ctx;
    s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
    edge_zero_token(&s, 0, "edge zero-norm token, dsv4 (norm_eps 1e-6): layer vs reference and finite differences");
    s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
    edge_zero_token(&s, 0, "edge zero-norm token, paper (norm_eps 1e-20): layer vs reference and finite differences");
    edge_zero_token(&s, 1, "edge zero-norm token, paper (norm_eps 1e-20): head vs reference and finite differences");
    s = hct_spec(MHC_PRESET_LITE, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3);
    edge_zero_token(&s, 0, "edge zero-norm token, lite (norm_eps 1e-20): layer vs reference and finite differences");

    TEST_BEGIN("edge zero-norm token with norm_eps = 0: NaN in that token only, no error");
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_PAPER;
    cfg.norm_eps = MHC_ZERO;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.norm_eps == 0.0);
    {
        hct_case k;
        hct_lib l;
        double L;
        int n = 4, C = 3, D = 12, e, nan_t1 = 0, bad_other = 0;
        hct_case_make(&k, &s, 3, C, 0, 0, 99);
        for (e = 0; e < D; e++) k.x[D + e] = 0.0;
        hct_lib_make(&l, &k);
        CHECK_OK(hct_lib_forward(&ctx, &k, &l, &L));
        for (e = 0; e < n; e++) {
            nan_t1 += edge_is_nan((double)l.hpre[n + e]) + edge_is_nan((double)l.hpost[n + e]);
            bad_other += !edge_finite((double)l.hpre[e]) + !edge_finite((double)l.hpre[2 * n + e]);
        }
        for (e = 0; e < n * n; e++) {
            nan_t1 += edge_is_nan((double)l.A[n * n + e]);
            bad_other += !edge_finite((double)l.A[e]) + !edge_finite((double)l.A[2 * n * n + e]);
        }
        for (e = 0; e < C; e++) bad_other += !edge_finite((double)l.li[e]) + !edge_finite((double)l.li[2 * C + e]);
        CHECK(nan_t1 == 2 * n + n * n);   /* every gate and every entry of A of the zero token */
        CHECK(bad_other == 0);
        hct_lib_free(&l);
        hct_case_free(&k);
    }
}

/* Huge logits: what each projection does (documented in mhc.h). */
static void edge_test_huge_logits(void) {
    mhc_ctx ctx;
    int n = 4, T = 3, k, nan0 = 0, nan1 = 0, bad = 0;
    mhc_real z[3 * 16], out[3 * 16], dz[3 * 16], w[3 * 16];
    double ref[16], zd[16];
    mhc_ctx_init(&ctx);
    for (k = 0; k < T * 16; k++) { z[k] = (mhc_real)(0.3 * (k % 7) - 1.0); w[k] = (mhc_real)(0.1 * (k % 5) - 0.2); }

    TEST_BEGIN("edge huge logits: exp start overflows above log(DBL_MAX) (NaN for that token only, no error)");
    z[16 + 5] = (mhc_real)710.0;             /* token 1: one logit past the overflow of exp */
    z[2 * 16 + 5] = (mhc_real)709.0;         /* token 2: just below it: still finite */
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 20, 0.0, out, z, T));
    for (k = 0; k < 16; k++) {
        nan1 += edge_is_nan((double)out[16 + k]);
        bad += !edge_finite((double)out[k]) + !edge_finite((double)out[32 + k]);
    }
    CHECK(nan1 == 16);   /* the whole matrix: Inf/Inf spreads through the column and row steps */
    CHECK(bad == 0);
    for (k = 0; k < 16; k++) zd[k] = (double)z[k];
    hct_proj(MHC_PROJ_EXP, n, 20, 0.0, zd, ref);   /* token 0 unaffected: as the reference */
    CHECK_LE(hct_maxdiff(out, ref, 16), 1e-6);

    TEST_BEGIN("edge huge logits: exp start with eps = 0 and a row below -745 underflows to 0/0 = NaN; eps > 0 keeps it finite");
    for (k = 0; k < 16; k++) z[k] = (mhc_real)(k / 4 == 2 ? -800.0 : 0.1 * k);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 20, 0.0, out, z, 1));
    for (k = 0; k < 16; k++) nan0 += edge_is_nan((double)out[k]);
    CHECK(nan0 == 16);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 20, 1e-6, out, z, 1));
    bad = 0;
    for (k = 0; k < 16; k++) bad += !edge_finite((double)out[k]) + (k / 4 == 2 && out[k] != 0);
    CHECK(bad == 0);     /* the underflowed row stays a zero row */

    TEST_BEGIN("edge huge logits: the log domain is exact (a row shift changes nothing) with finite gradients");
    /* Sinkhorn is invariant to adding a constant to a row of logits (eps = 0): the -800 row and
       a +800 row give the same matrix as the unshifted logits */
    {
        mhc_real zs[16], a[16], b[16];
        double worst = 0;
        for (k = 0; k < 16; k++) zs[k] = (mhc_real)(0.1 * k);
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, 0.0, b, zs, 1));
        for (k = 0; k < 16; k++) zs[k] = (mhc_real)(0.1 * k + (k / 4 == 2 ? -800.0 : k / 4 == 0 ? 800.0 : 0.0));
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, 0.0, a, zs, 1));
        for (k = 0; k < 16; k++) worst = fmax(worst, fabs((double)a[k] - (double)b[k]));
#ifdef MHC_DOUBLE
        CHECK_LE(worst, 1e-12);
#else
        CHECK_LE(worst, 1e-4);   /* float logits near 800 keep ~6e-5 of their fraction */
#endif
        memset(dz, 0, sizeof dz);
        CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_LOG, n, 20, 0.0, dz, w, zs, 1));
        bad = 0;
        for (k = 0; k < 16; k++) bad += !edge_finite((double)dz[k]);
        CHECK(bad == 0);
    }

    TEST_BEGIN("edge huge logits: softmax start and permutation mixture stay finite for logits of +-1e30");
    {
        mhc_real zb[24], o[16], g[24];
        int j;
        double big = sizeof(mhc_real) == 4 ? 3e38 : 1e300;
        for (k = 0; k < 24; k++) zb[k] = (mhc_real)(k % 3 == 0 ? big : k % 3 == 1 ? -big : 1e30);
        for (j = 0; j < 2; j++) {
            mhc_projection pj = j ? MHC_PROJ_PERM : MHC_PROJ_SOFTMAX;
            double re, ce;
            CHECK_OK(mhc_sinkhorn_forward(&ctx, pj, n, 20, 1e-6, o, zb, 1));
            bad = 0;
            for (k = 0; k < 16; k++) bad += !edge_finite((double)o[k]) || o[k] < 0;
            CHECK_MSG(bad == 0, "%s: %d entries not finite and >= 0", mhc_projection_name(pj), bad);
            CHECK_OK(mhc_hc_ds_distance(&ctx, o, 1, n, &re, &ce));
            CHECK_LE(j ? fmax(re, ce) : ce, 1e-5);   /* perm: doubly stochastic; softmax: columns exact */
            memset(g, 0, sizeof g);
            CHECK_OK(mhc_sinkhorn_backward(&ctx, pj, n, 20, 1e-6, g, w, zb, 1));
            bad = 0;
            for (k = 0; k < (j ? 24 : 16); k++) bad += !edge_finite((double)g[k]);
            CHECK(bad == 0);
        }
    }

    TEST_BEGIN("edge huge logits: through the layer, a huge res bias gives NaN h_res with exp start, finite with log");
    {
        mhc_hc_spec s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
        hct_case kc;
        hct_lib l;
        double L, re, ce;
        int nanA = 0;
        hct_case_make(&kc, &s, 2, 3, 0, 0, 5);
        kc.base[2 * 4 + 6] = 2000.0;   /* a res logit far past 709.78 in every token */
        hct_lib_make(&l, &kc);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
        for (k = 0; k < 2 * 16; k++) nanA += edge_is_nan((double)l.A[k]);
        CHECK(nanA == 2 * 16);
        hct_lib_free(&l);
        kc.s.projection = MHC_PROJ_LOG;
        hct_lib_make(&l, &kc);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
        CHECK_OK(mhc_hc_ds_distance(&ctx, l.A, 2, 4, &re, &ce));
        CHECK_LE(re, 1e-6);   /* rows exact (orientation h) */
        CHECK(edge_finite(L));
        CHECK(l.A[6] > 0.9 && l.A[16 + 6] > 0.9);   /* the huge logit's entry dominates its row and column */
        hct_lib_free(&l);
        hct_case_free(&kc);
    }
}

#ifdef MHC_DOUBLE
/* NaN, +Inf or -Inf in any input of any op is refused by `mhc verify` (exit code 2), the message
   naming the file, the element and the value. (The verifier runs both precisions; its tests live
   in the f64 instance, with tests/test_verify.c's case writer.) */
static void edge_test_verify_nonfinite(void) {
    static const char *const kinds[3] = {"NaN", "+Inf", "-Inf"};
    const double vals[3] = {HUGE_VAL - HUGE_VAL, HUGE_VAL, -HUGE_VAL};
    const char *D = TV_ROOT "/edge_nf", *O = TV_ROOT "/edge_nf_out";
    char err[1024], want[160];
    hct_case k;
    int head, q, count = 0;
    TEST_BEGIN("edge NaN/Inf in every verifier input: refused, naming the tensor and the element");
    for (head = 0; head < 2; head++) {
        mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3);
        const char *good = head ? "op = head\npreset = dsv4\nn = 3\ndtype = float32\n"
                                : "op = layer\npreset = dsv4\nn = 3\ndtype = float64\n";
        struct { const char *name; double *a; int count; } in[8];
        int nin, i;
        hct_case_make(&k, &s, 2, 4, head, 1, (uint64_t)(31 + head));
        in[0].name = "x"; in[0].a = k.x; in[0].count = 2 * 3 * 4;
        in[1].name = "fn"; in[1].a = k.fn; in[1].count = k.nfn;
        in[2].name = "scale"; in[2].a = k.scale; in[2].count = k.nscale;
        in[3].name = "base"; in[3].a = k.base; in[3].count = k.nbase;
        in[4].name = "norm_weight"; in[4].a = k.nw; in[4].count = k.nnw;
        if (head) {
            in[5].name = "d_out"; in[5].a = k.wli; in[5].count = 2 * 4;
            nin = 6;
        } else {
            in[5].name = "f_out"; in[5].a = k.f; in[5].count = 2 * 4;
            in[6].name = "d_layer_input"; in[6].a = k.wli; in[6].count = 2 * 4;
            in[7].name = "d_out"; in[7].a = k.wout; in[7].count = 2 * 3 * 4;
            nin = 8;
        }
        tv_write_case(D, &k, good, head ? "<f4" : "<f8", 1);
        CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 0, "the clean case fails: %s", err);
        for (i = 0; i < nin; i++)
            for (q = 0; q < 3; q++) {
                int e = (i + q) % in[i].count;
                double keep = in[i].a[e];
                in[i].a[e] = vals[q];
                tv_write_case(D, &k, good, head ? "<f4" : "<f8", 1);
                in[i].a[e] = keep;
                err[0] = 0;
                CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 2, "%s %s: not refused", in[i].name, kinds[q]);
                snprintf(want, sizeof want, "edge_nf/%s.npy: element ", in[i].name);
                CHECK_STR_HAS(err, want);
                snprintf(want, sizeof want, "(flat index %d) is %s; inputs must be finite", e, kinds[q]);
                CHECK_STR_HAS(err, want);
                count++;
            }
        hct_case_free(&k);
    }
    {   /* sinkhorn: logits and d_out */
        int sh[3] = {2, 9, 0}, i;
        double logits[18], dout[18];
        tool_mkdir_p(D);
        for (i = 0; i < 18; i++) { logits[i] = 0.1 * i; dout[i] = 0.05 * i - 0.3; }
        for (q = 0; q < 6; q++) {
            double *a = q < 3 ? logits : dout, keep;
            const char *name = q < 3 ? "logits" : "d_out";
            int e = 4 + q;
            tv_write_text(TV_ROOT "/edge_nf/case.txt", "op = sinkhorn\npreset = paper\nn = 3\ndtype = float64\n");
            keep = a[e];
            a[e] = vals[q % 3];
            sh[0] = 2; sh[1] = 3; sh[2] = 3;
            tv_write_npy(TV_ROOT "/edge_nf/logits.npy", "<f8", 3, sh, logits, 0);
            tv_write_npy(TV_ROOT "/edge_nf/d_out.npy", "<f8", 3, sh, dout, 0);
            a[e] = keep;
            CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
            snprintf(want, sizeof want, "edge_nf/%s.npy: element ", name);
            CHECK_STR_HAS(err, want);
            snprintf(want, sizeof want, "(flat index %d) is %s", e, kinds[q % 3]);
            CHECK_STR_HAS(err, want);
            count++;
        }
    }
    CHECK(count == 3 * (6 + 8) + 6);
}
#endif

void TP(test_edge)(void); void TP(test_edge)(void) {
    edge_test_ones();
    edge_test_tape_ones();
    edge_test_zero_token();
    edge_test_huge_logits();
#ifdef MHC_DOUBLE
    CHECK(tool_mkdir_p(TV_ROOT) == 0);
    edge_test_verify_nonfinite();
#endif
}
