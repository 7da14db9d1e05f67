/* tests/test_ckpt.c - checkpoints: round trip (bit-identical, and training continues
 * bit-identically), every truncation, byte flips at every position (with and without a
 * recomputed checksum), each structural error behind a valid checksum, precision/version/magic
 * refusals, parameter-store mismatches, all-or-nothing loading, and atomic saving under real
 * (missing directory, directory in the way, RLIMIT_FSIZE) and simulated (test hook) failures,
 * with and without a previous checkpoint; a writer process killed with SIGKILL mid-write (POSIX);
 * non-finite values (and a negative v) refused on save and on load, naming the tensor. */

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#define CK_POSIX 1
#else
#define CK_POSIX 0
#endif
#if defined(__linux__)
#include <signal.h>
#include <sys/resource.h>
#define CK_RLIMIT 1
#else
#define CK_RLIMIT 0
#endif

/* An independent FNV-1a 64 for re-sealing edited buffers. */
static uint64_t TP(ck_fnv)(const unsigned char *b, size_t n) {
    uint64_t h = 14695981039346656037ull;
    size_t i;
    for (i = 0; i < n; i++) h = (h ^ b[i]) * 1099511628211ull;
    return h;
}
static void TP(ck_reseal)(unsigned char *b, size_t n) {
    uint64_t h = TP(ck_fnv)(b, n - 8);
    int i;
    for (i = 0; i < 8; i++) b[n - 8 + i] = (unsigned char)(h >> (8 * i));
}
static void TP(ck_put32)(unsigned char *b, uint32_t x) {
    int i;
    for (i = 0; i < 4; i++) b[i] = (unsigned char)(x >> (8 * i));
}
static void TP(ck_put64)(unsigned char *b, uint64_t x) {
    int i;
    for (i = 0; i < 8; i++) b[i] = (unsigned char)(x >> (8 * i));
}

/* The test model: variant 0 is the reference; others differ in one way (mismatch tests). */
static void TP(ck_store)(mhc_ctx *ctx, mhc_params *p, int variant) {
    int s0[2] = {5, 4}, s1[1] = {4}, s1b[1] = {5}, s2[3] = {2, 3, 4}, s3[1] = {2};
    mhc_params_init(ctx, p);
    mhc_params_add(p, "embed", 2, s0, MHC_PARAM_DECAY);
    mhc_params_add(p, variant == 2 ? "blocks.0.nrm" : "blocks.0.norm", 1, variant == 1 ? s1b : s1,
                   variant == 5 ? MHC_PARAM_DECAY : MHC_PARAM_NO_DECAY);
    if (variant != 4) mhc_params_add(p, "blocks.0.fn", 3, s2, MHC_PARAM_DECAY);
    if (variant == 3) mhc_params_add(p, "extra", 1, s3, MHC_PARAM_NO_DECAY);
    mhc_params_alloc(p);
}

/* Fill data, m, v with a recognisable pattern (outputs must stay like this after a refusal). */
static void TP(ck_sentinel)(mhc_params *p, mhc_trainer *tr, mhc_rng *rng) {
    size_t i;
    for (i = 0; i < p->size; i++) {
        p->data[i] = (mhc_real)(1000 + i);
        p->m[i] = (mhc_real)(2000 + i);
        p->v[i] = (mhc_real)(3000 + i);
    }
    memset(tr, 0x5A, sizeof *tr);
    rng->s[0] = rng->s[1] = rng->s[2] = rng->s[3] = 0x1234;
}
static int TP(ck_is_sentinel)(const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    size_t i;
    const unsigned char *b = (const unsigned char *)tr;
    for (i = 0; i < p->size; i++)
        if (p->data[i] != (mhc_real)(1000 + i) || p->m[i] != (mhc_real)(2000 + i) || p->v[i] != (mhc_real)(3000 + i))
            return 0;
    for (i = 0; i < sizeof *tr; i++)
        if (b[i] != 0x5A) return 0;
    return rng->s[0] == 0x1234 && rng->s[1] == 0x1234 && rng->s[2] == 0x1234 && rng->s[3] == 0x1234;
}

static int TP(ck_same_trainer)(const mhc_trainer *a, const mhc_trainer *b) {
    const mhc_adamw_config *x = &a->cfg, *y = &b->cfg;
    return a->step == b->step && a->ready == b->ready && a->last_grad_norm == b->last_grad_norm &&
           a->last_clip_scale == b->last_clip_scale && a->last_lr == b->last_lr &&
           x->schedule.kind == y->schedule.kind && x->schedule.lr == y->schedule.lr &&
           x->schedule.warmup == y->schedule.warmup && x->schedule.total == y->schedule.total &&
           x->schedule.min_lr_frac == y->schedule.min_lr_frac && x->schedule.decay_at[0] == y->schedule.decay_at[0] &&
           x->schedule.decay_at[1] == y->schedule.decay_at[1] && x->schedule.decay_mult[0] == y->schedule.decay_mult[0] &&
           x->schedule.decay_mult[1] == y->schedule.decay_mult[1] && x->beta1 == y->beta1 && x->beta2 == y->beta2 &&
           x->eps == y->eps && x->weight_decay == y->weight_decay && x->grad_clip == y->grad_clip;
}

static int TP(ck_same_params)(const mhc_params *a, const mhc_params *b) {
    size_t n = a->size * sizeof(mhc_real);
    return a->size == b->size && memcmp(a->data, b->data, n) == 0 && memcmp(a->m, b->m, n) == 0 &&
           memcmp(a->v, b->v, n) == 0;
}

/* A trained state: random parameters, 3 trainer steps with random gradients, an advanced rng. */
static void TP(ck_train)(mhc_ctx *ctx, mhc_params *p, mhc_trainer *tr, mhc_rng *rng, int steps, uint64_t seed) {
    mhc_rng g;
    int s;
    mhc_rng_seed(&g, seed);
    for (s = 0; s < steps; s++) {
        mhc_rng_fill_normal(&g, p->grad, p->size, 0.0, 0.5);
        mhc_trainer_step(tr, p);
        (void)mhc_rng_u64(rng);
    }
    (void)ctx;
}

static void TP(ck_path)(char *buf, size_t cap, const char *name) {
    const char *dir = getenv("TMPDIR");
    unsigned long pid = 0;
#if CK_POSIX
    pid = (unsigned long)getpid();
#endif
    snprintf(buf, cap, "%s/mhc_test_%s_%lu_%s", dir && dir[0] ? dir : "/tmp", TEST_PREC, pid, name);
}

static int TP(ck_exists)(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f) fclose(f);
    return f != NULL;
}

static const char TP(ck_config)[] = "gpt: n_layer=2 n_embd=4 n_streams=4 vocab=5";

