/* examples/ex2_layer.c - step 2 of the ladder: one mHC layer on a handful of tokens.
 *
 * The residual state is x[T][n][C]: n streams of C channels per token. One mHC layer
 * (MHC_SPEC.md Sec. 2) computes from x, per token,
 *     mix    = (xf . w_k) * rsqrt(mean(xf^2) + norm_eps)     xf = x flattened to n*C values
 *     h_pre  = sigmoid(mix[0:n]  * scale[0] + base[0:n]) + pre_eps
 *     h_post = sigmoid(mix[n:2n] * scale[1] + base[n:2n]) * post_mult
 *     A      = orient(Sinkhorn(mix[2n:] * scale[2] + base[2n:]))      the n x n h_res
 *     layer_input = sum_i h_pre[i] x[i]           -> f = F(layer_input)  (the sublayer)
 *     out    = A x + h_post f
 * This program builds that on the autograd tape (mhc_hc_pre, a toy F, mhc_hc_post), prints
 * h_pre, h_post and A of one token, recomputes h_pre, h_post, layer_input and out by hand from
 * the formulas above, then checks the gradient of a toy loss with respect to EVERY input and
 * parameter against central finite differences, for the presets dsv4, paper and lite and for
 * unconstrained Hyper-Connections (hc). Built in double precision (MHC_DOUBLE, defined below),
 * where finite differences are accurate to ~1e-9.
 *
 *   make build/ex2_layer && ./build/ex2_layer
 */
#define MHC_DOUBLE   /* mhc_real = double: this example checks gradients numerically */
#include <stdio.h>
#include <string.h>
#include <math.h>
#define MHC_IMPLEMENTATION
#include "mhc.h"

enum { T = 3, N = 4, C = 6 };

typedef struct layer {
    mhc_ctx ctx;
    mhc_hc_spec spec;
    mhc_params store;              /* the mixing parameters and the toy sublayer's weight */
    mhc_hc_params hc;              /* fn, scale, base, norm_weight (pointers into the store) */
    mhc_tensor *w;                 /* F(u) = tanh(u W^T), W [C, C] */
    mhc_real xdata[T * N * C], xgrad[T * N * C];
    mhc_tensor x;                  /* the residual state [T, n, C] (caller-owned memory) */
    mhc_real r[T * N * C];         /* loss = sum(out * r): a fixed random projection */
    mhc_arena arena;
    mhc_tape tape;
} layer;

/* The graph: pre step, the sublayer F, post step, loss. Returns the 1-element loss. */
static mhc_tensor *forward(layer *L, mhc_hc_pre_out *po, mhc_tensor **f_out, mhc_tensor **out) {
    mhc_tape *tp = &L->tape;
    mhc_tensor *f, *o;
    if (mhc_hc_pre(tp, &L->spec, &L->x, &L->hc, po) != MHC_OK) return NULL;
    f = mhc_tanh(tp, mhc_matmul_abt(tp, po->layer_input, L->w));   /* F(layer_input) */
    o = mhc_hc_post(tp, &L->x, po->h_res, po->h_post, f);          /* A x + h_post f */
    if (f_out) *f_out = f;
    if (out) *out = o;
    return mhc_dot_const(tp, o, L->r);
}

/* The loss alone (no tape recording), for finite differences. */
static double loss_value(layer *L) {
    mhc_hc_pre_out po;
    mhc_tensor *loss;
    double v;
    int old = mhc_tape_set_no_grad(&L->tape, 1);
    loss = forward(L, &po, NULL, NULL);
    v = loss ? (double)loss->data[0] : NAN;
    mhc_tape_reset(&L->tape);
    mhc_tape_set_no_grad(&L->tape, old);
    return v;
}

/* Central differences for every element of one tensor; returns the worst relative error
   |analytic - numeric| / max(|analytic|, |numeric|, 1e-6). */
static double fd_check(layer *L, mhc_real *data, const mhc_real *grad, size_t count, double *worst_abs) {
    const double h = 1e-5;
    double worst = 0;
    size_t k;
    for (k = 0; k < count; k++) {
        mhc_real keep = data[k];
        double lp, lm, num, a = (double)grad[k], den, e;
        data[k] = keep + h; lp = loss_value(L);
        data[k] = keep - h; lm = loss_value(L);
        data[k] = keep;
        num = (lp - lm) / (2 * h);
        den = fabs(a) > fabs(num) ? fabs(a) : fabs(num);
        if (den < 1e-6) den = 1e-6;
        e = fabs(a - num) / den;
        if (!(e <= worst)) worst = e;                 /* NaN counts as a failure */
        if (!(fabs(a - num) <= *worst_abs)) *worst_abs = fabs(a - num);
    }
    return worst;
}

static double sigmoid(double v) { return 1 / (1 + exp(-v)); }

