/* tools/train.c - `build/mhc train`, `build/mhc demo` and `build/mhc gpt-export`: train the small
 * GPT of gpt/gpt.h on byte-level text with AdamW, log CSV, plot SVG, save and resume checkpoints.
 *
 * A run is its recorded configuration (the model, the data, the batch, the schedule, the seed: see
 * train__keys) plus the per-invocation options (where to save and log, threads, printing). The
 * checkpoint's config blob is that record, as versioned text ("mhc-train-config 1", one "key value"
 * line per field). On --resume every recorded option comes from the checkpoint; one given on the
 * command line must agree with it (or it is refused, naming both values), except --steps with
 * --extend, which re-derives the schedule for a larger total, and --eval-every / --eval-batches,
 * which change only what is measured.
 * Signals (tools/interrupt.h): the first SIGINT or SIGTERM finishes the step, saves (--save),
 * closes the log and exits 130 / 143; a second one exits at once.
 * POSIX (isatty, clock_gettime, sigaction, truncate, realpath); the library itself stays plain C99. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700       /* realpath */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <limits.h>
#include <stddef.h>
#include <unistd.h>
#include <sys/stat.h>
#include <errno.h>
#include "mhc.h"
#include "gpt/gpt.h"
#include "tools/tool.h"
#include "gpt/corpus.h"
#include "tools/plot.h"
#include "tools/interrupt.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

/* The most memory the options of one run may ask for (bytes, by gpt_memory_bytes, an upper bound):
   32 GiB unless the build defines another. */
#ifndef TRAIN_MEMORY_MAX
#define TRAIN_MEMORY_MAX (32.0 * 1073741824.0)
#endif

static double train__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------------ */

/* The recorded options, as bits of train_opts.given (set when the option is on the command line). */
enum {
    TG_DATA, TG_RESIDUAL, TG_PRESET, TG_N, TG_LAYERS, TG_DIM, TG_HEADS, TG_SEQ, TG_BATCH, TG_STEPS, TG_LR,
    TG_WARMUP, TG_SCHEDULE, TG_WD, TG_CLIP, TG_SEED, TG_EVAL_EVERY, TG_EVAL_BATCHES, TG_NORM_EPS_MODE,
    TG_NORM_SCOPE, TG_SK_EPS_MODE, TG_SK_ORDER, TG_EXP_SHIFT, TG_COUNT
};
#define TRAIN_GIVEN(o, bit) (((o)->given >> (bit)) & 1u)

/* --fault-signal K:WHERE[:term]: testing aid, raise SIGINT (SIGTERM) at step K */
enum { TF_NONE, TF_STEP, TF_EVAL, TF_SAVE, TF_LOG, TF_TWICE };

typedef struct train_opts {
    const char *data, *save, *resume, *log, *plot, *label;
    gpt_config cfg;
    int batch, threads, eval_batches, quiet, extend, recompute, schedule;
    long steps, warmup, eval_every, save_every, print_every, stop_after, fault_nan_step;
    long fault_signal_step;
    int fault_signal_where, fault_signal_sig;
    double lr, weight_decay, grad_clip;
    unsigned long long seed;
    unsigned given;
} train_opts;

static void train_defaults(train_opts *o) {
    memset(o, 0, sizeof *o);
    o->cfg.vocab = 256;
    o->cfg.seq = 64;
    o->cfg.dim = 64;
    o->cfg.heads = 4;
    o->cfg.layers = 4;
    o->cfg.n = 4;
    o->cfg.hc.variant = MHC_VARIANT_MHC;
    o->cfg.hc.preset = MHC_PRESET_DSV4;
    o->batch = 8;
    o->steps = 200;
    o->lr = 3e-3;
    o->weight_decay = 0.1;
    o->grad_clip = 1.0;
    o->seed = 1337;
    o->eval_every = 50;
    o->eval_batches = 8;
    o->warmup = -1;                /* 10% of the steps */
    o->save_every = -1;            /* a tenth of the steps, rounded up */
    o->print_every = -1;           /* about 20 lines per run */
    o->schedule = MHC_LR_COSINE;
}

static int train__long(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    long x;
    if (!v) { fprintf(stderr, "train: %s needs a value\n", opt); return 0; }
    errno = 0;
    x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || errno != 0 || x < lo || x > hi) {
        fprintf(stderr, "train: %s '%s' is not an integer in [%ld, %ld]\n", opt, v, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int train__int(const char *opt, const char *v, int lo, int hi, int *out) {
    long x;
    if (!train__long(opt, v, lo, hi, &x)) return 0;
    *out = (int)x;
    return 1;
}

static int train__num(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    double x;
    if (!v) { fprintf(stderr, "train: %s needs a value\n", opt); return 0; }
    x = strtod(v, &end);
    if (*v == 0 || *end != 0 || !(x >= lo && x <= hi)) {
        fprintf(stderr, "train: %s '%s' is not a number in [%g, %g]\n", opt, v, lo, hi);
        return 0;
    }
    *out = x;
    return 1;
}

static int train__u64(const char *opt, const char *v, unsigned long long *out) {
    char *end;
    unsigned long long x;
    if (!v) { fprintf(stderr, "train: %s needs a value\n", opt); return 0; }
    errno = 0;
    x = strtoull(v, &end, 10);
    if (*v == 0 || *v == '-' || *v == '+' || *end != 0 || errno != 0) {
        fprintf(stderr, "train: %s '%s' is not an integer in [0, %llu]\n", opt, v, ULLONG_MAX);
        return 0;
    }
    *out = x;
    return 1;
}

static const char *train__schedule_name(int k) {
    return k == MHC_LR_COSINE ? "cosine" : k == MHC_LR_STEP ? "step" : k == MHC_LR_CONSTANT ? "constant" : "?";
}
static int train__schedule_parse(const char *v, int *out) {
    if (v && !strcmp(v, "cosine")) *out = MHC_LR_COSINE;
    else if (v && !strcmp(v, "step")) *out = MHC_LR_STEP;
    else if (v && !strcmp(v, "constant")) *out = MHC_LR_CONSTANT;
    else return 0;
    return 1;
}

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: mhc train [options]\n"
        "The run (recorded in every checkpoint; on --resume they come from it, and one given again must agree):\n"
        "  --data FILE          text file, byte-level tokens (default: the generated corpus); the checkpoint\n"
        "                       records its path, size and hash, and a resume checks the bytes are the same\n"
        "  --residual KIND      none | hc | mhc | lite | kromhc | ortho (default mhc)\n"
        "  --preset NAME        dsv4 | tilekernels | paper | lite | kromhc | ortho | megatron | liger |\n"
        "                       lucidrains | mhc_cu (default dsv4; for --residual lite, kromhc and ortho the\n"
        "                       preset of that name; the peers' conventions: README \"Conventions\")\n"
        "  --norm-eps-mode M    inside | outside     --norm-scope S        flat | stream\n"
        "  --sinkhorn-eps-mode M add | clamp | threshold | zero\n"
        "  --sinkhorn-order O   col_first | row_first  --exp-shift S       none | row_max | col_max\n"
        "                       (the convention knobs, MHC_SPEC.md Sec. 8; default: the preset's)\n"
        "  --n N                streams (default 4; none uses 1)\n"
        "  --layers L --dim C --heads H --seq T --batch B   model and batch (default 4 64 4 64 8)\n"
        "  --steps S            total steps of the schedule (default 200)\n"
        "  --lr LR              peak learning rate (default 3e-3; 0 trains at 0)\n"
        "  --warmup W           warmup steps (default 10%% of the steps)\n"
        "  --schedule KIND      cosine (to 0 at the last step) | step (paper: x0.316 at 80%%, x0.1 at 90%%)\n"
        "                       | constant (default cosine)\n"
        "  --weight-decay WD    (default 0.1; 0 = none)   --grad-clip G (default 1.0; 0 = off)\n"
        "  --seed S             (default 1337)\n"
        "  --eval-every K       validation loss every K steps and at the last step (default 50; 0 = never)\n"
        "  --eval-batches N     validation batches (default 8); these two may change on --resume\n"
        "This invocation:\n"
        "  --resume FILE        continue the checkpoint's run bit for bit to its --steps; the CSV --log is\n"
        "                       cut back to the checkpoint's step first, so every step is in it once\n"
        "  --steps S --extend   on --resume: train past the checkpoint's schedule, re-deriving it for S steps\n"
        "                       (the warmup stays; the learning rate of the next step is printed)\n"
        "  --stop-after K       stop (and save) after step K, keeping the schedule of --steps\n"
        "  --save FILE          the checkpoint, written atomically (FILE is always whole): every\n"
        "                       --save-every K steps (default: a tenth of the run, rounded up; 0 = only\n"
        "                       these others), after the last step, at --stop-after, and when interrupted\n"
        "  --log FILE.csv       one row per step (a new file gets the header)   --plot FILE.svg\n"
        "  --threads K          (results are the same bits for any K)   --label NAME (for the lines printed)\n"
        "  --print-every K      on a terminal the progress line updates every step; otherwise one line\n"
        "                       every K steps (default: about 20 lines per run; 0 = none)\n"
        "  --quiet              no progress or summary lines (notes, warnings and errors still print)\n"
        "  --recompute K|auto   recompute the stream states in blocks of K sublayers in the backward\n"
        "                       (auto: the paper's sqrt(nL/(n+2)); 0 = off, the default); same results, less memory\n"
        "Ctrl-C (SIGINT) or SIGTERM: the current step finishes, the checkpoint is saved (with --save), the log\n"
        "closed, and the run exits with 130 (143 for SIGTERM), printing the command that resumes it; a second\n"
        "Ctrl-C exits at once, leaving the last complete checkpoint and no temporary file.\n"
        "Testing aids: --fault-nan-step K (the loss of step K is taken as NaN: the stop path);\n"
        "  --fault-signal K:WHERE[:term] (raise SIGINT, or SIGTERM, at step K; WHERE: step (inside the\n"
        "  step), eval, save (just before a periodic save), log (while writing the row), twice (two\n"
        "  signals inside the step)).\n"
        "Exit codes: 0 done (or nothing to do), 1 a run or a file failed, 2 usage (options the checkpoint\n"
        "contradicts included), 130 / 143 interrupted.\n");
}

static void train_demo_usage(FILE *f) {
    fprintf(f,
        "usage: mhc demo [--projections] [options]   (make demo runs it built for this machine)\n"
        "--projections: none, hc, mhc, lite, kromhc and ortho instead, one table (build/demo/projections/;\n"
        "  make demo-projections), without the samples.\n"
        "Trains the plain residual (none), Hyper-Connections (hc) and mHC (mhc, dsv4) side by side with the\n"
        "same seed and budget: 8 blocks (16 sublayers), dim 64, 4 heads, seq 64, batch 8, 400 steps, lr 4e-3,\n"
        "warmup 40, cosine; on the generated corpus unless --data is given. Prints a table (train and val loss,\n"
        "the largest Amax gains, time) and a short sample of text from each trained model (mhc sample).\n"
        "Writes build/demo/{none,hc,mhc}.csv (logs), build/demo/{none,hc,mhc}.ckpt (checkpoints, for\n"
        "mhc sample --resume) and build/demo/demo.svg (the curves).\n"
        "Options: the run options of mhc train change the budget for all three (--steps, --lr, --layers,\n"
        "--dim, --heads, --seq, --batch, --n, --preset, --data, --seed, --eval-every, --eval-batches, ...),\n"
        "--threads, --quiet. Not allowed: --residual, --resume, --extend, --save, --log, --plot, --label.\n");
}

