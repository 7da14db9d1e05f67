/* tests/test_hc_tape.c - the hyper-connection tape ops: the whole chain (expand, two layers of
 * pre -> F -> post, head) under mhc_gradcheck for every preset, projection and variant (kromhc and
 * ortho included); tape vs
 * raw-array results; no-grad mode; no arena growth after the first step; error paths.
 * Uses the naive references and helpers of tests/test_hc.c (included before this file). */

#ifndef HCTT_H
#define HCTT_H 1e-5
#endif

typedef struct hctt_user {
    mhc_hc_spec s;
    int n, C, T;
    mhc_real *r_out, *r_hpre;         /* random loss weights */
} hctt_user;

/* inputs: 0 e [T,C]; layer 1: 1 fn, 2 scale, 3 base, 4 norm_weight; layer 2: 5 fn, 6 scale, 7 base;
   head: 8 fn, 9 scale, 10 base, 11 norm_weight. (variant none: the layer inputs are unused.) */
static mhc_tensor *hctt_chain(mhc_tape *tp, mhc_tensor **in, int nin, void *user) {
    hctt_user *u = (hctt_user *)user;
    mhc_hc_params w1, w2, wh;
    mhc_hc_pre_out p1, p2;
    mhc_tensor *x, *f, *y, *l1, *l2;
    (void)nin;
    w1.fn = in[1]; w1.scale = in[2]; w1.base = in[3]; w1.norm_weight = in[4];
    w2.fn = in[5]; w2.scale = in[6]; w2.base = in[7]; w2.norm_weight = NULL;
    wh.fn = in[8]; wh.scale = in[9]; wh.base = in[10]; wh.norm_weight = in[11];
    x = mhc_hc_expand(tp, in[0], u->n);
    mhc_hc_pre(tp, &u->s, x, &w1, &p1);
    f = mhc_tanh(tp, p1.layer_input);
    x = mhc_hc_post(tp, x, p1.h_res, p1.h_post, f);
    mhc_hc_pre(tp, &u->s, x, &w2, &p2);
    f = mhc_gelu(tp, p2.layer_input);
    x = mhc_hc_post(tp, x, p2.h_res, p2.h_post, f);
    y = mhc_hc_head(tp, &u->s, x, &wh);
    l1 = mhc_dot_const(tp, y, u->r_out);
    l2 = mhc_dot_const(tp, p1.h_pre, u->r_hpre);
    return mhc_add(tp, l1, l2);
}

typedef struct hctt_inputs {
    mhc_tensor t[12];
    mhc_tensor *p[12];
    mhc_real *mem[24];
} hctt_inputs;

static void hctt_make(hctt_inputs *I, const mhc_hc_spec *s, int T, int C, mhc_rng *rng) {
    int fs[2] = {1, 1}, ns = 1, nb = 1, nw = 1, hfs[2], hns, hnb, hnw, k;
    int shapes[12][2], nd[12];
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if (s->variant != MHC_VARIANT_NONE) mhc_hc_param_shapes(&ctx, s, C, 0, fs, &ns, &nb, &nw);
    mhc_hc_param_shapes(&ctx, s, C, 1, hfs, &hns, &hnb, &hnw);
    nd[0] = 2; shapes[0][0] = T; shapes[0][1] = C;
    nd[1] = nd[5] = 2; shapes[1][0] = shapes[5][0] = fs[0]; shapes[1][1] = shapes[5][1] = fs[1];
    nd[2] = nd[6] = 1; shapes[2][0] = shapes[6][0] = ns;
    nd[3] = nd[7] = 1; shapes[3][0] = shapes[7][0] = nb;
    nd[4] = 1; shapes[4][0] = nw;
    nd[8] = 2; shapes[8][0] = hfs[0]; shapes[8][1] = hfs[1];
    nd[9] = 1; shapes[9][0] = hns;
    nd[10] = 1; shapes[10][0] = hnb;
    nd[11] = 1; shapes[11][0] = hnw;
    for (k = 0; k < 12; k++) {
        size_t sz = (size_t)shapes[k][0] * (nd[k] == 2 ? (size_t)shapes[k][1] : 1), i;
        I->mem[2 * k] = (mhc_real *)calloc(sz, sizeof(mhc_real));
        I->mem[2 * k + 1] = (mhc_real *)calloc(sz, sizeof(mhc_real));
        mhc_tensor_wrap(&ctx, &I->t[k], I->mem[2 * k], I->mem[2 * k + 1], nd[k], shapes[k]);
        I->p[k] = &I->t[k];
        for (i = 0; i < sz; i++) {
            double v;
            switch (k) {
            case 0: v = mhc_rng_normal(rng); break;
            case 1: case 5: case 8: v = 0.4 * mhc_rng_normal(rng); break;
            case 2: case 6: case 9: v = 0.5 + mhc_rng_uniform(rng); break;
            case 4: case 11: v = 0.5 + mhc_rng_uniform(rng); break;
            default: v = 0.5 * mhc_rng_normal(rng); break;
            }
            I->mem[2 * k][i] = (mhc_real)v;
        }
    }
}

