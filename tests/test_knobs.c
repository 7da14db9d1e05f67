/* tests/test_knobs.c - the convention knobs of MHC_SPEC.md Sec. 8 (norm_eps_mode, norm_scope,
 * sinkhorn_eps_mode, sinkhorn_order, exp_shift) and the peers' presets (megatron, liger,
 * lucidrains, mhc_cu): configuration and names, the forward against tests/test_hc.c's naive
 * double reference (which takes every knob as the spec writes it: hct_proj_knobs, hct_rms), the
 * backward against central differences of that reference (both builds) and of the library's
 * own forward (double: relative error <= 1e-6), on the fast path (which routes any non-default
 * knob through the per-token path) and on the plain references; the fast path against the
 * references (tests/test_hc_ref.c's hrt_pre_case, up to C = 67, T = 9); bitwise equality for 1,
 * 2 and 3 threads; the standalone projection of a spec; the tape op; an all-zero token under
 * the outside norm; the exp shift's edge (logits ~715, where the unshifted exp start overflows).
 * The eps modes switch branch at s = eps: each clamp / threshold / zero case searches seeds for
 * inputs where some line takes the eps branch and no line sum comes within 2% of eps, so the
 * finite differences stay on one branch. test_all.c includes test_hc.c and test_hc_ref.c first. */

static double TP(knt_worst_fwd), TP(knt_worst_grad);
static int TP(knt_cases);

/* A resolved spec: preset plus the five knobs (0 = the preset's), projection and eps overrides
   (eps < 0: the preset's). NULL-safe: a failed resolve is a test failure and a zeroed spec. */
static mhc_hc_spec knt_spec(mhc_hc_preset preset, mhc_hc_variant v, mhc_projection proj, int n, int eps_mode, int order,
                            int shift, int norm_mode, int scope, double eps) {
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = preset; cfg.variant = v; cfg.projection = proj;
    cfg.sinkhorn_eps_mode = (mhc_sinkhorn_eps_mode)eps_mode;
    cfg.sinkhorn_order = (mhc_sinkhorn_order)order;
    cfg.exp_shift = (mhc_exp_shift)shift;
    cfg.norm_eps_mode = (mhc_norm_eps_mode)norm_mode;
    cfg.norm_scope = (mhc_norm_scope)scope;
    if (eps >= 0) cfg.sinkhorn_eps = eps > 0 ? eps : MHC_ZERO;
    if (mhc_hc_resolve(&ctx, &cfg, n, &s) != MHC_OK) {
        TEST_FAIL_AT("knt_spec: %s", mhc_ctx_message(&ctx));
        memset(&s, 0, sizeof s);
    }
    return s;
}

/* A seed (from seed0 on) whose case keeps every line sum at least 2% away from eps (the eps
   modes switch branch there) and, when active is set, takes the eps branch somewhere; 0 if none
   of 80 does. */
static uint64_t knt_seed(const mhc_hc_spec *s, int T, int C, int head, int nw, uint64_t seed0, int active) {
    uint64_t sd;
    int mode = s->sinkhorn_eps_mode, modal = !head && s->projection != MHC_PROJ_PERM && mode != MHC_SK_EPS_ADD &&
                                             mode != MHC_SK_EPS_PRESET && s->sinkhorn_eps > 0;
    for (sd = seed0; sd < seed0 + 80; sd++) {
        hct_case k;
        double L;
        hct_case_make(&k, s, T, C, head, nw, sd);
        hct_sk_active = 0;
        hct_sk_margin = HUGE_VAL;
        L = hct_ref_loss(&k, 0, 0, 0, 0, 0);
        hct_case_free(&k);
        if (!hct_finite(L)) continue;
        if (!modal || ((!active || hct_sk_active > 0) && hct_sk_margin > 0.02)) return sd;
    }
    return 0;
}

/* hct_check_case on the fast path and on the references, after the seed search (active: the
   case must take an eps branch). */
static void knt_check(const mhc_hc_spec *s, int T, int C, int head, int nw, uint64_t seed0, int active,
                      const char *name) {
    uint64_t sd = knt_seed(s, T, C, head, nw, seed0, active);
    TEST_BEGIN(name);
    CHECK_MSG(sd != 0, "%s: no seed among 80 keeps the line sums 2%% away from eps%s", name,
              active ? " and takes the eps branch" : "");
    if (!sd) return;
    TP(hct_worst_fwd) = TP(hct_worst_grad_ref) = TP(hct_worst_grad_lib) = 0;
    TP(hct_use_ref) = 0;
    hct_check_case(s, T, C, head, nw, sd, name);
    TP(hct_use_ref) = 1;
    hct_check_case(s, T, C, head, nw, sd, name);
    TP(hct_use_ref) = 0;
    if (TP(hct_worst_fwd) > TP(knt_worst_fwd)) TP(knt_worst_fwd) = TP(hct_worst_fwd);
    if (TP(hct_worst_grad_ref) > TP(knt_worst_grad)) TP(knt_worst_grad) = TP(hct_worst_grad_ref);
    if (TP(hct_worst_grad_lib) > TP(knt_worst_grad)) TP(knt_worst_grad) = TP(hct_worst_grad_lib);
    TP(knt_cases)++;
}

/* ---- configuration ---- */

