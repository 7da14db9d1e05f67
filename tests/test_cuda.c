/* tests/test_cuda.c - build/test_cuda (`make cuda`): the CUDA translation unit (mhc_cuda.cu)
 * against the CPU implementation in mhc.h.
 *
 * 1. Host-side checks that need no GPU: the skip path (mhc_cuda_available, mhc_cuda_init's
 *    "no CUDA device"), an uninitialised session, and the argument checks of the C API (run on
 *    a session marked ready by hand: every one of these calls is refused before any CUDA call).
 * 2. With a CUDA device: every kernel on random inputs against its CPU twin, tolerances per
 *    kernel (the device sums in double like the CPU, in a different order; cuBLAS sums in float).
 * 3. With a CUDA device: a few GPT training steps on the device (gpt/gpt_cuda.h) against
 *    the same steps on the CPU (gpt/gpt.h): the losses must agree.
 * Without a device it prints "no CUDA device: skipped ..." and exits 0 when part 1 passed. */
#define MHC_CUDA
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "test.h"
#include "../gpt/gpt.h"
#include "../gpt/gpt_cuda.h"

#include <stdlib.h>

int test_passed = 0, test_failed = 0;
const char *test_current = "";

/* ---------------- part 1: host-side ---------------- */

static void tc_host_checks(void) {
    mhc_ctx ctx;
    mhc_cuda cu, fake;
    mhc_hc_spec s;
    mhc_hc_config hcfg;
    float dummy[64];
    void *dp = NULL;
    int ndev = mhc_cuda_available();
    TEST_BEGIN("cuda_host");
    mhc_ctx_init(&ctx);
    CHECK(ndev >= 0);
    if (ndev == 0) {
        CHECK_RESULT(mhc_cuda_init(&ctx, &cu, 0), MHC_ERR_STATE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "no CUDA device");
        CHECK(cu.ready == 0);
    } else {
        CHECK_RESULT(mhc_cuda_init(&ctx, &cu, ndev), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected 0..");
    }
    CHECK_RESULT(mhc_cuda_init(&ctx, NULL, 0), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "cu is NULL");
    mhc_cuda_free(NULL);

    /* an uninitialised (zeroed) session is refused by every entry point */
    memset(&cu, 0, sizeof cu);
    cu.ctx = &ctx;
    CHECK_RESULT(mhc_cuda_alloc(&cu, &dp, 16), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "not initialised");
    CHECK_RESULT(mhc_cuda_gelu_forward(&cu, dummy, dummy, 4), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_cuda_gelu_forward");
    CHECK_RESULT(mhc_cuda_sync(&cu), MHC_ERR_STATE);
    CHECK_RESULT(mhc_cuda_gelu_forward(NULL, dummy, dummy, 4), MHC_ERR_NULL);

    /* argument checks, on a session marked ready by hand (refused before any CUDA call) */
    memset(&fake, 0, sizeof fake);
    fake.ctx = &ctx;
    fake.ready = 1;
    CHECK_RESULT(mhc_cuda_alloc(&fake, NULL, 16), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "dptr is NULL");
    CHECK_RESULT(mhc_cuda_alloc(&fake, &dp, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "0 bytes");
    CHECK_RESULT(mhc_cuda_upload(&fake, NULL, dummy, 4), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "dst_device is NULL");
    CHECK_RESULT(mhc_cuda_matmul_abt(&fake, dummy, dummy, dummy, 0, 4, 4, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "M is 0");
    CHECK_RESULT(mhc_cuda_matmul_ab(&fake, dummy, NULL, dummy, 2, 4, 4, 0), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "A is NULL");
    CHECK_RESULT(mhc_cuda_rmsnorm_forward(&fake, dummy, dummy, dummy, NULL, 2, 4, -1.0), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "eps is -1");
    CHECK_RESULT(mhc_cuda_rmsnorm_backward(&fake, dummy, NULL, dummy, dummy, NULL, NULL, 2, 4), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "rstd is NULL");
    CHECK_RESULT(mhc_cuda_attention_forward(&fake, dummy, dummy, dummy, 1, 4, 6, 4), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "4 heads do not divide C = 6");
    CHECK_RESULT(mhc_cuda_crossentropy_forward(&fake, dummy, dummy, NULL, 2, 4), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "targets is NULL");
    CHECK_RESULT(mhc_cuda_gelu_backward(&fake, dummy, dummy, dummy, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "count is 0");
    CHECK_RESULT(mhc_cuda_adamw_step(&fake, dummy, dummy, dummy, dummy, 4, 1e-3, 1.0, 0.95, 1e-8, 0.1, 1.0, 1),
                 MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "beta1 = 1");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(&fake, MHC_PROJ_SOFTMAX, 9, 20, 1e-6, dummy, dummy, 4), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n is 9, expected 1..8");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(&fake, MHC_PROJ_PRESET, 4, 20, 1e-6, dummy, dummy, 4), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "projection 0");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(&fake, MHC_PROJ_EXP, 4, 0, 0.0, dummy, dummy, 4), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "iters is 0");
    CHECK_RESULT(mhc_cuda_sinkhorn_backward(&fake, MHC_PROJ_EXP, 4, 20, 0.0, dummy, dummy, dummy, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "T is 0");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(&fake, MHC_PROJ_KRON, 4, 20, 0.0, dummy, dummy, 4), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "projection kron needs its factor list: use mhc_cuda_kron_forward");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(&fake, MHC_PROJ_ORTHO, 4, 0, 0.0, dummy, dummy, 4), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "iters is 0 (ns_iters of ortho)");
    {
        int f[3] = {2, 2, 3};
        CHECK_RESULT(mhc_cuda_kron_forward(&fake, 3, f, dummy, dummy, 4), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors: the product exceeds the device's n <= 8");
        CHECK_RESULT(mhc_cuda_kron_forward(&fake, 0, f, dummy, dummy, 4), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors has 0 factors");
        f[0] = 9;
        CHECK_RESULT(mhc_cuda_kron_backward(&fake, 1, f, dummy, dummy, dummy, 4), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors[0] = 9 is out of range");
        CHECK_RESULT(mhc_cuda_kron_backward(&fake, 1, NULL, dummy, dummy, dummy, 4), MHC_ERR_NULL);
        CHECK_RESULT(mhc_cuda_kron_forward(&fake, 1, f, dummy, dummy, 0), MHC_ERR_SIZE);
    }
    CHECK_RESULT(mhc_cuda_hc_post_forward(&fake, dummy, dummy, dummy, NULL, dummy, 2, 4, 8), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "h_post is NULL");
    CHECK_RESULT(mhc_cuda_hc_expand_forward(&fake, dummy, dummy, 2, 0, 8), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n is 0");
    /* the pre step: spec checks */
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, NULL, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4),
                 MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec is NULL");
    memset(&hcfg, 0, sizeof hcfg);
    hcfg.variant = MHC_VARIANT_HC;
    CHECK_OK(mhc_hc_resolve(&ctx, &hcfg, 4, &s));
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4),
                 MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant hc is not supported on the device");
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 4, &s));
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 0, 4),
                 MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "T = 0, C = 4");
    CHECK_RESULT(mhc_cuda_hc_pre_backward(&fake, &s, dummy, dummy, dummy, dummy, NULL, dummy, NULL, NULL, NULL,
                                          dummy, NULL, dummy, dummy, NULL, 2, 4), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "fn is NULL");
    s.m = 5;
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4),
                 MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.m = 5");
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 4, &s));
    s.pre_eps = -1.0;
    CHECK_RESULT(mhc_cuda_hc_head_forward(&fake, &s, dummy, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "finite and >= 0");
    CHECK_RESULT(mhc_cuda_hc_head_backward(&fake, &s, dummy, NULL, NULL, NULL, NULL, dummy, NULL, NULL, dummy, dummy,
                                           dummy, NULL, 2, 4), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "x is NULL");
    /* the convention knobs: norm_scope = stream is refused on the device, naming the knob */
    memset(&hcfg, 0, sizeof hcfg);
    hcfg.preset = MHC_PRESET_LUCIDRAINS;
    CHECK_OK(mhc_hc_resolve(&ctx, &hcfg, 4, &s));
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4),
                 MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "norm_scope = stream");
    CHECK_RESULT(mhc_cuda_hc_head_backward(&fake, &s, dummy, NULL, NULL, NULL, NULL, dummy, NULL, dummy, dummy, dummy,
                                           dummy, NULL, 2, 4), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "norm_scope = stream");
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 4, &s));
    s.sinkhorn_order = (mhc_sinkhorn_order)MHC_SK_ORDER_COUNT; /* in the enum's value range (C++ UB otherwise), past its last name */
    CHECK_RESULT(mhc_cuda_hc_pre_forward(&fake, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 2, 4),
                 MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "sinkhorn_order");
    CHECK_RESULT(mhc_cuda_hc_proj_forward(&fake, &s, dummy, dummy, 2), MHC_ERR_VALUE);
    CHECK_RESULT(mhc_cuda_hc_proj_forward(&fake, NULL, dummy, dummy, 2), MHC_ERR_NULL);
    /* the model-level API */
    CHECK_RESULT(gpt_cuda_create(&fake, NULL, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "gpt_cuda_create: NULL");
}

