/* tests/fuzz/fuzz_args.c - libFuzzer target for the tool's argument and case parsing: the input is
 * a command line, its arguments separated by NUL bytes (as /proc/PID/cmdline). The first argument
 * picks the parser; when it names none, the first byte does:
 *   train | demo | gpt-export ARGS   train_parse of tools/train.c (this file includes it, so its
 *                                    static parser is reachable), then what `mhc train` decides
 *                                    from the options before allocating anything: gpt_config_check,
 *                                    mhc_hc_resolve, mhc_trainer_init on the resolved schedule;
 *   verify ARGS                      tool_verify_args;
 *   compare ARGS                     tool_compare_args;
 *   make-case ARGS                   tool_make_case_args;
 *   case TEXT                        the rest of the input as a case.txt (tool_verify_parse_case),
 *                                    then mhc_hc_resolve and mhc_hc_param_shapes for C = 1..4.
 * Nothing reads or writes a file (the parsers only parse; their messages go to /dev/null).
 * Properties (abort() = a finding): each parser returns one of its documented codes; a refusal
 * leaves a terminated, non-empty message; an accepted command line has every option in its
 * documented range, every string pointing at one of the arguments; the library's checks of an
 * accepted configuration succeed or say why. */
#define _POSIX_C_SOURCE 200809L
#define _XOPEN_SOURCE 700       /* realpath, used by tools/train.c (included below) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The parsers print their messages; send them to /dev/null (the real stderr when that fails). */
static FILE *fa_real_stderr(void) { return stderr; }
static FILE *fa_sink(void) {
    static FILE *f;
    if (!f) f = fopen("/dev/null", "w");
    return f ? f : fa_real_stderr();
}
#undef stderr
#undef stdout
#define stderr (fa_sink())
#define stdout (fa_sink())
#include "tools/train.c"
#include "tools/verify.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FA_MAXARG 48

static int fa_finite_ge0(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff && v >= 0;
}

/* s is NULL or one of argv[0..argc) (a suffix of one for --out=) */
static int fa_in_argv(const char *s, int argc, char **argv) {
    int i;
    if (!s) return 1;
    for (i = 0; i < argc; i++)
        if (s >= argv[i] && s <= argv[i] + strlen(argv[i])) return 1;
    return 0;
}

static void fa_train(int argc, char **argv, int mode) {
    train_opts o;
    mhc_ctx ctx;
    gpt_config cfg;
    mhc_hc_spec spec;
    mhc_adamw_config acfg;
    mhc_trainer tr;
    int rc;
    train_defaults(&o);
    if (mode == 1) { o.cfg.layers = 8; o.steps = 400; o.lr = 4e-3; }   /* the demo's defaults */
    if (mode == 2) {                                                    /* gpt-export DIR [options] */
        if (argc < 2 || argv[1][0] == '-') return;
        argc--; argv++;
    }
    rc = train_parse(argc, argv, &o, mode == 1);
    if (rc != 0 && rc != 1 && rc != -1) abort();   /* 1 go on, 0 usage error, -1 --help printed */
    if (rc != 1) return;
    if (o.save_every < -1 || o.print_every < -1 || o.warmup < -1) abort();
    train_fill_new_run(&o);   /* what a new run derives from the options (n of none, presets, warmup) */
    if (o.cfg.n < 1 || o.cfg.n > 64 || o.cfg.layers < 1 || o.cfg.layers > GPT_MAX_LAYERS) abort();
    if (o.cfg.dim < 1 || o.cfg.dim > (1 << 14) || o.cfg.heads < 1 || o.cfg.heads > (1 << 14)) abort();
    if (o.cfg.seq < 1 || o.cfg.seq > (1 << 14) || o.batch < 1 || o.batch > (1 << 16)) abort();
    if (o.steps < 1 || o.steps > (1 << 30) || o.warmup < 0 || o.warmup > (1 << 30)) abort();
    if (o.threads < 0 || o.threads > 1024 || o.eval_every < 0 || o.eval_batches < 0 || o.stop_after < 0) abort();
    if (o.recompute < -1 || o.recompute > 1000000 || o.fault_nan_step < 0) abort();
    if (o.schedule < 0 || o.schedule >= MHC_LR_KIND_COUNT) abort();
    if (!fa_finite_ge0(o.lr) || o.lr > 10 || !fa_finite_ge0(o.weight_decay) || o.weight_decay > 10) abort();
    if (!fa_finite_ge0(o.grad_clip) || o.grad_clip > 1e9) abort();
    if (!fa_in_argv(o.data, argc, argv) || !fa_in_argv(o.save, argc, argv) || !fa_in_argv(o.resume, argc, argv) ||
        !fa_in_argv(o.log, argc, argv) || !fa_in_argv(o.plot, argc, argv) || !fa_in_argv(o.label, argc, argv))
        abort();
    /* what train_run decides from these options before it allocates: the model's sizes, the
       residual (the library's rules), the trainer's schedule */
    mhc_ctx_init(&ctx);
    cfg = o.cfg;
    if (gpt_config_check(&ctx, &cfg) != MHC_OK && !ctx.msg[0]) abort();
    mhc_ctx_init(&ctx);
    if (mhc_hc_resolve(&ctx, &cfg.hc, cfg.n, &spec) != MHC_OK) {
        if (!ctx.msg[0]) abort();
    } else if (spec.n != cfg.n || spec.m < 0 || (spec.variant == MHC_VARIANT_NONE) != (spec.m == 0)) {
        abort();
    }
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.kind = o.schedule;
    acfg.schedule.lr = o.lr;
    acfg.schedule.warmup = o.warmup;
    acfg.schedule.total = o.steps;
    acfg.weight_decay = o.weight_decay > 0 ? o.weight_decay : MHC_ZERO;
    acfg.grad_clip = o.grad_clip > 0 ? o.grad_clip : MHC_ZERO;
    mhc_ctx_init(&ctx);
    if (mhc_trainer_init(&ctx, &tr, &acfg) != MHC_OK && !ctx.msg[0]) abort();
}

