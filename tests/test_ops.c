/* tests/test_ops.c - every core op: forward against a naive double-precision reference written
 * here (independent of the library's kernels), backward against central finite differences
 * of that reference in double, the library's own gradient checker (double build), error paths,
 * and bit-identical results for 1 and 2 threads.
 *
 * Float tolerances (float32 build), per op, relative to max(|reference|, 1):
 *   forward: 2e-5 for every op except attention and cross-entropy (5e-5);
 *   backward (analytic float gradient vs finite differences of the double reference): 1e-4.
 * Double build: forward 1e-12, backward 1e-6 (relative error with a 1e-3 floor). */

#define OPS_MAXIN 3
typedef struct TP(opcase) {
    const char *name;
    int nin;
    int ndim[OPS_MAXIN];
    int shape[OPS_MAXIN][4];
    double scale[OPS_MAXIN];           /* inputs ~ N(0, scale) */
    int ints[64];                       /* ids / targets */
    int iparam[4];                      /* op-specific sizes */
    double fparam;                      /* op-specific value */
    /* builds the op's output from the inputs */
    mhc_tensor *(*build)(mhc_tape *, mhc_tensor **, const struct TP(opcase) *);
    /* the naive reference: out (nout values) from double inputs */
    void (*naive)(double *out, double **in, const struct TP(opcase) *);
    double fwd_tol_f32;
} TP(opcase);

static size_t TP(ops_size)(const TP(opcase) *c, int i) {
    size_t s = 1;
    int d;
    for (d = 0; d < c->ndim[i]; d++) s *= (size_t)c->shape[i][d];
    return s;
}

/* ---- naive references (double, straight from the formulas) ---- */
static void TP(nv_matmul_ab)(double *o, double **in, const TP(opcase) *c) {
    int M = c->shape[0][0], K = c->shape[0][1], N = c->shape[1][1], i, j, k;
    for (i = 0; i < M; i++) for (j = 0; j < N; j++) {
        double s = 0; for (k = 0; k < K; k++) s += in[0][i * K + k] * in[1][k * N + j]; o[i * N + j] = s; }
}
static void TP(nv_matmul_abt)(double *o, double **in, const TP(opcase) *c) {   /* a is [2,M/2,K] */
    int M = c->shape[0][0] * c->shape[0][1], K = c->shape[0][2], N = c->shape[1][0], i, j, k;
    for (i = 0; i < M; i++) for (j = 0; j < N; j++) {
        double s = 0; for (k = 0; k < K; k++) s += in[0][i * K + k] * in[1][j * K + k]; o[i * N + j] = s; }
}
static void TP(nv_add)(double *o, double **in, const TP(opcase) *c) {
    size_t i, n = TP(ops_size)(c, 0), nb = TP(ops_size)(c, 1);
    for (i = 0; i < n; i++) o[i] = in[0][i] + in[1][i % nb];
}
static void TP(nv_mul)(double *o, double **in, const TP(opcase) *c) {
    size_t i, n = TP(ops_size)(c, 0);
    for (i = 0; i < n; i++) o[i] = in[0][i] * in[1][i];
}
static void TP(nv_scale)(double *o, double **in, const TP(opcase) *c) {
    size_t i, n = TP(ops_size)(c, 0);
    for (i = 0; i < n; i++) o[i] = c->fparam * in[0][i];
}
static void TP(nv_rmsnorm)(double *o, double **in, const TP(opcase) *c) {
    int D = c->shape[0][c->ndim[0] - 1], N = (int)(TP(ops_size)(c, 0) / (size_t)D), i, j;
    for (i = 0; i < N; i++) {
        double ms = 0;
        for (j = 0; j < D; j++) ms += in[0][i * D + j] * in[0][i * D + j] / D;
        for (j = 0; j < D; j++) o[i * D + j] = in[0][i * D + j] / sqrt(ms + c->fparam) * (c->nin > 1 ? in[1][j] : 1.0);
    }
}
static double TP(nv_actf)(int act, double x) {
    switch (act) {
    case 0: return 1.0 / (1.0 + exp(-x));
    case 1: return (exp(x) - exp(-x)) / (exp(x) + exp(-x));
    case 2: { double u = sqrt(2.0 / 3.14159265358979323846) * (x + 0.044715 * x * x * x);
              return 0.5 * x * (1.0 + (exp(u) - exp(-u)) / (exp(u) + exp(-u))); }
    default: return x / (1.0 + exp(-x));
    }
}
static void TP(nv_act)(double *o, double **in, const TP(opcase) *c) {
    size_t i, n = TP(ops_size)(c, 0);
    for (i = 0; i < n; i++) o[i] = TP(nv_actf)(c->iparam[0], in[0][i]);
}
static void TP(nv_softmax)(double *o, double **in, const TP(opcase) *c) {
    int D = c->shape[0][c->ndim[0] - 1], N = (int)(TP(ops_size)(c, 0) / (size_t)D), i, j;
    for (i = 0; i < N; i++) {
        double s = 0;
        for (j = 0; j < D; j++) s += exp(in[0][i * D + j]);
        for (j = 0; j < D; j++) o[i * D + j] = exp(in[0][i * D + j]) / s;
    }
}
static void TP(nv_embedding)(double *o, double **in, const TP(opcase) *c) {
    int T = c->iparam[0], D = c->shape[0][1], t, j;
    for (t = 0; t < T; t++) for (j = 0; j < D; j++) o[t * D + j] = in[0][c->ints[t] * D + j];
}
static void TP(nv_attention)(double *o, double **in, const TP(opcase) *c) {
    int B = c->iparam[0], T = c->iparam[1], H = c->iparam[2], C = c->shape[0][c->ndim[0] - 1] / 3, hs = C / H;
    int b, h, t, u, i;
    double sc[64];
    for (b = 0; b < B; b++) for (h = 0; h < H; h++) for (t = 0; t < T; t++) {
        double mx = -1e300, s = 0;
        for (u = 0; u < T; u++) {   /* full scores, then the causal mask */
            double d = 0;
            for (i = 0; i < hs; i++) d += in[0][(b * T + t) * 3 * C + h * hs + i] * in[0][(b * T + u) * 3 * C + C + h * hs + i];
            sc[u] = u <= t ? d / sqrt((double)hs) : -1e300;
            if (sc[u] > mx) mx = sc[u];
        }
        for (u = 0; u < T; u++) { sc[u] = u <= t ? exp(sc[u] - mx) : 0.0; s += sc[u]; }
        for (i = 0; i < hs; i++) {
            double acc = 0;
            for (u = 0; u < T; u++) acc += sc[u] / s * in[0][(b * T + u) * 3 * C + 2 * C + h * hs + i];
            o[(b * T + t) * C + h * hs + i] = acc;
        }
    }
}
static void TP(nv_xent)(double *o, double **in, const TP(opcase) *c) {
    int N = c->shape[0][0], V = c->shape[0][1], n, j;
    double tot = 0;
    for (n = 0; n < N; n++) {
        double s = 0;
        for (j = 0; j < V; j++) s += exp(in[0][n * V + j]);
        tot += log(s) - in[0][n * V + c->ints[n]];
    }
    o[0] = tot / N;
}
static void TP(nv_view_then_sum)(double *o, double **in, const TP(opcase) *c) {   /* mean of softplus-free op */
    size_t i, n = TP(ops_size)(c, 0);
    for (i = 0; i < n; i++) o[i] = in[0][i] * in[0][i];
    (void)c;
}

