/* examples/ex1_sinkhorn.c - step 1 of the ladder: the Birkhoff projection on one 4x4 matrix.
 *
 * mHC keeps the n x n stream-mixing matrix of every layer doubly stochastic (non-negative, every
 * row and every column sums to 1). It gets there from unconstrained logits z with a few steps of
 * Sinkhorn-Knopp: alternately divide every row by its sum and every column by its sum. This
 * program runs the two published starts (MHC_SPEC.md Sec. 3) on the same logits and prints
 *   1. the exp-start iterates (the mHC paper, Eq. 9): M = exp(z), then T_r(T_c(M)) repeated,
 *   2. how far the row and column sums are from 1 after k iterations, exp start against softmax
 *      start (DeepSeek's production form: S = softmax_row(z) + eps, then column/row steps),
 *   3. the mHC-lite permutation mixture A = sum_k softmax(a)_k P_k, doubly stochastic exactly.
 * It checks that the sums converge to 1 and exits non-zero if they do not.
 *
 *   make build/ex1_sinkhorn && ./build/ex1_sinkhorn       (or: make ex1)
 *
 * Library calls used: mhc_sinkhorn_forward (a whole truncated iteration on raw arrays; running
 * it with iters = k gives the k-th iterate), mhc_hc_ds_distance (max |rowsum - 1|, max
 * |colsum - 1|), mhc_perm_count. Everything else is printing. */
#include <stdio.h>
#include <math.h>
#define MHC_IMPLEMENTATION
#include "mhc.h"

#define N 4

static void print_matrix(const char *title, const mhc_real *A) {
    int i, j;
    double cs[N] = {0, 0, 0, 0};
    printf("%s\n", title);
    for (i = 0; i < N; i++) {
        double rs = 0;
        printf("   ");
        for (j = 0; j < N; j++) {
            printf(" %8.5f", (double)A[i * N + j]);
            rs += (double)A[i * N + j];
            cs[j] += (double)A[i * N + j];
        }
        printf("   | row sum %.6f\n", rs);
    }
    printf("   ");
    for (j = 0; j < N; j++) printf(" %8.5f", cs[j]);
    printf("   <- column sums\n\n");
}

