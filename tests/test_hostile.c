/* tests/test_hostile.c - hostile files, paths, sizes and misuse (issue 15), one check per member:
 *   1. save targets: /dev/null, a FIFO, a directory, a symbolic link (followed: the link stays,
 *      its target gets the checkpoint; relative, dangling, looping), a hard-linked or read-only
 *      file, a mode kept across saves, a 250-byte name, a missing or unwritable directory noticed
 *      by mhc_checkpoint_check_target (which leaves nothing behind), mhc_npy_write to a FIFO;
 *   2. readers: /dev/zero, a FIFO (without blocking), a directory, a symlink to /dev/zero, as
 *      files, .npy files and checkpoints; mhc_read_file_max's limit; a .npy header that claims
 *      more than the file or more than the header limit; a checkpoint whose header claims a
 *      length other than the file's; a size-0 /proc file;
 *   3. scratch: the Sinkhorn iterates of n = 40 / 64 at 100000 iterations refused by every entry
 *      point (raw projection, raw pre step, reference, tape ops) before allocating, naming the
 *      formula; ctx.scratch_max lowers and raises the limit; mhc_ctx_clear keeps it;
 *   5. ranges: MHC_STEP_MAX in mhc_trainer_init / _step / checkpoint save; T*n*C, fn and
 *      C + 2n + n^2 above INT_MAX; mhc_attention's message with B*T above INT_MAX;
 *   6. misuse: two tapes on one arena, a direct mhc_arena_reset / mhc_arena_free under a tape,
 *      zeroed and damaged tensors given to every op, stale tensors and tensors of another arena,
 *      mhc_tape_backward(tp, NULL) after mhc_ctx_clear, mhc_gradcheck on a tape's tensors, a NULL
 *      or never-seeded generator (mhc_rng_below used to loop forever on one). */

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <fcntl.h>
#define HO_POSIX 1
#else
#define HO_POSIX 0
#endif

static void TP(ho_path)(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("TMPDIR");
    unsigned long pid = 0;
#if HO_POSIX
    pid = (unsigned long)getpid();
#endif
    snprintf(buf, cap, "%s/mhc_test_%s_%lu_ho_%s", dir && dir[0] ? dir : "/tmp", TEST_PREC, pid, name);
}

/* A small store with a trainer and rng, and a distinct value in data[0]. */
static void TP(ho_state)(mhc_ctx *ctx, mhc_params *p, mhc_trainer *tr, mhc_rng *rng, double v0) {
    int sh[2] = {3, 4};
    mhc_params_init(ctx, p);
    mhc_params_add(p, "w", 2, sh, MHC_PARAM_DECAY);
    mhc_params_alloc(p);
    mhc_rng_seed(rng, 7);
    mhc_rng_fill_normal(rng, p->data, p->size, 0.0, 1.0);
    p->data[0] = (mhc_real)v0;
    mhc_trainer_init(ctx, tr, NULL);
}

/* data[0] of the checkpoint at path (NaN when it does not load). */
static double TP(ho_load0)(const char *path) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    double v = HUGE_VAL - HUGE_VAL;
    mhc_ctx_init(&ctx);
    TP(ho_state)(&ctx, &p, &tr, &rng, 0.0);
    if (mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &p, &tr, &rng) == MHC_OK) v = (double)p.data[0];
    mhc_params_free(&p);
    return v;
}

#if HO_POSIX
static int TP(ho_is_type)(const char *path, int fifo) {
    struct stat st;
    if (lstat(path, &st) != 0) return 0;
    return fifo == 1 ? S_ISFIFO(st.st_mode) : fifo == 2 ? S_ISLNK(st.st_mode) : S_ISCHR(st.st_mode);
}

/* The number of entries of dir (to see that a check leaves nothing behind). */
#include <dirent.h>
static int TP(ho_entries)(const char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (!d) return -1;
    while ((e = readdir(d)) != NULL) n++;
    closedir(d);
    return n;
}