/* Serialise the reference state (variant 0, 3 steps) into a malloc'd buffer. */
static unsigned char *TP(ck_buffer)(mhc_ctx *ctx, size_t *len, int with_tr, int with_rng) {
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    mhc_adamw_config cfg;
    unsigned char *buf;
    memset(&cfg, 0, sizeof cfg);
    cfg.schedule.kind = MHC_LR_STEP;
    cfg.schedule.warmup = 2;
    cfg.schedule.total = 10;
    cfg.eps = 1e-20;
    TP(ck_store)(ctx, &p, 0);
    mhc_rng_seed(&rng, 42);
    mhc_rng_fill_normal(&rng, p.data, p.size, 0.0, 1.0);
    mhc_trainer_init(ctx, &tr, &cfg);
    TP(ck_train)(ctx, &p, &tr, &rng, 3, 9);
    mhc_checkpoint_serialize(ctx, NULL, 0, len, TP(ck_config), sizeof TP(ck_config), &p, with_tr ? &tr : NULL,
                             with_rng ? &rng : NULL);
    buf = (unsigned char *)malloc(*len);
    mhc_checkpoint_serialize(ctx, buf, *len, len, TP(ck_config), sizeof TP(ck_config), &p, with_tr ? &tr : NULL,
                             with_rng ? &rng : NULL);
    mhc_params_free(&p);
    return buf;
}

static void TP(ck_test_roundtrip)(void) {
    mhc_ctx ctx;
    mhc_params a, b;
    mhc_trainer ta, tb;
    mhc_rng ra, rb;
    mhc_adamw_config cfg;
    char path[512], cfgbuf[128];
    size_t cfglen = 0;
    mhc_ctx_init(&ctx);
    TP(ck_path)(path, sizeof path, "roundtrip.ckpt");

    TEST_BEGIN("checkpoint: round trip through a file is bit-identical");
    memset(&cfg, 0, sizeof cfg);
    cfg.schedule.kind = MHC_LR_COSINE;
    cfg.schedule.warmup = 2;
    cfg.schedule.total = 20;
    cfg.schedule.min_lr_frac = 0.05;
    cfg.eps = 1e-20;
    cfg.weight_decay = MHC_ZERO;
    TP(ck_store)(&ctx, &a, 0);
    mhc_rng_seed(&ra, 1234);
    mhc_rng_fill_normal(&ra, a.data, a.size, 0.0, 1.0);
    CHECK_OK(mhc_trainer_init(&ctx, &ta, &cfg));
    TP(ck_train)(&ctx, &a, &ta, &ra, 3, 77);
    CHECK(ta.step == 3);
    CHECK_OK(mhc_checkpoint_save(&ctx, path, TP(ck_config), sizeof TP(ck_config), &a, &ta, &ra));
    TP(ck_store)(&ctx, &b, 0);
    TP(ck_sentinel)(&b, &tb, &rb);
    CHECK_OK(mhc_checkpoint_load(&ctx, path, cfgbuf, sizeof cfgbuf, &cfglen, &b, &tb, &rb));
    CHECK(cfglen == sizeof TP(ck_config) && memcmp(cfgbuf, TP(ck_config), cfglen) == 0);
    CHECK(TP(ck_same_params)(&a, &b));
    CHECK(TP(ck_same_trainer)(&ta, &tb));
    CHECK(tb.ctx == &ctx && tb.ready == 1);
    CHECK(memcmp(ra.s, rb.s, sizeof ra.s) == 0);

    TEST_BEGIN("checkpoint: training continues bit-identically after a load");
    TP(ck_train)(&ctx, &a, &ta, &ra, 4, 555);
    TP(ck_train)(&ctx, &b, &tb, &rb, 4, 555);
    CHECK(ta.step == 7 && tb.step == 7);
    CHECK(TP(ck_same_params)(&a, &b));
    CHECK(TP(ck_same_trainer)(&ta, &tb));
    CHECK(mhc_rng_u64(&ra) == mhc_rng_u64(&rb));

    TEST_BEGIN("checkpoint: config-only read, optional trainer and rng");
    cfglen = 0;
    memset(cfgbuf, 0, sizeof cfgbuf);
    CHECK_OK(mhc_checkpoint_load(&ctx, path, cfgbuf, sizeof cfgbuf, &cfglen, NULL, NULL, NULL));
    CHECK(cfglen == sizeof TP(ck_config) && strcmp(cfgbuf, TP(ck_config)) == 0);
    cfglen = 0;
    CHECK_OK(mhc_checkpoint_load(&ctx, path, NULL, 0, &cfglen, NULL, NULL, NULL));   /* size query */
    CHECK(cfglen == sizeof TP(ck_config));
    TP(ck_sentinel)(&b, &tb, &rb);
    CHECK_RESULT(mhc_checkpoint_load(&ctx, path, cfgbuf, 4, &cfglen, &b, &tb, &rb), MHC_ERR_SIZE);
    {
        char want[96];
        snprintf(want, sizeof want, "the config blob has %d bytes but the buffer holds 4", (int)sizeof TP(ck_config));
        CHECK_STR_HAS(mhc_ctx_message(&ctx), want);
    }
    CHECK(cfglen == sizeof TP(ck_config));
    CHECK(TP(ck_is_sentinel)(&b, &tb, &rb));
    CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 8, &cfglen, &b, &tb, &rb), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "config is NULL but config_cap is 8");
    CHECK(TP(ck_is_sentinel)(&b, &tb, &rb));
    /* saved without trainer and rng, with an empty config */
    CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &a, NULL, NULL));
    CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &b, &tb, NULL), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "holds no trainer state");
    CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &b, NULL, &rb), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "holds no rng state");
    CHECK(TP(ck_is_sentinel)(&b, &tb, &rb));
    cfglen = 99;
    CHECK_OK(mhc_checkpoint_load(&ctx, path, cfgbuf, sizeof cfgbuf, &cfglen, &b, NULL, NULL));
    CHECK(cfglen == 0);
    CHECK(TP(ck_same_params)(&a, &b));

    TEST_BEGIN("checkpoint: a large checkpoint (several read chunks) round-trips");
    {
        mhc_params big, big2;
        mhc_trainer tbig;
        int sh[2] = {150, 211};
        mhc_params_init(&ctx, &big);
        mhc_params_add(&big, "w", 2, sh, MHC_PARAM_DECAY);
        mhc_params_alloc(&big);
        mhc_rng_fill_normal(&ra, big.data, big.size, 0.0, 1.0);
        mhc_rng_fill_normal(&ra, big.m, big.size, 0.0, 1.0);
        mhc_rng_fill_normal(&ra, big.v, big.size, 1.0, 0.1);
        CHECK_OK(mhc_trainer_init(&ctx, &tbig, NULL));
        CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &big, &tbig, NULL));
        mhc_params_init(&ctx, &big2);
        mhc_params_add(&big2, "w", 2, sh, MHC_PARAM_DECAY);
        mhc_params_alloc(&big2);
        CHECK_OK(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &big2, &tb, NULL));
        CHECK(TP(ck_same_params)(&big, &big2));
        CHECK(big.size * 3 * sizeof(mhc_real) > 3 * 65536);
        mhc_params_free(&big);
        mhc_params_free(&big2);
    }

    TEST_BEGIN("checkpoint: argument and state errors");
    CHECK_RESULT(mhc_checkpoint_save(&ctx, NULL, NULL, 0, &a, NULL, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "path is NULL");
    CHECK_RESULT(mhc_checkpoint_save(&ctx, "", NULL, 0, &a, NULL, NULL), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "path is empty");
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, NULL, NULL, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "params is NULL");
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 5, &a, NULL, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "config is NULL but config_bytes is 5");
    memset(&tb, 0, sizeof tb);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &a, &tb, NULL), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "trainer is not initialised");
    tb = ta;
    tb.cfg.beta2 = 1.0;
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &a, &tb, NULL), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "beta2 is 1");
    memset(&rb, 0, sizeof rb);
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &a, NULL, &rb), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "rng state is all zero");
    {
        mhc_params un;
        int sh[1] = {3};
        size_t len = 0;
        unsigned char small[16];
        mhc_params_init(&ctx, &un);
        mhc_params_add(&un, "x", 1, sh, 0);
        CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &un, NULL, NULL), MHC_ERR_STATE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "not allocated");
        CHECK_RESULT(mhc_checkpoint_load(&ctx, path, NULL, 0, NULL, &un, NULL, NULL), MHC_ERR_STATE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "not allocated");
        mhc_params_free(&un);
        CHECK_RESULT(mhc_checkpoint_serialize(&ctx, small, sizeof small, &len, NULL, 0, &a, NULL, NULL), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the buffer holds 16 bytes");
        CHECK(len == 40 + 4 + (4 + 5 + 4 + 8 + 4) + (4 + 13 + 4 + 4 + 4) + (4 + 11 + 4 + 12 + 4) + 8 +
                         3 * a.size * sizeof(mhc_real) + 8);
        CHECK_RESULT(mhc_checkpoint_serialize(&ctx, NULL, 0, NULL, NULL, 0, &a, NULL, NULL), MHC_ERR_NULL);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, NULL, 10, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "buffer is NULL");
        CHECK_RESULT(mhc_checkpoint_load(&ctx, NULL, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_NULL);
    }
    TP(ck_path)(cfgbuf, sizeof cfgbuf, "does_not_exist.ckpt");
    CHECK_RESULT(mhc_checkpoint_load(&ctx, cfgbuf, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "cannot open");
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "does_not_exist.ckpt");
    remove(path);
    mhc_params_free(&a);
    mhc_params_free(&b);
}

