/* bench/bench_train.c - training-step benchmarks of the GPT of gpt/gpt.h and of the mHC layer:
 *   train step mHC/none   one step (zero_grad, forward, backward, mhc_trainer_step) of the model
 *                         with mHC n = 4 (dsv4) against the plain residual at the same sizes,
 *                         interleaved step by step; ratio = mHC time / none time (paper: <= 1.067).
 *   train step vs torch   the same step of our mHC model against bench/torch_gpt.py (PyTorch eager,
 *                         CPU, float32, the same thread count), run through popen between two
 *                         halves of our repetitions; ratio = ours / torch time (target < 1).
 *   mhc layer fwd+bwd     pre forward + post forward + post backward + pre backward at T = 1024,
 *                         n = 4, C = 512 against the same in PyTorch eager ops (torch_gpt.py layer).
 *   train step mHC+recompute/none  the same with mhc_tape_set_hc_recompute (block L_r of the paper).
 *   peak RSS mHC/none     VmHWM of a child process (this binary, re-executed with --child-rss) that
 *                         builds the model and runs two training steps; ratio = mHC / none; again
 *                         with recomputation (mHC+recompute/none).
 * Times are medians of several repetitions; the "ours" and "peer" columns of these rows are
 * milliseconds (or MiB for RSS): LOWER is better here, and the ratio is ours / peer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../gpt/gpt.h"

#define BT_LAYERS 4
#define BT_SEQ 128
#define BT_BATCH 4
#define BT_REPS 7
#define BT_PYTHON_DEFAULT "/usr/bin/python3"
#define BT_SCRIPT "bench/torch_gpt.py"

typedef struct bt_run {
    mhc_ctx ctx;
    gpt_model m;
    mhc_arena arena;
    mhc_tape tape;
    mhc_trainer tr;
    int *tok, *tgt;
    int ok;
} bt_run;

static void bt_close_parts(bt_run *r) {
    mhc_tape_free(&r->tape);
    mhc_arena_free(&r->arena);
    gpt_destroy(&r->m);
    free(r->tok); free(r->tgt);
}

/* mhc: 0 the plain residual, 1 mHC n = 4, 2 mHC n = 4 with recomputation (the paper's L_r) */
static int bt_open(bt_run *r, int dim, int heads, int mhc) {
    gpt_config c;
    mhc_rng rng;
    mhc_adamw_config a;
    int i, N = BT_BATCH * BT_SEQ;
    memset(r, 0, sizeof *r);
    mhc_ctx_init(&r->ctx);
    memset(&c, 0, sizeof c);
    c.vocab = 256; c.seq = BT_SEQ; c.dim = dim; c.heads = heads; c.layers = BT_LAYERS;
    c.n = mhc ? 4 : 1;
    c.hc.variant = mhc ? MHC_VARIANT_MHC : MHC_VARIANT_NONE;
    c.hc.preset = MHC_PRESET_DSV4;
    if (gpt_create(&r->ctx, &r->m, &c) != MHC_OK) return 0;
    mhc_rng_seed(&rng, 7);
    memset(&a, 0, sizeof a);
    a.schedule.lr = 1e-3;
    r->tok = (int *)malloc((size_t)N * sizeof(int));
    r->tgt = (int *)malloc((size_t)N * sizeof(int));
    if (!r->tok || !r->tgt || gpt_init(&r->ctx, &r->m, &rng) != MHC_OK ||
        mhc_trainer_init(&r->ctx, &r->tr, &a) != MHC_OK || mhc_arena_init(&r->ctx, &r->arena, 1 << 20) != MHC_OK) {
        gpt_destroy(&r->m);
        free(r->tok); free(r->tgt);
        return 0;
    }
    mhc_tape_init(&r->ctx, &r->tape, &r->arena);
    if (mhc == 2 && mhc_tape_set_hc_recompute(&r->tape, mhc_hc_recompute_block(4, 2 * BT_LAYERS)) != MHC_OK) {
        bt_close_parts(r);
        return 0;
    }
    for (i = 0; i < N; i++) { r->tok[i] = (int)mhc_rng_below(&rng, 256); r->tgt[i] = (int)mhc_rng_below(&rng, 256); }
    r->ok = 1;
    return 1;
}

