/* examples/ex4_dropin.c - step 4 of the ladder: dropping mHC into an existing C model.
 *
 * The model is a plain pre-norm residual MLP stack, the shape of every transformer's residual
 * path:
 *     x = u W_in^T + b_in                              [T, C]
 *     for each layer:  x = x + MLP(rmsnorm(x))         MLP(h) = gelu(h W1^T + b1) W2^T + b2
 *     y = x W_out^T + b_out                            [T, 1]
 * trained on a toy regression task (y = sin(u0) u1 + cos(u2 + u3) / 2 from 8 random inputs).
 *
 * Converting it to mHC with n streams changes a handful of lines, each marked `mHC:` below:
 *   - a mhc_hc_spec (mhc_hc_resolve) and, per layer, the mixing parameters
 *     (mhc_hc_params_declare / _get / _init), plus the head that collapses the streams;
 *   - x = expand(x): the residual state becomes [T, n, C] (n copies of the embedding);
 *   - the sublayer reads mhc_hc_pre(x).layer_input instead of x;
 *   - x = x + f becomes x = mhc_hc_post(x, A, h_post, f) = A x + h_post f;
 *   - y is computed from mhc_hc_head(x) instead of x.
 * The sublayer itself (rmsnorm + MLP), the loss and the training loop do not change. (At
 * initialisation mHC's gates are sigmoid(0): h_pre = 0.5 on n = 4 identical streams, so the layer
 * input and the head's output start at twice the plain model's scale, hence its larger first
 * loss.) Both
 * versions train for the same steps with the library's AdamW trainer (mhc_trainer_*); the program
 * prints both losses and checks that each falls.
 *
 *   make build/ex4_dropin && ./build/ex4_dropin
 */
#include <stdio.h>
#include <string.h>
#include <math.h>
#define MHC_IMPLEMENTATION
#include "mhc.h"

enum { T = 64, DIN = 8, C = 16, HID = 32, LAYERS = 4, STEPS = 100 };

typedef struct model {
    mhc_ctx *ctx;
    mhc_params P;
    int w_in, b_in, w_out, b_out;
    int norm[LAYERS], w1[LAYERS], b1[LAYERS], w2[LAYERS], b2[LAYERS];
    int n;                                   /* mHC: the number of streams (1: the plain model) */
    mhc_hc_spec spec;                        /* mHC: the resolved configuration */
    int hc_ids[LAYERS][4], head_ids[4];      /* mHC: parameter indices */
    mhc_hc_params hc[LAYERS], head;          /* mHC: the mixing parameters of each layer, the head's */
} model;

#define PT(m, i) mhc_params_get(&(m)->P, (i))

static int add(model *m, const char *name, int d0, int d1, int decay) {
    int shape[2];
    shape[0] = d0;
    shape[1] = d1;
    return mhc_params_add(&m->P, name, d1 > 0 ? 2 : 1, shape, decay);
}

