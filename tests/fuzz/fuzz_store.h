/* tests/fuzz/fuzz_store.h - the parameter store that the checkpoint fuzz target loads into and
 * that tests/fuzz/make_seeds.c saves its seed checkpoints from (they must agree, or the fuzzer
 * never reaches the code that copies values into a store). Include after mhc.h. */
#ifndef MHC_FUZZ_STORE_H
#define MHC_FUZZ_STORE_H

/* "embed" [3,2] decay, "blocks.0.fn" [2,2,2] decay, "norm" [2] no decay: 16 reals. */
static mhc_result fuzz_store_make(mhc_ctx *ctx, mhc_params *p) {
    int s0[2] = {3, 2}, s1[3] = {2, 2, 2}, s2[1] = {2};
    mhc_params_init(ctx, p);
    if (mhc_params_add(p, "embed", 2, s0, MHC_PARAM_DECAY) < 0) return ctx->last;
    if (mhc_params_add(p, "blocks.0.fn", 3, s1, MHC_PARAM_DECAY) < 0) return ctx->last;
    if (mhc_params_add(p, "norm", 1, s2, MHC_PARAM_NO_DECAY) < 0) return ctx->last;
    return mhc_params_alloc(p);
}

#endif
