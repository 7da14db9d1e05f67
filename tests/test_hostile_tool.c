/* tests/test_hostile_tool.c - the tool's members of issue 15 (tools/verify.c, tools/compare.c,
 * linked into the runner): a float32 case refuses finite inputs and knobs beyond FLT_MAX, naming
 * the tensor and element (float64 takes them); case.txt above 1 MiB, as a FIFO, and an x.npy
 * linked to /dev/zero are refused without reading; a case whose outputs would take more than the
 * verifier's memory limit, and one whose Sinkhorn iterates exceed the library's scratch limit, are
 * refused before allocating, naming the formula; the command-line parsers of verify and compare
 * (tool_verify_args, tool_compare_args). Runs in the f64 instance (the verifier runs both
 * precisions itself); uses tests/test_verify.c's case writer. */
#ifdef MHC_DOUBLE
#if defined(__unix__) || defined(__APPLE__)
#include <sys/stat.h>
#include <unistd.h>
#endif

static void hot_test_f32_range(void) {
    const char *D = TV_ROOT "/ho_f32", *O = TV_ROOT "/ho_f32_out";
    char err[1024], want[256];
    hct_case k;
    mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3);
    const char *f32 = "op = layer\npreset = dsv4\nn = 3\ndtype = float32\n";
    const char *f64 = "op = layer\npreset = dsv4\nn = 3\ndtype = float64\n";
    struct { const char *name; double *a; int e; double v; } cases[5];
    int i;
    hct_case_make(&k, &s, 2, 4, 0, 1, 77);
    cases[0].name = "x"; cases[0].a = k.x; cases[0].e = 7; cases[0].v = 1e39;
    cases[1].name = "fn"; cases[1].a = k.fn; cases[1].e = 3; cases[1].v = -3.5e38;
    cases[2].name = "base"; cases[2].a = k.base; cases[2].e = 0; cases[2].v = 1e300;
    cases[3].name = "d_out"; cases[3].a = k.wout; cases[3].e = 23; cases[3].v = -1.7976931348623157e308;
    cases[4].name = "norm_weight"; cases[4].a = k.nw; cases[4].e = 1; cases[4].v = 3.4028236e38;

    TEST_BEGIN("verify, float32 case: a finite input beyond FLT_MAX is refused, naming the tensor and element");
    for (i = 0; i < 5; i++) {
        double keep = cases[i].a[cases[i].e];
        cases[i].a[cases[i].e] = cases[i].v;
        tv_write_case(D, &k, f32, "<f8", 1);
        err[0] = 0;
        CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 2, "%s = %g: not refused", cases[i].name, cases[i].v);
        snprintf(want, sizeof want, "ho_f32/%s.npy: element ", cases[i].name);
        CHECK_STR_HAS(err, want);
        snprintf(want, sizeof want, "(flat index %d) is ", cases[i].e);
        CHECK_STR_HAS(err, want);
        CHECK_STR_HAS(err, "beyond float32's range (|x| <= 3.40282347e+38); this case computes in float32");
        /* the same values in a float64 case are computed */
        tv_write_case(D, &k, f64, "<f8", 1);
        CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 0, "%s in float64: %s", cases[i].name, err);
        cases[i].a[cases[i].e] = keep;
    }
    /* FLT_MAX itself is representable */
    k.x[5] = 3.4028234663852886e38;
    tv_write_case(D, &k, f32, "<f8", 1);
    CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 0, "FLT_MAX refused: %s", err);

    TEST_BEGIN("verify, float32 case: pre_eps or post_mult beyond FLT_MAX is refused");
    tv_write_case(D, &k, "op = layer\npreset = dsv4\nn = 3\ndtype = float32\npost_mult = 1e39\n", "<f8", 1);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "case.txt: post_mult = 1e+39 is beyond float32's range");
    tv_write_case(D, &k, "op = layer\npreset = dsv4\nn = 3\ndtype = float32\npre_eps = 1e300\n", "<f8", 1);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "pre_eps = 1e+300 is beyond float32's range");
    tv_write_case(D, &k, "op = layer\npreset = dsv4\nn = 3\ndtype = float64\npost_mult = 1e39\n", "<f8", 1);
    CHECK_MSG(tool_verify_case(D, O, err, sizeof err) == 0, "float64 post_mult 1e39: %s", err);
    hct_case_free(&k);
}

static void hot_test_files(void) {
    const char *D = TV_ROOT "/ho_files", *O = TV_ROOT "/ho_files_out";
    char err[1024], path[512];
    FILE *f;
    size_t i;
    tool_mkdir_p(D);
    TEST_BEGIN("verify: a case.txt above 1 MiB is refused before it is read");
    f = fopen(TV_ROOT "/ho_files/case.txt", "wb");
    CHECK(f != NULL);
    if (f) {
        for (i = 0; i < (1u << 20) / 8 + 1; i++) fputs("#comment", f);
        fclose(f);
    }
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "case.txt: cannot read the case file");
    CHECK_STR_HAS(err, "more than the limit of 1048576 bytes");