static void knt_test_config(void) {
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mhc_ctx ctx;
    const char *names[4];
    mhc_norm_eps_mode nm = MHC_NORM_EPS_PRESET;
    mhc_norm_scope sc = MHC_NORM_SCOPE_PRESET;
    mhc_sinkhorn_eps_mode em = MHC_SK_EPS_PRESET;
    mhc_sinkhorn_order so = MHC_SK_ORDER_PRESET;
    mhc_exp_shift es = MHC_EXP_SHIFT_PRESET;
    mhc_hc_preset p = MHC_PRESET_DSV4;
    int k;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("knobs: presets, names, parsers, resolve");
    /* the defaults, in every original preset */
    for (k = 0; k < 4; k++) {
        memset(&cfg, 0, sizeof cfg);
        cfg.preset = (mhc_hc_preset)k;
        CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
        CHECK(s.norm_eps_mode == MHC_NORM_EPS_INSIDE && s.norm_scope == MHC_NORM_SCOPE_FLAT);
        CHECK(s.sinkhorn_eps_mode == MHC_SK_EPS_ADD && s.sinkhorn_order == MHC_SK_COL_FIRST &&
              s.exp_shift == MHC_EXP_SHIFT_NONE);
    }
    /* the peers */
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_MEGATRON;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_MHC && s.projection == MHC_PROJ_EXP && s.iters == 20 && s.orient == MHC_ORIENT_H);
    CHECK(s.norm_eps == 1e-6 && s.pre_eps == 0.0 && s.post_mult == 2.0 && s.sinkhorn_eps == 1e-6);
    CHECK(s.norm_eps_mode == MHC_NORM_EPS_OUTSIDE && s.norm_scope == MHC_NORM_SCOPE_FLAT &&
          s.sinkhorn_eps_mode == MHC_SK_EPS_CLAMP && s.sinkhorn_order == MHC_SK_ROW_FIRST &&
          s.exp_shift == MHC_EXP_SHIFT_ROW_MAX && s.m == 24);
    cfg.preset = MHC_PRESET_LIGER;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_SOFTMAX && s.iters == 20 && s.orient == MHC_ORIENT_H && s.norm_eps == 1e-6 &&
          s.pre_eps == 0.0 && s.post_mult == 2.0 && s.sinkhorn_eps == 1e-6);
    CHECK(s.norm_eps_mode == MHC_NORM_EPS_INSIDE && s.sinkhorn_eps_mode == MHC_SK_EPS_ADD &&
          s.sinkhorn_order == MHC_SK_COL_FIRST && s.exp_shift == MHC_EXP_SHIFT_NONE);
    cfg.preset = MHC_PRESET_LUCIDRAINS;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_EXP && s.iters == 20 && s.orient == MHC_ORIENT_COMB_T && s.norm_eps == 1e-20 &&
          s.pre_eps == 0.0 && s.post_mult == 2.0 && s.sinkhorn_eps == 1e-12);
    CHECK(s.norm_eps_mode == MHC_NORM_EPS_OUTSIDE && s.norm_scope == MHC_NORM_SCOPE_STREAM &&
          s.sinkhorn_eps_mode == MHC_SK_EPS_CLAMP && s.sinkhorn_order == MHC_SK_COL_FIRST &&
          s.exp_shift == MHC_EXP_SHIFT_COL_MAX);
    cfg.preset = MHC_PRESET_MHC_CU;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.projection == MHC_PROJ_EXP && s.iters == 20 && s.orient == MHC_ORIENT_H && s.norm_eps == 1e-5 &&
          s.pre_eps == 0.0 && s.post_mult == 2.0 && s.sinkhorn_eps == 1e-5);
    CHECK(s.norm_eps_mode == MHC_NORM_EPS_INSIDE && s.norm_scope == MHC_NORM_SCOPE_FLAT &&
          s.sinkhorn_eps_mode == MHC_SK_EPS_ZERO && s.sinkhorn_order == MHC_SK_ROW_FIRST &&
          s.exp_shift == MHC_EXP_SHIFT_NONE);
    /* every knob overrides a preset's value */
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_MEGATRON;
    cfg.norm_eps_mode = MHC_NORM_EPS_INSIDE; cfg.norm_scope = MHC_NORM_SCOPE_STREAM;
    cfg.sinkhorn_eps_mode = MHC_SK_EPS_THRESHOLD; cfg.sinkhorn_order = MHC_SK_COL_FIRST;
    cfg.exp_shift = MHC_EXP_SHIFT_COL_MAX;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.norm_eps_mode == MHC_NORM_EPS_INSIDE && s.norm_scope == MHC_NORM_SCOPE_STREAM &&
          s.sinkhorn_eps_mode == MHC_SK_EPS_THRESHOLD && s.sinkhorn_order == MHC_SK_COL_FIRST &&
          s.exp_shift == MHC_EXP_SHIFT_COL_MAX);
    /* the exp shift: a preset's value is dropped by the softmax start and the mixture ... */
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_MEGATRON; cfg.projection = MHC_PROJ_SOFTMAX;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.exp_shift == MHC_EXP_SHIFT_NONE && s.sinkhorn_order == MHC_SK_ROW_FIRST);
    cfg.projection = MHC_PROJ_PERM;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.exp_shift == MHC_EXP_SHIFT_NONE && s.variant == MHC_VARIANT_LITE);
    cfg.projection = MHC_PROJ_LOG;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.exp_shift == MHC_EXP_SHIFT_ROW_MAX);
    /* ... and refused when asked for there */
    memset(&cfg, 0, sizeof cfg);
    cfg.exp_shift = MHC_EXP_SHIFT_ROW_MAX;     /* dsv4: softmax start */
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "exp_shift = row_max applies to the exp and log starts");
    cfg.preset = MHC_PRESET_LITE; cfg.exp_shift = MHC_EXP_SHIFT_COL_MAX;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 3, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "not to projection perm");
    cfg.exp_shift = MHC_EXP_SHIFT_NONE;        /* an explicit none is fine anywhere */
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    /* out-of-range values: the message names the knob */
    {
        static const char *const knob[5] = {"norm_eps_mode", "norm_scope", "sinkhorn_eps_mode", "sinkhorn_order",
                                            "exp_shift"};
        static const int bad[2] = {-1, 9};
        int b;
        for (k = 0; k < 5; k++)
            for (b = 0; b < 2; b++) {
                memset(&cfg, 0, sizeof cfg);
                cfg.preset = MHC_PRESET_PAPER;
                if (k == 0) cfg.norm_eps_mode = (mhc_norm_eps_mode)bad[b];
                if (k == 1) cfg.norm_scope = (mhc_norm_scope)bad[b];
                if (k == 2) cfg.sinkhorn_eps_mode = (mhc_sinkhorn_eps_mode)bad[b];
                if (k == 3) cfg.sinkhorn_order = (mhc_sinkhorn_order)bad[b];
                if (k == 4) cfg.exp_shift = (mhc_exp_shift)bad[b];
                CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
                CHECK_STR_HAS(mhc_ctx_message(&ctx), knob[k]);
            }
        /* a hand-built spec with an out-of-range knob is refused by the layer's checks */
        memset(&cfg, 0, sizeof cfg);
        CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 2, &s));
        for (k = 0; k < 5; k++) {
            mhc_hc_spec bs = s;
            mhc_real x[4] = {1, 2, 3, 4}, fn[8 * 4] = {0}, sc[3] = {1, 1, 1}, base[8] = {0}, li[2];
            if (k == 0) bs.norm_eps_mode = (mhc_norm_eps_mode)7;
            if (k == 1) bs.norm_scope = (mhc_norm_scope)7;
            if (k == 2) bs.sinkhorn_eps_mode = (mhc_sinkhorn_eps_mode)7;
            if (k == 3) bs.sinkhorn_order = (mhc_sinkhorn_order)7;
            if (k == 4) bs.exp_shift = (mhc_exp_shift)7;
            CHECK_RESULT(mhc_hc_pre_forward(&ctx, &bs, li, NULL, NULL, NULL, x, fn, sc, base, NULL, 1, 2), MHC_ERR_VALUE);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), knob[k]);
        }
    }
    /* names and parsers */
    CHECK(!strcmp(mhc_hc_preset_name(MHC_PRESET_MEGATRON), "megatron") && !strcmp(mhc_hc_preset_name(MHC_PRESET_LIGER), "liger"));
    CHECK(!strcmp(mhc_hc_preset_name(MHC_PRESET_LUCIDRAINS), "lucidrains") &&
          !strcmp(mhc_hc_preset_name(MHC_PRESET_MHC_CU), "mhc_cu"));
    names[0] = "megatron"; names[1] = "liger"; names[2] = "lucidrains"; names[3] = "mhc_cu";
    for (k = 0; k < 4; k++) {
        CHECK_OK(mhc_hc_preset_parse(&ctx, names[k], &p));
        CHECK(p == (mhc_hc_preset)(MHC_PRESET_MEGATRON + k));
    }
    CHECK_OK(mhc_norm_eps_mode_parse(&ctx, "outside", &nm)); CHECK(nm == MHC_NORM_EPS_OUTSIDE);
    CHECK_OK(mhc_norm_eps_mode_parse(&ctx, "inside", &nm)); CHECK(nm == MHC_NORM_EPS_INSIDE);
    CHECK_OK(mhc_norm_scope_parse(&ctx, "stream", &sc)); CHECK(sc == MHC_NORM_SCOPE_STREAM);
    CHECK_OK(mhc_norm_scope_parse(&ctx, "flat", &sc)); CHECK(sc == MHC_NORM_SCOPE_FLAT);
    CHECK_OK(mhc_sinkhorn_eps_mode_parse(&ctx, "add", &em)); CHECK(em == MHC_SK_EPS_ADD);
    CHECK_OK(mhc_sinkhorn_eps_mode_parse(&ctx, "clamp", &em)); CHECK(em == MHC_SK_EPS_CLAMP);
    CHECK_OK(mhc_sinkhorn_eps_mode_parse(&ctx, "threshold", &em)); CHECK(em == MHC_SK_EPS_THRESHOLD);
    CHECK_OK(mhc_sinkhorn_eps_mode_parse(&ctx, "zero", &em)); CHECK(em == MHC_SK_EPS_ZERO);
    CHECK_OK(mhc_sinkhorn_order_parse(&ctx, "row_first", &so)); CHECK(so == MHC_SK_ROW_FIRST);
    CHECK_OK(mhc_sinkhorn_order_parse(&ctx, "col_first", &so)); CHECK(so == MHC_SK_COL_FIRST);
    CHECK_OK(mhc_exp_shift_parse(&ctx, "none", &es)); CHECK(es == MHC_EXP_SHIFT_NONE);
    CHECK_OK(mhc_exp_shift_parse(&ctx, "row_max", &es)); CHECK(es == MHC_EXP_SHIFT_ROW_MAX);
    CHECK_OK(mhc_exp_shift_parse(&ctx, "col_max", &es)); CHECK(es == MHC_EXP_SHIFT_COL_MAX);
    CHECK(!strcmp(mhc_norm_eps_mode_name(MHC_NORM_EPS_OUTSIDE), "outside"));
    CHECK(!strcmp(mhc_norm_scope_name(MHC_NORM_SCOPE_STREAM), "stream"));
    CHECK(!strcmp(mhc_sinkhorn_eps_mode_name(MHC_SK_EPS_THRESHOLD), "threshold"));
    CHECK(!strcmp(mhc_sinkhorn_order_name(MHC_SK_ROW_FIRST), "row_first"));
    CHECK(!strcmp(mhc_exp_shift_name(MHC_EXP_SHIFT_COL_MAX), "col_max"));
    CHECK(!strcmp(mhc_exp_shift_name((mhc_exp_shift)99), "?"));
    CHECK_RESULT(mhc_norm_eps_mode_parse(&ctx, "preset", &nm), MHC_ERR_VALUE);   /* not a choice */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown norm_eps_mode 'preset' (expected inside or outside)");
    CHECK_RESULT(mhc_norm_scope_parse(&ctx, "Stream", &sc), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown norm_scope 'Stream' (expected flat or stream)");
    CHECK_RESULT(mhc_sinkhorn_eps_mode_parse(&ctx, "max", &em), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown sinkhorn_eps_mode 'max' (expected add, clamp, threshold or zero)");
    CHECK_RESULT(mhc_sinkhorn_order_parse(&ctx, "rows", &so), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown sinkhorn_order 'rows' (expected col_first or row_first)");
    CHECK_RESULT(mhc_exp_shift_parse(&ctx, "", &es), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown exp_shift '' (expected none, row_max or col_max)");
    CHECK_RESULT(mhc_exp_shift_parse(&ctx, NULL, &es), MHC_ERR_NULL);
    CHECK_RESULT(mhc_hc_preset_parse(&ctx, "nvidia", &p), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "megatron, liger, lucidrains or mhc_cu");
}

/* case.txt: the new keys, their values, and the messages naming the key */
static void knt_test_case_txt(void) {
    static const struct { const char *text, *msg; } bad[] = {
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nnorm_eps_mode = middle\n", "norm_eps_mode 'middle'"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nnorm_scope = token\n", "norm_scope 'token'"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nsinkhorn_eps_mode = 1e-6\n", "sinkhorn_eps_mode '1e-6'"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nsinkhorn_order =\n", "sinkhorn_order ''"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nexp_shift = max\n", "exp_shift 'max'"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nexp_shift = none\nexp_shift = none\n",
         "key 'exp_shift' given twice"},
        {"op = layer\npreset = nvidia\nn = 4\ndtype = float64\n", "megatron, liger, lucidrains or mhc_cu"},
        {"op = layer\npreset = dsv4\nn = 4\ndtype = float64\nnorm_eps_modes = inside\n",
         "norm_eps_mode, norm_scope, sinkhorn_eps_mode, sinkhorn_order or exp_shift"},
    };
    const char *good = "op = sinkhorn\npreset = mhc_cu\nn = 3\ndtype = float32\nnorm_eps_mode = outside\n"
                       "norm_scope = stream\nsinkhorn_eps_mode = threshold\nsinkhorn_order = col_first\n"
                       "exp_shift = col_max\n";
    tool_verify_case_txt c;
    char err[512];
    mhc_hc_spec s;
    mhc_ctx ctx;
    size_t k;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("knobs: case.txt keys");
    CHECK(tool_verify_parse_case(good, strlen(good), "good", &c, err, sizeof err) == 0);
    CHECK(c.cfg.preset == MHC_PRESET_MHC_CU && c.cfg.norm_eps_mode == MHC_NORM_EPS_OUTSIDE &&
          c.cfg.norm_scope == MHC_NORM_SCOPE_STREAM && c.cfg.sinkhorn_eps_mode == MHC_SK_EPS_THRESHOLD &&
          c.cfg.sinkhorn_order == MHC_SK_COL_FIRST && c.cfg.exp_shift == MHC_EXP_SHIFT_COL_MAX && c.f32 == 1);
    CHECK_OK(mhc_hc_resolve(&ctx, &c.cfg, c.n, &s));
    CHECK(s.sinkhorn_eps_mode == MHC_SK_EPS_THRESHOLD && s.sinkhorn_order == MHC_SK_COL_FIRST && s.sinkhorn_eps == 1e-5);
    for (k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        CHECK(tool_verify_parse_case(bad[k].text, strlen(bad[k].text), "case.txt", &c, err, sizeof err) == 2);
        CHECK_STR_HAS(err, bad[k].msg);
    }
    {   /* an exp shift with the softmax start parses, and resolving it names the knob */
        const char *t = "op = layer\npreset = liger\nn = 4\ndtype = float64\nexp_shift = row_max\n";
        CHECK(tool_verify_parse_case(t, strlen(t), "case.txt", &c, err, sizeof err) == 0);
        CHECK_RESULT(mhc_hc_resolve(&ctx, &c.cfg, c.n, &s), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "exp_shift = row_max");
    }
}

/* ---- the layer: every knob value against the naive reference and finite differences ---- */

static void knt_test_sinkhorn_knobs(void) {
    static const mhc_projection projs[3] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG};
    static const int modes[4] = {MHC_SK_EPS_ADD, MHC_SK_EPS_CLAMP, MHC_SK_EPS_THRESHOLD, MHC_SK_EPS_ZERO};
    static const int orders[2] = {MHC_SK_COL_FIRST, MHC_SK_ROW_FIRST};
    static const int shifts[3] = {MHC_EXP_SHIFT_NONE, MHC_EXP_SHIFT_ROW_MAX, MHC_EXP_SHIFT_COL_MAX};
    char label[160];
    int p, e, o, h, cnt = 0;
    for (p = 0; p < 3; p++)
        for (e = 0; e < 4; e++)
            for (o = 0; o < 2; o++)
                for (h = 0; h < (projs[p] == MHC_PROJ_SOFTMAX ? 1 : 3); h++) {
                    /* the paper preset (eps 0, orient h) with an eps that the modes can reach */
                    /* (the softmax start's entries are at least eps: its first column sums reach n eps) */
                    double eps = modes[e] == MHC_SK_EPS_ADD ? 0.05 : projs[p] == MHC_PROJ_SOFTMAX ? 2.0 : 0.5;
                    mhc_hc_spec s = knt_spec(MHC_PRESET_PAPER, MHC_VARIANT_MHC, projs[p], 3, modes[e], orders[o], shifts[h],
                                             0, 0, eps);
                    if ((cnt & 1) == 0) s.orient = MHC_ORIENT_COMB_T;
                    snprintf(label, sizeof label, "knobs: layer %s eps_mode %s eps %g order %s shift %s orient %s",
                             mhc_projection_name(projs[p]), mhc_sinkhorn_eps_mode_name((mhc_sinkhorn_eps_mode)modes[e]), eps,
                             mhc_sinkhorn_order_name((mhc_sinkhorn_order)orders[o]),
                             mhc_exp_shift_name((mhc_exp_shift)shifts[h]), mhc_orient_name(s.orient));
                    knt_check(&s, 2, 3, 0, cnt % 3 == 0, (uint64_t)(9100 + 100 * cnt), 1, label);
                    cnt++;
                }
}

static void knt_test_norm_knobs(void) {
    static const int modes[2] = {MHC_NORM_EPS_INSIDE, MHC_NORM_EPS_OUTSIDE};
    static const int scopes[2] = {MHC_NORM_SCOPE_FLAT, MHC_NORM_SCOPE_STREAM};
    char label[160];
    int m, sc, head, n, cnt = 0;
    for (m = 0; m < 2; m++)
        for (sc = 0; sc < 2; sc++)
            for (head = 0; head < 2; head++)
                for (n = 1; n <= 4; n += 3) {
                    mhc_hc_spec s = knt_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n, 0, 0, 0, modes[m],
                                             scopes[sc], -1);
                    s.norm_eps = 0.3;          /* large: the placement of eps matters */
                    snprintf(label, sizeof label, "knobs: %s norm_eps_mode %s norm_scope %s n=%d (norm_eps 0.3)",
                             head ? "head" : "layer", mhc_norm_eps_mode_name((mhc_norm_eps_mode)modes[m]),
                             mhc_norm_scope_name((mhc_norm_scope)scopes[sc]), n);
                    knt_check(&s, 3, 4, head, cnt % 2, (uint64_t)(9900 + cnt), 0, label);
                    cnt++;
                }
    /* hc takes norm_eps_mode (its norm is per stream by definition) */
    for (m = 0; m < 2; m++) {
        mhc_hc_spec s = knt_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, 3, 0, 0, 0, modes[m], 0, -1);
        s.norm_eps = 0.3;
        snprintf(label, sizeof label, "knobs: hc norm_eps_mode %s (norm_eps 0.3)",
                 mhc_norm_eps_mode_name((mhc_norm_eps_mode)modes[m]));
        knt_check(&s, 3, 4, 0, m, (uint64_t)(9950 + m), 0, label);
    }
    /* kromhc and ortho with the norm knobs (the per-token path around the Kronecker mixture and the
       orthostochastic projection), and an exp shift refused with them */
    {
        mhc_hc_spec s = knt_spec(MHC_PRESET_KROMHC, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4, 0, 0, 0, MHC_NORM_EPS_OUTSIDE,
                                 MHC_NORM_SCOPE_STREAM, -1);
        mhc_hc_config cfg;
        mhc_hc_spec t;
        mhc_ctx ctx;
        knt_check(&s, 2, 4, 0, 1, 9964, 0, "knobs: kromhc norm outside, stream");
        s = knt_spec(MHC_PRESET_ORTHO, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3, 0, 0, 0, MHC_NORM_EPS_OUTSIDE, 0, -1);
        knt_check(&s, 2, 4, 0, 0, 9966, 0, "knobs: ortho norm outside");
        mhc_ctx_init(&ctx);
        memset(&cfg, 0, sizeof cfg);
        cfg.preset = MHC_PRESET_KROMHC; cfg.exp_shift = MHC_EXP_SHIFT_ROW_MAX;
        CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &t), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "not to projection kron");
        cfg.preset = MHC_PRESET_ORTHO;
        CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &t), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "not to projection ortho");
    }
    /* lite with the norm knobs (the per-token path around the permutation mixture) */
    {
        mhc_hc_spec s = knt_spec(MHC_PRESET_LITE, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3, 0, 0, 0, MHC_NORM_EPS_OUTSIDE,
                                 MHC_NORM_SCOPE_STREAM, -1);
        knt_check(&s, 2, 4, 0, 1, 9960, 0, "knobs: lite norm outside, stream");
    }
}