static void hctt_free(hctt_inputs *I) {
    int k;
    for (k = 0; k < 24; k++) free(I->mem[k]);
}

static void hctt_gradchecks(void) {
    static const mhc_hc_preset presets[4] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER, MHC_PRESET_LITE};
    double worst = 0, worst_dir = 0;
    int p, n, k, count = 0;
    TEST_BEGIN("hc tape: gradcheck of expand -> 2 x (pre, F, post) -> head");
    for (n = 1; n <= 4; n++)
        for (p = 0; p < 10; p++) {
            mhc_ctx ctx;
            mhc_arena ar;
            mhc_tape tp;
            mhc_rng rng;
            hctt_inputs I;
            hctt_user u;
            int T = 2, C = 3;
            mhc_real rbuf[2 * 3], rh[2 * 4];
            if (p < 4) u.s = hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
            else if (p == 4) u.s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_LOG, n);
            else if (p == 5) u.s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_SOFTMAX, n);
            else if (p == 6) u.s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, n);
            else if (p == 8) u.s = hct_spec(MHC_PRESET_KROMHC, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
            else if (p == 9) u.s = hct_spec(MHC_PRESET_ORTHO, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
            else {
                if (n != 1) continue;
                u.s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
            }
            mhc_ctx_init(&ctx);
            mhc_arena_init(&ctx, &ar, 1 << 16);
            mhc_tape_init(&ctx, &tp, &ar);
            mhc_rng_seed(&rng, (uint64_t)(17 * n + p));
            hctt_make(&I, &u.s, T, C, &rng);
            if (p == 9)   /* ortho: well-conditioned residual logits (Newton-Schulz magnifies the third
                             derivatives at small singular values, and with them the truncation error of
                             the central differences: 1e-5 in the direction check on generic logits) */
                for (k = 0; k < n; k++) {
                    I.mem[2 * 3][2 * n + k * n + k] += (mhc_real)(2.0 * n);
                    I.mem[2 * 7][2 * n + k * n + k] += (mhc_real)(2.0 * n);
                }
            u.n = n; u.C = C; u.T = T;
            mhc_rng_fill_normal(&rng, rbuf, (size_t)T * C, 0, 0.3);
            mhc_rng_fill_normal(&rng, rh, (size_t)T * n, 0, 0.3);
            u.r_out = rbuf; u.r_hpre = rh;
#ifdef MHC_DOUBLE
            {
                mhc_gradcheck_result gr;
                /* variant none has no layer parameters: check e and the head only */
                mhc_tensor *only[5];
                mhc_tensor **ins = I.p;
                int nin = 12;
                if (u.s.variant == MHC_VARIANT_NONE) {
                    /* the chain ignores inputs 1..7, so check with them in place but exclude them */
                    only[0] = I.p[0]; only[1] = I.p[8]; only[2] = I.p[9]; only[3] = I.p[10]; only[4] = I.p[11];
                    (void)only;
                }
                CHECK_OK(mhc_gradcheck(&tp, hctt_chain, ins, nin, &u, HCTT_H, 1e-3, (uint64_t)(99 + p), &gr));
                CHECK_MSG(gr.max_rel_err <= 1e-6 && gr.dir_rel_err <= 1e-6,
                          "%s n=%d: gradcheck rel err %.3g (input %d, index %d), direction %.3g", mhc_hc_variant_name(u.s.variant),
                          n, gr.max_rel_err, gr.worst_input, gr.worst_index, gr.dir_rel_err);
                if (gr.max_rel_err > worst) worst = gr.max_rel_err;
                if (gr.dir_rel_err > worst_dir) worst_dir = gr.dir_rel_err;
                count++;
            }
#else
            {   /* float: the chain runs and backward completes with finite gradients */
                mhc_tensor *loss = hctt_chain(&tp, I.p, 12, &u);
                int bad = 0;
                size_t i;
                CHECK(loss != NULL);
                CHECK_OK(mhc_tape_backward(&tp, loss));
                for (k = 0; k < 12; k++)
                    for (i = 0; i < I.t[k].size; i++) bad += !hct_finite((double)I.t[k].grad[i]);
                CHECK(bad == 0);
                mhc_tape_reset(&tp);
                count++;
            }
#endif
            hctt_free(&I);
            mhc_tape_free(&tp);
            mhc_arena_free(&ar);
        }
    (void)k;
    printf("  [%s] hc tape: %d chains checked, worst gradcheck rel err %.3g, direction %.3g\n", TEST_PREC, count, worst, worst_dir);
}

