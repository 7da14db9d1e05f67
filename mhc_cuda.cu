/* mhc_cuda.cu - the optional CUDA translation unit of mhc.h (float32).
 *
 * Build: nvcc -O2 -std=c++14 -I. -c mhc_cuda.cu -o mhc_cuda.o   (`make cuda` does it)
 * Link it with one translation unit that defines MHC_IMPLEMENTATION (this file includes only
 * the declarations of mhc.h, with MHC_CUDA, and mhc.h's static block of code shared with the
 * device, with MHC_SHARED_IMPLEMENTATION) and with -lcublas -lcudart.
 *
 * The kernels mirror the CPU functions of mhc.h one for one (see the CUDA section there), and
 * run the CPU's own code where the work is per element or per token (AdamW, the Birkhoff
 * projection and its backward, the mHC gates). Per-row/per-token sums are accumulated in
 * double; Birkhoff projections run one thread per token with their iterates in device scratch
 * (exact backward of the truncated iteration, recomputed from the logits); reductions over
 * tokens (parameter gradients) run one thread per output element with tokens summed in order,
 * so results are deterministic run to run (no atomics anywhere). */
#define MHC_CUDA
#include "mhc.h"

/* MHC_CUDA_EMULATE: a test (tests/cuda_emu.cc) has already defined CPU stand-ins for the CUDA
   runtime, cuBLAS and the launch macros below, and includes this file after them. */
#ifndef MHC_CUDA_EMULATE
#include <cuda_runtime.h>
#include <cublas_v2.h>
/* A kernel launch; _SYNC marks kernels that use __syncthreads (block reductions): the CPU
   emulation runs those with one thread per block. */
#define MHC_CU_LAUNCH(k, grid, block, ...) k<<<(grid), (block)>>>(__VA_ARGS__)
#define MHC_CU_LAUNCH_SYNC(k, grid, block, ...) k<<<(grid), (block)>>>(__VA_ARGS__)
#endif
#include <math.h>
#include <stdio.h>
#include <string.h>

/* ---- errors ---- */

static mhc_result mhc_cu__err(mhc_cuda *cu, const char *fn, const char *what, cudaError_t e) {
    return mhc_fail(cu->ctx, MHC_ERR_STATE, "%s: %s failed: %s (%s)", fn, what, cudaGetErrorName(e),
                    cudaGetErrorString(e));
}

#define MHC_CU_CHECK(fn, call) do { cudaError_t e_ = (call); \
    if (e_ != cudaSuccess) return mhc_cu__err(cu, (fn), #call, e_); } while (0)
#define MHC_CU_LAUNCHED(fn) do { cudaError_t e_ = cudaGetLastError(); \
    if (e_ != cudaSuccess) return mhc_cu__err(cu, (fn), "kernel launch", e_); } while (0)

/* Every entry point: cu must be an initialised session. */
static mhc_result mhc_cu__ready(mhc_cuda *cu, const char *fn) {
    if (!cu) return MHC_ERR_NULL;   /* no context to write a message into */
    if (!cu->ready) return mhc_fail(cu->ctx, MHC_ERR_STATE, "%s: the CUDA session is not initialised (call mhc_cuda_init)", fn);
    return MHC_OK;
}
#define MHC_CU_READY(fn) do { mhc_result r_ = mhc_cu__ready(cu, (fn)); if (r_ != MHC_OK) return r_; } while (0)
#define MHC_CU_NULL(fn, p) do { if (!(p)) return mhc_fail(cu->ctx, MHC_ERR_NULL, "%s: %s is NULL", (fn), #p); } while (0)
#define MHC_CU_POS(fn, v) do { if ((v) < 1) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: %s is %ld, expected >= 1", \
    (fn), #v, (long)(v)); } while (0)

static unsigned mhc_cu__blocks(size_t count, unsigned threads) {
    size_t b = (count + threads - 1) / threads;
    return (unsigned)(b > 2147483647u ? 2147483647u : (b < 1 ? 1 : b));
}

/* The scratch buffer grows to the largest request; its contents do not survive a call. A request
   above the caller's limit (cu->ctx->scratch_max, 0: MHC_SCRATCH_MAX, as on the CPU) is refused
   with MHC_ERR_SIZE before anything is allocated; what names the scratch and its formula. */
static mhc_result mhc_cu__scratch(mhc_cuda *cu, const char *fn, size_t bytes, const char *what, void **out) {
    size_t lim = cu->ctx && cu->ctx->scratch_max ? cu->ctx->scratch_max : (size_t)MHC_SCRATCH_MAX;
    if (bytes > lim)
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: %s needs %.4g bytes of device scratch, more than the limit of %zu "
                        "bytes (mhc_ctx.scratch_max; 0 means MHC_SCRATCH_MAX = %zu): refused before allocating; raise "
                        "scratch_max to allow it", fn, what, (double)bytes, lim, (size_t)MHC_SCRATCH_MAX);
    if (bytes == 0) bytes = 8;
    if (bytes > cu->scratch_bytes) {
        void *p = NULL;
        cudaError_t e;
        if (cu->scratch) {
            /* kernels queued earlier may still read the old buffer */
            cudaError_t se = cudaDeviceSynchronize();
            if (se != cudaSuccess) return mhc_cu__err(cu, fn, "cudaDeviceSynchronize", se);
            cudaFree(cu->scratch);
            cu->scratch = NULL;
            cu->scratch_bytes = 0;
        }
        e = cudaMalloc(&p, bytes);
        if (e != cudaSuccess) return mhc_fail(cu->ctx, MHC_ERR_NOMEM, "%s: cannot allocate %zu bytes of device scratch (%s)",
                                              fn, bytes, cudaGetErrorString(e));
        cu->scratch = p;
        cu->scratch_bytes = bytes;
    }
    *out = cu->scratch;
    return MHC_OK;
}

/* ---- session and memory ---- */

MHCDEF int mhc_cuda_available(void) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) { (void)cudaGetLastError(); return 0; }
    return count < 0 ? 0 : count;
}

MHCDEF mhc_result mhc_cuda_init(mhc_ctx *ctx, mhc_cuda *cu, int device) {
    int count = 0;
    cudaError_t e;
    cublasHandle_t h;
    if (!cu) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_cuda_init: cu is NULL");
    memset(cu, 0, sizeof *cu);
    cu->ctx = ctx;
    e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess || count < 1) {
        (void)cudaGetLastError();
        return mhc_fail(ctx, MHC_ERR_STATE, "mhc_cuda_init: no CUDA device (cudaGetDeviceCount: %s, %d devices)",
                        e != cudaSuccess ? cudaGetErrorString(e) : "ok", e != cudaSuccess ? 0 : count);
    }
    if (device < 0 || device >= count)
        return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_cuda_init: device %d, expected 0..%d", device, count - 1);
    MHC_CU_CHECK("mhc_cuda_init", cudaSetDevice(device));
    if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS)
        return mhc_fail(ctx, MHC_ERR_STATE, "mhc_cuda_init: cublasCreate failed");
    cu->blas = (void *)h;
    cu->device = device;
    cu->ready = 1;
    return MHC_OK;
}

MHCDEF void mhc_cuda_free(mhc_cuda *cu) {
    if (!cu) return;
    if (cu->ready) {
        if (cu->scratch) cudaFree(cu->scratch);
        if (cu->blas) cublasDestroy((cublasHandle_t)cu->blas);
    }
    memset(cu, 0, sizeof *cu);
}