static void knt_test_presets(void) {
    static const mhc_hc_preset presets[4] = {MHC_PRESET_MEGATRON, MHC_PRESET_LIGER, MHC_PRESET_LUCIDRAINS,
                                             MHC_PRESET_MHC_CU};
    char label[160];
    int p, n, head;
    for (p = 0; p < 4; p++)
        for (n = 2; n <= 4; n++)
            for (head = 0; head < 2; head++) {
                mhc_hc_spec s = knt_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n, 0, 0, 0, 0, 0, -1);
                snprintf(label, sizeof label, "knobs: preset %s %s n=%d", mhc_hc_preset_name(presets[p]),
                         head ? "head" : "layer", n);
                knt_check(&s, 2, 4, head, n % 2, (uint64_t)(9970 + 10 * p + n), 0, label);
            }
}

/* ---- the fast path against the references, threads ---- */

static void knt_test_fast_vs_ref(void) {
    static const int sz[3][2] = {{1, 1}, {3, 2}, {9, 67}};
    char label[192];
    int zi, nwi, k, cnt = 0;
    for (zi = 0; zi < 3; zi++)
        for (nwi = 0; nwi < 2; nwi++)
            for (k = 0; k < 12; k++) {
                int T = sz[zi][0], C = sz[zi][1], n = k % 3 == 0 ? 4 : k % 3 == 1 ? 3 : 2, head = k >= 10;
                mhc_hc_spec s;
                switch (k) {
                case 0: s = knt_spec(MHC_PRESET_MEGATRON, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                case 1: s = knt_spec(MHC_PRESET_LIGER, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                case 2: s = knt_spec(MHC_PRESET_LUCIDRAINS, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                case 3: s = knt_spec(MHC_PRESET_MHC_CU, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                case 4: s = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_EXP, n, MHC_SK_EPS_CLAMP, MHC_SK_ROW_FIRST,
                                     MHC_EXP_SHIFT_COL_MAX, 0, 0, 0.5); break;
                case 5: s = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_LOG, n, MHC_SK_EPS_THRESHOLD, 0, MHC_EXP_SHIFT_ROW_MAX,
                                     0, 0, 0.5); break;
                case 6: s = knt_spec(MHC_PRESET_DSV4, 0, 0, n, MHC_SK_EPS_ZERO, MHC_SK_ROW_FIRST, 0, 0, 0, 0.5); break;
                case 7: s = knt_spec(MHC_PRESET_DSV4, 0, 0, n, 0, 0, 0, MHC_NORM_EPS_OUTSIDE, 0, -1); break;
                case 8: s = knt_spec(MHC_PRESET_DSV4, 0, 0, n, 0, 0, 0, 0, MHC_NORM_SCOPE_STREAM, -1); break;
                case 9: s = knt_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, 0, n, 0, 0, 0, MHC_NORM_EPS_OUTSIDE, 0, -1); break;
                case 10: s = knt_spec(MHC_PRESET_MEGATRON, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                default: s = knt_spec(MHC_PRESET_LUCIDRAINS, 0, 0, n, 0, 0, 0, 0, 0, -1); break;
                }
                snprintf(label, sizeof label, "knobs: ref vs fast: %s case %d n=%d T=%d C=%d nw=%d", head ? "head" : "pre",
                         k, n, T, C, nwi);
                cnt++;
                hrt_pre_case(&s, head, T, C, nwi, cnt % 4, (uint64_t)(12000 + cnt), label);
            }
}

static void knt_test_threads(void) {
#ifdef _OPENMP
    int p, nt0 = omp_get_max_threads();
    TEST_BEGIN("knobs: the per-token path is bitwise identical for 1, 2 and 3 threads");
    for (p = 0; p < 3; p++) {
        mhc_hc_spec s = knt_spec(p == 0 ? MHC_PRESET_MEGATRON : p == 1 ? MHC_PRESET_LUCIDRAINS : MHC_PRESET_MHC_CU,
                                 0, 0, 4, 0, 0, 0, 0, 0, -1);
        hct_case kc;
        hct_lib l1, l2;
        double L1, L2;
        mhc_ctx ctx;
        size_t T = 200, C = 40, D = 4 * C;
        int nt;
        mhc_ctx_init(&ctx);
        hct_case_make(&kc, &s, (int)T, (int)C, 0, 1, 77 + (uint64_t)p);
        hct_lib_make(&l1, &kc);
        hct_lib_make(&l2, &kc);
        omp_set_num_threads(1);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l1, &L1));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l1));
        for (nt = 2; nt <= 3; nt++) {
            omp_set_num_threads(nt);
            CHECK_OK(hct_lib_forward(&ctx, &kc, &l2, &L2));
            CHECK_OK(hct_lib_backward(&ctx, &kc, &l2));
            CHECK(memcmp(l1.li, l2.li, T * C * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.A, l2.A, T * 16 * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dx, l2.dx, T * D * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dfn, l2.dfn, (size_t)kc.nfn * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dbase, l2.dbase, (size_t)kc.nbase * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dscale, l2.dscale, (size_t)kc.nscale * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dnw, l2.dnw, (size_t)kc.nnw * sizeof(mhc_real)) == 0);
        }
        hct_lib_free(&l1); hct_lib_free(&l2);
        hct_case_free(&kc);
    }
    omp_set_num_threads(nt0);