/* ---------------- part 2: kernels against the CPU ---------------- */

static mhc_cuda *tc_cu;
static mhc_rng tc_rng;

static float *tc_rand(size_t count, double lo, double hi) {
    float *h = (float *)malloc(count * sizeof(float));
    mhc_rng_fill_uniform(&tc_rng, h, count, lo, hi);
    return h;
}
static float *tc_dev(const float *h, size_t count) {
    void *d = NULL;
    if (mhc_cuda_alloc(tc_cu, &d, count * sizeof(float)) != MHC_OK) return NULL;
    if (h) mhc_cuda_upload(tc_cu, d, h, count * sizeof(float));
    return (float *)d;
}
static int *tc_dev_int(const int *h, size_t count) {
    void *d = NULL;
    if (mhc_cuda_alloc(tc_cu, &d, count * sizeof(int)) != MHC_OK) return NULL;
    mhc_cuda_upload(tc_cu, d, h, count * sizeof(int));
    return (int *)d;
}
/* max over i of |dev - cpu| / (1 + |cpu|), after downloading dev */
static double tc_err(const float *dev, const float *cpu, size_t count) {
    float *h = (float *)malloc(count * sizeof(float));
    double e = 0.0;
    size_t i;
    if (mhc_cuda_sync(tc_cu) != MHC_OK) { free(h); return HUGE_VAL; }
    mhc_cuda_download(tc_cu, h, dev, count * sizeof(float));
    for (i = 0; i < count; i++) {
        double d = fabs((double)h[i] - (double)cpu[i]) / (1.0 + fabs((double)cpu[i]));
        if (!(d <= e)) e = d;   /* NaN propagates */
    }
    free(h);
    return e;
}
#define TC_CLOSE(what, dev, cpu, count, tol) do { double e_ = tc_err((dev), (cpu), (count)); \
    CHECK_MSG(e_ <= (tol), "%s: max rel error %.3g > %.3g", (what), e_, (double)(tol)); } while (0)

static void tc_matmul(void) {
    const int M = 37, K = 53, N = 29;
    float *A = tc_rand((size_t)M * K, -1, 1), *B = tc_rand((size_t)K * N, -1, 1), *C = tc_rand((size_t)M * N, -1, 1);
    float *dA = tc_dev(A, (size_t)M * K), *dB = tc_dev(B, (size_t)K * N), *dC = tc_dev(C, (size_t)M * N);
    TEST_BEGIN("cuda_matmul");
    /* cuBLAS sums in float: tolerance 1e-5 relative for K = 53 */
    mhc_k_matmul_ab(C, A, B, M, K, N, 1);
    CHECK_OK(mhc_cuda_matmul_ab(tc_cu, dC, dA, dB, M, K, N, 1));
    TC_CLOSE("matmul_ab acc", dC, C, (size_t)M * N, 1e-5);
    mhc_k_matmul_abt(C, A, B, M, K, N, 0);   /* B read as [N,K] */
    CHECK_OK(mhc_cuda_matmul_abt(tc_cu, dC, dA, dB, M, K, N, 0));
    TC_CLOSE("matmul_abt", dC, C, (size_t)M * N, 1e-5);
    mhc_k_matmul_atb(C, A, B, M, K, N, 0);   /* A read as [K,M] */
    CHECK_OK(mhc_cuda_matmul_atb(tc_cu, dC, dA, dB, M, K, N, 0));
    TC_CLOSE("matmul_atb", dC, C, (size_t)M * N, 1e-5);
    mhc_cuda_release(tc_cu, dA); mhc_cuda_release(tc_cu, dB); mhc_cuda_release(tc_cu, dC);
    free(A); free(B); free(C);
}

