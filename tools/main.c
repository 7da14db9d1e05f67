/* tools/main.c - build/mhc, the command-line tool: a dispatcher for its subcommands.
 *   mhc train [options]                 train the small GPT of gpt/gpt.h (tools/train.c)
 *   mhc demo [options]                  train none, hc and mhc side by side (tools/train.c);
 *                                       --projections: none, hc, mhc, lite, kromhc and ortho
 *   mhc verify CASE_DIR --out OUT_DIR   run one verification case through the library (tools/verify.c)
 *   mhc compare OUT_DIR EXPECTED_DIR    compare two directories of .npy tensors (tools/compare.c)
 *   mhc gpt-export DIR [options]        a GPT's initial weights and a batch (tools/train.c)
 *   mhc version                         print the library version and precision
 *   mhc help                            the usage text
 * Exit codes: 0 success, 1 a check or a run failed, 2 usage or I/O error (an unknown
 * subcommand included). */
#include <stdio.h>
#include <string.h>
#include "mhc.h"
#include "tools/tool.h"

static void tool_usage(FILE *f) {
    fprintf(f,
            "usage: mhc <command> [args]\n"
            "commands:\n"
            "  verify CASE_DIR --out OUT_DIR     run one case of tests/vectors through the library and\n"
            "                                    write its outputs as OUT_DIR/<name>.npy\n"
            "  compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A]\n"
            "                                    compare the .npy tensors of two directories\n"
            "  train [options]                   train the small GPT (mhc train --help)\n"
            "  demo [options]                    train none, hc and mhc side by side (make demo)\n"
            "  demo --projections [options]      none, hc, mhc, lite, kromhc and ortho, one table\n"
            "                                    (make demo-projections)\n"
            "  gpt-export DIR [options]          write a GPT's initial weights and a batch (PyTorch reference)\n"
            "  version                           print the mhc.h version\n"
            "  help                              print this text\n"
            "'mhc <command> --help' describes one command.\n");
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : NULL;
    if (!cmd) {
        tool_usage(stderr);
        return 2;
    }
    if (strcmp(cmd, "verify") == 0) return tool_cmd_verify(argc - 1, argv + 1);
    if (strcmp(cmd, "compare") == 0) return tool_cmd_compare(argc - 1, argv + 1);
    if (strcmp(cmd, "train") == 0) return tool_cmd_train(argc - 1, argv + 1);
    if (strcmp(cmd, "demo") == 0) return tool_cmd_demo(argc - 1, argv + 1);
    if (strcmp(cmd, "gpt-export") == 0) return tool_cmd_gpt_export(argc - 1, argv + 1);
    if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
        printf("mhc %s\n", mhc_version());
        return 0;
    }
    if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
        tool_usage(stdout);
        return 0;
    }
    fprintf(stderr, "mhc: unknown command '%s'\n", cmd);
    tool_usage(stderr);
    return 2;
}