static void bt_close(bt_run *r) {
    if (!r->ok) return;
    bt_close_parts(r);
    r->ok = 0;
}

/* one training step; returns its seconds, or -1 on an error */
static double bt_step(bt_run *r) {
    double t0 = bench_now();
    mhc_tensor *loss;
    mhc_params_zero_grad(&r->m.params);
    loss = gpt_forward(&r->tape, &r->m, r->tok, r->tgt, BT_BATCH, BT_SEQ, NULL);
    if (!loss || mhc_tape_backward(&r->tape, loss) != MHC_OK) return -1;
    mhc_tape_reset(&r->tape);
    if (mhc_trainer_step(&r->tr, &r->m.params) != MHC_OK) return -1;
    return bench_now() - t0;
}

/* Runs `cmd` and returns the number after "median_s" in its output (seconds), or -1. */
static char bt_torch_version[32] = "?";
static double bt_popen_median(const char *cmd) {
    char line[256];
    double v = -1;
    FILE *f = popen(cmd, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "median_s ", 9) == 0) v = atof(line + 9);
        if (strncmp(line, "torch ", 6) == 0 && sscanf(line + 6, "%31s", bt_torch_version) != 1) bt_torch_version[0] = 0;
    }
    if (pclose(f) != 0) return -1;
    return v;
}

/* The python with torch, or NULL (note says why). */
static const char *bt_python(char *why, size_t nwhy) {
    const char *py = getenv("MHC_BENCH_PYTHON");
    char cmd[512];
    if (!py) py = BT_PYTHON_DEFAULT;
    if (access(BT_SCRIPT, R_OK) != 0) { snprintf(why, nwhy, "%s not found (run from the repository root)", BT_SCRIPT); return NULL; }
    snprintf(cmd, sizeof cmd, "%s -c 'import torch' >/dev/null 2>&1", py);
    if (access(py, X_OK) != 0 || system(cmd) != 0) { snprintf(why, nwhy, "PyTorch not installed (%s)", py); return NULL; }
    return py;
}

/* The environment the PyTorch child runs in: OMP_WAIT_POLICY=passive unless the caller set a policy
   (on this 2-core machine PyTorch's 2-thread eager steps take about 2.3x as long with its default
   spinning: measured 0.45-0.52 s against 0.20 s at C = 256), so the peer runs at its best. */
static const char *bt_torch_env(void) {
    return getenv("OMP_WAIT_POLICY") ? "" : "OMP_WAIT_POLICY=passive ";
}

static void bt_row_ms(const char *name, double ours_s, double peer_s, const char *note) {
    bench_row(name, 1e3 * ours_s, peer_s > 0 ? 1e3 * peer_s : 0, note);
}