static void tc_elementwise(void) {
    const int N = 19, D = 300, V = 257, B = 2, T = 7, C = 24, H = 3;
    size_t ND = (size_t)N * D, i;
    float *x = tc_rand(ND, -3, 3), *w = tc_rand((size_t)D, 0.5, 1.5), *dy = tc_rand(ND, -1, 1), *y = tc_rand(ND, 0, 0);
    float *rs = tc_rand((size_t)N, 0, 0), *dx = tc_rand(ND, -1, 1), *dw = tc_rand((size_t)D, -1, 1);
    float *dX = tc_dev(x, ND), *dW = tc_dev(w, D), *dDY = tc_dev(dy, ND), *dY = tc_dev(NULL, ND);
    float *dRS = tc_dev(NULL, N), *dDX = tc_dev(dx, ND), *dDW = tc_dev(dw, D);
    TEST_BEGIN("cuda_rmsnorm_gelu");
    /* RMSNorm: sums in double on both sides, float outputs: 2e-6 relative */
    mhc_k_rmsnorm_forward(y, rs, x, w, N, D, 1e-5);
    CHECK_OK(mhc_cuda_rmsnorm_forward(tc_cu, dY, dRS, dX, dW, N, D, 1e-5));
    TC_CLOSE("rmsnorm y", dY, y, ND, 2e-6);
    TC_CLOSE("rmsnorm rstd", dRS, rs, (size_t)N, 2e-6);
    mhc_k_rmsnorm_backward(dx, dw, dy, x, w, rs, N, D);
    CHECK_OK(mhc_cuda_rmsnorm_backward(tc_cu, dDX, dDW, dDY, dX, dW, dRS, N, D));
    TC_CLOSE("rmsnorm dx", dDX, dx, ND, 1e-5);
    TC_CLOSE("rmsnorm dw", dDW, dw, (size_t)D, 1e-5);
    /* GELU: elementwise in double: 1e-6 */
    mhc_k_act_forward(MHC_ACT_GELU, y, x, ND);
    CHECK_OK(mhc_cuda_gelu_forward(tc_cu, dY, dX, ND));
    TC_CLOSE("gelu", dY, y, ND, 1e-6);
    mhc_k_act_backward(MHC_ACT_GELU, dx, dy, x, ND);
    CHECK_OK(mhc_cuda_gelu_backward(tc_cu, dDX, dDY, dX, ND));
    TC_CLOSE("gelu backward", dDX, dx, ND, 1e-6);
    mhc_cuda_release(tc_cu, dX); mhc_cuda_release(tc_cu, dW); mhc_cuda_release(tc_cu, dDY); mhc_cuda_release(tc_cu, dY);
    mhc_cuda_release(tc_cu, dRS); mhc_cuda_release(tc_cu, dDX); mhc_cuda_release(tc_cu, dDW);
    free(x); free(w); free(dy); free(y); free(rs); free(dx); free(dw);

    TEST_BEGIN("cuda_xent");
    {
        size_t NV = (size_t)N * V;
        float *lg = tc_rand(NV, -4, 4), *ls = tc_rand((size_t)N, 0, 0), *dl = tc_rand((size_t)N, 0.1, 1);
        float *dlg = tc_rand(NV, -1, 1);
        int *tg = (int *)malloc((size_t)N * sizeof(int)), *dTG;
        float *dLG, *dLS, *dDL, *dDLG;
        for (i = 0; i < (size_t)N; i++) tg[i] = (int)mhc_rng_below(&tc_rng, (uint32_t)V);
        dLG = tc_dev(lg, NV); dLS = tc_dev(NULL, N); dDL = tc_dev(dl, N); dDLG = tc_dev(dlg, NV); dTG = tc_dev_int(tg, N);
        /* logsumexp in double: 1e-6 */
        mhc_k_crossentropy_forward(ls, lg, tg, N, V);
        CHECK_OK(mhc_cuda_crossentropy_forward(tc_cu, dLS, dLG, dTG, N, V));
        TC_CLOSE("xent loss", dLS, ls, (size_t)N, 1e-6);
        mhc_k_crossentropy_backward(dlg, dl, lg, tg, N, V);
        CHECK_OK(mhc_cuda_crossentropy_backward(tc_cu, dDLG, dDL, dLG, dTG, N, V));
        TC_CLOSE("xent dlogits", dDLG, dlg, NV, 1e-6);
        mhc_cuda_release(tc_cu, dLG); mhc_cuda_release(tc_cu, dLS); mhc_cuda_release(tc_cu, dDL);
        mhc_cuda_release(tc_cu, dDLG); mhc_cuda_release(tc_cu, dTG);
        free(lg); free(ls); free(dl); free(dlg); free(tg);
    }

    TEST_BEGIN("cuda_attention");
    {
        size_t nq = (size_t)B * T * 3 * C, no = (size_t)B * T * C, na = (size_t)B * H * T * T;
        float *qkv = tc_rand(nq, -1, 1), *out = tc_rand(no, 0, 0), *att = tc_rand(na, 0, 0);
        float *dout = tc_rand(no, -1, 1), *dqkv = tc_rand(nq, -1, 1);
        float *dQ = tc_dev(qkv, nq), *dO = tc_dev(NULL, no), *dA = tc_dev(NULL, na), *dG = tc_dev(dout, no);
        float *dDQ = tc_dev(dqkv, nq);
        /* dots in double, weighted sums of float probabilities: 2e-6 forward, 1e-5 backward */
        mhc_k_attention_forward(out, att, qkv, B, T, C, H);
        CHECK_OK(mhc_cuda_attention_forward(tc_cu, dO, dA, dQ, B, T, C, H));
        TC_CLOSE("attention out", dO, out, no, 2e-6);
        TC_CLOSE("attention att", dA, att, na, 2e-6);
        mhc_k_attention_backward(dqkv, dout, att, qkv, B, T, C, H);
        CHECK_OK(mhc_cuda_attention_backward(tc_cu, dDQ, dG, dA, dQ, B, T, C, H));
        TC_CLOSE("attention dqkv", dDQ, dqkv, nq, 1e-5);
        mhc_cuda_release(tc_cu, dQ); mhc_cuda_release(tc_cu, dO); mhc_cuda_release(tc_cu, dA);
        mhc_cuda_release(tc_cu, dG); mhc_cuda_release(tc_cu, dDQ);
        free(qkv); free(out); free(att); free(dout); free(dqkv);
    }

    TEST_BEGIN("cuda_adamw");
    {
        size_t n = 1000;
        float *p = tc_rand(n, -1, 1), *g = tc_rand(n, -1, 1), *m = tc_rand(n, -0.1, 0.1), *v = tc_rand(n, 0, 0.01);
        float *dP = tc_dev(p, n), *dG = tc_dev(g, n), *dM = tc_dev(m, n), *dV = tc_dev(v, n);
        double ss = 0.0, ssd = -1.0;
        /* the same double arithmetic per element: 1e-6 (rounding of pow/sqrt only) */
        mhc_adamw_step(p, g, m, v, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5, 3);
        CHECK_OK(mhc_cuda_adamw_step(tc_cu, dP, dG, dM, dV, n, 1e-2, 0.9, 0.95, 1e-8, 0.1, 0.5, 3));
        TC_CLOSE("adamw param", dP, p, n, 1e-6);
        TC_CLOSE("adamw m", dM, m, n, 1e-6);
        TC_CLOSE("adamw v", dV, v, n, 1e-6);
        for (i = 0; i < n; i++) ss += (double)g[i] * (double)g[i];
        CHECK_OK(mhc_cuda_sumsq(tc_cu, &ssd, dG, n));
        CHECK_NEAR(ssd, ss, 1e-9 * ss);
        mhc_cuda_release(tc_cu, dP); mhc_cuda_release(tc_cu, dG); mhc_cuda_release(tc_cu, dM); mhc_cuda_release(tc_cu, dV);
        free(p); free(g); free(m); free(v);
    }
}