int main(void) {
    /* Logits of one token's residual block: any real numbers. A strong diagonal (the identity
       is a natural starting point for a residual mixer) plus some structure. */
    static const mhc_real z[N * N] = {
         2.0f, 0.5f, -1.0f,  0.0f,
         0.3f, 1.5f,  0.2f, -0.7f,
        -0.4f, 1.0f,  0.8f,  2.5f,
         1.2f, -2.0f, 0.1f,  0.6f,
    };
    static const int ks[] = {1, 2, 3, 5, 10, 20};
    mhc_real A[N * N], E[N * N], S[N * N];
    mhc_real lite_logits[24], L[N * N];
    mhc_ctx ctx;
    double re, ce, re_e = 1, ce_e = 1, re_s = 1, ce_s = 1, prev_e = HUGE_VAL, prev_s = HUGE_VAL, maxdiff = 0;
    int i, k, failures = 0, monotone = 1;

    mhc_ctx_init(&ctx);

    /* ---- 1. the exp-start iterates ---- */
    for (i = 0; i < N * N; i++) A[i] = (mhc_real)exp((double)z[i]);
    print_matrix("exp start, iteration 0: M = exp(z)", A);
    for (k = 1; k <= 2; k++) {
        char title[96];
        /* the paper's settings: exp start, eps 0 (preset "paper") */
        if (mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, N, k, 0.0, A, z, 1) != MHC_OK) goto error;
        snprintf(title, sizeof title, "exp start, iteration %d: M <- T_r(T_c(M)) (columns, then rows)", k);
        print_matrix(title, A);
    }
    printf("The row step comes last, so every row sums to 1 exactly after each iteration; the\n"
           "columns are only close to 1 and get closer with every iteration.\n\n");

    /* ---- 2. convergence: exp start against softmax start ---- */
    printf("distance from doubly stochastic after k iterations (max |sum - 1|):\n");
    printf("   k |  exp start: rows     cols   | softmax start: rows     cols\n");
    printf("  ---+------------------------------+-------------------------------\n");
    for (i = 0; i < (int)(sizeof ks / sizeof ks[0]); i++) {
        k = ks[i];
        if (mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, N, k, 0.0, E, z, 1) != MHC_OK) goto error;
        /* DeepSeek production (presets dsv4 and tilekernels): softmax start, eps 1e-6 */
        if (mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, N, k, 1e-6, S, z, 1) != MHC_OK) goto error;
        if (mhc_hc_ds_distance(&ctx, E, 1, N, &re_e, &ce_e) != MHC_OK) goto error;
        if (mhc_hc_ds_distance(&ctx, S, 1, N, &re_s, &ce_s) != MHC_OK) goto error;
        printf("  %2d |  %10.2e  %10.2e     | %10.2e  %10.2e\n", k, re_e, ce_e, re_s, ce_s);
        /* the inexact marginal must shrink as k grows */
        if (ce_e > prev_e * 1.0001 + 1e-7 || re_s > prev_s * 1.0001 + 1e-7) monotone = 0;
        prev_e = ce_e;
        prev_s = re_s;
    }
    printf("\nThe softmax start ends with a column step, so there the COLUMNS are exact (up to the\n"
           "eps in the denominator: sum = s/(s+eps)) and the rows carry the remaining error. With\n"
           "20 iterations (presets dsv4 and paper) both forms are doubly stochastic to ~1e-6.\n"
           "(In a layer, dsv4 uses A = comb^T, so the exact marginal becomes the rows of A.)\n\n");
    print_matrix("exp start after 20 iterations:", E);
    /* Both starts approach the same matrix: softmax_row(z) is exp(z) with each row divided by a
       constant, and the Sinkhorn limit does not change when the start's rows or columns are
       scaled. Only eps and the truncation make them differ. */
    for (i = 0; i < N * N; i++)
        if (fabs((double)E[i] - (double)S[i]) > maxdiff) maxdiff = fabs((double)E[i] - (double)S[i]);
    printf("max |exp start - softmax start| after 20 iterations: %.2e (the same limit)\n\n", maxdiff);

    /* ---- 3. the mHC-lite permutation mixture: exact by construction ---- */
    /* mhc_perm_count(4) = 24 logits, one per permutation matrix P_k (lexicographic order);
       A = sum_k softmax(a)_k P_k is a convex combination of permutation matrices, hence
       doubly stochastic (Birkhoff-von Neumann) with no iteration at all. */
    for (i = 0; i < mhc_perm_count(N); i++) lite_logits[i] = (mhc_real)(0.25 * ((i * 7) % 11) - 1.0);
    lite_logits[0] = 3.0f;   /* P_0 is the identity: favour it */
    if (mhc_sinkhorn_forward(&ctx, MHC_PROJ_PERM, N, 1, 0.0, L, lite_logits, 1) != MHC_OK) goto error;
    print_matrix("mHC-lite: A = sum over the 24 permutations of softmax(a)_k P_k", L);
    if (mhc_hc_ds_distance(&ctx, L, 1, N, &re, &ce) != MHC_OK) goto error;
    printf("mHC-lite: max |rowsum - 1| = %.2e, max |colsum - 1| = %.2e (float rounding only)\n\n", re, ce);

    /* ---- checks ---- */
    if (!monotone) { printf("FAIL: the Sinkhorn error did not shrink with the iterations\n"); failures++; }
    /* after 20 iterations: exp start rows exact, columns within 1e-4; softmax start columns
       within eps of exact, rows within 1e-4 */
    if (!(re_e < 1e-5 && ce_e < 1e-4)) { printf("FAIL: exp start after 20 iterations: %g %g\n", re_e, ce_e); failures++; }
    if (!(ce_s < 1e-5 && re_s < 1e-4)) { printf("FAIL: softmax start after 20 iterations: %g %g\n", re_s, ce_s); failures++; }
    if (!(re < 1e-6 && ce < 1e-6)) { printf("FAIL: the permutation mixture is not exact: %g %g\n", re, ce); failures++; }
    if (!(maxdiff < 1e-4)) { printf("FAIL: the two starts disagree by %g\n", maxdiff); failures++; }
    for (i = 0; i < N * N; i++)
        if (!(E[i] >= 0 && S[i] >= 0 && L[i] >= 0)) { printf("FAIL: a negative entry\n"); failures++; break; }
    if (failures) return 1;
    printf("ok: row and column sums converge to 1 (exp and softmax start); mHC-lite is exact\n");
    return 0;
error:
    fprintf(stderr, "error: %s\n", mhc_ctx_message(&ctx));
    return 1;
}
