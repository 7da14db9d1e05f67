/* bench/bench_matmul.c - the matmul kernels (mhc_k_matmul_abt / _ab / _atb) against OpenBLAS gemm,
 * at the shapes of the project's GPT (T*B = 1024 tokens, widths C = 256 and 512):
 *   forward  out[BT,N] = x[BT,K] W[N,K]^T          abt: qkv (N = 3C), proj (N = C), fc1 (N = 4C),
 *                                                        fc2 (K = 4C, N = C), head (N = 256)
 *   backward dx[BT,K] += dout[BT,N] W[N,K]          ab
 *            dW[N,K]  += dout[BT,N]^T x[BT,K]        atb
 * Rates are GFLOP/s (2 M K N per call). Each row interleaves batches of ours and OpenBLAS's
 * (each batch about 40 ms of calls) for five rounds and takes each side's median; the note adds
 * the ratio of the best rounds (less sensitive to other processes). OpenBLAS's
 * worker threads spin for about 0.1 s after a call, so each round sleeps 0.15 s before our batch,
 * and OpenMP's spin after ours is let go for 10 ms before OpenBLAS's; both run on bench_threads()
 * threads. The first row measures this machine's peak fma rate in the same run (independent
 * multiply-adds on every thread), and each row gives both sides as a fraction of it. */
#ifdef BENCH_OPENBLAS
#include <cblas.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__AVX512F__) || (defined(__AVX2__) && defined(__FMA__))
#include <immintrin.h>
#endif

#define BM_ROUNDS 5
#define BM_BATCH_S 0.04

/* The peak: every thread runs 12 independent fma chains (enough to cover latency x throughput)
   on the widest vectors the build targets. Returns GFLOP/s over all threads. */
static double bm_peak_once(long iters) {
    double t0 = bench_now(), sink = 0;
#if MHC__OMP
#pragma omp parallel reduction(+ : sink)
#endif
    {
#if defined(__AVX512F__)
#define BM_VEC __m512
#define BM_SET1(x) _mm512_set1_ps(x)
#define BM_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define BM_LANES 16
#define BM_SUM(v) _mm512_reduce_add_ps(v)
#elif defined(__AVX2__) && defined(__FMA__)
#define BM_VEC __m256
#define BM_SET1(x) _mm256_set1_ps(x)
#define BM_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define BM_LANES 8
#define BM_SUM(v) (_mm256_cvtss_f32(v))
#else
#define BM_VEC float
#define BM_SET1(x) (x)
#define BM_FMA(a, b, c) ((a) * (b) + (c))
#define BM_LANES 1
#define BM_SUM(v) (v)
#endif
        BM_VEC x = BM_SET1(0.999999f), y = BM_SET1(1e-7f);
        BM_VEC a0 = BM_SET1(1.f), a1 = BM_SET1(2.f), a2 = BM_SET1(3.f), a3 = BM_SET1(4.f), a4 = BM_SET1(5.f),
               a5 = BM_SET1(6.f), a6 = BM_SET1(7.f), a7 = BM_SET1(8.f), a8 = BM_SET1(9.f), a9 = BM_SET1(10.f),
               a10 = BM_SET1(11.f), a11 = BM_SET1(12.f);
        long i;
        for (i = 0; i < iters; i++) {
            a0 = BM_FMA(a0, x, y); a1 = BM_FMA(a1, x, y); a2 = BM_FMA(a2, x, y); a3 = BM_FMA(a3, x, y);
            a4 = BM_FMA(a4, x, y); a5 = BM_FMA(a5, x, y); a6 = BM_FMA(a6, x, y); a7 = BM_FMA(a7, x, y);
            a8 = BM_FMA(a8, x, y); a9 = BM_FMA(a9, x, y); a10 = BM_FMA(a10, x, y); a11 = BM_FMA(a11, x, y);
        }
        sink += BM_SUM(a0) + BM_SUM(a1) + BM_SUM(a2) + BM_SUM(a3) + BM_SUM(a4) + BM_SUM(a5) + BM_SUM(a6) +
                BM_SUM(a7) + BM_SUM(a8) + BM_SUM(a9) + BM_SUM(a10) + BM_SUM(a11);
    }
    {
        const double t = bench_now() - t0;
        int nth = 1;
#if MHC__OMP
        nth = omp_get_max_threads();
#endif
        if (sink == 12345.678) printf(" ");   /* keep the chains alive */
        return (double)nth * (double)iters * 12.0 * 2.0 * BM_LANES / t * 1e-9;
    }
}