static void TP(ck_test_corruption)(void) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    size_t len, i, bad = 0, first_bad = 0, nok = 0;
    unsigned char *good, *buf;
    char cfg[64];
    mhc_ctx_init(&ctx);
    good = TP(ck_buffer)(&ctx, &len, 1, 1);
    buf = (unsigned char *)malloc(len + 16);
    TP(ck_store)(&ctx, &p, 0);

    TEST_BEGIN("checkpoint: the reference buffer parses");
    TP(ck_sentinel)(&p, &tr, &rng);
    CHECK_OK(mhc_checkpoint_parse(&ctx, good, len, cfg, sizeof cfg, NULL, &p, &tr, &rng));
    CHECK(tr.step == 3 && tr.cfg.eps == 1e-20 && tr.cfg.schedule.kind == MHC_LR_STEP);

    TEST_BEGIN("checkpoint: every truncation is refused and changes nothing");
    for (i = 0; i < len; i++) {
        mhc_result r;
        TP(ck_sentinel)(&p, &tr, &rng);
        memcpy(buf, good, i);
        r = mhc_checkpoint_parse(&ctx, buf, i, cfg, sizeof cfg, NULL, &p, &tr, &rng);
        if (r != MHC_ERR_FORMAT || !strstr(mhc_ctx_message(&ctx), "truncated") || !TP(ck_is_sentinel)(&p, &tr, &rng)) {
            if (!bad++) first_bad = i;
        }
    }
    CHECK_MSG(bad == 0, "%zu of %zu truncations misbehaved, the first at length %zu", bad, len, first_bad);

    TEST_BEGIN("checkpoint: a flipped byte anywhere is refused and changes nothing");
    {
        static const unsigned char masks[3] = {0x01, 0x80, 0xFF};
        int k;
        bad = 0;
        for (k = 0; k < 3; k++)
            for (i = 0; i < len; i++) {
                mhc_result r;
                memcpy(buf, good, len);
                buf[i] ^= masks[k];
                TP(ck_sentinel)(&p, &tr, &rng);
                r = mhc_checkpoint_parse(&ctx, buf, len, cfg, sizeof cfg, NULL, &p, &tr, &rng);
                if (r != MHC_ERR_FORMAT || !TP(ck_is_sentinel)(&p, &tr, &rng)) {
                    if (!bad++) first_bad = i;
                }
            }
        CHECK_MSG(bad == 0, "%zu flips misbehaved, the first at byte %zu", bad, first_bad);
        /* a flip in the data region is caught by the checksum, and the message says so */
        memcpy(buf, good, len);
        buf[len - 8 - 32 - 140 - 1] ^= 0x10;
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, &p, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "checksum mismatch");
        memcpy(buf, good, len);
        buf[len - 1] ^= 0x01;   /* the checksum itself */
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "checksum mismatch");
    }

    TEST_BEGIN("checkpoint: flips behind a valid checksum either fail cleanly or load exactly the file");
    {
        static const unsigned char masks[2] = {0x01, 0xFF};
        unsigned char *again = (unsigned char *)malloc(len);
        size_t wrong = 0;
        int k;
        bad = 0;
        for (k = 0; k < 2; k++)
            for (i = 0; i < len - 8; i++) {
                mhc_result r;
                size_t cl = 0, l2 = 0;
                memcpy(buf, good, len);
                buf[i] ^= masks[k];
                TP(ck_reseal)(buf, len);
                TP(ck_sentinel)(&p, &tr, &rng);
                r = mhc_checkpoint_parse(&ctx, buf, len, cfg, sizeof cfg, &cl, &p, &tr, &rng);
                if (r != MHC_OK) {
                    if (!TP(ck_is_sentinel)(&p, &tr, &rng)) { if (!bad++) first_bad = i; }
                    continue;
                }
                nok++;
                /* success: what was loaded serialises back to exactly the edited file */
                if (mhc_checkpoint_serialize(&ctx, again, len, &l2, cfg, cl, &p, &tr, &rng) != MHC_OK || l2 != len ||
                    memcmp(again, buf, len) != 0)
                    wrong++;
            }
        CHECK_MSG(bad == 0, "%zu refused edits changed the outputs, the first at byte %zu", bad, first_bad);
        CHECK_MSG(wrong == 0, "%zu accepted edits loaded something other than the file", wrong);
        CHECK(nok > 0);   /* edits of data, moments, config and trainer numbers are valid files */
        free(again);
    }

    TEST_BEGIN("checkpoint: structural errors behind a valid checksum name the problem");
    {
        /* offsets of the reference layout: config at 40, then the count, then the table */
        const size_t tab = 40 + sizeof TP(ck_config) + 4;
        const size_t t1 = tab + 4 + 5 + 4 + 8 + 4;            /* "blocks.0.norm" entry */
        const size_t nfield = t1 + (4 + 13 + 4 + 4 + 4) + (4 + 11 + 4 + 12 + 4);
        const size_t trn = len - 8 - 32 - 140, rngo = len - 8 - 32;
        struct { size_t off; int width; uint64_t value; mhc_result code; const char *msg; } ed[] = {
            {0, 1, 'X', MHC_ERR_FORMAT, "not an mhc checkpoint"},
            {8, 4, 2, MHC_ERR_FORMAT, "format version 2; this build reads version 1"},
            {12, 4, 3, MHC_ERR_FORMAT, "real size 3 bytes"},
#ifdef MHC_DOUBLE
            {12, 4, 4, MHC_ERR_FORMAT, "stores float32 reals but this build uses float64"},
#else
            {12, 4, 8, MHC_ERR_FORMAT, "stores float64 reals but this build uses float32"},
#endif
            {24, 4, 7, MHC_ERR_FORMAT, "unknown flags 0x7"},
            {28, 4, 1, MHC_ERR_FORMAT, "reserved"},
            {32, 8, UINT64_MAX, MHC_ERR_FORMAT, "config blob claims"},
            {32, 8, 100000, MHC_ERR_FORMAT, "config blob claims 100000 bytes"},
            {tab - 4, 4, 0, MHC_ERR_FORMAT, "tensor count is 0"},
            {tab - 4, 4, UINT32_MAX, MHC_ERR_FORMAT, "name length"},
            {tab - 4, 4, 2, MHC_ERR_SHAPE, "the parameter store has tensor 2 'blocks.0.fn' that the file lacks"},
            {tab, 4, 0, MHC_ERR_FORMAT, "tensor 0: name length 0"},
            {tab, 4, 48, MHC_ERR_FORMAT, "tensor 0: name length 48"},
            {tab + 4 + 2, 1, 0, MHC_ERR_FORMAT, "tensor 0: the name contains a NUL byte"},
            {tab + 4 + 2, 1, 'X', MHC_ERR_SHAPE, "tensor 0 is 'emXed' [5,4] in the file but 'embed' [5,4]"},
            {tab + 9, 4, 5, MHC_ERR_FORMAT, "tensor 'embed': 5 dimensions"},
            {tab + 9, 4, 0, MHC_ERR_FORMAT, "tensor 'embed': 0 dimensions"},
            {tab + 13, 4, 0, MHC_ERR_FORMAT, "tensor 'embed': dimension 0 has size 0"},
            {tab + 13, 4, 0x80000000u, MHC_ERR_FORMAT, "dimension 0 has size 2147483648"},
            {tab + 13, 4, 6, MHC_ERR_SHAPE, "tensor 0 is 'embed' [6,4] in the file but 'embed' [5,4]"},
            {tab + 21, 4, 2, MHC_ERR_FORMAT, "tensor 'embed': decay flag 2"},
            {tab + 21, 4, 0, MHC_ERR_SHAPE, "tensor 'embed' has decay flag 0 in the file but 1"},
            {t1 + 4 + 13 + 4, 4, 5, MHC_ERR_SHAPE, "tensor 1 is 'blocks.0.norm' [5] in the file"},
            {nfield, 8, 0, MHC_ERR_FORMAT, "the file says 0 reals but its tensors hold 48"},
            {nfield, 8, 49, MHC_ERR_FORMAT, "the file says 49 reals but its tensors hold 48"},
            {trn, 8, UINT64_MAX, MHC_ERR_FORMAT, "trainer step is -1"},
            /* counts a trainer cannot continue from (issue 15, class 5): each refused, named, with the bound */
            {trn, 8, 0x80000000ull, MHC_ERR_FORMAT, "the stored trainer step is 2147483648; a trainer continues from 0 "
                                                    "to MHC_STEP_MAX (2147483646)"},
            {trn, 8, 0x7fffffffffffffffull, MHC_ERR_FORMAT, "the stored trainer step is 9223372036854775807"},
            {trn, 8, 2147483647ull, MHC_ERR_FORMAT, "the stored trainer step is 2147483647"},
            {trn + 20, 8, 0x80000000ull, MHC_ERR_FORMAT, "the stored trainer schedule.warmup is 2147483648"},
            {trn + 28, 8, 1ull << 40, MHC_ERR_FORMAT, "the stored trainer schedule.total is 1099511627776"},
            {trn + 28, 8, UINT64_MAX, MHC_ERR_FORMAT, "the stored trainer schedule.total is -1"},
            {trn + 8, 4, 9, MHC_ERR_FORMAT, "the stored trainer configuration is invalid: schedule.kind is 9"},
            /* found by the fuzzer: the high bit used to be masked off, loading kind 2 from 0x80000002 */
            {trn + 8, 4, 0x80000002u, MHC_ERR_FORMAT, "schedule.kind is 2147483650; expected 0, 1 or 2"},
            {trn + 12 + 8 + 16 + 8 * 5, 8, 0x4000000000000000ull, MHC_ERR_FORMAT,
             "the stored trainer configuration is invalid: beta1 is 2"},
        };
        size_t e, n = sizeof ed / sizeof ed[0];
        for (e = 0; e < n; e++) {
            int b;
            memcpy(buf, good, len);
            for (b = 0; b < ed[e].width; b++) buf[ed[e].off + (size_t)b] = (unsigned char)(ed[e].value >> (8 * b));
            TP(ck_reseal)(buf, len);
            TP(ck_sentinel)(&p, &tr, &rng);
            CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, cfg, sizeof cfg, NULL, &p, &tr, &rng), ed[e].code);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), ed[e].msg);
            CHECK(TP(ck_is_sentinel)(&p, &tr, &rng));
        }
        /* the largest step a trainer keeps still loads (and then refuses to step past it) */
        memcpy(buf, good, len);
        for (e = 0; e < 8; e++) buf[trn + e] = (unsigned char)((uint64_t)MHC_STEP_MAX >> (8 * e));
        TP(ck_reseal)(buf, len);
        CHECK_OK(mhc_checkpoint_parse(&ctx, buf, len, cfg, sizeof cfg, NULL, &p, &tr, &rng));
        CHECK(tr.step == MHC_STEP_MAX);
        CHECK_RESULT(mhc_trainer_step(&tr, &p), MHC_ERR_STATE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the step counter is 2147483646; a step can be taken from 0 to "
                                             "MHC_STEP_MAX - 1 (2147483645) steps");
        /* an all-zero rng state */
        memcpy(buf, good, len);
        memset(buf + rngo, 0, 32);
        TP(ck_reseal)(buf, len);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "the stored rng state is all zero");
        /* a shape so large that the data cannot fit, with a consistent real count */
        memcpy(buf, good, len);
        TP(ck_put32)(buf + tab + 13, 0x7FFFFFFFu);
        TP(ck_put64)(buf + nfield, (uint64_t)0x7FFFFFFF * 4 + 4 + 24);
        TP(ck_reseal)(buf, len);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "do not fit");
        /* one byte more than the structure, with a consistent length field */
        memcpy(buf, good, len - 8);
        buf[len - 8] = 0;
        TP(ck_put64)(buf + 16, (uint64_t)len + 1);
        TP(ck_reseal)(buf, len + 1);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len + 1, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "1 unexpected bytes before the checksum");
        /* trailing garbage after a good file */
        memcpy(buf, good, len);
        buf[len] = 0;
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len + 1, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "trailing bytes");
        /* the flags say "no trainer, no rng" but the bytes are there */
        memcpy(buf, good, len);
        TP(ck_put32)(buf + 24, 0);
        TP(ck_reseal)(buf, len);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "172 unexpected bytes");
    }

    TEST_BEGIN("checkpoint: the FNV-1a 64 checksum (known vectors)");
    CHECK(mhc__fnv1a64((const unsigned char *)"", 0) == 0xcbf29ce484222325ull);
    CHECK(mhc__fnv1a64((const unsigned char *)"a", 1) == 0xaf63dc4c8601ec8cull);
    CHECK(mhc__fnv1a64((const unsigned char *)"foobar", 6) == 0x85944171f73967e8ull);
    CHECK(TP(ck_fnv)(good, len - 8) == mhc__fnv1a64(good, len - 8));

    mhc_params_free(&p);
    free(buf);
    free(good);
}