MHCDEF mhc_result mhc_cuda_alloc(mhc_cuda *cu, void **dptr, size_t bytes) {
    MHC_CU_READY("mhc_cuda_alloc");
    MHC_CU_NULL("mhc_cuda_alloc", dptr);
    *dptr = NULL;
    if (bytes == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "mhc_cuda_alloc: 0 bytes requested");
    if (cudaMalloc(dptr, bytes) != cudaSuccess) {
        (void)cudaGetLastError();
        *dptr = NULL;
        return mhc_fail(cu->ctx, MHC_ERR_NOMEM, "mhc_cuda_alloc: cannot allocate %zu bytes on device %d", bytes, cu->device);
    }
    MHC_CU_CHECK("mhc_cuda_alloc", cudaMemset(*dptr, 0, bytes));
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_release(mhc_cuda *cu, void *dptr) {
    MHC_CU_READY("mhc_cuda_release");
    if (dptr) MHC_CU_CHECK("mhc_cuda_release", cudaFree(dptr));
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_upload(mhc_cuda *cu, void *dst_device, const void *src_host, size_t bytes) {
    MHC_CU_READY("mhc_cuda_upload");
    MHC_CU_NULL("mhc_cuda_upload", dst_device);
    MHC_CU_NULL("mhc_cuda_upload", src_host);
    if (bytes) MHC_CU_CHECK("mhc_cuda_upload", cudaMemcpy(dst_device, src_host, bytes, cudaMemcpyHostToDevice));
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_download(mhc_cuda *cu, void *dst_host, const void *src_device, size_t bytes) {
    MHC_CU_READY("mhc_cuda_download");
    MHC_CU_NULL("mhc_cuda_download", dst_host);
    MHC_CU_NULL("mhc_cuda_download", src_device);
    if (bytes) MHC_CU_CHECK("mhc_cuda_download", cudaMemcpy(dst_host, src_device, bytes, cudaMemcpyDeviceToHost));
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_memset0(mhc_cuda *cu, void *dptr, size_t bytes) {
    MHC_CU_READY("mhc_cuda_memset0");
    MHC_CU_NULL("mhc_cuda_memset0", dptr);
    if (bytes) MHC_CU_CHECK("mhc_cuda_memset0", cudaMemset(dptr, 0, bytes));
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_sync(mhc_cuda *cu) {
    MHC_CU_READY("mhc_cuda_sync");
    MHC_CU_CHECK("mhc_cuda_sync", cudaDeviceSynchronize());
    MHC_CU_LAUNCHED("mhc_cuda_sync");
    return MHC_OK;
}

/* ---- device code shared with mhc.h ----
   mhc.h's block "SHARED WITH THE CUDA UNIT" (AdamW on one element, the per-token Birkhoff
   projection and its backward, the mHC gates): the CPU's code itself, not a port. Included a
   second time with MHC_SHARED_IMPLEMENTATION, it emits that block alone, compiled for host and
   device (MHC__HD is __host__ __device__ under nvcc). */
#define MHC_SHARED_IMPLEMENTATION
#include "mhc.h"

/* ---- block reduction (double): blockDim.x a power of two <= 256 ---- */

__device__ static double mhc_cu__block_sum(double v, double *sh) {
    int k;
    __syncthreads();   /* sh may still be read from the previous call */
    sh[threadIdx.x] = v;
    __syncthreads();
    for (k = (int)blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k) sh[threadIdx.x] += sh[threadIdx.x + k];
        __syncthreads();
    }
    return sh[0];
}

__device__ static double mhc_cu__block_max(double v, double *sh) {
    int k;
    __syncthreads();
    sh[threadIdx.x] = v;
    __syncthreads();
    for (k = (int)blockDim.x / 2; k > 0; k >>= 1) {
        if ((int)threadIdx.x < k && sh[threadIdx.x + k] > sh[threadIdx.x]) sh[threadIdx.x] = sh[threadIdx.x + k];
        __syncthreads();
    }
    return sh[0];
}

#define MHC_CU_RT 128   /* threads of the per-row reduction kernels */

/* ---- GEMM (cuBLAS, column-major): a row-major [R,S] array is the column-major [S,R] transpose,
   so row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands. ---- */

static mhc_result mhc_cu__gemm(mhc_cuda *cu, const char *fn, int ta, int tb, float *C, const float *A, const float *B,
                               int M, int K, int N, int acc) {
    const float alpha = 1.0f, beta = acc ? 1.0f : 0.0f;
    cublasStatus_t st;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, C); MHC_CU_NULL(fn, A); MHC_CU_NULL(fn, B);
    MHC_CU_POS(fn, M); MHC_CU_POS(fn, K); MHC_CU_POS(fn, N);
    /* ta: A is stored [K,M] (use A^T); tb: B is stored [N,K] (use B^T) */
    st = cublasSgemm((cublasHandle_t)cu->blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                     N, M, K, &alpha, B, tb ? K : N, A, ta ? M : K, &beta, C, N);
    if (st != CUBLAS_STATUS_SUCCESS)
        return mhc_fail(cu->ctx, MHC_ERR_STATE, "%s: cublasSgemm failed (status %d, M=%d K=%d N=%d)", fn, (int)st, M, K, N);
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_matmul_ab(mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc) {
    return mhc_cu__gemm(cu, "mhc_cuda_matmul_ab", 0, 0, C, A, B, M, K, N, acc);
}
MHCDEF mhc_result mhc_cuda_matmul_abt(mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc) {
    return mhc_cu__gemm(cu, "mhc_cuda_matmul_abt", 0, 1, C, A, B, M, K, N, acc);
}
MHCDEF mhc_result mhc_cuda_matmul_atb(mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc) {
    return mhc_cu__gemm(cu, "mhc_cuda_matmul_atb", 1, 0, C, A, B, M, K, N, acc);
}

/* ---- elementwise and small kernels ---- */

/* y = x + b[col] */
__global__ static void mhc_cu__add_bias_k(float *y, const float *x, const float *b, size_t count, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < count; i += st) y[i] = x[i] + b[i % (size_t)D];
}
/* db[j] += sum_rows dy[r,j] (rows in order) */
__global__ static void mhc_cu__bias_back_k(float *db, const float *dy, int N, int D) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, r;
    double a = 0.0;
    if (j >= D) return;
    for (r = 0; r < N; r++) a += (double)dy[(size_t)r * D + j];
    db[j] += (float)a;
}
/* y = x + z */
__global__ static void mhc_cu__add_k(float *y, const float *x, const float *z, size_t count) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < count; i += st) y[i] = x[i] + z[i];
}

MHCDEF mhc_result mhc_cuda_add_bias_forward(mhc_cuda *cu, float *y, const float *x, const float *b, int N, int D) {
    const char *fn = "mhc_cuda_add_bias_forward";
    size_t count = (size_t)N * (size_t)D;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, y); MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, b); MHC_CU_POS(fn, N); MHC_CU_POS(fn, D);
    MHC_CU_LAUNCH(mhc_cu__add_bias_k, mhc_cu__blocks(count, 256), 256, y, x, b, count, D);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_add_bias_backward(mhc_cuda *cu, float *db, const float *dy, int N, int D) {
    const char *fn = "mhc_cuda_add_bias_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, db); MHC_CU_NULL(fn, dy); MHC_CU_POS(fn, N); MHC_CU_POS(fn, D);
    MHC_CU_LAUNCH(mhc_cu__bias_back_k, mhc_cu__blocks((size_t)D, 128), 128, db, dy, N, D);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_add(mhc_cuda *cu, float *y, const float *x, const float *z, size_t count) {
    const char *fn = "mhc_cuda_add";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, y); MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, z);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    MHC_CU_LAUNCH(mhc_cu__add_k, mhc_cu__blocks(count, 256), 256, y, x, z, count);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_accumulate(mhc_cuda *cu, float *dst, const float *src, size_t count) {
    const char *fn = "mhc_cuda_accumulate";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dst); MHC_CU_NULL(fn, src);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    MHC_CU_LAUNCH(mhc_cu__add_k, mhc_cu__blocks(count, 256), 256, dst, dst, src, count);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* out[t,:] = table[ids[t],:] */
