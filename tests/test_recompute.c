/* tests/test_recompute.c - recomputation of the mHC stream states (mhc_tape_set_hc_recompute):
 * a GPT of gpt/gpt.h gives bit-identical loss and parameter gradients for every block length
 * (1, 2, 3, one longer than the stack) against recomputation off, for mhc, lite and hc, on a tape
 * reused over steps (the second step allocates nothing); the arena's peak falls by at least the stream states it no longer keeps;
 * misuse (a replaced state used again, mixed shapes, setting it mid-step, bad values) is refused
 * with a message that names it. */

typedef struct TP(rc_run) {
    mhc_real loss;
    mhc_real *grads;        /* every parameter gradient, concatenated */
    size_t peak;            /* the arena's high-water mark */
} TP(rc_run);

/* Two training-step forward/backward passes (the second on the reset tape); 1 on success. */
static int TP(rc_steps)(gpt_model *m, int block, const int *tok, const int *tgt, int B, int T, TP(rc_run) *out) {
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_tensor *loss = NULL;
    int step, ok = 1;
    size_t g0 = 0, used[2] = {0, 0};
    mhc_ctx_init(&ctx);
    if (mhc_arena_init(&ctx, &ar, 1 << 12) != MHC_OK) return 0;
    mhc_tape_init(&ctx, &tp, &ar);
    CHECK_OK(mhc_tape_set_hc_recompute(&tp, block));
    for (step = 0; step < 2 && ok; step++) {
        mhc_params_zero_grad(&m->params);
        loss = gpt_forward(&tp, m, tok, tgt, B, T, NULL);
        if (!loss || mhc_tape_backward(&tp, loss) != MHC_OK) {
            CHECK_MSG(0, "recompute block %d, step %d: %s", block, step, mhc_ctx_message(&ctx));
            ok = 0;
            break;
        }
        out->loss = loss->data[0];
        used[step] = ar.used_total;
        mhc_tape_reset(&tp);
        if (step == 0) g0 = ar.growths;
    }
    CHECK_MSG(!ok || ar.growths == g0, "recompute block %d: the arena grew in the second step (%zu -> %zu growths): "
              "a step after the first must not allocate", block, g0, ar.growths);
    /* the block setting survives mhc_tape_reset: the second step is laid out as the first (without
       it, the second step would keep every state and gradient: more arena) */
    CHECK_MSG(!ok || used[1] == used[0], "recompute block %d: the second step used %zu arena bytes, the first %zu "
              "(the block setting must survive mhc_tape_reset)", block, used[1], used[0]);
    CHECK_MSG(tp.ext[MHC_TAPE_EXT_HC].option == block, "the block setting survives mhc_tape_reset (%d, set %d)",
              tp.ext[MHC_TAPE_EXT_HC].option, block);
    out->peak = ar.peak;
    out->grads = (mhc_real *)malloc(m->params.size * sizeof(mhc_real));
    if (out->grads) memcpy(out->grads, m->params.grad, m->params.size * sizeof(mhc_real));
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
    return ok && out->grads != NULL;
}

static void TP(rc_model_case)(int variant, int n) {
    enum { B = 2, T = 8, L = 3 };
    gpt_config c;
    gpt_model m;
    mhc_ctx ctx;
    mhc_rng rng;
    int tok[B * T], tgt[B * T], i, b;
    const int blocks[4] = {1, 2, 3, 2 * L + 1};
    TP(rc_run) ref, r;
    size_t state_bytes = (size_t)B * T * n * 16 * sizeof(mhc_real);
    mhc_ctx_init(&ctx);
    memset(&c, 0, sizeof c);
    c.vocab = 32; c.seq = T; c.dim = 16; c.heads = 2; c.layers = L; c.n = n;
    c.hc.variant = (mhc_hc_variant)variant; c.hc.preset = MHC_PRESET_DSV4;
    if (gpt_create(&ctx, &m, &c) != MHC_OK) { CHECK_MSG(0, "gpt_create: %s", mhc_ctx_message(&ctx)); return; }
    mhc_rng_seed(&rng, 11);
    CHECK_OK(gpt_init(&ctx, &m, &rng));
    for (i = 0; i < B * T; i++) { tok[i] = (int)mhc_rng_below(&rng, 32); tgt[i] = (int)mhc_rng_below(&rng, 32); }
    memset(&ref, 0, sizeof ref);
    if (!TP(rc_steps)(&m, 0, tok, tgt, B, T, &ref)) { gpt_destroy(&m); return; }
    for (b = 0; b < 4; b++) {
        memset(&r, 0, sizeof r);
        if (TP(rc_steps)(&m, blocks[b], tok, tgt, B, T, &r)) {
            CHECK_MSG(memcmp(&r.loss, &ref.loss, sizeof r.loss) == 0, "%s block %d: loss %.17g, without %.17g",
                      mhc_hc_variant_name((mhc_hc_variant)variant), blocks[b], (double)r.loss, (double)ref.loss);
            CHECK_MSG(memcmp(r.grads, ref.grads, m.params.size * sizeof(mhc_real)) == 0,
                      "%s block %d: the gradients differ from recomputation off",
                      mhc_hc_variant_name((mhc_hc_variant)variant), blocks[b]);
            /* 2L states: off keeps 2L data + 2L gradients; block 2 keeps L checkpoints + 1 slot + 2 gradients */
            if (blocks[b] == 2)
                CHECK_MSG(r.peak + (size_t)(2 * L - 3) * state_bytes <= ref.peak,
                          "%s block 2: arena peak %zu, without %zu (expected at least %zu less)",
                          mhc_hc_variant_name((mhc_hc_variant)variant), r.peak, ref.peak,
                          (size_t)(2 * L - 3) * state_bytes);
        }
        free(r.grads);
    }
    free(ref.grads);
    gpt_destroy(&m);
}