static void TP(ck_test_mismatch)(void) {
    mhc_ctx ctx;
    mhc_params q;
    mhc_trainer tr;
    mhc_rng rng;
    size_t len;
    unsigned char *good;
    static const char *const msgs[6] = {
        "",
        "tensor 1 is 'blocks.0.norm' [4] in the file but 'blocks.0.norm' [5] in the parameter store",
        "tensor 1 is 'blocks.0.norm' [4] in the file but 'blocks.0.nrm' [4] in the parameter store",
        "the parameter store has tensor 3 'extra' that the file lacks (the file has 3 tensors)",
        "the file has tensor 2 'blocks.0.fn' that the parameter store lacks (the store has 2 tensors)",
        "tensor 'blocks.0.norm' has decay flag 0 in the file but 1 in the parameter store",
    };
    int v;
    mhc_ctx_init(&ctx);
    good = TP(ck_buffer)(&ctx, &len, 1, 1);
    TEST_BEGIN("checkpoint: a different parameter store is refused, naming the tensor");
    for (v = 1; v < 6; v++) {
        TP(ck_store)(&ctx, &q, v);
        TP(ck_sentinel)(&q, &tr, &rng);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, good, len, NULL, 0, NULL, &q, &tr, &rng), MHC_ERR_SHAPE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), msgs[v]);
        CHECK(TP(ck_is_sentinel)(&q, &tr, &rng));
        mhc_params_free(&q);
    }
    free(good);
}