/* The peak of this run (the best of 3 measurements, measured once; bench_step's flop-limit
   rows use it too). */
static double bm_peak_cached = 0;
static double bm_peak(void) {
    int r;
    if (bm_peak_cached <= 0)
        for (r = 0; r < 3; r++) { double p = bm_peak_once(20000000); bm_peak_cached = p > bm_peak_cached ? p : bm_peak_cached; }
    return bm_peak_cached;
}

/* 0 = ab, 1 = abt, 2 = atb; acc as in the kernels */
static void bm_ours(int op, mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    if (op == 0) mhc_k_matmul_ab(C, A, B, M, K, N, acc);
    else if (op == 1) mhc_k_matmul_abt(C, A, B, M, K, N, acc);
    else mhc_k_matmul_atb(C, A, B, M, K, N, acc);
}

#ifdef BENCH_OPENBLAS
#ifdef MHC_DOUBLE
#define BM_GEMM cblas_dgemm
#else
#define BM_GEMM cblas_sgemm
#endif
static void bm_peer(int op, mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    if (op == 0) BM_GEMM(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1, A, K, B, N, acc, C, N);
    else if (op == 1) BM_GEMM(CblasRowMajor, CblasNoTrans, CblasTrans, M, N, K, 1, A, K, B, K, acc, C, N);
    else BM_GEMM(CblasRowMajor, CblasTrans, CblasNoTrans, M, N, K, 1, A, M, B, N, acc, C, N);
}
#endif

/* seconds per call of a batch of n calls */
static double bm_batch(int peer, int n, int op, mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K,
                       int N, int acc) {
    double t0 = bench_now();
    int i;
    for (i = 0; i < n; i++) {
#ifdef BENCH_OPENBLAS
        if (peer) bm_peer(op, C, A, B, M, K, N, acc); else
#endif
        bm_ours(op, C, A, B, M, K, N, acc);
    }
    (void)peer;
    return (bench_now() - t0) / n;
}

typedef struct bm_shape { const char *what; int op, M, K, N; } bm_shape;