__global__ static void mhc_cu__emb_fwd_k(float *out, const int *ids, const float *table, int T, int D) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < (size_t)T * D; i += st) out[i] = table[(size_t)ids[i / D] * D + i % D];
}
/* dtable[ids[t],c] += dout[t,c]: one thread per column c, tokens in order (no atomics) */
__global__ static void mhc_cu__emb_bwd_k(float *dtable, const float *dout, const int *ids, int T, int D) {
    int c = blockIdx.x * blockDim.x + threadIdx.x, t;
    if (c >= D) return;
    for (t = 0; t < T; t++) dtable[(size_t)ids[t] * D + c] += dout[(size_t)t * D + c];
}
MHCDEF mhc_result mhc_cuda_embedding_forward(mhc_cuda *cu, float *out, const int *ids, const float *table, int T, int D) {
    const char *fn = "mhc_cuda_embedding_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, ids); MHC_CU_NULL(fn, table); MHC_CU_POS(fn, T); MHC_CU_POS(fn, D);
    MHC_CU_LAUNCH(mhc_cu__emb_fwd_k, mhc_cu__blocks((size_t)T * D, 256), 256, out, ids, table, T, D);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_embedding_backward(mhc_cuda *cu, float *dtable, const float *dout, const int *ids, int T, int D) {
    const char *fn = "mhc_cuda_embedding_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dtable); MHC_CU_NULL(fn, dout); MHC_CU_NULL(fn, ids); MHC_CU_POS(fn, T); MHC_CU_POS(fn, D);
    MHC_CU_LAUNCH(mhc_cu__emb_bwd_k, mhc_cu__blocks((size_t)D, 128), 128, dtable, dout, ids, T, D);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* RMSNorm, one block per row: y = x r w, r = 1/sqrt(mean(x^2) + eps) */
__global__ static void mhc_cu__rms_fwd_k(float *y, float *rstd, const float *x, const float *w, int D, double eps) {
    __shared__ double sh[MHC_CU_RT];
    const float *xi = x + (size_t)blockIdx.x * D;
    float *yi = y + (size_t)blockIdx.x * D;
    double ss = 0.0, r;
    int j;
    for (j = threadIdx.x; j < D; j += blockDim.x) ss += (double)xi[j] * (double)xi[j];
    ss = mhc_cu__block_sum(ss, sh);
    r = 1.0 / sqrt(ss / D + eps);
    if (rstd && threadIdx.x == 0) rstd[blockIdx.x] = (float)r;
    for (j = threadIdx.x; j < D; j += blockDim.x) yi[j] = (float)((double)xi[j] * r * (w ? (double)w[j] : 1.0));
}
/* dx += r w dy - x r^3/D sum(dy w x), with r the saved (float) rstd as on the CPU */
__global__ static void mhc_cu__rms_bwd_dx_k(float *dx, const float *dy, const float *x, const float *w,
                                            const float *rstd, int D) {
    __shared__ double sh[MHC_CU_RT];
    const float *xi = x + (size_t)blockIdx.x * D, *dyi = dy + (size_t)blockIdx.x * D;
    float *dxi = dx + (size_t)blockIdx.x * D;
    double r = (double)rstd[blockIdx.x], dot = 0.0, c;
    int k;
    for (k = threadIdx.x; k < D; k += blockDim.x) dot += (double)dyi[k] * (w ? (double)w[k] : 1.0) * (double)xi[k];
    dot = mhc_cu__block_sum(dot, sh);
    c = r * r * r * dot / D;
    for (k = threadIdx.x; k < D; k += blockDim.x)
        dxi[k] += (float)(r * (w ? (double)w[k] : 1.0) * (double)dyi[k] - (double)xi[k] * c);
}
/* dw[j] += sum_rows dy x r */
__global__ static void mhc_cu__rms_bwd_dw_k(float *dw, const float *dy, const float *x, const float *rstd, int N, int D) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, r;
    double s = 0.0;
    if (j >= D) return;
    for (r = 0; r < N; r++) s += (double)dy[(size_t)r * D + j] * (double)x[(size_t)r * D + j] * (double)rstd[r];
    dw[j] += (float)s;
}
MHCDEF mhc_result mhc_cuda_rmsnorm_forward(mhc_cuda *cu, float *y, float *rstd, const float *x, const float *w,
                                           int N, int D, double eps) {
    const char *fn = "mhc_cuda_rmsnorm_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, y); MHC_CU_NULL(fn, x); MHC_CU_POS(fn, N); MHC_CU_POS(fn, D);
    if (!(eps >= 0.0)) return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: eps is %g, expected >= 0", fn, eps);
    MHC_CU_LAUNCH_SYNC(mhc_cu__rms_fwd_k, (unsigned)N, MHC_CU_RT, y, rstd, x, w, D, eps);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_rmsnorm_backward(mhc_cuda *cu, float *dx, float *dw, const float *dy, const float *x,
                                            const float *w, const float *rstd, int N, int D) {
    const char *fn = "mhc_cuda_rmsnorm_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dy); MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, rstd); MHC_CU_POS(fn, N); MHC_CU_POS(fn, D);
    if (dx) MHC_CU_LAUNCH_SYNC(mhc_cu__rms_bwd_dx_k, (unsigned)N, MHC_CU_RT, dx, dy, x, w, rstd, D);
    if (dw) MHC_CU_LAUNCH(mhc_cu__rms_bwd_dw_k, mhc_cu__blocks((size_t)D, 128), 128, dw, dy, x, rstd, N, D);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* GELU (tanh approximation), in double as mhc_act_value / mhc_act_deriv */
#define MHC_CU_GELU_K 0.7978845608028654
#define MHC_CU_GELU_C 0.044715
__global__ static void mhc_cu__gelu_fwd_k(float *y, const float *x, size_t count) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < count; i += st) {
        double v = (double)x[i];
        y[i] = (float)(0.5 * v * (1.0 + tanh(MHC_CU_GELU_K * (v + MHC_CU_GELU_C * v * v * v))));
    }
}
__global__ static void mhc_cu__gelu_bwd_k(float *dx, const float *dy, const float *x, size_t count) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < count; i += st) {
        double v = (double)x[i], t = tanh(MHC_CU_GELU_K * (v + MHC_CU_GELU_C * v * v * v));
        double d = 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * MHC_CU_GELU_K * (1.0 + 3.0 * MHC_CU_GELU_C * v * v);
        dx[i] += (float)(d * (double)dy[i]);
    }
}
MHCDEF mhc_result mhc_cuda_gelu_forward(mhc_cuda *cu, float *y, const float *x, size_t count) {
    const char *fn = "mhc_cuda_gelu_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, y); MHC_CU_NULL(fn, x);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    MHC_CU_LAUNCH(mhc_cu__gelu_fwd_k, mhc_cu__blocks(count, 256), 256, y, x, count);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_gelu_backward(mhc_cuda *cu, float *dx, const float *dy, const float *x, size_t count) {
    const char *fn = "mhc_cuda_gelu_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dx); MHC_CU_NULL(fn, dy); MHC_CU_NULL(fn, x);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    MHC_CU_LAUNCH(mhc_cu__gelu_bwd_k, mhc_cu__blocks(count, 256), 256, dx, dy, x, count);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* Causal attention, one thread per (b, h, t): p = softmax_{t2 <= t}(q.k / sqrt(hs)), out = sum p v */
__global__ static void mhc_cu__attn_fwd_k(float *out, float *att, const float *qkv, int B, int T, int C, int H) {
    long job = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    int t, h, b, t2, i;
    double mx = -HUGE_VAL, s = 0.0;
    const float *q;
    float *a, *o;
    if (job >= (long)B * H * T) return;
    t = (int)(job % T); h = (int)((job / T) % H); b = (int)(job / ((long)T * H));
    q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
    a = att + (((size_t)b * H + h) * T + t) * T;
    o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
    for (t2 = 0; t2 <= t; t2++) {
        const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
        double d = 0.0;
        for (i = 0; i < hs; i++) d += (double)q[i] * (double)k[i];
        d *= scale;
        a[t2] = (float)d;
        if (d > mx) mx = d;
    }
    for (t2 = 0; t2 <= t; t2++) { double e = exp((double)a[t2] - mx); a[t2] = (float)e; s += e; }
    for (t2 = 0; t2 <= t; t2++) a[t2] = (float)((double)a[t2] / s);
    for (t2 = t + 1; t2 < T; t2++) a[t2] = 0.0f;
    for (i = 0; i < hs; i++) {
        double acc = 0.0;
        for (t2 = 0; t2 <= t; t2++) acc += (double)a[t2] * (double)qkv[((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs + i];
        o[i] = (float)acc;
    }
}
/* backward 1, per (b,h,t): sum_pdp[t] = sum_t2 p dp;  dq_t += sum_t2 ds k_t2,  ds = p (dp - sum_pdp) scale */
__global__ static void mhc_cu__attn_bwd_q_k(float *dqkv, double *spdp, const float *dout, const float *att,
                                            const float *qkv, int B, int T, int C, int H) {
    long job = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    int t, h, b, t2, i;
    double sum = 0.0;
    const float *a, *g;
    float *dq;
    if (job >= (long)B * H * T) return;
    t = (int)(job % T); h = (int)((job / T) % H); b = (int)(job / ((long)T * H));
    a = att + (((size_t)b * H + h) * T + t) * T;
    g = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
    dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
    for (t2 = 0; t2 <= t; t2++) {
        const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
        double dp = 0.0;
        for (i = 0; i < hs; i++) dp += (double)v[i] * (double)g[i];
        sum += (double)a[t2] * dp;
    }
    spdp[job] = sum;
    for (t2 = 0; t2 <= t; t2++) {
        const float *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
        const float *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
        double dp = 0.0, ds;
        for (i = 0; i < hs; i++) dp += (double)v[i] * (double)g[i];
        ds = (double)a[t2] * (dp - sum) * scale;
        for (i = 0; i < hs; i++) dq[i] += (float)(ds * (double)k[i]);
    }
}
/* backward 2, per (b,h,t2): dk_t2 += sum_{t >= t2} ds q_t;  dv_t2 += sum_{t >= t2} p dout_t */
__global__ static void mhc_cu__attn_bwd_kv_k(float *dqkv, const double *spdp, const float *dout, const float *att,
                                             const float *qkv, int B, int T, int C, int H) {
    long job = (long)blockIdx.x * blockDim.x + threadIdx.x;
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    int t, h, b, t2, i;
    const float *v;
    float *dk, *dv;
    if (job >= (long)B * H * T) return;
    t2 = (int)(job % T); h = (int)((job / T) % H); b = (int)(job / ((long)T * H));
    v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
    dk = dqkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
    dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
    for (t = t2; t < T; t++) {
        const float *g = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
        const float *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        const double p = (double)att[(((size_t)b * H + h) * T + t) * T + t2];
        double dp = 0.0, ds;
        for (i = 0; i < hs; i++) dp += (double)v[i] * (double)g[i];
        ds = p * (dp - spdp[((long)b * H + h) * T + t]) * scale;
        for (i = 0; i < hs; i++) {
            dv[i] += (float)(p * (double)g[i]);
            dk[i] += (float)(ds * (double)q[i]);
        }
    }
}
static mhc_result mhc_cu__attn_args(mhc_cuda *cu, const char *fn, int B, int T, int C, int H) {
    MHC_CU_POS(fn, B); MHC_CU_POS(fn, T); MHC_CU_POS(fn, C); MHC_CU_POS(fn, H);
    if (C % H != 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: %d heads do not divide C = %d", fn, H, C);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_attention_forward(mhc_cuda *cu, float *out, float *att, const float *qkv,
                                             int B, int T, int C, int H) {
    const char *fn = "mhc_cuda_attention_forward";
    mhc_result r;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, att); MHC_CU_NULL(fn, qkv);
    if ((r = mhc_cu__attn_args(cu, fn, B, T, C, H)) != MHC_OK) return r;
    MHC_CU_LAUNCH(mhc_cu__attn_fwd_k, mhc_cu__blocks((size_t)B * H * T, 64), 64, out, att, qkv, B, T, C, H);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_attention_backward(mhc_cuda *cu, float *dqkv, const float *dout, const float *att,
                                              const float *qkv, int B, int T, int C, int H) {
    const char *fn = "mhc_cuda_attention_backward";
    mhc_result r;
    void *sc;
    size_t jobs = (size_t)B * H * T;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dqkv); MHC_CU_NULL(fn, dout); MHC_CU_NULL(fn, att); MHC_CU_NULL(fn, qkv);
    if ((r = mhc_cu__attn_args(cu, fn, B, T, C, H)) != MHC_OK) return r;
    if ((r = mhc_cu__scratch(cu, fn, jobs * sizeof(double), "attention (B H T doubles)", &sc)) != MHC_OK) return r;
    MHC_CU_LAUNCH(mhc_cu__attn_bwd_q_k, mhc_cu__blocks(jobs, 64), 64, dqkv, (double *)sc, dout, att, qkv, B, T, C, H);
    MHC_CU_LAUNCH(mhc_cu__attn_bwd_kv_k, mhc_cu__blocks(jobs, 64), 64, dqkv, (const double *)sc, dout, att, qkv, B, T, C, H);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* Cross-entropy, one block per row: loss = logsumexp - x[target]; dx += g (softmax - onehot) */
__global__ static void mhc_cu__xent_k(float *losses, float *dlogits, const float *dlosses, const float *logits,
                                      const int *targets, int V) {
    __shared__ double sh[MHC_CU_RT];
    const float *x = logits + (size_t)blockIdx.x * V;
    double mx = -HUGE_VAL, s = 0.0;
    int j, tg = targets[blockIdx.x];
    for (j = threadIdx.x; j < V; j += blockDim.x) if ((double)x[j] > mx) mx = (double)x[j];
    mx = mhc_cu__block_max(mx, sh);
    for (j = threadIdx.x; j < V; j += blockDim.x) s += exp((double)x[j] - mx);
    s = mhc_cu__block_sum(s, sh);
    if (losses && threadIdx.x == 0) losses[blockIdx.x] = (float)(mx + log(s) - (double)x[tg]);
    if (dlogits) {
        float *dx = dlogits + (size_t)blockIdx.x * V;
        const double g = (double)dlosses[blockIdx.x];
        for (j = threadIdx.x; j < V; j += blockDim.x)
            dx[j] += (float)(g * (exp((double)x[j] - mx) / s - (j == tg ? 1.0 : 0.0)));
    }
}
MHCDEF mhc_result mhc_cuda_crossentropy_forward(mhc_cuda *cu, float *losses, const float *logits, const int *targets,
                                                int N, int V) {
    const char *fn = "mhc_cuda_crossentropy_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, losses); MHC_CU_NULL(fn, logits); MHC_CU_NULL(fn, targets); MHC_CU_POS(fn, N); MHC_CU_POS(fn, V);
    MHC_CU_LAUNCH_SYNC(mhc_cu__xent_k, (unsigned)N, MHC_CU_RT, losses, NULL, NULL, logits, targets, V);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_crossentropy_backward(mhc_cuda *cu, float *dlogits, const float *dlosses,
                                                 const float *logits, const int *targets, int N, int V) {
    const char *fn = "mhc_cuda_crossentropy_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, dlogits); MHC_CU_NULL(fn, dlosses); MHC_CU_NULL(fn, logits); MHC_CU_NULL(fn, targets);
    MHC_CU_POS(fn, N); MHC_CU_POS(fn, V);
    MHC_CU_LAUNCH_SYNC(mhc_cu__xent_k, (unsigned)N, MHC_CU_RT, NULL, dlogits, dlosses, logits, targets, V);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* AdamW per element: mhc_adamw_step's own update (mhc__adamw_elem) */
__global__ static void mhc_cu__adamw_k(float *param, const float *grad, float *m, float *v, size_t count,
                                       double beta1, double beta2, double eps, double grad_scale,
                                       double step_size, double bc2_sqrt, double decay) {
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; i < count; i += st) mhc__adamw_elem(param, grad, m, v, i, beta1, beta2, eps, grad_scale, step_size, bc2_sqrt, decay);
}
MHCDEF mhc_result mhc_cuda_adamw_step(mhc_cuda *cu, float *param, const float *grad, float *m, float *v, size_t count,
                                      double lr, double beta1, double beta2, double eps, double weight_decay,
                                      double grad_scale, long step) {
    const char *fn = "mhc_cuda_adamw_step";
    double t = (double)(step < 1 ? 1 : step);
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, param); MHC_CU_NULL(fn, grad); MHC_CU_NULL(fn, m); MHC_CU_NULL(fn, v);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    if (!(beta1 >= 0.0 && beta1 < 1.0) || !(beta2 >= 0.0 && beta2 < 1.0))
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: beta1 = %g, beta2 = %g, expected in [0, 1)", fn, beta1, beta2);
    MHC_CU_LAUNCH(mhc_cu__adamw_k, mhc_cu__blocks(count, 256), 256, param, grad, m, v, count, beta1, beta2, eps, grad_scale,
                                                         lr / (1.0 - pow(beta1, t)), sqrt(1.0 - pow(beta2, t)),
                                                         1.0 - lr * weight_decay);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* sum of squares: per-block partial sums in double, then a second pass (fixed order) */
__global__ static void mhc_cu__sumsq_k(double *part, const float *x, size_t count) {
    __shared__ double sh[256];
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    double a = 0.0;
    for (; i < count; i += st) a += (double)x[i] * (double)x[i];
    a = mhc_cu__block_sum(a, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = a;
}
MHCDEF mhc_result mhc_cuda_sumsq(mhc_cuda *cu, double *out_host, const float *x, size_t count) {
    const char *fn = "mhc_cuda_sumsq";
    enum { NB = 256 };
    double part[NB], s = 0.0;
    void *sc;
    mhc_result r;
    int i;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out_host); MHC_CU_NULL(fn, x);
    if (count == 0) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: count is 0", fn);
    if ((r = mhc_cu__scratch(cu, fn, NB * sizeof(double), "the sum (256 doubles)", &sc)) != MHC_OK) return r;
    MHC_CU_LAUNCH_SYNC(mhc_cu__sumsq_k, NB, 256, (double *)sc, x, count);
    MHC_CU_LAUNCHED(fn);
    MHC_CU_CHECK(fn, cudaMemcpy(part, sc, sizeof part, cudaMemcpyDeviceToHost));
    for (i = 0; i < NB; i++) s += part[i];
    *out_host = s;
    return MHC_OK;
}

/* =========================================================================================
 * The mHC layer. The per-token projection and gates are mhc.h's own code (mhc__proj_token,
 * mhc__proj_fwd / mhc__proj_bwd, mhc__gates_token: its block "SHARED WITH THE CUDA UNIT",
 * included at the top of this file); each token keeps its iterates in its slice of the device
 * scratch.
 * ========================================================================================= */

#define MHC_CU_MAX_N 8   /* streams supported on the device (the permutation mixture: n <= 8 too) */

/* one thread per token: out = project(logits)  or  d_logits += d project^T d_out (mhc__proj_token) */
__global__ static void mhc_cu__sk_k(mhc_hc_spec sp, float *out, float *d_logits, const float *d_out, const float *logits,
                                    int T, double *scratch) {
    size_t t = (size_t)blockIdx.x * blockDim.x + threadIdx.x, nn = (size_t)sp.n * sp.n, nres = (size_t)sp.nres;
    if (t >= (size_t)T) return;
    mhc__proj_token(&sp, logits + t * nres, out ? out + t * nn : NULL, out ? NULL : d_logits + t * nres,
                    out ? NULL : d_out + t * nn, scratch + t * mhc__proj_token_doubles(&sp));
}

static mhc_result mhc_cu__proj_args(mhc_cuda *cu, const char *fn, mhc_projection proj, int n, int iters, double eps, int T,
                                    mhc_hc_spec *sp) {
    if (proj <= MHC_PROJ_PRESET || proj >= MHC_PROJ_COUNT)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: projection %d is not softmax, exp, log, perm, kron or ortho", fn, (int)proj);
    if (proj == MHC_PROJ_KRON)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: projection kron needs its factor list: use mhc_cuda_kron_forward / "
                        "_backward", fn);
    if (n < 1 || n > MHC_CU_MAX_N)
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: n is %d, expected 1..%d on the device", fn, n, MHC_CU_MAX_N);
    if (proj == MHC_PROJ_ORTHO && (iters < 1 || iters > MHC_NS_MAX_ITERS))
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: iters is %d (ns_iters of ortho), expected 1..%d", fn, iters,
                        MHC_NS_MAX_ITERS);
    if (proj != MHC_PROJ_PERM && proj != MHC_PROJ_ORTHO && (iters < 1 || iters > 100000))
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: iters is %d, expected 1..100000", fn, iters);
    if (proj != MHC_PROJ_PERM && proj != MHC_PROJ_ORTHO && !(eps >= 0.0 && eps < HUGE_VAL))
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: eps is %g, expected finite and >= 0", fn, eps);
    MHC_CU_POS(fn, T);
    mhc__proj_spec_make(sp, proj, n, iters, eps);
    return MHC_OK;
}

/* A Kronecker factor list (as mhc.h checks it, with the device's n <= MHC_CU_MAX_N) into *sp. */
static mhc_result mhc_cu__kron_set(mhc_cuda *cu, const char *fn, int nfactors, const int *factors, mhc_hc_spec *sp) {
    int k, prod = 1, R = 0;
    if (!factors) return mhc_fail(cu->ctx, MHC_ERR_NULL, "%s: factors is NULL", fn);
    if (nfactors < 1 || nfactors > MHC_KRON_MAX_FACTORS)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: kron_factors has %d factors, expected 1..%d", fn, nfactors,
                        MHC_KRON_MAX_FACTORS);
    for (k = 0; k < nfactors; k++) {
        if (factors[k] < 1 || factors[k] > MHC_LITE_MAX_N)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: kron_factors[%d] = %d is out of range (each factor 1..%d)", fn, k,
                            factors[k], MHC_LITE_MAX_N);
        prod *= factors[k];
        if (prod > MHC_CU_MAX_N)
            return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: kron_factors: the product exceeds the device's n <= %d", fn,
                            MHC_CU_MAX_N);
        R += (int)mhc__perm_count(factors[k]);
    }
    mhc__proj_spec_make(sp, MHC_PROJ_KRON, prod, 1, 0.0);
    sp->kron_count = nfactors;
    for (k = 0; k < nfactors; k++) sp->kron_factors[k] = factors[k];
    sp->nres = R;
    return MHC_OK;
}