static void TP(ho_test_save_targets)(void) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    char dir[512], a[700], b[700], c[900], long_name[1000];
    struct stat st;
    mhc__ckpt_faults faults;
    int k, n0;
    mhc_ctx_init(&ctx);
    TP(ho_state)(&ctx, &p, &tr, &rng, 1.0);
    TP(ho_path)(dir, sizeof dir, "targets");
    mkdir(dir, 0700);

    TEST_BEGIN("save target: /dev/null is refused by name and stays a device");
    if (TP(ho_is_type)("/dev/null", 0)) {
        CHECK_RESULT(mhc_checkpoint_save(&ctx, "/dev/null", NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "'/dev/null' is a character device, not a regular file");
        CHECK(TP(ho_is_type)("/dev/null", 0));
        CHECK_RESULT(mhc_checkpoint_check_target(&ctx, "/dev/null"), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "character device");
    }

    TEST_BEGIN("save target: a FIFO is refused and stays a FIFO");
    snprintf(a, sizeof a, "%s/fifo", dir);
    CHECK(mkfifo(a, 0600) == 0);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, a, NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a FIFO (named pipe), not a regular file");
    CHECK(TP(ho_is_type)(a, 1));
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, a), MHC_ERR_IO);

    TEST_BEGIN("npy write: a FIFO is refused without blocking");
    {
        double x[2] = {1, 2};
        int sh[1] = {2};
        CHECK_RESULT(mhc_npy_write(&ctx, a, 1, sh, x), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a FIFO (named pipe), not a regular file; nothing was written");
        CHECK_RESULT(mhc_npy_write(&ctx, dir, 1, sh, x), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a directory");
    }
    remove(a);

    TEST_BEGIN("save target: a symbolic link is followed; the link stays and its target gets the checkpoint");
    snprintf(a, sizeof a, "%s/real.ckpt", dir);
    snprintf(b, sizeof b, "%s/link.ckpt", dir);
    CHECK_OK(mhc_checkpoint_save(&ctx, a, NULL, 0, &p, &tr, &rng));
    CHECK(symlink("real.ckpt", b) == 0);   /* relative: to the link's own directory */
    p.data[0] = 2;
    CHECK_OK(mhc_checkpoint_check_target(&ctx, b));
    CHECK_OK(mhc_checkpoint_save(&ctx, b, NULL, 0, &p, &tr, &rng));
    CHECK(TP(ho_is_type)(b, 2));                 /* still a link */
    CHECK(TP(ho_load0)(a) == 2.0);               /* the target holds the new state: resuming does not go back */
    CHECK(TP(ho_load0)(b) == 2.0);
    /* a link to a link, and a dangling link (its target is created) */
    snprintf(c, sizeof c, "%s/link2.ckpt", dir);
    CHECK(symlink(b, c) == 0);
    p.data[0] = 3;
    CHECK_OK(mhc_checkpoint_save(&ctx, c, NULL, 0, &p, &tr, &rng));
    CHECK(TP(ho_load0)(a) == 3.0 && TP(ho_is_type)(b, 2) && TP(ho_is_type)(c, 2));
    remove(c);
    snprintf(c, sizeof c, "%s/dangling.ckpt", dir);
    CHECK(symlink("made_by_save.ckpt", c) == 0);
    CHECK_OK(mhc_checkpoint_save(&ctx, c, NULL, 0, &p, &tr, &rng));
    snprintf(long_name, sizeof long_name, "%s/made_by_save.ckpt", dir);
    CHECK(TP(ho_load0)(long_name) == 3.0 && TP(ho_is_type)(c, 2));
    remove(long_name);
    remove(c);
    /* a loop */
    snprintf(c, sizeof c, "%s/loop1", dir);
    snprintf(long_name, sizeof long_name, "%s/loop2", dir);
    CHECK(symlink("loop2", c) == 0 && symlink("loop1", long_name) == 0);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, c, NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "more than 32 symbolic links");
    remove(c);
    remove(long_name);
    /* a link to /dev/null is refused, naming the target */
    snprintf(c, sizeof c, "%s/to_null", dir);
    CHECK(symlink("/dev/null", c) == 0);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, c, NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "'/dev/null' (the target of the symbolic link) is a character device");
    CHECK(TP(ho_is_type)(c, 2));
    remove(c);

    TEST_BEGIN("save target: the mode of an existing file is kept");
    for (k = 0; k < 3; k++) {
        mode_t m = k == 0 ? 0600 : k == 1 ? 0640 : 0604;
        CHECK(chmod(a, m) == 0);
        CHECK_OK(mhc_checkpoint_save(&ctx, a, NULL, 0, &p, &tr, &rng));
        CHECK(stat(a, &st) == 0 && (st.st_mode & 07777) == m);
        CHECK_OK(mhc_checkpoint_save(&ctx, b, NULL, 0, &p, &tr, &rng));   /* through the link too */
        CHECK(stat(a, &st) == 0 && (st.st_mode & 07777) == m);
    }

    TEST_BEGIN("save target: a hard-linked file is refused (the other name would keep the old checkpoint)");
    snprintf(c, sizeof c, "%s/hard.ckpt", dir);
    CHECK(link(a, c) == 0);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, a, NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "has 2 hard links");
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, c), MHC_ERR_IO);
    remove(c);
    remove(b);

    TEST_BEGIN("save target: a 250-byte file name saves (the temporary name fits NAME_MAX)");
    {
        size_t dl = (size_t)snprintf(long_name, sizeof long_name, "%s/", dir), i;
        for (i = 0; i < 250; i++) long_name[dl + i] = (char)('a' + i % 26);
        long_name[dl + 250] = 0;
        memset(&faults, 0, sizeof faults);
        faults.write_limit = SIZE_MAX;
        CHECK_OK(mhc_checkpoint_check_target(&ctx, long_name));
        mhc__ckpt_fault_hook = &faults;
        CHECK_OK(mhc_checkpoint_save(&ctx, long_name, NULL, 0, &p, &tr, &rng));
        mhc__ckpt_fault_hook = NULL;
        CHECK(strlen(strrchr(faults.tmp_path, '/') + 1) <= 255);
        CHECK_STR_HAS(faults.tmp_path, ".tmp.");
        CHECK(TP(ho_load0)(long_name) == 3.0);
        CHECK_OK(mhc_checkpoint_save(&ctx, long_name, NULL, 0, &p, &tr, &rng));   /* and replaces it again */
        remove(long_name);
    }

    TEST_BEGIN("save target: a missing directory, a name ending in '/', an empty name are refused by the check");
    snprintf(c, sizeof c, "%s/no_such_dir/x.ckpt", dir);
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, c), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "no_such_dir' does not exist");
    snprintf(c, sizeof c, "%s/", dir);
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, c), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ends with '/'");
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, ""), MHC_ERR_VALUE);
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, NULL), MHC_ERR_NULL);
    CHECK_RESULT(mhc_checkpoint_check_target(&ctx, dir), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a directory");

    TEST_BEGIN("save target: the check of a good new name leaves nothing behind");
    n0 = TP(ho_entries)(dir);
    snprintf(c, sizeof c, "%s/new.ckpt", dir);
    CHECK_OK(mhc_checkpoint_check_target(&ctx, c));
    CHECK(TP(ho_entries)(dir) == n0);
    CHECK(stat(c, &st) != 0);

    TEST_BEGIN("save target: an unwritable directory or file is found by the check, before any work");
    if (geteuid() != 0) {
        snprintf(c, sizeof c, "%s/ro", dir);
        CHECK(mkdir(c, 0500) == 0);
        snprintf(long_name, sizeof long_name, "%s/x.ckpt", c);
        CHECK_RESULT(mhc_checkpoint_check_target(&ctx, long_name), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "creating a file in its directory fails");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "Permission denied");
        rmdir(c);
        CHECK(chmod(a, 0444) == 0);
        CHECK_RESULT(mhc_checkpoint_check_target(&ctx, a), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "is not writable");
        CHECK_RESULT(mhc_checkpoint_save(&ctx, a, NULL, 0, &p, &tr, &rng), MHC_ERR_IO);
        chmod(a, 0600);
    } else if (stat("/proc/self", &st) == 0) {
        /* root may write anywhere mode bits forbid; /proc takes no new files, not even from root */
        CHECK_RESULT(mhc_checkpoint_check_target(&ctx, "/proc/mhc_test.ckpt"), MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "creating a file in its directory fails");
    }
    remove(a);
    rmdir(dir);
    mhc_params_free(&p);
}