/* ---- builders (the library's ops) ---- */
static mhc_tensor *TP(bd_matmul_ab)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { (void)c; return mhc_matmul_ab(tp, x[0], x[1]); }
static mhc_tensor *TP(bd_matmul_abt)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { (void)c; return mhc_matmul_abt(tp, x[0], x[1]); }
static mhc_tensor *TP(bd_add)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { (void)c; return mhc_add(tp, x[0], x[1]); }
static mhc_tensor *TP(bd_mul)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { (void)c; return mhc_mul(tp, x[0], x[1]); }
static mhc_tensor *TP(bd_scale)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { return mhc_scale(tp, x[0], c->fparam); }
static mhc_tensor *TP(bd_rmsnorm)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) {
    return mhc_rmsnorm(tp, x[0], c->nin > 1 ? x[1] : NULL, c->fparam); }
static mhc_tensor *TP(bd_act)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) {
    switch (c->iparam[0]) {
    case 0: return mhc_sigmoid(tp, x[0]);
    case 1: return mhc_tanh(tp, x[0]);
    case 2: return mhc_gelu(tp, x[0]);
    default: return mhc_silu(tp, x[0]);
    }
}
static mhc_tensor *TP(bd_softmax)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { (void)c; return mhc_softmax(tp, x[0]); }
static mhc_tensor *TP(bd_embedding)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { return mhc_embedding(tp, x[0], c->ints, c->iparam[0]); }
static mhc_tensor *TP(bd_attention)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) {
    return mhc_attention(tp, x[0], c->iparam[0], c->iparam[1], c->iparam[2]); }
static mhc_tensor *TP(bd_xent)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) { return mhc_cross_entropy(tp, x[0], c->ints); }
static mhc_tensor *TP(bd_view_then_sum)(mhc_tape *tp, mhc_tensor **x, const TP(opcase) *c) {
    int s2[2];
    mhc_tensor *v;
    s2[0] = (int)(x[0]->size / 2); s2[1] = 2;
    v = mhc_view(tp, x[0], 2, s2);          /* a view shares data and gradient */
    (void)c;
    return mhc_view(tp, mhc_mul(tp, v, v), x[0]->ndim, x[0]->shape);
}

/* the loss used everywhere: L = sum(out * r) for a fixed random r */
typedef struct TP(opctx) { const TP(opcase) *c; const mhc_real *r; } TP(opctx);
static mhc_tensor *TP(ops_loss)(mhc_tape *tp, mhc_tensor **in, int nin, void *user) {
    TP(opctx) *u = (TP(opctx) *)user;
    (void)nin;
    return mhc_dot_const(tp, u->c->build(tp, in, u->c), u->r);
}

static double TP(naive_loss)(const TP(opcase) *c, double **in, const double *r, double *out, size_t nout) {
    size_t i;
    double l = 0;
    c->naive(out, in, c);
    for (i = 0; i < nout; i++) l += out[i] * r[i];
    return l;
}