static void tc_sinkhorn(void) {
    static const mhc_projection projs[4] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG, MHC_PROJ_PERM};
    const int T = 33;
    int q, n;
    TEST_BEGIN("cuda_sinkhorn");
    for (q = 0; q < 4; q++)
        for (n = 1; n <= 4; n++) {
            mhc_ctx ctx;
            int nres = projs[q] == MHC_PROJ_PERM ? (int)mhc_perm_count(n) : n * n, iters = 20;
            double eps = projs[q] == MHC_PROJ_SOFTMAX ? 1e-6 : 0.0;
            size_t nz = (size_t)T * nres, no = (size_t)T * n * n;
            float *z = tc_rand(nz, -2, 2), *o = tc_rand(no, 0, 0), *go = tc_rand(no, -1, 1), *gz = tc_rand(nz, -1, 1);
            float *dZ = tc_dev(z, nz), *dO = tc_dev(NULL, no), *dGO = tc_dev(go, no), *dGZ = tc_dev(gz, nz);
            char what[64];
            mhc_ctx_init(&ctx);
            /* both iterate in double per token: 1e-6 forward, 1e-5 backward */
            CHECK_OK(mhc_sinkhorn_forward(&ctx, projs[q], n, iters, eps, o, z, T));
            CHECK_OK(mhc_cuda_sinkhorn_forward(tc_cu, projs[q], n, iters, eps, dO, dZ, T));
            snprintf(what, sizeof what, "sinkhorn %s n=%d", mhc_projection_name(projs[q]), n);
            TC_CLOSE(what, dO, o, no, 1e-6);
            CHECK_OK(mhc_sinkhorn_backward(&ctx, projs[q], n, iters, eps, gz, go, z, T));
            CHECK_OK(mhc_cuda_sinkhorn_backward(tc_cu, projs[q], n, iters, eps, dGZ, dGO, dZ, T));
            snprintf(what, sizeof what, "sinkhorn %s n=%d backward", mhc_projection_name(projs[q]), n);
            TC_CLOSE(what, dGZ, gz, nz, 1e-5);
            mhc_cuda_release(tc_cu, dZ); mhc_cuda_release(tc_cu, dO); mhc_cuda_release(tc_cu, dGO);
            mhc_cuda_release(tc_cu, dGZ);
            free(z); free(o); free(go); free(gz);
        }
    /* ortho (ns_iters 1, 5, 20) through mhc_cuda_sinkhorn_*, kron through mhc_cuda_kron_*: the same
       per-token code in double on both sides */
    for (q = 0; q < 3 + 6; q++) {
        static const int ks[3] = {1, 5, 20}, lists[6][3] = {{1}, {2}, {3}, {2, 2}, {2, 3}, {2, 2, 2}};
        static const int counts[6] = {1, 1, 1, 2, 2, 3};
        mhc_ctx ctx;
        int ortho = q < 3, nres, nn, k;
        size_t nz, no;
        float *z, *o, *go, *gz, *dZ, *dO, *dGO, *dGZ;
        char what[64];
        n = ortho ? 3 : 1;
        nres = ortho ? 9 : 0;
        if (!ortho) {
            const int *f = lists[q - 3];
            for (k = 0; k < counts[q - 3]; k++) { n *= f[k]; nres += (int)mhc_perm_count(f[k]); }
        }
        nn = n * n; nz = (size_t)T * nres; no = (size_t)T * nn;
        z = tc_rand(nz, -2, 2); o = tc_rand(no, 0, 0); go = tc_rand(no, -1, 1); gz = tc_rand(nz, -1, 1);
        dZ = tc_dev(z, nz); dO = tc_dev(NULL, no); dGO = tc_dev(go, no); dGZ = tc_dev(gz, nz);
        mhc_ctx_init(&ctx);
        if (ortho) {
            for (k = 0; k < T; k++) { z[(size_t)k * 9] += 3; z[(size_t)k * 9 + 4] += 3; z[(size_t)k * 9 + 8] += 3; }
            CHECK_OK(mhc_cuda_upload(tc_cu, dZ, z, nz * sizeof(float)));
            CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, n, ks[q], 0.0, o, z, T));
            CHECK_OK(mhc_cuda_sinkhorn_forward(tc_cu, MHC_PROJ_ORTHO, n, ks[q], 0.0, dO, dZ, T));
            CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_ORTHO, n, ks[q], 0.0, gz, go, z, T));
            CHECK_OK(mhc_cuda_sinkhorn_backward(tc_cu, MHC_PROJ_ORTHO, n, ks[q], 0.0, dGZ, dGO, dZ, T));
            snprintf(what, sizeof what, "ortho n=%d ns_iters=%d", n, ks[q]);
        } else {
            CHECK_OK(mhc_kron_forward(&ctx, counts[q - 3], lists[q - 3], o, z, T));
            CHECK_OK(mhc_cuda_kron_forward(tc_cu, counts[q - 3], lists[q - 3], dO, dZ, T));
            CHECK_OK(mhc_kron_backward(&ctx, counts[q - 3], lists[q - 3], gz, go, z, T));
            CHECK_OK(mhc_cuda_kron_backward(tc_cu, counts[q - 3], lists[q - 3], dGZ, dGO, dZ, T));
            snprintf(what, sizeof what, "kron n=%d (%d factors)", n, counts[q - 3]);
        }
        TC_CLOSE(what, dO, o, no, 1e-6);
        TC_CLOSE(what, dGZ, gz, nz, 1e-5);
        mhc_cuda_release(tc_cu, dZ); mhc_cuda_release(tc_cu, dO); mhc_cuda_release(tc_cu, dGO);
        mhc_cuda_release(tc_cu, dGZ);
        free(z); free(o); free(go); free(gz);
    }
}