/* Declare, allocate and initialise the parameters. n = 1 builds the plain residual model. */
static int model_build(model *m, mhc_ctx *ctx, int n, mhc_rng *rng) {
    char name[48];
    int l;
    size_t k;
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->n = n;
    mhc_params_init(ctx, &m->P);
    if (n > 1 && mhc_hc_resolve(ctx, NULL, n, &m->spec) != MHC_OK) return 0;   /* mHC: preset dsv4 */
    m->w_in = add(m, "w_in", C, DIN, MHC_PARAM_DECAY);
    m->b_in = add(m, "b_in", C, 0, MHC_PARAM_NO_DECAY);
    for (l = 0; l < LAYERS; l++) {
        snprintf(name, sizeof name, "l%d.hc", l);
        if (n > 1 && mhc_hc_params_declare(&m->P, &m->spec, C, 0, 0, name, m->hc_ids[l]) != MHC_OK) return 0;  /* mHC */
        snprintf(name, sizeof name, "l%d.norm", l); m->norm[l] = add(m, name, C, 0, MHC_PARAM_NO_DECAY);
        snprintf(name, sizeof name, "l%d.w1", l);   m->w1[l] = add(m, name, HID, C, MHC_PARAM_DECAY);
        snprintf(name, sizeof name, "l%d.b1", l);   m->b1[l] = add(m, name, HID, 0, MHC_PARAM_NO_DECAY);
        snprintf(name, sizeof name, "l%d.w2", l);   m->w2[l] = add(m, name, C, HID, MHC_PARAM_DECAY);
        snprintf(name, sizeof name, "l%d.b2", l);   m->b2[l] = add(m, name, C, 0, MHC_PARAM_NO_DECAY);
    }
    if (n > 1 && mhc_hc_params_declare(&m->P, &m->spec, C, 1, 0, "head", m->head_ids) != MHC_OK) return 0;  /* mHC */
    m->w_out = add(m, "w_out", 1, C, MHC_PARAM_DECAY);
    m->b_out = add(m, "b_out", 1, 0, MHC_PARAM_NO_DECAY);
    if (m->b_out < 0 || mhc_params_alloc(&m->P) != MHC_OK) return 0;
    /* initial values: N(0, 1/sqrt(fan_in)) weights, zero biases, unit norm weights */
    mhc_rng_fill_normal(rng, PT(m, m->w_in)->data, PT(m, m->w_in)->size, 0, 1 / sqrt((double)DIN));
    mhc_rng_fill_normal(rng, PT(m, m->w_out)->data, PT(m, m->w_out)->size, 0, 1 / sqrt((double)C));
    for (l = 0; l < LAYERS; l++) {
        mhc_tensor *nw = PT(m, m->norm[l]);
        for (k = 0; k < nw->size; k++) nw->data[k] = 1;
        mhc_rng_fill_normal(rng, PT(m, m->w1[l])->data, PT(m, m->w1[l])->size, 0, 1 / sqrt((double)C));
        mhc_rng_fill_normal(rng, PT(m, m->w2[l])->data, PT(m, m->w2[l])->size, 0, 0.5 / sqrt((double)HID * LAYERS));
        if (n > 1 && (mhc_hc_params_get(&m->P, m->hc_ids[l], &m->hc[l]) != MHC_OK ||                    /* mHC */
                      mhc_hc_params_init(ctx, &m->spec, 0, l, &m->hc[l], rng, 0.02) != MHC_OK)) return 0;  /* mHC */
    }
    if (n > 1 && (mhc_hc_params_get(&m->P, m->head_ids, &m->head) != MHC_OK ||                           /* mHC */
                  mhc_hc_params_init(ctx, &m->spec, 1, LAYERS, &m->head, rng, 0.02) != MHC_OK)) return 0;  /* mHC */
    return 1;
}

/* The sublayer: MLP(rmsnorm(h)). Unchanged by mHC. */
static mhc_tensor *mlp(mhc_tape *tp, model *m, int l, mhc_tensor *h) {
    h = mhc_rmsnorm(tp, h, PT(m, m->norm[l]), 1e-5);
    h = mhc_gelu(tp, mhc_add(tp, mhc_matmul_abt(tp, h, PT(m, m->w1[l])), PT(m, m->b1[l])));
    return mhc_add(tp, mhc_matmul_abt(tp, h, PT(m, m->w2[l])), PT(m, m->b2[l]));
}

/* Mean squared error of the model on inputs u [T, DIN] against targets y [T, 1]. */
static mhc_tensor *model_loss(mhc_tape *tp, model *m, mhc_tensor *u, mhc_tensor *y) {
    mhc_tensor *x, *f, *d;
    int l;
    x = mhc_add(tp, mhc_matmul_abt(tp, u, PT(m, m->w_in)), PT(m, m->b_in));     /* [T, C] */
    if (m->n > 1) x = mhc_hc_expand(tp, x, m->n);        /* mHC: [T, C] -> n streams [T, n, C] */
    for (l = 0; l < LAYERS; l++) {
        if (m->n > 1) {
            mhc_hc_pre_out po;                            /* mHC: mix the streams into the layer input */
            if (mhc_hc_pre(tp, &m->spec, x, &m->hc[l], &po) != MHC_OK) return NULL;
            f = mlp(tp, m, l, po.layer_input);            /* mHC: F reads layer_input instead of x */
            x = mhc_hc_post(tp, x, po.h_res, po.h_post, f);   /* mHC: x = A x + h_post f */
        } else {
            f = mlp(tp, m, l, x);
            x = mhc_add(tp, x, f);                        /* the plain residual: x = x + f */
        }
    }
    if (m->n > 1) x = mhc_hc_head(tp, &m->spec, x, &m->head);   /* mHC: collapse the streams to [T, C] */
    x = mhc_add(tp, mhc_matmul_abt(tp, x, PT(m, m->w_out)), PT(m, m->b_out));   /* [T, 1] */
    d = mhc_add(tp, x, mhc_scale(tp, y, -1.0));
    return mhc_mean(tp, mhc_mul(tp, d, d));
}

