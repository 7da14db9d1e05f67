/* tests/test_compare.c - tool_compare_dirs (tools/compare.c, linked into the runner): pass,
 * fail, the tensor-scaled atol rule, missing file, bad file, shape mismatch, NaN on either side,
 * and the -1 error paths. The directories are made under $TMPDIR (or /tmp) with mhc_npy_write.
 * Precision-independent (the comparison runs in double), so it runs in the f64 pass only. */
#include <sys/types.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../tools/tool.h"

#ifdef MHC_DOUBLE
typedef struct cmpt_dirs { char root[256], out[300], exp[300]; } cmpt_dirs;

static void cmpt_path(char *buf, size_t cap, const char *dir, const char *leaf) {
    snprintf(buf, cap, "%s/%s", dir, leaf);
}

static int cmpt_make(cmpt_dirs *d) {
    const char *tmp = getenv("TMPDIR");
    snprintf(d->root, sizeof d->root, "%s/mhc_compare_%ld", tmp && tmp[0] ? tmp : "/tmp", (long)getpid());
    cmpt_path(d->out, sizeof d->out, d->root, "out");
    cmpt_path(d->exp, sizeof d->exp, d->root, "exp");
    return mkdir(d->root, 0700) == 0 && mkdir(d->out, 0700) == 0 && mkdir(d->exp, 0700) == 0;
}

static void cmpt_put(const char *dir, const char *leaf, int ndim, const int *shape, const double *v) {
    char p[512];
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    cmpt_path(p, sizeof p, dir, leaf);
    if (mhc_npy_write(&ctx, p, ndim, shape, v) != MHC_OK) fprintf(stderr, "cmpt_put: %s\n", mhc_ctx_message(&ctx));
}

static void cmpt_del(const char *dir, const char *leaf) {
    char p[512];
    cmpt_path(p, sizeof p, dir, leaf);
    remove(p);
}

/* Run the comparison with the report in a temp file; return its text (static buffer). */
static const char *cmpt_run(const char *out, const char *exp, double rtol, double atol, int *res) {
    static char text[8192];
    FILE *f = tmpfile();
    size_t n = 0;
    text[0] = 0;
    if (!f) { *res = -99; return text; }
    *res = tool_compare_dirs(out, exp, rtol, atol, f);
    rewind(f);
    n = fread(text, 1, sizeof text - 1, f);
    text[n] = 0;
    fclose(f);
    return text;
}
#endif