/* Parse argv into o. Returns 1 (go on), 0 (usage error: exit 2) or -1 (--help printed: exit 0). */
static int train_parse(int argc, char **argv, train_opts *o, int demo) {
    int i;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1, bit = -1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            if (demo) train_demo_usage(stdout);
            else train_usage(stdout);
            return -1;
        }
        if (demo && (!strcmp(a, "--residual") || !strcmp(a, "--resume") || !strcmp(a, "--extend") ||
                     !strcmp(a, "--save") || !strcmp(a, "--log") || !strcmp(a, "--plot") || !strcmp(a, "--label"))) {
            fprintf(stderr, "demo: %s is not a demo option (the demo names its three runs and their files itself; "
                            "use mhc train for one run)\n", a);
            return 0;
        }
        if (!strcmp(a, "--data")) { o->data = v; bit = TG_DATA; }
        else if (!strcmp(a, "--save")) o->save = v;
        else if (!strcmp(a, "--resume")) o->resume = v;
        else if (!strcmp(a, "--log")) o->log = v;
        else if (!strcmp(a, "--plot")) o->plot = v;
        else if (!strcmp(a, "--label")) o->label = v;
        else if (!strcmp(a, "--residual")) {
            mhc_hc_variant var;
            ok = v && mhc_hc_variant_parse(&ctx, v, &var) == MHC_OK;
            if (ok) o->cfg.hc.variant = var;
            else fprintf(stderr, "train: --residual: %s\n", v ? mhc_ctx_message(&ctx) : "needs a value");
            bit = TG_RESIDUAL;
        } else if (!strcmp(a, "--preset")) {
            mhc_hc_preset p;
            ok = v && mhc_hc_preset_parse(&ctx, v, &p) == MHC_OK;
            if (ok) o->cfg.hc.preset = p;
            else fprintf(stderr, "train: --preset: %s\n", v ? mhc_ctx_message(&ctx) : "needs a value");
            bit = TG_PRESET;
        } else if (!strcmp(a, "--norm-eps-mode") || !strcmp(a, "--norm-scope") || !strcmp(a, "--sinkhorn-eps-mode") ||
                   !strcmp(a, "--sinkhorn-order") || !strcmp(a, "--exp-shift")) {
            mhc_hc_config *h = &o->cfg.hc;
            mhc_result r = MHC_ERR_NULL;
            if (!strcmp(a, "--norm-eps-mode")) {
                bit = TG_NORM_EPS_MODE;
                if (v) r = mhc_norm_eps_mode_parse(&ctx, v, &h->norm_eps_mode);
            } else if (!strcmp(a, "--norm-scope")) {
                bit = TG_NORM_SCOPE;
                if (v) r = mhc_norm_scope_parse(&ctx, v, &h->norm_scope);
            } else if (!strcmp(a, "--sinkhorn-eps-mode")) {
                bit = TG_SK_EPS_MODE;
                if (v) r = mhc_sinkhorn_eps_mode_parse(&ctx, v, &h->sinkhorn_eps_mode);
            } else if (!strcmp(a, "--sinkhorn-order")) {
                bit = TG_SK_ORDER;
                if (v) r = mhc_sinkhorn_order_parse(&ctx, v, &h->sinkhorn_order);
            } else {
                bit = TG_EXP_SHIFT;
                if (v) r = mhc_exp_shift_parse(&ctx, v, &h->exp_shift);
            }
            ok = r == MHC_OK;
            if (!ok) fprintf(stderr, "train: %s: %s\n", a, v ? mhc_ctx_message(&ctx) : "needs a value");
        } else if (!strcmp(a, "--schedule")) {
            ok = train__schedule_parse(v, &o->schedule);
            if (!ok) fprintf(stderr, "train: --schedule '%s': expected cosine, step or constant\n", v ? v : "");
            bit = TG_SCHEDULE;
        }
        else if (!strcmp(a, "--n")) { ok = train__int(a, v, 1, 64, &o->cfg.n); bit = TG_N; }
        else if (!strcmp(a, "--layers")) { ok = train__int(a, v, 1, GPT_MAX_LAYERS, &o->cfg.layers); bit = TG_LAYERS; }
        else if (!strcmp(a, "--dim")) { ok = train__int(a, v, 1, 1 << 14, &o->cfg.dim); bit = TG_DIM; }
        else if (!strcmp(a, "--heads")) { ok = train__int(a, v, 1, 1 << 14, &o->cfg.heads); bit = TG_HEADS; }
        else if (!strcmp(a, "--seq")) { ok = train__int(a, v, 1, 1 << 14, &o->cfg.seq); bit = TG_SEQ; }
        else if (!strcmp(a, "--batch")) { ok = train__int(a, v, 1, 1 << 16, &o->batch); bit = TG_BATCH; }
        else if (!strcmp(a, "--steps")) { ok = train__long(a, v, 1, 1L << 30, &o->steps); bit = TG_STEPS; }
        else if (!strcmp(a, "--threads")) ok = train__int(a, v, 1, 1024, &o->threads);
        else if (!strcmp(a, "--eval-every")) { ok = train__long(a, v, 0, 1L << 30, &o->eval_every); bit = TG_EVAL_EVERY; }
        else if (!strcmp(a, "--eval-batches")) { ok = train__int(a, v, 1, 1 << 16, &o->eval_batches); bit = TG_EVAL_BATCHES; }
        else if (!strcmp(a, "--warmup")) { ok = train__long(a, v, 0, 1L << 30, &o->warmup); bit = TG_WARMUP; }
        else if (!strcmp(a, "--stop-after")) ok = train__long(a, v, 1, 1L << 30, &o->stop_after);
        else if (!strcmp(a, "--save-every")) ok = train__long(a, v, 0, 1L << 30, &o->save_every);
        else if (!strcmp(a, "--print-every")) ok = train__long(a, v, 0, 1L << 30, &o->print_every);
        else if (!strcmp(a, "--recompute")) {
            if (v && !strcmp(v, "auto")) o->recompute = -1;
            else ok = train__int(a, v, 0, 1000000, &o->recompute);
        }
        else if (!strcmp(a, "--fault-nan-step")) ok = train__long(a, v, 1, 1L << 30, &o->fault_nan_step);
        else if (!strcmp(a, "--fault-signal")) {
            char where[16] = "", sig[8] = "int";
            long k = 0;
            int got = v ? sscanf(v, "%ld:%15[a-z]:%7[a-z]", &k, where, sig) : 0;
            o->fault_signal_where = !strcmp(where, "step") ? TF_STEP : !strcmp(where, "eval") ? TF_EVAL
                                  : !strcmp(where, "save") ? TF_SAVE : !strcmp(where, "log") ? TF_LOG
                                  : !strcmp(where, "twice") ? TF_TWICE : TF_NONE;
            o->fault_signal_sig = !strcmp(sig, "term") ? SIGTERM : !strcmp(sig, "int") ? SIGINT : 0;
            o->fault_signal_step = k;
            ok = got >= 2 && k >= 1 && o->fault_signal_where != TF_NONE && o->fault_signal_sig != 0;
            if (!ok) fprintf(stderr, "train: --fault-signal '%s': expected K:step|eval|save|log|twice[:int|term]\n",
                             v ? v : "");
        }
        else if (!strcmp(a, "--lr")) { ok = train__num(a, v, 0, 10, &o->lr); bit = TG_LR; }
        else if (!strcmp(a, "--weight-decay")) { ok = train__num(a, v, 0, 10, &o->weight_decay); bit = TG_WD; }
        else if (!strcmp(a, "--grad-clip")) { ok = train__num(a, v, 0, 1e9, &o->grad_clip); bit = TG_CLIP; }
        else if (!strcmp(a, "--seed")) { ok = train__u64(a, v, &o->seed); bit = TG_SEED; }
        else if (!strcmp(a, "--quiet")) { o->quiet = 1; takes = 0; }
        else if (!strcmp(a, "--extend")) { o->extend = 1; takes = 0; }
        else {
            fprintf(stderr, "%s: unknown option '%s' (%s --help lists them)\n", demo ? "demo" : "train", a,
                    demo ? "mhc demo" : "mhc train");
            return 0;
        }
        if (!ok) return 0;
        if (takes) {
            if (!v) { fprintf(stderr, "train: %s needs a value\n", a); return 0; }
            i++;
        }
        if (bit >= 0) o->given |= 1u << bit;
    }
    if (o->extend && !o->resume) {
        fprintf(stderr, "train: --extend continues a checkpoint past its schedule; it needs --resume FILE (and --steps)\n");
        return 0;
    }
    if (o->extend && !TRAIN_GIVEN(o, TG_STEPS)) {
        fprintf(stderr, "train: --extend needs --steps S, the new total number of steps\n");
        return 0;
    }
    return 1;
}

/* The tool's defaults for a new run's options that were not given (the library decides what is valid:
   --residual none --n 4 is refused by mhc_hc_resolve, not corrected here). */
static void train_fill_new_run(train_opts *o) {
    if (!TRAIN_GIVEN(o, TG_N) && o->cfg.hc.variant == MHC_VARIANT_NONE) o->cfg.n = 1;
    if (!TRAIN_GIVEN(o, TG_PRESET) && o->cfg.hc.variant == MHC_VARIANT_LITE) o->cfg.hc.preset = MHC_PRESET_LITE;
    if (!TRAIN_GIVEN(o, TG_PRESET) && o->cfg.hc.variant == MHC_VARIANT_KROMHC) o->cfg.hc.preset = MHC_PRESET_KROMHC;
    if (!TRAIN_GIVEN(o, TG_PRESET) && o->cfg.hc.variant == MHC_VARIANT_ORTHO) o->cfg.hc.preset = MHC_PRESET_ORTHO;
    if (o->warmup < 0) o->warmup = o->steps / 10;
}

/* ---- data ---------------------------------------------------------------------------------- */

#define TRAIN_CORPUS_SEED 20261128u

typedef struct train_data {
    unsigned char *bytes;
    size_t len, split;             /* [0, split) trains, [split, len) validates */
    int generated;                 /* the corpus of gpt/corpus.h */
    char *path;                    /* the file's absolute path (realpath), or NULL (generated) */
    unsigned long long hash;       /* FNV-1a 64 of the bytes */
} train_data;