static mhc_result mhc_cu__sinkhorn(mhc_cuda *cu, const char *fn, const mhc_hc_spec *sp, float *out, float *d_logits,
                                   const float *d_out, const float *logits, int T) {
    mhc_result r;
    void *sc;
    size_t per = mhc__proj_token_doubles(sp);
    char what[192];
    snprintf(what, sizeof what, "the projection of %d tokens (each keeps its iterates for the exact backward: %zu doubles "
             "per token for n = %d, projection %s)", T, per, sp->n, mhc_projection_name(sp->projection));
    if ((r = mhc_cu__scratch(cu, fn, (size_t)T * per * sizeof(double), what, &sc)) != MHC_OK) return r;
    MHC_CU_LAUNCH(mhc_cu__sk_k, mhc_cu__blocks((size_t)T, 64), 64, *sp, out, d_logits, d_out, logits, T, (double *)sc);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_sinkhorn_forward(mhc_cuda *cu, mhc_projection proj, int n, int iters, double eps,
                                            float *out, const float *logits, int T) {
    const char *fn = "mhc_cuda_sinkhorn_forward";
    mhc_hc_spec sp;
    mhc_result r;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, logits);
    if ((r = mhc_cu__proj_args(cu, fn, proj, n, iters, eps, T, &sp)) != MHC_OK) return r;
    return mhc_cu__sinkhorn(cu, fn, &sp, out, NULL, NULL, logits, T);
}
MHCDEF mhc_result mhc_cuda_sinkhorn_backward(mhc_cuda *cu, mhc_projection proj, int n, int iters, double eps,
                                             float *d_logits, const float *d_out, const float *logits, int T) {
    const char *fn = "mhc_cuda_sinkhorn_backward";
    mhc_hc_spec sp;
    mhc_result r;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, d_logits); MHC_CU_NULL(fn, d_out); MHC_CU_NULL(fn, logits);
    if ((r = mhc_cu__proj_args(cu, fn, proj, n, iters, eps, T, &sp)) != MHC_OK) return r;
    return mhc_cu__sinkhorn(cu, fn, &sp, NULL, d_logits, d_out, logits, T);
}
MHCDEF mhc_result mhc_cuda_kron_forward(mhc_cuda *cu, int nfactors, const int *factors, float *out, const float *logits,
                                        int T) {
    const char *fn = "mhc_cuda_kron_forward";
    mhc_hc_spec sp;
    mhc_result r;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, logits);
    MHC_CU_POS(fn, T);
    if ((r = mhc_cu__kron_set(cu, fn, nfactors, factors, &sp)) != MHC_OK) return r;
    return mhc_cu__sinkhorn(cu, fn, &sp, out, NULL, NULL, logits, T);
}
MHCDEF mhc_result mhc_cuda_kron_backward(mhc_cuda *cu, int nfactors, const int *factors, float *d_logits,
                                         const float *d_out, const float *logits, int T) {
    const char *fn = "mhc_cuda_kron_backward";
    mhc_hc_spec sp;
    mhc_result r;
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, d_logits); MHC_CU_NULL(fn, d_out); MHC_CU_NULL(fn, logits);
    MHC_CU_POS(fn, T);
    if ((r = mhc_cu__kron_set(cu, fn, nfactors, factors, &sp)) != MHC_OK) return r;
    return mhc_cu__sinkhorn(cu, fn, &sp, NULL, d_logits, d_out, logits, T);
}
/* The projection of a spec with its Sinkhorn knobs (as mhc_hc_proj_*): the spec's own fields
   checked as the standalone entry points check them, the knobs in range. */
