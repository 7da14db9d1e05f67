/* tools/interrupt.h - Ctrl-C and SIGTERM for the long runs of build/mhc (POSIX). Include after mhc.h.
 *
 *   tool_interrupt_install()    handle SIGINT and SIGTERM (sigaction, SA_RESTART)
 *   tool_interrupt_signal()     0, or the first of those signals that arrived: the run finishes its
 *                               current step, saves, closes its log and exits with 128 + the signal
 *                               (130 for SIGINT, 143 for SIGTERM)
 *   tool_interrupt_save(...)    mhc_checkpoint_save under the guard below
 *   tool_interrupt_uninstall()  the previous handlers back, the guard's names freed
 *
 * The first signal only sets a flag. A second one ends the process at once: _exit(128 + signal).
 * If it arrives during tool_interrupt_save, the handler first unlinks the save's temporary file. Its
 * possible names (mhc_checkpoint_tmp_name, every attempt; they hold this process's id) are computed
 * before the save starts, so the handler calls nothing but unlink and _exit, which are
 * async-signal-safe. The checkpoint under the final name is then the one before: the library only
 * ever renames a complete, synced file over it. tests/test_interrupt.c checks both signals at points
 * inside a save's write.
 * The state is static (a signal handler has nowhere else to look): one copy per program. */
#ifndef TOOL_INTERRUPT_H
#define TOOL_INTERRUPT_H
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(__GNUC__) || defined(__clang__)
#define TOOL_INTR_FN static __attribute__((unused))
#else
#define TOOL_INTR_FN static
#endif

static volatile sig_atomic_t tool__intr_sig = 0;      /* the first signal's number, 0 if none */
static volatile sig_atomic_t tool__intr_saving = 0;   /* a save is running: its names are below */
static char *tool__intr_names[MHC_CHECKPOINT_TMP_TRIES];
static char *tool__intr_path = NULL;                  /* the path the names belong to */
static struct sigaction tool__intr_old_int, tool__intr_old_term;
static int tool__intr_installed = 0;

static void tool__intr_handler(int sig) {
    int i;
    if (!tool__intr_sig) {
        tool__intr_sig = sig;
        return;
    }
    if (tool__intr_saving)
        for (i = 0; i < MHC_CHECKPOINT_TMP_TRIES; i++)
            if (tool__intr_names[i]) (void)unlink(tool__intr_names[i]);
    _exit(128 + sig);
}

/* Handle SIGINT and SIGTERM from now on (a signal that came before is forgotten). 0 on success. */
TOOL_INTR_FN int tool_interrupt_install(void) {
    struct sigaction sa;
    tool__intr_sig = 0;
    if (tool__intr_installed) return 0;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tool__intr_handler;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);    /* one handler at a time: the second signal waits for the first */
    sigaddset(&sa.sa_mask, SIGTERM);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGINT, &sa, &tool__intr_old_int) != 0) return -1;
    if (sigaction(SIGTERM, &sa, &tool__intr_old_term) != 0) {
        sigaction(SIGINT, &tool__intr_old_int, NULL);
        return -1;
    }
    tool__intr_installed = 1;
    return 0;
}

TOOL_INTR_FN int tool_interrupt_signal(void) { return (int)tool__intr_sig; }

TOOL_INTR_FN void tool__intr_forget_names(void) {
    int i;
    for (i = 0; i < MHC_CHECKPOINT_TMP_TRIES; i++) { free(tool__intr_names[i]); tool__intr_names[i] = NULL; }
    free(tool__intr_path);
    tool__intr_path = NULL;
}

TOOL_INTR_FN void tool_interrupt_uninstall(void) {
    if (tool__intr_installed) {
        sigaction(SIGINT, &tool__intr_old_int, NULL);
        sigaction(SIGTERM, &tool__intr_old_term, NULL);
        tool__intr_installed = 0;
    }
    tool__intr_saving = 0;
    tool__intr_forget_names();
}

/* mhc_checkpoint_save(ctx, path, ...) with the temporary file's names registered for the handler. */
TOOL_INTR_FN mhc_result tool_interrupt_save(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                      const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    mhc_result r;
    int i;
    if (!path || !path[0]) return mhc_checkpoint_save(ctx, path, config, config_bytes, p, tr, rng);   /* its message */
    if (!tool__intr_path || strcmp(tool__intr_path, path) != 0) {   /* (saving is 0 here: the handler reads nothing) */
        size_t cap = strlen(path) + 64;
        tool__intr_forget_names();
        tool__intr_path = (char *)malloc(strlen(path) + 1);
        if (!tool__intr_path) return mhc_fail(ctx, MHC_ERR_NOMEM, "save '%s': out of memory", path);
        strcpy(tool__intr_path, path);
        for (i = 0; i < MHC_CHECKPOINT_TMP_TRIES; i++) {
            tool__intr_names[i] = (char *)malloc(cap);
            if (!tool__intr_names[i] || mhc_checkpoint_tmp_name(tool__intr_names[i], cap, path, i) >= cap) {
                tool__intr_forget_names();
                return mhc_fail(ctx, MHC_ERR_NOMEM, "save '%s': out of memory", path);
            }
        }
    }
#if defined(__GNUC__) || defined(__clang__)
    __asm__ __volatile__("" ::: "memory");   /* the names are in memory before the flag says so */
#endif
    tool__intr_saving = 1;
    r = mhc_checkpoint_save(ctx, path, config, config_bytes, p, tr, rng);
    tool__intr_saving = 0;
    return r;
}

#endif