/* The device scratch is bounded as the CPU's (issue 15): every token keeps its Sinkhorn iterates,
   so 16 tokens of n = 8 at 100000 iterations would take 1.6 GB; refused before allocating. A
   lowered ctx->scratch_max refuses even the dsv4 projection of 33 tokens; raised again, it runs. */
static void tc_scratch_limit(void) {
    const int T = 33;
    size_t nz = (size_t)T * 64, keep = tc_cu->ctx->scratch_max, had = tc_cu->scratch_bytes;
    float *z = tc_rand(nz, -2, 2), *dZ = tc_dev(z, nz), *dO = tc_dev(NULL, nz);
    TEST_BEGIN("cuda_scratch_limit");
    CHECK_RESULT(mhc_cuda_sinkhorn_forward(tc_cu, MHC_PROJ_SOFTMAX, 8, 100000, 1e-6, dO, dZ, 16), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(tc_cu->ctx), "mhc_cuda_sinkhorn_forward: the projection of 16 tokens (each keeps its "
                                               "iterates for the exact backward");
    CHECK_STR_HAS(mhc_ctx_message(tc_cu->ctx), "more than the limit of 1073741824 bytes");
    CHECK(tc_cu->scratch_bytes == had);   /* nothing was allocated */
    tc_cu->ctx->scratch_max = 4096;
    CHECK_RESULT(mhc_cuda_sinkhorn_backward(tc_cu, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, dZ, dO, dZ, T), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(tc_cu->ctx), "more than the limit of 4096 bytes (mhc_ctx.scratch_max");
    tc_cu->ctx->scratch_max = (size_t)1 << 24;
    CHECK_OK(mhc_cuda_sinkhorn_forward(tc_cu, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, dO, dZ, T));
    tc_cu->ctx->scratch_max = keep;
    mhc_cuda_release(tc_cu, dZ);
    mhc_cuda_release(tc_cu, dO);
    free(z);
}

/* pre (or head) forward and backward with every gradient, against mhc_hc_pre_* / mhc_hc_head_*
   (cfg0: the configuration, NULL: the preset alone) */