static mhc_result mhc_cu__hc_proj(mhc_cuda *cu, const char *fn, const mhc_hc_spec *s, float *out, float *d_logits,
                                  const float *d_out, const float *logits, int T) {
    mhc_hc_spec sp;
    mhc_result r;
    if (s->projection == MHC_PROJ_KRON) {
        MHC_CU_POS(fn, T);
        if ((r = mhc_cu__kron_set(cu, fn, s->kron_count, s->kron_factors, &sp)) != MHC_OK) return r;
        if (sp.n != s->n)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.kron_factors have the product %d, not spec.n = %d (use "
                            "mhc_hc_resolve)", fn, sp.n, s->n);
    } else if ((r = mhc_cu__proj_args(cu, fn, s->projection, s->n, s->projection == MHC_PROJ_ORTHO ? s->ns_iters : s->iters,
                                      s->sinkhorn_eps, T, &sp)) != MHC_OK) {
        return r;
    }
    if (s->nres != sp.nres)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.nres = %d does not match n = %d and projection %s (use "
                        "mhc_hc_resolve)", fn, s->nres, s->n, mhc_projection_name(s->projection));
    if ((int)s->sinkhorn_eps_mode < 0 || s->sinkhorn_eps_mode >= MHC_SK_EPS_COUNT || (int)s->sinkhorn_order < 0 ||
        s->sinkhorn_order >= MHC_SK_ORDER_COUNT || (int)s->exp_shift < 0 || s->exp_shift >= MHC_EXP_SHIFT_COUNT)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.sinkhorn_eps_mode, sinkhorn_order or exp_shift is out of range",
                        fn);
    sp.sinkhorn_eps_mode = s->sinkhorn_eps_mode;
    sp.sinkhorn_order = s->sinkhorn_order;
    sp.exp_shift = s->projection == MHC_PROJ_EXP || s->projection == MHC_PROJ_LOG ? s->exp_shift : MHC_EXP_SHIFT_NONE;
    return mhc_cu__sinkhorn(cu, fn, &sp, out, d_logits, d_out, logits, T);
}
MHCDEF mhc_result mhc_cuda_hc_proj_forward(mhc_cuda *cu, const mhc_hc_spec *s, float *out, const float *logits, int T) {
    const char *fn = "mhc_cuda_hc_proj_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, s); MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, logits);
    return mhc_cu__hc_proj(cu, fn, s, out, NULL, NULL, logits, T);
}
MHCDEF mhc_result mhc_cuda_hc_proj_backward(mhc_cuda *cu, const mhc_hc_spec *s, float *d_logits, const float *d_out,
                                            const float *logits, int T) {
    const char *fn = "mhc_cuda_hc_proj_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, s); MHC_CU_NULL(fn, d_logits); MHC_CU_NULL(fn, d_out); MHC_CU_NULL(fn, logits);
    return mhc_cu__hc_proj(cu, fn, s, NULL, d_logits, d_out, logits, T);
}

/* ---- expand and post ---- */

/* x[t,i,c] = e[t,c] */
__global__ static void mhc_cu__expand_fwd_k(float *x, const float *e, int T, int n, int C) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)T * n * C; q += st) {
        size_t c = q % C, t = q / ((size_t)n * C);
        x[q] = e[t * C + c];
    }
}
/* de[t,c] += sum_i dx[t,i,c] */
__global__ static void mhc_cu__expand_bwd_k(float *de, const float *dx, int T, int n, int C) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)T * C; q += st) {
        size_t c = q % C, t = q / C;
        double a = 0.0;
        int i;
        for (i = 0; i < n; i++) a += (double)dx[(t * n + i) * C + c];
        de[q] += (float)a;
    }
}
/* out[t,i,c] = sum_j A[t,i,j] x[t,j,c] + h_post[t,i] f[t,c] */
__global__ static void mhc_cu__post_fwd_k(float *out, const float *x, const float *A, const float *hpost,
                                          const float *f, int T, int n, int C) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)T * n * C; q += st) {
        size_t c = q % C, i = (q / C) % n, t = q / ((size_t)n * C);
        const float *At = A + t * n * n, *xt = x + t * n * C;
        double a = f ? (double)hpost[t * n + i] * (double)f[t * C + c] : 0.0;
        int j;
        for (j = 0; j < n; j++) a += (double)At[i * n + j] * (double)xt[(size_t)j * C + c];
        out[q] = (float)a;
    }
}
/* dx[t,j,c] += sum_i A[t,i,j] dout[t,i,c];  df[t,c] += sum_i h_post[t,i] dout[t,i,c] */
__global__ static void mhc_cu__post_bwd_x_k(float *dx, float *df, const float *dout, const float *A, const float *hpost,
                                            int T, int n, int C) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)T * C; q += st) {
        size_t c = q % C, t = q / C;
        const float *At = A + t * n * n, *go = dout + t * n * C;
        int i, j;
        if (dx)
            for (j = 0; j < n; j++) {
                double a = 0.0;
                for (i = 0; i < n; i++) a += (double)At[i * n + j] * (double)go[(size_t)i * C + c];
                dx[(t * n + j) * C + c] += (float)a;
            }
        if (df) {
            double a = 0.0;
            for (i = 0; i < n; i++) a += (double)hpost[t * n + i] * (double)go[(size_t)i * C + c];
            df[q] += (float)a;
        }
    }
}
/* dA[t,i,j] += sum_c dout[t,i,c] x[t,j,c];  dh_post[t,i] += sum_c dout[t,i,c] f[t,c]  (thread per (t,i,j')) */
__global__ static void mhc_cu__post_bwd_h_k(float *dA, float *dhp, const float *dout, const float *x, const float *f,
                                            int T, int n, int C) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t t, i, j;
    const float *go, *other;
    double a = 0.0;
    int c;
    if (q >= (size_t)T * n * (n + 1)) return;
    j = q % (n + 1); i = (q / (n + 1)) % n; t = q / ((size_t)n * (n + 1));
    go = dout + (t * n + i) * C;
    if ((int)j < n) {
        if (!dA) return;
        other = x + (t * n + j) * C;
    } else {
        if (!dhp || !f) return;
        other = f + t * C;
    }
    for (c = 0; c < C; c++) a += (double)go[c] * (double)other[c];
    if ((int)j < n) dA[(t * n + i) * n + j] += (float)a;
    else dhp[t * n + i] += (float)a;
}