/* mhc_checkpoint_save with the faults f applied (mhc.h's test hook, MHC_TEST_HOOKS) */
static mhc_result TP(ck_save_faults)(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                     const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng,
                                     mhc__ckpt_faults *f) {
    mhc_result r;
    mhc__ckpt_fault_hook = f;
    r = mhc_checkpoint_save(ctx, path, config, config_bytes, p, tr, rng);
    mhc__ckpt_fault_hook = NULL;
    return r;
}

static void TP(ck_test_atomic)(void) {
    mhc_ctx ctx;
    mhc_params a, b;
    mhc_trainer ta, tb;
    mhc_rng ra, rb;
    mhc__ckpt_faults faults;
    char path[512], other[600];
    int k;
    mhc_ctx_init(&ctx);
    TP(ck_path)(path, sizeof path, "atomic.ckpt");
    TP(ck_store)(&ctx, &a, 0);
    TP(ck_store)(&ctx, &b, 0);
    mhc_rng_seed(&ra, 5);
    mhc_rng_fill_normal(&ra, a.data, a.size, 0.0, 1.0);
    mhc_trainer_init(&ctx, &ta, NULL);
    TP(ck_train)(&ctx, &a, &ta, &ra, 2, 3);

    TEST_BEGIN("checkpoint save: a missing directory fails cleanly");
    TP(ck_path)(other, sizeof other, "no_such_dir/x.ckpt");
    CHECK_RESULT(mhc_checkpoint_save(&ctx, other, NULL, 0, &a, &ta, &ra), MHC_ERR_IO);
#if CK_POSIX
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "no_such_dir/x.ckpt': its directory");
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "no_such_dir' does not exist; nothing was written");
#else
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "cannot create the temporary file");
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "x.ckpt' is unchanged");
#endif
    CHECK(!TP(ck_exists)(other));

    TEST_BEGIN("checkpoint save: failures at every stage leave the old file loadable");
    CHECK_OK(mhc_checkpoint_save(&ctx, path, "v1", 3, &a, &ta, &ra));   /* the good old file */
    for (k = 0; k < 5; k++) {
        mhc_params c;
        mhc_trainer tc;
        mhc_rng rc;
        char cfg[8];
        mhc_result r;
        memset(&faults, 0, sizeof faults);
        faults.write_limit = SIZE_MAX;
        if (k == 0) faults.write_limit = 0;
        if (k == 1) faults.write_limit = 100;
        if (k == 2) faults.write_limit = 600;    /* past the header, inside the data */
        if (k == 3) faults.fail_sync = 1;
        if (k == 4) faults.fail_rename = 1;
        /* the new state differs from the old one */
        TP(ck_store)(&ctx, &c, 0);
        memcpy(c.data, a.data, a.size * sizeof(mhc_real));
        c.data[0] += 1;
        r = TP(ck_save_faults)(&ctx, path, "v2", 3, &c, &ta, &ra, &faults);
        CHECK_RESULT(r, MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), k < 3 ? "simulated write failure" : k == 3 ? "simulated sync failure"
                                                                                     : "simulated rename failure");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "atomic.ckpt' is unchanged");
        CHECK_MSG(faults.tmp_path[0] && !TP(ck_exists)(faults.tmp_path), "temporary '%s' left behind", faults.tmp_path);
        mhc_params_free(&c);
        TP(ck_store)(&ctx, &c, 0);
        CHECK_OK(mhc_checkpoint_load(&ctx, path, cfg, sizeof cfg, NULL, &c, &tc, &rc));
        CHECK(strcmp(cfg, "v1") == 0 && TP(ck_same_params)(&a, &c));
        mhc_params_free(&c);
    }
    /* the hook with no fault set takes the normal path */
    memset(&faults, 0, sizeof faults);
    faults.write_limit = SIZE_MAX;
    CHECK_OK(TP(ck_save_faults)(&ctx, path, "v3", 3, &a, &ta, &ra, &faults));
    CHECK(!TP(ck_exists)(faults.tmp_path));
    CHECK_STR_HAS(faults.tmp_path, "atomic.ckpt.tmp.");