static void TP(run_opcase)(const TP(opcase) *c, uint64_t seed) {
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_rng rng;
    mhc_tensor t[OPS_MAXIN], *tin[OPS_MAXIN], *out, *loss;
    mhc_real *data[OPS_MAXIN], *grad[OPS_MAXIN], *r = NULL;
    double *din[OPS_MAXIN], *dout = NULL, *dr = NULL;
    size_t nout = 0, i;
    int k;
    const int dbl = sizeof(mhc_real) == 8;
    const double fwd_tol = dbl ? 1e-12 : c->fwd_tol_f32, bwd_tol = dbl ? 1e-6 : 1e-4;
    double max_fwd = 0, max_bwd = 0;

    test_current = c->name;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, seed);
    mhc_arena_init(&ctx, &ar, 4096);
    mhc_tape_init(&ctx, &tp, &ar);
    for (k = 0; k < c->nin; k++) {
        size_t n = TP(ops_size)(c, k);
        data[k] = (mhc_real *)calloc(n, sizeof(mhc_real));
        grad[k] = (mhc_real *)calloc(n, sizeof(mhc_real));
        din[k] = (double *)calloc(n, sizeof(double));
        mhc_rng_fill_normal(&rng, data[k], n, 0.0, c->scale[k]);
        for (i = 0; i < n; i++) din[k][i] = (double)data[k][i];
        mhc_tensor_wrap(&ctx, &t[k], data[k], grad[k], c->ndim[k], c->shape[k]);
        tin[k] = &t[k];
    }
    /* forward through the library, then the same loss through the naive reference */
    out = c->build(&tp, tin, c);
    CHECK_MSG(out != NULL, "%s: build failed: %s", c->name, mhc_ctx_message(&ctx));
    if (!out) goto done;
    nout = out->size;
    r = (mhc_real *)calloc(nout, sizeof(mhc_real));
    dr = (double *)calloc(nout, sizeof(double));
    dout = (double *)calloc(nout, sizeof(double));
    mhc_rng_fill_normal(&rng, r, nout, 0.0, 1.0);
    for (i = 0; i < nout; i++) dr[i] = (double)r[i];
    TP(naive_loss)(c, din, dr, dout, nout);
    for (i = 0; i < nout; i++) {
        double e = fabs((double)out->data[i] - dout[i]) / fmax(1.0, fabs(dout[i]));
        if (!(e <= max_fwd)) max_fwd = e;
    }
    CHECK_MSG(max_fwd <= fwd_tol, "%s: forward error %.3g > %.3g", c->name, max_fwd, fwd_tol);
    loss = mhc_dot_const(&tp, out, r);
    CHECK_OK(mhc_tape_backward(&tp, loss));
    /* analytic gradient against central differences of the naive double reference */
    {
        double *tmp = (double *)calloc(nout, sizeof(double));
        double gmax = 0;
        for (k = 0; k < c->nin; k++)
            for (i = 0; i < TP(ops_size)(c, k); i++) if (fabs((double)grad[k][i]) > gmax) gmax = fabs((double)grad[k][i]);
        for (k = 0; k < c->nin; k++) {
            for (i = 0; i < TP(ops_size)(c, k); i++) {
                double x0 = din[k][i], h = 1e-6 * fmax(1.0, fabs(x0)), lp, lm, num, e;
                din[k][i] = x0 + h; lp = TP(naive_loss)(c, din, dr, tmp, nout);
                din[k][i] = x0 - h; lm = TP(naive_loss)(c, din, dr, tmp, nout);
                din[k][i] = x0;
                num = (lp - lm) / (2 * h);
                e = fabs((double)grad[k][i] - num) / fmax(1e-3 * fmax(gmax, 1.0), fmax(fabs(num), fabs((double)grad[k][i])));
                if (!(e <= max_bwd)) max_bwd = e;
            }
        }
        free(tmp);
    }
    CHECK_MSG(max_bwd <= bwd_tol, "%s: backward error %.3g > %.3g", c->name, max_bwd, bwd_tol);
    if (getenv("MHC_TEST_VERBOSE"))
        printf("  [%s] %-20s forward err %.2e  backward err %.2e\n", TEST_PREC, c->name, max_fwd, max_bwd);
    mhc_tape_reset(&tp);
#ifdef MHC_DOUBLE
    {   /* the library's own checker: per element and along one random direction */
        TP(opctx) u;
        mhc_gradcheck_result gr;
        u.c = c; u.r = r;
        CHECK_OK(mhc_gradcheck(&tp, TP(ops_loss), tin, c->nin, &u, 1e-6, 1e-3, seed + 1, &gr));
        CHECK_MSG(gr.max_rel_err <= 1e-6, "%s: gradcheck max rel err %.3g", c->name, gr.max_rel_err);
        CHECK_MSG(gr.dir_rel_err <= 1e-6, "%s: gradcheck direction rel err %.3g", c->name, gr.dir_rel_err);
    }
#endif
done:
    for (k = 0; k < c->nin; k++) { free(data[k]); free(grad[k]); free(din[k]); }
    free(r); free(dr); free(dout);
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
}