/* The data: T samples u ~ N(0, 1)^DIN, y = sin(u0) u1 + cos(u2 + u3) / 2. */
static void make_data(mhc_real *udata, mhc_real *ydata, uint64_t seed) {
    mhc_rng rng;
    int t;
    mhc_rng_seed(&rng, seed);
    mhc_rng_fill_normal(&rng, udata, T * DIN, 0, 1);
    for (t = 0; t < T; t++) {
        const mhc_real *v = udata + t * DIN;
        ydata[t] = (mhc_real)(sin((double)v[0]) * (double)v[1] + 0.5 * cos((double)v[2] + (double)v[3]));
    }
}

/* Train a model with n streams; fills losses[0..STEPS) and the loss on held-out samples. */
static int train(int n, double *losses, double *heldout) {
    static mhc_real udata[T * DIN], ydata[T], vu[T * DIN], vy[T];
    mhc_ctx ctx;
    mhc_rng rng;
    model m;
    mhc_arena arena;
    mhc_tape tape;
    mhc_trainer tr;
    mhc_adamw_config cfg;
    mhc_tensor u, y, hu, hy, *loss;
    int shape_u[2] = {T, DIN}, shape_y[2] = {T, 1}, step, ok = 0;

    mhc_ctx_init(&ctx);
    make_data(udata, ydata, 42);                 /* the training set, the same for both models */
    make_data(vu, vy, 43);                       /* held-out samples */
    mhc_tensor_wrap(&ctx, &u, udata, NULL, 2, shape_u);
    mhc_tensor_wrap(&ctx, &y, ydata, NULL, 2, shape_y);
    mhc_tensor_wrap(&ctx, &hu, vu, NULL, 2, shape_u);
    mhc_tensor_wrap(&ctx, &hy, vy, NULL, 2, shape_y);

    mhc_rng_seed(&rng, 1);
    if (!model_build(&m, &ctx, n, &rng)) goto fail_model;
    memset(&cfg, 0, sizeof cfg);                 /* zero fields: AdamW defaults (beta2 0.95, wd 0.1, clip 1) */
    cfg.schedule.kind = MHC_LR_COSINE;
    cfg.schedule.lr = 1e-2;
    cfg.schedule.warmup = 10;
    cfg.schedule.total = STEPS;
    if (mhc_trainer_init(&ctx, &tr, &cfg) != MHC_OK) goto fail_model;
    if (mhc_arena_init(&ctx, &arena, 1 << 20) != MHC_OK) goto fail_model;
    mhc_tape_init(&ctx, &tape, &arena);
    printf("%-14s %zu parameters\n", n > 1 ? "mHC (n = 4):" : "plain:", m.P.size);
    for (step = 0; step < STEPS; step++) {
        mhc_params_zero_grad(&m.P);
        loss = model_loss(&tape, &m, &u, &y);
        if (!loss || mhc_tape_backward(&tape, loss) != MHC_OK) goto fail;
        losses[step] = (double)loss->data[0];
        mhc_tape_reset(&tape);
        if (mhc_trainer_step(&tr, &m.P) != MHC_OK) goto fail;
    }
    mhc_tape_set_no_grad(&tape, 1);              /* evaluation: record nothing */
    if (!(loss = model_loss(&tape, &m, &hu, &hy))) goto fail;
    *heldout = (double)loss->data[0];
    mhc_tape_reset(&tape);
    ok = 1;
fail:
    mhc_tape_free(&tape);
    mhc_arena_free(&arena);
fail_model:
    if (!ok) fprintf(stderr, "error: %s\n", mhc_ctx_message(&ctx));
    mhc_params_free(&m.P);
    return ok;
}

int main(void) {
    static double plain[STEPS], mhc[STEPS];
    double hplain, hmhc;
    int s, failures = 0;
    if (!train(1, plain, &hplain) || !train(4, mhc, &hmhc)) return 1;
    printf("\n  step | loss: plain residual | loss: mHC, n = 4\n  -----+----------------------+-----------------\n");
    for (s = 0; s < STEPS; s++)
        if (s % 10 == 0 || s == STEPS - 1) printf("  %4d | %20.6f | %16.6f\n", s + 1, plain[s], mhc[s]);
    printf("  held-out samples: %.4f (plain), %.4f (mHC); the variance of y is about 0.53\n\n", hplain, hmhc);
    if (!(plain[STEPS - 1] < 0.2 * plain[0])) { printf("FAIL: the plain model's loss did not fall\n"); failures++; }
    if (!(mhc[STEPS - 1] < 0.2 * mhc[0])) { printf("FAIL: the mHC model's loss did not fall\n"); failures++; }
    if (!(hplain < plain[0] && hmhc < mhc[0])) { printf("FAIL: the held-out loss is not below the initial loss\n"); failures++; }
    if (failures) return 1;
    printf("ok: the loss falls below 20%% of its start in both versions\n");
    return 0;
}