/* Write len bytes of b to path. */
static void TP(ho_write)(const char *path, const void *b, size_t len) {
    FILE *f = fopen(path, "wb");
    if (f) { fwrite(b, 1, len, f); fclose(f); }
}

static void TP(ho_test_readers)(void) {
    mhc_ctx ctx;
    void *buf = NULL;
    size_t len = 0;
    mhc_npy a;
    char dir[512], path[700], link[700];
    unsigned char *big;
    mhc_ctx_init(&ctx);
    TP(ho_path)(dir, sizeof dir, "readers");
    mkdir(dir, 0700);

    TEST_BEGIN("readers: /dev/zero, a directory, a FIFO are refused at once, by every reader");
    CHECK_RESULT(mhc_read_file(&ctx, "/dev/zero", &buf, &len), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "'/dev/zero' is a character device, not a regular file");
    CHECK(buf == NULL && len == 0);
    CHECK_RESULT(mhc_npy_read(&ctx, "/dev/zero", &a), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "character device");
    CHECK(a.data == NULL);
    CHECK_RESULT(mhc_checkpoint_load(&ctx, "/dev/zero", NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "character device");
    CHECK_RESULT(mhc_read_file(&ctx, dir, &buf, &len), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a directory");
    snprintf(path, sizeof path, "%s/fifo", dir);
    CHECK(mkfifo(path, 0600) == 0);
    CHECK_RESULT(mhc_read_file(&ctx, path, &buf, &len), MHC_ERR_IO);   /* would block forever without O_NONBLOCK */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "is a FIFO");
    CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_IO);
    remove(path);
    snprintf(link, sizeof link, "%s/x.npy", dir);
    CHECK(symlink("/dev/zero", link) == 0);   /* an x.npy that links to /dev/zero */
    CHECK_RESULT(mhc_npy_read(&ctx, link, &a), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "x.npy' is a character device");
    remove(link);

    TEST_BEGIN("readers: mhc_read_file_max refuses a file above its limit, before reading");
    snprintf(path, sizeof path, "%s/hundred.txt", dir);
    big = (unsigned char *)malloc(3u << 20);
    memset(big, 'a', 3u << 20);
    TP(ho_write)(path, big, 100);
    CHECK_RESULT(mhc_read_file_max(&ctx, path, 99, &buf, &len), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "has 100 bytes, more than the limit of 99 bytes");
    CHECK(buf == NULL);
    CHECK_OK(mhc_read_file_max(&ctx, path, 100, &buf, &len));
    CHECK(len == 100 && ((char *)buf)[100] == 0);
    free(buf);
    buf = NULL;
    if (access("/proc/self/status", R_OK) == 0) {
        /* a file that reports size 0 but has content (Linux /proc) is read up to the limit */
        CHECK_OK(mhc_read_file(&ctx, "/proc/self/status", &buf, &len));
        CHECK(len > 0);
        free(buf);
        buf = NULL;
        CHECK_RESULT(mhc_read_file_max(&ctx, "/proc/self/status", 8, &buf, &len), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "more than the limit of 8 bytes");
    }

    TEST_BEGIN("readers: a .npy header is read first; the data only when the file has the size it says");
    snprintf(path, sizeof path, "%s/h.npy", dir);
    {
        /* version 2.0, header length 4 GiB - 1 in a 64-byte file */
        unsigned char h[64];
        memset(h, ' ', sizeof h);
        memcpy(h, "\x93NUMPY\x02\x00\xff\xff\xff\xff", 12);
        TP(ho_write)(path, h, sizeof h);
        CHECK_RESULT(mhc_npy_read(&ctx, path, &a), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated: the header needs 4294967295 bytes, the file has 52");
        /* a 2 MiB header (numpy writes a few hundred bytes) */
        memcpy(big, "\x93NUMPY\x02\x00\x00\x00\x20\x00", 12);
        TP(ho_write)(path, big, 12 + (2u << 20));
        CHECK_RESULT(mhc_npy_read(&ctx, path, &a), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the header has 2097152 bytes, more than the 1048576");
    }
    {
        /* a header whose shape needs 8 TB of data, in a small file: refused before any data is read */
        const char hd[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (1000000, 1000000), }";
        unsigned char h[128];
        size_t hl = sizeof hd - 1;
        memcpy(h, "\x93NUMPY\x01\x00", 8);
        h[8] = (unsigned char)hl;
        h[9] = 0;
        memcpy(h + 10, hd, hl);
        memset(h + 10 + hl, 0, 16);
        TP(ho_write)(path, h, 10 + hl + 16);
        CHECK_RESULT(mhc_npy_read(&ctx, path, &a), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated data: the shape needs 8000000000000 data bytes, the file has 16");
        TP(ho_write)(path, h, 10 + hl);   /* and a header with no data at all */
        CHECK_RESULT(mhc_npy_read(&ctx, path, &a), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the file has 0");
    }
    {
        /* a good file still reads, in chunks (more than one 16 KiB chunk of values) */
        int sh[2] = {100, 50};
        double *x = (double *)malloc(5000 * sizeof(double));
        size_t i;
        int same = 1;
        for (i = 0; i < 5000; i++) x[i] = (double)i * 0.25 - 7;
        CHECK_OK(mhc_npy_write(&ctx, path, 2, sh, x));
        CHECK_OK(mhc_npy_read(&ctx, path, &a));
        CHECK(a.size == 5000 && a.ndim == 2 && a.shape[0] == 100 && a.shape[1] == 50);
        for (i = 0; i < 5000 && a.data; i++) same &= a.data[i] == x[i];
        CHECK(same);
        mhc_npy_free(&a);
        free(x);
    }
    remove(path);

    TEST_BEGIN("readers: a checkpoint whose header gives another length is refused before the rest is read");
    {
        mhc_params p;
        mhc_trainer tr;
        mhc_rng rng;
        size_t n = 0, i;
        unsigned char *ck;
        TP(ho_state)(&ctx, &p, &tr, &rng, 1.0);
        mhc_checkpoint_serialize(&ctx, NULL, 0, &n, NULL, 0, &p, &tr, &rng);
        ck = (unsigned char *)malloc(n);
        mhc_checkpoint_serialize(&ctx, ck, n, &n, NULL, 0, &p, &tr, &rng);
        snprintf(path, sizeof path, "%s/c.ckpt", dir);
        for (i = 0; i < 8; i++) ck[16 + i] = (unsigned char)((1ull << 40) >> (8 * i));   /* says 1 TiB */
        TP(ho_write)(path, ck, n);
        CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &p, &tr, &rng), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated: ");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the header says 1099511627776");
        for (i = 0; i < 8; i++) ck[16 + i] = (unsigned char)((uint64_t)(n - 1) >> (8 * i));
        TP(ho_write)(path, ck, n);
        CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &p, &tr, &rng), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "trailing bytes or a corrupted header");
        /* a file that is not a checkpoint, or of another version, is refused on its first 40 bytes */
        memset(ck + 8, 0, 8);
        ck[8] = 9;
        TP(ho_write)(path, ck, n);
        CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &p, &tr, &rng), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "format version 9; this build reads version 1");
        memset(ck, 'a', 16);
        TP(ho_write)(path, ck, n);
        CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &p, &tr, &rng), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "not an mhc checkpoint");
        remove(path);
        free(ck);
        mhc_params_free(&p);
    }
    free(big);
    rmdir(dir);
}
#endif