void bench_matmul(void) {
    enum { BT = 1024 };
    const int widths[2] = {256, 512};
    const int nth = bench_threads();
    double peak = 0, logo = 0, logp = 0;
    int nrows = 0, w, s, r;
    char name[96], note[160];
    mhc_rng rng;
    size_t maxa = (size_t)BT * 4 * 512, maxc = (size_t)4 * 512 * 512 > (size_t)BT * 4 * 512 ? (size_t)4 * 512 * 512 : (size_t)BT * 4 * 512;
    mhc_real *A = (mhc_real *)malloc(maxa * sizeof *A), *B = (mhc_real *)malloc(maxa * sizeof *B);
    mhc_real *C = (mhc_real *)malloc(maxc * sizeof *C);
    if (!A || !B || !C) { printf("bench_matmul: out of memory\n"); free(A); free(B); free(C); return; }
    mhc_rng_seed(&rng, 1);
    mhc_rng_fill_normal(&rng, A, maxa, 0, 1);
    mhc_rng_fill_normal(&rng, B, maxa, 0, 1);
    memset(C, 0, maxc * sizeof *C);
#if MHC__OMP
    omp_set_num_threads(nth);
#endif
#ifdef BENCH_OPENBLAS
    openblas_set_num_threads(nth);
#endif
    peak = bm_peak();
    snprintf(name, sizeof name, "fma peak, %d thread%s", nth, nth > 1 ? "s" : "");
    snprintf(note, sizeof note, "GFLOP/s, %s %s; matmul kernel %s (run-time); rows below: op layer MxKxN", MHC_REAL_NAME,
#if defined(__AVX512F__)
             "AVX-512",
#elif defined(__AVX2__) && defined(__FMA__)
             "AVX2",
#else
             "scalar",
#endif
             mhc_k_matmul_isa());
    bench_row(name, peak, 0, note);

    for (w = 0; w < 2; w++) {
        const int c = widths[w];
        /* what, op, M, K, N */
        const bm_shape shapes[] = {
            {"fwd qkv", 1, BT, c, 3 * c},  {"fwd proj", 1, BT, c, c},     {"fwd fc1", 1, BT, c, 4 * c},
            {"fwd fc2", 1, BT, 4 * c, c},  {"fwd head", 1, BT, c, 256},   {"dx qkv", 0, BT, 3 * c, c},
            {"dx fc1", 0, BT, 4 * c, c},   {"dx fc2", 0, BT, c, 4 * c},   {"dx head", 0, BT, 256, c},
            {"dW qkv", 2, 3 * c, BT, c},   {"dW fc2", 2, c, BT, 4 * c},   {"dW head", 2, 256, BT, c},
        };
        for (s = 0; s < (int)(sizeof shapes / sizeof shapes[0]); s++) {
            const bm_shape *sh = &shapes[s];
            const int acc = sh->op != 1;                  /* backward kernels accumulate */
            const double flop = 2.0 * sh->M * sh->K * sh->N;
            double to[BM_ROUNDS], tp[BM_ROUNDS], ours, peer = 0;
            int n;
            snprintf(name, sizeof name, "matmul %s %-8s %dx%dx%d", sh->op == 0 ? "ab " : sh->op == 1 ? "abt" : "atb",
                     sh->what, sh->M, sh->K, sh->N);
            if (!bench_selected(name)) continue;
            /* warm up both, size the batch from ours */
            bm_batch(0, 1, sh->op, C, A, B, sh->M, sh->K, sh->N, acc);
            n = (int)(BM_BATCH_S / bm_batch(0, 2, sh->op, C, A, B, sh->M, sh->K, sh->N, acc)) + 1;
#ifdef BENCH_OPENBLAS
            bm_batch(1, 2, sh->op, C, A, B, sh->M, sh->K, sh->N, acc);
#endif
            for (r = 0; r < BM_ROUNDS; r++) {
                bench_sleep(0.15);
                to[r] = bm_batch(0, n, sh->op, C, A, B, sh->M, sh->K, sh->N, acc);
#ifdef BENCH_OPENBLAS
                bench_sleep(0.01);
                tp[r] = bm_batch(1, n, sh->op, C, A, B, sh->M, sh->K, sh->N, acc);
#else
                tp[r] = 0;
#endif
            }
            ours = flop / bench_median(to, BM_ROUNDS) * 1e-9;   /* (sorts to[] and tp[]: [0] is the best) */
#ifdef BENCH_OPENBLAS
            peer = flop / bench_median(tp, BM_ROUNDS) * 1e-9;
            logo += log(ours);
            logp += log(peer);
            nrows++;
            snprintf(note, sizeof note, "GFLOP/s; of peak: ours %.0f%%, OpenBLAS %.0f%%; best of %d: %.2f",
                     100 * ours / peak, 100 * peer / peak, BM_ROUNDS, tp[0] / to[0]);
#else
            (void)tp;
            snprintf(note, sizeof note, "GFLOP/s, %.0f%% of peak; OpenBLAS not installed", 100 * ours / peak);
#endif
            bench_row(name, ours, peer, note);
        }
    }
    if (nrows) {
        snprintf(note, sizeof note, "GFLOP/s, geometric means over the %d shapes above", nrows);
        bench_row("matmul, all shapes", exp(logo / nrows), exp(logp / nrows), note);
    }
    free(A); free(B); free(C);
}