static void tc_pre_case_cfg(const mhc_hc_config *cfg0, mhc_hc_preset preset, int n, int head, int use_nw) {
    mhc_ctx ctx;
    mhc_hc_config cfg;
    mhc_hc_spec s;
    const int T = 21, C = 40;
    int mr, nres;
    size_t D, nx, nfn, nli, nh, nA;
    float *x, *fn, *sc, *base, *nw, *li, *hpre, *hpost, *hres, *gli, *ghpre, *ghpost, *ghres;
    float *dxc, *dfnc, *dscc, *dbasec, *dnwc;
    float *X, *FN, *SC, *BASE, *NW, *LI, *HPRE, *HPOST, *HRES, *GLI, *GHPRE, *GHPOST, *GHRES, *DX, *DFN, *DSC, *DBASE, *DNW;
    char what[96];
    mhc_ctx_init(&ctx);
    if (cfg0) cfg = *cfg0;
    else memset(&cfg, 0, sizeof cfg);
    cfg.preset = preset;
    if (mhc_hc_resolve(&ctx, &cfg, n, &s) != MHC_OK) { CHECK_MSG(0, "resolve: %s", mhc_ctx_message(&ctx)); return; }
    mr = head ? n : s.m;
    nres = head ? 0 : s.nres;
    (void)nres;
    D = (size_t)n * C; nx = (size_t)T * D; nfn = (size_t)mr * D; nli = (size_t)T * C; nh = (size_t)T * n; nA = nh * n;
    x = tc_rand(nx, -1, 1); fn = tc_rand(nfn, -0.2, 0.2); sc = tc_rand(3, 0.5, 1.5); base = tc_rand((size_t)mr, -0.5, 0.5);
    nw = tc_rand(D, 0.5, 1.5);
    li = tc_rand(nli, 0, 0); hpre = tc_rand(nh, 0, 0); hpost = tc_rand(nh, 0, 0); hres = tc_rand(nA, 0, 0);
    gli = tc_rand(nli, -1, 1); ghpre = tc_rand(nh, -1, 1); ghpost = tc_rand(nh, -1, 1); ghres = tc_rand(nA, -1, 1);
    dxc = tc_rand(nx, -1, 1); dfnc = tc_rand(nfn, -1, 1); dscc = tc_rand(3, -1, 1); dbasec = tc_rand((size_t)mr, -1, 1);
    dnwc = tc_rand(D, -1, 1);
    if (!head && s.projection == MHC_PROJ_ORTHO) {   /* well-conditioned logits: on generic ones Newton-Schulz
                                                        magnifies the float differences of the dots */
        int i;
        for (i = 0; i < n; i++) base[2 * n + i * n + i] += (float)(4 * n);
    }
    X = tc_dev(x, nx); FN = tc_dev(fn, nfn); SC = tc_dev(sc, 3); BASE = tc_dev(base, mr); NW = tc_dev(nw, D);
    LI = tc_dev(NULL, nli); HPRE = tc_dev(NULL, nh); HPOST = tc_dev(NULL, nh); HRES = tc_dev(NULL, nA);
    GLI = tc_dev(gli, nli); GHPRE = tc_dev(ghpre, nh); GHPOST = tc_dev(ghpost, nh); GHRES = tc_dev(ghres, nA);
    DX = tc_dev(dxc, nx); DFN = tc_dev(dfnc, nfn); DSC = tc_dev(dscc, 3); DBASE = tc_dev(dbasec, mr); DNW = tc_dev(dnwc, D);
    snprintf(what, sizeof what, "%s %s n=%d nw=%d (%s %s %s %s)", head ? "head" : "pre", mhc_hc_preset_name(preset), n,
             use_nw, mhc_norm_eps_mode_name(s.norm_eps_mode), mhc_sinkhorn_eps_mode_name(s.sinkhorn_eps_mode),
             mhc_sinkhorn_order_name(s.sinkhorn_order), mhc_exp_shift_name(s.exp_shift));
    if (!use_nw) { free(nw); nw = NULL; }
    /* forward: dots and sums in double on both sides: 2e-6; backward: sums over tokens in
       double, float results: 2e-5 */
    if (head) {
        CHECK_OK(mhc_hc_head_forward(&ctx, &s, li, hpre, x, fn, sc, base, nw, T, C));
        CHECK_OK(mhc_cuda_hc_head_forward(tc_cu, &s, LI, HPRE, X, FN, SC, BASE, nw ? NW : NULL, T, C));
        CHECK_OK(mhc_hc_head_backward(&ctx, &s, dxc, dfnc, dscc, dbasec, nw ? dnwc : NULL, gli, ghpre, x, fn, sc, base,
                                      nw, T, C));
        CHECK_OK(mhc_cuda_hc_head_backward(tc_cu, &s, DX, DFN, DSC, DBASE, nw ? DNW : NULL, GLI, GHPRE, X, FN, SC, BASE,
                                           nw ? NW : NULL, T, C));
    } else {
        CHECK_OK(mhc_hc_pre_forward(&ctx, &s, li, hpre, hpost, hres, x, fn, sc, base, nw, T, C));
        CHECK_OK(mhc_cuda_hc_pre_forward(tc_cu, &s, LI, HPRE, HPOST, HRES, X, FN, SC, BASE, nw ? NW : NULL, T, C));
        CHECK_OK(mhc_hc_pre_backward(&ctx, &s, dxc, dfnc, dscc, dbasec, nw ? dnwc : NULL, gli, ghpre, ghpost, ghres,
                                     x, fn, sc, base, nw, T, C));
        CHECK_OK(mhc_cuda_hc_pre_backward(tc_cu, &s, DX, DFN, DSC, DBASE, nw ? DNW : NULL, GLI, GHPRE, GHPOST, GHRES,
                                          X, FN, SC, BASE, nw ? NW : NULL, T, C));
    }
    {
        char w2[128];
        snprintf(w2, sizeof w2, "%s layer_input", what); TC_CLOSE(w2, LI, li, nli, 2e-6);
        snprintf(w2, sizeof w2, "%s h_pre", what); TC_CLOSE(w2, HPRE, hpre, nh, 2e-6);
        if (!head) {
            snprintf(w2, sizeof w2, "%s h_post", what); TC_CLOSE(w2, HPOST, hpost, nh, 2e-6);
            snprintf(w2, sizeof w2, "%s h_res", what); TC_CLOSE(w2, HRES, hres, nA, 2e-6);
        }
        snprintf(w2, sizeof w2, "%s d_x", what); TC_CLOSE(w2, DX, dxc, nx, 2e-5);
        snprintf(w2, sizeof w2, "%s d_fn", what); TC_CLOSE(w2, DFN, dfnc, nfn, 2e-5);
        snprintf(w2, sizeof w2, "%s d_scale", what); TC_CLOSE(w2, DSC, dscc, 3, 2e-5);
        snprintf(w2, sizeof w2, "%s d_base", what); TC_CLOSE(w2, DBASE, dbasec, (size_t)mr, 2e-5);
        if (nw) { snprintf(w2, sizeof w2, "%s d_norm_weight", what); TC_CLOSE(w2, DNW, dnwc, D, 2e-5); }
    }
    {
        float *all[] = {X, FN, SC, BASE, NW, LI, HPRE, HPOST, HRES, GLI, GHPRE, GHPOST, GHRES, DX, DFN, DSC, DBASE, DNW};
        float *hall[] = {x, fn, sc, base, nw, li, hpre, hpost, hres, gli, ghpre, ghpost, ghres, dxc, dfnc, dscc, dbasec, dnwc};
        size_t k;
        for (k = 0; k < sizeof all / sizeof all[0]; k++) { mhc_cuda_release(tc_cu, all[k]); free(hall[k]); }
    }
}

static void tc_pre_case(mhc_hc_preset preset, int n, int head, int use_nw) {
    tc_pre_case_cfg(NULL, preset, n, head, use_nw);
}

/* the convention knobs on the device: the peers' presets, every Sinkhorn knob value through the
   pre step (the shared block's projection of the spec) and the standalone projection, the
   outside norm in the pre step and the head */