static unsigned long long train__fnv1a64(const unsigned char *b, size_t n) {
    unsigned long long h = 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

static void train_data_free(train_data *d) {
    free(d->bytes);
    free(d->path);
    memset(d, 0, sizeof *d);
}

/* Read path (NULL: generate the corpus). Returns 1, or 0 with a message printed. */
static int train_load_data(const char *path, train_data *d) {
    mhc_ctx ctx;
    void *buf = NULL;
    size_t len = 0;
    memset(d, 0, sizeof *d);
    mhc_ctx_init(&ctx);
    if (path) {
        char *abs;
        if (mhc_read_file(&ctx, path, &buf, &len) != MHC_OK) {
            fprintf(stderr, "train: --data: %s\n", mhc_ctx_message(&ctx));
            return 0;
        }
        if (len == 0) {
            fprintf(stderr, "train: --data '%s' is empty\n", path);
            free(buf);
            return 0;
        }
        d->bytes = (unsigned char *)buf;
        d->len = len;
        abs = realpath(path, NULL);
        d->path = abs ? abs : (char *)malloc(strlen(path) + 1);
        if (!d->path) { fprintf(stderr, "train: out of memory\n"); train_data_free(d); return 0; }
        if (!abs) strcpy(d->path, path);
    } else {
        d->len = GPT_CORPUS_DEFAULT_BYTES;
        d->bytes = (unsigned char *)malloc(d->len);
        if (!d->bytes) { fprintf(stderr, "train: out of memory for the corpus\n"); return 0; }
        gpt_corpus_generate((char *)d->bytes, d->len, TRAIN_CORPUS_SEED);
        d->generated = 1;
    }
    d->hash = train__fnv1a64(d->bytes, d->len);
    d->split = d->len - d->len / 10;
    return 1;
}

static int train_data_fits(const train_data *d, int seq) {
    if (d->split < (size_t)seq + 2 || d->len - d->split < (size_t)seq + 2) {
        fprintf(stderr, "train: the data has %zu bytes; with a 90/10 train/validation split each part needs more "
                        "than seq+1 = %d bytes (use a smaller --seq or a longer file)\n", d->len, seq + 1);
        return 0;
    }
    return 1;
}

/* B windows of T+1 bytes at random offsets in [lo, hi) */
static void train_batch(const train_data *d, size_t lo, size_t hi, int B, int T, mhc_rng *rng, int *inp, int *tgt) {
    int b, t;
    for (b = 0; b < B; b++) {
        size_t range = hi - lo - (size_t)T - 1;
        size_t off = lo + (size_t)(mhc_rng_uniform(rng) * (double)range);
        for (t = 0; t < T; t++) {
            inp[b * T + t] = d->bytes[off + t];
            tgt[b * T + t] = d->bytes[off + t + 1];
        }
    }
}

/* ---- the checkpoint's config blob: the run's record, versioned text --------------------------
 * Layout (version 1): the first line is exactly "mhc-train-config 1"; then one line per field,
 * "key value" (one space; the value runs to the end of the line), every key of train__keys exactly
 * once in any order, then "data-source generated|file", "data-path PATH" (file only; bytes < 0x20,
 * 0x7f and '%' written as %XX), "data-bytes N", "data-fnv1a64 16 hex digits". Numbers in C locale,
 * doubles with 17 significant digits (they read back exactly). Anything else (another first line,
 * an unknown or repeated key, a missing field, a bad value) is refused: the blob of an older
 * `mhc train` (40 binary bytes) or of another program is not guessed at. A new field is a new row
 * of train__keys and version 2. */
#define TRAIN_BLOB_MAGIC "mhc-train-config 1"
#define TRAIN_BLOB_CAP 65536

enum { TK_INT, TK_LONG, TK_DBL, TK_U64, TK_VARIANT, TK_PRESET, TK_PROJ, TK_ORIENT, TK_SCHED, TK_NORM_EPS_MODE,
       TK_NORM_SCOPE, TK_SK_EPS_MODE, TK_SK_ORDER, TK_EXP_SHIFT };
typedef struct train_key {
    const char *key;       /* also the option's name (--key) when opt_bit >= 0 */
    int type;
    size_t off;            /* offset in train_opts */
    int opt_bit;           /* TG_* or -1 (not an option of mhc train) */
} train_key;

#define TRAIN_OFF(f) offsetof(train_opts, f)
static const train_key train__keys[] = {
    {"residual", TK_VARIANT, TRAIN_OFF(cfg.hc.variant), TG_RESIDUAL},
    {"preset", TK_PRESET, TRAIN_OFF(cfg.hc.preset), TG_PRESET},
    {"n", TK_INT, TRAIN_OFF(cfg.n), TG_N},
    {"layers", TK_INT, TRAIN_OFF(cfg.layers), TG_LAYERS},
    {"dim", TK_INT, TRAIN_OFF(cfg.dim), TG_DIM},
    {"heads", TK_INT, TRAIN_OFF(cfg.heads), TG_HEADS},
    {"seq", TK_INT, TRAIN_OFF(cfg.seq), TG_SEQ},
    {"vocab", TK_INT, TRAIN_OFF(cfg.vocab), -1},
    {"hc-projection", TK_PROJ, TRAIN_OFF(cfg.hc.projection), -1},
    {"hc-orient", TK_ORIENT, TRAIN_OFF(cfg.hc.orient), -1},
    {"hc-sinkhorn-iters", TK_INT, TRAIN_OFF(cfg.hc.sinkhorn_iters), -1},
    {"hc-sinkhorn-eps", TK_DBL, TRAIN_OFF(cfg.hc.sinkhorn_eps), -1},
    {"hc-norm-eps", TK_DBL, TRAIN_OFF(cfg.hc.norm_eps), -1},
    {"hc-pre-eps", TK_DBL, TRAIN_OFF(cfg.hc.pre_eps), -1},
    {"hc-post-mult", TK_DBL, TRAIN_OFF(cfg.hc.post_mult), -1},
    {"norm-eps-mode", TK_NORM_EPS_MODE, TRAIN_OFF(cfg.hc.norm_eps_mode), TG_NORM_EPS_MODE},
    {"norm-scope", TK_NORM_SCOPE, TRAIN_OFF(cfg.hc.norm_scope), TG_NORM_SCOPE},
    {"sinkhorn-eps-mode", TK_SK_EPS_MODE, TRAIN_OFF(cfg.hc.sinkhorn_eps_mode), TG_SK_EPS_MODE},
    {"sinkhorn-order", TK_SK_ORDER, TRAIN_OFF(cfg.hc.sinkhorn_order), TG_SK_ORDER},
    {"exp-shift", TK_EXP_SHIFT, TRAIN_OFF(cfg.hc.exp_shift), TG_EXP_SHIFT},
    {"batch", TK_INT, TRAIN_OFF(batch), TG_BATCH},
    {"steps", TK_LONG, TRAIN_OFF(steps), TG_STEPS},
    {"lr", TK_DBL, TRAIN_OFF(lr), TG_LR},
    {"warmup", TK_LONG, TRAIN_OFF(warmup), TG_WARMUP},
    {"schedule", TK_SCHED, TRAIN_OFF(schedule), TG_SCHEDULE},
    {"weight-decay", TK_DBL, TRAIN_OFF(weight_decay), TG_WD},
    {"grad-clip", TK_DBL, TRAIN_OFF(grad_clip), TG_CLIP},
    {"seed", TK_U64, TRAIN_OFF(seed), TG_SEED},
    {"eval-every", TK_LONG, TRAIN_OFF(eval_every), TG_EVAL_EVERY},
    {"eval-batches", TK_INT, TRAIN_OFF(eval_batches), TG_EVAL_BATCHES},
};
#define TRAIN_NKEYS ((int)(sizeof train__keys / sizeof train__keys[0]))

/* The value of key k in o as text (the form the blob holds and messages print). */
static void train__key_value(const train_opts *o, const train_key *k, char *buf, size_t cap) {
    const char *p = (const char *)o + k->off;
    switch (k->type) {
    case TK_INT: snprintf(buf, cap, "%d", *(const int *)p); break;
    case TK_LONG: snprintf(buf, cap, "%ld", *(const long *)p); break;
    case TK_DBL: snprintf(buf, cap, "%.17g", *(const double *)p); break;
    case TK_U64: snprintf(buf, cap, "%llu", *(const unsigned long long *)p); break;
    case TK_VARIANT: snprintf(buf, cap, "%s", mhc_hc_variant_name(*(const mhc_hc_variant *)p)); break;
    case TK_PRESET: snprintf(buf, cap, "%s", mhc_hc_preset_name(*(const mhc_hc_preset *)p)); break;
    case TK_PROJ: snprintf(buf, cap, "%s", mhc_projection_name(*(const mhc_projection *)p)); break;
    case TK_ORIENT: snprintf(buf, cap, "%s", mhc_orient_name(*(const mhc_orient *)p)); break;
    case TK_SCHED: snprintf(buf, cap, "%s", train__schedule_name(*(const int *)p)); break;
    case TK_NORM_EPS_MODE: snprintf(buf, cap, "%s", mhc_norm_eps_mode_name(*(const mhc_norm_eps_mode *)p)); break;
    case TK_NORM_SCOPE: snprintf(buf, cap, "%s", mhc_norm_scope_name(*(const mhc_norm_scope *)p)); break;
    case TK_SK_EPS_MODE: snprintf(buf, cap, "%s", mhc_sinkhorn_eps_mode_name(*(const mhc_sinkhorn_eps_mode *)p)); break;
    case TK_SK_ORDER: snprintf(buf, cap, "%s", mhc_sinkhorn_order_name(*(const mhc_sinkhorn_order *)p)); break;
    case TK_EXP_SHIFT: snprintf(buf, cap, "%s", mhc_exp_shift_name(*(const mhc_exp_shift *)p)); break;
    }
}

/* The same value printed for people (doubles shortest: %g, which reads back to a nearby value). */
static void train__key_show(const train_opts *o, const train_key *k, char *buf, size_t cap) {
    if (k->type == TK_DBL) snprintf(buf, cap, "%g", *(const double *)((const char *)o + k->off));
    else train__key_value(o, k, buf, cap);
}

/* Parse text v into key k of o. Returns 1 on success. */
static int train__key_parse(train_opts *o, const train_key *k, const char *v) {
    char *p = (char *)o + k->off, *end;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if (!*v) return 0;
    errno = 0;
    switch (k->type) {
    case TK_INT: { long x = strtol(v, &end, 10); if (*end || errno || x < INT_MIN || x > INT_MAX) return 0; *(int *)p = (int)x; return 1; }
    case TK_LONG: { long x = strtol(v, &end, 10); if (*end || errno) return 0; *(long *)p = x; return 1; }
    case TK_DBL: { double x = strtod(v, &end); if (*end || !(x == x)) return 0; *(double *)p = x; return 1; }
    case TK_U64: { unsigned long long x = strtoull(v, &end, 10); if (*end || errno || *v == '-') return 0; *(unsigned long long *)p = x; return 1; }
    case TK_VARIANT: { mhc_hc_variant x; if (mhc_hc_variant_parse(&ctx, v, &x) != MHC_OK) return 0; *(mhc_hc_variant *)p = x; return 1; }
    case TK_PRESET: { mhc_hc_preset x; if (mhc_hc_preset_parse(&ctx, v, &x) != MHC_OK) return 0; *(mhc_hc_preset *)p = x; return 1; }
    case TK_PROJ: {
        mhc_projection x = MHC_PROJ_PRESET;
        if (strcmp(v, "preset") != 0 && mhc_projection_parse(&ctx, v, &x) != MHC_OK) return 0;
        *(mhc_projection *)p = x; return 1;
    }
    case TK_ORIENT: {
        mhc_orient x = MHC_ORIENT_PRESET;
        if (strcmp(v, "preset") != 0 && mhc_orient_parse(&ctx, v, &x) != MHC_OK) return 0;
        *(mhc_orient *)p = x; return 1;
    }
    case TK_SCHED: return train__schedule_parse(v, (int *)p);
    /* the convention knobs: "preset" (0, the preset's value) or a name */
#define TRAIN__KNOB(T, E, PARSE)                                                                 \
    case T: {                                                                                    \
        E x = (E)0;                                                                              \
        if (strcmp(v, "preset") != 0 && PARSE(&ctx, v, &x) != MHC_OK) return 0;                 \
        *(E *)p = x; return 1;                                                                   \
    }
    TRAIN__KNOB(TK_NORM_EPS_MODE, mhc_norm_eps_mode, mhc_norm_eps_mode_parse)
    TRAIN__KNOB(TK_NORM_SCOPE, mhc_norm_scope, mhc_norm_scope_parse)
    TRAIN__KNOB(TK_SK_EPS_MODE, mhc_sinkhorn_eps_mode, mhc_sinkhorn_eps_mode_parse)
    TRAIN__KNOB(TK_SK_ORDER, mhc_sinkhorn_order, mhc_sinkhorn_order_parse)
    TRAIN__KNOB(TK_EXP_SHIFT, mhc_exp_shift, mhc_exp_shift_parse)
#undef TRAIN__KNOB
    }
    return 0;
}

/* Append to a growing text buffer; 0 when it would exceed TRAIN_BLOB_CAP. */
typedef struct train_text { char buf[TRAIN_BLOB_CAP]; size_t len; int full; } train_text;
static void train__put(train_text *t, const char *s) {
    size_t n = strlen(s);
    if (t->full || n > TRAIN_BLOB_CAP - t->len) { t->full = 1; return; }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
}

/* The blob of run o on data d into t (t->full: too long, a path of tens of KB). */
static void train_blob_write(train_text *t, const train_opts *o, const train_data *d) {
    char line[600], val[512];
    int k;
    t->len = 0;
    t->full = 0;
    train__put(t, TRAIN_BLOB_MAGIC "\n");
    for (k = 0; k < TRAIN_NKEYS; k++) {
        train__key_value(o, &train__keys[k], val, sizeof val);
        snprintf(line, sizeof line, "%s %s\n", train__keys[k].key, val);
        train__put(t, line);
    }
    train__put(t, d->generated ? "data-source generated\n" : "data-source file\n");
    if (!d->generated) {
        const unsigned char *p;
        train__put(t, "data-path ");
        for (p = (const unsigned char *)d->path; *p; p++) {
            char e[4];
            if (*p < 0x20 || *p == 0x7f || *p == '%') snprintf(e, sizeof e, "%%%02X", *p);
            else { e[0] = (char)*p; e[1] = 0; }
            train__put(t, e);
        }
        train__put(t, "\n");
    }
    snprintf(line, sizeof line, "data-bytes %zu\ndata-fnv1a64 %016llx\n", d->len, d->hash);
    train__put(t, line);
}

/* What a checkpoint records of its data. */
typedef struct train_data_id {
    int generated;
    char path[PATH_MAX + 1];
    unsigned long long bytes, hash;
} train_data_id;

/* Parse blob[0..len) into rec (its recorded fields) and id. Returns 1, or 0 with the reason in why. */
static int train_blob_read(const char *blob, size_t len, train_opts *rec, train_data_id *id, char *why, size_t cap) {
    int seen[TRAIN_NKEYS], seen_src = 0, seen_path = 0, seen_bytes = 0, seen_hash = 0, k, lineno = 1;
    size_t pos, mlen = strlen(TRAIN_BLOB_MAGIC);
    memset(seen, 0, sizeof seen);
    memset(id, 0, sizeof *id);
    if (len < mlen + 1 || memcmp(blob, TRAIN_BLOB_MAGIC, mlen) != 0 || blob[mlen] != '\n') {
        if (len >= 17 && memcmp(blob, "mhc-train-config ", 17) == 0) {
            const char *nl = (const char *)memchr(blob, '\n', len);
            int fl = (int)((nl ? (size_t)(nl - blob) : len) < 40 ? (nl ? (size_t)(nl - blob) : len) : 40);
            snprintf(why, cap, "its configuration block is '%.*s' (from a later mhc train?); this mhc train reads '%s'",
                     fl, blob, TRAIN_BLOB_MAGIC);
        } else
            snprintf(why, cap, "its configuration block (%zu bytes) is not the '%s' text of mhc train: the checkpoint "
                               "was written by an older mhc train (a 40-byte binary block) or by another program", len,
                     TRAIN_BLOB_MAGIC);
        return 0;
    }
    pos = mlen + 1;
    while (pos < len) {
        const char *line = blob + pos, *nl = (const char *)memchr(line, '\n', len - pos), *sp;
        char key[64], val[PATH_MAX * 3 + 64];
        size_t ll, kl, vl;
        lineno++;
        if (!nl) { snprintf(why, cap, "configuration line %d has no end", lineno); return 0; }
        ll = (size_t)(nl - line);
        pos += ll + 1;
        sp = (const char *)memchr(line, ' ', ll);
        if (!sp) { snprintf(why, cap, "configuration line %d ('%.40s') is not 'key value'", lineno, line); return 0; }
        kl = (size_t)(sp - line);
        vl = ll - kl - 1;
        if (kl >= sizeof key || vl >= sizeof val) { snprintf(why, cap, "configuration line %d is too long", lineno); return 0; }
        memcpy(key, line, kl); key[kl] = 0;
        memcpy(val, sp + 1, vl); val[vl] = 0;
        for (k = 0; k < TRAIN_NKEYS; k++)
            if (!strcmp(key, train__keys[k].key)) break;
        if (k < TRAIN_NKEYS) {
            if (seen[k]++) { snprintf(why, cap, "configuration field '%s' appears twice", key); return 0; }
            if (!train__key_parse(rec, &train__keys[k], val)) {
                snprintf(why, cap, "configuration field '%s' has a bad value '%.60s'", key, val);
                return 0;
            }
        } else if (!strcmp(key, "data-source")) {
            if (seen_src++ || (strcmp(val, "generated") && strcmp(val, "file"))) {
                snprintf(why, cap, "configuration field 'data-source' is repeated or not generated|file");
                return 0;
            }
            id->generated = !strcmp(val, "generated");
        } else if (!strcmp(key, "data-path")) {
            size_t i, o = 0;
            if (seen_path++) { snprintf(why, cap, "configuration field 'data-path' appears twice"); return 0; }
            for (i = 0; i < vl && o < PATH_MAX; i++) {
                unsigned hx;
                if (val[i] == '%' && i + 2 < vl && sscanf(val + i + 1, "%2x", &hx) == 1) { id->path[o++] = (char)hx; i += 2; }
                else id->path[o++] = val[i];
            }
            id->path[o] = 0;
        } else if (!strcmp(key, "data-bytes")) {
            char *end;
            seen_bytes++;
            id->bytes = strtoull(val, &end, 10);
            if (*end || !*val) { snprintf(why, cap, "configuration field 'data-bytes' is not a number"); return 0; }
        } else if (!strcmp(key, "data-fnv1a64")) {
            char *end;
            seen_hash++;
            id->hash = strtoull(val, &end, 16);
            if (*end || vl != 16) { snprintf(why, cap, "configuration field 'data-fnv1a64' is not 16 hex digits"); return 0; }
        } else {
            snprintf(why, cap, "unknown configuration field '%s' (written by a later mhc train?)", key);
            return 0;
        }
    }
    for (k = 0; k < TRAIN_NKEYS; k++)
        if (!seen[k]) { snprintf(why, cap, "the configuration field '%s' is missing", train__keys[k].key); return 0; }
    if (seen_src != 1 || seen_bytes != 1 || seen_hash != 1 || seen_path != (id->generated ? 0 : 1)) {
        snprintf(why, cap, "the data fields (data-source, data-path, data-bytes, data-fnv1a64) are incomplete");
        return 0;
    }
    return 1;
}

/* Read the record of checkpoint path into rec (train_defaults + the recorded fields) and id.
   Returns 1, or 0 with a message printed (prefix: "train" or "sample"). */
static int train_read_record(const char *prefix, const char *path, train_opts *rec, train_data_id *id) {
    mhc_ctx ctx;
    size_t nb = 0;
    char *blob = (char *)malloc(TRAIN_BLOB_CAP), why[512];
    mhc_result r;
    mhc_ctx_init(&ctx);
    if (!blob) { fprintf(stderr, "%s: out of memory\n", prefix); return 0; }
    /* the configuration block only; mhc_checkpoint_load verifies the whole file first, refuses what
       is not a regular file and reads no more than the header's length */
    r = mhc_checkpoint_load(&ctx, path, blob, TRAIN_BLOB_CAP, &nb, NULL, NULL, NULL);
    if (r == MHC_ERR_SIZE) {
        fprintf(stderr, "%s: --resume '%s': its configuration block has %zu bytes, more than a checkpoint of mhc train "
                        "holds; it was written by another program\n", prefix, path, nb);
        free(blob);
        return 0;
    }
    if (r != MHC_OK) {
        fprintf(stderr, "%s: --resume: %s\n", prefix, mhc_ctx_message(&ctx));
        free(blob);
        return 0;
    }
    train_defaults(rec);
    if (!train_blob_read(blob, nb, rec, id, why, sizeof why)) {
        fprintf(stderr, "%s: --resume '%s': %s; it cannot be %s\n", prefix, path, why,
                strcmp(prefix, "sample") ? "resumed here (start a new run)" : "sampled here");
        free(blob);
        return 0;
    }
    free(blob);
    return 1;
}

/* Create m from the record and load the checkpoint's parameters (and the trainer and rng when given). */
static int train_model_from(const char *prefix, const char *path, const train_opts *rec, gpt_model *m,
                            mhc_trainer *tr, mhc_rng *rng) {
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if (gpt_create(&ctx, m, &rec->cfg) != MHC_OK) {
        fprintf(stderr, "%s: --resume '%s': its configuration is refused: %s\n", prefix, path, mhc_ctx_message(&ctx));
        return 0;
    }
    if (mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &m->params, tr, rng) != MHC_OK) {
        fprintf(stderr, "%s: --resume: %s\n", prefix, mhc_ctx_message(&ctx));
        gpt_destroy(m);
        return 0;
    }
    if (tr) tr->ctx = NULL;
    return 1;
}

