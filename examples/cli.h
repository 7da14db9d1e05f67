/* examples/cli.h - the subcommands of build/mhc (examples/mhc_cli.c is its main).
 * Each mhc_cli_<name>(argc, argv) gets argv[0] = "<name>" and returns the process exit code:
 * 0 success, 1 a check failed (mismatch), 2 usage or I/O error. */
#ifndef MHC_EXAMPLES_CLI_H
#define MHC_EXAMPLES_CLI_H
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Default tolerances of `mhc compare` (see examples/compare.c for the exact rule). */
#define MHC_COMPARE_RTOL_F64 1e-10
#define MHC_COMPARE_ATOL_F64 1e-12
#define MHC_COMPARE_RTOL_F32 1e-4
#define MHC_COMPARE_ATOL_F32 1e-6

/* Compare every EXP_DIR/<name>.npy with OUT_DIR/<name>.npy and print one table row per tensor
   to report (NULL: print nothing). Element k of a tensor fails when
       |out_k - exp_k| > atol * max(1, max_j |exp_j|) + rtol * |exp_k|
   or when either value is NaN or infinite; a tensor mismatches when any element fails, its
   output file is missing or unreadable, or its shape differs. Returns the number of
   mismatching tensors, or -1 (with a message in report) when the comparison itself cannot be
   made: EXP_DIR unreadable or without .npy files, an expected file malformed, bad tolerances. */
int mhc_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol, FILE *report);

/* mhc compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A] */
int mhc_cli_compare(int argc, char **argv);
/* mhc verify ... (examples/verify.c) */
int mhc_cli_verify(int argc, char **argv);
/* mhc train ... / mhc demo ... (examples/train.c; not yet dispatched by examples/mhc_cli.c) */
int mhc_cli_train(int argc, char **argv);
int mhc_cli_demo(int argc, char **argv);
/* mhc gpt-export DIR [train options] (examples/train.c) */
int mhc_cli_gpt_export(int argc, char **argv);

#ifdef __cplusplus
}
#endif
#endif
