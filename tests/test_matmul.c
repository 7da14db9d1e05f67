/* tests/test_matmul.c - the blocked matmul kernels mhc_k_matmul_ab / _abt / _atb against the naive
 * double references mhc_ref_matmul_*: all three variants, overwrite and accumulate, shapes at and
 * around every block edge (1, micro-tile +- 1, K past the K block, N past the column block, M = 1
 * vectors, M K N = 300 500 200), non-finite inputs, and bit-identical results for 1, 2 and 3
 * threads (OpenMP builds).
 *
 * Tolerance: the error is measured relative to scale = sqrt(K) max|A| max|B| (+ max|C| when
 * accumulating), the size of a sum of K random-sign products. The kernels sum in mhc_real (fma,
 * in k order, per K block) where the reference sums in double and rounds once, so the expected
 * error is about eps sqrt(K) scale: float (eps 6e-8) stays below 1e-5 relative for K ~ 1000,
 * double below 1e-12. An indexing or packing mistake gives errors of order 1.
 *
 * The same file is compiled into several objects (see Makefile: tests/test_matmul_isa.c): in
 * test_all.c as group test_matmul (the kernel the run-time dispatch picks, checked to be the best
 * the CPU runs), and as groups test_matmul_nosimd (-DMHC_NO_SIMD: the portable kernel only, the
 * others refused), test_matmul_portable, test_matmul_avx2 and test_matmul_avx512, which force that
 * kernel with mhc_k_matmul_set_isa (with the build's own flags: the dispatch, not -m flags, picks
 * it) or say "skipped" when the CPU cannot run it. So every kernel the machine runs is tested,
 * thread-count bit identity included, in one runner. TEST_MATMUL_GROUP names the group;
 * TEST_MATMUL_ISA, when set, is the kernel the group forces. */

#ifndef TEST_MATMUL_GROUP
#define TEST_MATMUL_GROUP test_matmul
#endif
#ifdef MHC_DOUBLE
#define TMM_NAME2(g) g##_f64
#else
#define TMM_NAME2(g) g##_f32
#endif
#define TMM_NAME(g) TMM_NAME2(g)

#define TMM_TOL (sizeof(mhc_real) == 8 ? 1e-12 : 1e-5)

/* which: 0 = ab, 1 = abt, 2 = atb; fast != 0 runs the kernel under test, else the reference */
static void TP(tmm_run)(int which, int fast, mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K,
                        int N, int acc) {
    if (which == 0) (fast ? mhc_k_matmul_ab : mhc_ref_matmul_ab)(C, A, B, M, K, N, acc);
    else if (which == 1) (fast ? mhc_k_matmul_abt : mhc_ref_matmul_abt)(C, A, B, M, K, N, acc);
    else (fast ? mhc_k_matmul_atb : mhc_ref_matmul_atb)(C, A, B, M, K, N, acc);
}

static double TP(tmm_maxabs)(const mhc_real *x, size_t n) {
    double m = 0;
    size_t i;
    for (i = 0; i < n; i++) m = fabs((double)x[i]) > m ? fabs((double)x[i]) : m;
    return m;
}

/* One shape, all three variants, acc 0 and 1: the worst relative error against the reference. */
static void TP(tmm_shape)(mhc_rng *rng, int M, int K, int N) {
    const size_t na = (size_t)M * K, nb = (size_t)K * N, nc = (size_t)M * N;
    mhc_real *A = (mhc_real *)malloc(na * sizeof *A), *B = (mhc_real *)malloc(nb * sizeof *B);
    mhc_real *C1 = (mhc_real *)malloc(nc * sizeof *C1), *C2 = (mhc_real *)malloc(nc * sizeof *C2);
    int which, acc;
    if (!A || !B || !C1 || !C2) { CHECK_MSG(0, "out of memory"); free(A); free(B); free(C1); free(C2); return; }
    mhc_rng_fill_normal(rng, A, na, 0, 1);
    mhc_rng_fill_normal(rng, B, nb, 0, 1);
    for (which = 0; which < 3; which++)
        for (acc = 0; acc < 2; acc++) {
            double scale, e = 0;
            size_t i;
            if (acc) mhc_rng_fill_normal(rng, C1, nc, 0, 1);
            else for (i = 0; i < nc; i++) C1[i] = (mhc_real)NAN;   /* acc = 0 must not read C */
            memcpy(C2, C1, nc * sizeof *C1);
            scale = sqrt((double)K) * TP(tmm_maxabs)(A, na) * TP(tmm_maxabs)(B, nb) + (acc ? TP(tmm_maxabs)(C1, nc) : 0);
            TP(tmm_run)(which, 1, C1, A, B, M, K, N, acc);
            TP(tmm_run)(which, 0, C2, A, B, M, K, N, acc);
            for (i = 0; i < nc; i++) {
                double d = fabs((double)C1[i] - (double)C2[i]) / scale;
                if (!(d <= e)) e = d;          /* NaN propagates into e */
            }
            CHECK_MSG(e <= TMM_TOL, "%s %s M=%d K=%d N=%d acc=%d: relative error %.3g > %.3g",
                      mhc_k_matmul_isa(), which == 0 ? "ab" : which == 1 ? "abt" : "atb", M, K, N, acc, e, TMM_TOL);
        }
    free(A); free(B); free(C1); free(C2);
}