static void TP(rc_errors)(void) {
    enum { T = 3, n = 2, C = 4 };
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_tensor e, e2, A, A2, hp, f, *x0, *x1, *x2, *bad;
    mhc_real ed[T * C], e2d[2 * C], eg[T * C], e2g[2 * C], Ad[T * n * n], Ag[T * n * n], hd[T * n], hg[T * n];
    mhc_real fd[T * C], fg[T * C], A2d[2 * n * n], A2g[2 * n * n];
    int se[2] = {T, C}, se2[2] = {2, C}, sA[3] = {T, n, n}, sA2[3] = {2, n, n}, sh[2] = {T, n}, i;
    mhc_ctx_init(&ctx);
    CHECK_RESULT(mhc_tape_set_hc_recompute(NULL, 1), MHC_ERR_NULL);
    mhc_arena_init(&ctx, &ar, 1 << 12);
    mhc_tape_init(&ctx, &tp, &ar);
    CHECK_RESULT(mhc_tape_set_hc_recompute(&tp, -1), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "block = -1");
    for (i = 0; i < T * C; i++) { ed[i] = (mhc_real)(0.1 * i); fd[i] = (mhc_real)(0.05 * i - 0.2); }
    for (i = 0; i < 2 * C; i++) e2d[i] = (mhc_real)i;
    for (i = 0; i < T * n * n; i++) Ad[i] = (mhc_real)(i % 3 == 0 ? 0.7 : 0.3);
    for (i = 0; i < T * n; i++) hd[i] = (mhc_real)(1.0 + 0.1 * i);
    mhc_tensor_wrap(&ctx, &e, ed, eg, 2, se);
    mhc_tensor_wrap(&ctx, &e2, e2d, e2g, 2, se2);
    mhc_tensor_wrap(&ctx, &A, Ad, Ag, 3, sA);
    for (i = 0; i < 2 * n * n; i++) A2d[i] = (mhc_real)0.5;
    mhc_tensor_wrap(&ctx, &A2, A2d, A2g, 3, sA2);
    mhc_tensor_wrap(&ctx, &hp, hd, hg, 2, sh);
    mhc_tensor_wrap(&ctx, &f, fd, fg, 2, se);
    CHECK_OK(mhc_tape_set_hc_recompute(&tp, 2));
    x0 = mhc_hc_expand(&tp, &e, n);
    x1 = mhc_hc_post(&tp, x0, &A, &hp, &f);
    CHECK(x1 != NULL);
    CHECK_RESULT(mhc_tape_set_hc_recompute(&tp, 3), MHC_ERR_STATE);      /* mid-step */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "set it before the forward pass");
    x2 = mhc_hc_post(&tp, x1, &A, &hp, &f);
    CHECK(x2 != NULL);
    bad = mhc_hc_post(&tp, x1, &A, &hp, &f);                              /* x1 was replaced by x2 */
    CHECK(bad == NULL);
    CHECK_RESULT(ctx.last, MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "already replaced");
    mhc_tape_reset(&tp);
    x0 = mhc_hc_expand(&tp, &e, n);
    x1 = mhc_hc_post(&tp, x0, &A, &hp, &f);
    x2 = mhc_hc_expand(&tp, &e2, n);                                      /* another shape in the same step */
    bad = mhc_hc_post(&tp, x2, &A2, NULL, NULL);
    CHECK(bad == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "one shape");
    (void)x1;
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
    CHECK(mhc_hc_recompute_block(4, 8) == 2);      /* sqrt(32 / 6) = 2.31 */
    CHECK(mhc_hc_recompute_block(4, 32) == 5);     /* sqrt(128 / 6) = 4.62 */
    CHECK(mhc_hc_recompute_block(1, 1) == 1);
    CHECK(mhc_hc_recompute_block(0, 8) == 1);
}

void TP(test_recompute)(void);
void TP(test_recompute)(void) {
    TEST_BEGIN("recompute");
    TP(rc_model_case)(MHC_VARIANT_MHC, 4);
    TP(rc_model_case)(MHC_VARIANT_LITE, 3);
    TP(rc_model_case)(MHC_VARIANT_HC, 4);
    TP(rc_errors)();
}