static void TP(ho_test_scratch)(void) {
    mhc_ctx ctx;
    mhc_real z[4096], o[4096];
    mhc_hc_config cfg;
    mhc_hc_spec s;
    int k;
    mhc_ctx_init(&ctx);
    memset(z, 0, sizeof z);

    TEST_BEGIN("scratch: n = 40 / 64 with 100000 Sinkhorn iterations are refused before allocating, with the formula");
    for (k = 0; k < 2; k++) {
        int n = k == 0 ? 40 : 64;
        mhc_real *big = (mhc_real *)calloc((size_t)n * n, sizeof(mhc_real));
        CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, n, 100000, 1e-6, big, big, 1), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn_forward: the projection (n = ");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "(S + 4) n^2 + S n + 8 doubles per token");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "more than the limit of 1073741824 bytes");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "MHC_SCRATCH_MAX");
        CHECK_RESULT(mhc_sinkhorn_backward(&ctx, MHC_PROJ_EXP, n, 100000, 0, big, big, big, 1), MHC_ERR_SIZE);
        CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 100000, 0, big, big, 1), MHC_ERR_SIZE);
        free(big);
    }
    TEST_BEGIN("scratch: the pre step, the references and the tape ops refuse it too");
    memset(&cfg, 0, sizeof cfg);
    cfg.sinkhorn_iters = 100000;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 40, &s));
    {
        int C = 1, m = s.m;
        mhc_real *x = (mhc_real *)calloc(40, sizeof(mhc_real)), *fn = (mhc_real *)calloc((size_t)m * 40, sizeof(mhc_real));
        mhc_real sc[3] = {0, 0, 0}, *base = (mhc_real *)calloc((size_t)m, sizeof(mhc_real));
        mhc_real li[1], hpre[40], hpost[40], *hres = (mhc_real *)calloc(1600, sizeof(mhc_real));
        CHECK_RESULT(mhc_hc_pre_forward(&ctx, &s, li, hpre, hpost, hres, x, fn, sc, base, NULL, 1, C), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre_forward: the pre step (T = 1, n = 40, C = 1, 100000 iterations");
        CHECK_RESULT(mhc_hc_pre_backward(&ctx, &s, x, fn, sc, base, NULL, li, hpre, hpost, hres, x, fn, sc, base, NULL,
                                         1, C), MHC_ERR_SIZE);
        CHECK_RESULT(mhc_ref_hc_pre_forward(&ctx, &s, li, hpre, hpost, hres, x, fn, sc, base, NULL, 1, C), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "keeps every Sinkhorn iterate");
        CHECK_RESULT(mhc_ref_hc_pre_backward(&ctx, &s, x, fn, sc, base, NULL, li, hpre, hpost, hres, x, fn, sc, base,
                                             NULL, 1, C), MHC_ERR_SIZE);
        {
            mhc_arena ar;
            mhc_tape tp;
            mhc_tensor tx, tfn, tsc, tba, *lg;
            mhc_hc_params w;
            mhc_hc_pre_out po;
            int shx[3] = {1, 40, 1}, shf[2], sh1 = 3, shb, shl[2] = {1, 1600};
            shf[0] = m; shf[1] = 40; shb = m;
            CHECK_OK(mhc_arena_init(&ctx, &ar, 1 << 16));
            CHECK_OK(mhc_tape_init(&ctx, &tp, &ar));
            mhc_tensor_wrap(&ctx, &tx, x, NULL, 3, shx);
            mhc_tensor_wrap(&ctx, &tfn, fn, NULL, 2, shf);
            mhc_tensor_wrap(&ctx, &tsc, sc, NULL, 1, &sh1);
            mhc_tensor_wrap(&ctx, &tba, base, NULL, 1, &shb);
            w.fn = &tfn; w.scale = &tsc; w.base = &tba; w.norm_weight = NULL;
            CHECK_RESULT(mhc_hc_pre(&tp, &s, &tx, &w, &po), MHC_ERR_SIZE);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_pre: the pre step");
            CHECK(ar.peak < (1u << 20));   /* nothing large was taken from the arena */
            mhc_tape_reset(&tp);
            lg = mhc_tensor_new(&tp, 2, shl, 1);
            CHECK(mhc_sinkhorn(&tp, MHC_PROJ_SOFTMAX, 40, 100000, 1e-6, lg) == NULL);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn: the projection");
            CHECK(ar.peak < (1u << 20));
            mhc_tape_free(&tp);
            mhc_arena_free(&ar);
        }
        free(x); free(fn); free(base); free(hres);
    }

    TEST_BEGIN("scratch: ctx.scratch_max lowers and raises the limit; mhc_ctx_clear keeps it");
    ctx.scratch_max = 4096;   /* dsv4 n = 4: 8 tokens x 852 doubles per chunk, more than 4 KiB */
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, o, z, 1), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "more than the limit of 4096 bytes (mhc_ctx.scratch_max");
    mhc_ctx_clear(&ctx);
    CHECK(ctx.scratch_max == 4096);
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, o, z, 1), MHC_ERR_SIZE);
    ctx.scratch_max = (size_t)1 << 20;
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, o, z, 1));
    CHECK_NEAR(o[0], 0.25, 1e-5);   /* zero logits: the uniform matrix */
    mhc_ctx_init(&ctx);
    CHECK(ctx.scratch_max == 0);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 4, 20, 1e-6, o, z, 1));
}

