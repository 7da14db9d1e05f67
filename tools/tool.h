/* tools/tool.h - the subcommands of build/mhc (tools/main.c dispatches them). The tool's own
 * names start with tool_ (mhc_ and mhc__ belong to the library).
 * Each tool_cmd_<name>(argc, argv) gets argv[0] = "<name>" and returns the process exit code:
 * 0 success, 1 a check failed (mismatch) or a run failed, 2 usage or I/O error. */
#ifndef TOOL_H
#define TOOL_H
#include <stdio.h>

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

/* mhc compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A] */
int tool_cmd_compare(int argc, char **argv);
/* mhc verify ... (tools/verify.c) */
int tool_cmd_verify(int argc, char **argv);
/* mhc train ... / mhc demo ... (tools/train.c) */
int tool_cmd_train(int argc, char **argv);
int tool_cmd_demo(int argc, char **argv);
/* mhc gpt-export DIR [train options] (tools/train.c) */
int tool_cmd_gpt_export(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