#endif
}

/* ---- the standalone projection of a spec ---- */

static void knt_test_standalone(void) {
    static const int modes[4] = {MHC_SK_EPS_ADD, MHC_SK_EPS_CLAMP, MHC_SK_EPS_THRESHOLD, MHC_SK_EPS_ZERO};
    int T = 5, n = 4, nn = 16, k, q, e, o, h, pj;
    mhc_ctx ctx;
    mhc_rng rng;
    double worst_f = 0;
#ifdef MHC_DOUBLE
    double worst_g = 0;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 4242);
    TEST_BEGIN("knobs: mhc_hc_proj_forward / _backward");
    for (pj = 0; pj < 3; pj++)
        for (e = 0; e < 4; e++)
            for (o = 0; o < 2; o++)
                for (h = 0; h < (pj == 0 ? 1 : 3); h++) {
                    mhc_projection proj = pj == 0 ? MHC_PROJ_SOFTMAX : pj == 1 ? MHC_PROJ_EXP : MHC_PROJ_LOG;
                    mhc_hc_spec s = knt_spec(MHC_PRESET_PAPER, 0, proj, n, modes[e], o + 1, h + 1, 0, 0,
                                             modes[e] == MHC_SK_EPS_ADD ? 0.01 : 0.3);
                    mhc_real z[5 * 16], out[5 * 16], dz[5 * 16], g[5 * 16];
                    double ref[16], zd[16];
                    for (k = 0; k < T * nn; k++) {
                        z[k] = (mhc_real)(1.5 * mhc_rng_normal(&rng));
                        g[k] = (mhc_real)mhc_rng_normal(&rng);
                        dz[k] = 0;
                    }
                    CHECK_OK(mhc_hc_proj_forward(&ctx, &s, out, z, T));
                    CHECK_OK(mhc_hc_proj_backward(&ctx, &s, dz, g, z, T));
                    for (k = 0; k < T; k++) {
                        for (q = 0; q < nn; q++) zd[q] = (double)z[k * nn + q];
                        hct_proj_knobs(&s, zd, ref);
                        for (q = 0; q < nn; q++) worst_f = fmax(worst_f, fabs((double)out[k * nn + q] - ref[q]));
#ifdef MHC_DOUBLE
                        for (q = 0; q < nn; q++) {   /* central differences of the naive projection */
                            double a[16], b[16], fa = 0, fb = 0, hh = 1e-6, z0 = zd[q], fd;
                            int r;
                            zd[q] = z0 + hh; hct_proj_knobs(&s, zd, a);
                            zd[q] = z0 - hh; hct_proj_knobs(&s, zd, b);
                            zd[q] = z0;
                            for (r = 0; r < nn; r++) { fa += (double)g[k * nn + r] * a[r]; fb += (double)g[k * nn + r] * b[r]; }
                            fd = (fa - fb) / (2 * hh);
                            worst_g = fmax(worst_g, hct_rel((double)dz[k * nn + q], fd, 1e-3));
                        }
#endif
                    }
                }
