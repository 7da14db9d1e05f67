/* bench/bench_step.c - the training step of bench_train.c (mHC n = 4, dsv4, L = 4, T = 128, B = 4)
 * against its build, its arithmetic and a busy machine, and the GELU kernel:
 *   step default build/native C   the step in build/bench_default (this file and the library built
 *                                 with plain `-O2`, the README's command, no -march: every SIMD
 *                                 kernel picked at run time) against this binary (BENCH_OPT,
 *                                 -O3 -march=native); each in a child process (`--child-step C
 *                                 REPS`), two children of each, alternating; ratio = default /
 *                                 native (target <= 1.10).
 *   step / flop limit C           the native step against its counted FLOPs divided by the fma peak
 *                                 measured in this run (bm_peak, bench_matmul.c); ratio = step /
 *                                 limit (target <= 2.5 at C = 512). The count, 3 x the forward
 *                                 (the backward does two products per forward product):
 *                                   per block  24 N C^2            qkv, proj, fc1, fc2
 *                                            + 2 B T (T + 1) C      q k^T and p v, causal half
 *                                            + 2 x 240 N C          mHC: 2 (nC) m with m = 24 for
 *                                                                   the logits, 2nC the layer input,
 *                                                                   2n^2 C + 2nC the post mix
 *                                   plus       2 N C V              the LM head
 *                                 (N = B T tokens; norms, softmax, GELU, AdamW not counted).
 *   step 1 busy process C=256     the step while one other process spins on a core, ours (children)
 *                                 against PyTorch's (torch_gpt.py), both with OMP_WAIT_POLICY=passive
 *                                 unless the caller set a policy (passive: build/mhc's default,
 *                                 MHC_OMP_PASSIVE_DEFAULT in mhc.h); then each side's slowdown
 *                                 (loaded / quiet, in percent; target ours <= PyTorch's); then our
 *                                 loaded step with OMP_WAIT_POLICY=passive and =active against
 *                                 libgomp's default (unset).
 *   gelu fwd+bwd                  mhc_k_act_forward + _backward (float GELU: the vectorised kernel)
 *                                 against the same loop over mhc_act_value / mhc_act_deriv (libm
 *                                 tanh in double), both on bench_threads() threads; Melem/s. */
#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>

#define BS_REPS 5

/* The counted FLOPs of one mHC n = 4 training step of bench_train's model at width C. */
static double bs_step_flops(int C) {
    const double N = (double)BT_BATCH * BT_SEQ, T = BT_SEQ, B = BT_BATCH, c = C, V = 256, n = 4, m = 2 * n + n * n;
    const double hc = 2 * (n * c) * m + 2 * n * c + 2 * n * n * c + 2 * n * c;   /* per token, per sublayer */
    const double block = 24 * N * c * c + 2 * B * T * (T + 1) * c + 2 * N * hc;
    return 3 * (BT_LAYERS * block + 2 * N * c * V);
}

/* The child: one mHC n = 4 model at width C, one warm-up step, REPS steps; prints "median_s S".
   An optional fourth argument picks the residual: "mhc" (the default), "none", "mhc-rc" (with
   recomputation); to profile one of them alone: perf record build/bench --child-step 512 12 none. */
int bench_step_child(int argc, char **argv);
int bench_step_child(int argc, char **argv) {
    bt_run r;
    double t[32];
    int dim, reps, k, variant = 1;
    if (argc < 4) return 2;
    dim = atoi(argv[2]);
    reps = atoi(argv[3]);
    if (argc > 4) variant = strcmp(argv[4], "none") == 0 ? 0 : strcmp(argv[4], "mhc-rc") == 0 ? 2 : strcmp(argv[4], "mhc") == 0 ? 1 : -1;
    if (dim < 16 || dim > 4096 || reps < 1 || reps > 32 || variant < 0) return 2;
#if MHC__OMP
    omp_set_num_threads(bench_threads());
#endif
    if (!bt_open(&r, dim, dim >= 512 ? 8 : 4, variant)) { fprintf(stderr, "%s\n", mhc_ctx_message(&r.ctx)); return 1; }
    if (bt_step(&r) < 0) { bt_close(&r); return 1; }
    for (k = 0; k < reps; k++)
        if ((t[k] = bt_step(&r)) < 0) { bt_close(&r); return 1; }
    bt_close(&r);
    printf("median_s %.6f\nisa %s\n", bench_median(t, reps), mhc_k_matmul_isa());
    return 0;
}

/* This executable's path and the default build's (bench_default next to it); 0 if unknown. */
static int bs_exes(char *self, size_t nself, char *dflt, size_t ndflt) {
    ssize_t len = readlink("/proc/self/exe", self, nself - 1);
    char *slash;
    if (len <= 0) return 0;
    self[len] = 0;
    snprintf(dflt, ndflt, "%s", self);
    slash = strrchr(dflt, '/');
    if (!slash || (size_t)(slash - dflt) + 16 >= ndflt) return 0;
    strcpy(slash + 1, "bench_default");
    return 1;
}

