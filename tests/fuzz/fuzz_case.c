/* tests/fuzz/fuzz_case.c - libFuzzer target for the verifier's case.txt parser
 * (tool_verify_parse_case in tools/verify.c, on a memory buffer), followed by mhc_hc_resolve
 * on what it accepted, as `mhc verify` does. Properties checked (abort() = a finding): the
 * result is 0 or 2; a refusal leaves a terminated, non-empty message and a zeroed output; an
 * accepted case has op, dtype, n and every knob in their documented ranges (numbers finite and
 * >= 0, or MHC_ZERO; kron_factors a list of 1..8 ended by zeros, ns_iters 0..1000); mhc_hc_resolve
 * either accepts it (with the same n; for kromhc, projection kron and factors whose product is n;
 * for none and hc, no factors and no residual logits: their projection field is unused) or says why. */
#include "mhc.h"
#include "tools/verify.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int fc_knob_ok(double v) {
    return v == 0.0 || v == MHC_ZERO || (v > 0.0 && v <= 1.7976931348623157e308);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tool_verify_case_txt c, zero;
    char err[512];
    int rc;
    memset(err, 'x', sizeof err);
    rc = tool_verify_parse_case((const char *)data, size, "case.txt", &c, err, sizeof err);
    if (!memchr(err, 0, sizeof err)) abort();
    memset(&zero, 0, sizeof zero);
    if (rc == 2) {
        if (!err[0] || memcmp(&c, &zero, sizeof c) != 0) abort();
        return 0;
    }
    if (rc != 0) abort();
    if (c.op < TOOL_VERIFY_LAYER || c.op > TOOL_VERIFY_HEAD) abort();
    if (c.n < 1 || c.n > 1024 || (c.f32 != 0 && c.f32 != 1)) abort();
    {
        const mhc_hc_config *cfg = &c.cfg;
        if ((int)cfg->preset < 0 || cfg->preset >= MHC_PRESET_COUNT || (int)cfg->variant < 0 ||
            cfg->variant >= MHC_VARIANT_COUNT) abort();
        if ((int)cfg->projection < 0 || cfg->projection >= MHC_PROJ_COUNT || (int)cfg->orient < 0 ||
            cfg->orient >= MHC_ORIENT_COUNT) abort();
        if (cfg->sinkhorn_iters < 0 || cfg->sinkhorn_iters > 100000) abort();
        if (!fc_knob_ok(cfg->sinkhorn_eps) || !fc_knob_ok(cfg->norm_eps) || !fc_knob_ok(cfg->pre_eps) ||
            !fc_knob_ok(cfg->post_mult))
            abort();
        if (cfg->variant != 0 && c.op != TOOL_VERIFY_LAYER) abort();
        if (cfg->ns_iters < 0 || cfg->ns_iters > MHC_NS_MAX_ITERS) abort();
        {   /* kron_factors: a prefix of factors in 1..MHC_LITE_MAX_N, then zeros */
            int k, ended = 0;
            for (k = 0; k < MHC_KRON_MAX_FACTORS; k++) {
                int f = cfg->kron_factors[k];
                if (f == 0) ended = 1;
                else if (ended || f < 1 || f > MHC_LITE_MAX_N) abort();
            }
        }
    }
    {
        mhc_ctx ctx;
        mhc_hc_spec s;
        mhc_result r;
        mhc_ctx_init(&ctx);
        r = mhc_hc_resolve(&ctx, &c.cfg, c.n, &s);
        if (r != MHC_OK && !ctx.msg[0]) abort();
        if (r == MHC_OK && (s.n != c.n || s.iters < 1 || s.m < 0)) abort();
        /* the projection means something for all but none and hc (mhc_hc_spec): there, kron
           goes with kromhc and its factors multiply to n; none and hc keep the preset's
           projection field unused, with no factors */
        if (r == MHC_OK && s.variant != MHC_VARIANT_NONE && s.variant != MHC_VARIANT_HC &&
            (s.projection == MHC_PROJ_KRON) != (s.variant == MHC_VARIANT_KROMHC)) abort();
        if (r == MHC_OK && (s.variant == MHC_VARIANT_NONE || s.variant == MHC_VARIANT_HC) &&
            (s.kron_count != 0 || s.nres != 0)) abort();
        if (r == MHC_OK && s.variant == MHC_VARIANT_KROMHC) {   /* the product of the factors is n */
            int k, prod = 1;
            for (k = 0; k < s.kron_count; k++) prod *= s.kron_factors[k];
            if (s.kron_count < 1 || prod != s.n) abort();
        }
    }
    return 0;
}