#ifdef MHC_DOUBLE
    CHECK_MSG(worst_f <= 1e-13, "standalone projection vs naive: %.3g", worst_f);
    CHECK_MSG(worst_g <= 1e-6, "standalone projection backward vs finite differences: %.3g", worst_g);
#else
    CHECK_MSG(worst_f <= 2e-5, "standalone projection vs naive: %.3g", worst_f);
#endif
    /* the default conventions: exactly mhc_sinkhorn_* (the same path) */
    {
        mhc_hc_spec s = knt_spec(MHC_PRESET_DSV4, 0, 0, n, 0, 0, 0, 0, 0, -1);
        mhc_real z[5 * 16], a[5 * 16], b[5 * 16], da[5 * 16], db[5 * 16], g[5 * 16];
        for (k = 0; k < T * nn; k++) { z[k] = (mhc_real)mhc_rng_normal(&rng); g[k] = (mhc_real)mhc_rng_normal(&rng); da[k] = db[k] = 0; }
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, a, z, T));
        CHECK_OK(mhc_sinkhorn_forward(&ctx, s.projection, n, s.iters, s.sinkhorn_eps, b, z, T));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &s, da, g, z, T));
        CHECK_OK(mhc_sinkhorn_backward(&ctx, s.projection, n, s.iters, s.sinkhorn_eps, db, g, z, T));
        CHECK(memcmp(a, b, sizeof a) == 0 && memcmp(da, db, sizeof da) == 0);
        /* row_first is the col_first projection of z^T, transposed back: bit for bit */
        s.sinkhorn_order = MHC_SK_ROW_FIRST;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, a, z, T));
        for (k = 0; k < T; k++)
            for (q = 0; q < nn; q++) b[k * nn + (q % n) * n + q / n] = z[k * nn + q];
        CHECK_OK(mhc_sinkhorn_forward(&ctx, s.projection, n, s.iters, s.sinkhorn_eps, da, b, T));
        for (k = 0; k < T; k++)
            for (q = 0; q < nn; q++) CHECK(a[k * nn + q] == da[k * nn + (q % n) * n + q / n]);
    }
    /* the Kronecker mixture and the orthostochastic projection of a spec: exactly mhc_kron_* and
       mhc_sinkhorn_* (projection ortho, iters = ns_iters); the Sinkhorn knobs do nothing there */
    {
        mhc_hc_spec s = knt_spec(MHC_PRESET_KROMHC, 0, 0, n, 0, 0, 0, 0, 0, -1);
        mhc_real z[5 * 16], a[5 * 16], b[5 * 16], da[5 * 16], db[5 * 16], g[5 * 16];
        int R = s.nres;
        CHECK(s.projection == MHC_PROJ_KRON && s.kron_count == 2 && R == 4);
        for (k = 0; k < T * nn; k++) { z[k] = (mhc_real)mhc_rng_normal(&rng); g[k] = (mhc_real)mhc_rng_normal(&rng); da[k] = db[k] = 0; }
        s.sinkhorn_order = MHC_SK_ROW_FIRST; s.sinkhorn_eps_mode = MHC_SK_EPS_CLAMP;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, a, z, T));
        CHECK_OK(mhc_kron_forward(&ctx, s.kron_count, s.kron_factors, b, z, T));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &s, da, g, z, T));
        CHECK_OK(mhc_kron_backward(&ctx, s.kron_count, s.kron_factors, db, g, z, T));
        CHECK(memcmp(a, b, sizeof(mhc_real) * (size_t)(T * nn)) == 0 && memcmp(da, db, sizeof(mhc_real) * (size_t)(T * R)) == 0);
        s.kron_factors[1] = 3;        /* the product is no longer n */
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, &s, a, z, T), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "kron_factors");
        s = knt_spec(MHC_PRESET_ORTHO, 0, 0, n, 0, 0, 0, 0, 0, -1);
        CHECK(s.projection == MHC_PROJ_ORTHO && s.ns_iters == 5);
        for (k = 0; k < T * nn; k++) da[k] = db[k] = 0;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, a, z, T));
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_ORTHO, n, s.ns_iters, 0.0, b, z, T));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &s, da, g, z, T));
        CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_ORTHO, n, s.ns_iters, 0.0, db, g, z, T));
        CHECK(memcmp(a, b, sizeof(mhc_real) * (size_t)(T * nn)) == 0 && memcmp(da, db, sizeof(mhc_real) * (size_t)(T * nn)) == 0);
        s.ns_iters = 0;
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, &s, a, z, T), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "ns_iters");
    }
    /* errors */
    {
        mhc_hc_spec s = knt_spec(MHC_PRESET_MEGATRON, 0, 0, n, 0, 0, 0, 0, 0, -1);
        mhc_real z[16] = {0}, out[16];
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, NULL, out, z, 1), MHC_ERR_NULL);
        CHECK_RESULT(mhc_hc_proj_backward(&ctx, &s, out, NULL, z, 1), MHC_ERR_NULL);
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, &s, out, z, 0), MHC_ERR_SIZE);
        s.nres = 5;
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, &s, out, z, 1), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.nres = 5");
        s.nres = 16; s.exp_shift = (mhc_exp_shift)-3;
        CHECK_RESULT(mhc_hc_proj_forward(&ctx, &s, out, z, 1), MHC_ERR_VALUE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "exp_shift = -3");
    }
}

