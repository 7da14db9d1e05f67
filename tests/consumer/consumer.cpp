// tests/consumer/consumer.cpp - a C++ program outside the tree that uses an installed mhc.h
// (built by tests/test_consumers.sh through find_package(mhc) and through pkg-config).
// It projects random logits with the log-domain Sinkhorn iteration and checks that the result is
// doubly stochastic, and multiplies two matrices against a naive product. Exit 0 and "ok" on success.
#include <cmath>
#include <cstdio>
#define MHC_IMPLEMENTATION
#include <mhc.h>

#ifndef CONSUMER_HOW
#define CONSUMER_HOW "?"
#endif

int main() {
    mhc_ctx ctx;
    mhc_rng rng;
    const int n = 4, T = 3;
    mhc_real logits[T * n * n], out[T * n * n];
    double worst = 0.0;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 7);
    mhc_rng_fill_normal(&rng, logits, T * n * n, 0.0, 1.0);
    if (mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 60, 0.0, out, logits, T) != MHC_OK) {
        std::fprintf(stderr, "consumer: %s\n", mhc_ctx_message(&ctx));
        return 1;
    }
    for (int t = 0; t < T; t++)
        for (int i = 0; i < n; i++) {
            double row = 0, col = 0;
            for (int j = 0; j < n; j++) {
                row += out[t * n * n + i * n + j];
                col += out[t * n * n + j * n + i];
            }
            worst = std::fmax(worst, std::fmax(std::fabs(row - 1), std::fabs(col - 1)));
        }
    // C = A B (3x5 times 5x2) against the naive sum
    mhc_real A[15], B[10], C[6];
    double mm = 0.0;
    mhc_rng_fill_normal(&rng, A, 15, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, B, 10, 0.0, 1.0);
    mhc_k_matmul_ab(C, A, B, 3, 5, 2, 0);
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) {
            double s = 0;
            for (int k = 0; k < 5; k++) s += (double)A[i * 5 + k] * B[k * 2 + j];
            mm = std::fmax(mm, std::fabs(s - C[i * 2 + j]));
        }
    const double tol = sizeof(mhc_real) == 8 ? 1e-12 : 1e-5;
#ifdef _OPENMP
    const char *omp = "with OpenMP";
#else
    const char *omp = "without OpenMP";
#endif
    std::printf("consumer (%s, C++, %s): mhc %s, sinkhorn max |sum - 1| = %.2e, matmul max error = %.2e\n",
                CONSUMER_HOW, omp, mhc_version(), worst, mm);
    if (!(worst <= tol) || !(mm <= tol)) {
        std::printf("FAIL consumer: above the tolerance %.0e\n", tol);
        return 1;
    }
    std::printf("ok\n");
    return 0;
}
