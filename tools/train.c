/* tools/train.c - `build/mhc train` and `build/mhc demo`: train the small GPT of gpt.h on
 * byte-level text with AdamW, log CSV, plot SVG, save and resume checkpoints.
 * POSIX (isatty, clock_gettime); the library itself stays plain C99. */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <errno.h>
#include "mhc.h"
#include "gpt/gpt.h"
#include "tools/tool.h"
#include "gpt/corpus.h"
#include "tools/plot.h"

#if defined(_OPENMP)
#include <omp.h>
#endif

static double train__now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- options ------------------------------------------------------------------------------ */

typedef struct train_opts {
    const char *data, *save, *resume, *log, *plot, *label;
    gpt_config cfg;
    int batch, steps, threads, eval_every, eval_batches, warmup, quiet;
    int n_given, preset_given;     /* --n / --preset were given (else the defaults for the residual) */
    int fault_nan_step;            /* testing aid: the loss of this step is taken as NaN */
    int stop_after;                /* stop (and save) after this step of the --steps schedule */
    int recompute;                 /* mHC recomputation block (0 off, -1 auto: the paper's L_r) */
    int schedule;                  /* mhc_lr_kind */
    double lr, weight_decay, grad_clip;
    unsigned long long seed;
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
    o->warmup = -1;                /* default: 10% of the steps */
    o->schedule = MHC_LR_COSINE;
}