/* ---- edges ---- */

/* The documented branch at s == eps exactly: z = 0, n = 2, one iteration of the exp start, eps = 2.
   exp(0) = 1, so the column sums are exactly 2 = eps; clamp divides by s there (the gradient flows
   through s, as torch.clamp's backward), and the row sums after it are 1 < eps (divided by eps):
   out = colnorm(exp z) / 2, dz_ij = 0.25 g_ij - 0.125 (g_0j + g_1j) (the other branch would give
   0.25 g_ij). threshold keeps a line with s == eps as it is (out = exp z, dz = g); zero makes it 0
   (dz = 0). */
static void knt_test_boundary(void) {
    mhc_ctx ctx;
    mhc_real z[4] = {0, 0, 0, 0}, g[4] = {1.0, -2.0, 0.5, 3.0}, out[4], dz[4];
    int mode, k;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("knobs: the eps modes at s == eps");
    for (mode = MHC_SK_EPS_CLAMP; mode <= MHC_SK_EPS_ZERO; mode++) {
        mhc_hc_spec s = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_EXP, 2, mode, 0, 0, 0, 0, 2.0);
        s.iters = 1;
        for (k = 0; k < 4; k++) dz[k] = 0;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, out, z, 1));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &s, dz, g, z, 1));
        for (k = 0; k < 4; k++) {
            double eo = mode == MHC_SK_EPS_CLAMP ? 0.25 : mode == MHC_SK_EPS_THRESHOLD ? 1.0 : 0.0;
            double eg = mode == MHC_SK_EPS_CLAMP ? 0.25 * (double)g[k] - 0.125 * ((double)g[k % 2] + (double)g[2 + k % 2])
                      : mode == MHC_SK_EPS_THRESHOLD ? (double)g[k] : 0.0;
            CHECK_NEAR(out[k], eo, 1e-7);
            CHECK_NEAR(dz[k], eg, 1e-7);
        }
        /* the log domain takes the same branches (log eps against the logsumexp, here log 2) */
        s.projection = MHC_PROJ_LOG;
        for (k = 0; k < 4; k++) dz[k] = 0;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &s, out, z, 1));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &s, dz, g, z, 1));
        for (k = 0; k < 4; k++) {
            double eo = mode == MHC_SK_EPS_CLAMP ? 0.25 : mode == MHC_SK_EPS_THRESHOLD ? 1.0 : 0.0;
            double eg = mode == MHC_SK_EPS_CLAMP ? 0.25 * (double)g[k] - 0.125 * ((double)g[k % 2] + (double)g[2 + k % 2])
                      : mode == MHC_SK_EPS_THRESHOLD ? (double)g[k] : 0.0;
            CHECK_NEAR(out[k], eo, 1e-7);
            CHECK_NEAR(dz[k], eg, 1e-7);
        }
    }
}