/* Each variant on one shape with nthreads threads (when OpenMP is on): its output bits. */
#if MHC__OMP
static void TP(tmm_threads)(int which, int nthreads, mhc_real *C, const mhc_real *A, const mhc_real *B, int M,
                            int K, int N) {
    omp_set_num_threads(nthreads);
    TP(tmm_run)(which, 1, C, A, B, M, K, N, 0);
    TP(tmm_run)(which, 1, C, A, B, M, K, N, 1);    /* accumulate once more: C = 2 A B, bitwise */
}
#endif

void TMM_NAME(TEST_MATMUL_GROUP)(void);
void TMM_NAME(TEST_MATMUL_GROUP)(void) {
    mhc_rng rng;
    mhc_rng_seed(&rng, 20240611);
    test_current = "matmul";

    TEST_BEGIN("matmul_isa");
    CHECK(!mhc_k_matmul_isa_runnable("sse9") && !mhc_k_matmul_set_isa("sse9") && !mhc_k_matmul_isa_runnable(NULL));
    CHECK(mhc_k_matmul_isa_runnable("portable"));
#if defined(MHC_NO_SIMD)
    /* MHC_NO_SIMD: the portable kernel only, whatever the CPU */
    CHECK(!mhc_k_matmul_isa_runnable("avx2+fma") && !mhc_k_matmul_isa_runnable("avx512"));
    CHECK(!mhc_k_matmul_set_isa("avx2") && !mhc_k_matmul_set_isa("avx512"));
    CHECK_STR_HAS(mhc_k_matmul_isa(), "portable");
#elif defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    /* run-time dispatch: the kernels the CPU runs, and no other */
    __builtin_cpu_init();
    CHECK(mhc_k_matmul_isa_runnable("avx2+fma") == (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
    CHECK(mhc_k_matmul_isa_runnable("avx2") == mhc_k_matmul_isa_runnable("avx2+fma"));
    CHECK(mhc_k_matmul_isa_runnable("avx512") ==
          (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")));
#endif
#if defined(TEST_MATMUL_ISA)
    /* an ISA group: force that kernel, or skip (loudly) when the CPU cannot run it */
    if (!mhc_k_matmul_isa_runnable(TEST_MATMUL_ISA)) {
        CHECK(!mhc_k_matmul_set_isa(TEST_MATMUL_ISA));
        printf("test_matmul (%s): this CPU or build cannot run the %s kernel, skipped\n", TEST_MATMUL_ISA,
               TEST_MATMUL_ISA);
        return;
    }
    CHECK(mhc_k_matmul_set_isa(TEST_MATMUL_ISA));
    CHECK_STR_HAS(mhc_k_matmul_isa(), TEST_MATMUL_ISA);
#else
    /* the automatic choice: the best kernel the CPU runs (unless MHC_ISA says otherwise) */
    if (!getenv("MHC_ISA")) {
        CHECK(mhc_k_matmul_set_isa(NULL));
        CHECK_STR_HAS(mhc_k_matmul_isa(), mhc_k_matmul_isa_runnable("avx512") ? "avx512"
                                          : mhc_k_matmul_isa_runnable("avx2+fma") ? "avx2+fma" : "portable");
    }
#endif

    TEST_BEGIN("gelu_fast");
    {   /* the elementwise GELU of the ISA in use (mhc.h: float builds run the AVX2 lanes under
           avx2+fma and avx512, else the portable loop; double builds keep libm's tanh) against the
           double evaluation x sigmoid(2u) with libm's exp: the bound mhc.h states, on every x in
           [-12, 12] at a step of 2^-12, a log grid out to +-1e30, and the specials */
        size_t n = 0, i, bad_f = 0, bad_b = 0, n_alloc = 98305 + 2 * 140 + 8;
        mhc_real *x = (mhc_real *)malloc(n_alloc * sizeof *x), *y = (mhc_real *)malloc(n_alloc * sizeof *y);
        mhc_real *dx = (mhc_real *)malloc(n_alloc * sizeof *dx), *dy = (mhc_real *)malloc(n_alloc * sizeof *dy);
        double v, worst_f = 0, worst_b = 0;
        CHECK(x && y && dx && dy);
        if (x && y && dx && dy) {
            for (i = 0; i <= 98304; i++) x[n++] = (mhc_real)(-12.0 + (double)i / 4096.0);
            for (v = 1e-30; v < 1e30 && n + 2 <= n_alloc - 8; v *= 1.7) { x[n++] = (mhc_real)v; x[n++] = (mhc_real)-v; }
            x[n++] = 0; x[n++] = (mhc_real)-0.0; x[n++] = (mhc_real)10.1; x[n++] = (mhc_real)-10.1;
            for (i = 0; i < n; i++) { dy[i] = (mhc_real)(0.5 + (double)(i % 7) / 8.0); dx[i] = (mhc_real)0.25; }
            mhc_k_act_forward(MHC_ACT_GELU, y, x, n);
            mhc_k_act_backward(MHC_ACT_GELU, dx, dy, x, n);
            for (i = 0; i < n; i++) {
                const double xv = (double)x[i], u2 = 1.5957691216057308 * (xv + 0.044715 * xv * xv * xv);
                const double s = 1.0 / (1.0 + exp(-u2)), r = xv * s;
                const double t2 = xv * 1.5957691216057308 * (1.0 + 3.0 * 0.044715 * xv * xv) * s * (1.0 - s);
                const double d = s + t2, got_d = ((double)dx[i] - 0.25) / (double)dy[i];
#ifdef MHC_DOUBLE
                /* libm's tanh form, as mhc_act_value / mhc_act_deriv (the same bits) */
                const double ef = fabs((double)y[i] - mhc_act_value(MHC_ACT_GELU, xv)), tf = 0;
                const double eb = fabs((double)dx[i] - (0.25 + mhc_act_deriv(MHC_ACT_GELU, xv) * (double)dy[i])), tb = 0;
                (void)r; (void)d; (void)got_d;
#else
                const double ef = fabs((double)y[i] - r), tf = MHC__GELU_REL * (1.0 + fabs(u2)) * fabs(r) + 1e-35;
                /* (dx = 0.25 + dy g: the float rounding of that sum is part of the bound) */
                const double eb = fabs(got_d - d), tb = MHC__GELU_REL * (1.0 + fabs(u2)) * (fabs(s) + fabs(t2)) +
                                  1e-35 + 1.2e-7 * (0.25 + fabs(d)) / (double)dy[i];
#endif
                if (!(ef <= tf)) { if (bad_f++ < 3) TEST_FAIL_AT("gelu(%.9g) = %.9g, reference %.9g", xv, (double)y[i], r); }
                if (!(eb <= tb)) { if (bad_b++ < 3) TEST_FAIL_AT("gelu'(%.9g) = %.9g, reference %.9g", xv, got_d, d); }
                if (tf > 0 && ef / tf > worst_f) worst_f = ef / tf;
                if (tb > 0 && eb / tb > worst_b) worst_b = eb / tb;
            }
            CHECK(bad_f == 0 && bad_b == 0);
            if (getenv("MHC_TEST_VERBOSE"))
                printf("gelu_fast (%s, %s): %zu values, worst err/bound forward %.3g, backward %.3g\n", TEST_PREC,
                       mhc_k_matmul_isa(), n, worst_f, worst_b);
            /* specials: NaN stays NaN both ways; +inf -> +inf; -inf -> NaN (x * 0, as the tanh form) */
            {
                mhc_real sx[4], sy[4], sdx[4] = {0, 0, 0, 0}, sdy[4] = {1, 1, 1, 1};
                sx[0] = (mhc_real)NAN; sx[1] = (mhc_real)INFINITY; sx[2] = (mhc_real)-INFINITY; sx[3] = (mhc_real)1e-40;
                mhc_k_act_forward(MHC_ACT_GELU, sy, sx, 4);
                mhc_k_act_backward(MHC_ACT_GELU, sdx, sdy, sx, 4);
                CHECK(isnan((double)sy[0]) && isnan((double)sdx[0]));
                CHECK(isinf((double)sy[1]) && sy[1] > 0);
                CHECK(isnan((double)sy[2]));
                CHECK(fabs((double)sy[3]) <= 1e-40 && fabs((double)sdx[3] - 0.5) < 1e-6);
            }
            /* every length from 1 to 40 at every offset up to 9 (the 8-lane body and its tail) gives
               each element the value the long call gave it, within the bound's float rounding */
            {
                int len, off, same = 1;
                for (len = 1; len <= 40; len++)
                    for (off = 0; off < 10; off++) {
                        mhc_real ys[40];
                        int k;
                        mhc_k_act_forward(MHC_ACT_GELU, ys, x + 40000 + off, (size_t)len);
                        for (k = 0; k < len; k++)
                            if (fabs((double)ys[k] - (double)y[40000 + off + k]) > 4e-7 * fabs((double)y[40000 + off + k]))
                                same = 0;
                    }
                CHECK(same);
            }
#if MHC__OMP
            /* 1 thread and 2 threads: the same bits */
            {
                mhc_real *y1 = (mhc_real *)malloc(n * sizeof *y1), *d1 = (mhc_real *)malloc(n * sizeof *d1);
                int nt = omp_get_max_threads();
                CHECK(y1 && d1);
                if (y1 && d1) {
                    for (i = 0; i < n; i++) d1[i] = (mhc_real)0.25;
                    omp_set_num_threads(1);
                    mhc_k_act_forward(MHC_ACT_GELU, y1, x, n);
                    mhc_k_act_backward(MHC_ACT_GELU, d1, dy, x, n);
                    omp_set_num_threads(nt);
                    CHECK(memcmp(y1, y, n * sizeof *y) == 0);
                    CHECK(memcmp(d1, dx, n * sizeof *dx) == 0);
                }
                free(y1); free(d1);
            }
#endif
        }
        free(x); free(y); free(dx); free(dy);
    }

    TEST_BEGIN("vector_clones");
    {   /* The loops cloned with target("avx2") (mhc.h, MHC__CLONES: dots, stream mixes, attention,
           AdamW) give the same bits as their plain copies: each kernel under this group's ISA
           against the same call with the portable ISA forced (memcmp); attention's forward also
           against a naive double reference (so the two copies cannot be equally wrong). */
        enum { B = 2, T = 37, C = 60, H = 3, HS = C / H, NP = 4, TP_ = 5, CP = 70, NA = 10007 };
        const char *isa = mhc_k_matmul_isa();
        const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, natt = (size_t)B * H * T * T;
        const size_t nx = (size_t)TP_ * NP * CP;
        mhc_real *buf = (mhc_real *)calloc(2 * (2 * nqkv + nout * 2 + natt) + 2 * (3 * nx) + 2 * 2 * (size_t)TP_ * NP * NP +
                                               nqkv + nout + (size_t)TP_ * NP * NP + (size_t)TP_ * NP + (size_t)TP_ * CP +
                                               (size_t)TP_ * NP + 2 * 3 * (size_t)NA + 2 * (size_t)NA + (size_t)TP_ * CP * 2,
                                           sizeof *buf);
        CHECK(buf != NULL);
        if (buf) {
            mhc_real *qkv = buf, *dout = qkv + nqkv, *out[2], *att[2], *dqkv[2], *p = dout + nout;
            mhc_real *x = p, *A = x + nx, *hp = A + (size_t)TP_ * NP * NP, *f = hp + (size_t)TP_ * NP, *go = f + (size_t)TP_ * CP;
            mhc_real *po[2], *pdx[2], *pdA[2], *pdh[2], *pdf[2], *prm[2], *pm[2], *pv[2], *grad;
            double worst = 0;
            int k, b, h, t, t2, i;
            size_t j;
            p = go + nx;
            for (k = 0; k < 2; k++) {
                out[k] = p; p += nout; att[k] = p; p += natt; dqkv[k] = p; p += nqkv;
                po[k] = p; p += nx; pdx[k] = p; p += nx; pdA[k] = p; p += (size_t)TP_ * NP * NP;
                pdh[k] = p; p += (size_t)TP_ * NP; pdf[k] = p; p += (size_t)TP_ * CP;
                prm[k] = p; p += NA; pm[k] = p; p += NA; pv[k] = p; p += NA;
            }
            grad = p;
            mhc_rng_fill_normal(&rng, qkv, nqkv, 0, 1);
            mhc_rng_fill_normal(&rng, dout, nout, 0, 1);
            mhc_rng_fill_normal(&rng, x, nx, 0, 1);
            mhc_rng_fill_uniform(&rng, A, (size_t)TP_ * NP * NP, 0, 1);
            mhc_rng_fill_uniform(&rng, hp, (size_t)TP_ * NP, 0, 2);
            mhc_rng_fill_normal(&rng, f, (size_t)TP_ * CP, 0, 1);
            mhc_rng_fill_normal(&rng, go, nx, 0, 1);
            mhc_rng_fill_normal(&rng, grad, NA, 0, 1);
            for (k = 0; k < 2; k++) {   /* k = 0: this group's ISA, k = 1: portable */
                CHECK(mhc_k_matmul_set_isa(k ? "portable" : isa));
                mhc_k_attention_forward(out[k], att[k], qkv, B, T, C, H);
                for (j = 0; j < nqkv; j++) dqkv[k][j] = (mhc_real)0.5;
                mhc_k_attention_backward(dqkv[k], dout, att[k], qkv, B, T, C, H);
                mhc_k_hc_post_forward(po[k], x, A, hp, f, TP_, NP, CP);
                for (j = 0; j < nx; j++) pdx[k][j] = (mhc_real)0.25;
                mhc_k_hc_post_backward(pdx[k], pdA[k], pdh[k], pdf[k], go, x, A, hp, f, TP_, NP, CP);
                for (j = 0; j < NA; j++) { prm[k][j] = (mhc_real)(0.001 * (double)j); pm[k][j] = 0; pv[k][j] = 0; }
                for (i = 1; i <= 3; i++) mhc_adamw_step(prm[k], grad, pm[k], pv[k], NA, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1.0, i);
            }
            CHECK(mhc_k_matmul_set_isa(isa));
            CHECK(memcmp(out[0], out[1], nout * sizeof(mhc_real)) == 0 && memcmp(att[0], att[1], natt * sizeof(mhc_real)) == 0);
            CHECK(memcmp(dqkv[0], dqkv[1], nqkv * sizeof(mhc_real)) == 0);
            CHECK(memcmp(po[0], po[1], nx * sizeof(mhc_real)) == 0 && memcmp(pdx[0], pdx[1], nx * sizeof(mhc_real)) == 0);
            CHECK(memcmp(pdA[0], pdA[1], (size_t)TP_ * NP * NP * sizeof(mhc_real)) == 0);
            CHECK(memcmp(pdh[0], pdh[1], (size_t)TP_ * NP * sizeof(mhc_real)) == 0 &&
                  memcmp(pdf[0], pdf[1], (size_t)TP_ * CP * sizeof(mhc_real)) == 0);
            CHECK(memcmp(prm[0], prm[1], NA * sizeof(mhc_real)) == 0 && memcmp(pv[0], pv[1], NA * sizeof(mhc_real)) == 0);
            for (b = 0; b < B; b++)   /* the forward against a naive double softmax attention */
                for (h = 0; h < H; h++)
                    for (t = 0; t < T; t++) {
                        double sc[T], mx = -1e300, s = 0;
                        for (t2 = 0; t2 <= t; t2++) {
                            double d = 0;
                            for (i = 0; i < HS; i++)
                                d += (double)qkv[((size_t)b * T + t) * 3 * C + h * HS + i] *
                                     (double)qkv[((size_t)b * T + t2) * 3 * C + C + h * HS + i];
                            sc[t2] = d / sqrt((double)HS);
                            if (sc[t2] > mx) mx = sc[t2];
                        }
                        for (t2 = 0; t2 <= t; t2++) { sc[t2] = exp(sc[t2] - mx); s += sc[t2]; }
                        for (i = 0; i < HS; i++) {
                            double o = 0, e;
                            for (t2 = 0; t2 <= t; t2++) o += sc[t2] / s * (double)qkv[((size_t)b * T + t2) * 3 * C + 2 * C + h * HS + i];
                            e = fabs(o - (double)out[0][((size_t)b * T + t) * C + h * HS + i]);
                            if (e > worst) worst = e;
                        }
                    }
            CHECK_MSG(worst < (sizeof(mhc_real) == 8 ? 1e-13 : 2e-6), "attention forward vs naive: %g", worst);
            free(buf);
        }
    }

    TEST_BEGIN("attention_flash");
    {   /* mhc_k_attention_flash_forward/backward (the tape's attention) under this group's ISA
           against a naive double causal softmax attention and its backward: one query block, an
           exact block, partial blocks, hs not a multiple of a vector; dqkv is accumulated into
           (starts at 0.5); thread counts give the same bits (1 thread vs the default). */
        static const int cases[][4] = { {1, 1, 8, 1}, {2, 37, 60, 3}, {1, 64, 32, 2}, {2, 65, 24, 1}, {1, 150, 40, 2},
                                        {1, 200, 192, 3} };
        size_t ci;
        for (ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
            const int B = cases[ci][0], T = cases[ci][1], C = cases[ci][2], H = cases[ci][3], HS = C / H;
            const size_t nqkv = (size_t)B * T * 3 * C, nout = (size_t)B * T * C, nst = (size_t)B * H * T * 2;
            int nslots = 1;
            mhc_real *qkv = (mhc_real *)malloc(nqkv * sizeof *qkv), *dout = (mhc_real *)malloc(nout * sizeof *dout);
            mhc_real *out = (mhc_real *)malloc(nout * sizeof *out), *out1 = (mhc_real *)malloc(nout * sizeof *out1);
            mhc_real *dq = (mhc_real *)malloc(nqkv * sizeof *dq), *dq1 = (mhc_real *)malloc(nqkv * sizeof *dq1);
            mhc_real *st = (mhc_real *)malloc(nst * sizeof *st), *work;
            double *ro = (double *)calloc(nout, sizeof *ro), *rd = (double *)calloc(nqkv, sizeof *rd);
            double *pr = (double *)malloc((size_t)T * sizeof *pr), *dp = (double *)malloc((size_t)T * sizeof *dp);
            double wo = 0, wd = 0, mo = 0, md = 0;
#if MHC__OMP
            nslots = omp_get_max_threads();
#endif
            work = (mhc_real *)malloc((size_t)nslots * mhc_k_attention_work(T) * sizeof *work);
            CHECK(qkv && dout && out && out1 && dq && dq1 && st && work && ro && rd && pr && dp);
            if (qkv && dout && out && out1 && dq && dq1 && st && work && ro && rd && pr && dp) {
                const double sc = 1.0 / sqrt((double)HS);
                int b, h, t, t2, i, nt = 1;
                size_t j;
                mhc_rng_fill_normal(&rng, qkv, nqkv, 0, 1.5);
                mhc_rng_fill_normal(&rng, dout, nout, 0, 1);
                for (j = 0; j < nqkv; j++) { dq[j] = (mhc_real)0.5; rd[j] = 0.5; }
                mhc_k_attention_flash_forward(out, st, qkv, B, T, C, H, work, nslots);
                mhc_k_attention_flash_backward(dq, dout, out, st, qkv, B, T, C, H, work, nslots);
                for (b = 0; b < B; b++)
                    for (h = 0; h < H; h++)
                        for (t = 0; t < T; t++) {
                            const mhc_real *q = qkv + ((size_t)b * T + t) * 3 * C + h * HS;
                            const mhc_real *g = dout + ((size_t)b * T + t) * C + h * HS;
                            double mx = -1e300, s = 0, D = 0;
                            for (t2 = 0; t2 <= t; t2++) {
                                const mhc_real *k = qkv + ((size_t)b * T + t2) * 3 * C + C + h * HS;
                                double d = 0;
                                for (i = 0; i < HS; i++) d += (double)q[i] * (double)k[i];
                                pr[t2] = d * sc;
                                if (pr[t2] > mx) mx = pr[t2];
                            }
                            for (t2 = 0; t2 <= t; t2++) { pr[t2] = exp(pr[t2] - mx); s += pr[t2]; }
                            for (t2 = 0; t2 <= t; t2++) {
                                const mhc_real *v = qkv + ((size_t)b * T + t2) * 3 * C + 2 * C + h * HS;
                                double d = 0;
                                pr[t2] /= s;
                                for (i = 0; i < HS; i++) {
                                    ro[((size_t)b * T + t) * C + h * HS + i] += pr[t2] * (double)v[i];
                                    d += (double)g[i] * (double)v[i];
                                }
                                dp[t2] = d;
                                D += pr[t2] * d;
                            }
                            for (t2 = 0; t2 <= t; t2++) {
                                const size_t r2 = ((size_t)b * T + t2) * 3 * C + h * HS, r = ((size_t)b * T + t) * 3 * C + h * HS;
                                const double ds = pr[t2] * (dp[t2] - D) * sc;
                                for (i = 0; i < HS; i++) {
                                    rd[r2 + 2 * C + i] += pr[t2] * (double)g[i];
                                    rd[r + i] += ds * (double)qkv[r2 + C + i];
                                    rd[r2 + C + i] += ds * (double)q[i];
                                }
                            }
                        }
                for (j = 0; j < nout; j++) {
                    if (fabs(ro[j]) > mo) mo = fabs(ro[j]);
                    if (fabs(ro[j] - (double)out[j]) > wo || out[j] != out[j]) wo = out[j] != out[j] ? 1e300 : fabs(ro[j] - (double)out[j]);
                }
                for (j = 0; j < nqkv; j++) {
                    if (fabs(rd[j]) > md) md = fabs(rd[j]);
                    if (fabs(rd[j] - (double)dq[j]) > wd || dq[j] != dq[j]) wd = dq[j] != dq[j] ? 1e300 : fabs(rd[j] - (double)dq[j]);
                }
                CHECK_MSG(wo <= (sizeof(mhc_real) == 8 ? 1e-13 : 2e-6) * mo,
                          "flash forward B=%d T=%d C=%d H=%d (%s): worst %g of %g", B, T, C, H, mhc_k_matmul_isa(), wo, mo);
                CHECK_MSG(wd <= (sizeof(mhc_real) == 8 ? 1e-13 : 1e-5) * md,
                          "flash backward B=%d T=%d C=%d H=%d (%s): worst %g of %g", B, T, C, H, mhc_k_matmul_isa(), wd, md);
                if (ci == 4) printf("  [%s %s] flash attention T=%d vs naive double: forward %.3g, backward %.3g (of the largest)\n",
                                    sizeof(mhc_real) == 8 ? "f64" : "f32", mhc_k_matmul_isa(), T, wo / mo, wd / md);
#if MHC__OMP
                nt = omp_get_max_threads();
                omp_set_num_threads(1);
#endif
                for (j = 0; j < nqkv; j++) dq1[j] = (mhc_real)0.5;
                mhc_k_attention_flash_forward(out1, st, qkv, B, T, C, H, work, nslots);
                mhc_k_attention_flash_backward(dq1, dout, out1, st, qkv, B, T, C, H, work, nslots);
#if MHC__OMP
                omp_set_num_threads(nt);
#endif
                (void)nt;
                CHECK(memcmp(out, out1, nout * sizeof *out) == 0 && memcmp(dq, dq1, nqkv * sizeof *dq) == 0);
            }
            free(qkv); free(dout); free(out); free(out1); free(dq); free(dq1); free(st); free(work);
            free(ro); free(rd); free(pr); free(dp);
        }
    }

    TEST_BEGIN("matmul_shapes");
    {
        /* M, K, N: ones, micro-tile edges (MR 6/8, NR 16/32), K past the K block (256 float, 128
           double), N past the column block (224), M = 1 and N = 1 vectors, a big-ish one */
        static const int shapes[][3] = {
            {1, 1, 1}, {1, 7, 1}, {1, 1, 9}, {5, 1, 3}, {1, 300, 1}, {1, 513, 37}, {37, 513, 1}, {2, 3, 70},
            {7, 13, 5}, {6, 16, 16}, {8, 16, 32}, {9, 17, 33}, {5, 15, 31}, {16, 64, 64}, {25, 129, 47},
            {23, 300, 50}, {64, 600, 70}, {70, 40, 230}, {130, 70, 500}, {60, 130, 400}
        };
        size_t s;
        for (s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            TP(tmm_shape)(&rng, shapes[s][0], shapes[s][1], shapes[s][2]);
#ifndef TEST_MATMUL_ISA
        TP(tmm_shape)(&rng, 300, 500, 200);   /* the big one in the main group only (valgrind time) */
#endif
    }

    TEST_BEGIN("matmul_k0");
    {   /* K = 0: an empty sum; overwrite gives zeros, accumulate leaves C alone */
        mhc_real A[1] = {1}, B[1] = {1}, C[6] = {1, 2, 3, 4, 5, 6};
        mhc_k_matmul_abt(C, A, B, 2, 0, 3, 1);
        CHECK(C[0] == 1 && C[5] == 6);
        mhc_k_matmul_ab(C, A, B, 2, 0, 3, 0);
        CHECK(C[0] == 0 && C[5] == 0);
    }

    TEST_BEGIN("matmul_nonfinite");
    {   /* an inf in row 0 of A spoils row 0 of C only (zero padding must not leak it elsewhere) */
        enum { M = 9, K = 20, N = 35 };
        mhc_real A[M * K], B[K * N], C1[M * N], C2[M * N];
        int which, i, same;
        mhc_rng_fill_normal(&rng, A, M * K, 0, 1);
        mhc_rng_fill_normal(&rng, B, K * N, 0, 1);
        for (which = 0; which < 3; which++) {
            same = 1;
            A[0] = (mhc_real)INFINITY;         /* (row 0, k 0) for ab/abt; (k 0, row 0) for atb */
            TP(tmm_run)(which, 1, C1, A, B, M, K, N, 0);
            TP(tmm_run)(which, 0, C2, A, B, M, K, N, 0);
            for (i = 0; i < M * N; i++) {
                if (i < N) same &= !isfinite(C1[i]) && (isnan(C1[i]) == isnan(C2[i])) && (isnan(C1[i]) || C1[i] == C2[i]);
                else same &= isfinite(C1[i]) && fabs((double)C1[i] - (double)C2[i]) <= 1e-4;
            }
            CHECK_MSG(same, "%s: non-finite values in the wrong place", which == 0 ? "ab" : which == 1 ? "abt" : "atb");
        }
    }

#if MHC__OMP
    TEST_BEGIN("matmul_threads");
    {   /* 1, 2 and 3 threads (different tilings: column blocks, or row bands when N is narrow):
           the same bits, for every variant */
        enum { M = 301, K = 300, N = 250 };
        mhc_real *A = (mhc_real *)malloc(sizeof(mhc_real) * M * K), *B = (mhc_real *)malloc(sizeof(mhc_real) * K * N);
        mhc_real *C1 = (mhc_real *)malloc(sizeof(mhc_real) * M * N), *C2 = (mhc_real *)malloc(sizeof(mhc_real) * M * N);
        int old = omp_get_max_threads(), which, nt, n;
        if (A && B && C1 && C2) {
            mhc_rng_fill_normal(&rng, A, (size_t)M * K, 0, 1);
            mhc_rng_fill_normal(&rng, B, (size_t)K * N, 0, 1);
            for (n = N; n >= 20; n -= N - 20)           /* N = 250, then N = 20 */
                for (which = 0; which < 3; which++) {
                    TP(tmm_threads)(which, 1, C1, A, B, M, K, n);
                    for (nt = 2; nt <= 3; nt++) {
                        TP(tmm_threads)(which, nt, C2, A, B, M, K, n);
                        CHECK_MSG(memcmp(C1, C2, sizeof(mhc_real) * M * n) == 0, "%s N=%d: %d threads differ from 1",
                                  which == 0 ? "ab" : which == 1 ? "abt" : "atb", n, nt);
                    }
                }
        } else CHECK_MSG(0, "out of memory");
        omp_set_num_threads(old);
        free(A); free(B); free(C1); free(C2);
    }
#endif
    CHECK(mhc_k_matmul_set_isa(NULL));   /* back to the automatic choice for the groups after this one */
}