/* The tape ops give the same numbers as the raw-array functions (one layer). */
static void hctt_vs_raw(void) {
    static const mhc_hc_preset presets[3] = {MHC_PRESET_DSV4, MHC_PRESET_PAPER, MHC_PRESET_LITE};
    int p;
    TEST_BEGIN("hc tape: same results as the raw-array functions");
    for (p = 0; p < 4; p++) {
        mhc_hc_spec s = p < 3 ? hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3)
                              : hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, 3);
        hct_case kc;
        hct_lib l;
        mhc_ctx ctx;
        mhc_arena ar;
        mhc_tape tp;
        mhc_tensor x, fn, sc, b, nw, f, *loss, *y;
        mhc_hc_params w;
        mhc_hc_pre_out po;
        int T = 5, C = 4, n = 3, sx[3], sfn[2], s1[1];
        size_t D = (size_t)n * C, i;
        double L, e = 0;
        mhc_real *gx, *gfn, *gsc, *gb, *gnw, *gf, *wout, *wli, *whpre, *whpost, *wA;
        mhc_ctx_init(&ctx);
        mhc_arena_init(&ctx, &ar, 4096);
        mhc_tape_init(&ctx, &tp, &ar);
        hct_case_make(&kc, &s, T, C, 0, 1, (uint64_t)(500 + p));
        hct_lib_make(&l, &kc);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l));
        gx = hct_real(NULL, T * D); gfn = hct_real(NULL, kc.nfn); gsc = hct_real(NULL, 3); gb = hct_real(NULL, kc.nbase);
        gnw = hct_real(NULL, kc.nnw); gf = hct_real(NULL, (size_t)T * C);
        sx[0] = T; sx[1] = n; sx[2] = C;
        sfn[0] = s.m; sfn[1] = s.variant == MHC_VARIANT_HC ? C : (int)D;
        CHECK_OK(mhc_tensor_wrap(&ctx, &x, l.x, gx, 3, sx));
        CHECK_OK(mhc_tensor_wrap(&ctx, &fn, l.fn, gfn, 2, sfn));
        s1[0] = 3;
        CHECK_OK(mhc_tensor_wrap(&ctx, &sc, l.scale, gsc, 1, s1));
        s1[0] = kc.nbase;
        CHECK_OK(mhc_tensor_wrap(&ctx, &b, l.base, gb, 1, s1));
        s1[0] = kc.nnw;
        CHECK_OK(mhc_tensor_wrap(&ctx, &nw, l.nw, gnw, 1, s1));
        sx[1] = C;
        CHECK_OK(mhc_tensor_wrap(&ctx, &f, l.f, gf, 2, sx));
        w.fn = &fn; w.scale = &sc; w.base = &b; w.norm_weight = &nw;
        CHECK_OK(mhc_hc_pre(&tp, &s, &x, &w, &po));
        y = mhc_hc_post(&tp, &x, po.h_res, po.h_post, &f);
        CHECK(y != NULL);
        if (!y) continue;
        CHECK(memcmp(po.layer_input->data, l.li, (size_t)T * C * sizeof(mhc_real)) == 0);
        CHECK(memcmp(po.h_res->data, l.A, (size_t)T * n * n * sizeof(mhc_real)) == 0);
        CHECK(memcmp(po.h_pre->data, l.hpre, (size_t)T * n * sizeof(mhc_real)) == 0);
        CHECK(memcmp(po.h_post->data, l.hpost, (size_t)T * n * sizeof(mhc_real)) == 0);
        CHECK(memcmp(y->data, l.out, (size_t)T * D * sizeof(mhc_real)) == 0);
        wout = hct_real(kc.wout, T * D); wli = hct_real(kc.wli, (size_t)T * C); whpre = hct_real(kc.whpre, (size_t)T * n);
        whpost = hct_real(kc.whpost, (size_t)T * n); wA = hct_real(kc.wA, (size_t)T * n * n);
        loss = mhc_add(&tp, mhc_dot_const(&tp, y, wout), mhc_dot_const(&tp, po.layer_input, wli));
        loss = mhc_add(&tp, loss, mhc_dot_const(&tp, po.h_pre, whpre));
        loss = mhc_add(&tp, loss, mhc_dot_const(&tp, po.h_post, whpost));
        loss = mhc_add(&tp, loss, mhc_dot_const(&tp, po.h_res, wA));
        CHECK_OK(mhc_tape_backward(&tp, loss));
        for (i = 0; i < T * D; i++) e = fmax(e, fabs((double)gx[i] - (double)l.dx[i]) / fmax(1.0, fabs((double)l.dx[i])));
        for (i = 0; i < (size_t)kc.nfn; i++) e = fmax(e, fabs((double)gfn[i] - (double)l.dfn[i]) / fmax(1.0, fabs((double)l.dfn[i])));
        for (i = 0; i < 3; i++) e = fmax(e, fabs((double)gsc[i] - (double)l.dscale[i]) / fmax(1.0, fabs((double)l.dscale[i])));
        for (i = 0; i < (size_t)kc.nbase; i++) e = fmax(e, fabs((double)gb[i] - (double)l.dbase[i]) / fmax(1.0, fabs((double)l.dbase[i])));
        for (i = 0; i < (size_t)kc.nnw; i++) e = fmax(e, fabs((double)gnw[i] - (double)l.dnw[i]) / fmax(1.0, fabs((double)l.dnw[i])));
        for (i = 0; i < (size_t)T * C; i++) e = fmax(e, fabs((double)gf[i] - (double)l.df[i]) / fmax(1.0, fabs((double)l.df[i])));