static void TP(test_kernel_matmuls)(void) {
    /* the raw kernels against the naive references, odd sizes, overwrite and accumulate */
    mhc_rng rng;
    int M = 7, K = 13, N = 5, acc, which;
    mhc_real A[7 * 13 + 13 * 7], B[13 * 5 + 5 * 13], C1[64], C2[64];
    test_current = "kernel_matmul";
    mhc_rng_seed(&rng, 3);
    mhc_rng_fill_normal(&rng, A, sizeof A / sizeof A[0], 0, 1);
    mhc_rng_fill_normal(&rng, B, sizeof B / sizeof B[0], 0, 1);
    for (which = 0; which < 3; which++)
        for (acc = 0; acc < 2; acc++) {
            int i;
            double e = 0;
            mhc_rng_fill_normal(&rng, C1, 35, 0, 1);
            memcpy(C2, C1, sizeof C1);
            if (which == 0) { mhc_k_matmul_ab(C1, A, B, M, K, N, acc); mhc_ref_matmul_ab(C2, A, B, M, K, N, acc); }
            if (which == 1) { mhc_k_matmul_abt(C1, A, B, M, K, N, acc); mhc_ref_matmul_abt(C2, A, B, M, K, N, acc); }
            if (which == 2) { mhc_k_matmul_atb(C1, A, B, M, K, N, acc); mhc_ref_matmul_atb(C2, A, B, M, K, N, acc); }
            for (i = 0; i < M * N; i++) e = fmax(e, fabs((double)C1[i] - (double)C2[i]));
            CHECK_MSG(e <= (sizeof(mhc_real) == 8 ? 1e-13 : 1e-5), "matmul kernel %d acc %d: error %.3g", which, acc, e);
        }
}

static void TP(test_threads_identical)(void) {
#if MHC__OMP
    /* attention and matmul with 1 and 2 threads: the same bits */
    mhc_rng rng;
    enum { B = 2, T = 16, C = 32, H = 4 };
    static mhc_real qkv[B * T * 3 * C], out1[B * T * C], out2[B * T * C], att[B * H * T * T];
    static mhc_real d1[B * T * 3 * C], d2[B * T * 3 * C], w[96 * 32], m1[B * T * 96], m2[B * T * 96];
    int old = omp_get_max_threads();
    test_current = "threads";
    mhc_rng_seed(&rng, 11);
    mhc_rng_fill_normal(&rng, qkv, sizeof qkv / sizeof qkv[0], 0, 1);
    mhc_rng_fill_normal(&rng, w, sizeof w / sizeof w[0], 0, 1);
    omp_set_num_threads(1);
    mhc_k_attention_forward(out1, att, qkv, B, T, C, H);
    memset(d1, 0, sizeof d1);
    mhc_k_attention_backward(d1, out1, att, qkv, B, T, C, H);
    mhc_k_matmul_abt(m1, qkv, w, B * T, 96, 32, 0);
    omp_set_num_threads(2);
    mhc_k_attention_forward(out2, att, qkv, B, T, C, H);
    memset(d2, 0, sizeof d2);
    mhc_k_attention_backward(d2, out2, att, qkv, B, T, C, H);
    mhc_k_matmul_abt(m2, qkv, w, B * T, 96, 32, 0);
    omp_set_num_threads(old);
    CHECK(memcmp(out1, out2, sizeof out1) == 0);
    CHECK(memcmp(d1, d2, sizeof d1) == 0);
    CHECK(memcmp(m1, m2, sizeof m1) == 0);
#endif
}