void TP(test_compare)(void); void TP(test_compare)(void) {
#ifdef MHC_DOUBLE
    cmpt_dirs d;
    int res, i;
    const char *rep;
    double a[6] = {1.0, -2.0, 3.0, 0.5, 1e-3, 0.0}, b[6];
    int s23[2] = {2, 3}, s32[2] = {3, 2}, s6[1] = {6};

    TEST_BEGIN("compare: directories");
    CHECK(cmpt_make(&d));
    cmpt_put(d.exp, "a.npy", 2, s23, a);
    cmpt_put(d.exp, "b.npy", 1, s6, a);
    cmpt_put(d.out, "a.npy", 2, s23, a);
    cmpt_put(d.out, "b.npy", 1, s6, a);
    cmpt_put(d.out, "extra.npy", 1, s6, a);   /* outputs EXPECTED lacks are ignored */

    TEST_BEGIN("compare: identical and within tolerance");
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 0);
    CHECK_STR_HAS(rep, "tensor");
    CHECK_STR_HAS(rep, "max_abs_err");
    CHECK_STR_HAS(rep, "a                    [2,3]");
    CHECK_STR_HAS(rep, "b                    [6]");
    CHECK_STR_HAS(rep, "compare: 2 tensors, 0 mismatched");
    CHECK(strstr(rep, "extra") == NULL);
    for (i = 0; i < 6; i++) b[i] = a[i] * (1 + 5e-11);   /* rtol 1e-10 admits 5e-11 relative */
    cmpt_put(d.out, "a.npy", 2, s23, b);
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 0);
    CHECK_STR_HAS(rep, "1.500e-10");   /* max abs err: 3 * 5e-11 */

    TEST_BEGIN("compare: out of tolerance");
    b[4] = a[4] * (1 + 1e-6);
    cmpt_put(d.out, "a.npy", 2, s23, b);
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 1);
    CHECK_STR_HAS(rep, "FAIL (1 of 6 elements)");
    CHECK_STR_HAS(rep, "1.000e-06");   /* max rel err */
    CHECK_STR_HAS(rep, "compare: 2 tensors, 1 mismatched");
    rep = cmpt_run(d.out, d.exp, 1e-5, 0, &res);   /* a looser rtol admits it */
    CHECK(res == 0);

    TEST_BEGIN("compare: atol scales with the tensor's max |expected|");
    {
        double e[3] = {1e8, 2.0, 0.0}, o[3], small[3] = {1.0, 0.5, 0.0}, os[3];
        int s3[1] = {3};
        cmpt_del(d.out, "a.npy");
        cmpt_del(d.exp, "a.npy");
        cmpt_del(d.out, "b.npy");
        cmpt_del(d.exp, "b.npy");
        /* |diff| 5e-5 on the zero entry: allowed 1e-12 * 1e8 = 1e-4 */
        o[0] = e[0]; o[1] = e[1]; o[2] = 5e-5;
        cmpt_put(d.exp, "t.npy", 1, s3, e);
        cmpt_put(d.out, "t.npy", 1, s3, o);
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == 0);
        CHECK_STR_HAS(rep, "0.5 ");   /* err/tol of the worst element */
        o[2] = 2e-4;   /* above 1e-4 */
        cmpt_put(d.out, "t.npy", 1, s3, o);
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == 1);
        CHECK_STR_HAS(rep, "FAIL (1 of 3 elements)");
        /* max |e| = 1 -> the floor of 1: atol is absolute, 5e-13 passes, 2e-12 fails */
        os[0] = small[0]; os[1] = small[1]; os[2] = 5e-13;
        cmpt_put(d.exp, "t.npy", 1, s3, small);
        cmpt_put(d.out, "t.npy", 1, s3, os);
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == 0);
        os[2] = 2e-12;
        cmpt_put(d.out, "t.npy", 1, s3, os);
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == 1);
        /* an all-zero expected tensor: atol 1e-12 absolute, not bit equality */
        small[0] = small[1] = 0;
        os[0] = 1e-13; os[1] = -1e-13; os[2] = 0;
        cmpt_put(d.exp, "t.npy", 1, s3, small);
        cmpt_put(d.out, "t.npy", 1, s3, os);
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == 0);
        cmpt_del(d.out, "t.npy");
        cmpt_del(d.exp, "t.npy");
    }

    TEST_BEGIN("compare: missing, bad file, shape, NaN");
    cmpt_put(d.exp, "a.npy", 2, s23, a);
    cmpt_put(d.exp, "b.npy", 2, s23, a);
    cmpt_put(d.exp, "c.npy", 2, s23, a);
    cmpt_put(d.exp, "d.npy", 2, s23, a);
    cmpt_put(d.exp, "e.npy", 2, s23, a);
    /* a.npy missing from out */
    cmpt_put(d.out, "b.npy", 2, s32, a);   /* transposed shape */
    {
        char p[512];
        FILE *f;
        cmpt_path(p, sizeof p, d.out, "c.npy");
        f = fopen(p, "wb");
        if (f) { fputs("not an npy file", f); fclose(f); }
    }
    memcpy(b, a, sizeof b);
    b[3] = NAN;
    cmpt_put(d.out, "d.npy", 2, s23, b);
    cmpt_put(d.out, "e.npy", 2, s23, a);
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 4);
    CHECK_STR_HAS(rep, "a                    [2,3]");
    CHECK_STR_HAS(rep, "-  MISSING (");
    CHECK_STR_HAS(rep, "out/a.npy)");
    CHECK_STR_HAS(rep, "SHAPE (output is [3,2])");
    CHECK_STR_HAS(rep, "BADFILE (mhc_npy_parse: ");
    CHECK_STR_HAS(rep, "no \\x93NUMPY magic");
    CHECK_STR_HAS(rep, "NONFINITE (1 of 6 elements are NaN or Inf)");
    CHECK_STR_HAS(rep, "compare: 5 tensors, 4 mismatched");
    /* NaN in the expected tensor fails too, even against the same NaN */
    cmpt_put(d.exp, "e.npy", 2, s23, b);
    cmpt_put(d.out, "e.npy", 2, s23, b);
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 5);
    b[3] = INFINITY;
    cmpt_put(d.out, "e.npy", 2, s23, b);
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == 5);
    CHECK(tool_compare_dirs(d.out, d.exp, 1e-10, 1e-12, NULL) == 5);   /* report NULL: silent */

    TEST_BEGIN("compare: errors give -1");
    rep = cmpt_run(d.out, "/nonexistent_mhc_dir", 1e-10, 1e-12, &res);
    CHECK(res == -1);
    CHECK_STR_HAS(rep, "compare: cannot open the directory '/nonexistent_mhc_dir'");
    rep = cmpt_run(d.out, d.exp, -1, 1e-12, &res);
    CHECK(res == -1);
    CHECK_STR_HAS(rep, "tolerances must be finite and >= 0 (rtol -1");
    rep = cmpt_run(d.out, d.exp, 1e-10, NAN, &res);
    CHECK(res == -1);
    CHECK_STR_HAS(rep, "tolerances must be finite");
    rep = cmpt_run(NULL, d.exp, 1e-10, 1e-12, &res);
    CHECK(res == -1);
    CHECK_STR_HAS(rep, "out_dir is NULL");
    {   /* a malformed expected file is an error of the comparison, not a mismatch */
        char p[512];
        FILE *f;
        cmpt_path(p, sizeof p, d.exp, "bad.npy");
        f = fopen(p, "wb");
        if (f) { fwrite("\x93NUMPY\x01\x00\x02\x00{}", 1, 12, f); fclose(f); }
        rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);
        CHECK(res == -1);
        CHECK_STR_HAS(rep, "compare: expected tensor: mhc_npy_parse: ");
        CHECK_STR_HAS(rep, "bad.npy: the header lacks the key 'descr'");
        remove(p);
    }
    cmpt_del(d.out, "b.npy");
    cmpt_del(d.out, "c.npy");
    cmpt_del(d.out, "d.npy");
    cmpt_del(d.out, "e.npy");
    cmpt_del(d.out, "extra.npy");
    cmpt_del(d.exp, "a.npy");
    cmpt_del(d.exp, "b.npy");
    cmpt_del(d.exp, "c.npy");
    cmpt_del(d.exp, "d.npy");
    cmpt_del(d.exp, "e.npy");
    rep = cmpt_run(d.out, d.exp, 1e-10, 1e-12, &res);   /* now empty */
    CHECK(res == -1);
    CHECK_STR_HAS(rep, "holds no .npy files");
    CHECK(remove(d.out) == 0 && remove(d.exp) == 0 && remove(d.root) == 0);
#endif
}