static void tc_knobs(void) {
    static const mhc_hc_preset peers[3] = {MHC_PRESET_MEGATRON, MHC_PRESET_LIGER, MHC_PRESET_MHC_CU};
    static const mhc_projection projs[3] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG};
    mhc_hc_config cfg;
    int q, e, o, h;
    TEST_BEGIN("cuda_knobs");
    for (q = 0; q < 3; q++) {
        tc_pre_case(peers[q], 4, 0, 1);
        tc_pre_case(peers[q], 3, 0, 0);
        tc_pre_case(peers[q], 4, 1, 1);
    }
    memset(&cfg, 0, sizeof cfg);
    cfg.norm_eps_mode = MHC_NORM_EPS_OUTSIDE;
    cfg.norm_eps = 0.3;
    tc_pre_case_cfg(&cfg, MHC_PRESET_DSV4, 4, 0, 1);
    tc_pre_case_cfg(&cfg, MHC_PRESET_DSV4, 2, 1, 0);
    for (q = 0; q < 3; q++)
        for (e = MHC_SK_EPS_ADD; e <= MHC_SK_EPS_ZERO; e++)
            for (o = MHC_SK_COL_FIRST; o <= MHC_SK_ROW_FIRST; o++)
                for (h = MHC_EXP_SHIFT_NONE; h <= (q ? MHC_EXP_SHIFT_COL_MAX : MHC_EXP_SHIFT_NONE); h++) {
                    mhc_ctx ctx;
                    mhc_hc_spec s;
                    const int T = 17, n = 3, nn = 9;
                    float *z = tc_rand((size_t)T * nn, -2, 2), *out = tc_rand((size_t)T * nn, 0, 0);
                    float *go = tc_rand((size_t)T * nn, -1, 1), *gz = tc_rand((size_t)T * nn, -1, 1);
                    float *dZ = tc_dev(z, (size_t)T * nn), *dO = tc_dev(NULL, (size_t)T * nn);
                    float *dGO = tc_dev(go, (size_t)T * nn), *dGZ = tc_dev(gz, (size_t)T * nn);
                    char what[128];
                    mhc_ctx_init(&ctx);
                    memset(&cfg, 0, sizeof cfg);
                    cfg.preset = MHC_PRESET_PAPER; cfg.projection = projs[q];
                    cfg.sinkhorn_eps_mode = (mhc_sinkhorn_eps_mode)e; cfg.sinkhorn_order = (mhc_sinkhorn_order)o;
                    cfg.exp_shift = (mhc_exp_shift)h; cfg.sinkhorn_eps = e == MHC_SK_EPS_ADD ? 0.01 : 0.3;
                    if (projs[q] == MHC_PROJ_SOFTMAX && e != MHC_SK_EPS_ADD) cfg.sinkhorn_eps = 2.0;
                    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, n, &s));
                    snprintf(what, sizeof what, "proj %s %s %s %s", mhc_projection_name(projs[q]),
                             mhc_sinkhorn_eps_mode_name(s.sinkhorn_eps_mode), mhc_sinkhorn_order_name(s.sinkhorn_order),
                             mhc_exp_shift_name(s.exp_shift));
                    CHECK_OK(mhc_hc_proj_forward(&ctx, &s, out, z, T));
                    CHECK_OK(mhc_cuda_hc_proj_forward(tc_cu, &s, dO, dZ, T));
                    TC_CLOSE(what, dO, out, (size_t)T * nn, 1e-6);
                    CHECK_OK(mhc_hc_proj_backward(&ctx, &s, gz, go, z, T));
                    CHECK_OK(mhc_cuda_hc_proj_backward(tc_cu, &s, dGZ, dGO, dZ, T));
                    TC_CLOSE(what, dGZ, gz, (size_t)T * nn, 1e-5);
                    mhc_cuda_release(tc_cu, dZ); mhc_cuda_release(tc_cu, dO); mhc_cuda_release(tc_cu, dGO);
                    mhc_cuda_release(tc_cu, dGZ);
                    free(z); free(out); free(go); free(gz);
                    /* and through the pre step */
                    if (o == MHC_SK_ROW_FIRST || h != MHC_EXP_SHIFT_NONE || e != MHC_SK_EPS_ADD)
                        tc_pre_case_cfg(&cfg, MHC_PRESET_PAPER, n, 0, (e + o + h) % 2);
                }
}

static void tc_layer(void) {
    const int T = 13, n = 4, C = 33;
    size_t nx = (size_t)T * n * C, nA = (size_t)T * n * n, nh = (size_t)T * n, nf = (size_t)T * C;
    float *x = tc_rand(nx, -1, 1), *A = tc_rand(nA, 0, 0.5), *hp = tc_rand(nh, 0, 2), *f = tc_rand(nf, -1, 1);
    float *out = tc_rand(nx, 0, 0), *go = tc_rand(nx, -1, 1), *dx = tc_rand(nx, -1, 1), *dA = tc_rand(nA, -1, 1);
    float *dhp = tc_rand(nh, -1, 1), *df = tc_rand(nf, -1, 1), *e = tc_rand(nf, -1, 1), *de = tc_rand(nf, -1, 1);
    float *X = tc_dev(x, nx), *AA = tc_dev(A, nA), *HP = tc_dev(hp, nh), *F = tc_dev(f, nf), *O = tc_dev(NULL, nx);
    float *GO = tc_dev(go, nx), *DX = tc_dev(dx, nx), *DA = tc_dev(dA, nA), *DHP = tc_dev(dhp, nh), *DF = tc_dev(df, nf);
    float *E = tc_dev(e, nf), *DE = tc_dev(de, nf);
    static const mhc_hc_preset presets[6] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER, MHC_PRESET_LITE,
                                             MHC_PRESET_KROMHC, MHC_PRESET_ORTHO};
    int q, nn;
    TEST_BEGIN("cuda_post_expand");
    /* sums of n terms in double: 1e-6 */
    mhc_k_hc_post_forward(out, x, A, hp, f, T, n, C);
    CHECK_OK(mhc_cuda_hc_post_forward(tc_cu, O, X, AA, HP, F, T, n, C));
    TC_CLOSE("post out", O, out, nx, 1e-6);
    mhc_k_hc_post_backward(dx, dA, dhp, df, go, x, A, hp, f, T, n, C);
    CHECK_OK(mhc_cuda_hc_post_backward(tc_cu, DX, DA, DHP, DF, GO, X, AA, HP, F, T, n, C));
    TC_CLOSE("post d_x", DX, dx, nx, 1e-6);
    TC_CLOSE("post d_h_res", DA, dA, nA, 1e-6);
    TC_CLOSE("post d_h_post", DHP, dhp, nh, 1e-6);
    TC_CLOSE("post d_f_out", DF, df, nf, 1e-6);
    mhc_k_hc_expand_forward(out, e, T, n, C);
    CHECK_OK(mhc_cuda_hc_expand_forward(tc_cu, O, E, T, n, C));
    TC_CLOSE("expand", O, out, nx, 0.0);
    mhc_k_hc_expand_backward(de, go, T, n, C);
    CHECK_OK(mhc_cuda_hc_expand_backward(tc_cu, DE, GO, T, n, C));
    TC_CLOSE("expand backward", DE, de, nf, 1e-6);
    {
        float *all[] = {X, AA, HP, F, O, GO, DX, DA, DHP, DF, E, DE};
        float *hall[] = {x, A, hp, f, out, go, dx, dA, dhp, df, e, de};
        size_t k;
        for (k = 0; k < sizeof all / sizeof all[0]; k++) { mhc_cuda_release(tc_cu, all[k]); free(hall[k]); }
    }
    TEST_BEGIN("cuda_pre_head");
    for (q = 0; q < 6; q++)
        for (nn = 1; nn <= 4; nn += 3) {
            tc_pre_case(presets[q], nn, 0, 1);
            tc_pre_case(presets[q], nn, 0, 0);
        }
    tc_pre_case(MHC_PRESET_KROMHC, 8, 0, 1);   /* (2,2,2) */
    tc_pre_case(MHC_PRESET_KROMHC, 6, 0, 0);   /* (2,3) */
    tc_pre_case(MHC_PRESET_DSV4, 4, 1, 1);
    tc_pre_case(MHC_PRESET_DSV4, 4, 1, 0);
}

/* ---------------- part 3: GPT training steps, device against CPU ---------------- */