int tool_train_load_model(const char *path, struct gpt_model *m) {
    train_opts rec;
    train_data_id id;
    if (!train_read_record("sample", path, &rec, &id)) return 1;
    return train_model_from("sample", path, &rec, m, NULL, NULL) ? 0 : 1;
}

/* ---- resume: the command line against the record --------------------------------------------- */

/* Check the given options of o against the record rec of checkpoint path and take the record's values
   for the rest. Returns 0 (go on), or 2 with a message printed. */
static int train_resume_options(train_opts *o, const train_opts *rec, const char *path) {
    int k;
    for (k = 0; k < TRAIN_NKEYS; k++) {
        const train_key *key = &train__keys[k];
        char mine[512], theirs[512];
        int bit = key->opt_bit;
        if (bit < 0 || !TRAIN_GIVEN(o, bit) || bit == TG_STEPS || bit == TG_EVAL_EVERY || bit == TG_EVAL_BATCHES) continue;
        train__key_value(o, key, mine, sizeof mine);
        train__key_value(rec, key, theirs, sizeof theirs);
        if (strcmp(mine, theirs) != 0) {
            train__key_show(o, key, mine, sizeof mine);
            train__key_show(rec, key, theirs, sizeof theirs);
            fprintf(stderr, "train: --%s %s contradicts the checkpoint '%s', whose run has --%s %s; leave --%s out to "
                            "continue that run, or start a new run (without --resume) with --%s %s\n",
                    key->key, mine, path, key->key, theirs, key->key, key->key, mine);
            return 2;
        }
    }
    /* the steps: the record's total, or a larger one with --extend */
    if (TRAIN_GIVEN(o, TG_STEPS) && o->steps != rec->steps) {
        if (o->steps > rec->steps && !o->extend) {
            fprintf(stderr, "train: --steps %ld goes past the schedule of the checkpoint '%s', which ends at step %ld "
                            "(%s); add --extend to re-derive the schedule for %ld steps, or leave --steps out to finish "
                            "the run as planned\n", o->steps, path, rec->steps, train__schedule_name(rec->schedule),
                    o->steps);
            return 2;
        }
        if (o->steps < rec->steps) {
            fprintf(stderr, "train: --steps %ld would shorten the schedule of the checkpoint '%s' (%ld steps); to stop "
                            "earlier on the same schedule use --stop-after %ld\n", o->steps, path, rec->steps, o->steps);
            return 2;
        }
    } else if (o->extend) {
        fprintf(stderr, "train: --extend needs --steps larger than the checkpoint's %ld (got --steps %ld)\n", rec->steps,
                o->steps);
        return 2;
    }
    {   /* take every recorded field not given (the given ones agree), keeping this invocation's options */
        train_opts mine = *o;
        long steps = o->extend ? o->steps : rec->steps;
        *o = *rec;
        o->data = mine.data; o->save = mine.save; o->resume = mine.resume; o->log = mine.log; o->plot = mine.plot;
        o->label = mine.label; o->threads = mine.threads; o->quiet = mine.quiet; o->extend = mine.extend;
        o->recompute = mine.recompute; o->save_every = mine.save_every; o->print_every = mine.print_every;
        o->stop_after = mine.stop_after; o->fault_nan_step = mine.fault_nan_step;
        o->fault_signal_step = mine.fault_signal_step; o->fault_signal_where = mine.fault_signal_where;
        o->fault_signal_sig = mine.fault_signal_sig; o->given = mine.given;
        o->steps = steps;
        if (TRAIN_GIVEN(&mine, TG_EVAL_EVERY)) o->eval_every = mine.eval_every;
        if (TRAIN_GIVEN(&mine, TG_EVAL_BATCHES)) o->eval_batches = mine.eval_batches;
    }
    return 0;
}