#ifdef MHC_DOUBLE
        CHECK_LE(e, 1e-13);
#else
        CHECK_LE(e, 1e-5);
#endif
        free(gx); free(gfn); free(gsc); free(gb); free(gnw); free(gf);
        free(wout); free(wli); free(whpre); free(whpost); free(wA);
        hct_lib_free(&l);
        hct_case_free(&kc);
        mhc_tape_free(&tp);
        mhc_arena_free(&ar);
    }
}

/* no-grad mode, inputs without gradients, arena growth, sinkhorn op, errors */
static void hctt_misc(void) {
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_rng rng;
    hctt_inputs I;
    hctt_user u;
    mhc_real rbuf[4 * 5], rh[4 * 4];
    mhc_tensor *loss;
    size_t g1;
    int step;
    mhc_ctx_init(&ctx);
    mhc_arena_init(&ctx, &ar, 1024);
    mhc_tape_init(&ctx, &tp, &ar);
    mhc_rng_seed(&rng, 5);
    u.s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
    u.n = 4; u.C = 5; u.T = 4;
    hctt_make(&I, &u.s, 4, 5, &rng);
    mhc_rng_fill_normal(&rng, rbuf, 20, 0, 1);
    mhc_rng_fill_normal(&rng, rh, 16, 0, 1);
    u.r_out = rbuf; u.r_hpre = rh;
    TEST_BEGIN("hc tape: no malloc after the first step");
    g1 = 0;
    for (step = 0; step < 3; step++) {
        loss = hctt_chain(&tp, I.p, 12, &u);
        CHECK_OK(mhc_tape_backward(&tp, loss));
        CHECK_OK(mhc_tape_reset(&tp));
        if (step == 0) g1 = ar.growths;
    }
    CHECK(ar.growths == g1);
    TEST_BEGIN("hc tape: no-grad records nothing");
    mhc_tape_set_no_grad(&tp, 1);
    loss = hctt_chain(&tp, I.p, 12, &u);
    CHECK(loss != NULL && tp.nodes == 0 && loss->grad == NULL);
    mhc_tape_set_no_grad(&tp, 0);
    CHECK_OK(mhc_tape_reset(&tp));
    TEST_BEGIN("hc tape: sinkhorn op");
    {
        mhc_tensor z, *o, *l;
        mhc_real zd[3 * 24], zg[3 * 24], ref[3 * 16], w[3 * 16], rg[3 * 24];
        int sh[3] = {3, 4, 4}, sp[2] = {3, 24}, k;
        mhc_rng_fill_normal(&rng, zd, 72, 0, 2);
        mhc_rng_fill_normal(&rng, w, 48, 0, 1);
        for (k = 0; k < 2; k++) {
            mhc_projection pj = k ? MHC_PROJ_PERM : MHC_PROJ_SOFTMAX;
            memset(zg, 0, sizeof zg); memset(rg, 0, sizeof rg);
            CHECK_OK(mhc_tensor_wrap(&ctx, &z, zd, zg, k ? 2 : 3, k ? sp : sh));
            o = mhc_sinkhorn(&tp, pj, 4, 20, 1e-6, &z);
            CHECK(o != NULL && o->ndim == 3 && o->shape[0] == 3 && o->shape[2] == 4);
            if (!o) continue;
            CHECK_OK(mhc_sinkhorn_forward(&ctx, pj, 4, 20, 1e-6, ref, zd, 3));
            CHECK(memcmp(o->data, ref, sizeof ref) == 0);
            l = mhc_dot_const(&tp, o, w);
            CHECK_OK(mhc_tape_backward(&tp, l));
            CHECK_OK(mhc_sinkhorn_backward(&ctx, pj, 4, 20, 1e-6, rg, w, zd, 3));
            CHECK(memcmp(zg, rg, (size_t)(k ? 72 : 48) * sizeof(mhc_real)) == 0);
            CHECK_OK(mhc_tape_reset(&tp));
        }
        CHECK_OK(mhc_tensor_wrap(&ctx, &z, zd, zg, 3, sh));
        CHECK(mhc_sinkhorn(&tp, MHC_PROJ_PERM, 4, 20, 1e-6, &z) == NULL);    /* z is [3,4,4]: 16 != 24 */
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn: logits have shape [3,4,4], expected [T, 24]");
        mhc_tape_reset(&tp);
        CHECK(mhc_sinkhorn(&tp, MHC_PROJ_EXP, 4, 0, 1e-6, &z) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn: iters = 0");
        mhc_tape_reset(&tp);
    }
    TEST_BEGIN("hc tape: errors");
    {
        mhc_hc_params w, wbad;
        mhc_hc_pre_out po;
        mhc_tensor *x, *x2;
        mhc_tensor bad;
        mhc_real bd[7];
        int s7[1] = {7}, s3[3] = {4, 3, 5};
        mhc_hc_spec sb;
        w.fn = I.p[1]; w.scale = I.p[2]; w.base = I.p[3]; w.norm_weight = I.p[4];
        CHECK_OK(mhc_tensor_wrap(&ctx, &bad, bd, NULL, 1, s7));
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK(x != NULL);
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, NULL, &w, &po), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: input 1 is NULL");
        CHECK(po.layer_input == NULL && po.h_res == NULL);
        /* after a failure, a NULL input keeps the first message */
        CHECK(mhc_hc_post(&tp, NULL, NULL, NULL, NULL) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: input 1 is NULL");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, NULL, &po), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the parameters (w) are NULL");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        wbad = w; wbad.base = NULL;
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, &wbad, &po), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "parameter base is NULL");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, &w, NULL), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: out is NULL");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        wbad = w; wbad.fn = I.p[8];                       /* the head's fn */
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, &wbad, &po), MHC_ERR_SHAPE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: fn has shape [4,20], expected [24,20] (2n + n*n rows");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        wbad = w; wbad.base = I.p[10];
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, &wbad, &po), MHC_ERR_SHAPE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "scale has 3 and base 4 elements, expected 3 and 24");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        wbad = w; wbad.norm_weight = &bad;
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, x, &wbad, &po), MHC_ERR_SHAPE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "norm_weight has 7 elements, expected 20");
        mhc_tape_reset(&tp);
        CHECK_RESULT(mhc_hc_pre(&tp, &u.s, I.p[0], &w, &po), MHC_ERR_SHAPE);    /* [4,5]: 5 % 4 != 0 */
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: x has shape [4,5], expected [T, n, C]");
        mhc_tape_reset(&tp);
        sb = u.s; sb.iters = -3;
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_RESULT(mhc_hc_pre(&tp, &sb, x, &w, &po), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: spec.iters = -3");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK(mhc_hc_head(&tp, &u.s, x, &w) == NULL);      /* layer parameters given to the head */
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_head: fn has shape [24,20], expected [4,20] (the head");
        mhc_tape_reset(&tp);
        /* post */
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_OK(mhc_hc_pre(&tp, &u.s, x, &w, &po));
        CHECK(mhc_hc_post(&tp, x, po.h_res, NULL, po.layer_input) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_post: h_post is NULL (needed with f_out)");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_OK(mhc_hc_pre(&tp, &u.s, x, &w, &po));
        CHECK(mhc_hc_post(&tp, x, po.h_post, po.h_post, po.layer_input) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_post: h_res has shape [4,4], expected [4,4,4]");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_OK(mhc_hc_pre(&tp, &u.s, x, &w, &po));
        CHECK(mhc_hc_post(&tp, x, po.h_res, po.h_res, po.layer_input) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_post: h_post has shape [4,4,4], expected [4,4]");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_OK(mhc_hc_pre(&tp, &u.s, x, &w, &po));
        CHECK(mhc_hc_post(&tp, x, po.h_res, po.h_post, po.h_pre) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_post: f_out has shape [4,4], expected [4,5]");
        mhc_tape_reset(&tp);
        CHECK(mhc_hc_post(&tp, I.p[0], I.p[0], NULL, NULL) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_post: x has shape [4,5], expected [T, n, C]");
        mhc_tape_reset(&tp);
        x = mhc_hc_expand(&tp, I.p[0], 4);
        CHECK_OK(mhc_hc_pre(&tp, &u.s, x, &w, &po));
        x2 = mhc_hc_post(&tp, x, po.h_res, NULL, NULL);      /* out = A x */
        CHECK(x2 != NULL && x2->shape[1] == 4);
        mhc_tape_reset(&tp);
        CHECK(mhc_hc_expand(&tp, I.p[0], 0) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_expand: n = 0 streams");
        mhc_tape_reset(&tp);
        CHECK(mhc_hc_expand(&tp, NULL, 2) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_expand: input 1 is NULL");
        mhc_tape_reset(&tp);
        (void)s3;
    }
    hctt_free(&I);
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
}

void TP(test_hc_tape)(void); void TP(test_hc_tape)(void) {
    hctt_gradchecks();
    hctt_vs_raw();
    hctt_misc();
    hct_omp_release();
}