/* Build one layer of the given preset / variant with deterministic random values. */
static int layer_build(layer *L, mhc_hc_preset preset, mhc_hc_variant variant) {
    mhc_hc_config cfg;
    mhc_rng rng;
    int ids[4], iw, shape_w[2] = {C, C}, shape_x[3] = {T, N, C};
    size_t k;
    memset(L, 0, sizeof *L);
    mhc_ctx_init(&L->ctx);
    memset(&cfg, 0, sizeof cfg);                 /* zero fields: the preset's values */
    cfg.preset = preset;
    cfg.variant = variant;
    if (mhc_hc_resolve(&L->ctx, &cfg, N, &L->spec) != MHC_OK) return 0;
    mhc_params_init(&L->ctx, &L->store);
    if (mhc_hc_params_declare(&L->store, &L->spec, C, 0, 1, "layer", ids) != MHC_OK) return 0;
    if ((iw = mhc_params_add(&L->store, "F.w", 2, shape_w, MHC_PARAM_DECAY)) < 0) return 0;
    if (mhc_params_alloc(&L->store) != MHC_OK) return 0;
    if (mhc_hc_params_get(&L->store, ids, &L->hc) != MHC_OK) return 0;
    L->w = mhc_params_get(&L->store, iw);
    mhc_rng_seed(&rng, 2025);
    if (mhc_hc_params_init(&L->ctx, &L->spec, 0, 0, &L->hc, &rng, 0.3) != MHC_OK) return 0;
    /* The initial gates (scale 0.01, base 0) make every gate ~ sigmoid(0): move them away from
       the start so that every term of the gradient is exercised. */
    L->hc.scale->data[0] = 0.8; L->hc.scale->data[1] = 0.6; L->hc.scale->data[2] = 1.5;
    for (k = 0; k < L->hc.base->size; k++) L->hc.base->data[k] += (mhc_real)(0.3 * mhc_rng_normal(&rng));
    for (k = 0; k < L->hc.norm_weight->size; k++) L->hc.norm_weight->data[k] = (mhc_real)(1 + 0.2 * mhc_rng_normal(&rng));
    mhc_rng_fill_normal(&rng, L->w->data, L->w->size, 0, 0.5);
    mhc_rng_fill_normal(&rng, L->xdata, T * N * C, 0, 1);
    mhc_rng_fill_normal(&rng, L->r, T * N * C, 0, 1);
    if (mhc_tensor_wrap(&L->ctx, &L->x, L->xdata, L->xgrad, 3, shape_x) != MHC_OK) return 0;
    if (mhc_arena_init(&L->ctx, &L->arena, 1 << 16) != MHC_OK) return 0;
    return mhc_tape_init(&L->ctx, &L->tape, &L->arena) == MHC_OK;
}

static void layer_free(layer *L) {
    mhc_tape_free(&L->tape);
    mhc_arena_free(&L->arena);
    mhc_params_free(&L->store);
}

/* Print token 0's gates and A, and recompute the layer by hand. Returns the largest
   difference between the hand computation and the library. */
static double show_token0(layer *L, const mhc_hc_pre_out *po, const mhc_tensor *f, const mhc_tensor *out) {
    const mhc_hc_spec *s = &L->spec;
    const mhc_real *x0 = L->xdata, *A = po->h_res->data;
    double ss = 0, rstd, mix[2 * N], diff = 0, d;
    int i, j, c, k, D = N * C;
    printf("token 0:\n  h_pre  =");
    for (i = 0; i < N; i++) printf(" %.6f", (double)po->h_pre->data[i]);
    printf("\n  h_post =");
    for (i = 0; i < N; i++) printf(" %.6f", (double)po->h_post->data[i]);
    printf("\n  A (h_res), out = A x + h_post f:\n");
    for (i = 0; i < N; i++) {
        double rs = 0;
        printf("   ");
        for (j = 0; j < N; j++) { printf(" %.6f", (double)A[i * N + j]); rs += (double)A[i * N + j]; }
        printf("   row sum %.9f\n", rs);
    }
    printf("    column sums:");
    for (j = 0; j < N; j++) {
        double cs = 0;
        for (i = 0; i < N; i++) cs += (double)A[i * N + j];
        printf(" %.9f", cs);
    }
    printf("\n");
    /* by hand: mix[k] = (sum_j xf[j] fn[k][j] nw[j]) * rsqrt(mean(xf^2) + norm_eps), k < 2n */
    for (j = 0; j < D; j++) ss += (double)x0[j] * (double)x0[j];
    rstd = 1 / sqrt(ss / D + s->norm_eps);
    for (k = 0; k < 2 * N; k++) {
        double a = 0;
        for (j = 0; j < D; j++) a += (double)x0[j] * (double)L->hc.fn->data[k * D + j] * (double)L->hc.norm_weight->data[j];
        mix[k] = a * rstd;
    }
    for (i = 0; i < N; i++) {
        double hp = sigmoid(mix[i] * L->hc.scale->data[0] + L->hc.base->data[i]) + s->pre_eps;
        double ho = sigmoid(mix[N + i] * L->hc.scale->data[1] + L->hc.base->data[N + i]) * s->post_mult;
        if ((d = fabs(hp - po->h_pre->data[i])) > diff) diff = d;
        if ((d = fabs(ho - po->h_post->data[i])) > diff) diff = d;
    }
    for (c = 0; c < C; c++) {
        double li = 0;
        for (i = 0; i < N; i++) li += (double)po->h_pre->data[i] * (double)x0[i * C + c];   /* layer_input */
        if ((d = fabs(li - po->layer_input->data[c])) > diff) diff = d;
        for (i = 0; i < N; i++) {                                                     /* out = A x + h_post f */
            double o = (double)po->h_post->data[i] * (double)f->data[c];
            for (j = 0; j < N; j++) o += (double)A[i * N + j] * (double)x0[j * C + c];
            if ((d = fabs(o - out->data[i * C + c])) > diff) diff = d;
        }
    }
    printf("  h_pre, h_post, layer_input and out recomputed by hand from the formulas: max diff %.1e\n", diff);
    return diff;
}

