/* examples/verify.c - placeholder: the golden-vector verifier is built on another branch and
 * replaces this file at merge. */
#include "cli.h"

int mhc_cli_verify(int argc, char **argv) {
    (void)argc;
    (void)argv;
    fprintf(stderr, "verify: not built in this branch\n");
    return 2;
}
