/* bench/bench_cuda.c - build/bench_cuda (`make cuda`): GPT training throughput on a CUDA device,
 * the plain residual (none, n = 1) against mHC (dsv4, n = 4) with the same width and depth,
 * measured in the same run. Prints tokens/s for each and the mHC overhead ratio
 * (time per step mHC / time per step residual). Exits 0 with a message when there is no GPU.
 * Usage: build/bench_cuda [steps] [dim] [layers] [seq] [batch]   (defaults 30 256 4 256 8) */
#define _POSIX_C_SOURCE 200809L
#define MHC_CUDA
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "../gpt/gpt.h"
#include "../gpt/gpt_cuda.h"

#include <stdlib.h>
#include <time.h>

static double bc_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* tokens/s of `steps` timed steps (after 3 warm-up steps); -1 on error */
static double bc_run(mhc_cuda *cu, int variant, int n, int steps, int dim, int layers, int seq, int batch,
                     double *last_loss) {
    mhc_ctx *ctx = cu->ctx;
    gpt_config cfg;
    gpt_model m;
    gpt_cuda gc;
    mhc_rng rng;
    mhc_trainer tr;
    mhc_adamw_config acfg;
    int *inp, *tgt, i, s;
    double t0, t1, loss = 0.0;
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab = 256; cfg.seq = seq; cfg.dim = dim; cfg.heads = dim / 64 > 0 ? dim / 64 : 1; cfg.layers = layers;
    cfg.n = n; cfg.hc.variant = (mhc_hc_variant)variant; cfg.hc.preset = MHC_PRESET_DSV4;
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.lr = 1e-3;
    if (gpt_create(ctx, &m, &cfg) != MHC_OK) return -1.0;
    mhc_rng_seed(&rng, 1);
    inp = (int *)malloc((size_t)batch * seq * sizeof(int));
    tgt = (int *)malloc((size_t)batch * seq * sizeof(int));
    if (!inp || !tgt || gpt_init(ctx, &m, &rng) != MHC_OK || mhc_trainer_init(ctx, &tr, &acfg) != MHC_OK ||
        gpt_cuda_create(cu, &gc, &m) != MHC_OK) {
        free(inp); free(tgt); gpt_destroy(&m);
        return -1.0;
    }
    for (i = 0; i < batch * seq; i++) {
        /* a learnable stream: the next byte is a function of the current one */
        inp[i] = (int)mhc_rng_below(&rng, 256);
        tgt[i] = (inp[i] * 7 + 3) % 256;
    }
    t0 = 0.0;
    for (s = 0; s < steps + 3; s++) {
        if (s == 3) { mhc_cuda_sync(cu); t0 = bc_now(); }
        if (gpt_cuda_step(&gc, &tr, inp, tgt, batch, seq, &loss) != MHC_OK) { t0 = -1.0; break; }
    }
    t1 = bc_now();
    gpt_cuda_destroy(&gc);
    gpt_destroy(&m);
    free(inp); free(tgt);
    *last_loss = loss;
    if (t0 < 0.0) return -1.0;
    return (double)steps * batch * seq / (t1 - t0);
}

int main(int argc, char **argv) {
    mhc_ctx ctx;
    mhc_cuda cu;
    int steps = argc > 1 ? atoi(argv[1]) : 30, dim = argc > 2 ? atoi(argv[2]) : 256;
    int layers = argc > 3 ? atoi(argv[3]) : 4, seq = argc > 4 ? atoi(argv[4]) : 256, batch = argc > 5 ? atoi(argv[5]) : 8;
    double tok_none, tok_mhc, loss_none = 0.0, loss_mhc = 0.0;
    mhc_ctx_init(&ctx);
    if (mhc_cuda_available() == 0) {
        printf("no CUDA device: skipped the GPU benchmark\n");
        return 0;
    }
    if (steps < 1 || dim < 1 || layers < 1 || seq < 1 || batch < 1) {
        fprintf(stderr, "usage: bench_cuda [steps] [dim] [layers] [seq] [batch]\n");
        return 2;
    }
    if (mhc_cuda_init(&ctx, &cu, 0) != MHC_OK) { fprintf(stderr, "bench_cuda: %s\n", mhc_ctx_message(&ctx)); return 1; }
    printf("GPT on the GPU: dim %d, layers %d, seq %d, batch %d, %d timed steps\n", dim, layers, seq, batch, steps);
    tok_none = bc_run(&cu, MHC_VARIANT_NONE, 1, steps, dim, layers, seq, batch, &loss_none);
    tok_mhc = bc_run(&cu, MHC_VARIANT_PRESET, 4, steps, dim, layers, seq, batch, &loss_mhc);
    if (tok_none <= 0.0 || tok_mhc <= 0.0) {
        fprintf(stderr, "bench_cuda: a run failed: %s\n", mhc_ctx_message(&ctx));
        mhc_cuda_free(&cu);
        return 1;
    }
    printf("residual (none, n=1): %10.0f tokens/s   last loss %.4f\n", tok_none, loss_none);
    printf("mHC (dsv4, n=4):      %10.0f tokens/s   last loss %.4f\n", tok_mhc, loss_mhc);
    printf("mHC overhead ratio (time per step mHC / residual): %.3f\n", tok_none / tok_mhc);
    mhc_cuda_free(&cu);
    return 0;
}