static int train__int(const char *opt, const char *v, int lo, int hi, int *out) {
    char *end;
    long x;
    if (!v) { fprintf(stderr, "train: %s needs a value\n", opt); return 0; }
    x = strtol(v, &end, 10);
    if (*v == 0 || *end != 0 || x < lo || x > hi) {
        fprintf(stderr, "train: %s '%s' is not an integer in [%d, %d]\n", opt, v, lo, hi);
        return 0;
    }
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

static void train_usage(FILE *f) {
    fprintf(f,
        "usage: mhc train [options]\n"
        "  --data FILE          text file, byte-level tokens (default: the generated corpus)\n"
        "  --residual KIND      none | hc | mhc | lite (default mhc)\n"
        "  --preset NAME        dsv4 | tilekernels | paper | lite | megatron | liger | lucidrains | mhc_cu\n"
        "                       (default dsv4; the peers' conventions: README \"Conventions\")\n"
        "  --norm-eps-mode M    inside | outside     --norm-scope S        flat | stream\n"
        "  --sinkhorn-eps-mode M add | clamp | threshold | zero\n"
        "  --sinkhorn-order O   col_first | row_first  --exp-shift S       none | row_max | col_max\n"
        "                       (the convention knobs, MHC_SPEC.md Sec. 8; default: the preset's)\n"
        "  --n N                streams (default 4; none uses 1)\n"
        "  --layers L --dim C --heads H --seq T --batch B   model and batch (default 4 64 4 64 8)\n"
        "  --steps S            total steps, also when resuming (default 200)\n"
        "  --lr LR              peak learning rate (default 3e-3)\n"
        "  --warmup W           warmup steps (default 10%% of the steps)\n"
        "  --schedule KIND      cosine | step (paper: x0.316 at 80%%, x0.1 at 90%%) | constant\n"
        "  --weight-decay WD    (default 0.1)   --grad-clip G (default 1.0, 0 = off)\n"
        "  --seed S  --threads K  --eval-every K (0 = never)  --eval-batches N\n"
        "  --save FILE  --resume FILE  --log FILE.csv  --plot FILE.svg  --quiet\n"
        "  --stop-after K       stop (and --save) after step K of the --steps schedule; resume later\n"
        "  --recompute K|auto   recompute the stream states in blocks of K sublayers in the backward\n"
        "                       (auto: the paper's sqrt(nL/(n+2)); 0 = off, the default); same results, less memory\n"
        "  --fault-nan-step K   testing aid: treat the loss of step K as NaN (checks the stop path)\n");
}

static int train_parse(int argc, char **argv, train_opts *o) {
    int i;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1, takes = 1;
        double d;
        if (!strcmp(a, "--data")) o->data = v;
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
        } else if (!strcmp(a, "--preset")) {
            mhc_hc_preset p;
            ok = v && mhc_hc_preset_parse(&ctx, v, &p) == MHC_OK;
            if (ok) { o->cfg.hc.preset = p; o->preset_given = 1; }
            else fprintf(stderr, "train: --preset: %s\n", v ? mhc_ctx_message(&ctx) : "needs a value");
        } else if (!strcmp(a, "--norm-eps-mode") || !strcmp(a, "--norm-scope") || !strcmp(a, "--sinkhorn-eps-mode") ||
                   !strcmp(a, "--sinkhorn-order") || !strcmp(a, "--exp-shift")) {
            mhc_hc_config *h = &o->cfg.hc;
            mhc_result r = MHC_ERR_NULL;
            if (v && !strcmp(a, "--norm-eps-mode")) r = mhc_norm_eps_mode_parse(&ctx, v, &h->norm_eps_mode);
            else if (v && !strcmp(a, "--norm-scope")) r = mhc_norm_scope_parse(&ctx, v, &h->norm_scope);
            else if (v && !strcmp(a, "--sinkhorn-eps-mode")) r = mhc_sinkhorn_eps_mode_parse(&ctx, v, &h->sinkhorn_eps_mode);
            else if (v && !strcmp(a, "--sinkhorn-order")) r = mhc_sinkhorn_order_parse(&ctx, v, &h->sinkhorn_order);
            else if (v) r = mhc_exp_shift_parse(&ctx, v, &h->exp_shift);
            ok = r == MHC_OK;
            if (!ok) fprintf(stderr, "train: %s: %s\n", a, v ? mhc_ctx_message(&ctx) : "needs a value");
        } else if (!strcmp(a, "--schedule")) {
            if (v && !strcmp(v, "cosine")) o->schedule = MHC_LR_COSINE;
            else if (v && !strcmp(v, "step")) o->schedule = MHC_LR_STEP;
            else if (v && !strcmp(v, "constant")) o->schedule = MHC_LR_CONSTANT;
            else { fprintf(stderr, "train: --schedule '%s': expected cosine, step or constant\n", v ? v : ""); ok = 0; }
        }
        else if (!strcmp(a, "--n")) { ok = train__int(a, v, 1, 64, &o->cfg.n); o->n_given = 1; }
        else if (!strcmp(a, "--layers")) ok = train__int(a, v, 1, GPT_MAX_LAYERS, &o->cfg.layers);
        else if (!strcmp(a, "--dim")) ok = train__int(a, v, 1, 1 << 14, &o->cfg.dim);
        else if (!strcmp(a, "--heads")) ok = train__int(a, v, 1, 1 << 14, &o->cfg.heads);
        else if (!strcmp(a, "--seq")) ok = train__int(a, v, 1, 1 << 14, &o->cfg.seq);
        else if (!strcmp(a, "--batch")) ok = train__int(a, v, 1, 1 << 16, &o->batch);
        else if (!strcmp(a, "--steps")) ok = train__int(a, v, 1, 1 << 30, &o->steps);
        else if (!strcmp(a, "--threads")) ok = train__int(a, v, 1, 1024, &o->threads);
        else if (!strcmp(a, "--eval-every")) ok = train__int(a, v, 0, 1 << 30, &o->eval_every);
        else if (!strcmp(a, "--eval-batches")) ok = train__int(a, v, 1, 1 << 16, &o->eval_batches);
        else if (!strcmp(a, "--warmup")) ok = train__int(a, v, 0, 1 << 30, &o->warmup);
        else if (!strcmp(a, "--stop-after")) ok = train__int(a, v, 1, 1 << 30, &o->stop_after);
        else if (!strcmp(a, "--recompute")) {
            if (v && !strcmp(v, "auto")) o->recompute = -1;
            else ok = train__int(a, v, 0, 1000000, &o->recompute);
        }
        else if (!strcmp(a, "--fault-nan-step")) ok = train__int(a, v, 1, 1 << 30, &o->fault_nan_step);
        else if (!strcmp(a, "--lr")) ok = train__num(a, v, 0, 10, &o->lr);
        else if (!strcmp(a, "--weight-decay")) ok = train__num(a, v, 0, 10, &o->weight_decay);
        else if (!strcmp(a, "--grad-clip")) ok = train__num(a, v, 0, 1e9, &o->grad_clip);
        else if (!strcmp(a, "--seed")) { ok = train__num(a, v, 0, 1.8e19, &d); if (ok) o->seed = (unsigned long long)d; }
        else if (!strcmp(a, "--quiet")) { o->quiet = 1; takes = 0; }
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) { train_usage(stdout); return 0; }
        else { fprintf(stderr, "train: unknown option '%s'\n", a); train_usage(stderr); return 0; }
        if (!ok) return 0;
        if (takes) {
            if (!v) { fprintf(stderr, "train: %s needs a value\n", a); return 0; }
            i++;
        }
    }
    /* the tool's defaults for options not given (the library decides what is valid: --residual none
       --n 4 is refused by mhc_hc_resolve, not corrected here) */
    if (!o->n_given && o->cfg.hc.variant == MHC_VARIANT_NONE) o->cfg.n = 1;
    if (!o->preset_given && o->cfg.hc.variant == MHC_VARIANT_LITE) o->cfg.hc.preset = MHC_PRESET_LITE;
    if (o->warmup < 0) o->warmup = o->steps / 10;
    return 1;
}