static void TP(test_add_large)(void) {
    /* mhc_add above the parallel threshold (its forward and backward run in OpenMP blocks): a bias
       broadcast over rows, then a same-shape add, forward and backward against plain loops written
       here, exactly (each output is one addition; the bias gradient sums the rows in row order),
       for 1, 2 and 3 threads */
    enum { R = 161, D = 300, NT = 3 };
    const size_t n = (size_t)R * D;
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_rng rng;
    mhc_tensor a, b, c;
    int sa[2] = {R, D}, sb[1] = {D}, nt, ok = 1, i;
    size_t j;
    mhc_real *buf = (mhc_real *)calloc(6 * n + 3 * D, sizeof *buf);
    mhc_real *da, *ga, *dc, *gc, *r, *want, *want_b, *db, *gb;
#if MHC__OMP
    const int old = omp_get_max_threads();
#endif
    test_current = "add_large";
    CHECK(buf != NULL);
    if (!buf) return;
    da = buf; ga = da + n; dc = ga + n; gc = dc + n; r = gc + n; want = r + n; db = want + n; gb = db + D; want_b = gb + D;
    mhc_rng_seed(&rng, 21);
    mhc_rng_fill_normal(&rng, da, n, 0, 1);
    mhc_rng_fill_normal(&rng, dc, n, 0, 1);
    mhc_rng_fill_normal(&rng, db, D, 0, 1);
    mhc_rng_fill_normal(&rng, r, n, 0, 1);
    for (j = 0; j < n; j++) want[j] = (mhc_real)((mhc_real)(da[j] + db[j % D]) + dc[j]);
    for (j = 0; j < n; j++) want_b[j % D] += r[j];   /* row by row, as the library sums */
    mhc_ctx_init(&ctx);
    CHECK_OK(mhc_arena_init(&ctx, &ar, 1 << 20));
    CHECK_OK(mhc_tape_init(&ctx, &tp, &ar));
    for (nt = 1; nt <= NT; nt++) {
        mhc_tensor *o;
#if MHC__OMP
        omp_set_num_threads(nt);
#endif
        ok = 1;
        memset(ga, 0, n * sizeof *ga); memset(gc, 0, n * sizeof *gc); memset(gb, 0, D * sizeof *gb);
        CHECK_OK(mhc_tensor_wrap(&ctx, &a, da, ga, 2, sa));
        CHECK_OK(mhc_tensor_wrap(&ctx, &b, db, gb, 1, sb));
        CHECK_OK(mhc_tensor_wrap(&ctx, &c, dc, gc, 2, sa));
        o = mhc_add(&tp, mhc_add(&tp, &a, &b), &c);
        CHECK(o != NULL);
        if (!o) break;
        if (memcmp(o->data, want, n * sizeof *want) != 0) ok = 0;
        CHECK_OK(mhc_tape_backward(&tp, mhc_dot_const(&tp, o, r)));
        if (memcmp(ga, r, n * sizeof *r) != 0 || memcmp(gc, r, n * sizeof *r) != 0) ok = 0;
        for (i = 0; i < D; i++) if (gb[i] != want_b[i]) ok = 0;
        CHECK_MSG(ok, "mhc_add at %d threads: forward or gradients differ from the plain loops", nt);
        CHECK_OK(mhc_tape_reset(&tp));
    }
    {   /* the raw kernel mhc_k_add: b repeating every nb (the same shape, a bias row, 1, 7 that does
           not divide n, longer than n), out separate and in place, 1 to 3 threads */
        const size_t nbs[6] = {n, D, 1, 7, n + 5, 0};
        int q;
        for (q = 0; q < 6; q++)
            for (nt = 1; nt <= NT; nt++) {
                const size_t nb = nbs[q], nbu = nb < 1 ? 1 : nb;
                mhc_real *bb = (mhc_real *)malloc(nbu * sizeof *bb);
                int bad = 0;
                CHECK(bb != NULL);
                if (!bb) break;
                mhc_rng_fill_normal(&rng, bb, nbu, 0, 1);
#if MHC__OMP
                omp_set_num_threads(nt);
#endif
                for (j = 0; j < n; j++) ga[j] = (mhc_real)-1;
                mhc_k_add(ga, da, bb, n, nb);                  /* separate */
                memcpy(gc, da, n * sizeof *gc);
                mhc_k_add(gc, gc, bb, n, nb);                  /* in place */
                for (j = 0; j < n; j++) {
                    const mhc_real w = nb ? (mhc_real)(da[j] + bb[j % nb]) : (mhc_real)-1, w2 = nb ? w : da[j];
                    if (ga[j] != w || gc[j] != w2) bad = 1;
                }
                CHECK_MSG(!bad, "mhc_k_add nb = %zu at %d threads differs from the plain loop", nb, nt);
                free(bb);
            }
    }
#if MHC__OMP
    omp_set_num_threads(old);
#endif
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
    free(buf);
}

static void TP(test_rmsnorm_large)(void) {
    /* mhc_k_rmsnorm_backward above the parallel threshold (dx by rows and dw by 64-column blocks in
       one region; D = 401 leaves a partial block): against the formula in double written here, and
       the same bits for 1, 2 and 3 threads (dx and dw accumulated into nonzero starting values) */
    enum { N = 97, D = 401, NT = 3 };
    const size_t n = (size_t)N * D;
    mhc_rng rng;
    mhc_real *buf = (mhc_real *)calloc(4 * n + 2 * D + N + NT * (n + D), sizeof *buf);
    mhc_real *x, *dy, *y, *w, *rstd, *dx0, *dw0, *dx[NT], *dw[NT];
    double ex = 0, ew = 0;
    int nt, i, j;
#if MHC__OMP
    const int old = omp_get_max_threads();
#endif
    test_current = "rmsnorm_large";
    CHECK(buf != NULL);
    if (!buf) return;
    x = buf; dy = x + n; y = dy + n; dx0 = y + n; w = dx0 + n; dw0 = w + D; rstd = dw0 + D;
    for (nt = 0; nt < NT; nt++) { dx[nt] = rstd + N + (size_t)nt * (n + D); dw[nt] = dx[nt] + n; }
    mhc_rng_seed(&rng, 33);
    mhc_rng_fill_normal(&rng, x, n, 0, 1);
    mhc_rng_fill_normal(&rng, dy, n, 0, 1);
    mhc_rng_fill_normal(&rng, w, D, 1, 0.2);
    mhc_rng_fill_normal(&rng, dx0, n, 0, 0.1);
    mhc_rng_fill_normal(&rng, dw0, D, 0, 0.1);
    mhc_k_rmsnorm_forward(y, rstd, x, w, N, D, 1e-5);
    for (nt = 1; nt <= NT; nt++) {
#if MHC__OMP
        omp_set_num_threads(nt);
#endif
        memcpy(dx[nt - 1], dx0, n * sizeof *dx0);
        memcpy(dw[nt - 1], dw0, D * sizeof *dw0);
        mhc_k_rmsnorm_backward(dx[nt - 1], dw[nt - 1], dy, x, w, rstd, N, D);
    }
#if MHC__OMP
    omp_set_num_threads(old);
#endif
    for (nt = 1; nt < NT; nt++) {
        CHECK_MSG(memcmp(dx[nt], dx[0], n * sizeof *dx0) == 0, "rmsnorm backward dx: %d threads differ from 1", nt + 1);
        CHECK_MSG(memcmp(dw[nt], dw[0], D * sizeof *dw0) == 0, "rmsnorm backward dw: %d threads differ from 1", nt + 1);
    }
    for (j = 0; j < D; j++) {   /* dw_j = dw0_j + sum_i dy_ij x_ij r_i */
        double s = (double)dw0[j];
        for (i = 0; i < N; i++) s += (double)dy[(size_t)i * D + j] * (double)x[(size_t)i * D + j] * (double)rstd[i];
        ew = fmax(ew, fabs(s - (double)dw[0][j]) / fmax(1.0, fabs(s)));
    }
    for (i = 0; i < N; i++) {   /* dx_ij = dx0_ij + r w_j dy_ij - x_ij r^3 / D sum_k dy_ik w_k x_ik */
        double r = (double)rstd[i], dot = 0;
        for (j = 0; j < D; j++) dot += (double)dy[(size_t)i * D + j] * (double)w[j] * (double)x[(size_t)i * D + j];
        for (j = 0; j < D; j++) {
            const size_t q = (size_t)i * D + j;
            double v = (double)dx0[q] + r * (double)w[j] * (double)dy[q] - (double)x[q] * r * r * r * dot / D;
            ex = fmax(ex, fabs(v - (double)dx[0][q]) / fmax(1.0, fabs(v)));
        }
    }
    CHECK_MSG(ex < (sizeof(mhc_real) == 8 ? 1e-13 : 2e-6), "rmsnorm backward dx vs double formula: %g", ex);
    CHECK_MSG(ew < (sizeof(mhc_real) == 8 ? 1e-13 : 2e-6), "rmsnorm backward dw vs double formula: %g", ew);
    free(buf);
}