#if CK_POSIX
    TEST_BEGIN("checkpoint save: a directory in the way is refused before anything is written");
    TP(ck_path)(other, sizeof other, "dir_in_the_way");
    CHECK(mkdir(other, 0700) == 0);
    memset(&faults, 0, sizeof faults);
    faults.write_limit = SIZE_MAX;
    CHECK_RESULT(TP(ck_save_faults)(&ctx, other, NULL, 0, &a, &ta, &ra, &faults), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "dir_in_the_way' is a directory, not a regular file");
    CHECK(faults.tmp_path[0] == 0);   /* no temporary file was even created */
    CHECK_RESULT(mhc_checkpoint_load(&ctx, other, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_IO);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "dir_in_the_way");   /* reading a directory fails */
    CHECK(rmdir(other) == 0);   /* still an (empty) directory */
#endif

#if CK_RLIMIT
    TEST_BEGIN("checkpoint save: a real short write (RLIMIT_FSIZE) leaves the old file loadable");
    {
        struct rlimit old, lim;
        void (*prev)(int);
        mhc_params c;
        mhc_trainer tc;
        mhc_rng rc;
        char cfg[8];
        mhc_result r;
        CHECK_OK(mhc_checkpoint_save(&ctx, path, "v1", 3, &a, &ta, &ra));
        TP(ck_store)(&ctx, &c, 0);
        memcpy(c.data, a.data, a.size * sizeof(mhc_real));
        c.data[1] -= 1;
        memset(&faults, 0, sizeof faults);
        faults.write_limit = SIZE_MAX;
        CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
        lim = old;
        lim.rlim_cur = 300;   /* the checkpoint is larger: write() fails with EFBIG past 300 bytes */
        prev = signal(SIGXFSZ, SIG_IGN);
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        r = TP(ck_save_faults)(&ctx, path, "v2", 3, &c, &ta, &ra, &faults);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        CHECK_RESULT(r, MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "cannot write the temporary file");
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "File too large");
        CHECK(!TP(ck_exists)(faults.tmp_path));
        mhc_params_free(&c);
        TP(ck_store)(&ctx, &c, 0);
        CHECK_OK(mhc_checkpoint_load(&ctx, path, cfg, sizeof cfg, NULL, &c, &tc, &rc));
        CHECK(strcmp(cfg, "v1") == 0 && TP(ck_same_params)(&a, &c));
        mhc_params_free(&c);
    }
#endif

    TEST_BEGIN("checkpoint save: a failed first save leaves no file at all under the final name");
    TP(ck_path)(other, sizeof other, "first_save.ckpt");
    remove(other);
    for (k = 0; k < 4; k++) {
        mhc_result r;
        memset(&faults, 0, sizeof faults);
        faults.write_limit = SIZE_MAX;
        if (k == 0) faults.write_limit = 0;
        if (k == 1) faults.write_limit = 333;
        if (k == 2) faults.fail_sync = 1;
        if (k == 3) faults.fail_rename = 1;
        r = TP(ck_save_faults)(&ctx, other, NULL, 0, &a, &ta, &ra, &faults);
        CHECK_RESULT(r, MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "first_save.ckpt' is unchanged");
        CHECK(!TP(ck_exists)(other));
        CHECK(faults.tmp_path[0] && !TP(ck_exists)(faults.tmp_path));
    }
#if CK_RLIMIT
    {
        struct rlimit old, lim;
        void (*prev)(int);
        mhc_result r;
        memset(&faults, 0, sizeof faults);
        faults.write_limit = SIZE_MAX;
        CHECK(getrlimit(RLIMIT_FSIZE, &old) == 0);
        lim = old;
        lim.rlim_cur = 200;   /* a disk that fills up after 200 bytes */
        prev = signal(SIGXFSZ, SIG_IGN);
        CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0);
        r = TP(ck_save_faults)(&ctx, other, NULL, 0, &a, &ta, &ra, &faults);
        setrlimit(RLIMIT_FSIZE, &old);
        signal(SIGXFSZ, prev);
        CHECK_RESULT(r, MHC_ERR_IO);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "File too large");
        CHECK(!TP(ck_exists)(other) && !TP(ck_exists)(faults.tmp_path));
    }