static void TP(ho_test_ranges)(void) {
    mhc_ctx ctx;
    mhc_adamw_config cfg;
    mhc_trainer tr;
    mhc_params p;
    mhc_rng rng;
    mhc_hc_spec s;
    mhc_real dummy[16];
    size_t n = 0;
    mhc_ctx_init(&ctx);
    memset(dummy, 0, sizeof dummy);

    TEST_BEGIN("ranges: warmup and total above MHC_STEP_MAX are refused; a step past it is refused, not overflowed");
    memset(&cfg, 0, sizeof cfg);
    cfg.schedule.kind = MHC_LR_COSINE;
    cfg.schedule.total = MHC_STEP_MAX + 1L;
    CHECK_RESULT(mhc_trainer_init(&ctx, &tr, &cfg), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "schedule.total is 2147483647; expected 0 to MHC_STEP_MAX (2147483646)");
    cfg.schedule.total = MHC_STEP_MAX;
    cfg.schedule.warmup = 1L << 40;
    CHECK_RESULT(mhc_trainer_init(&ctx, &tr, &cfg), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "schedule.warmup is 1099511627776");
    cfg.schedule.warmup = 10;
    CHECK_OK(mhc_trainer_init(&ctx, &tr, &cfg));
    TP(ho_state)(&ctx, &p, &tr, &rng, 1.0);
    tr.step = 0x7fffffffL;          /* 2^31 - 1 */
    CHECK_RESULT(mhc_trainer_step(&tr, &p), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "the step counter is 2147483647");
    tr.step = (long)(~0ul >> 1);    /* LONG_MAX: step + 1 would overflow */
    CHECK_RESULT(mhc_trainer_step(&tr, &p), MHC_ERR_STATE);
    CHECK_RESULT(mhc_checkpoint_serialize(&ctx, NULL, 0, &n, NULL, 0, &p, &tr, NULL), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected 0 to MHC_STEP_MAX");
    tr.step = MHC_STEP_MAX - 1;
    CHECK_OK(mhc_trainer_step(&tr, &p));   /* the last step it counts */
    CHECK(tr.step == MHC_STEP_MAX);
    CHECK_OK(mhc_checkpoint_serialize(&ctx, NULL, 0, &n, NULL, 0, &p, &tr, NULL));
    mhc_params_free(&p);

    TEST_BEGIN("ranges: the raw pre/head functions refuse T*n*C or fn above INT_MAX before reading");
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 4, &s));
    /* n*C = 4 * 2^30 = 2^32: the arrays are never read (a 16-element dummy stands for them) */
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 1, 1 << 30),
                 MHC_ERR_OVERFLOW);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "x has T*n*C = 1*4*1073741824 = 4294967296 elements, more than the kernels' int range");
    CHECK_RESULT(mhc_hc_head_forward(&ctx, &s, dummy, NULL, dummy, dummy, dummy, dummy, NULL, 1 << 20, 1 << 10),
                 MHC_ERR_OVERFLOW);
    CHECK_RESULT(mhc_ref_hc_pre_backward(&ctx, &s, dummy, NULL, NULL, NULL, NULL, dummy, NULL, NULL, NULL, dummy,
                                         dummy, dummy, dummy, NULL, 1 << 16, 1 << 14), MHC_ERR_OVERFLOW);
    /* fn [m, n C] = [24, 4 * 2^25]: 3.2e9 elements although x (T = 1) fits */
    CHECK_RESULT(mhc_hc_pre_forward(&ctx, &s, dummy, NULL, NULL, NULL, dummy, dummy, dummy, dummy, NULL, 1, 1 << 25),
                 MHC_ERR_OVERFLOW);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "fn has 24 rows of 134217728 columns = 3221225472 elements");

    TEST_BEGIN("ranges: the fused pre op checks C + 2n + n^2 against the int range; attention's message B*T");
    {
        mhc_arena ar;
        mhc_tape tp;
        mhc_tensor tx, tfn, tsc, tba, tq;
        mhc_hc_params w;
        mhc_hc_pre_out po;
        mhc_hc_config c1;
        mhc_hc_spec s1;
        int shx[3] = {1, 1, 2147483646}, shf[2] = {3, 2147483646}, sh3 = 3, shq[2] = {2, 3};
        memset(&c1, 0, sizeof c1);
        c1.variant = MHC_VARIANT_MHC;
        CHECK_OK(mhc_hc_resolve(&ctx, &c1, 1, &s1));
        CHECK_OK(mhc_arena_init(&ctx, &ar, 1 << 12));
        CHECK_OK(mhc_tape_init(&ctx, &tp, &ar));
        mhc_tensor_wrap(&ctx, &tx, dummy, NULL, 3, shx);    /* never read: refused before */
        mhc_tensor_wrap(&ctx, &tfn, dummy, NULL, 2, shf);
        mhc_tensor_wrap(&ctx, &tsc, dummy, NULL, 1, &sh3);
        mhc_tensor_wrap(&ctx, &tba, dummy, NULL, 1, &sh3);
        w.fn = &tfn; w.scale = &tsc; w.base = &tba; w.norm_weight = NULL;
        CHECK_RESULT(mhc_hc_pre(&tp, &s1, &tx, &w, &po), MHC_ERR_OVERFLOW);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "C + 2n + n*n = 2147483646 + 2 + 1 exceeds the kernels' int range");
        mhc_tape_reset(&tp);
        mhc_tensor_wrap(&ctx, &tq, dummy, NULL, 2, shq);
        CHECK(mhc_attention(&tp, &tq, 65536, 65536, 1) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "expected [B*T=4294967296, 3C]");
        mhc_tape_free(&tp);
        mhc_arena_free(&ar);
    }
}