static void TP(test_op_errors)(void) {
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_real da[24], db[24], ga[24];
    mhc_tensor a, b, c1, *o;
    int s23[2] = {2, 3}, s34[2] = {3, 4}, s43[2] = {4, 3}, s24[2] = {2, 4}, s6[1] = {6}, s5[1] = {5};
    int ids[3] = {0, 1, 7};
    test_current = "op_errors";
    memset(da, 0, sizeof da); memset(db, 0, sizeof db); memset(ga, 0, sizeof ga);
    mhc_ctx_init(&ctx);
    CHECK_RESULT(mhc_tape_init(&ctx, &tp, NULL), MHC_ERR_NULL);
    CHECK(mhc_matmul_ab(&tp, &a, &b) == NULL);   /* an uninitialised tape is refused, not used */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "not initialised");
    CHECK(mhc_matmul_ab(NULL, &a, &b) == NULL);
    mhc_arena_init(&ctx, &ar, 1024);
    CHECK_OK(mhc_tape_init(&ctx, &tp, &ar));
    CHECK_RESULT(mhc_tensor_wrap(&ctx, &a, NULL, NULL, 2, s23), MHC_ERR_NULL);
    CHECK_OK(mhc_tensor_wrap(&ctx, &a, da, ga, 2, s23));
    CHECK_OK(mhc_tensor_wrap(&ctx, &b, db, NULL, 2, s43));
    /* shape mismatch names both shapes */
    CHECK(mhc_matmul_ab(&tp, &a, &b) == NULL);
    CHECK(ctx.last == MHC_ERR_SHAPE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "a is [2,3] and b is [4,3]");
    /* sticky: the next op with a NULL input keeps the first message */
    CHECK(mhc_gelu(&tp, NULL) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "a is [2,3] and b is [4,3]");
    CHECK_RESULT(mhc_tape_backward(&tp, NULL), MHC_ERR_SHAPE);
    CHECK_OK(mhc_tape_reset(&tp));
    /* a NULL input on a clean tape is reported as such */
    CHECK(mhc_gelu(&tp, NULL) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_activation: input 1 is NULL");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_activation(&tp, (mhc_act)42, &a) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown activation 42");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK_OK(mhc_tensor_wrap(&ctx, &b, db, NULL, 2, s34));
    CHECK(mhc_matmul_abt(&tp, &a, &b) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "inner dimensions differ");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK_OK(mhc_tensor_wrap(&ctx, &c1, db, NULL, 1, s6));
    CHECK(mhc_matmul_ab(&tp, &a, &c1) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected 2 dimensions");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_add(&tp, &a, &c1) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "b = [last dim of a]");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK_OK(mhc_tensor_wrap(&ctx, &b, db, NULL, 2, s24));
    CHECK(mhc_mul(&tp, &a, &b) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "a is [2,3] and b is [2,4]");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_scale(&tp, &a, HUGE_VAL) == NULL && ctx.last == MHC_ERR_NONFINITE);
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_rmsnorm(&tp, &a, &c1, 1e-6) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected weight [3]");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_rmsnorm(&tp, &a, NULL, -1) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "eps is -1");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_embedding(&tp, &a, ids, 3) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ids[2] = 7 is outside [0, 2)");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_embedding(&tp, &a, NULL, 3) == NULL && ctx.last == MHC_ERR_NULL);
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_embedding(&tp, &a, ids, 0) == NULL && ctx.last == MHC_ERR_SIZE);
    CHECK_OK(mhc_tape_reset(&tp));
    {
        int tg[2] = {0, 5};
        CHECK(mhc_cross_entropy(&tp, &a, tg) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "targets[1] = 5 is outside [0, 3)");
    }
    CHECK_OK(mhc_tape_reset(&tp));
    {
        mhc_real q[2 * 3 * 12];
        mhc_tensor tq;
        int sq[2] = {6, 12}, sbad[2] = {6, 10};
        memset(q, 0, sizeof q);
        mhc_tensor_wrap(&ctx, &tq, q, NULL, 2, sq);
        CHECK(mhc_attention(&tp, &tq, 2, 3, 3) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "3 heads do not divide the width C=4");
        CHECK_OK(mhc_tape_reset(&tp));
        CHECK(mhc_attention(&tp, &tq, 3, 3, 2) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected [B*T=9, 3C]");
        CHECK_OK(mhc_tape_reset(&tp));
        CHECK(mhc_attention(&tp, &tq, 0, 3, 2) == NULL && ctx.last == MHC_ERR_SIZE);
        CHECK_OK(mhc_tape_reset(&tp));
        mhc_tensor_wrap(&ctx, &tq, q, NULL, 2, sbad);
        CHECK(mhc_attention(&tp, &tq, 2, 3, 2) == NULL && ctx.last == MHC_ERR_SHAPE);
        CHECK_OK(mhc_tape_reset(&tp));
    }
    CHECK(mhc_view(&tp, &a, 1, s5) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "cannot view [2,3] (6 elements) with 5 elements");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_tensor_new(&tp, 0, s23, 0) == NULL && ctx.last == MHC_ERR_SIZE);
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK(mhc_dot_const(&tp, &a, NULL) == NULL && ctx.last == MHC_ERR_NULL);
    CHECK_OK(mhc_tape_reset(&tp));
    /* backward: a non-scalar loss, a loss without gradient, twice */
    o = mhc_gelu(&tp, &a);
    CHECK_RESULT(mhc_tape_backward(&tp, o), MHC_ERR_SHAPE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected one element");
    CHECK_OK(mhc_tape_reset(&tp));
    CHECK_RESULT(mhc_tape_backward(&tp, mhc_sum(&tp, &b)), MHC_ERR_STATE);   /* b has no grad */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "needs no gradient");
    CHECK_OK(mhc_tape_reset(&tp));
    o = mhc_sum(&tp, mhc_gelu(&tp, &a));
    CHECK_OK(mhc_tape_backward(&tp, o));
    CHECK_RESULT(mhc_tape_backward(&tp, o), MHC_ERR_STATE);
    CHECK(mhc_gelu(&tp, &a) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "already run backward");
    CHECK_OK(mhc_tape_reset(&tp));
    /* no-grad mode records nothing and gives outputs without gradient */
    mhc_tape_set_no_grad(&tp, 1);
    o = mhc_sum(&tp, mhc_gelu(&tp, &a));
    CHECK(o && o->grad == NULL && tp.nodes == 0);
    CHECK_RESULT(mhc_tape_backward(&tp, o), MHC_ERR_STATE);
    mhc_tape_set_no_grad(&tp, 0);
    CHECK_OK(mhc_tape_reset(&tp));
    /* gradcheck argument errors */
    {
        mhc_gradcheck_result gr;
        mhc_tensor *in1[1];
        in1[0] = &a;
        CHECK_RESULT(mhc_gradcheck(&tp, NULL, in1, 1, NULL, 1e-6, 1e-3, 1, &gr), MHC_ERR_NULL);
        CHECK_RESULT(mhc_gradcheck(&tp, TP(ops_loss), in1, 0, NULL, 1e-6, 1e-3, 1, &gr), MHC_ERR_SIZE);
        CHECK_RESULT(mhc_gradcheck(&tp, TP(ops_loss), in1, 1, NULL, 0, 1e-3, 1, &gr), MHC_ERR_VALUE);
        in1[0] = &b;   /* no grad */
        CHECK_RESULT(mhc_gradcheck(&tp, TP(ops_loss), in1, 1, NULL, 1e-6, 1e-3, 1, &gr), MHC_ERR_NULL);
    }
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
}