/* ---- data ---------------------------------------------------------------------------------- */

typedef struct train_data {
    unsigned char *bytes;
    size_t len, split;             /* [0, split) trains, [split, len) validates */
} train_data;

static int train_load_data(const char *path, int seq, train_data *d) {
    mhc_ctx ctx;
    void *buf = NULL;
    size_t len = 0;
    memset(d, 0, sizeof *d);
    mhc_ctx_init(&ctx);
    if (path) {
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
    } else {
        d->len = GPT_CORPUS_DEFAULT_BYTES;
        d->bytes = (unsigned char *)malloc(d->len);
        if (!d->bytes) { fprintf(stderr, "train: out of memory for the corpus\n"); return 0; }
        gpt_corpus_generate((char *)d->bytes, d->len, 20261128u);
    }
    d->split = d->len - d->len / 10;
    if (d->split < (size_t)seq + 2 || d->len - d->split < (size_t)seq + 2) {
        fprintf(stderr, "train: the data has %zu bytes; with a 90/10 train/validation split each part needs more "
                        "than seq+1 = %d bytes (use a smaller --seq or a longer file)\n", d->len, seq + 1);
        free(d->bytes);
        d->bytes = NULL;
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

/* ---- checkpoint config blob: the model config and the run's seed, little-endian ----------
   8 ints (vocab, seq, dim, heads, layers, n, variant, preset), the seed (8 bytes), then the five
   convention knobs as they were asked for (0 = the preset's). A blob without the knobs (the
   layout before them, TRAIN_BLOB_BYTES_V1) reads as knobs 0. */

#define TRAIN_BLOB_INTS 8
#define TRAIN_BLOB_KNOBS 5
#define TRAIN_BLOB_BYTES_V1 (4 * TRAIN_BLOB_INTS + 8)
#define TRAIN_BLOB_BYTES (TRAIN_BLOB_BYTES_V1 + 4 * TRAIN_BLOB_KNOBS)
static void train_blob_write(unsigned char *p, const gpt_config *c, unsigned long long seed) {
    int v[TRAIN_BLOB_INTS], kn[TRAIN_BLOB_KNOBS], i, k;
    v[0] = c->vocab; v[1] = c->seq; v[2] = c->dim; v[3] = c->heads;
    v[4] = c->layers; v[5] = c->n; v[6] = (int)c->hc.variant; v[7] = (int)c->hc.preset;
    kn[0] = (int)c->hc.norm_eps_mode; kn[1] = (int)c->hc.norm_scope; kn[2] = (int)c->hc.sinkhorn_eps_mode;
    kn[3] = (int)c->hc.sinkhorn_order; kn[4] = (int)c->hc.exp_shift;
    for (i = 0; i < TRAIN_BLOB_INTS; i++)
        for (k = 0; k < 4; k++) p[4 * i + k] = (unsigned char)(((unsigned)v[i] >> (8 * k)) & 0xff);
    for (k = 0; k < 8; k++) p[4 * TRAIN_BLOB_INTS + k] = (unsigned char)((seed >> (8 * k)) & 0xff);
    for (i = 0; i < TRAIN_BLOB_KNOBS; i++)
        for (k = 0; k < 4; k++) p[TRAIN_BLOB_BYTES_V1 + 4 * i + k] = (unsigned char)(((unsigned)kn[i] >> (8 * k)) & 0xff);
}
static void train_blob_read(const unsigned char *p, size_t nb, gpt_config *c, unsigned long long *seed) {
    int v[TRAIN_BLOB_INTS], kn[TRAIN_BLOB_KNOBS], i, k;
    for (i = 0; i < TRAIN_BLOB_INTS; i++) {
        unsigned u = 0;
        for (k = 0; k < 4; k++) u |= (unsigned)p[4 * i + k] << (8 * k);
        v[i] = (int)u;
    }
    for (i = 0; i < TRAIN_BLOB_KNOBS; i++) {
        unsigned u = 0;
        if (nb >= TRAIN_BLOB_BYTES)
            for (k = 0; k < 4; k++) u |= (unsigned)p[TRAIN_BLOB_BYTES_V1 + 4 * i + k] << (8 * k);
        kn[i] = (int)u;
    }
    c->vocab = v[0]; c->seq = v[1]; c->dim = v[2]; c->heads = v[3];
    c->layers = v[4]; c->n = v[5];
    memset(&c->hc, 0, sizeof c->hc);
    c->hc.variant = (mhc_hc_variant)v[6];
    c->hc.preset = (mhc_hc_preset)v[7];
    c->hc.norm_eps_mode = (mhc_norm_eps_mode)kn[0];
    c->hc.norm_scope = (mhc_norm_scope)kn[1];
    c->hc.sinkhorn_eps_mode = (mhc_sinkhorn_eps_mode)kn[2];
    c->hc.sinkhorn_order = (mhc_sinkhorn_order)kn[3];
    c->hc.exp_shift = (mhc_exp_shift)kn[4];
    *seed = 0;
    for (k = 0; k < 8; k++) *seed |= (unsigned long long)p[4 * TRAIN_BLOB_INTS + k] << (8 * k);
}

/* Only the configuration block of a checkpoint (the whole file is verified first). */
static mhc_result train_read_config(mhc_ctx *ctx, const char *path, unsigned char *blob, size_t cap, size_t *nb) {
    void *buf = NULL;
    size_t len = 0;
    mhc_result r = mhc_read_file(ctx, path, &buf, &len);
    if (r != MHC_OK) return r;
    r = mhc_checkpoint_parse(ctx, buf, len, blob, cap, nb, NULL, NULL, NULL);
    free(buf);
    return r;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* What a run reports to the demo. */
typedef struct train_summary {
    double final_loss, final_val, seconds, max_gain_fwd, max_gain_bwd;
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
    FILE *logf = NULL;
    int *inp = NULL, *tgt = NULL, rc = 1, step, have_model = 0, tty;
    double t0, tstep = 0, tokens_per_s = 0, last_loss = NAN, last_val = NAN;
    plot_series series;
    unsigned char blob[TRAIN_BLOB_BYTES];

    mhc_ctx_init(&ctx);
    memset(&series, 0, sizeof series);
    tty = !o.quiet && isatty(fileno(stderr));
#if defined(_OPENMP)
    if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
    if (o.resume) {
        /* the model configuration comes from the checkpoint */
        size_t nb = 0;
        unsigned long long seed;
        if (train_read_config(&ctx, o.resume, blob, sizeof blob, &nb) != MHC_OK) {
            fprintf(stderr, "train: --resume: %s\n", mhc_ctx_message(&ctx));
            return 1;
        }
        if (nb != TRAIN_BLOB_BYTES && nb != TRAIN_BLOB_BYTES_V1) {
            fprintf(stderr, "train: --resume '%s': the configuration block has %zu bytes, expected %d "
                            "(not a checkpoint of `mhc train`)\n", o.resume, nb, TRAIN_BLOB_BYTES);
            return 1;
        }
        train_blob_read(blob, nb, &o.cfg, &seed);
        o.seed = seed;
    }
    if (!train_load_data(o.data, o.cfg.seq, &data)) return 1;
    if (gpt_create(&ctx, &model, &o.cfg) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done;
    }
    have_model = 1;
    mhc_rng_seed(&rng, o.seed);
    if (gpt_init(&ctx, &model, &rng) != MHC_OK) { fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx)); goto done; }
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.kind = o.schedule;
    acfg.schedule.lr = o.lr;
    acfg.schedule.warmup = o.warmup;
    acfg.schedule.total = o.steps;
    acfg.weight_decay = o.weight_decay > 0 ? o.weight_decay : MHC_ZERO;
    acfg.grad_clip = o.grad_clip > 0 ? o.grad_clip : MHC_ZERO;
    if (mhc_trainer_init(&ctx, &trainer, &acfg) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done;
    }
    train_blob_write(blob, &o.cfg, o.seed);
    if (o.resume) {
        size_t nb = 0;
        if (mhc_checkpoint_load(&ctx, o.resume, blob, sizeof blob, &nb, &model.params, &trainer, &rng) != MHC_OK) {
            fprintf(stderr, "train: --resume: %s\n", mhc_ctx_message(&ctx));
            goto done;
        }
        if (!o.quiet) fprintf(stderr, "resumed from %s at step %ld\n", o.resume, (long)trainer.step);
    }
    inp = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    tgt = (int *)malloc((size_t)o.batch * o.cfg.seq * sizeof(int));
    if (!inp || !tgt || mhc_arena_init(&ctx, &arena, 1 << 20) != MHC_OK) {
        fprintf(stderr, "train: out of memory\n");
        goto done;
    }
    mhc_tape_init(&ctx, &tape, &arena);
    if (o.recompute != 0 && model.spec.variant != MHC_VARIANT_NONE &&
        mhc_tape_set_hc_recompute(&tape, o.recompute > 0 ? o.recompute
                                                         : mhc_hc_recompute_block(o.cfg.n, 2 * o.cfg.layers)) != MHC_OK) {
        fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
        goto done_tape;
    }
    if (o.log) {
        logf = fopen(o.log, trainer.step > 0 ? "a" : "w");
        if (!logf) { fprintf(stderr, "train: cannot open --log '%s' for writing\n", o.log); goto done_tape; }
        if (trainer.step == 0)
            fprintf(logf, "step,loss,val_loss,lr,grad_norm,amax_fwd,amax_bwd,tokens_per_s\n");
    }
    if (!o.quiet)
        fprintf(stderr, "%s: residual %s, preset %s, n %d, layers %d (%d sublayers), dim %d, heads %d, seq %d, batch %d, "
                        "%zu parameters, steps %d; conventions: norm_eps_mode %s, norm_scope %s, sinkhorn_eps_mode %s, "
                        "sinkhorn_order %s, exp_shift %s\n", o.label ? o.label : "train",
                mhc_hc_variant_name(model.spec.variant), mhc_hc_preset_name(model.spec.preset),
                o.cfg.n, o.cfg.layers, 2 * o.cfg.layers, o.cfg.dim, o.cfg.heads, o.cfg.seq, o.batch,
                model.params.size, o.steps, mhc_norm_eps_mode_name(model.spec.norm_eps_mode),
                mhc_norm_scope_name(model.spec.norm_scope), mhc_sinkhorn_eps_mode_name(model.spec.sinkhorn_eps_mode),
                mhc_sinkhorn_order_name(model.spec.sinkhorn_order), mhc_exp_shift_name(model.spec.exp_shift));
    t0 = train__now();
    for (step = (int)trainer.step; step < (o.stop_after > 0 && o.stop_after < o.steps ? o.stop_after : o.steps); step++) {
        mhc_tensor *loss;
        mhc_gain_stats g;
        double ts = train__now(), lossv, val = NAN;
        train_batch(&data, 0, data.split, o.batch, o.cfg.seq, &rng, inp, tgt);
        mhc_params_zero_grad(&model.params);
        loss = gpt_forward(&tape, &model, inp, tgt, o.batch, o.cfg.seq, NULL);
        if (!loss || mhc_tape_backward(&tape, loss) != MHC_OK) {
            fprintf(stderr, "train: step %d: %s\n", step + 1, mhc_ctx_message(&ctx));
            goto done_tape;
        }
        lossv = (double)loss->data[0];
        if (o.fault_nan_step == step + 1) lossv = NAN;
        if (gpt_gain(&ctx, &model, o.batch * o.cfg.seq, &g) != MHC_OK) {
            fprintf(stderr, "train: %s\n", mhc_ctx_message(&ctx));
            goto done_tape;
        }
        mhc_tape_reset(&tape);
        if (!isfinite(lossv)) {
            fprintf(stderr, "train: step %d: the loss is %g; stopping (the last good checkpoint%s%s is kept)\n",
                    step + 1, lossv, o.save ? " " : "", o.save ? o.save : " was not requested");
            goto done_tape;
        }
        if (mhc_trainer_step(&trainer, &model.params) != MHC_OK) {
            fprintf(stderr, "train: step %d: %s; stopping (the last good checkpoint%s%s is kept)\n", step + 1,
                    mhc_ctx_message(&ctx), o.save ? " " : "", o.save ? o.save : " was not requested");
            goto done_tape;
        }
        tstep = train__now() - ts;
        tokens_per_s = (double)o.batch * o.cfg.seq / (tstep > 0 ? tstep : 1e-9);
        last_loss = lossv;
        if (o.eval_every > 0 && ((step + 1) % o.eval_every == 0 || step + 1 == o.steps)) {
            val = train_eval(&tape, &model, &data, &o, inp, tgt);
            last_val = val;
            if (o.save && mhc_checkpoint_save(&ctx, o.save, blob, sizeof blob, &model.params, &trainer, &rng) != MHC_OK) {
                fprintf(stderr, "train: --save: %s\n", mhc_ctx_message(&ctx));
                goto done_tape;
            }
        }
        plot_series_add(&series, step + 1, lossv, val, g.fwd_max, g.bwd_max);
        if (logf) {
            fprintf(logf, "%d,%.9g,", step + 1, lossv);   /* %.9g: a float round-trips exactly */
            if (isfinite(val)) fprintf(logf, "%.9g", val);
            fprintf(logf, ",%.6g,%.6g,%.6g,%.6g,%.1f\n", trainer.last_lr, trainer.last_grad_norm, g.fwd_max, g.bwd_max,
                    tokens_per_s);
        }
        if (tty) {
            double el = train__now() - t0, eta = el / (step + 1 - (int)0) * (o.steps - step - 1);
            fprintf(stderr, "\r%s step %d/%d  loss %.4f  %.0f tok/s  gain %.3g  ETA %.0fs   ", o.label ? o.label : "",
                    step + 1, o.steps, lossv, tokens_per_s, g.fwd_max, eta);
            if (isfinite(val)) fprintf(stderr, "\n  val loss %.4f\n", val);
        }
        if (summary) {
            if (g.fwd_max > summary->max_gain_fwd) summary->max_gain_fwd = g.fwd_max;
            if (g.bwd_max > summary->max_gain_bwd) summary->max_gain_bwd = g.bwd_max;
        }
    }
    if (tty) fputc('\n', stderr);
    if (o.save && !(o.eval_every > 0 && step > 0 && (step % o.eval_every == 0 || step == o.steps)) &&
        mhc_checkpoint_save(&ctx, o.save, blob, sizeof blob, &model.params, &trainer, &rng) != MHC_OK) {
        fprintf(stderr, "train: --save: %s\n", mhc_ctx_message(&ctx));
        goto done_tape;
    }
    if (o.plot && plot_write_svg(o.plot, o.label ? o.label : "training", &series, 1) != 0) {
        fprintf(stderr, "train: cannot write --plot '%s'\n", o.plot);
        goto done_tape;
    }
    if (!o.quiet)
        fprintf(stderr, "%s: final loss %.4f, val loss %.4f, %.1f s\n", o.label ? o.label : "train", last_loss, last_val,
                train__now() - t0);
    if (summary) {
        int k, cnt = 0;
        double acc = 0;
        for (k = series.count - 1; k >= 0 && cnt < 10; k--, cnt++) acc += series.loss[k];
        summary->final_loss = cnt ? acc / cnt : last_loss;   /* mean of the last 10 steps (one batch is noisy) */
        summary->final_val = last_val;
        summary->seconds = train__now() - t0;
        summary->params = model.params.size;
        summary->series = series;
        memset(&series, 0, sizeof series);   /* ownership moves to the summary */
    }
    rc = 0;
done_tape:
    mhc_tape_free(&tape);
    mhc_arena_free(&arena);
done:
    if (logf && fclose(logf) != 0) { fprintf(stderr, "train: error writing --log '%s'\n", o.log); rc = 1; }
    plot_series_free(&series);
    free(inp);
    free(tgt);
    free(data.bytes);
    if (have_model) gpt_destroy(&model);
    return rc;
}

int tool_cmd_train(int argc, char **argv) {
    train_opts o;
    train_defaults(&o);
    if (!train_parse(argc, argv, &o)) return 2;
    return train_run(&o, NULL);
}

/* ---- the demo: none, hc and mhc side by side ------------------------------------------------ */

int tool_cmd_demo(int argc, char **argv) {
    static const mhc_hc_variant variants[3] = {MHC_VARIANT_NONE, MHC_VARIANT_HC, MHC_VARIANT_MHC};
    static const char *labels[3] = {"none", "hc", "mhc"};
    const char *svg = "build/demo/demo.svg", *dir = "build/demo";
    train_opts base;
    train_summary sum[3];
    plot_series all[3];
    int ns[3];
    char path[512];
    int i, rc = 0;
    train_defaults(&base);
    /* the demo's budget: 16 sublayers, about 5 minutes for the three runs on 2 cores */
    base.cfg.layers = 8;
    base.cfg.dim = 64;
    base.cfg.heads = 4;
    base.cfg.seq = 64;
    base.batch = 8;
    base.steps = 400;
    base.lr = 4e-3;
    base.eval_every = 50;
    if (!train_parse(argc, argv, &base)) return 2;
    if (mkdir("build", 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create build/: %s\n", strerror(errno)); return 1; }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { fprintf(stderr, "demo: cannot create %s: %s\n", dir, strerror(errno)); return 1; }
    memset(sum, 0, sizeof sum);
    for (i = 0; i < 3; i++) {
        train_opts o = base;
        o.cfg.hc.variant = variants[i];
        o.cfg.n = ns[i] = variants[i] == MHC_VARIANT_NONE ? 1 : (base.cfg.n > 1 ? base.cfg.n : 4);
        o.label = labels[i];
        snprintf(path, sizeof path, "%s/%s.csv", dir, labels[i]);
        o.log = base.log ? base.log : path;
        if (train_run(&o, &sum[i]) != 0) { rc = 1; break; }
        all[i] = sum[i].series;
    }
    if (rc == 0) {
        printf("\nmHC demo: %d blocks (%d sublayers), dim %d, seq %d, batch %d, %d steps, seed %llu\n\n",
               base.cfg.layers, 2 * base.cfg.layers, base.cfg.dim, base.cfg.seq, base.batch, base.steps, base.seed);
        printf("| residual | n | train loss (mean of last 10 steps) | val loss | max Amax fwd gain | max Amax bwd gain | wall time |\n");
        printf("|---|---|---|---|---|---|---|\n");
        for (i = 0; i < 3; i++)
            printf("| %s | %d | %.4f | %.4f | %.6g | %.6g | %.1f s |\n", labels[i], ns[i],
                   sum[i].final_loss, sum[i].final_val, sum[i].max_gain_fwd, sum[i].max_gain_bwd, sum[i].seconds);
        if (plot_write_svg(svg, "none vs hc vs mhc", all, 3) != 0) { fprintf(stderr, "demo: cannot write %s\n", svg); rc = 1; }
        else printf("\nloss and gain curves: %s (CSV logs in %s/)\n", svg, dir);
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
    int i, rc = 1, *inp = NULL, *tgt = NULL, shape[2];
    double *buf = NULL;
    FILE *f;
    if (argc < 2 || argv[1][0] == '-') { fprintf(stderr, "usage: mhc gpt-export DIR [train options]\n"); return 2; }
    dir = argv[1];
    train_defaults(&o);
    if (!train_parse(argc - 1, argv + 1, &o)) return 2;
    mhc_ctx_init(&ctx);
    if (!train_load_data(o.data, o.cfg.seq, &data)) return 1;
    if (gpt_create(&ctx, &model, &o.cfg) != MHC_OK) { fprintf(stderr, "gpt-export: %s\n", mhc_ctx_message(&ctx)); free(data.bytes); return 1; }
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
    free(buf); free(inp); free(tgt); free(data.bytes);
    gpt_destroy(&model);
    return rc;
}