#endif

    TEST_BEGIN("checkpoint load: truncated files on disk are refused");
    {
        FILE *f = fopen(path, "rb");
        unsigned char *all;
        long n;
        size_t cuts[8], c;
        CHECK(f != NULL);
        fseek(f, 0, SEEK_END);
        n = ftell(f);
        fseek(f, 0, SEEK_SET);
        all = (unsigned char *)malloc((size_t)n);
        CHECK(fread(all, 1, (size_t)n, f) == (size_t)n);
        fclose(f);
        cuts[0] = 0; cuts[1] = 5; cuts[2] = 8; cuts[3] = 40; cuts[4] = 47; cuts[5] = (size_t)n / 2;
        cuts[6] = (size_t)n - 8; cuts[7] = (size_t)n - 1;
        TP(ck_path)(other, sizeof other, "truncated.ckpt");
        for (c = 0; c < 8; c++) {
            f = fopen(other, "wb");
            fwrite(all, 1, cuts[c], f);
            fclose(f);
            TP(ck_sentinel)(&b, &tb, &rb);
            CHECK_RESULT(mhc_checkpoint_load(&ctx, other, NULL, 0, NULL, &b, &tb, &rb), MHC_ERR_FORMAT);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated");
            CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated.ckpt");
            CHECK(TP(ck_is_sentinel)(&b, &tb, &rb));
        }
        remove(other);
        free(all);
    }

    TEST_BEGIN("checkpoint: a file of the other precision is refused");
    TP(ck_path)(other, sizeof other, "xprec.ckpt");
    {
        /* the float32 group (which runs first) leaves a float32 file for the float64 group */
        char f32path[600];
        snprintf(f32path, sizeof f32path, "%s", other);
        {
            char *tag = strstr(f32path, "mhc_test_f64_");
            if (tag) memcpy(tag, "mhc_test_f32_", 13);
        }
#ifdef MHC_DOUBLE
        TP(ck_sentinel)(&b, &tb, &rb);
        CHECK_RESULT(mhc_checkpoint_load(&ctx, f32path, NULL, 0, NULL, &b, &tb, &rb), MHC_ERR_FORMAT);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "stores float32 reals but this build uses float64");
        CHECK(TP(ck_is_sentinel)(&b, &tb, &rb));
        remove(f32path);
#else
        CHECK_OK(mhc_checkpoint_save(&ctx, f32path, NULL, 0, &a, &ta, &ra));
#endif
    }
    remove(path);
    mhc_params_free(&a);
    mhc_params_free(&b);
}


/* Put value x (as a stored real) at flat index idx of part (0 data, 1 m, 2 v) of a buffer made by
   ck_buffer(.., 1, 1) and reseal it. nreals is the store's size. */
static void TP(ck_put_real)(unsigned char *b, size_t len, size_t nreals, int part, size_t idx, double x) {
    size_t off = len - 8 - 32 - 140 - 3 * nreals * sizeof(mhc_real) + ((size_t)part * nreals + idx) * sizeof(mhc_real);
    mhc_real r = (mhc_real)x;
    memcpy(b + off, &r, sizeof r);   /* the test machines are little-endian, as the format */
    TP(ck_reseal)(b, len);
}

static void TP(ck_test_values)(void) {
    mhc_ctx ctx;
    mhc_params p;
    mhc_trainer tr;
    mhc_rng rng;
    size_t len;
    unsigned char *good, *buf;
    char path[512];
    /* (part, flat index, value, code, tensor, element text) */
    struct { int part; size_t idx; double x; mhc_result code; const char *msg1, *msg2; } cases[6];
    int k;
    double inf = HUGE_VAL, nan_ = HUGE_VAL - HUGE_VAL;
    mhc_ctx_init(&ctx);
    good = TP(ck_buffer)(&ctx, &len, 1, 1);
    buf = (unsigned char *)malloc(len);
    TP(ck_store)(&ctx, &p, 0);   /* embed [5,4] (20), blocks.0.norm [4] (4), blocks.0.fn [2,3,4] (24) */

    TEST_BEGIN("checkpoint load: NaN or Inf in the parameters, m or v is refused, naming the tensor");
    cases[0].part = 0; cases[0].idx = 29; cases[0].x = nan_; cases[0].code = MHC_ERR_NONFINITE;
    cases[0].msg1 = "tensor 'blocks.0.fn' element 5 of its parameters is NaN"; cases[0].msg2 = "finite values only";
    cases[1].part = 1; cases[1].idx = 0; cases[1].x = inf; cases[1].code = MHC_ERR_NONFINITE;
    cases[1].msg1 = "tensor 'embed' element 0 of its AdamW first moment m is +Inf"; cases[1].msg2 = "finite";
    cases[2].part = 2; cases[2].idx = 23; cases[2].x = -inf; cases[2].code = MHC_ERR_NONFINITE;
    cases[2].msg1 = "tensor 'blocks.0.norm' element 3 of its AdamW second moment v is -Inf"; cases[2].msg2 = "finite";
    cases[3].part = 0; cases[3].idx = 47; cases[3].x = -inf; cases[3].code = MHC_ERR_NONFINITE;
    cases[3].msg1 = "tensor 'blocks.0.fn' element 23 of its parameters is -Inf"; cases[3].msg2 = "finite";
    cases[4].part = 2; cases[4].idx = 2; cases[4].x = -0.5; cases[4].code = MHC_ERR_FORMAT;
    cases[4].msg1 = "tensor 'embed' element 2 of its AdamW second moment v is -0.5"; cases[4].msg2 = "must be >= 0";
    cases[5].part = 1; cases[5].idx = 2; cases[5].x = -0.5; cases[5].code = MHC_OK;   /* m may be negative */
    cases[5].msg1 = cases[5].msg2 = NULL;
    for (k = 0; k < 6; k++) {
        memcpy(buf, good, len);
        TP(ck_put_real)(buf, len, p.size, cases[k].part, cases[k].idx, cases[k].x);
        TP(ck_sentinel)(&p, &tr, &rng);
        CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, &p, &tr, &rng), cases[k].code);
        if (cases[k].code != MHC_OK) {
            CHECK_STR_HAS(mhc_ctx_message(&ctx), cases[k].msg1);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), cases[k].msg2);
            CHECK(TP(ck_is_sentinel)(&p, &tr, &rng));
            /* also without a store to load into: the values are checked whatever is read */
            CHECK_RESULT(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, NULL, NULL, NULL), cases[k].code);
        }
    }
    TEST_BEGIN("checkpoint load: -0 in v and subnormal values are accepted");
    memcpy(buf, good, len);
    TP(ck_put_real)(buf, len, p.size, 2, 7, -0.0);
    TP(ck_put_real)(buf, len, p.size, 0, 8, 1e-40);
    CHECK_OK(mhc_checkpoint_parse(&ctx, buf, len, NULL, 0, NULL, &p, &tr, &rng));
    CHECK(p.v[7] == 0 && p.data[8] > 0);

    TEST_BEGIN("checkpoint save: a non-finite state is refused, naming the tensor, and no file is written");
    TP(ck_path)(path, sizeof path, "nonfinite.ckpt");
    remove(path);
    mhc_ctx_init(&ctx);
    mhc_trainer_init(&ctx, &tr, NULL);
    mhc_rng_seed(&rng, 3);
    memset(p.data, 0, p.size * sizeof(mhc_real));
    memset(p.m, 0, p.size * sizeof(mhc_real));
    memset(p.v, 0, p.size * sizeof(mhc_real));
    CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, &tr, &rng));
    remove(path);
    p.data[21] = (mhc_real)nan_;
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, &tr, &rng), MHC_ERR_NONFINITE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "tensor 'blocks.0.norm' element 1 of its parameters is NaN");
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "not saved");
    CHECK(!TP(ck_exists)(path));
    p.data[21] = 0;
    p.m[44] = (mhc_real)inf;
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, &tr, &rng), MHC_ERR_NONFINITE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "tensor 'blocks.0.fn' element 20 of its AdamW first moment m is +Inf");
    {
        size_t n = 0;
        CHECK_RESULT(mhc_checkpoint_serialize(&ctx, NULL, 0, &n, NULL, 0, &p, NULL, NULL), MHC_ERR_NONFINITE);
    }
    p.m[44] = 0;
    p.v[3] = (mhc_real)-1e-30;
    CHECK_RESULT(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, &tr, &rng), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "tensor 'embed' element 3 of its AdamW second moment v is -1e-30");
    CHECK(!TP(ck_exists)(path));
    p.v[3] = 0;
    CHECK_OK(mhc_checkpoint_save(&ctx, path, NULL, 0, &p, &tr, &rng));
    remove(path);
    mhc_params_free(&p);
    free(buf);
    free(good);
}