/* The data of a resumed run: --data (which must hold the recorded bytes) or the recorded source. */
static int train_resume_data(const train_opts *o, const train_data_id *id, const char *path, train_data *d) {
    const char *src = o->data ? o->data : id->generated ? NULL : id->path;
    if (o->data && id->generated) {
        fprintf(stderr, "train: --data '%s': the checkpoint '%s' trained on the generated corpus; leave --data out\n",
                o->data, path);
        return 2;
    }
    if (!o->data && !id->generated && access(id->path, R_OK) != 0) {
        fprintf(stderr, "train: cannot read the checkpoint's data file '%s' (%s); give --data FILE with the same bytes "
                        "(%llu bytes, fnv1a64 %016llx)\n", id->path, strerror(errno), id->bytes, id->hash);
        return 1;
    }
    if (!train_load_data(src, d)) return 1;
    if (d->len != id->bytes || d->hash != id->hash) {
        if (id->generated)
            fprintf(stderr, "train: the generated corpus (%zu bytes, fnv1a64 %016llx) is not the one the checkpoint '%s' "
                            "trained on (%llu bytes, fnv1a64 %016llx): this mhc was built from another gpt/corpus.h\n",
                    d->len, d->hash, path, id->bytes, id->hash);
        else if (o->data)
            fprintf(stderr, "train: --data '%s' (%zu bytes, fnv1a64 %016llx) is not the data of the checkpoint '%s' "
                            "('%s', %llu bytes, fnv1a64 %016llx); leave --data out to use that file, or give one with "
                            "the same bytes\n", o->data, d->len, d->hash, path, id->path, id->bytes, id->hash);
        else
            fprintf(stderr, "train: the checkpoint's data file '%s' has changed since it was saved (now %zu bytes, "
                            "fnv1a64 %016llx; then %llu bytes, fnv1a64 %016llx); give --data FILE with the bytes the "
                            "run trained on\n", id->path, d->len, d->hash, id->bytes, id->hash);
        train_data_free(d);
        return o->data ? 2 : 1;
    }
    return 0;
}

/* ---- the log ------------------------------------------------------------------------------- */

#define TRAIN_LOG_HEADER "step,loss,val_loss,lr,grad_norm,amax_fwd,amax_bwd,tokens_per_s"

/* Open the CSV log of a run at step `at` (0: a new run, which truncates the file). A resumed run keeps
   the rows of steps <= at that are whole (a partial last row or later steps are cut off) and appends;
   the kept rows go into *series (for the plot). Returns the file, or NULL with a message printed. */