/* One child step measurement: `ENV 'EXE' --child-step C REPS`; seconds or -1. */
static double bs_child(const char *env, const char *exe, int dim) {
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "%s'%s' --child-step %d %d", env, exe, dim, BS_REPS);
    return bt_popen_median(cmd);
}

/* A busy process: spins on one core until bs_busy_stop. */
static pid_t bs_busy_start(void) {
    pid_t p;
    fflush(stdout);
    p = fork();
    if (p == 0) {
        volatile double x = 1.0;
        for (;;) x = x * 1.0000001 + 1e-9;
    }
    bench_sleep(0.2);   /* let it get going */
    return p;
}

static void bs_busy_stop(pid_t p) {
    if (p <= 0) return;
    kill(p, SIGKILL);
    waitpid(p, NULL, 0);
}

static double bs_min(double a, double b) { return a <= 0 ? b : b <= 0 ? a : a < b ? a : b; }

/* Rows (a) and (b): the default build and the flop limit, at C = 256 and 512. */
static void bs_build_rows(void) {
    const int dims[2] = {256, 512};
    char self[1024], dflt[1100], name[96], name_fl[96], note[320];
    int w, have_dflt;
    if (!bs_exes(self, sizeof self, dflt, sizeof dflt)) { printf("bench_step: cannot find this executable\n"); return; }
    have_dflt = access(dflt, X_OK) == 0;
    for (w = 0; w < 2; w++) {
        double nat = -1, def = -1, flops, peak, limit;
        int k;
        snprintf(name, sizeof name, "step default build/native C=%d", dims[w]);
        snprintf(name_fl, sizeof name_fl, "step / flop limit C=%d", dims[w]);
        if (!bench_selected(name) && !bench_selected(name_fl)) continue;
        for (k = 0; k < 2; k++) {   /* default, native, default, native */
            if (have_dflt && bench_selected(name)) def = bs_min(def, bs_child("", dflt, dims[w]));
            nat = bs_min(nat, bs_child("", self, dims[w]));
        }
        if (nat <= 0) { printf("bench_step: the step child failed\n"); return; }
        if (bench_selected(name)) {
            if (have_dflt)
                snprintf(note, sizeof note, "ms/step, lower is better; bench_default (cc -O2) vs this binary (BENCH_OPT), "
                         "children, best of 2 x median of %d; target <= 1.10", BS_REPS);
            else snprintf(note, sizeof note, "ms/step; bench_default not built next to this binary (make bench builds it)");
            bt_row_ms(name, def > 0 ? def : nat, def > 0 ? nat : 0, note);
        }
        if (bench_selected(name_fl)) {
            flops = bs_step_flops(dims[w]);
            peak = bm_peak();
            limit = flops / (peak * 1e9);
            snprintf(note, sizeof note, "ms/step vs ms at the fma peak: %.2f GFLOP counted (3 x forward: matmuls, causal "
                     "attention, mHC) / %.1f GFLOP/s; step at %.0f%% of peak; target <= 2.5 at C=512",
                     flops * 1e-9, peak, 100 * limit / nat);
            bt_row_ms(name_fl, nat, limit, note);
        }
    }
}