/* The loss of the misuse tests: sum(x * x) through mhc_mul. */
static mhc_tensor *TP(ho_loss)(mhc_tape *tp, mhc_tensor **in, int nin, void *user) {
    (void)nin; (void)user;
    return mhc_sum(tp, mhc_mul(tp, in[0], in[0]));
}

static void TP(ho_test_misuse)(void) {
    mhc_ctx ctx;
    mhc_arena ar, ar2;
    mhc_tape ta, tb, t2;
    mhc_tensor *x, *y, *loss, zero, bad, wrapped;
    mhc_real data[64], grad[64];
    int sh[2] = {2, 3}, sh4[1] = {4}, ids[2] = {0, 1}, k;
    mhc_hc_spec s;
    mhc_ctx_init(&ctx);
    for (k = 0; k < 64; k++) data[k] = (mhc_real)(0.1 * k);
    memset(grad, 0, sizeof grad);
    CHECK_OK(mhc_arena_init(&ctx, &ar, 1 << 12));
    CHECK_OK(mhc_arena_init(&ctx, &ar2, 1 << 12));

    TEST_BEGIN("misuse: two tapes on one arena: a reset by one makes the other's backward an error, not a use-after-free");
    CHECK_OK(mhc_tape_init(&ctx, &ta, &ar));
    CHECK_OK(mhc_tape_init(&ctx, &tb, &ar));
    x = mhc_tensor_new(&tb, 2, sh, 1);
    loss = mhc_sum(&tb, mhc_gelu(&tb, x));
    CHECK(loss != NULL);
    /* grow the arena past its first block, so that the reset really frees memory */
    CHECK(mhc_tensor_new(&ta, 1, (int[]){8192}, 0) != NULL);
    CHECK_OK(mhc_tape_reset(&ta));
    CHECK_RESULT(mhc_tape_backward(&tb, loss), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "the tape's arena was reset by someone else (another tape on the same arena");
    CHECK(mhc_gelu(&tb, x) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_activation: the tape's arena was reset by someone else");
    CHECK_OK(mhc_tape_reset(&tb));   /* the way out */
    x = mhc_tensor_new(&tb, 2, sh, 1);
    CHECK(x != NULL && mhc_tape_backward(&tb, mhc_sum(&tb, x)) == MHC_OK);
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: mhc_arena_reset or mhc_arena_free under a tape is caught by the tape");
    x = mhc_tensor_new(&tb, 2, sh, 1);
    loss = mhc_sum(&tb, x);
    CHECK_OK(mhc_arena_reset(&ar));
    CHECK_RESULT(mhc_tape_backward(&tb, loss), MHC_ERR_STATE);
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: a tensor from before the reset, or of another arena, is refused by an op");
    x = mhc_tensor_new(&tb, 2, sh, 1);
    mhc_tape_reset(&tb);
    CHECK(mhc_gelu(&tb, x) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "was made before the tape's last reset: its memory is gone");
    mhc_tape_reset(&tb);
    CHECK_OK(mhc_tape_init(&ctx, &t2, &ar2));
    y = mhc_tensor_new(&t2, 2, sh, 1);
    CHECK(mhc_add(&tb, y, y) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "input 1 was made on a tape of another arena");
    mhc_tape_reset(&tb);
    CHECK(mhc_tape_backward(&tb, y) == MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_tape_backward: the loss was made on a tape of another arena");
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: a zeroed mhc_tensor (ndim 0) is an error in every op, never shape[-1]");
    memset(&zero, 0, sizeof zero);
    mhc_tensor_wrap(&ctx, &wrapped, data, grad, 2, sh);
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 2, &s));
    for (k = 0; k < 22; k++) {
        mhc_tensor *r = NULL;
        mhc_result rr = MHC_OK;
        mhc_hc_params w;
        mhc_hc_pre_out po;
        w.fn = w.scale = w.base = &zero; w.norm_weight = NULL;
        switch (k) {
        case 0: r = mhc_add(&tb, &zero, &wrapped); break;
        case 1: r = mhc_add(&tb, &wrapped, &zero); break;
        case 2: r = mhc_mul(&tb, &zero, &zero); break;
        case 3: r = mhc_scale(&tb, &zero, 2.0); break;
        case 4: r = mhc_matmul_ab(&tb, &zero, &wrapped); break;
        case 5: r = mhc_matmul_abt(&tb, &wrapped, &zero); break;
        case 6: r = mhc_rmsnorm(&tb, &zero, NULL, 1e-5); break;
        case 7: r = mhc_rmsnorm(&tb, &wrapped, &zero, 1e-5); break;
        case 8: r = mhc_gelu(&tb, &zero); break;
        case 9: r = mhc_softmax(&tb, &zero); break;
        case 10: r = mhc_embedding(&tb, &zero, ids, 2); break;
        case 11: r = mhc_attention(&tb, &zero, 1, 1, 1); break;
        case 12: r = mhc_cross_entropy(&tb, &zero, ids); break;
        case 13: r = mhc_sum(&tb, &zero); break;
        case 14: r = mhc_dot_const(&tb, &zero, data); break;
        case 15: r = mhc_view(&tb, &zero, 1, sh4); break;
        case 16: r = mhc_hc_expand(&tb, &zero, 2); break;
        case 17: r = mhc_hc_post(&tb, &zero, &wrapped, NULL, NULL); break;
        case 18: r = mhc_hc_post(&tb, &wrapped, &wrapped, &zero, &wrapped); break;
        case 19: r = mhc_sinkhorn(&tb, MHC_PROJ_SOFTMAX, 2, 5, 0, &zero); break;
        case 20: rr = mhc_hc_pre(&tb, &s, &zero, &w, &po); break;
        case 21: w.fn = &wrapped; rr = mhc_hc_pre(&tb, &s, &wrapped, &w, &po); break;
        }
        CHECK_MSG(r == NULL && (k < 20 || rr != MHC_OK), "op %d accepted a zeroed tensor", k);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "has ndim 0, expected 1 to 4");
        mhc_tape_reset(&tb);
    }
    CHECK_RESULT(mhc_tape_backward(&tb, &zero), MHC_ERR_SHAPE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_tape_backward: the loss has ndim 0");
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: a damaged tensor (ndim 9, a size its shape does not hold, no data) is an error");
    bad = wrapped;
    bad.ndim = 9;
    CHECK(mhc_gelu(&tb, &bad) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "has ndim 9");
    {
        char sbuf[32];
        CHECK(strcmp(mhc_shape_str(&bad, sbuf, sizeof sbuf), "(ndim 9)") == 0);   /* not shape[4..8] */
        CHECK(!mhc_tensor_same_shape(&bad, &bad));
    }
    mhc_tape_reset(&tb);
    bad = wrapped;
    bad.size = 1000;
    CHECK(mhc_sum(&tb, &bad) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "has size 1000 but its shape [2,3] holds 6 elements");
    mhc_tape_reset(&tb);
    bad = wrapped;
    bad.data = NULL;
    CHECK(mhc_sum(&tb, &bad) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "has no data");
    mhc_tape_reset(&tb);
    bad = wrapped;
    bad.shape[1] = -3;
    CHECK(mhc_sum(&tb, &bad) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "dimension 1 has size -3");
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: mhc_tape_backward(tp, NULL) on a failed tape after mhc_ctx_clear is an error, not MHC_OK");
    CHECK(mhc_add(&tb, &wrapped, mhc_tensor_new(&tb, 1, sh4, 0)) == NULL);   /* [2,3] + [4]: fails */
    mhc_ctx_clear(&ctx);
    CHECK_RESULT(mhc_tape_backward(&tb, NULL), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "loss is NULL: an op on this tape failed since its last reset");
    /* without the clear the first message stays */
    mhc_tape_reset(&tb);
    CHECK(mhc_add(&tb, &wrapped, mhc_tensor_new(&tb, 1, sh4, 0)) == NULL);
    CHECK_RESULT(mhc_tape_backward(&tb, NULL), MHC_ERR_SHAPE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_add: a is [2,3]");
    mhc_tape_reset(&tb);

    TEST_BEGIN("misuse: mhc_gradcheck refuses inputs made on a tape (it resets the tape between evaluations)");
    {
        mhc_gradcheck_result res;
        mhc_tensor *in[1];
        in[0] = mhc_tensor_new(&tb, 2, sh, 1);
        CHECK_RESULT(mhc_gradcheck(&tb, TP(ho_loss), in, 1, NULL, 1e-6, 1e-8, 1, &res), MHC_ERR_STATE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "input 0 was made on a tape");
        in[0] = &wrapped;   /* caller-owned memory is what it takes */
        CHECK_OK(mhc_gradcheck(&tb, TP(ho_loss), in, 1, NULL, 1e-3, 1e-6, 1, &res));
    }

    TEST_BEGIN("misuse: a NULL or never-seeded generator yields zeros instead of a crash or a hang");
    CHECK(mhc_rng_u64(NULL) == 0 && mhc_rng_below(NULL, 10) == 0 && mhc_rng_uniform(NULL) == 0.0 &&
          mhc_rng_normal(NULL) == 0.0);
    {   /* a zeroed (never seeded) generator: mhc_rng_below used to reject forever */
        mhc_rng zr;
        memset(&zr, 0, sizeof zr);
        CHECK(mhc_rng_below(&zr, 10) == 0 && mhc_rng_below(&zr, 3) == 0);
    }

    TEST_BEGIN("misuse: a tape whose arena was freed reports it");
    x = mhc_tensor_new(&t2, 2, sh, 1);
    mhc_arena_free(&ar2);
    CHECK(mhc_gelu(&t2, x) == NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "the tape's arena was freed");
    CHECK_RESULT(mhc_tape_backward(&t2, x), MHC_ERR_STATE);
    mhc_tape_free(&t2);
    mhc_tape_free(&ta);
    mhc_tape_free(&tb);
    mhc_arena_free(&ar);
}

void TP(test_hostile)(void); void TP(test_hostile)(void) {
#if HO_POSIX
    TP(ho_test_save_targets)();
    TP(ho_test_readers)();
#endif
    TP(ho_test_scratch)();
    TP(ho_test_ranges)();
    TP(ho_test_misuse)();
}