static FILE *train_log_open(const char *path, long at, plot_series *series, int quiet) {
    mhc_ctx ctx;
    void *buf = NULL;
    size_t len = 0, pos, cut, hl = strlen(TRAIN_LOG_HEADER);
    long last = 0;
    FILE *f;
    mhc_ctx_init(&ctx);
    if (at > 0 && mhc_read_file(&ctx, path, &buf, &len) == MHC_OK && len > 0) {
        const char *s = (const char *)buf;
        if (len < hl + 1 || memcmp(s, TRAIN_LOG_HEADER, hl) != 0 || s[hl] != '\n') {
            fprintf(stderr, "train: --log '%s' exists and its first line is not the header of an mhc train log "
                            "(%s); give another --log\n", path, TRAIN_LOG_HEADER);
            free(buf);
            return NULL;
        }
        cut = pos = hl + 1;
        while (pos < len) {   /* keep whole rows "step,f1,...,f7" with increasing steps <= at */
            const char *nl = (const char *)memchr(s + pos, '\n', len - pos), *p = s + pos;
            double v[8];
            int k;
            if (!nl) break;                                   /* a partial last row */
            for (k = 0; k < 8; k++) {
                const char *q = p;
                char *e;
                while (q < nl && *q != ',') q++;
                if (k < 7 && q == nl) break;                  /* too few fields */
                v[k] = NAN;
                if (q > p) {
                    v[k] = strtod(p, &e);
                    if (e != q) break;                        /* not a number */
                }
                p = q + 1;
            }
            if (k != 8 || p != nl + 1) break;                 /* not a whole row of this log */
            if (!(v[0] == floor(v[0])) || v[0] <= (double)last || v[0] > (double)at) break;
            last = (long)v[0];
            plot_series_add(series, (int)last, v[1], v[2], v[5], v[6]);
            pos = cut = (size_t)(nl - s) + 1;
        }
        free(buf);
        if (cut < len && truncate(path, (off_t)cut) != 0) {
            fprintf(stderr, "train: cannot cut --log '%s' back to step %ld: %s\n", path, at, strerror(errno));
            return NULL;
        }
        if (!quiet && cut < len)
            fprintf(stderr, "train: --log '%s': kept the rows up to step %ld (the checkpoint's), dropped %zu bytes after "
                            "them\n", path, last, len - cut);
        if (last < at)
            fprintf(stderr, "train: note: --log '%s' has rows up to step %ld only; steps %ld..%ld are not in it\n", path,
                    last, last + 1, at);
        f = fopen(path, "a");
        if (!f) fprintf(stderr, "train: cannot open --log '%s' for appending: %s\n", path, strerror(errno));
        return f;
    }
    free(buf);
    f = fopen(path, "w");
    if (!f) { fprintf(stderr, "train: cannot open --log '%s' for writing: %s\n", path, strerror(errno)); return NULL; }
    if (at > 0) fprintf(stderr, "train: note: --log '%s' is new; steps 1..%ld are not in it\n", path, at);
    if (fprintf(f, "%s\n", TRAIN_LOG_HEADER) < 0 || fflush(f) != 0) {
        fprintf(stderr, "train: cannot write --log '%s': %s\n", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    return f;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* What a run reports to the demo. */
typedef struct train_summary {
    double final_loss, final_val, seconds, max_gain_fwd, max_gain_bwd;
    double max_ds, last_ds;        /* the mixing matrices' distance from doubly stochastic (gpt_ds_distance):
                                      the largest over the run, and at the last step */
    double step_seconds;           /* the training steps' time (forward, backward, optimizer; no evaluation) */
    long steps;                    /* steps run */
    size_t params;
    plot_series series;            /* the run's curves (free with plot_series_free) */
} train_summary;

/* Mean validation loss over eval_batches fixed batches (the same batches every time). */
static double train_eval(mhc_tape *tp, gpt_model *m, const train_data *d, const train_opts *o, int *inp, int *tgt) {
    mhc_rng er;
    double s = 0;
    int i, old = mhc_tape_set_no_grad(tp, 1);
    mhc_rng_seed(&er, o->seed ^ 0x5eed5eedULL);
    for (i = 0; i < o->eval_batches; i++) {
        mhc_tensor *loss;
        train_batch(d, d->split, d->len, o->batch, o->cfg.seq, &er, inp, tgt);
        loss = gpt_forward(tp, m, inp, tgt, o->batch, o->cfg.seq, NULL);
        s += loss ? (double)loss->data[0] : NAN;
        mhc_tape_reset(tp);
    }
    mhc_tape_set_no_grad(tp, old);
    return s / o->eval_batches;
}

/* The run's state that the one save helper needs. */
typedef struct train_state {
    const train_opts *o;
    gpt_model *model;
    mhc_trainer *trainer;
    mhc_rng *rng;
    train_text *blob;
    long last_saved;
} train_state;

/* Every checkpoint of a run is written here (periodic, final, stop, interrupt). Returns 1 or 0
   (message printed). */
static int train_save(train_state *st) {
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if (!st->o->save || st->last_saved == st->trainer->step) return 1;
    if (tool_interrupt_save(&ctx, st->o->save, st->blob->buf, st->blob->len, &st->model->params, st->trainer,
                            st->rng) != MHC_OK) {
        fprintf(stderr, "train: --save: %s\n", mhc_ctx_message(&ctx));
        return 0;
    }
    st->last_saved = st->trainer->step;
    return 1;
}

/* The testing aid --fault-signal: raise the signal at this step and place. */
static void train__fault(const train_opts *o, long step, int where) {
    if (o->fault_signal_step != step) return;
    if (o->fault_signal_where == where) raise(o->fault_signal_sig);
    if (where == TF_STEP && o->fault_signal_where == TF_TWICE) { raise(o->fault_signal_sig); raise(o->fault_signal_sig); }
}

/* The files written at the end and the memory the options ask for, checked before any work or
   allocation (issue 15; gpt_memory_bytes). Returns 1 (go on) or 0 with a message printed. */
static int train_precheck(const train_opts *o) {
    mhc_ctx ctx;
    mhc_hc_spec sp;
    int threads = o->threads;
    double need;
    mhc_ctx_init(&ctx);
    if (o->save && mhc_checkpoint_check_target(&ctx, o->save) != MHC_OK) {
        fprintf(stderr, "train: --save: %s\n", mhc_ctx_message(&ctx));
        return 0;
    }
    if (o->plot && mhc_checkpoint_check_target(&ctx, o->plot) != MHC_OK) {
        fprintf(stderr, "train: --plot: %s\n", mhc_ctx_message(&ctx));
        return 0;
    }
#if defined(_OPENMP)
    if (threads < 1) threads = omp_get_max_threads();
#endif
    if (gpt_config_check(&ctx, &o->cfg) == MHC_OK && mhc_hc_resolve(&ctx, &o->cfg.hc, o->cfg.n, &sp) == MHC_OK &&
        (need = gpt_memory_bytes(&o->cfg, &sp, o->batch, o->cfg.seq, threads)) > (double)TRAIN_MEMORY_MAX) {
        fprintf(stderr, "train: this model and batch would need up to %.3g GB (gpt_memory_bytes in gpt/gpt.h: "
                        "parameters and AdamW moments, 16 bytes each, plus one step's activations), more than "
                        "the limit of %.3g GB (TRAIN_MEMORY_MAX); nothing was allocated: use a smaller --dim, "
                        "--layers, --n, --seq or --batch\n", need / 1e9, (double)TRAIN_MEMORY_MAX / 1e9);
        return 0;
    }
    return 1;
}

/* Runs training as configured. Fills *summary (when not NULL). Returns the exit code. */
static int train_run(const train_opts *o_in, train_summary *summary) {
    train_opts o = *o_in;
    mhc_ctx ctx;
    mhc_arena arena;
    mhc_tape tape;
    gpt_model model;
    mhc_trainer trainer;
    mhc_adamw_config acfg;
    mhc_rng rng;
    train_data data;
    train_data_id rec_id;
    train_opts rec;
    train_text *blob = NULL;
    train_state st;
    FILE *logf = NULL;
    int *inp = NULL, *tgt = NULL, rc = 1, have_model = 0, have_tape = 0, tty, sig = 0;
    long step = 0, end, start, last_step = 0;
    double t0, tokens_per_s = 0, last_loss = NAN, last_val = NAN, max_ds = 0, last_ds = 0;
    plot_series series;
    const char *label = o.label ? o.label : "train";

    mhc_ctx_init(&ctx);
    memset(&series, 0, sizeof series);
    memset(&data, 0, sizeof data);
    tty = !o.quiet && isatty(fileno(stderr));
#if defined(_OPENMP)
    if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
    if (o.resume) {
        if (!train_read_record("train", o.resume, &rec, &rec_id)) return 1;
        if ((rc = train_resume_options(&o, &rec, o.resume)) != 0) return rc;
        if (!train_precheck(&o)) return 1;
        if ((rc = train_resume_data(&o, &rec_id, o.resume, &data)) != 0) return rc;
        rc = 1;
    } else {
        train_fill_new_run(&o);
        if (!train_precheck(&o)) return 1;
        if (!train_load_data(o.data, &data)) return 1;
    }
    if (!train_data_fits(&data, o.cfg.seq)) goto done;
    if (o.save_every < 0) o.save_every = (o.steps + 9) / 10;
    if (o.print_every < 0) o.print_every = o.steps >= 20 ? o.steps / 20 : 1;
    blob = (train_text *)malloc(sizeof *blob);
    if (!blob) { fprintf(stderr, "train: out of memory\n"); goto done; }
    if (gpt_create(&ctx, &model, &o.cfg) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done;
    }
    have_model = 1;
    mhc_rng_seed(&rng, o.seed);
    if (gpt_init(&ctx, &model, &rng) != MHC_OK) { fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx)); goto done; }
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.kind = o.schedule;
    acfg.schedule.lr = o.lr > 0 ? o.lr : MHC_ZERO;
    acfg.schedule.warmup = o.warmup;
    acfg.schedule.total = o.steps;
    acfg.weight_decay = o.weight_decay > 0 ? o.weight_decay : MHC_ZERO;
    acfg.grad_clip = o.grad_clip > 0 ? o.grad_clip : MHC_ZERO;
    if (mhc_trainer_init(&ctx, &trainer, &acfg) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done;
    }
    if (o.resume) {
        mhc_trainer loaded;
        if (mhc_checkpoint_load(&ctx, o.resume, NULL, 0, NULL, &model.params, &loaded, &rng) != MHC_OK) {
            fprintf(stderr, "train: --resume: %s\n", mhc_ctx_message(&ctx));
            goto done;
        }
        /* the trainer state must be the recorded run's (with the new total when extending) */
        if (loaded.cfg.schedule.kind != trainer.cfg.schedule.kind || loaded.cfg.schedule.lr != trainer.cfg.schedule.lr ||
            loaded.cfg.schedule.warmup != trainer.cfg.schedule.warmup ||
            loaded.cfg.schedule.total != rec.steps ||
            loaded.cfg.weight_decay != trainer.cfg.weight_decay || loaded.cfg.grad_clip != trainer.cfg.grad_clip) {
            fprintf(stderr, "train: --resume '%s': the checkpoint's trainer state (schedule %s, lr %g, warmup %ld, total "
                            "%ld) does not match its configuration block; it cannot be resumed\n", o.resume,
                    train__schedule_name(loaded.cfg.schedule.kind), loaded.cfg.schedule.lr, loaded.cfg.schedule.warmup,
                    loaded.cfg.schedule.total);
            goto done;
        }
        if (loaded.step > loaded.cfg.schedule.total) {
            fprintf(stderr, "train: --resume '%s': the checkpoint is at step %ld, past its schedule's %ld steps\n",
                    o.resume, loaded.step, loaded.cfg.schedule.total);
            goto done;
        }
        if (o.extend) {
            double before = loaded.step > 0 ? mhc_lr_at(&loaded.cfg.schedule, loaded.step) : 0;
            loaded.cfg.schedule.total = o.steps;
            if (!o.quiet)
                fprintf(stderr, "train: extending the run of '%s' from %ld to %ld steps: the %s schedule (peak lr %g, "
                                "warmup %ld) is re-derived for %ld steps; step %ld trains at lr %.6g (step %ld trained at "
                                "%.6g)\n", o.resume, rec.steps, o.steps,
                        train__schedule_name(o.schedule), trainer.cfg.schedule.lr, trainer.cfg.schedule.warmup, o.steps,
                        loaded.step + 1, mhc_lr_at(&loaded.cfg.schedule, loaded.step + 1), loaded.step, before);
        }
        loaded.ctx = &ctx;
        trainer = loaded;
    }
    start = trainer.step;
    end = o.stop_after > 0 && o.stop_after < o.steps ? o.stop_after : o.steps;
    if (start >= end) {
        if (start >= o.steps)
            fprintf(stderr, "train: nothing to train: the checkpoint '%s' is at step %ld of %ld (the run is finished); "
                            "to train further give --steps N --extend\n", o.resume, start, o.steps);
        else
            fprintf(stderr, "train: nothing to train: the checkpoint '%s' is at step %ld, --stop-after %ld\n", o.resume,
                    start, o.stop_after);
        rc = 0;
        goto done;
    }
    if (!o.quiet && o.resume)
        fprintf(stderr, "%s: resuming '%s' at step %ld of %ld\n", label, o.resume, start, o.steps);
    if (o.lr == 0)
        fprintf(stderr, "train: note: --lr 0: the parameters do not change (weight decay is scaled by the learning rate too)\n");
    train_blob_write(blob, &o, &data);
    if (blob->full) { fprintf(stderr, "train: the data path is too long to record in a checkpoint\n"); goto done; }
    inp = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    tgt = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    if (!inp || !tgt || mhc_arena_init(&ctx, &arena, 1 << 20) != MHC_OK) {
        fprintf(stderr, "train: out of memory\n");
        goto done;
    }
    mhc_tape_init(&ctx, &tape, &arena);
    have_tape = 1;
    if (o.recompute != 0 && model.spec.variant != MHC_VARIANT_NONE &&
        mhc_tape_set_hc_recompute(&tape, o.recompute > 0 ? o.recompute
                                                         : mhc_hc_recompute_block(o.cfg.n, 2 * o.cfg.layers)) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done;
    }
    if (o.log && !(logf = train_log_open(o.log, start, &series, o.quiet))) goto done;
    st.o = &o; st.model = &model; st.trainer = &trainer; st.rng = &rng; st.blob = blob; st.last_saved = start;
    if (tool_interrupt_install() != 0) { fprintf(stderr, "train: cannot install the signal handlers\n"); goto done; }
    if (!o.quiet)
        fprintf(stderr, "%s: residual %s, preset %s, n %d, layers %d (%d sublayers), dim %d, heads %d, seq %d, batch %d, "
                        "%zu parameters, steps %ld; conventions: norm_eps_mode %s, norm_scope %s, sinkhorn_eps_mode %s, "
                        "sinkhorn_order %s, exp_shift %s\n", label, mhc_hc_variant_name(model.spec.variant),
                mhc_hc_preset_name(model.spec.preset), o.cfg.n, o.cfg.layers, 2 * o.cfg.layers, o.cfg.dim, o.cfg.heads,
                o.cfg.seq, o.batch, model.params.size, o.steps, mhc_norm_eps_mode_name(model.spec.norm_eps_mode),
                mhc_norm_scope_name(model.spec.norm_scope), mhc_sinkhorn_eps_mode_name(model.spec.sinkhorn_eps_mode),
                mhc_sinkhorn_order_name(model.spec.sinkhorn_order), mhc_exp_shift_name(model.spec.exp_shift));
    t0 = train__now();
    for (step = start + 1; step <= end; step++) {
        mhc_tensor *loss;
        mhc_gain_stats g;
        double ts = train__now(), lossv, val = NAN, tstep;
        char row[512];
        train_batch(&data, 0, data.split, o.batch, o.cfg.seq, &rng, inp, tgt);
        mhc_params_zero_grad(&model.params);
        loss = gpt_forward(&tape, &model, inp, tgt, o.batch, o.cfg.seq, NULL);
        train__fault(&o, step, TF_STEP);
        if (!loss || mhc_tape_backward(&tape, loss) != MHC_OK) {
            fprintf(stderr, "train: step %ld: %s\n", step, mhc_ctx_message(&ctx));
            goto done;
        }
        lossv = (double)loss->data[0];
        if (o.fault_nan_step == step) lossv = NAN;
        if (gpt_gain(&ctx, &model, o.batch * o.cfg.seq, &g) != MHC_OK ||
            gpt_ds_distance(&ctx, &model, o.batch * o.cfg.seq, &last_ds) != MHC_OK) {
            fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
            goto done;
        }
        if (!(last_ds <= max_ds)) max_ds = last_ds;
        mhc_tape_reset(&tape);
        if (!isfinite(lossv)) {
            fprintf(stderr, "train: step %ld: the loss is %g; stopping (%s%s%s)\n", step, lossv,
                    o.save ? "the last good checkpoint, '" : "no --save was given, so no checkpoint is kept",
                    o.save ? o.save : "", o.save ? "', is kept" : "");
            goto done;
        }
        if (mhc_trainer_step(&trainer, &model.params) != MHC_OK) {
            fprintf(stderr, "train: step %ld: %s; stopping (%s%s%s)\n", step, mhc_ctx_message(&ctx),
                    o.save ? "the last good checkpoint, '" : "no --save was given, so no checkpoint is kept",
                    o.save ? o.save : "", o.save ? "', is kept" : "");
            goto done;
        }
        tstep = train__now() - ts;
        if (summary) { summary->step_seconds += tstep; summary->steps++; }
        tokens_per_s = (double)o.batch * o.cfg.seq / (tstep > 0 ? tstep : 1e-9);
        last_loss = lossv;
        last_step = step;
        if (o.eval_every > 0 && (step % o.eval_every == 0 || step == o.steps)) {
            train__fault(&o, step, TF_EVAL);
            val = train_eval(&tape, &model, &data, &o, inp, tgt);
            last_val = val;
        }
        plot_series_add(&series, (int)step, lossv, val, g.fwd_max, g.bwd_max);
        if (logf) {   /* one whole row per write (%.9g: a float round-trips exactly) */
            char vbuf[32] = "";
            if (isfinite(val)) snprintf(vbuf, sizeof vbuf, "%.9g", val);
            snprintf(row, sizeof row, "%ld,%.9g,%s,%.6g,%.6g,%.6g,%.6g,%.1f\n", step, lossv, vbuf, trainer.last_lr,
                     trainer.last_grad_norm, g.fwd_max, g.bwd_max, tokens_per_s);
            train__fault(&o, step, TF_LOG);
            if (fputs(row, logf) < 0 || fflush(logf) != 0) {
                fprintf(stderr, "train: cannot write --log '%s': %s\n", o.log, strerror(errno));
                goto done;
            }
        }
        if (!o.quiet && (tty || (o.print_every > 0 && (step % o.print_every == 0 || step == end || isfinite(val))))) {
            double el = train__now() - t0, eta = el / (double)(step - start) * (double)(end - step);
            char vbuf[48] = "";
            if (isfinite(val)) snprintf(vbuf, sizeof vbuf, "  val %.4f", val);
            fprintf(stderr, "%s%s step %ld/%ld  loss %.4f%s  lr %.3g  %.0f tok/s  gain %.3g  ETA %.0fs%s",
                    tty ? "\r" : "", label, step, o.steps, lossv, vbuf, trainer.last_lr, tokens_per_s, g.fwd_max, eta,
                    tty ? (isfinite(val) ? "\n" : "   ") : "\n");
        }
        if (summary) {
            if (g.fwd_max > summary->max_gain_fwd) summary->max_gain_fwd = g.fwd_max;
            if (g.bwd_max > summary->max_gain_bwd) summary->max_gain_bwd = g.bwd_max;
        }
        if (o.save && o.save_every > 0 && step % o.save_every == 0) {
            train__fault(&o, step, TF_SAVE);
            if (!train_save(&st)) goto done;
        }
        if ((sig = tool_interrupt_signal()) != 0) break;
    }
    if (tty) fputc('\n', stderr);
    if (o.save && !train_save(&st)) goto done;   /* the last step, --stop-after, or the interrupted step */
    if (logf) {
        int bad = fclose(logf) != 0;
        logf = NULL;
        if (bad) { fprintf(stderr, "train: error writing --log '%s'\n", o.log); goto done; }
    }
    if (o.plot && plot_write_svg(o.plot, o.label ? o.label : "training", &series, 1) != 0) {
        fprintf(stderr, "train: cannot write --plot '%s'\n", o.plot);
        goto done;
    }
    if (sig) {
        long at = trainer.step;
        if (o.save)
            fprintf(stderr, "%s: interrupted at step %ld: saved to %s; resume with: mhc train --resume %s --save %s%s%s\n",
                    label, at, o.save, o.save, o.save, o.log ? " --log " : "", o.log ? o.log : "");
        else
            fprintf(stderr, "%s: interrupted at step %ld (not saved: no --save was given)\n", label, at);
        rc = 128 + sig;
        goto done;
    }
    if (!o.quiet) {
        char vbuf[64];
        if (isfinite(last_val)) snprintf(vbuf, sizeof vbuf, "val loss %.4f", last_val);
        else if (o.eval_every > 0) snprintf(vbuf, sizeof vbuf, "no validation yet (every %ld steps)", o.eval_every);
        else snprintf(vbuf, sizeof vbuf, "no validation (--eval-every 0)");
        fprintf(stderr, "%s: step %ld: loss %.4f, %s, %.1f s%s%s", label, last_step, last_loss, vbuf,
                train__now() - t0, o.save ? "; saved to " : "", o.save ? o.save : "");
        if (model.spec.variant != MHC_VARIANT_NONE)   /* the Amax diagnostics' companion (MHC_SPEC.md Sec. 7) */
            fprintf(stderr, "; A's distance from doubly stochastic: %.3g at the last step, %.3g at most", last_ds, max_ds);
        fputc('\n', stderr);
    }
    if (summary) {
        int k, cnt = 0;
        double acc = 0;
        for (k = series.count - 1; k >= 0 && cnt < 10; k--, cnt++) acc += series.loss[k];
        summary->final_loss = cnt ? acc / cnt : last_loss;   /* mean of the last 10 steps (one batch is noisy) */
        summary->final_val = last_val;
        summary->seconds = train__now() - t0;
        summary->params = model.params.size;
        summary->max_ds = max_ds;
        summary->last_ds = last_ds;
        summary->series = series;
        memset(&series, 0, sizeof series);   /* ownership moves to the summary */
    }
    rc = 0;
done:
    tool_interrupt_uninstall();
    if (have_tape) {
        mhc_tape_free(&tape);
        mhc_arena_free(&arena);
    }
    if (logf && fclose(logf) != 0) { fprintf(stderr, "train: error writing --log '%s'\n", o.log); rc = rc ? rc : 1; }
    plot_series_free(&series);
    free(inp);
    free(tgt);
    free(blob);
    train_data_free(&data);
    if (have_model) gpt_destroy(&model);
    return rc;
}

int tool_cmd_train(int argc, char **argv) {
    train_opts o;
    int p;
    train_defaults(&o);
    p = train_parse(argc, argv, &o, 0);
    if (p <= 0) return p < 0 ? 0 : 2;
    return train_run(&o, NULL);
}

/* ---- the demo: none, hc and mhc side by side ------------------------------------------------ */

/* `mhc demo --projections`: the same GPT and budget with every residual: none, hc, mhc (dsv4),
   lite, kromhc and ortho (each variant with its tool default preset unless --preset is given), one table. */
static int train_demo_projections(const train_opts *base) {
    static const mhc_hc_variant variants[6] = {MHC_VARIANT_NONE, MHC_VARIANT_HC, MHC_VARIANT_MHC, MHC_VARIANT_LITE,
                                               MHC_VARIANT_KROMHC, MHC_VARIANT_ORTHO};
    static const char *labels[6] = {"none", "hc", "mhc", "lite", "kromhc", "ortho"};
    static const mhc_hc_preset presets[6] = {MHC_PRESET_DSV4, MHC_PRESET_DSV4, MHC_PRESET_DSV4, MHC_PRESET_LITE,
                                             MHC_PRESET_KROMHC, MHC_PRESET_ORTHO};
    const char *svg = "build/demo/projections.svg", *dir = "build/demo/projections";
    train_summary sum[6];
    plot_series all[6];
    int ns[6], i, rc = 0;
    char path[6][512];
    if (mkdir("build", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create build/: %s\n", strerror(errno)); return 1; }
    if (mkdir("build/demo", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create build/demo: %s\n", strerror(errno)); return 1; }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create %s: %s\n", dir, strerror(errno)); return 1; }
    memset(sum, 0, sizeof sum);
    for (i = 0; i < 6; i++) {
        train_opts o = *base;
        o.cfg.hc.variant = variants[i];
        if (!TRAIN_GIVEN(base, TG_PRESET)) o.cfg.hc.preset = presets[i];
        o.given |= 1u << TG_PRESET;
        o.cfg.n = ns[i] = variants[i] == MHC_VARIANT_NONE ? 1 : (base->cfg.n > 1 ? base->cfg.n : 4);
        o.given |= 1u << TG_N;
        o.label = labels[i];
        snprintf(path[i], sizeof path[i], "%s/%s.csv", dir, labels[i]);
        o.log = path[i];
        if ((rc = train_run(&o, &sum[i])) != 0) break;
        all[i] = sum[i].series;
    }
    if (rc == 0) {
        printf("\nmHC demo, the projections: %d blocks (%d sublayers), dim %d, seq %d, batch %d, %ld steps, seed %llu\n\n",
               base->cfg.layers, 2 * base->cfg.layers, base->cfg.dim, base->cfg.seq, base->batch, base->steps, base->seed);
        printf("| residual | n | parameters | train loss (mean of last 10 steps) | val loss | max Amax fwd gain | "
               "max Amax bwd gain | max distance from doubly stochastic | step time | wall time |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|\n");
        for (i = 0; i < 6; i++) {
            char val[32];
            if (isfinite(sum[i].final_val)) snprintf(val, sizeof val, "%.4f", sum[i].final_val);
            else snprintf(val, sizeof val, "-");   /* not evaluated (--eval-every 0) */
            printf("| %s | %d | %zu | %.4f | %s | %.6g | %.6g | %.3g | %.1f ms | %.1f s |\n", labels[i], ns[i],
                   sum[i].params, sum[i].final_loss, val, sum[i].max_gain_fwd, sum[i].max_gain_bwd,
                   sum[i].max_ds, 1e3 * sum[i].step_seconds / (double)(sum[i].steps > 0 ? sum[i].steps : 1), sum[i].seconds);
        }
        printf("\n(max distance: max |rowsum - 1|, |colsum - 1| of every sublayer's A, over tokens and steps; none has\n"
               "no mixing matrix. Step time: forward, backward and AdamW, without the evaluations.)\n");
        if (plot_write_svg(svg, "none, hc, mhc, lite, kromhc, ortho", all, 6) != 0) {
            fprintf(stderr, "demo: cannot write %s\n", svg);
            rc = 1;
        } else {
            printf("loss and gain curves: %s (CSV logs in %s/)\n", svg, dir);
        }
    }
    for (i = 0; i < 6; i++) plot_series_free(&sum[i].series);
    return rc;
}

int tool_cmd_demo(int argc, char **argv) {
    static const mhc_hc_variant variants[3] = {MHC_VARIANT_NONE, MHC_VARIANT_HC, MHC_VARIANT_MHC};
    static const char *labels[3] = {"none", "hc", "mhc"};
    const char *svg = "build/demo/demo.svg", *dir = "build/demo";
    train_opts base;
    train_summary sum[3];
    plot_series all[3];
    int ns[3];
    char path[3][512], ckpt[3][512];
    int i, rc = 0, p, projections = 0, k;
    /* --projections (the demo's own option): every residual, one table */
    for (i = k = 1; i < argc; i++) {
        if (strcmp(argv[i], "--projections") == 0) projections = 1;
        else argv[k++] = argv[i];
    }
    argc = k;
    train_defaults(&base);
    /* the demo's budget: 16 sublayers, about 2 minutes for the three runs on 2 cores */
    base.cfg.layers = 8;
    base.cfg.dim = 64;
    base.cfg.heads = 4;
    base.cfg.seq = 64;
    base.batch = 8;
    base.steps = 400;
    base.lr = 4e-3;
    base.eval_every = 50;
    base.save_every = 0;           /* a checkpoint at the end of each run, for the samples */
    p = train_parse(argc, argv, &base, 1);
    if (p <= 0) return p < 0 ? 0 : 2;
    if (projections) return train_demo_projections(&base);
    if (mkdir("build", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create build/: %s\n", strerror(errno)); return 1; }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create %s: %s\n", dir, strerror(errno)); return 1; }
    {   /* the plot is written after all three runs: check it first (issue 15) */
        mhc_ctx ctx;
        mhc_ctx_init(&ctx);
        if (mhc_checkpoint_check_target(&ctx, svg) != MHC_OK) { fprintf(stderr, "demo: %s\n", mhc_ctx_message(&ctx)); return 1; }
    }
    memset(sum, 0, sizeof sum);
    for (i = 0; i < 3; i++) {
        train_opts o = base;
        o.cfg.hc.variant = variants[i];
        o.cfg.n = ns[i] = variants[i] == MHC_VARIANT_NONE ? 1 : (base.cfg.n > 1 ? base.cfg.n : 4);
        o.given |= 1u << TG_N;
        o.label = labels[i];
        snprintf(path[i], sizeof path[i], "%s/%s.csv", dir, labels[i]);
        snprintf(ckpt[i], sizeof ckpt[i], "%s/%s.ckpt", dir, labels[i]);
        o.log = path[i];
        o.save = ckpt[i];
        if ((rc = train_run(&o, &sum[i])) != 0) break;
        all[i] = sum[i].series;
    }
    if (rc == 0) {
        tool_sample_opts so;
        char vals[3][32];
        printf("\nmHC demo: %d blocks (%d sublayers), dim %d, seq %d, batch %d, %ld steps, seed %llu\n\n",
               base.cfg.layers, 2 * base.cfg.layers, base.cfg.dim, base.cfg.seq, base.batch, base.steps, base.seed);
        printf("| residual | n | train loss (mean of last 10 steps) | val loss | max Amax fwd gain | max Amax bwd gain | wall time |\n");
        printf("|---|---|---|---|---|---|---|\n");
        for (i = 0; i < 3; i++) {
            if (isfinite(sum[i].final_val)) snprintf(vals[i], sizeof vals[i], "%.4f", sum[i].final_val);
            else snprintf(vals[i], sizeof vals[i], "-");
            printf("| %s | %d | %.4f | %s | %.6g | %.6g | %.1f s |\n", labels[i], ns[i], sum[i].final_loss, vals[i],
                   sum[i].max_gain_fwd, sum[i].max_gain_bwd, sum[i].seconds);
        }
        if (plot_write_svg(svg, "none vs hc vs mhc", all, 3) != 0) { fprintf(stderr, "demo: cannot write %s\n", svg); rc = 1; }
        else printf("\nloss and gain curves: %s (CSV logs and checkpoints in %s/)\n", svg, dir);
        tool_sample_defaults(&so);
        so.prompt = "The ";
        so.tokens = 160;
        printf("\nsamples: mhc sample --resume %s/<residual>.ckpt --prompt '%s' --tokens %d --temperature %g --seed %llu\n",
               dir, so.prompt, so.tokens, so.temperature, so.seed);
        for (i = 0; i < 3 && rc == 0; i++) {
            gpt_model m;
            char err[512];
            printf("\n[%s]\n", labels[i]);
            fflush(stdout);
            if (tool_train_load_model(ckpt[i], &m) != 0) { rc = 1; break; }
            if (tool_sample_run(&m, &so, stdout, err, sizeof err) != 0) { fprintf(stderr, "demo: %s\n", err); rc = 1; }
            gpt_destroy(&m);
        }
    }
    for (i = 0; i < 3; i++) plot_series_free(&sum[i].series);
    return rc;
}

/* ---- gpt-export: the model's initial weights and a batch, for the PyTorch reference ---------- */

/* mhc gpt-export DIR [train options]: writes DIR/config.txt, DIR/params/<name>.npy (the initial
   weights), DIR/tokens.npy and DIR/targets.npy ([B,T], as float64). The test suite and
   tests/reference/gpt_reference.py read them. */
int tool_cmd_gpt_export(int argc, char **argv) {
    train_opts o;
    mhc_ctx ctx;
    gpt_model model;
    mhc_rng rng;
    train_data data;
    const char *dir;
    char path[1024];
    int i, rc = 1, *inp = NULL, *tgt = NULL, shape[2], p;
    double *buf = NULL;
    FILE *f;
    if (argc < 2 || argv[1][0] == '-') { fprintf(stderr, "usage: mhc gpt-export DIR [train options]\n"); return 2; }
    dir = argv[1];
    train_defaults(&o);
    p = train_parse(argc - 1, argv + 1, &o, 0);
    if (p <= 0) return p < 0 ? 0 : 2;
    train_fill_new_run(&o);
    mhc_ctx_init(&ctx);
    if (!train_load_data(o.data, &data)) return 1;
    if (!train_data_fits(&data, o.cfg.seq)) { train_data_free(&data); return 1; }
    if (gpt_create(&ctx, &model, &o.cfg) != MHC_OK) { fprintf(stderr, "gpt-export: %s\n", mhc_ctx_message(&ctx)); train_data_free(&data); return 1; }
    mhc_rng_seed(&rng, o.seed);
    if (gpt_init(&ctx, &model, &rng) != MHC_OK) goto fail;
    snprintf(path, sizeof path, "%s/config.txt", dir);
    f = fopen(path, "w");
    if (!f) { fprintf(stderr, "gpt-export: cannot write %s (does the directory exist?)\n", path); goto done; }
    fprintf(f, "vocab = %d\nseq = %d\ndim = %d\nheads = %d\nlayers = %d\nn = %d\nresidual = %s\npreset = %s\n"
               "batch = %d\nseed = %llu\nlr = %.17g\nweight_decay = %.17g\ngrad_clip = %.17g\n",
            o.cfg.vocab, o.cfg.seq, o.cfg.dim, o.cfg.heads, o.cfg.layers, o.cfg.n,
            mhc_hc_variant_name(model.spec.variant), mhc_hc_preset_name(model.spec.preset),
            o.batch, o.seed, o.lr, o.weight_decay, o.grad_clip);
    fprintf(f, "params =");
    for (i = 0; i < model.params.count; i++) fprintf(f, " %s", model.params.names[i]);
    fprintf(f, "\ndecay =");
    for (i = 0; i < model.params.count; i++) fprintf(f, " %d", model.params.decay[i]);
    fprintf(f, "\n");
    if (fclose(f) != 0) goto fail;
    for (i = 0; i < model.params.count; i++) {
        mhc_tensor *t = &model.params.tensors[i];
        size_t k;
        free(buf);
        buf = (double *)malloc(t->size * sizeof(double));
        if (!buf) goto fail;
        for (k = 0; k < t->size; k++) buf[k] = (double)t->data[k];
        snprintf(path, sizeof path, "%s/params/%s.npy", dir, model.params.names[i]);
        if (mhc_npy_write(&ctx, path, t->ndim, t->shape, buf) != MHC_OK) goto fail;
    }
    inp = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    tgt = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    free(buf);
    buf = (double *)malloc((size_t)o.batch * o.cfg.seq * sizeof(double));
    if (!inp || !tgt || !buf) goto fail;
    train_batch(&data, 0, data.split, o.batch, o.cfg.seq, &rng, inp, tgt);
    shape[0] = o.batch;
    shape[1] = o.cfg.seq;
    for (i = 0; i < o.batch * o.cfg.seq; i++) buf[i] = inp[i];
    snprintf(path, sizeof path, "%s/tokens.npy", dir);
    if (mhc_npy_write(&ctx, path, 2, shape, buf) != MHC_OK) goto fail;
    for (i = 0; i < o.batch * o.cfg.seq; i++) buf[i] = tgt[i];
    snprintf(path, sizeof path, "%s/targets.npy", dir);
    if (mhc_npy_write(&ctx, path, 2, shape, buf) != MHC_OK) goto fail;
    rc = 0;
    goto done;
fail:
    fprintf(stderr, "gpt-export: %s\n", mhc_ctx_message(&ctx));
done:
    free(buf); free(inp); free(tgt); train_data_free(&data);
    gpt_destroy(&model);
    return rc;
}