/* Row (c): the step under one busy process, ours and PyTorch's, and the wait policies. */
static void bs_load_rows(const char *py, const char *why) {
    enum { C = 256 };
    const char *name = "step 1 busy process C=256", *name_sd = "step slowdown 1 busy ours/torch C=256";
    const char *name_pp = "step 1 busy, wait passive/default", *name_pa = "step 1 busy, wait active/default";
    char self[1024], dflt[1100], note[320], cmd[600];
    double q = -1, l = -1, tq = -1, tl = -1, lp = -1, la = -1, ld = -1;
    pid_t busy;
    int k;
    if (!bench_selected(name) && !bench_selected(name_sd) && !bench_selected(name_pp) && !bench_selected(name_pa))
        return;
    if (!bs_exes(self, sizeof self, dflt, sizeof dflt)) { printf("bench_step: cannot find this executable\n"); return; }
    if (py)
        snprintf(cmd, sizeof cmd, "%s%s %s gpt --dim %d --heads 4 --layers %d --seq %d --batch %d --n 4 --variant mhc "
                 "--threads %d --warmup 1 --reps %d", bt_torch_env(), py, BT_SCRIPT, C, BT_LAYERS, BT_SEQ, BT_BATCH,
                 bench_threads(), BS_REPS);
    /* quiet: ours, torch */
    for (k = 0; k < 2; k++) q = bs_min(q, bs_child(bt_torch_env(), self, C));
    if (py) tq = bt_popen_median(cmd);
    /* one busy process: ours (the caller's policy), torch, then the policies */
    busy = bs_busy_start();
    if (busy < 0) { printf("bench_step: fork failed\n"); return; }
    for (k = 0; k < 2; k++) l = bs_min(l, bs_child(bt_torch_env(), self, C));
    if (py) tl = bt_popen_median(cmd);
    if (bench_selected(name_pp) || bench_selected(name_pa)) {
        ld = bs_child("env -u OMP_WAIT_POLICY ", self, C);
        lp = bs_child("OMP_WAIT_POLICY=passive ", self, C);
        la = bs_child("OMP_WAIT_POLICY=active ", self, C);
    }
    bs_busy_stop(busy);
    if (q <= 0 || l <= 0) { printf("bench_step: the step child failed\n"); return; }
    if (bench_selected(name)) {
        snprintf(note, sizeof note, "ms/step under 1 spinning process, lower is better; both OMP_WAIT_POLICY=%s; %s",
                 getenv("OMP_WAIT_POLICY") ? getenv("OMP_WAIT_POLICY") : "passive (build/mhc's default)",
                 py ? (tl > 0 ? "PyTorch eager, its quiet run and loaded run in the next row" : "torch_gpt.py failed") : why);
        bt_row_ms(name, l, tl, note);
    }
    if (bench_selected(name_sd)) {
        snprintf(note, sizeof note, "loaded / quiet in %%: ours %.0f / %.0f ms, PyTorch %.0f / %.0f ms; target ratio <= 1",
                 1e3 * l, 1e3 * q, 1e3 * tl, 1e3 * tq);
        bench_row(name_sd, 100 * l / q, tl > 0 && tq > 0 ? 100 * tl / tq : 0, note);
    }
    if (bench_selected(name_pp) && ld > 0)
        bt_row_ms(name_pp, lp, ld, "ms/step under 1 busy process: OMP_WAIT_POLICY=passive vs unset (libgomp's default)");
    if (bench_selected(name_pa) && ld > 0)
        bt_row_ms(name_pa, la, ld, "ms/step under 1 busy process: OMP_WAIT_POLICY=active vs unset (libgomp's default)");
}

/* Row (d'): the GELU, forward + backward, vectorised against libm in double. */
static void bs_gelu_row(void) {
    enum { NE = 1 << 20, REPS = 9 };
    const char *name = "gelu fwd+bwd 1M vs libm tanh";
    mhc_real *x, *y, *dy, *dx;
    mhc_rng rng;
    double to[REPS], tr[REPS];
    char note[200];
    int k;
    long i;
    if (!bench_selected(name)) return;
    x = (mhc_real *)malloc(4 * (size_t)NE * sizeof *x);
    if (!x) { printf("bench_step: out of memory\n"); return; }
    y = x + NE; dy = y + NE; dx = dy + NE;
    mhc_rng_seed(&rng, 5);
    mhc_rng_fill_normal(&rng, x, NE, 0, 2);
    mhc_rng_fill_normal(&rng, dy, NE, 0, 1);
    memset(dx, 0, (size_t)NE * sizeof *dx);
    for (k = -1; k < REPS; k++) {
        double t0 = bench_now(), t1;
        mhc_k_act_forward(MHC_ACT_GELU, y, x, NE);
        mhc_k_act_backward(MHC_ACT_GELU, dx, dy, x, NE);
        t1 = bench_now();
        MHC__OMP_FOR(1)
        for (i = 0; i < NE; i++) y[i] = (mhc_real)mhc_act_value(MHC_ACT_GELU, (double)x[i]);
        MHC__OMP_FOR(1)
        for (i = 0; i < NE; i++) dx[i] += (mhc_real)(mhc_act_deriv(MHC_ACT_GELU, (double)x[i]) * (double)dy[i]);
        if (k >= 0) { to[k] = t1 - t0; tr[k] = bench_now() - t1; }
    }
    snprintf(note, sizeof note, "Melem/s (fwd + bwd per element), %s; kernel %s; libm reference in double, same threads",
             MHC_REAL_NAME, sizeof(mhc_real) == 4 ? (mhc_k_matmul_isa()[0] == 'a' ? "avx2 lanes" : "portable") : "libm");
    bench_row(name, 1e-6 * NE / bench_median(to, REPS), 1e-6 * NE / bench_median(tr, REPS), note);
    free(x);
}

void bench_step(void) {
    char why[256] = "";
    const char *py;
#if MHC__OMP
    omp_set_num_threads(bench_threads());
#endif
    py = bt_python(why, sizeof why);
    bs_build_rows();
    bs_load_rows(py, why);
    bs_gelu_row();
}
