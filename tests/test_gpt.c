/* tests/test_gpt.c - the GPT of gpt/gpt.h against its PyTorch reference
 * (tests/reference/gpt_reference.py, float64), as llm.c checks GPT-2: the C model loads the
 * exported initial weights (tests/vectors/gpt_<residual>/params), then logits, loss, every
 * parameter gradient and the losses of 10 AdamW steps are compared with the saved results.
 *
 * Tolerances. An element passes when |c - ref| <= tol * max(1, max|ref| over the tensor):
 *   double build: 1e-12 for logits, loss, every gradient and the 10 losses (measured: ~3e-16);
 *   float build:  5e-6 for the same (measured: up to ~2e-7). */
#include "../gpt/gpt.h"

static int TP(gpt_read_config)(const char *dir, gpt_config *c, int *batch, double *lr, double *wd, double *clip) {
    char path[512], line[4096];
    FILE *f;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    snprintf(path, sizeof path, "%s/config.txt", dir);
    f = fopen(path, "r");
    if (!f) return 0;
    memset(c, 0, sizeof *c);
    while (fgets(line, sizeof line, f)) {
        char *eq = strchr(line, '='), *v;
        size_t kl;
        if (!eq) continue;
        v = eq + 1;
        while (*v == ' ') v++;
        v[strcspn(v, "\n")] = 0;
        kl = (size_t)(eq - line);
        while (kl && line[kl - 1] == ' ') kl--;
        line[kl] = 0;
        if (!strcmp(line, "vocab")) c->vocab = atoi(v);
        else if (!strcmp(line, "seq")) c->seq = atoi(v);
        else if (!strcmp(line, "dim")) c->dim = atoi(v);
        else if (!strcmp(line, "heads")) c->heads = atoi(v);
        else if (!strcmp(line, "layers")) c->layers = atoi(v);
        else if (!strcmp(line, "n")) c->n = atoi(v);
        else if (!strcmp(line, "batch")) *batch = atoi(v);
        else if (!strcmp(line, "lr")) *lr = atof(v);
        else if (!strcmp(line, "weight_decay")) *wd = atof(v);
        else if (!strcmp(line, "grad_clip")) *clip = atof(v);
        else if (!strcmp(line, "residual")) { mhc_hc_variant x = MHC_VARIANT_COUNT; mhc_hc_variant_parse(&ctx, v, &x); c->hc.variant = x; }
        else if (!strcmp(line, "preset")) { mhc_hc_preset x = MHC_PRESET_COUNT; mhc_hc_preset_parse(&ctx, v, &x); c->hc.preset = x; }
    }
    fclose(f);
    return 1;
}

/* max |a - ref| / max(1, max|ref|); -1 if the file is missing or the sizes differ */
static double TP(gpt_err)(const char *dir, const char *name, const mhc_real *a, size_t size) {
    char path[512];
    mhc_ctx ctx;
    mhc_npy e;
    double mx = 1, err = 0;
    size_t i;
    mhc_ctx_init(&ctx);
    snprintf(path, sizeof path, "%s/expected/%s.npy", dir, name);
    if (mhc_npy_read(&ctx, path, &e) != MHC_OK) return -1;
    if (e.size != size) { mhc_npy_free(&e); return -1; }
    for (i = 0; i < size; i++) if (fabs(e.data[i]) > mx) mx = fabs(e.data[i]);
    for (i = 0; i < size; i++) {
        double d = fabs((double)a[i] - e.data[i]) / mx;
        if (!(d <= err)) err = d;   /* NaN propagates as a failure */
    }
    mhc_npy_free(&e);
    return err;
}

