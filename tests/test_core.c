/* tests/test_core.c - errors, rng, arena, parameter store. */

void TP(test_core)(void); void TP(test_core)(void) {
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("version");
    CHECK(strstr(mhc_version(), MHC_VERSION_STRING) != NULL);
}
