/* tests/test_verify.c - `mhc verify` (tools/verify.c + verify_impl.c, linked into the test
 * runner): cases written here into build/test_tmp/verify/ with an independent little .npy writer;
 * outputs against the naive reference of tests/test_hc.c and the raw-array library calls; every
 * bad-case path (the code and the message naming the file and the problem). Runs in the f64
 * instance only (the verifier itself runs both precisions). */
#include "../tools/verify.h"
#ifdef MHC_DOUBLE

#define TV_ROOT "build/test_tmp/verify"

/* A version 1.0 .npy file, written by hand: descr '<f8', '<f4' or anything else (for the dtype
   error), C order. truncate > 0 drops that many bytes of data at the end. */
static int tv_write_npy(const char *path, const char *descr, int ndim, const int *shape, const double *v, int truncate) {
    char hdr[256], dims[96];
    size_t len = 0, count = 1, i, hl;
    int d;
    FILE *f;
    dims[0] = 0;
    for (d = 0; d < ndim; d++) {
        len += (size_t)snprintf(dims + len, sizeof dims - len, "%d,%s", shape[d], (ndim > 1 && d < ndim - 1) ? " " : "");
        count *= (size_t)shape[d];
    }
    if (ndim > 1 && len > 0 && dims[len - 1] == ',') dims[len - 1] = 0;   /* (2, 3) ; (5,) stays */
    snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, dims);
    hl = strlen(hdr);
    while ((10 + hl + 1) % 64) hdr[hl++] = ' ';
    hdr[hl++] = '\n';
    hdr[hl] = 0;
    f = fopen(path, "wb");
    if (!f) return -1;
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fputc((int)(hl & 0xff), f);
    fputc((int)(hl >> 8), f);
    fwrite(hdr, 1, hl, f);
    for (i = 0; i < count; i++) {
        unsigned char b[8];
        size_t nb = strcmp(descr, "<f4") == 0 || strcmp(descr, "<i4") == 0 ? 4 : 8;
        if (truncate && i == count - 1) nb -= (size_t)truncate;
        if (strcmp(descr, "<f4") == 0) { float x = (float)v[i]; memcpy(b, &x, 4); }
        else if (strcmp(descr, "<i4") == 0) { int32_t x = (int32_t)v[i]; memcpy(b, &x, 4); }
        else memcpy(b, &v[i], 8);
        fwrite(b, 1, nb, f);
    }
    fclose(f);
    return 0;
}

static void tv_write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) { fputs(text, f); fclose(f); }
}

