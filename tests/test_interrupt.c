/* tests/test_interrupt.c - mhc_checkpoint_tmp_name (the names a save's temporary file takes) and the
 * signal guard of `mhc train` (tools/interrupt.h), with signals raised from inside a save's write
 * (mhc.h's test hook mhc__ckpt_fault_hook pauses the writer at a chosen byte; POSIX):
 *   one SIGINT mid-write: the save completes, the run sees the signal afterwards;
 *   a second SIGINT (or SIGTERM) mid-write: the process exits at once with 128 + the signal, the
 *   temporary file is gone and the final name still holds the previous checkpoint, whole;
 *   a second signal outside a save: the same exit, nothing touched. */
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <sys/wait.h>
#include <dirent.h>
#include "../tools/interrupt.h"
#define INT_POSIX 1
#else
#define INT_POSIX 0
#endif

#if INT_POSIX
static int TP(int_exists)(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void TP(int_path)(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("TMPDIR");
    snprintf(buf, cap, "%s/mhc_test_interrupt_%s_%ld_%s", dir && dir[0] ? dir : "/tmp", TEST_PREC, (long)getpid(), name);
}

/* a parameter store large enough that a save takes several writes' worth of bytes */
static void TP(int_store)(mhc_ctx *ctx, mhc_params *p, double fill) {
    int sh[2] = {64, 100};
    size_t i;
    mhc_params_init(ctx, p);
    mhc_params_add(p, "w", 2, sh, MHC_PARAM_DECAY);
    mhc_params_alloc(p);
    for (i = 0; i < p->size; i++) p->data[i] = (mhc_real)(fill + 0.001 * (double)i);
}

/* what the pause hook raises, in the child */
typedef struct int_plan { int first, second; } int_plan;
static void TP(int_raise)(void *user) {
    const int_plan *pl = (const int_plan *)user;
    if (pl->first) raise(pl->first);
    if (pl->second) raise(pl->second);   /* exits the process (the guard's handler) */
}

/* In a child: install the guard, save path with the writer paused at byte `at` raising the plan's
   signals. The child exits 0 if the save returned MHC_OK and the guard saw the first signal, 5 if the
   save failed, 6 if no signal was seen; the second signal makes it exit with 128 + signal. */
static int TP(int_child_save)(const char *path, size_t at, int first, int second) {
    int status = -1;
    pid_t pid;
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        mhc_ctx ctx;
        mhc_params p;
        mhc__ckpt_faults f;
        int_plan plan;
        mhc_result r;
        mhc_ctx_init(&ctx);
        TP(int_store)(&ctx, &p, 2.0);
        if (tool_interrupt_install() != 0) _exit(7);
        plan.first = first;
        plan.second = second;
        memset(&f, 0, sizeof f);
        f.write_limit = SIZE_MAX;
        f.pause_at = at;
        f.on_pause = TP(int_raise);
        f.pause_user = &plan;
        mhc__ckpt_fault_hook = &f;
        r = tool_interrupt_save(&ctx, path, "v2", 3, &p, NULL, NULL);
        mhc__ckpt_fault_hook = NULL;
        _exit(r != MHC_OK ? 5 : tool_interrupt_signal() == first ? 0 : 6);
    }
    if (pid < 0 || waitpid(pid, &status, 0) != pid) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* the config blob of the checkpoint at path ("" when it does not load) */
static void TP(int_load_cfg)(const char *path, char *cfg, size_t cap) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_ctx_init(&ctx);
    TP(int_store)(&ctx, &p, 0.0);
    memset(cfg, 0, cap);
    if (mhc_checkpoint_load(&ctx, path, cfg, cap, NULL, &p, NULL, NULL) != MHC_OK) cfg[0] = 0;
    mhc_params_free(&p);
}

static void TP(int_test_tmp_name)(void) {
    mhc_ctx ctx;
    mhc_params p;
    mhc__ckpt_faults f;
    char path[512], name[600], name1[600], small[8];
    size_t len;
    FILE *taken;
    TEST_BEGIN("mhc_checkpoint_tmp_name: the names the writer takes");
    mhc_ctx_init(&ctx);
    TP(int_path)(path, sizeof path, "names.ckpt");
    TP(int_store)(&ctx, &p, 1.0);
    memset(&f, 0, sizeof f);
    f.write_limit = SIZE_MAX;
    mhc__ckpt_fault_hook = &f;
    CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, NULL, NULL));
    mhc__ckpt_fault_hook = NULL;
    len = mhc_checkpoint_tmp_name(name, sizeof name, path, 0);
    CHECK(len == strlen(name) && len > strlen(path));
    CHECK_MSG(strcmp(name, f.tmp_path) == 0, "attempt 0 is '%s', the writer used '%s'", name, f.tmp_path);
    /* attempt 0's name taken: the writer moves on to attempt 1's */
    taken = fopen(name, "wb");
    CHECK(taken != NULL);
    if (taken) fclose(taken);
    memset(&f, 0, sizeof f);
    f.write_limit = SIZE_MAX;
    mhc__ckpt_fault_hook = &f;
    CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, NULL, NULL));
    mhc__ckpt_fault_hook = NULL;
    CHECK(mhc_checkpoint_tmp_name(name1, sizeof name1, path, 1) == strlen(name1));
    CHECK_MSG(strcmp(name1, f.tmp_path) == 0, "attempt 1 is '%s', the writer used '%s'", name1, f.tmp_path);
    CHECK(strcmp(name, name1) != 0);
    CHECK(TP(int_exists)(name) && !TP(int_exists)(name1));
    remove(name);
    /* snprintf-style truncation, bad arguments */
    CHECK(mhc_checkpoint_tmp_name(small, sizeof small, path, 0) == len && strlen(small) == sizeof small - 1);
    CHECK(mhc_checkpoint_tmp_name(NULL, 0, path, 0) == len);
    CHECK(mhc_checkpoint_tmp_name(name, sizeof name, path, -1) == 0);
    CHECK(mhc_checkpoint_tmp_name(name, sizeof name, path, MHC_CHECKPOINT_TMP_TRIES) == 0);
    CHECK(mhc_checkpoint_tmp_name(name, sizeof name, "", 0) == 0);
    CHECK(mhc_checkpoint_tmp_name(name, sizeof name, NULL, 0) == 0);
    remove(path);
    mhc_params_free(&p);
}

