/* examples/ex5_train_gpt.c - step 5 of the ladder: training a small GPT with mHC streams.
 *
 * The model is gpt/gpt.h (the one `build/mhc train` and `build/mhc demo` train): a
 * byte-level GPT whose residual stream is n = 4 streams, every attention and MLP sublayer wrapped
 * in mhc_hc_pre / mhc_hc_post, the streams collapsed by mhc_hc_head before the output norm. The
 * data is the generated corpus of gpt/corpus.h. This file is the whole training loop: data
 * batches, forward, backward, one AdamW step (mhc_trainer_step), in a tiny configuration that
 * runs in a few seconds. It prints the loss going down and the Amax gain of the residual map
 * (gpt_gain: the composite of all sublayers' A matrices), and checks that the loss falls.
 *
 *   make build/ex5_train_gpt && ./build/ex5_train_gpt
 */
#include <stdio.h>
#include <stdlib.h>
#define MHC_IMPLEMENTATION
#include "mhc.h"
#include "gpt/gpt.h"
#include "gpt/corpus.h"

enum { BATCH = 4, STEPS = 60, CORPUS_BYTES = 1 << 16 };

int main(void) {
    gpt_config cfg;
    gpt_model model;
    mhc_ctx ctx;
    mhc_rng rng;
    mhc_arena arena;
    mhc_tape tape;
    mhc_trainer trainer;
    mhc_adamw_config acfg;
    mhc_gain_stats gain;
    static char text[CORPUS_BYTES];
    static int inp[BATCH * 64], tgt[BATCH * 64];
    double window = 0, first = 0, last = 0;
    int step, b, t, rc = 1;

    /* 1. a tiny model: 2 blocks (4 sublayers), width 32, context 32, n = 4 streams, preset dsv4 */
    memset(&cfg, 0, sizeof cfg);
    cfg.vocab = 256; cfg.seq = 32; cfg.dim = 32; cfg.heads = 2; cfg.layers = 2;
    cfg.n = 4; cfg.hc.variant = MHC_VARIANT_MHC; cfg.hc.preset = MHC_PRESET_DSV4;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 1337);
    if (gpt_create(&ctx, &model, &cfg) != MHC_OK) { fprintf(stderr, "error: %s\n", mhc_ctx_message(&ctx)); return 1; }
    if (gpt_init(&ctx, &model, &rng) != MHC_OK) goto error;
    printf("GPT: %d layers, dim %d, n = %d streams (%s, preset %s), %zu parameters\n", cfg.layers, cfg.dim, cfg.n,
           mhc_hc_variant_name(model.spec.variant), mhc_hc_preset_name(model.spec.preset), model.params.size);

    /* 2. data: bytes of the generated corpus */
    gpt_corpus_generate(text, sizeof text, 20261128u);
    printf("corpus: \"%.60s...\"\n\n", text);

    /* 3. AdamW with a linear warmup and a cosine decay (zero fields take the defaults) */
    memset(&acfg, 0, sizeof acfg);
    acfg.schedule.kind = MHC_LR_COSINE;
    acfg.schedule.lr = 1e-2;
    acfg.schedule.warmup = 6;
    acfg.schedule.total = STEPS;
    if (mhc_trainer_init(&ctx, &trainer, &acfg) != MHC_OK) goto error;

    /* 4. the loop: the tape records one step's forward in the arena; reset frees it all */
    if (mhc_arena_init(&ctx, &arena, 1 << 20) != MHC_OK) goto error;
    mhc_tape_init(&ctx, &tape, &arena);
    for (step = 1; step <= STEPS; step++) {
        mhc_tensor *loss;
        double lv;
        for (b = 0; b < BATCH; b++) {                /* random windows; the target is the next byte */
            size_t off = mhc_rng_below(&rng, (uint32_t)(sizeof text - cfg.seq - 1));
            for (t = 0; t < cfg.seq; t++) {
                inp[b * cfg.seq + t] = (unsigned char)text[off + t];
                tgt[b * cfg.seq + t] = (unsigned char)text[off + t + 1];
            }
        }
        mhc_params_zero_grad(&model.params);
        loss = gpt_forward(&tape, &model, inp, tgt, BATCH, cfg.seq, NULL);
        if (!loss || mhc_tape_backward(&tape, loss) != MHC_OK) goto error_tape;
        if (gpt_gain(&ctx, &model, BATCH * cfg.seq, &gain) != MHC_OK) goto error_tape;   /* reads the tape's A */
        lv = (double)loss->data[0];                  /* read it before the reset frees it */
        window += lv;
        mhc_tape_reset(&tape);
        if (mhc_trainer_step(&trainer, &model.params) != MHC_OK) goto error_tape;
        if (step == 1)
            printf("step   1        loss %.4f (ln 256 = 5.545: a uniform guess over the bytes)\n", lv);
        if (step % 10 == 0) {                        /* the mean loss of the last 10 steps */
            window /= 10;
            if (step == 10) first = window;
            last = window;
            printf("steps %2d-%-3d   loss %.4f   lr %.2e  grad norm %5.3f  Amax gain fwd %.4f bwd %.4f\n", step - 9,
                   step, window, trainer.last_lr, trainer.last_grad_norm, gain.fwd_max, gain.bwd_max);
            window = 0;
        }
    }
    printf("\nmean loss over 10 steps: %.4f (steps 1-10) -> %.4f (steps %d-%d)\n", first, last, STEPS - 9, STEPS);
    if (last < first - 1.0) {
        printf("ok: the loss decreases\n");
        rc = 0;
    } else {
        printf("FAIL: the loss did not decrease by at least 1 nat\n");
    }
    mhc_tape_free(&tape);
    mhc_arena_free(&arena);
    gpt_destroy(&model);
    return rc;
error_tape:
    mhc_tape_free(&tape);
    mhc_arena_free(&arena);
error:
    fprintf(stderr, "error: %s\n", mhc_ctx_message(&ctx));
    gpt_destroy(&model);
    return 1;
}