MHCDEF mhc_result mhc_cuda_hc_expand_forward(mhc_cuda *cu, float *x, const float *e, int T, int n, int C) {
    const char *fn = "mhc_cuda_hc_expand_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, e); MHC_CU_POS(fn, T); MHC_CU_POS(fn, n); MHC_CU_POS(fn, C);
    MHC_CU_LAUNCH(mhc_cu__expand_fwd_k, mhc_cu__blocks((size_t)T * n * C, 256), 256, x, e, T, n, C);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_hc_expand_backward(mhc_cuda *cu, float *d_e, const float *d_x, int T, int n, int C) {
    const char *fn = "mhc_cuda_hc_expand_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, d_e); MHC_CU_NULL(fn, d_x); MHC_CU_POS(fn, T); MHC_CU_POS(fn, n); MHC_CU_POS(fn, C);
    MHC_CU_LAUNCH(mhc_cu__expand_bwd_k, mhc_cu__blocks((size_t)T * C, 256), 256, d_e, d_x, T, n, C);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_hc_post_forward(mhc_cuda *cu, float *out, const float *x, const float *h_res,
                                           const float *h_post, const float *f_out, int T, int n, int C) {
    const char *fn = "mhc_cuda_hc_post_forward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, out); MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, h_res);
    if (f_out) MHC_CU_NULL(fn, h_post);
    MHC_CU_POS(fn, T); MHC_CU_POS(fn, n); MHC_CU_POS(fn, C);
    MHC_CU_LAUNCH(mhc_cu__post_fwd_k, mhc_cu__blocks((size_t)T * n * C, 256), 256, out, x, h_res, h_post, f_out, T, n, C);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}
MHCDEF mhc_result mhc_cuda_hc_post_backward(mhc_cuda *cu, float *d_x, float *d_h_res, float *d_h_post, float *d_f_out,
                                            const float *d_out, const float *x, const float *h_res,
                                            const float *h_post, const float *f_out, int T, int n, int C) {
    const char *fn = "mhc_cuda_hc_post_backward";
    MHC_CU_READY(fn);
    MHC_CU_NULL(fn, d_out); MHC_CU_NULL(fn, x); MHC_CU_NULL(fn, h_res);
    if (f_out) MHC_CU_NULL(fn, h_post);
    MHC_CU_POS(fn, T); MHC_CU_POS(fn, n); MHC_CU_POS(fn, C);
    if (!f_out) d_f_out = NULL;
    if (d_x || d_f_out)
        MHC_CU_LAUNCH(mhc_cu__post_bwd_x_k, mhc_cu__blocks((size_t)T * C, 256), 256, d_x, d_f_out, d_out, h_res, h_post, T, n, C);
    if (d_h_res || (d_h_post && f_out))
        MHC_CU_LAUNCH(mhc_cu__post_bwd_h_k, mhc_cu__blocks((size_t)T * n * (n + 1), 128), 128, d_h_res, d_h_post, d_out, x,
                                                                                     f_out, T, n, C);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

/* ---- the fused pre step and the head (MHC_SPEC.md Sec. 2 and 5), as mhc__pre_fwd_mhc and
   mhc__pre_bwd_mhc in mhc.h, split into kernels:
     mix      one block per token: dot[k] = sum_j x[j] w[k][j] (w = fn * norm_weight), rstd
     tok      one thread per token: gates, projection (forward or its exact backward), du, coef
     li / dx  one thread per (token, channel)
     reduce   one thread per parameter element, tokens summed in order ---- */

typedef struct mhc_cu__pre {
    int n, C, D, T, mr, nres, head, outside;
    mhc_hc_spec spec;          /* the layer's spec, with its knobs: the per-token projection reads it */
    double norm_eps, pre_eps, post_mult;
    const float *x, *fn, *scale, *base, *nw;
    float *li, *hpre, *hpost, *hres;
    const float *g_li, *g_hpre, *g_hpost, *g_hres;
    float *dx, *dfn, *dscale, *dbase, *dnw;
    /* scratch (double) */
    double *sv, *pw, *tmp, *hp, *dlix, *dsc, *coef, *du, *fco, *acc, *gq;   /* gq: d rstd/dx over x, per token */
    size_t pj, tmpd;
} mhc_cu__pre;

__global__ static void mhc_cu__pre_mix_k(mhc_cu__pre p) {
    __shared__ double sh[MHC_CU_RT];
    const int t = blockIdx.x, D = p.D;
    const float *xt = p.x + (size_t)t * D;
    double *sv = p.sv + (size_t)t * (p.mr + 1), a;
    int j, k;
    a = 0.0;
    for (j = threadIdx.x; j < D; j += blockDim.x) a += (double)xt[j] * (double)xt[j];
    a = mhc_cu__block_sum(a, sh);
    if (threadIdx.x == 0) sv[p.mr] = mhc__rstd(a, D, p.norm_eps, p.outside, &p.gq[t]);
    for (k = 0; k < p.mr; k++) {
        const float *row = p.fn + (size_t)k * D;
        a = 0.0;
        for (j = threadIdx.x; j < D; j += blockDim.x)
            a += (p.nw ? (double)xt[j] * (double)p.nw[j] : (double)xt[j]) * (double)row[j];
        a = mhc_cu__block_sum(a, sh);
        if (threadIdx.x == 0) sv[k] = a;
    }
}

/* forward, one thread per token: h_pre (also kept in double for li), h_post, A = orient(project(z)) */
__global__ static void mhc_cu__pre_tok_fwd_k(mhc_cu__pre p) {
    int t = blockIdx.x * blockDim.x + threadIdx.x, n = p.n, nn = n * n, i, j;
    double sp[MHC_CU_MAX_N], spo[MHC_CU_MAX_N], *dot, rstd, *z, *comb;
    if (t >= p.T) return;
    dot = p.sv + (size_t)t * (p.mr + 1);
    rstd = dot[p.mr];
    z = p.tmp + (size_t)t * p.tmpd;
    comb = z + 2 * (size_t)p.nres;
    mhc__gates_token(n, p.nres, p.head, p.scale, p.base, dot, rstd, sp, spo, z);
    for (i = 0; i < n; i++) {
        sp[i] += p.pre_eps;
        p.hp[(size_t)t * n + i] = sp[i];
        if (p.hpre) p.hpre[(size_t)t * n + i] = (float)sp[i];
    }
    if (p.head) return;
    if (p.hpost)
        for (i = 0; i < n; i++) p.hpost[(size_t)t * n + i] = (float)(spo[i] * p.post_mult);
    if (p.hres) {
        float *A = p.hres + (size_t)t * nn;
        mhc__proj_fwd(&p.spec, z, comb, p.pw + (size_t)t * p.pj);
        if (mhc__proj_transposed(&p.spec)) {
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++) A[i * n + j] = (float)comb[j * n + i];
        } else {
            for (i = 0; i < nn; i++) A[i] = (float)comb[i];
        }
    }
}

/* li[t,c] = sum_i h_pre[t,i] x[t,i,c] */
__global__ static void mhc_cu__pre_li_k(mhc_cu__pre p) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)p.T * p.C; q += st) {
        size_t c = q % p.C, t = q / p.C;
        double a = 0.0;
        int i;
        for (i = 0; i < p.n; i++) a += p.hp[t * p.n + i] * (double)p.x[t * p.D + (size_t)i * p.C + c];
        p.li[q] = (float)a;
    }
}

/* dlix[t,i] = sum_c g_li[t,c] x[t,i,c]  (one block per token) */
__global__ static void mhc_cu__pre_dlix_k(mhc_cu__pre p) {
    __shared__ double sh[MHC_CU_RT];
    const int t = blockIdx.x;
    int i, c;
    for (i = 0; i < p.n; i++) {
        double a = 0.0;
        for (c = threadIdx.x; c < p.C; c += blockDim.x)
            a += (double)p.g_li[(size_t)t * p.C + c] * (double)p.x[(size_t)t * p.D + (size_t)i * p.C + c];
        a = mhc_cu__block_sum(a, sh);
        if (threadIdx.x == 0) p.dlix[(size_t)t * p.n + i] = a;
    }
}

/* backward, one thread per token: du (gates and the projection's exact backward), d scale per
   token, coef = d dot, and the rstd term of dx */