/* Row 2 (and row 3 at the widths listed): mHC vs none, and ours vs torch. */
static void bt_train_rows(const char *py, const char *why) {
    const int dims[2] = {256, 512}, heads[2] = {4, 8};
    int w, k;
    char name[96], note[256], cmd[512];
    for (w = 0; w < 2; w++) {
        bt_run a, b, c;
        double ta[BT_REPS], tb[BT_REPS], tc3[BT_REPS], ta0[BT_REPS], ma, mb, mc;
        int ok = 1;
        char name_rc[96];
        snprintf(name, sizeof name, "train step mHC/none C=%d", dims[w]);
        snprintf(name_rc, sizeof name_rc, "train step mHC+recompute/none C=%d", dims[w]);
        if (!bench_selected(name) && !bench_selected(name_rc) && !bench_selected("torch")) continue;
        if (!bt_open(&a, dims[w], heads[w], 1)) { printf("bench_train: %s\n", mhc_ctx_message(&a.ctx)); return; }
        if (!bt_open(&b, dims[w], heads[w], 0)) { printf("bench_train: %s\n", mhc_ctx_message(&b.ctx)); bt_close(&a); return; }
        if (!bt_open(&c, dims[w], heads[w], 2)) {
            printf("bench_train: %s\n", mhc_ctx_message(&c.ctx)); bt_close(&a); bt_close(&b); return;
        }
        if (bt_step(&a) < 0 || bt_step(&b) < 0 || bt_step(&c) < 0) ok = 0;   /* warm-up (arena growth, first touch) */
        for (k = 0; ok && k < BT_REPS; k++) {       /* interleaved, rotating who goes first */
            if (k % 3 == 0) { ta[k] = bt_step(&a); tb[k] = bt_step(&b); tc3[k] = bt_step(&c); }
            else if (k % 3 == 1) { tb[k] = bt_step(&b); tc3[k] = bt_step(&c); ta[k] = bt_step(&a); }
            else { tc3[k] = bt_step(&c); ta[k] = bt_step(&a); tb[k] = bt_step(&b); }
            if (ta[k] < 0 || tb[k] < 0 || tc3[k] < 0) ok = 0;
        }
        if (!ok) {
            printf("bench_train: %s\n", mhc_ctx_message(&a.ctx));
            bt_close(&a); bt_close(&b); bt_close(&c);
            return;
        }
        memcpy(ta0, ta, sizeof ta);                 /* (bench_median reorders) */
        ma = bench_median(ta, BT_REPS);
        mb = bench_median(tb, BT_REPS);
        mc = bench_median(tc3, BT_REPS);
        if (bench_selected(name)) {
            snprintf(note, sizeof note, "ms/step, lower is better; L=%d H=%d T=%d B=%d, median of %d interleaved; "
                     "paper target <= 1.067", BT_LAYERS, heads[w], BT_SEQ, BT_BATCH, BT_REPS);
            bt_row_ms(name, ma, mb, note);
        }
        if (bench_selected(name_rc)) {
            snprintf(note, sizeof note, "ms/step, lower is better; the same, recompute block L_r = %d "
                     "(mhc_tape_set_hc_recompute)", mhc_hc_recompute_block(4, 2 * BT_LAYERS));
            bt_row_ms(name_rc, mc, mb, note);
        }
        snprintf(name, sizeof name, "train step mHC vs torch C=%d", dims[w]);
        if (bench_selected(name)) {
            double torch_s = -1, tc[BT_REPS];
            if (py) {
                /* ours (above) | torch | ours again: the median of all our steps */
                snprintf(cmd, sizeof cmd, "%s%s %s gpt --dim %d --heads %d --layers %d --seq %d --batch %d --n 4 "
                         "--variant mhc --threads %d --warmup 1 --reps 5", bt_torch_env(), py, BT_SCRIPT, dims[w],
                         heads[w], BT_LAYERS, BT_SEQ, BT_BATCH, bench_threads());
                torch_s = bt_popen_median(cmd);
                for (k = 0; k < BT_REPS; k++) tc[k] = k < BT_REPS / 2 ? ta0[k] : bt_step(&a);
                ma = bench_median(tc, BT_REPS);
                snprintf(note, sizeof note, "ms/step, lower is better; PyTorch %s eager CPU fp32 AdamW, median of 5%s%s",
                         bt_torch_version, *bt_torch_env() ? ", torch with OMP_WAIT_POLICY=passive" : "",
                         torch_s > 0 ? "; target < 1" : "; torch_gpt.py failed");
            } else snprintf(note, sizeof note, "ms/step; %s", why);
            bt_row_ms(name, ma, torch_s, note);
        }
        bt_close(&a);
        bt_close(&b);
        bt_close(&c);
    }
}