/* The exp start at logits ~715: exp overflows (above log(DBL_MAX) ~ 709.78) and the unshifted
   start gives NaN; with the shift every value is finite, and with eps = 0 a column shift before a
   column step (a row shift before a row step) changes nothing, so the result equals the log
   domain's (which never takes exp of a logit). */
static void knt_test_edge_exp_shift(void) {
    int n = 4, nn = 16, q, bad = 0;
    mhc_real z[16], a[16], b[16], da[16], db[16], g[16];
    mhc_rng rng;
    mhc_ctx ctx;
    double worst = 0, worstg = 0, rs;
    mhc_hc_spec se, sl;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 715);
    TEST_BEGIN("knobs: edge: exp start at logits ~715 with and without the shift");
    for (q = 0; q < nn; q++) {
        z[q] = (mhc_real)(715.0 + 3.0 * mhc_rng_normal(&rng));
        g[q] = (mhc_real)mhc_rng_normal(&rng);
    }
    /* float: 715 overflows exp in double as well (the projection runs in double) */
    se = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_EXP, n, 0, 0, MHC_EXP_SHIFT_NONE, 0, 0, -1);
    CHECK_OK(mhc_hc_proj_forward(&ctx, &se, a, z, 1));
    for (q = 0; q < nn; q++) if (hct_finite((double)a[q])) bad++;
    CHECK_MSG(bad == 0, "the unshifted exp start at ~715 gave %d finite values of 16 (expected NaN: exp overflows)", bad);
    for (q = 0; q < 2; q++) {
        int k;
        se = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_EXP, n, 0, q ? MHC_SK_ROW_FIRST : MHC_SK_COL_FIRST,
                      q ? MHC_EXP_SHIFT_ROW_MAX : MHC_EXP_SHIFT_COL_MAX, 0, 0, -1);
        sl = knt_spec(MHC_PRESET_PAPER, 0, MHC_PROJ_LOG, n, 0, q ? MHC_SK_ROW_FIRST : MHC_SK_COL_FIRST, 0, 0, 0, -1);
        for (k = 0; k < nn; k++) da[k] = db[k] = 0;
        CHECK_OK(mhc_hc_proj_forward(&ctx, &se, a, z, 1));
        CHECK_OK(mhc_hc_proj_forward(&ctx, &sl, b, z, 1));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &se, da, g, z, 1));
        CHECK_OK(mhc_hc_proj_backward(&ctx, &sl, db, g, z, 1));
        for (k = 0; k < nn; k++) {
            CHECK(hct_finite((double)a[k]) && hct_finite((double)da[k]));
            worst = fmax(worst, fabs((double)a[k] - (double)b[k]));
            worstg = fmax(worstg, fabs((double)da[k] - (double)db[k]));
        }
        for (k = 0; k < n; k++) {      /* the last step's marginal is exact */
            int j;
            rs = 0;
            for (j = 0; j < n; j++) rs += q ? (double)a[j * n + k] : (double)a[k * n + j];
            CHECK_NEAR(rs, 1.0, 1e-5);
        }
    }
#ifdef MHC_DOUBLE
    CHECK_MSG(worst <= 1e-12 && worstg <= 1e-10, "shifted exp start vs log domain at ~715: %.3g, grad %.3g", worst, worstg);
#else
    CHECK_MSG(worst <= 1e-5 && worstg <= 1e-4, "shifted exp start vs log domain at ~715: %.3g, grad %.3g", worst, worstg);
#endif
}

/* Central differences of the naive reference at h = 1e-5 and h/2, extrapolated for an error
   linear in h (what a cusp leaves), compared as hct_fd_ref does. */
static double knt_fd_small(hct_case *k, double *v, int count, const mhc_real *g) {
    int e;
    double h = 1e-5, worst, *fd = hct_alloc((size_t)count);
    for (e = 0; e < count; e++) {
        double v0 = v[e], a, b;
        v[e] = v0 + h; a = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h; a -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 + h / 2; b = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h / 2; b -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0;
        fd[e] = 2.0 * (b / h) - a / (2 * h);     /* removes the O(h) term of the cusp (and keeps O(h^2)) */
    }
    worst = hct_fd_worst(g, fd, count);
    free(fd);
    return worst;
}

/* An all-zero token under the outside norm: rstd = 1/norm_eps, its derivative is taken as 0 (the
   norm's subgradient at 0); the central differences of the naive reference at that point agree
   (the norm of +h and -h is the same). Both scopes, layer and head. */
static void knt_test_zero_token(void) {
    int scope, head;
    for (scope = 0; scope < 2; scope++)
        for (head = 0; head < 2; head++) {
            static char label[128];
            mhc_hc_spec s = knt_spec(MHC_PRESET_MEGATRON, 0, 0, 3, 0, 0, 0, 0, scope ? MHC_NORM_SCOPE_STREAM : 0, -1);
            hct_case k;
            hct_lib l;
            mhc_ctx ctx;
            double L, e, g, tol;
            int T = 2, C = 4, D = 12, j;
            s.norm_eps = 0.5;
            snprintf(label, sizeof label, "knobs: an all-zero token, norm outside, scope %s, %s", scope ? "stream" : "flat",
                     head ? "head" : "layer");
            TEST_BEGIN(label);
            mhc_ctx_init(&ctx);
            hct_case_make(&k, &s, T, C, head, 1, 31 + (uint64_t)scope);
            for (j = 0; j < D; j++) k.x[j] = 0.0;                     /* token 0 */
            if (scope) for (j = 0; j < C; j++) k.x[D + C + j] = 0.0;   /* and one stream of token 1 */
            hct_lib_make(&l, &k);
            CHECK_OK(hct_lib_forward(&ctx, &k, &l, &L));
            CHECK_NEAR(L, hct_ref_loss(&k, 0, 0, 0, 0, 0), 1e-4 * (1 + fabs(L)));
            CHECK_OK(hct_lib_backward(&ctx, &k, &l));
            for (j = 0; j < T * D; j++) CHECK(hct_finite((double)l.dx[j]));
            /* at the cusp the central difference errs by O(h), not O(h^2): rstd(+-h e_j) =
               1/(h/sqrt(L) + norm_eps) (knt_fd_small extrapolates that away) */
            e = knt_fd_small(&k, k.x, T * D, l.dx);
            g = hct_fd_ref(&k, k.fn, k.nfn, l.dfn);
#ifdef MHC_DOUBLE
            tol = 1e-6;
#else
            tol = 2e-3;
#endif
            CHECK_MSG(e <= tol && g <= tol, "%s: d_x / d_fn vs finite differences: %.3g / %.3g", label, e, g);
            hct_lib_free(&l);
            hct_case_free(&k);
        }
}

/* The tape op (mhc_hc_pre, mhc_hc_head) on the per-token path: the same gradients as the
   raw-array functions. */