__global__ static void mhc_cu__pre_tok_bwd_k(mhc_cu__pre p) {
    int t = blockIdx.x * blockDim.x + threadIdx.x, n = p.n, nn = n * n, i, j, k;
    double sp[MHC_CU_MAX_N], spo[MHC_CU_MAX_N], *dot, rstd, *z, *dz, *otmp, *dcomb, *du, *coef, *dsc, drstd = 0.0;
    if (t >= p.T) return;
    dot = p.sv + (size_t)t * (p.mr + 1);
    rstd = dot[p.mr];
    z = p.tmp + (size_t)t * p.tmpd;
    dz = z + p.nres;
    otmp = z + 2 * (size_t)p.nres;
    dcomb = otmp + nn;
    du = p.du + (size_t)t * p.mr;
    coef = p.coef + (size_t)t * p.mr;
    dsc = p.dsc + (size_t)t * 3;
    mhc__gates_token(n, p.nres, p.head, p.scale, p.base, dot, rstd, sp, spo, z);
    for (i = 0; i < n; i++) {
        double dh = (p.g_hpre ? (double)p.g_hpre[(size_t)t * n + i] : 0.0) + (p.g_li ? p.dlix[(size_t)t * n + i] : 0.0);
        du[i] = dh * sp[i] * (1.0 - sp[i]);
        p.hp[(size_t)t * n + i] = sp[i] + p.pre_eps;
    }
    if (!p.head) {
        for (i = 0; i < n; i++) {
            double dh = p.g_hpost ? (double)p.g_hpost[(size_t)t * n + i] : 0.0;
            du[n + i] = dh * p.post_mult * spo[i] * (1.0 - spo[i]);
        }
        if (p.g_hres) {
            const float *gA = p.g_hres + (size_t)t * nn;
            if (mhc__proj_transposed(&p.spec)) {
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++) dcomb[i * n + j] = (double)gA[j * n + i];
            } else {
                for (i = 0; i < nn; i++) dcomb[i] = (double)gA[i];
            }
            mhc__proj_bwd(&p.spec, z, dcomb, dz, p.pw + (size_t)t * p.pj, otmp);
            for (k = 0; k < p.nres; k++) du[2 * n + k] = dz[k];
        } else {
            for (k = 0; k < p.nres; k++) du[2 * n + k] = 0.0;
        }
    }
    dsc[0] = dsc[1] = dsc[2] = 0.0;
    for (k = 0; k < p.mr; k++) {
        int g = k < n ? 0 : (k < 2 * n ? 1 : 2);
        double sc = (double)p.scale[g];
        dsc[g] += du[k] * dot[k] * rstd;
        coef[k] = du[k] * sc * rstd;
        drstd += du[k] * sc * dot[k];
    }
    p.fco[t] = p.outside ? drstd * p.gq[t] : -drstd * rstd * rstd * rstd / (double)p.D;   /* (d rstd/dx) / x */
}

/* dx[t,j] += (sum_k coef[t,k] fn[k,j]) (* nw[j]) + fco[t] x[t,j] + h_pre[t,i] g_li[t,c] */
__global__ static void mhc_cu__pre_dx_k(mhc_cu__pre p) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)p.T * p.D; q += st) {
        size_t j = q % p.D, t = q / p.D, i = j / p.C, c = j % p.C;
        const double *coef = p.coef + t * p.mr;
        double a = 0.0;
        int k;
        for (k = 0; k < p.mr; k++) a += coef[k] * (double)p.fn[(size_t)k * p.D + j];
        if (p.nw) a *= (double)p.nw[j];
        a += p.fco[t] * (double)p.x[q];
        if (p.g_li) a += p.hp[t * p.n + i] * (double)p.g_li[t * p.C + c];
        p.dx[q] += (float)a;
    }
}

/* acc[k,j] = sum_t coef[t,k] x[t,j];  dfn[k,j] += acc (* nw[j]) */
__global__ static void mhc_cu__pre_dfn_k(mhc_cu__pre p) {
    size_t q = (size_t)blockIdx.x * blockDim.x + threadIdx.x, st = (size_t)gridDim.x * blockDim.x;
    for (; q < (size_t)p.mr * p.D; q += st) {
        size_t j = q % p.D, k = q / p.D;
        double a = 0.0;
        int t;
        for (t = 0; t < p.T; t++) a += p.coef[(size_t)t * p.mr + k] * (double)p.x[(size_t)t * p.D + j];
        if (p.dfn) p.dfn[q] += (float)(p.nw ? a * (double)p.nw[j] : a);
        if (p.dnw) p.acc[q] = a;
    }
}
/* dnw[j] += sum_k acc[k,j] fn[k,j] */
__global__ static void mhc_cu__pre_dnw_k(mhc_cu__pre p) {
    int j = blockIdx.x * blockDim.x + threadIdx.x, k;
    double a = 0.0;
    if (j >= p.D) return;
    for (k = 0; k < p.mr; k++) a += p.acc[(size_t)k * p.D + j] * (double)p.fn[(size_t)k * p.D + j];
    p.dnw[j] += (float)a;
}
/* dbase[k] += sum_t du[t,k];  dscale[g] += sum_t dsc[t,g]  (threads mr .. mr+2) */
__global__ static void mhc_cu__pre_dbase_k(mhc_cu__pre p) {
    int k = blockIdx.x * blockDim.x + threadIdx.x, t;
    double a = 0.0;
    if (k < p.mr) {
        if (!p.dbase) return;
        for (t = 0; t < p.T; t++) a += p.du[(size_t)t * p.mr + k];
        p.dbase[k] += (float)a;
    } else if (k < p.mr + (p.head ? 1 : 3)) {
        int g = k - p.mr;
        if (!p.dscale) return;
        for (t = 0; t < p.T; t++) a += p.dsc[(size_t)t * 3 + g];
        p.dscale[g] += (float)a;
    }
}

/* checks (as mhc.h's mhc__spec_check / mhc__pre_args) and the scratch layout */
static mhc_result mhc_cu__pre_setup(mhc_cuda *cu, const char *fn, const mhc_hc_spec *s, int head, mhc_cu__pre *p,
                                    int T, int C, int backward) {
    size_t nd, Tz, mr1;
    void *sc;
    double *d;
    mhc_result r;
    if (!s) return mhc_fail(cu->ctx, MHC_ERR_NULL, "%s: spec is NULL", fn);
    if (s->n < 1 || s->n > MHC_CU_MAX_N)
        return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: spec.n = %d, expected 1..%d on the device", fn, s->n, MHC_CU_MAX_N);
    if (!head) {
        int nres = s->n * s->n;
        mhc_projection own = s->variant == MHC_VARIANT_LITE ? MHC_PROJ_PERM : s->variant == MHC_VARIANT_KROMHC ? MHC_PROJ_KRON
                           : s->variant == MHC_VARIANT_ORTHO ? MHC_PROJ_ORTHO : MHC_PROJ_PRESET;
        if (s->variant != MHC_VARIANT_MHC && own == MHC_PROJ_PRESET)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: variant %s is not supported on the device (mhc, lite, kromhc and "
                            "ortho are)", fn, mhc_hc_variant_name(s->variant));
        if (s->variant == MHC_VARIANT_MHC ? (s->projection < MHC_PROJ_SOFTMAX || s->projection > MHC_PROJ_LOG)
                                          : s->projection != own)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: variant %s does not go with projection %s (use mhc_hc_resolve)", fn,
                            mhc_hc_variant_name(s->variant), mhc_projection_name(s->projection));
        if (s->projection == MHC_PROJ_PERM) nres = (int)mhc__perm_count(s->n);
        if (s->projection == MHC_PROJ_KRON) {
            mhc_hc_spec k;
            if ((r = mhc_cu__kron_set(cu, fn, s->kron_count, s->kron_factors, &k)) != MHC_OK) return r;
            if (k.n != s->n)
                return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.kron_factors have the product %d, not n = %d (use "
                                "mhc_hc_resolve)", fn, k.n, s->n);
            nres = k.nres;
        }
        if (s->nres != nres || s->m != 2 * s->n + s->nres)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.nres = %d / spec.m = %d do not match n = %d (use mhc_hc_resolve)",
                            fn, s->nres, s->m, s->n);
        if (s->projection <= MHC_PROJ_LOG && (s->iters < 1 || s->iters > 100000))
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.iters = %d, expected 1..100000", fn, s->iters);
        if (s->projection == MHC_PROJ_ORTHO && (s->ns_iters < 1 || s->ns_iters > MHC_NS_MAX_ITERS))
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.ns_iters = %d, expected 1..%d", fn, s->ns_iters,
                            MHC_NS_MAX_ITERS);
        if (s->orient != MHC_ORIENT_H && s->orient != MHC_ORIENT_COMB_T)
            return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec.orient = %d is not h or comb_t", fn, (int)s->orient);
    }
    if (s->norm_scope == MHC_NORM_SCOPE_STREAM)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: norm_scope = stream (one rstd per stream) is not supported on the "
                        "device; run it on the CPU (mhc_hc_pre_* / mhc_hc_head_*)", fn);
    if ((int)s->norm_eps_mode < 0 || s->norm_eps_mode >= MHC_NORM_EPS_COUNT || (int)s->norm_scope < 0 ||
        s->norm_scope >= MHC_NORM_SCOPE_COUNT || (int)s->sinkhorn_eps_mode < 0 || s->sinkhorn_eps_mode >= MHC_SK_EPS_COUNT ||
        (int)s->sinkhorn_order < 0 || s->sinkhorn_order >= MHC_SK_ORDER_COUNT || (int)s->exp_shift < 0 ||
        s->exp_shift >= MHC_EXP_SHIFT_COUNT)
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: a convention knob of the spec (norm_eps_mode, norm_scope, "
                        "sinkhorn_eps_mode, sinkhorn_order, exp_shift) is out of range (use mhc_hc_resolve)", fn);
    if (!(s->norm_eps >= 0.0 && s->norm_eps < HUGE_VAL) || !(s->pre_eps >= 0.0 && s->pre_eps < HUGE_VAL) ||
        !(s->sinkhorn_eps >= 0.0 && s->sinkhorn_eps < HUGE_VAL) || !(s->post_mult >= 0.0 && s->post_mult < HUGE_VAL))
        return mhc_fail(cu->ctx, MHC_ERR_VALUE, "%s: spec epsilons and post_mult must be finite and >= 0", fn);
    if (T < 1 || C < 1) return mhc_fail(cu->ctx, MHC_ERR_SIZE, "%s: T = %d, C = %d, expected both >= 1", fn, T, C);
    if ((double)T * s->n * C > 2e9 || (double)s->n * C > 2e9 / ((head ? s->n : s->m) + 1.0))
        return mhc_fail(cu->ctx, MHC_ERR_OVERFLOW, "%s: sizes too large (T = %d, n = %d, C = %d)", fn, T, s->n, C);
    memset(p, 0, sizeof *p);
    p->n = s->n; p->C = C; p->D = s->n * C; p->T = T; p->head = head;
    p->mr = head ? s->n : s->m;
    p->nres = head ? 0 : s->nres;
    p->spec = *s;
    p->norm_eps = s->norm_eps; p->pre_eps = s->pre_eps; p->post_mult = s->post_mult;
    p->outside = s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE;
    p->pj = head ? 0 : mhc__proj_doubles(s);
    p->tmpd = 2 * (size_t)p->nres + 3 * (size_t)p->n * p->n;
    Tz = (size_t)T;
    mr1 = (size_t)p->mr + 1;
    nd = Tz * mr1 + Tz * p->pj + Tz * p->tmpd + 2 * Tz * p->n + Tz;
    if (backward) nd += Tz * 3 + 2 * Tz * p->mr + Tz + (size_t)p->mr * p->D;
    if ((double)nd * sizeof(double) > 1e15)
        return mhc_fail(cu->ctx, MHC_ERR_OVERFLOW, "%s: device scratch of %g bytes overflows", fn, (double)nd * 8.0);
    if ((r = mhc_cu__scratch(cu, fn, nd * sizeof(double),
                             "the pre step (per token: m + 1 + 2 n doubles and the projection's iterates, "
                             "(2 iters + 4) n^2; the backward also m n C)", &sc)) != MHC_OK)
        return r;
    d = (double *)sc;
    p->sv = d; d += Tz * mr1;
    p->pw = d; d += Tz * p->pj;
    p->tmp = d; d += Tz * p->tmpd;
    p->hp = d; d += Tz * p->n;
    p->dlix = d; d += Tz * p->n;
    p->gq = d; d += Tz;
    if (backward) {
        p->dsc = d; d += Tz * 3;
        p->coef = d; d += Tz * p->mr;
        p->du = d; d += Tz * p->mr;
        p->fco = d; d += Tz;
        p->acc = d;
    }
    return MHC_OK;
}