/* Row 4: the mHC layer alone. */
static void bt_layer_row(const char *py, const char *why) {
    enum { T = 1024, n = 4, C = 512, REPS = 15 };
    const char *name = "mhc layer fwd+bwd T=1024 n=4 C=512";
    mhc_ctx ctx;
    mhc_hc_spec s;
    mhc_rng rng;
    const int m = 2 * n + n * n;
    size_t nx = (size_t)T * n * C;
    mhc_real *buf, *x, *fn, *scale, *base, *f_out, *d_out, *d_li, *li, *hpre, *hpost, *hres, *out;
    mhc_real *dx, *dfn, *dscale, *dbase, *dhpost, *dhres, *dfo;
    double t[REPS], ours, torch_s = -1;
    char note[256], cmd[512];
    int k;
    size_t total;
    if (!bench_selected(name)) return;
    mhc_ctx_init(&ctx);
    if (mhc_hc_resolve(&ctx, NULL, n, &s) != MHC_OK) { printf("bench_train: %s\n", mhc_ctx_message(&ctx)); return; }
    total = 4 * nx + (size_t)m * n * C * 2 + 3 * 2 + (size_t)m * 2 + (size_t)T * C * 4 + (size_t)T * n * 4 +
            (size_t)T * n * n * 2;
    buf = (mhc_real *)calloc(total, sizeof *buf);
    if (!buf) { printf("bench_train: out of memory\n"); return; }
    x = buf; out = x + nx; d_out = out + nx; dx = d_out + nx;
    fn = dx + nx; dfn = fn + (size_t)m * n * C;
    scale = dfn + (size_t)m * n * C; dscale = scale + 3;
    base = dscale + 3; dbase = base + m;
    f_out = dbase + m; d_li = f_out + (size_t)T * C; li = d_li + (size_t)T * C; dfo = li + (size_t)T * C;
    hpre = dfo + (size_t)T * C; hpost = hpre + (size_t)T * n; dhpost = hpost + (size_t)T * n;
    hres = dhpost + (size_t)T * n; dhres = hres + (size_t)T * n * n;
    (void)dhres;
    mhc_rng_seed(&rng, 3);
    mhc_rng_fill_normal(&rng, x, nx, 0, 1);
    mhc_rng_fill_normal(&rng, fn, (size_t)m * n * C, 0, 0.02);
    scale[0] = 0.5; scale[1] = 0.5; scale[2] = 1;
    mhc_rng_fill_normal(&rng, base, (size_t)m, 0, 1);
    mhc_rng_fill_normal(&rng, f_out, (size_t)T * C, 0, 1);
    mhc_rng_fill_normal(&rng, d_out, nx, 0, 1);
    mhc_rng_fill_normal(&rng, d_li, (size_t)T * C, 0, 1);
    for (k = -2; k < REPS; k++) {
        double t0 = bench_now();
        memset(dx, 0, nx * sizeof *dx);
        memset(dfn, 0, (size_t)m * n * C * sizeof *dfn);
        memset(dscale, 0, 3 * sizeof *dscale);
        memset(dbase, 0, (size_t)m * sizeof *dbase);
        memset(dfo, 0, (size_t)T * C * sizeof *dfo);
        memset(dhpost, 0, (size_t)T * n * sizeof *dhpost);
        memset(dhres, 0, (size_t)T * n * n * sizeof *dhres);
        if (mhc_hc_pre_forward(&ctx, &s, li, hpre, hpost, hres, x, fn, scale, base, NULL, T, C) != MHC_OK) break;
        mhc_k_hc_post_forward(out, x, hres, hpost, f_out, T, n, C);
        mhc_k_hc_post_backward(dx, dhres, dhpost, dfo, d_out, x, hres, hpost, f_out, T, n, C);
        if (mhc_hc_pre_backward(&ctx, &s, dx, dfn, dscale, dbase, NULL, d_li, NULL, dhpost, dhres, x, fn, scale,
                                base, NULL, T, C) != MHC_OK) break;
        if (k >= 0) t[k] = bench_now() - t0;
    }
    if (k < REPS) { printf("bench_train: %s\n", mhc_ctx_message(&ctx)); free(buf); return; }
    ours = bench_median(t, REPS);
    if (py) {
        snprintf(cmd, sizeof cmd, "%s%s %s layer --T %d --n %d --dim %d --threads %d --warmup 2 --reps %d", bt_torch_env(),
                 py, BT_SCRIPT, T, n, C, bench_threads(), REPS);
        torch_s = bt_popen_median(cmd);
        snprintf(note, sizeof note, "ms, lower is better; pre+post fwd, post+pre bwd, dsv4; torch eager fp32; "
                 "median of %d; target ratio <= 0.1%s", REPS, torch_s > 0 ? "" : "; torch_gpt.py failed");
    } else snprintf(note, sizeof note, "ms; %s", why);
    bt_row_ms(name, ours, torch_s, note);
    free(buf);
}