static void fa_verify(int argc, char **argv) {
    const char *c = (const char *)1, *o = (const char *)1;
    char err[256];
    int rc;
    memset(err, 'x', sizeof err);
    rc = tool_verify_args(argc, argv, &c, &o, err, sizeof err);
    if (!memchr(err, 0, sizeof err)) abort();
    if (rc == 2 && !err[0]) abort();
    if (rc == 0 && (!c || !o || !*c || !*o || !fa_in_argv(c, argc, argv) || !fa_in_argv(o, argc, argv))) abort();
    if (rc < 0 || rc > 2) abort();
}

static void fa_compare(int argc, char **argv) {
    const char *a = NULL, *b = NULL;
    double rt = 0, at = 0;
    char err[256];
    int rc;
    memset(err, 'x', sizeof err);
    rc = tool_compare_args(argc, argv, &a, &b, &rt, &at, err, sizeof err);
    if (!memchr(err, 0, sizeof err)) abort();
    if (rc == 2 && !err[0]) abort();
    if (rc == 0) {
        if (!a || !b || !fa_in_argv(a, argc, argv) || !fa_in_argv(b, argc, argv)) abort();
        if (!(rt == -1 || fa_finite_ge0(rt)) || !(at == -1 || fa_finite_ge0(at))) abort();
    }
    if (rc < 0 || rc > 2) abort();
}

static void fa_make_case(int argc, char **argv) {
    tool_make_case_opts o;
    char err[256];
    int rc;
    memset(err, 'x', sizeof err);
    rc = tool_make_case_args(argc, argv, &o, err, sizeof err);
    if (!memchr(err, 0, sizeof err)) abort();
    if (rc == 2 && !err[0]) abort();
    if (rc == 0) {
        if (!o.preset || !o.out || !fa_in_argv(o.preset, argc, argv) || !fa_in_argv(o.out, argc, argv)) abort();
        if (o.n < 1 || o.n > 64 || o.T < 1 || o.T > 4096 || o.C < 1 || o.C > 4096) abort();
        if (o.op < 0 || o.op > 2 || !fa_finite_ge0(o.min_power) || (o.f32 != 0 && o.f32 != 1)) abort();
    }
    if (rc < 0 || rc > 2) abort();
}

static void fa_case(const char *text, size_t len) {
    tool_verify_case_txt c;
    mhc_ctx ctx;
    mhc_hc_spec s;
    char err[512];
    int rc, C;
    memset(err, 'x', sizeof err);
    rc = tool_verify_parse_case(text, len, "case.txt", &c, err, sizeof err);
    if (!memchr(err, 0, sizeof err)) abort();
    if (rc == 2) { if (!err[0]) abort(); return; }
    if (rc != 0) abort();
    mhc_ctx_init(&ctx);
    if (mhc_hc_resolve(&ctx, &c.cfg, c.n, &s) != MHC_OK) { if (!ctx.msg[0]) abort(); return; }
    for (C = 1; C <= 4; C++) {
        int fs[2], ns, nb, nw;
        mhc_ctx_init(&ctx);
        if (mhc_hc_param_shapes(&ctx, &s, C, c.op == TOOL_VERIFY_HEAD, fs, &ns, &nb, &nw) != MHC_OK) {
            if (!ctx.msg[0]) abort();
            continue;
        }
        if (fs[0] < 0 || fs[1] < 0 || ns < 0 || nb < 0 || nw < 0) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const modes[7] = {"train", "demo", "gpt-export", "verify", "compare", "case", "make-case"};
    char *buf, *argv[FA_MAXARG + 1];
    int argc = 0, mode = -1, i;
    size_t k, first;
    if (size > 4096) return 0;
    buf = (char *)malloc(size + 1);
    if (!buf) return 0;
    if (size) memcpy(buf, data, size);
    buf[size] = 0;
    first = strlen(buf);
    for (i = 0; i < 7; i++)
        if (strcmp(buf, modes[i]) == 0) mode = i;
    if (mode < 0) mode = size ? data[0] % 7 : 0;
    if (mode == 5) {
        if (first < size) fa_case(buf + first + 1, size - first - 1);
        else fa_case(buf, size);
        free(buf);
        return 0;
    }
    /* the arguments: NUL-separated; argv[0] is the subcommand (or whatever came first) */
    argv[argc++] = buf;
    for (k = 0; k < size && argc < FA_MAXARG; k++)
        if (buf[k] == 0) argv[argc++] = buf + k + 1;
    argv[argc] = NULL;
    if (mode <= 2) fa_train(argc, argv, mode);
    else if (mode == 3) fa_verify(argc, argv);
    else if (mode == 6) fa_make_case(argc, argv);
    else fa_compare(argc, argv);
    free(buf);
    return 0;
}