static void tv_path(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

/* Write an hct_case as a verify case (layer, or head when k->head). */
static void tv_write_case(const char *dir, const hct_case *k, const char *casetxt, const char *descr, int with_opt) {
    char p[512];
    int n = k->s.n, sh[3], fs[2] = {0, 0};
    tool_mkdir_p(dir);
    tv_path(p, sizeof p, dir, "case.txt"); tv_write_text(p, casetxt);
    sh[0] = k->T; sh[1] = n; sh[2] = k->C;
    tv_path(p, sizeof p, dir, "x.npy"); tv_write_npy(p, descr, 3, sh, k->x, 0);
    mhc_hc_param_shapes(NULL, &k->s, k->C, k->head, fs, &sh[0], &sh[1], &sh[2]);
    tv_path(p, sizeof p, dir, "fn.npy"); tv_write_npy(p, descr, 2, fs, k->fn, 0);
    tv_path(p, sizeof p, dir, "scale.npy"); tv_write_npy(p, descr, 1, &k->nscale, k->scale, 0);
    tv_path(p, sizeof p, dir, "base.npy"); tv_write_npy(p, descr, 1, &k->nbase, k->base, 0);
    if (k->use_nw) { tv_path(p, sizeof p, dir, "norm_weight.npy"); tv_write_npy(p, descr, 1, &k->nnw, k->nw, 0); }
    sh[0] = k->T; sh[1] = k->C;
    if (k->head) {
        tv_path(p, sizeof p, dir, "d_out.npy"); tv_write_npy(p, descr, 2, sh, k->wli, 0);
        return;
    }
    if (!with_opt) return;
    tv_path(p, sizeof p, dir, "f_out.npy"); tv_write_npy(p, descr, 2, sh, k->f, 0);
    tv_path(p, sizeof p, dir, "d_layer_input.npy"); tv_write_npy(p, descr, 2, sh, k->wli, 0);
    sh[0] = k->T; sh[1] = n; sh[2] = k->C;
    tv_path(p, sizeof p, dir, "d_out.npy"); tv_write_npy(p, descr, 3, sh, k->wout, 0);
}

/* max |a - b| over the file dir/name.npy and b[count]; -1 if the file is missing or the size differs */
static double tv_cmp(const char *dir, const char *name, const mhc_real *b, size_t count) {
    char p[512];
    mhc_npy a;
    mhc_ctx ctx;
    size_t i;
    double m = 0;
    mhc_ctx_init(&ctx);
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    if (mhc_npy_read(&ctx, p, &a) != MHC_OK) return -1;
    if (a.size != count) { mhc_npy_free(&a); return -1; }
    for (i = 0; i < count; i++) m = fmax(m, fabs(a.data[i] - (double)b[i]));
    mhc_npy_free(&a);
    return m;
}

static int tv_exists(const char *dir, const char *name) {
    char p[512];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s.npy", dir, name);
    f = fopen(p, "rb");
    if (f) fclose(f);
    return f != NULL;
}

/* A layer case through verify == the raw-array library calls (bitwise in f64) and the naive reference. */
static void tv_success(void) {
    char err[1024], outd[256];
    mhc_ctx ctx;
    hct_case k;
    hct_lib l;
    double L, e;
    int n = 3, T = 2, C = 4, i;
    mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
    double *li = hct_alloc((size_t)T * C), *hp = hct_alloc((size_t)T * n), *hq = hct_alloc((size_t)T * n);
    double *A = hct_alloc((size_t)T * n * n), *out = hct_alloc((size_t)T * n * C);
    mhc_ctx_init(&ctx);
    TEST_BEGIN("verify: layer case, float64");
    hct_case_make(&k, &s, T, C, 0, 1, 4242);
    for (i = 0; i < T * n; i++) k.whpre[i] = k.whpost[i] = 0;   /* verify's loss: d_out and d_layer_input only */
    for (i = 0; i < T * n * n; i++) k.wA[i] = 0;
    hct_lib_make(&l, &k);
    CHECK_OK(hct_lib_forward(&ctx, &k, &l, &L));
    CHECK_OK(hct_lib_backward(&ctx, &k, &l));
    hct_ref_loss(&k, li, hp, hq, A, out);
    tv_write_case(TV_ROOT "/layer", &k, "# a test case\nop = layer\npreset = dsv4\n\nn = 3  # streams\ndtype = float64\n", "<f8", 1);
    CHECK(tool_verify_case(TV_ROOT "/layer", TV_ROOT "/layer_out/sub", err, sizeof err) == 0);
    snprintf(outd, sizeof outd, "%s", TV_ROOT "/layer_out/sub");
    CHECK(tv_cmp(outd, "layer_input", l.li, (size_t)T * C) == 0);
    CHECK(tv_cmp(outd, "h_pre", l.hpre, (size_t)T * n) == 0);
    CHECK(tv_cmp(outd, "h_post", l.hpost, (size_t)T * n) == 0);
    CHECK(tv_cmp(outd, "h_res", l.A, (size_t)T * n * n) == 0);
    CHECK(tv_cmp(outd, "out", l.out, (size_t)T * n * C) == 0);
    CHECK(tv_cmp(outd, "d_x", l.dx, (size_t)T * n * C) == 0);
    CHECK(tv_cmp(outd, "d_fn", l.dfn, (size_t)k.nfn) == 0);
    CHECK(tv_cmp(outd, "d_scale", l.dscale, 3) == 0);
    CHECK(tv_cmp(outd, "d_base", l.dbase, (size_t)k.nbase) == 0);
    CHECK(tv_cmp(outd, "d_norm_weight", l.dnw, (size_t)k.nnw) == 0);
    CHECK(tv_cmp(outd, "d_f_out", l.df, (size_t)T * C) == 0);
    {
        mhc_real *r = hct_real(out, (size_t)T * n * C);
        e = tv_cmp(outd, "out", r, (size_t)T * n * C);
        CHECK(e >= 0 && e <= 1e-13);              /* and the naive reference */
        free(r);
    }
    TEST_BEGIN("verify: the same case in float32");
    tv_write_case(TV_ROOT "/layer32", &k, "op = layer\npreset = dsv4\nn = 3\ndtype = float32\n", "<f8", 1);
    CHECK(tool_verify_case(TV_ROOT "/layer32", TV_ROOT "/layer32_out", err, sizeof err) == 0);
    e = tv_cmp(TV_ROOT "/layer32_out", "d_fn", l.dfn, (size_t)k.nfn);
    CHECK(e > 0 && e < 1e-4);                     /* ran in float: close, not equal */
    e = tv_cmp(TV_ROOT "/layer32_out", "out", l.out, (size_t)T * n * C);
    CHECK(e > 0 && e < 1e-5);
    TEST_BEGIN("verify: optional inputs absent; overrides");
    tv_write_case(TV_ROOT "/layer_min", &k,
                  "op = layer\npreset = paper\nn = 3\ndtype = float64\nsinkhorn_iters = 3\nprojection = log\n"
                  "sinkhorn_eps = 0.001\npre_eps = 0\norient = comb_t\npost_mult = 1.5\nnorm_eps = 1e-5\n", "<f4", 0);
    CHECK(tool_verify_case(TV_ROOT "/layer_min", TV_ROOT "/layer_min_out", err, sizeof err) == 0);
    CHECK(tv_exists(TV_ROOT "/layer_min_out", "d_f_out") && tv_exists(TV_ROOT "/layer_min_out", "d_norm_weight"));
    {
        /* the same settings through the library: forward outputs agree */
        mhc_hc_config cfg;
        mhc_hc_spec s2;
        mhc_real *xr, *fnr, *scr, *bar, *nwr, *lr, *A2;
        size_t q;
        memset(&cfg, 0, sizeof cfg);
        cfg.preset = MHC_PRESET_PAPER; cfg.sinkhorn_iters = 3; cfg.projection = MHC_PROJ_LOG; cfg.sinkhorn_eps = 0.001;
        cfg.pre_eps = MHC_ZERO; cfg.orient = MHC_ORIENT_COMB_T; cfg.post_mult = 1.5; cfg.norm_eps = 1e-5;
        CHECK_OK(mhc_hc_resolve(&ctx, &cfg, n, &s2));
        /* the case was written as <f4: round the inputs the same way */
        xr = hct_real(NULL, (size_t)T * n * C); fnr = hct_real(NULL, (size_t)k.nfn); scr = hct_real(NULL, 3);
        bar = hct_real(NULL, (size_t)k.nbase); nwr = hct_real(NULL, (size_t)k.nnw); lr = hct_real(NULL, (size_t)T * C);
        A2 = hct_real(NULL, (size_t)T * n * n);
        for (q = 0; q < (size_t)T * n * C; q++) xr[q] = (mhc_real)(float)k.x[q];
        for (q = 0; q < (size_t)k.nfn; q++) fnr[q] = (mhc_real)(float)k.fn[q];
        for (q = 0; q < 3; q++) scr[q] = (mhc_real)(float)k.scale[q];
        for (q = 0; q < (size_t)k.nbase; q++) bar[q] = (mhc_real)(float)k.base[q];
        for (q = 0; q < (size_t)k.nnw; q++) nwr[q] = (mhc_real)(float)k.nw[q];
        CHECK_OK(mhc_hc_pre_forward(&ctx, &s2, lr, NULL, NULL, A2, xr, fnr, scr, bar, nwr, T, C));
        CHECK(tv_cmp(TV_ROOT "/layer_min_out", "layer_input", lr, (size_t)T * C) == 0);
        CHECK(tv_cmp(TV_ROOT "/layer_min_out", "h_res", A2, (size_t)T * n * n) == 0);
        free(xr); free(fnr); free(scr); free(bar); free(nwr); free(lr); free(A2);
    }
    hct_lib_free(&l);
    hct_case_free(&k);
    free(li); free(hp); free(hq); free(A); free(out);
}

static void tv_other_ops(void) {
    char err[1024], p[512];
    mhc_ctx ctx;
    mhc_rng rng;
    int T = 3, sh[2], k;
    double z[3 * 6], d[3 * 9];
    mhc_real zr[3 * 6], dr[3 * 9], o[3 * 9], dz[3 * 6];
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 8);
    TEST_BEGIN("verify: sinkhorn case (perm)");
    for (k = 0; k < 18; k++) { z[k] = mhc_rng_normal(&rng); zr[k] = (mhc_real)z[k]; dz[k] = 0; }
    for (k = 0; k < 27; k++) { d[k] = mhc_rng_normal(&rng); dr[k] = (mhc_real)d[k]; }
    tool_mkdir_p(TV_ROOT "/sk");
    tv_write_text(TV_ROOT "/sk/case.txt", "op = sinkhorn\npreset = lite\nn = 3\ndtype = float64\n");
    sh[0] = T; sh[1] = 6;
    tv_write_npy(TV_ROOT "/sk/logits.npy", "<f8", 2, sh, z, 0);
    {
        int s3[3] = {3, 3, 3};
        tv_write_npy(TV_ROOT "/sk/d_out.npy", "<f8", 3, s3, d, 0);
    }
    CHECK(tool_verify_case(TV_ROOT "/sk", TV_ROOT "/sk_out", err, sizeof err) == 0);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_PERM, 3, 1, 0, o, zr, T));
    CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_PERM, 3, 1, 0, dz, dr, zr, T));
    CHECK(tv_cmp(TV_ROOT "/sk_out", "out", o, 27) == 0);
    CHECK(tv_cmp(TV_ROOT "/sk_out", "d_logits", dz, 18) == 0);
    TEST_BEGIN("verify: head case");
    {
        mhc_hc_spec s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 2);
        hct_case kc;
        hct_lib l;
        double L;
        int i;
        hct_case_make(&kc, &s, 2, 3, 1, 0, 77);
        for (i = 0; i < 4; i++) kc.whpre[i] = 0;
        hct_lib_make(&l, &kc);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l));
        tv_write_case(TV_ROOT "/head", &kc, "op = head\npreset = paper\nn = 2\ndtype = float64\n", "<f8", 1);
        CHECK(tool_verify_case(TV_ROOT "/head", TV_ROOT "/head_out", err, sizeof err) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "out", l.li, 6) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "h_pre", l.hpre, 4) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "d_x", l.dx, 12) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "d_fn", l.dfn, (size_t)kc.nfn) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "d_base", l.dbase, 2) == 0);
        CHECK(tv_cmp(TV_ROOT "/head_out", "d_scale", l.dscale, 1) == 0);
        CHECK(!tv_exists(TV_ROOT "/head_out", "d_norm_weight") && !tv_exists(TV_ROOT "/head_out", "h_res"));
        hct_lib_free(&l);
        hct_case_free(&kc);
    }
    TEST_BEGIN("verify: hc and none variants");
    {
        mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, 2);
        hct_case kc;
        hct_case_make(&kc, &s, 2, 3, 0, 1, 78);
        tv_write_case(TV_ROOT "/hc", &kc, "op = layer\npreset = dsv4\nvariant = hc\nn = 2\ndtype = float64\n", "<f8", 1);
        CHECK(tool_verify_case(TV_ROOT "/hc", TV_ROOT "/hc_out", err, sizeof err) == 0);
        CHECK(tv_exists(TV_ROOT "/hc_out", "d_fn") && tv_exists(TV_ROOT "/hc_out", "d_norm_weight"));
        hct_case_free(&kc);
        tool_mkdir_p(TV_ROOT "/none");
        tv_write_text(TV_ROOT "/none/case.txt", "op = layer\npreset = dsv4\nvariant = none\nn = 1\ndtype = float64\n");
        tv_path(p, sizeof p, TV_ROOT "/none", "x.npy");
        {
            int s3[3] = {2, 1, 3};
            double xv[6] = {1, 2, 3, 4, 5, 6};
            tv_write_npy(p, "<f8", 3, s3, xv, 0);
        }
        CHECK(tool_verify_case(TV_ROOT "/none", TV_ROOT "/none_out", err, sizeof err) == 0);
        CHECK(tv_exists(TV_ROOT "/none_out", "out") && !tv_exists(TV_ROOT "/none_out", "d_fn"));
    }
}