static void TP(test_tape_no_malloc)(void) {
    /* the same step twice after a reset: the arena does not grow */
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_real x[64], g[64];
    mhc_tensor t;
    int s[2] = {8, 8}, step;
    size_t growths = 0;
    test_current = "tape_no_malloc";
    mhc_ctx_init(&ctx);
    memset(x, 0, sizeof x); memset(g, 0, sizeof g);
    x[3] = 1;
    mhc_arena_init(&ctx, &ar, 256);
    mhc_tape_init(&ctx, &tp, &ar);
    mhc_tensor_wrap(&ctx, &t, x, g, 2, s);
    for (step = 0; step < 3; step++) {
        mhc_tensor *l = mhc_mean(&tp, mhc_softmax(&tp, mhc_rmsnorm(&tp, mhc_matmul_abt(&tp, &t, &t), NULL, 1e-5)));
        CHECK_OK(mhc_tape_backward(&tp, l));
        CHECK(tp.nodes == 4);
        if (step == 1) growths = ar.growths;
        if (step == 2) CHECK(ar.growths == growths);
        CHECK_OK(mhc_tape_reset(&tp));
    }
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
}

void TP(test_ops)(void);
void TP(test_ops)(void) {
    int i;
    TP(opcase) cases[20];
    int nc = 0;
    memset(cases, 0, sizeof cases);
#define OC_BEGIN(nm, b, nv, tol) (cases[nc].name = (nm), cases[nc].build = (b), cases[nc].naive = (nv), cases[nc].fwd_tol_f32 = (tol))
#define OC_IN(k, nd, s0, s1, s2, sc) (cases[nc].ndim[k] = (nd), cases[nc].shape[k][0] = (s0), cases[nc].shape[k][1] = (s1), \
    cases[nc].shape[k][2] = (s2), cases[nc].scale[k] = (sc), cases[nc].nin = (k) + 1)
    OC_BEGIN("matmul_ab", TP(bd_matmul_ab), TP(nv_matmul_ab), 2e-5); OC_IN(0, 2, 5, 7, 0, 1); OC_IN(1, 2, 7, 3, 0, 1); nc++;
    OC_BEGIN("matmul_abt", TP(bd_matmul_abt), TP(nv_matmul_abt), 2e-5); OC_IN(0, 3, 2, 3, 6, 1); OC_IN(1, 2, 4, 6, 0, 1); nc++;
    OC_BEGIN("add", TP(bd_add), TP(nv_add), 2e-5); OC_IN(0, 2, 3, 4, 0, 1); OC_IN(1, 2, 3, 4, 0, 1); nc++;
    OC_BEGIN("add_bias", TP(bd_add), TP(nv_add), 2e-5); OC_IN(0, 3, 2, 3, 4, 1); OC_IN(1, 1, 4, 0, 0, 1); nc++;
    OC_BEGIN("mul", TP(bd_mul), TP(nv_mul), 2e-5); OC_IN(0, 2, 3, 5, 0, 1); OC_IN(1, 2, 3, 5, 0, 1); nc++;
    OC_BEGIN("scale", TP(bd_scale), TP(nv_scale), 2e-5); OC_IN(0, 1, 9, 0, 0, 1); cases[nc].fparam = -2.5; nc++;
    OC_BEGIN("rmsnorm", TP(bd_rmsnorm), TP(nv_rmsnorm), 2e-5); OC_IN(0, 2, 4, 6, 0, 1); cases[nc].fparam = 1e-5; nc++;
    OC_BEGIN("rmsnorm_weight", TP(bd_rmsnorm), TP(nv_rmsnorm), 2e-5); OC_IN(0, 3, 2, 2, 5, 1); OC_IN(1, 1, 5, 0, 0, 1); cases[nc].fparam = 1e-6; nc++;
    for (i = 0; i < 4; i++) {
        static const char *names[4] = {"sigmoid", "tanh", "gelu", "silu"};
        OC_BEGIN(names[i], TP(bd_act), TP(nv_act), 2e-5); OC_IN(0, 2, 4, 5, 0, 2); cases[nc].iparam[0] = i; nc++;
    }
    OC_BEGIN("softmax", TP(bd_softmax), TP(nv_softmax), 2e-5); OC_IN(0, 2, 3, 7, 0, 2); nc++;
    OC_BEGIN("embedding", TP(bd_embedding), TP(nv_embedding), 2e-5); OC_IN(0, 2, 5, 4, 0, 1);
    cases[nc].iparam[0] = 6; { int ids[6] = {3, 0, 3, 4, 1, 3}; memcpy(cases[nc].ints, ids, sizeof ids); } nc++;
    OC_BEGIN("attention", TP(bd_attention), TP(nv_attention), 5e-5); OC_IN(0, 3, 2, 5, 24, 1);
    cases[nc].iparam[0] = 2; cases[nc].iparam[1] = 5; cases[nc].iparam[2] = 2; nc++;
    OC_BEGIN("attention_1head_T1", TP(bd_attention), TP(nv_attention), 5e-5); OC_IN(0, 2, 3, 9, 0, 1);
    cases[nc].iparam[0] = 3; cases[nc].iparam[1] = 1; cases[nc].iparam[2] = 1; nc++;
    OC_BEGIN("cross_entropy", TP(bd_xent), TP(nv_xent), 5e-5); OC_IN(0, 2, 6, 5, 0, 2);
    { int tg[6] = {0, 4, 2, 2, 1, 3}; memcpy(cases[nc].ints, tg, sizeof tg); } nc++;
    OC_BEGIN("view", TP(bd_view_then_sum), TP(nv_view_then_sum), 2e-5); OC_IN(0, 3, 2, 3, 2, 1); nc++;
#undef OC_BEGIN
#undef OC_IN
    for (i = 0; i < nc; i++) {
        TP(run_opcase)(&cases[i], 100 + (uint64_t)i);
        TP(run_opcase)(&cases[i], 200 + (uint64_t)i);
    }
    TP(test_kernel_matmuls)();
    TP(test_threads_identical)();
    TP(test_add_large)();
    TP(test_rmsnorm_large)();
    TP(test_op_errors)();
    TP(test_tape_no_malloc)();
}