static void tc_gpt_steps(int variant, int n, mhc_hc_preset preset) {
    mhc_ctx ctx;
    gpt_config cfg;
    gpt_model m;
    gpt_cuda gc;
    mhc_rng rng;
    mhc_trainer tr, tr_cpu;
    mhc_adamw_config acfg;
    mhc_arena arena;
    mhc_tape tp;
    const int B = 2, T = 16, steps = 5;
    int tok[2 * 17], step, i;
    double cpu_loss[5], gpu_loss[5];
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab = 64; cfg.seq = T; cfg.dim = 32; cfg.heads = 4; cfg.layers = 2; cfg.n = n; cfg.hc.variant = (mhc_hc_variant)variant;
    cfg.hc.preset = preset;
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.lr = 3e-3;
    if (gpt_create(&ctx, &m, &cfg) != MHC_OK) { CHECK_MSG(0, "gpt_create: %s", mhc_ctx_message(&ctx)); return; }
    mhc_rng_seed(&rng, 7);
    CHECK_OK(gpt_init(&ctx, &m, &rng));
    for (i = 0; i < B * (T + 1); i++) tok[i] = (int)mhc_rng_below(&rng, (uint32_t)cfg.vocab);
    {
        int inp[2 * 16], tgt[2 * 16], b, t;
        for (b = 0; b < B; b++)
            for (t = 0; t < T; t++) { inp[b * T + t] = tok[b * (T + 1) + t]; tgt[b * T + t] = tok[b * (T + 1) + t + 1]; }
        /* the device copy (same initial weights), then step by step: device, CPU */
        CHECK_OK(gpt_cuda_create(tc_cu, &gc, &m));
        CHECK_OK(mhc_trainer_init(&ctx, &tr, &acfg));
        CHECK_OK(mhc_trainer_init(&ctx, &tr_cpu, &acfg));
        CHECK_OK(mhc_arena_init(&ctx, &arena, 1 << 20));
        CHECK_OK(mhc_tape_init(&ctx, &tp, &arena));
        for (step = 0; step < steps; step++) {
            mhc_tensor *loss;
            CHECK_OK(gpt_cuda_step(&gc, &tr, inp, tgt, B, T, &gpu_loss[step]));
            mhc_params_zero_grad(&m.params);
            loss = gpt_forward(&tp, &m, inp, tgt, B, T, NULL);
            CHECK(loss != NULL);
            if (!loss) break;
            cpu_loss[step] = (double)loss->data[0];
            CHECK_OK(mhc_tape_backward(&tp, loss));
            if (step == 0) {
                /* the first step's gradients, tensor by tensor: max |device - CPU| relative to
                   the tensor's largest CPU gradient, at most 1e-3 (float sums in another order) */
                float *gd = (float *)malloc(m.params.size * sizeof(float));
                int k;
                CHECK_OK(mhc_cuda_download(tc_cu, gd, gc.g, m.params.size * sizeof(float)));
                for (k = 0; k < m.params.count; k++) {
                    const mhc_tensor *pt = &m.params.tensors[k];
                    const float *g = gd + m.params.offset[k];
                    double mx = 0.0, e = 0.0;
                    size_t j;
                    for (j = 0; j < pt->size; j++) if (fabs((double)pt->grad[j]) > mx) mx = fabs((double)pt->grad[j]);
                    for (j = 0; j < pt->size; j++) {
                        double d = fabs((double)g[j] - (double)pt->grad[j]);
                        if (!(d <= e)) e = d;
                    }
                    CHECK_MSG(e <= 1e-3 * mx + 1e-9, "gpt %s n=%d gradient of %s: max |device - CPU| %.3g, largest %.3g",
                              mhc_hc_variant_name(m.spec.variant), n, m.params.names[k], e, mx);
                }
                free(gd);
            }
            CHECK_OK(mhc_trainer_step(&tr_cpu, &m.params));
            CHECK_OK(mhc_tape_reset(&tp));
        }
        /* float training steps on two machines: the losses agree to 1e-4 relative over 5 steps */
        for (step = 0; step < steps; step++)
            CHECK_MSG(fabs(gpu_loss[step] - cpu_loss[step]) <= 1e-4 * fabs(cpu_loss[step]),
                      "gpt %s n=%d step %d: device loss %.7g, CPU loss %.7g", mhc_hc_variant_name(m.spec.variant),
                      n, step + 1, gpu_loss[step], cpu_loss[step]);
        CHECK_NEAR(tr.last_grad_norm, tr_cpu.last_grad_norm, 1e-3 * tr_cpu.last_grad_norm);
        printf("  gpt %s n=%d: losses device %.6f .. %.6f, CPU %.6f .. %.6f\n", mhc_hc_variant_name(m.spec.variant),
               n, gpu_loss[0], gpu_loss[steps - 1], cpu_loss[0], cpu_loss[steps - 1]);
        mhc_tape_free(&tp);
        mhc_arena_free(&arena);
        gpt_cuda_destroy(&gc);
    }
    gpt_destroy(&m);
}

int main(void) {
    mhc_ctx ctx;
    mhc_cuda cu;
    tc_host_checks();
    if (mhc_cuda_available() == 0) {
        printf("no CUDA device: skipped the device tests (host-side checks: %d passed, %d failed)\n", test_passed,
               test_failed);
        printf("%d passed, %d failed\n", test_passed, test_failed);
        return test_failed ? 1 : 0;
    }
    mhc_ctx_init(&ctx);
    if (mhc_cuda_init(&ctx, &cu, 0) != MHC_OK) {
        printf("FAIL mhc_cuda_init: %s\n", mhc_ctx_message(&ctx));
        return 1;
    }
    tc_cu = &cu;
    mhc_rng_seed(&tc_rng, 12345);
    tc_matmul();
    tc_elementwise();
    tc_sinkhorn();
    tc_scratch_limit();
    tc_layer();
    tc_knobs();
    TEST_BEGIN("cuda_gpt_steps");
    tc_gpt_steps(MHC_VARIANT_PRESET, 4, MHC_PRESET_DSV4);
    tc_gpt_steps(MHC_VARIANT_NONE, 1, MHC_PRESET_DSV4);
    tc_gpt_steps(MHC_VARIANT_PRESET, 4, MHC_PRESET_KROMHC);
    tc_gpt_steps(MHC_VARIANT_PRESET, 4, MHC_PRESET_ORTHO);
    mhc_cuda_free(&cu);
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