#if CK_POSIX
/* The child's pause hook: tell the parent "mid-write now", then wait to be killed. */
static void TP(ck_pause_forever)(void *user) {
    int fd = *(int *)user;
    char c = 'p';
    if (write(fd, &c, 1) != 1) _exit(3);
    for (;;) pause();
}

static void TP(ck_test_killed)(void) {
    mhc_ctx ctx;
    mhc_params a, c;
    mhc_trainer ta, tc;
    mhc_rng ra, rc;
    char path[512], tmp[600], cfg[8];
    int sh[2] = {512, 512}, sh1[1] = {1000}, k;
    size_t full = 0;
    mhc_ctx_init(&ctx);
    TP(ck_path)(path, sizeof path, "killed.ckpt");
    mhc_params_init(&ctx, &a);
    mhc_params_add(&a, "w", 2, sh, MHC_PARAM_DECAY);
    mhc_params_add(&a, "b", 1, sh1, MHC_PARAM_NO_DECAY);
    mhc_params_alloc(&a);
    mhc_rng_seed(&ra, 99);
    mhc_rng_fill_normal(&ra, a.data, a.size, 0.0, 1.0);
    mhc_trainer_init(&ctx, &ta, NULL);
    mhc_checkpoint_serialize(&ctx, NULL, 0, &full, "v1", 3, &a, &ta, &ra);

    TEST_BEGIN("checkpoint save: a writer killed (SIGKILL) mid-write leaves the previous checkpoint loadable");
    for (k = 0; k < 3; k++) {
        /* kill points: after the header, half-way through the data, all written but not synced */
        size_t at = k == 0 ? 40 : k == 1 ? full / 2 : full;
        int fds[2], status = 0;
        char ch = 0;
        pid_t pid;
        struct stat st;
        CHECK_OK(mhc_checkpoint_save(&ctx, path, "v1", 3, &a, &ta, &ra));   /* the previous checkpoint */
        CHECK(pipe(fds) == 0);
        fflush(NULL);
        pid = fork();
        if (pid == 0) {   /* the child: a new state (a step further), saved with a pause inside write */
            mhc__ckpt_faults f;
            close(fds[0]);
            memset(&f, 0, sizeof f);
            f.write_limit = SIZE_MAX;
            f.pause_at = at;
            f.on_pause = TP(ck_pause_forever);
            f.pause_user = &fds[1];
            a.data[0] += 1;
            (void)TP(ck_save_faults)(&ctx, path, "v2", 3, &a, &ta, &ra, &f);
            _exit(4);   /* not reached: the hook never returns */
        }
        CHECK(pid > 0);
        if (pid <= 0) break;
        close(fds[1]);
        CHECK_MSG(read(fds[0], &ch, 1) == 1 && ch == 'p', "the child did not reach the pause (kill point %d)", k);
        close(fds[0]);
        /* the child is inside the save: its temporary file holds exactly `at` bytes */
        snprintf(tmp, sizeof tmp, "%s.tmp.%lu.0", path, (unsigned long)pid);
        CHECK_MSG(stat(tmp, &st) == 0 && (size_t)st.st_size == at, "temporary '%s' should hold %zu bytes", tmp, at);
        CHECK(kill(pid, SIGKILL) == 0);
        CHECK(waitpid(pid, &status, 0) == pid);
        CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* the final name still holds the previous checkpoint, complete and verified */
        mhc_params_init(&ctx, &c);
        mhc_params_add(&c, "w", 2, sh, MHC_PARAM_DECAY);
        mhc_params_add(&c, "b", 1, sh1, MHC_PARAM_NO_DECAY);
        mhc_params_alloc(&c);
        memset(cfg, 0, sizeof cfg);
        CHECK_OK(mhc_checkpoint_load(&ctx, path, cfg, sizeof cfg, NULL, &c, &tc, &rc));
        CHECK(strcmp(cfg, "v1") == 0 && TP(ck_same_params)(&a, &c));
        CHECK(TP(ck_same_trainer)(&ta, &tc) && memcmp(ra.s, rc.s, sizeof ra.s) == 0);
        /* the crashed writer's temporary is what is left behind; it is not a loadable checkpoint
           (except when killed after the last byte: then it is complete but was never renamed) */
        if (k < 2) {
            CHECK_RESULT(mhc_checkpoint_load(&ctx, tmp, NULL, 0, NULL, NULL, NULL, NULL), MHC_ERR_FORMAT);
            CHECK_STR_HAS(mhc_ctx_message(&ctx), "truncated");
        }
        /* a later save by a live process succeeds beside the stale temporary */
        CHECK_OK(mhc_checkpoint_save(&ctx, path, "v3", 3, &a, &ta, &ra));
        CHECK_OK(mhc_checkpoint_load(&ctx, path, cfg, sizeof cfg, NULL, &c, &tc, &rc));
        CHECK(strcmp(cfg, "v3") == 0);
        mhc_params_free(&c);
        remove(tmp);
    }
    CHECK(full > 1000000);   /* a large checkpoint: ~3 MB (float32) or ~6 MB (float64) */
    remove(path);
    mhc_params_free(&a);
}
#endif

void TP(test_ckpt)(void); void TP(test_ckpt)(void) {
    TP(ck_test_roundtrip)();
    TP(ck_test_corruption)();
    TP(ck_test_mismatch)();
    TP(ck_test_atomic)();
    TP(ck_test_values)();
#if CK_POSIX
    TP(ck_test_killed)();
#endif
}