#if defined(__unix__) || defined(__APPLE__)
    TEST_BEGIN("verify: a case.txt that is a FIFO, an x.npy linked to /dev/zero are refused without blocking");
    remove(TV_ROOT "/ho_files/case.txt");
    CHECK(mkfifo(TV_ROOT "/ho_files/case.txt", 0600) == 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "is a FIFO (named pipe), not a regular file");
    remove(TV_ROOT "/ho_files/case.txt");
    tv_write_text(TV_ROOT "/ho_files/case.txt", "op = layer\npreset = dsv4\nn = 2\ndtype = float64\n");
    snprintf(path, sizeof path, "%s/x.npy", D);
    remove(path);
    CHECK(symlink("/dev/zero", path) == 0);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "x.npy: mhc_npy_read: ");
    CHECK_STR_HAS(err, "is a character device, not a regular file");
    remove(path);
#else
    (void)path;
#endif
}

static void hot_test_memory(void) {
    const char *D = TV_ROOT "/ho_mem", *O = TV_ROOT "/ho_mem_out";
    char err[1024];
    int T = 600, n = 1024, sh[3], i;
    double *v = (double *)calloc((size_t)n * n + 2 * (size_t)n, sizeof(double));
    tool_mkdir_p(D);
    TEST_BEGIN("verify: a small case whose outputs would exceed the verifier's memory limit is refused first");
    /* hc, n = 1024, C = 1: 13 MB of inputs, but h_res [T,n,n] alone would be 5 GB */
    tv_write_text(TV_ROOT "/ho_mem/case.txt", "op = layer\npreset = dsv4\nvariant = hc\nn = 1024\ndtype = float64\n");
    sh[0] = T; sh[1] = n; sh[2] = 1;
    for (i = 0; i < T * n && i < n * n; i++) v[i] = 0.001 * (i % 7);
    mhc_npy_write(NULL, TV_ROOT "/ho_mem/x.npy", 3, sh, v);
    sh[0] = n + 2; sh[1] = 1;
    mhc_npy_write(NULL, TV_ROOT "/ho_mem/fn.npy", 2, sh, v);
    sh[0] = 3;
    mhc_npy_write(NULL, TV_ROOT "/ho_mem/scale.npy", 1, sh, v);
    sh[0] = 2 * n + n * n;
    mhc_npy_write(NULL, TV_ROOT "/ho_mem/base.npy", 1, sh, v);
    CHECK(tool_verify_case(D, O, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "ho_mem: the case needs ");
    CHECK_STR_HAS(err, "(8 B x (input + output elements) + 8 B x (input + output elements + T (n^2 + n))), more than "
                       "the verifier's limit of 4294967296 bytes");
    free(v);

    TEST_BEGIN("verify: a 26 KB sinkhorn case with n = 40 and 100000 iterations is refused by the library's scratch limit");
    {
        const char *S = TV_ROOT "/ho_sk";
        double *z = (double *)calloc(1600, sizeof(double));
        tool_mkdir_p(S);
        tv_write_text(TV_ROOT "/ho_sk/case.txt",
                      "op = sinkhorn\npreset = dsv4\nn = 40\ndtype = float64\nsinkhorn_iters = 100000\n");
        sh[0] = 1; sh[1] = 40; sh[2] = 40;
        mhc_npy_write(NULL, TV_ROOT "/ho_sk/logits.npy", 3, sh, z);
        mhc_npy_write(NULL, TV_ROOT "/ho_sk/d_out.npy", 3, sh, z);
        CHECK(tool_verify_case(S, TV_ROOT "/ho_sk_out", err, sizeof err) == 2);
        CHECK_STR_HAS(err, "mhc_hc_proj_forward: the projection (n = 40, 100000 iterations: the exact backward keeps "
                           "every iterate");
        CHECK_STR_HAS(err, "more than the limit of 1073741824 bytes");
        free(z);
    }
    (void)O;
}

static void hot_test_args(void) {
    const char *a, *b;
    double rt, at;
    char err[256];
    char *v1[] = {"verify", "CASE", "--out", "OUT"}, *v2[] = {"verify", "CASE", "--out"}, *v3[] = {"verify", "--out=", "C"};
    char *v4[] = {"verify", "A", "B", "--out", "O"}, *v5[] = {"verify", "-x"}, *v6[] = {"verify", "--help"};
    char *c1[] = {"compare", "O", "E", "--rtol", "1e-3", "--atol=0"}, *c2[] = {"compare", "O", "E", "--rtol", "inf"};
    char *c3[] = {"compare", "O", "E", "F"}, *c4[] = {"compare", "O", "--atol"}, *c5[] = {"compare", "O"};
    char *c6[] = {"compare", "O", "E", "--rtol=-1"}, *c7[] = {"compare", "O", "E", "--rtol", "1e999"};
    TEST_BEGIN("tool: the verify and compare command lines, parsed without touching a file");
    CHECK(tool_verify_args(4, v1, &a, &b, err, sizeof err) == 0 && strcmp(a, "CASE") == 0 && strcmp(b, "OUT") == 0);
    CHECK(tool_verify_args(3, v2, &a, &b, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "--out needs a directory");
    CHECK(tool_verify_args(3, v3, &a, &b, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "no --out OUT_DIR given");
    CHECK(tool_verify_args(5, v4, &a, &b, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "more than one CASE_DIR ('A' and 'B')");
    CHECK(tool_verify_args(2, v5, &a, &b, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "unknown option '-x'");
    CHECK(tool_verify_args(2, v6, &a, &b, err, sizeof err) == 1);
    CHECK(tool_compare_args(6, c1, &a, &b, &rt, &at, err, sizeof err) == 0 && rt == 1e-3 && at == 0 &&
          strcmp(a, "O") == 0 && strcmp(b, "E") == 0);
    CHECK(tool_compare_args(5, c2, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "--rtol 'inf' is not a finite number >= 0");
    CHECK(tool_compare_args(5, c7, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "--rtol '1e999' is not a finite number >= 0");
    CHECK(tool_compare_args(4, c6, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK(tool_compare_args(4, c3, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "unexpected argument 'F'");
    CHECK(tool_compare_args(3, c4, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "--atol needs a value");
    CHECK(tool_compare_args(2, c5, &a, &b, &rt, &at, err, sizeof err) == 2);
    CHECK_STR_HAS(err, "expected OUT_DIR and EXPECTED_DIR, got only OUT_DIR");
}
#endif

/* gpt_memory_bytes (what build/mhc train checks against TRAIN_MEMORY_MAX before allocating) is an
   upper bound of what a training step really takes: the parameter store plus the arena's capacity
   after one forward and backward, for every variant; and not more than 4x it (plus 4 MB: its
   constant terms dominate the tiniest models). */
static void TP(hot_test_train_memory)(void) {
    static const struct { int variant, n, L, C, H, T, B; } k[6] = {
        {MHC_VARIANT_MHC, 4, 2, 32, 4, 32, 4}, {MHC_VARIANT_NONE, 1, 2, 32, 4, 32, 4}, {MHC_VARIANT_HC, 4, 2, 32, 4, 32, 4},
        {MHC_VARIANT_LITE, 4, 1, 16, 2, 64, 2}, {MHC_VARIANT_MHC, 8, 1, 16, 8, 128, 2}, {MHC_VARIANT_MHC, 16, 1, 8, 2, 8, 2}};
    int i, j, threads = 1;
#if defined(_OPENMP)
    threads = omp_get_max_threads();
#endif
    TEST_BEGIN("train memory: gpt_memory_bytes bounds the parameters plus one step's arena (and is within 4x + 4 MB)");
    for (i = 0; i < 6; i++) {
        mhc_ctx ctx;
        gpt_model m;
        gpt_config c;
        mhc_rng rng;
        mhc_arena a;
        mhc_tape tp;
        mhc_tensor *loss;
        int *inp = (int *)malloc(sizeof(int) * (size_t)k[i].B * k[i].T), *tgt = (int *)malloc(sizeof(int) * (size_t)k[i].B * k[i].T);
        double real, est;
        mhc_ctx_init(&ctx);
        memset(&c, 0, sizeof c);
        c.vocab = 256; c.seq = k[i].T; c.dim = k[i].C; c.heads = k[i].H; c.layers = k[i].L; c.n = k[i].n;
        c.hc.variant = (mhc_hc_variant)k[i].variant;
        CHECK_OK(gpt_create(&ctx, &m, &c));
        mhc_rng_seed(&rng, 3);
        gpt_init(&ctx, &m, &rng);
        CHECK_OK(mhc_arena_init(&ctx, &a, 1 << 20));
        mhc_tape_init(&ctx, &tp, &a);
        for (j = 0; j < k[i].B * k[i].T; j++) { inp[j] = j % 256; tgt[j] = (j * 7) % 256; }
        loss = gpt_forward(&tp, &m, inp, tgt, k[i].B, k[i].T, NULL);
        CHECK(loss != NULL && mhc_tape_backward(&tp, loss) == MHC_OK);
        real = 4.0 * (double)m.params.size * sizeof(mhc_real) + (double)a.capacity;
        est = gpt_memory_bytes(&c, &m.spec, k[i].B, k[i].T, threads);
        CHECK_MSG(est >= real && est <= 4 * real + 4e6, "%s n=%d: estimate %.0f, measured %.0f", mhc_hc_variant_name(m.spec.variant),
                  k[i].n, est, real);
        mhc_tape_free(&tp);
        mhc_arena_free(&a);
        gpt_destroy(&m);
        free(inp);
        free(tgt);
    }
}

void TP(test_hostile_tool)(void); void TP(test_hostile_tool)(void) {
    TP(hot_test_train_memory)();
#ifdef MHC_DOUBLE
    CHECK(tool_mkdir_p(TV_ROOT) == 0);
    hot_test_f32_range();
    hot_test_files();
    hot_test_memory();
    hot_test_args();
#endif
}