static void TP(gpt_case)(const char *dir) {
    const int dbl = sizeof(mhc_real) == 8;
    const double tol_fwd = dbl ? 1e-12 : 5e-6, tol_grad = dbl ? 1e-12 : 5e-6, tol_steps = dbl ? 1e-12 : 5e-6;
    gpt_config cfg;
    gpt_model m;
    mhc_ctx ctx;
    mhc_arena ar;
    mhc_tape tp;
    mhc_trainer tr;
    mhc_adamw_config ac;
    mhc_npy tok, tgt, w;
    mhc_tensor *logits = NULL, *loss;
    int batch = 0, i, step, *itok = NULL, *itgt = NULL;
    double lr = 0, wd = 0, clip = 0, worst_grad = 0, worst_step = 0, e;
    char path[512];
    mhc_real l10[10];
    test_current = dir;
    mhc_ctx_init(&ctx);
    if (!TP(gpt_read_config)(dir, &cfg, &batch, &lr, &wd, &clip)) { CHECK_MSG(0, "%s/config.txt is missing", dir); return; }
    CHECK_OK(gpt_create(&ctx, &m, &cfg));
    snprintf(path, sizeof path, "%s/tokens.npy", dir);
    CHECK_OK(mhc_npy_read(&ctx, path, &tok));
    snprintf(path, sizeof path, "%s/targets.npy", dir);
    CHECK_OK(mhc_npy_read(&ctx, path, &tgt));
    itok = (int *)malloc(tok.size * sizeof(int));
    itgt = (int *)malloc(tgt.size * sizeof(int));
    for (i = 0; i < (int)tok.size; i++) { itok[i] = (int)tok.data[i]; itgt[i] = (int)tgt.data[i]; }
    for (i = 0; i < m.params.count; i++) {   /* the exported initial weights */
        size_t k;
        snprintf(path, sizeof path, "%s/params/%s.npy", dir, m.params.names[i]);
        CHECK_OK(mhc_npy_read(&ctx, path, &w));
        CHECK_MSG(w.size == m.params.tensors[i].size, "%s: %s has %zu values, the model %zu", dir, m.params.names[i],
                  w.size, m.params.tensors[i].size);
        for (k = 0; k < w.size && k < m.params.tensors[i].size; k++) m.params.tensors[i].data[k] = (mhc_real)w.data[k];
        mhc_npy_free(&w);
    }
    mhc_arena_init(&ctx, &ar, 1 << 16);
    mhc_tape_init(&ctx, &tp, &ar);
    loss = gpt_forward(&tp, &m, itok, itgt, batch, cfg.seq, &logits);
    CHECK_MSG(loss != NULL, "%s: forward failed: %s", dir, mhc_ctx_message(&ctx));
    if (!loss) goto done;
    e = TP(gpt_err)(dir, "logits", logits->data, logits->size);
    CHECK_MSG(e >= 0 && e <= tol_fwd, "%s: logits error %.3g > %.3g", dir, e, tol_fwd);
    e = TP(gpt_err)(dir, "loss", loss->data, 1);
    CHECK_MSG(e >= 0 && e <= tol_fwd, "%s: loss error %.3g > %.3g", dir, e, tol_fwd);
    CHECK_OK(mhc_tape_backward(&tp, loss));
    for (i = 0; i < m.params.count; i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "d_%s", m.params.names[i]);
        e = TP(gpt_err)(dir, nm, m.params.tensors[i].grad, m.params.tensors[i].size);
        CHECK_MSG(e >= 0 && e <= tol_grad, "%s: gradient %s error %.3g > %.3g", dir, nm, e, tol_grad);
        if (e > worst_grad) worst_grad = e;
    }
    mhc_tape_reset(&tp);
    /* 10 AdamW steps on the same batch, constant lr */
    memset(&ac, 0, sizeof ac);
    ac.schedule.kind = MHC_LR_CONSTANT;
    ac.schedule.lr = lr;
    ac.weight_decay = wd;
    ac.grad_clip = clip;
    CHECK_OK(mhc_trainer_init(&ctx, &tr, &ac));
    for (step = 0; step < 10; step++) {
        mhc_params_zero_grad(&m.params);
        loss = gpt_forward(&tp, &m, itok, itgt, batch, cfg.seq, NULL);
        if (!loss || mhc_tape_backward(&tp, loss) != MHC_OK) { CHECK_MSG(0, "%s: step %d failed", dir, step); break; }
        l10[step] = loss->data[0];
        mhc_tape_reset(&tp);
        CHECK_OK(mhc_trainer_step(&tr, &m.params));
    }
    if (step == 10) {
        worst_step = TP(gpt_err)(dir, "losses10", l10, 10);
        CHECK_MSG(worst_step >= 0 && worst_step <= tol_steps, "%s: AdamW losses error %.3g > %.3g", dir, worst_step, tol_steps);
        CHECK_MSG(l10[9] < l10[0] - 0.5, "%s: 10 AdamW steps did not lower the loss (%.4f -> %.4f)", dir, (double)l10[0], (double)l10[9]);
    }
    if (getenv("MHC_TEST_VERBOSE"))
        printf("  [%s] %s: worst gradient error %.2e, worst AdamW-loss error %.2e\n", TEST_PREC, dir, worst_grad, worst_step);
done:
    mhc_tape_free(&tp);
    mhc_arena_free(&ar);
    mhc_npy_free(&tok);
    mhc_npy_free(&tgt);
    free(itok);
    free(itgt);
    gpt_destroy(&m);
}

void TP(test_gpt)(void);
void TP(test_gpt)(void) {
    TP(gpt_case)("tests/vectors/gpt_none");
    TP(gpt_case)("tests/vectors/gpt_hc");
    TP(gpt_case)("tests/vectors/gpt_mhc");
    TP(gpt_case)("tests/vectors/gpt_lite");
    TP(gpt_case)("tests/vectors/gpt_kromhc");
    TP(gpt_case)("tests/vectors/gpt_ortho");
    {   /* bad configurations give clear errors */
        mhc_ctx ctx;
        gpt_config c;
        gpt_model m;
        test_current = "gpt_config";
        mhc_ctx_init(&ctx);
        memset(&c, 0, sizeof c);
        c.vocab = 256; c.seq = 8; c.dim = 10; c.heads = 3; c.layers = 1; c.n = 4; c.hc.variant = MHC_VARIANT_MHC;
        CHECK_RESULT(gpt_create(&ctx, &m, &c), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "3 heads do not divide dim 10");
        c.heads = 2; c.n = 0;
        CHECK_RESULT(gpt_create(&ctx, &m, &c), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 0 streams");   /* the library decides (mhc_hc_resolve) */
        c.n = 2; c.hc.variant = MHC_VARIANT_NONE;
        CHECK_RESULT(gpt_create(&ctx, &m, &c), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant none is the plain residual and needs n = 1");
    }
}