static mhc_result mhc_cu__pre_forward(mhc_cuda *cu, const char *fn, mhc_cu__pre *p) {
    MHC_CU_LAUNCH_SYNC(mhc_cu__pre_mix_k, (unsigned)p->T, MHC_CU_RT, *p);
    MHC_CU_LAUNCH(mhc_cu__pre_tok_fwd_k, mhc_cu__blocks((size_t)p->T, 64), 64, *p);
    MHC_CU_LAUNCH(mhc_cu__pre_li_k, mhc_cu__blocks((size_t)p->T * p->C, 256), 256, *p);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

static mhc_result mhc_cu__pre_backward(mhc_cuda *cu, const char *fn, mhc_cu__pre *p) {
    MHC_CU_LAUNCH_SYNC(mhc_cu__pre_mix_k, (unsigned)p->T, MHC_CU_RT, *p);
    if (p->g_li) MHC_CU_LAUNCH_SYNC(mhc_cu__pre_dlix_k, (unsigned)p->T, MHC_CU_RT, *p);
    MHC_CU_LAUNCH(mhc_cu__pre_tok_bwd_k, mhc_cu__blocks((size_t)p->T, 64), 64, *p);
    if (p->dx) MHC_CU_LAUNCH(mhc_cu__pre_dx_k, mhc_cu__blocks((size_t)p->T * p->D, 256), 256, *p);
    if (p->dfn || p->dnw) MHC_CU_LAUNCH(mhc_cu__pre_dfn_k, mhc_cu__blocks((size_t)p->mr * p->D, 256), 256, *p);
    if (p->dnw) MHC_CU_LAUNCH(mhc_cu__pre_dnw_k, mhc_cu__blocks((size_t)p->D, 128), 128, *p);
    if (p->dbase || p->dscale) MHC_CU_LAUNCH(mhc_cu__pre_dbase_k, mhc_cu__blocks((size_t)p->mr + 3, 128), 128, *p);
    MHC_CU_LAUNCHED(fn);
    return MHC_OK;
}

MHCDEF mhc_result mhc_cuda_hc_pre_forward(mhc_cuda *cu, const mhc_hc_spec *s,
                                          float *layer_input, float *h_pre, float *h_post, float *h_res,
                                          const float *x, const float *fn, const float *scale,
                                          const float *base, const float *norm_weight, int T, int C) {
    const char *f = "mhc_cuda_hc_pre_forward";
    mhc_cu__pre p;
    mhc_result r;
    MHC_CU_READY(f);
    MHC_CU_NULL(f, layer_input); MHC_CU_NULL(f, x); MHC_CU_NULL(f, fn); MHC_CU_NULL(f, scale); MHC_CU_NULL(f, base);
    if ((r = mhc_cu__pre_setup(cu, f, s, 0, &p, T, C, 0)) != MHC_OK) return r;
    p.x = x; p.fn = fn; p.scale = scale; p.base = base; p.nw = norm_weight;
    p.li = layer_input; p.hpre = h_pre; p.hpost = h_post; p.hres = h_res;
    return mhc_cu__pre_forward(cu, f, &p);
}

MHCDEF mhc_result mhc_cuda_hc_pre_backward(mhc_cuda *cu, const mhc_hc_spec *s,
                                           float *d_x, float *d_fn, float *d_scale, float *d_base, float *d_norm_weight,
                                           const float *d_layer_input, const float *d_h_pre,
                                           const float *d_h_post, const float *d_h_res,
                                           const float *x, const float *fn, const float *scale,
                                           const float *base, const float *norm_weight, int T, int C) {
    const char *f = "mhc_cuda_hc_pre_backward";
    mhc_cu__pre p;
    mhc_result r;
    MHC_CU_READY(f);
    MHC_CU_NULL(f, x); MHC_CU_NULL(f, fn); MHC_CU_NULL(f, scale); MHC_CU_NULL(f, base);
    if ((r = mhc_cu__pre_setup(cu, f, s, 0, &p, T, C, 1)) != MHC_OK) return r;
    p.x = x; p.fn = fn; p.scale = scale; p.base = base; p.nw = norm_weight;
    p.g_li = d_layer_input; p.g_hpre = d_h_pre; p.g_hpost = d_h_post; p.g_hres = d_h_res;
    p.dx = d_x; p.dfn = d_fn; p.dscale = d_scale; p.dbase = d_base; p.dnw = norm_weight ? d_norm_weight : NULL;
    return mhc_cu__pre_backward(cu, f, &p);
}

MHCDEF mhc_result mhc_cuda_hc_head_forward(mhc_cuda *cu, const mhc_hc_spec *s, float *out, float *h,
                                           const float *x, const float *fn, const float *scale,
                                           const float *base, const float *norm_weight, int T, int C) {
    const char *f = "mhc_cuda_hc_head_forward";
    mhc_cu__pre p;
    mhc_result r;
    MHC_CU_READY(f);
    MHC_CU_NULL(f, out); MHC_CU_NULL(f, x); MHC_CU_NULL(f, fn); MHC_CU_NULL(f, scale); MHC_CU_NULL(f, base);
    if ((r = mhc_cu__pre_setup(cu, f, s, 1, &p, T, C, 0)) != MHC_OK) return r;
    p.x = x; p.fn = fn; p.scale = scale; p.base = base; p.nw = norm_weight;
    p.li = out; p.hpre = h;
    return mhc_cu__pre_forward(cu, f, &p);
}

MHCDEF mhc_result mhc_cuda_hc_head_backward(mhc_cuda *cu, const mhc_hc_spec *s,
                                            float *d_x, float *d_fn, float *d_scale, float *d_base, float *d_norm_weight,
                                            const float *d_out, const float *d_h,
                                            const float *x, const float *fn, const float *scale,
                                            const float *base, const float *norm_weight, int T, int C) {
    const char *f = "mhc_cuda_hc_head_backward";
    mhc_cu__pre p;
    mhc_result r;
    MHC_CU_READY(f);
    MHC_CU_NULL(f, x); MHC_CU_NULL(f, fn); MHC_CU_NULL(f, scale); MHC_CU_NULL(f, base);
    if ((r = mhc_cu__pre_setup(cu, f, s, 1, &p, T, C, 1)) != MHC_OK) return r;
    p.x = x; p.fn = fn; p.scale = scale; p.base = base; p.nw = norm_weight;
    p.g_li = d_out; p.g_hpre = d_h;
    p.dx = d_x; p.dfn = d_fn; p.dscale = d_scale; p.dbase = d_base; p.dnw = norm_weight ? d_norm_weight : NULL;
    return mhc_cu__pre_backward(cu, f, &p);
}