int main(void) {
    static const struct { mhc_hc_preset preset; mhc_hc_variant variant; const char *what; } cases[] = {
        {MHC_PRESET_DSV4, MHC_VARIANT_PRESET, "dsv4 (softmax-start Sinkhorn, 20 iterations, A = comb^T)"},
        {MHC_PRESET_PAPER, MHC_VARIANT_PRESET, "paper (exp-start Sinkhorn, 20 iterations, A = comb)"},
        {MHC_PRESET_LITE, MHC_VARIANT_PRESET, "lite (permutation mixture over 4! = 24 permutations)"},
        {MHC_PRESET_DSV4, MHC_VARIANT_HC, "hc (unconstrained Hyper-Connections, tanh gates)"},
    };
    int q, failures = 0;
    for (q = 0; q < (int)(sizeof cases / sizeof cases[0]); q++) {
        layer L;
        mhc_hc_pre_out po;
        mhc_tensor *loss, *f = NULL, *out = NULL;
        double worst_abs = 0, worst = 0, e;
        const char *names[6];
        mhc_real *datas[6];
        const mhc_real *grads[6];
        size_t counts[6];
        int k, nt = 0;
        if (!layer_build(&L, cases[q].preset, cases[q].variant)) {
            fprintf(stderr, "error: %s\n", mhc_ctx_message(&L.ctx));
            layer_free(&L);
            return 1;
        }
        printf("== %s: T = %d tokens, n = %d streams, C = %d channels, fn is [%d, %d]\n", cases[q].what, T, N, C,
               L.hc.fn->shape[0], L.hc.fn->shape[1]);
        /* forward and backward on the tape */
        mhc_params_zero_grad(&L.store);
        memset(L.xgrad, 0, sizeof L.xgrad);
        loss = forward(&L, &po, &f, &out);
        if (!loss || mhc_tape_backward(&L.tape, loss) != MHC_OK) {
            fprintf(stderr, "error: %s\n", mhc_ctx_message(&L.ctx));
            layer_free(&L);
            return 1;
        }
        printf("loss = sum(out * r) = %.12f\n", (double)loss->data[0]);
        if (q == 0 || q == 3) {   /* the hand computation follows the mHC formulas (not HC's) */
            if (q == 0 && show_token0(&L, &po, f, out) > 1e-12) { printf("FAIL: the hand computation differs\n"); failures++; }
            if (q == 3) {
                double rerr, cerr;
                mhc_hc_ds_distance(&L.ctx, po.h_res->data, T, N, &rerr, &cerr);
                printf("HC's A is not constrained: max |rowsum - 1| = %.3f, max |colsum - 1| = %.3f\n", rerr, cerr);
            }
        }
        mhc_tape_reset(&L.tape);
        /* finite differences for every element of every input */
        names[nt] = "x"; datas[nt] = L.xdata; grads[nt] = L.xgrad; counts[nt++] = T * N * C;
        names[nt] = "fn"; datas[nt] = L.hc.fn->data; grads[nt] = L.hc.fn->grad; counts[nt++] = L.hc.fn->size;
        names[nt] = "scale"; datas[nt] = L.hc.scale->data; grads[nt] = L.hc.scale->grad; counts[nt++] = L.hc.scale->size;
        names[nt] = "base"; datas[nt] = L.hc.base->data; grads[nt] = L.hc.base->grad; counts[nt++] = L.hc.base->size;
        names[nt] = "norm_weight"; datas[nt] = L.hc.norm_weight->data; grads[nt] = L.hc.norm_weight->grad;
        counts[nt++] = L.hc.norm_weight->size;
        names[nt] = "F.w"; datas[nt] = L.w->data; grads[nt] = L.w->grad; counts[nt++] = L.w->size;
        printf("gradient vs central differences (h = 1e-5):");
        for (k = 0; k < nt; k++) {
            e = fd_check(&L, datas[k], grads[k], counts[k], &worst_abs);
            printf(" %s %.1e%s", names[k], e, k + 1 < nt ? "," : "");
            if (!(e <= worst)) worst = e;
        }
        printf("\n  worst relative error %.2e, worst absolute error %.2e\n\n", worst, worst_abs);
        if (!(worst < 1e-6)) { printf("FAIL: %s: gradient error %.2e exceeds 1e-6\n", cases[q].what, worst); failures++; }
        layer_free(&L);
    }
    if (failures) return 1;
    printf("ok: the layer matches its formulas and every gradient matches finite differences (rel err < 1e-6)\n");
    return 0;
}