static void knt_test_tape(void) {
    mhc_ctx ctx;
    mhc_arena arena;
    mhc_tape tp;
    mhc_params store;
    int ids[4], hids[4], T = 5, C = 6, n = 3, D = 18, p;
    TEST_BEGIN("knobs: tape ops on the per-token path");
    for (p = 0; p < 2; p++) {
        mhc_hc_spec s = knt_spec(p ? MHC_PRESET_LUCIDRAINS : MHC_PRESET_MEGATRON, 0, 0, n, 0, 0, 0, 0, 0, -1);
        mhc_hc_params w, wh;
        mhc_hc_pre_out po;
        mhc_tensor xt, *x = &xt, *y, *hs, *loss;
        mhc_real *xd = hct_real(NULL, (size_t)T * D), *xg = hct_real(NULL, (size_t)T * D), *r;
        mhc_rng rng;
        mhc_real *gx, *gfn, *gsc, *gb, *gnw, *ghfn, *ghsc, *ghb, *dummy;
        int shp[3] = {T, n, C};
        size_t q;
        double e = 0;
        mhc_ctx_init(&ctx);
        CHECK_OK(mhc_arena_init(&ctx, &arena, 1 << 16));
        mhc_tape_init(&ctx, &tp, &arena);
        mhc_params_init(&ctx, &store);
        CHECK_OK(mhc_hc_params_declare(&store, &s, C, 0, 1, "l", ids));
        CHECK_OK(mhc_hc_params_declare(&store, &s, C, 1, 0, "h", hids));
        CHECK_OK(mhc_params_alloc(&store));
        CHECK_OK(mhc_hc_params_get(&store, ids, &w));
        CHECK_OK(mhc_hc_params_get(&store, hids, &wh));
        mhc_rng_seed(&rng, 5 + (uint64_t)p);
        CHECK_OK(mhc_hc_params_init(&ctx, &s, 0, 0, &w, &rng, 0.3));
        CHECK_OK(mhc_hc_params_init(&ctx, &s, 1, 0, &wh, &rng, 0.3));
        for (q = 0; q < w.scale->size; q++) w.scale->data[q] = (mhc_real)(0.5 + 0.2 * (double)q);
        for (q = 0; q < w.base->size; q++) w.base->data[q] = (mhc_real)(0.3 * mhc_rng_normal(&rng));
        for (q = 0; q < w.norm_weight->size; q++) w.norm_weight->data[q] = (mhc_real)(1 + 0.2 * mhc_rng_normal(&rng));
        wh.scale->data[0] = (mhc_real)0.7;
        CHECK_OK(mhc_tensor_wrap(&ctx, x, xd, xg, 3, shp));
        mhc_rng_fill_normal(&rng, x->data, x->size, 0.0, 1.0);
        r = hct_real(NULL, (size_t)T * C);
        for (q = 0; q < (size_t)T * C; q++) r[q] = (mhc_real)(0.5 + 0.1 * (double)(q % 5));
        mhc_params_zero_grad(&store);
        CHECK_OK(mhc_hc_pre(&tp, &s, x, &w, &po));
        y = mhc_hc_post(&tp, x, po.h_res, po.h_post, po.layer_input);
        hs = mhc_hc_head(&tp, &s, y, &wh);
        loss = hs ? mhc_dot_const(&tp, hs, r) : NULL;
        CHECK(y != NULL && hs != NULL && loss != NULL);
        if (!loss) { free(xd); free(xg); free(r); mhc_params_free(&store); mhc_arena_free(&arena); continue; }
        CHECK_OK(mhc_tape_backward(&tp, loss));
        /* the same chain with the raw-array functions */
        gx = hct_real(NULL, (size_t)T * D); gfn = hct_real(NULL, w.fn->size); gsc = hct_real(NULL, 3);
        gb = hct_real(NULL, w.base->size); gnw = hct_real(NULL, w.norm_weight->size); ghfn = hct_real(NULL, wh.fn->size);
        ghsc = hct_real(NULL, 1); ghb = hct_real(NULL, wh.base->size); dummy = hct_real(NULL, (size_t)T * D);
        {
            mhc_real *dy = hct_real(NULL, (size_t)T * D), *dA = hct_real(NULL, (size_t)T * n * n);
            mhc_real *dhp = hct_real(NULL, (size_t)T * n), *dli = hct_real(NULL, (size_t)T * C);
            mhc_real *gh = hct_real(NULL, hs->size);
            for (q = 0; q < hs->size; q++) gh[q] = (mhc_real)(0.5 + 0.1 * (double)(q % 5));
            CHECK_OK(mhc_hc_head_backward(&ctx, &s, dy, ghfn, ghsc, ghb, NULL, gh, NULL, y->data, wh.fn->data,
                                          wh.scale->data, wh.base->data, NULL, T, C));
            mhc_k_hc_post_backward(gx, dA, dhp, dli, dy, x->data, po.h_res->data, po.h_post->data, po.layer_input->data,
                                   T, n, C);
            CHECK_OK(mhc_hc_pre_backward(&ctx, &s, gx, gfn, gsc, gb, gnw, dli, NULL, dhp, dA, x->data, w.fn->data,
                                         w.scale->data, w.base->data, w.norm_weight->data, T, C));
            free(dy); free(dA); free(dhp); free(dli); free(gh);
        }
        e = fmax(e, hrt_rel(x->grad, gx, (size_t)T * D));
        e = fmax(e, hrt_rel(w.fn->grad, gfn, w.fn->size));
        e = fmax(e, hrt_rel(w.scale->grad, gsc, 3));
        e = fmax(e, hrt_rel(w.base->grad, gb, w.base->size));
        e = fmax(e, hrt_rel(w.norm_weight->grad, gnw, w.norm_weight->size));
        e = fmax(e, hrt_rel(wh.fn->grad, ghfn, wh.fn->size));
        e = fmax(e, hrt_rel(wh.base->grad, ghb, wh.base->size));
        e = fmax(e, hrt_rel(wh.scale->grad, ghsc, 1));
        CHECK_MSG(e <= 1e-6, "tape vs raw-array gradients (%s): %.3g", mhc_hc_preset_name(s.preset), e);
        free(gx); free(gfn); free(gsc); free(gb); free(gnw); free(ghfn); free(ghsc); free(ghb); free(dummy);
        free(xd); free(xg); free(r);
        mhc_tape_free(&tp);
        mhc_params_free(&store);
        mhc_arena_free(&arena);
    }
}

void TP(test_knobs)(void); void TP(test_knobs)(void) {
    TP(knt_worst_fwd) = TP(knt_worst_grad) = 0;
    TP(knt_cases) = 0;
    knt_test_config();
    knt_test_case_txt();
    knt_test_sinkhorn_knobs();
    knt_test_norm_knobs();
    knt_test_presets();
    knt_test_fast_vs_ref();
    knt_test_threads();
    knt_test_standalone();
    knt_test_boundary();
    knt_test_edge_exp_shift();
    knt_test_zero_token();
    knt_test_tape();
    printf("  [%s] knobs: %d configurations (fast path and references), worst forward diff from the naive reference "
           "%.3g, worst gradient rel err vs finite differences %.3g\n", TEST_PREC, TP(knt_cases), TP(knt_worst_fwd),
           TP(knt_worst_grad));
}
