/* tools/tool.h - the subcommands of build/mhc (tools/main.c dispatches them). The tool's own
 * names start with tool_ (mhc_ and mhc__ belong to the library).
 * Each tool_cmd_<name>(argc, argv) gets argv[0] = "<name>" and returns the process exit code:
 * 0 success, 1 a check failed (mismatch) or a run failed, 2 usage or I/O error. */
#ifndef TOOL_H
#define TOOL_H
#include <stdio.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default tolerances of `mhc compare` (see tools/compare.c for the exact rule). */
#define TOOL_COMPARE_RTOL_F64 1e-10
#define TOOL_COMPARE_ATOL_F64 1e-12
#define TOOL_COMPARE_RTOL_F32 1e-4
#define TOOL_COMPARE_ATOL_F32 1e-6

/* Compare every EXP_DIR/<name>.npy with OUT_DIR/<name>.npy and print one table row per tensor
   to report (NULL: print nothing). Element k of a tensor fails when
       |out_k - exp_k| > atol * max(1, max_j |exp_j|) + rtol * |exp_k|
   or when either value is NaN or infinite; a tensor mismatches when any element fails, its
   output file is missing or unreadable, or its shape differs. Returns the number of
   mismatching tensors, or -1 (with a message in report) when the comparison itself cannot be
   made: EXP_DIR unreadable or without .npy files, an expected file malformed, bad tolerances. */
int tool_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol, FILE *report);

/* The rule above on one tensor of count elements (same shape): the largest |out - exp|, the largest
   |out - exp| / |exp| (exp != 0), the worst element's error over its tolerance, the elements that
   fail and those where either value is NaN or infinite (these are left out of the other figures). */
typedef struct tool_compare_stats {
    double max_abs, max_rel, worst;
    size_t fails, nonfinite;
} tool_compare_stats;
void tool_compare_tensor(const double *out, const double *exp, size_t count, double rtol, double atol,
                         tool_compare_stats *st);

/* mhc compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A] */
int tool_cmd_compare(int argc, char **argv);
/* Its command line (argv[0] = "compare"): 0 with the two directories (pointers into argv) and the
   tolerances given (-1 where not given); 1 for --help; 2 with a message in err. Touches no file. */
int tool_compare_args(int argc, char **argv, const char **out_dir, const char **exp_dir, double *rtol, double *atol,
                      char *err, size_t cap);
/* mhc verify ... (tools/verify.c) */
int tool_cmd_verify(int argc, char **argv);
/* mhc make-case ... (tools/make_case.c): a case whose inputs expose every convention slip */
typedef struct tool_make_case_opts {
    int op;                    /* TOOL_VERIFY_LAYER, _SINKHORN or _HEAD (tools/verify.h) */
    const char *preset, *out;  /* a preset name; the case directory (new or empty unless force) */
    int n, T, C, f32, force;
    unsigned long long seed;
    double min_power;          /* every slip that applies must reach this err/tol (100) */
} tool_make_case_opts;
#define TOOL_MAKE_CASE_N_MAX 64      /* n in 1..64; T and C in 1..4096 (tool_make_case checks them) */
#define TOOL_MAKE_CASE_TC_MAX 4096
/* "layer", "sinkhorn", "head" -> TOOL_VERIFY_LAYER, _SINKHORN, _HEAD; anything else -1. */
int tool_make_case_op(const char *name);
/* Its command line (argv[0] = "make-case"): 0 with *o filled, 1 for --help, 2 with a message. Touches no file. */
int tool_make_case_args(int argc, char **argv, tool_make_case_opts *o, char *err, size_t cap);
/* Write the case and DIR/power.txt (its table also to report unless NULL). 0: every slip that applies
   reaches o->min_power; 1: written, but some slip stays under it; 2: not written (an option out of
   range, a bad preset/n, I/O).
   err gets the closing line (what was written, or the problem). */
int tool_make_case(const tool_make_case_opts *o, FILE *report, char *err, size_t cap);
int tool_cmd_make_case(int argc, char **argv);
/* mhc train ... / mhc demo ... (tools/train.c) */
int tool_cmd_train(int argc, char **argv);
int tool_cmd_demo(int argc, char **argv);
/* mhc gpt-export DIR [train options] (tools/train.c) */
int tool_cmd_gpt_export(int argc, char **argv);

/* The model of a checkpoint of `mhc train` (tools/train.c): reads its configuration block (the
   run's record), creates *m (gpt_create; free with gpt_destroy) and loads the parameters. 0 on
   success; otherwise 1 with a message printed (a damaged checkpoint, or one of another program). */
struct gpt_model;
int tool_train_load_model(const char *path, struct gpt_model *m);

/* Sampling text from a model (tools/sample.c). */
typedef struct tool_sample_opts {
    const char *prompt;        /* the start, as bytes (a C string, at least one byte) */
    int tokens;                /* bytes to generate */
    double temperature;        /* 0: the argmax */
    int top_k;                 /* 0: all */
    unsigned long long seed;
    int raw;                   /* print control bytes as they are (else \xNN, except newline and tab) */
} tool_sample_opts;
void tool_sample_defaults(tool_sample_opts *o);   /* "\n", 200 tokens, temperature 0.8, top-k 0, seed 1337 */
/* Print the prompt and o->tokens generated bytes to out (then a newline unless the text ends with one).
   0 on success, else nonzero with a message in err. */
int tool_sample_run(struct gpt_model *m, const tool_sample_opts *o, FILE *out, char *err, size_t cap);
/* mhc sample --resume CKPT [--prompt TEXT] [--tokens N] [--temperature T] [--top-k K] [--seed S] */
int tool_cmd_sample(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