/* The child of the RSS rows: build the model, two training steps, print VmHWM in KiB. */
int bench_train_child(int argc, char **argv);
int bench_train_child(int argc, char **argv) {
    bt_run r;
    char line[256];
    long hwm = -1;
    FILE *f;
    int dim, mhc;
    if (argc < 4) return 2;
    mhc = strcmp(argv[2], "mhc") == 0 ? 1 : strcmp(argv[2], "mhc-rc") == 0 ? 2 : 0;
    dim = atoi(argv[3]);
#if MHC__OMP
    omp_set_num_threads(bench_threads());
#endif
    if (!bt_open(&r, dim, dim >= 512 ? 8 : 4, mhc)) return 1;
    if (bt_step(&r) < 0 || bt_step(&r) < 0) { bt_close(&r); return 1; }
    f = fopen("/proc/self/status", "r");
    if (f) {
        while (fgets(line, sizeof line, f))
            if (strncmp(line, "VmHWM:", 6) == 0) hwm = atol(line + 6);
        fclose(f);
    }
    bt_close(&r);
    printf("median_s %ld\n", hwm);   /* (the same reader as the timings: the value is KiB here) */
    return hwm > 0 ? 0 : 1;
}

/* Row 5: peak RSS, each configuration in a fresh child process. */
static void bt_rss_rows(void) {
    const int dims[2] = {256, 512};
    char exe[1024], cmd[1200], name[96], note[256];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    int w;
    if (len <= 0) { printf("bench_train: cannot find this executable for the RSS rows\n"); return; }
    exe[len] = 0;
    for (w = 0; w < 2; w++) {
        static const char *const kinds[3] = {"none", "mhc", "mhc-rc"};
        double kib[3];
        int v, any = 0;
        char name_rc[96];
        snprintf(name, sizeof name, "peak RSS mHC/none C=%d", dims[w]);
        snprintf(name_rc, sizeof name_rc, "peak RSS mHC+recompute/none C=%d", dims[w]);
        if (!bench_selected(name) && !bench_selected(name_rc)) continue;
        for (v = 0; v < 3; v++) {
            snprintf(cmd, sizeof cmd, "'%s' --child-rss %s %d", exe, kinds[v], dims[w]);
            kib[v] = bt_popen_median(cmd);
            if (kib[v] <= 0) any = 1;
        }
        if (any) { printf("bench_train: the RSS child failed\n"); continue; }
        if (bench_selected(name)) {
            snprintf(note, sizeof note, "MiB VmHWM of a child: model + 2 train steps, L=%d T=%d B=%d; recomputation off",
                     BT_LAYERS, BT_SEQ, BT_BATCH);
            bench_row(name, kib[1] / 1024.0, kib[0] / 1024.0, note);
        }
        if (bench_selected(name_rc)) {
            snprintf(note, sizeof note, "MiB; the same with recompute block L_r = %d; target <= 1.15",
                     mhc_hc_recompute_block(4, 2 * BT_LAYERS));
            bench_row(name_rc, kib[2] / 1024.0, kib[0] / 1024.0, note);
        }
    }
}

void bench_train(void) {
    char why[256] = "";
    const char *py;
#if MHC__OMP
    omp_set_num_threads(bench_threads());
#endif
    py = bt_python(why, sizeof why);
    bt_train_rows(py, why);
    bt_layer_row(py, why);
    bt_rss_rows();
}