/* Every bad case: exit code 2 and a message naming the file and the problem. */
static void tv_errors(void) {
    char err[1024];
    hct_case k;
    mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3);
    const char *good = "op = layer\npreset = dsv4\nn = 3\ndtype = float64\n";
    const char *D = TV_ROOT "/bad", *O = TV_ROOT "/bad_out";
    int sh[3];
    hct_case_make(&k, &s, 2, 4, 0, 1, 99);
#define TV_BAD(casetxt, sub1, sub2) do { \
        tv_write_case(D, &k, (casetxt), "<f8", 1); \
        err[0] = 0; \
        CHECK(tool_verify_case(D, O, err, sizeof err) == 2); \
        CHECK_STR_HAS(err, sub1); CHECK_STR_HAS(err, sub2); } while (0)
    TEST_BEGIN("verify errors: case.txt");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nfoo = 1\n", "case.txt:5", "unknown key 'foo'");
    TV_BAD("op = layer\npreset = dsv9\nn = 3\ndtype = float64\n", "case.txt:2", "unknown preset 'dsv9'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float16\n", "case.txt:4", "unknown dtype 'float16'");
    TV_BAD("op = norm\npreset = dsv4\nn = 3\ndtype = float64\n", "case.txt:1", "unknown op 'norm'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3.5\ndtype = float64\n", "case.txt:3", "n = '3.5' is not an integer");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nn = 3\n", "case.txt:5", "key 'n' given twice (first on line 3)");
    TV_BAD("op = layer\npreset = dsv4\ndtype = float64\n", "case.txt", "the key 'n' is missing");
    TV_BAD("op = layer\npreset dsv4\nn = 3\ndtype = float64\n", "case.txt:2", "expected 'key = value'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\npre_eps = -1\n", "case.txt:5", "pre_eps = '-1' is not a finite number >= 0");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nnorm_eps = nan\n", "case.txt:5", "norm_eps = 'nan'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nsinkhorn_iters = 0\n", "case.txt:5", "sinkhorn_iters = '0'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\norient = v\n", "case.txt:5", "unknown orientation 'v'");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nprojection = svd\n", "case.txt:5", "unknown projection 'svd'");
    TV_BAD("op = layer\npreset = lite\nn = 9\ndtype = float64\n", "case.txt", "n = 9 is too large");
    TV_BAD("op = sinkhorn\npreset = dsv4\nn = 3\ndtype = float64\nvariant = hc\n", "case.txt:5", "variant applies to op = layer only");
    TV_BAD("op = layer\npreset = dsv4\nn = 3\ndtype = float64\nvariant = none\n", "case.txt", "needs n = 1, not n = 3");
    TV_BAD("op = layer\npreset = kromhc\nn = 3\ndtype = float64\nkron_factors = 2\n", "case.txt",
           "kron_factors = 2 has the product 2, not n = 3");
    TV_BAD("op = layer\npreset = kromhc\nn = 3\ndtype = float64\nkron_factors = 3,x\n", "case.txt:5",
           "kron_factors = '3,x' is not a list of 1 to 10 integers in 1..8");
    TV_BAD("op = layer\npreset = kromhc\nn = 3\ndtype = float64\nkron_factors = 9\n", "case.txt:5",
           "kron_factors = '9' is not a list");
    TV_BAD("op = layer\npreset = kromhc\nn = 3\ndtype = float64\nkron_factors = 1,1,1,1,1,1,1,1,1,1,3\n", "case.txt:5",
           "kron_factors = '1,1,1,1,1,1,1,1,1,1,3' is not a list");
    TV_BAD("op = layer\npreset = ortho\nn = 3\ndtype = float64\nns_iters = 1001\n", "case.txt:5",
           "ns_iters = '1001' is not an integer in 1..1000");
    TV_BAD("op = layer\npreset = ortho\nn = 3\ndtype = float64\nvariant = kromhc\nprojection = ortho\n", "case.txt",
           "variant kromhc needs projection kron, not ortho");
    tv_write_case(D, &k, good, "<f8", 1);
    tv_write_npy(TV_ROOT "/bad/case.txt", "<f8", 1, &k.nscale, k.scale, 0);    /* binary junk with NUL bytes */
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "case.txt: contains a NUL byte");
    CHECK(tool_verify_case(TV_ROOT "/no_such_case", O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "no_such_case/case.txt: cannot read the case file");
    TEST_BEGIN("verify errors: inputs");
    tv_write_case(D, &k, good, "<f8", 1);
    remove(TV_ROOT "/bad/fn.npy");
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/fn.npy: missing (a required input)");
    tv_write_case(D, &k, good, "<f8", 1);
    sh[0] = 2; sh[1] = 2; sh[2] = 4;
    tv_write_npy(TV_ROOT "/bad/x.npy", "<f8", 3, sh, k.x, 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/x.npy: shape [2,2,4], expected [T,3,C] (n = 3 from case.txt)");
    tv_write_case(D, &k, good, "<f8", 1);
    sh[0] = 15; sh[1] = 8;
    tv_write_npy(TV_ROOT "/bad/fn.npy", "<f8", 2, sh, k.fn, 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/fn.npy: shape [15,8], expected [15,12] (2n + n*n = 15 rows, n*C = 12 columns for n = 3)");
    tv_write_case(D, &k, good, "<f8", 1);
    sh[0] = 2;
    tv_write_npy(TV_ROOT "/bad/scale.npy", "<f8", 1, sh, k.scale, 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/scale.npy: shape [2], expected [3]");
    tv_write_case(D, &k, good, "<f8", 1);
    sh[0] = 2; sh[1] = 5;
    tv_write_npy(TV_ROOT "/bad/f_out.npy", "<f8", 2, sh, k.x, 0);   /* 10 values of x (24) */
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/f_out.npy: shape [2,5], expected [2,4]");
    tv_write_case(D, &k, good, "<f8", 1);
    tv_write_npy(TV_ROOT "/bad/base.npy", "<i4", 1, &k.nbase, k.base, 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/base.npy");
    CHECK_STR_HAS(err, "'<i4' is not supported");
    tv_write_case(D, &k, good, "<f8", 1);
    tv_write_npy(TV_ROOT "/bad/base.npy", "<f8", 1, &k.nbase, k.base, 3);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/base.npy");
    CHECK_STR_HAS(err, "truncated");
    tv_write_case(D, &k, good, "<f8", 1);
    k.fn[13] = hct_nan();
    sh[0] = 15; sh[1] = 12;
    tv_write_npy(TV_ROOT "/bad/fn.npy", "<f8", 2, sh, k.fn, 0);
    k.fn[13] = 0.1;
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/fn.npy: element [1,1] (flat index 13) is NaN");
    tv_write_case(D, &k, good, "<f8", 1);
    k.wout[5] = HUGE_VAL;
    sh[0] = 2; sh[1] = 3; sh[2] = 4;
    tv_write_npy(TV_ROOT "/bad/d_out.npy", "<f8", 3, sh, k.wout, 0);
    k.wout[5] = 0;
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/d_out.npy: element [0,1,1] (flat index 5) is +Inf");
    tv_write_case(D, &k, good, "<f4", 1);
    k.nw[2] = -HUGE_VAL;
    tv_write_npy(TV_ROOT "/bad/norm_weight.npy", "<f4", 1, &k.nnw, k.nw, 0);
    k.nw[2] = 1;
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad/norm_weight.npy: element [2] (flat index 2) is -Inf");
    TEST_BEGIN("verify errors: sinkhorn and head inputs");
    tool_mkdir_p(TV_ROOT "/bad_sk");
    tv_write_text(TV_ROOT "/bad_sk/case.txt", "op = sinkhorn\npreset = lite\nn = 3\ndtype = float32\n");
    sh[0] = 2; sh[1] = 3; sh[2] = 3;
    tv_write_npy(TV_ROOT "/bad_sk/logits.npy", "<f4", 3, sh, k.x, 0);
    CHECK(tool_verify_case(TV_ROOT "/bad_sk", O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad_sk/logits.npy: shape [2,3,3], expected [T,6] (n = 3, projection perm: n! logits per token)");
    sh[1] = 6;
    tv_write_npy(TV_ROOT "/bad_sk/logits.npy", "<f4", 2, sh, k.x, 0);
    CHECK(tool_verify_case(TV_ROOT "/bad_sk", O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "bad_sk/d_out.npy: missing");
    TEST_BEGIN("verify errors: output directory");
    tv_write_case(D, &k, good, "<f8", 1);
    CHECK(tool_verify_case(D, TV_ROOT "/bad/case.txt/out", err, sizeof err) == 2);   /* a file in the way */
    CHECK_STR_HAS(err, "bad/case.txt/out: cannot create the output directory");
    CHECK(tool_verify_case(D, TV_ROOT "/bad_out_ok", err, sizeof err) == 0);
#undef TV_BAD
    hct_case_free(&k);
}

#endif /* MHC_DOUBLE */

void TP(test_verify)(void); void TP(test_verify)(void) {
#ifdef MHC_DOUBLE
    TEST_BEGIN("verify: scratch directory");
    CHECK(tool_mkdir_p(TV_ROOT) == 0);
    tv_success();
    tv_other_ops();
    tv_errors();
    hct_omp_release();
#endif
}