static void TP(int_test_signals)(void) {
    mhc_ctx ctx;
    mhc_params p;
    char path[512], tmp[600], cfg[8];
    size_t full = 0;
    int k, rc;
    mhc_ctx_init(&ctx);
    TP(int_path)(path, sizeof path, "guard.ckpt");
    TP(int_store)(&ctx, &p, 1.0);
    CHECK_OK(mhc_checkpoint_serialize(&ctx, NULL, 0, &full, "v1", 3, &p, NULL, NULL));

    TEST_BEGIN("interrupt guard: one signal inside a save lets it finish");
    for (k = 0; k < 2; k++) {
        const int sig = k == 0 ? SIGINT : SIGTERM;
        CHECK_OK(mhc_checkpoint_save(&ctx, path, "v1", 3, &p, NULL, NULL));
        rc = TP(int_child_save)(path, full / 2, sig, 0);
        CHECK_MSG(rc == 0, "signal %d inside the save: the child returned %d, expected 0 (saved, signal seen)", sig, rc);
        TP(int_load_cfg)(path, cfg, sizeof cfg);
        CHECK_MSG(strcmp(cfg, "v2") == 0, "the new checkpoint should be in place, found '%s'", cfg);
    }

    TEST_BEGIN("interrupt guard: a second signal inside a save exits at once, no temporary file, the old checkpoint whole");
    for (k = 0; k < 6; k++) {
        /* pause points: after the header, half-way, all written (before the sync); SIGINT and SIGTERM */
        const size_t at = k % 3 == 0 ? 40 : k % 3 == 1 ? full / 2 : full;
        const int second = k < 3 ? SIGINT : SIGTERM;
        CHECK_OK(mhc_checkpoint_save(&ctx, path, "v1", 3, &p, NULL, NULL));   /* the previous checkpoint */
        rc = TP(int_child_save)(path, at, SIGINT, second);
        CHECK_MSG(rc == 128 + second, "second signal %d at byte %zu: the child returned %d, expected %d", second, at, rc,
                  128 + second);
        TP(int_load_cfg)(path, cfg, sizeof cfg);
        CHECK_MSG(strcmp(cfg, "v1") == 0, "the previous checkpoint should load, found '%s'", cfg);
        {   /* no temporary file of the child: its pid is gone, so look for every name in the directory */
            char dir[512], *slash, prefix[600];
            DIR *d;
            struct dirent *e;
            int left = 0;
            snprintf(dir, sizeof dir, "%s", path);
            slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            snprintf(prefix, sizeof prefix, "%s.tmp.", slash ? slash + 1 : path);
            d = opendir(slash ? dir : ".");
            CHECK(d != NULL);
            while (d && (e = readdir(d)) != NULL)
                if (strncmp(e->d_name, prefix, strlen(prefix)) == 0) left++;
            if (d) closedir(d);
            CHECK_MSG(left == 0, "%d temporary file(s) '%s*' left behind (pause at byte %zu)", left, prefix, at);
        }
    }

    TEST_BEGIN("interrupt guard: a second signal outside a save exits at once");
    {
        pid_t pid;
        int status = 0;
        fflush(NULL);
        pid = fork();
        if (pid == 0) {
            if (tool_interrupt_install() != 0) _exit(7);
            raise(SIGTERM);
            if (tool_interrupt_signal() != SIGTERM) _exit(6);
            raise(SIGINT);
            _exit(0);   /* not reached */
        }
        CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
        CHECK_MSG(WIFEXITED(status) && WEXITSTATUS(status) == 130, "status %d, expected exit 130", status);
    }
    (void)tmp;
    remove(path);
    mhc_params_free(&p);
}
#endif

void TP(test_interrupt)(void);
void TP(test_interrupt)(void) {
#if INT_POSIX
    TP(int_test_tmp_name)();
    /* Under valgrind (make valgrind sets MHC_TEST_UNDER_VALGRIND) a forked child inherits the
       runner's heap, which is still reachable when the child calls _exit, and valgrind's
       --error-exitcode replaces the exit status these tests examine. make test and make test-asan
       run them. */
    if (getenv("MHC_TEST_UNDER_VALGRIND"))
        printf("test_interrupt [%s]: the signal tests skipped under valgrind (forked children's exit status)\n",
               TEST_PREC);
    else
        TP(int_test_signals)();
#endif
}
