/* tests/cuda_emulate.h - CPU stand-ins for the parts of the CUDA runtime and cuBLAS that
 * mhc_cuda.cu uses, so that its kernels run on a machine without a GPU (`make test-cuda-emu`:
 * tests/cuda_emu.cc includes this file, then mhc_cuda.cu, compiled by the host C++ compiler and
 * linked with tests/test_cuda.c). A launch runs every block and every thread of the grid one after the
 * other, except kernels that synchronise a block (MHC_CU_LAUNCH_SYNC: the block reductions):
 * their blocks run one after the other with MHC_EMU_SYNC_THREADS real threads each (std::thread),
 * __syncthreads a barrier between them and __shared__ arrays static (shared by the block's
 * threads, one block at a time). "Device" memory is host memory.
 *
 * What this checks: the kernels' arithmetic and indexing, the host-side orchestration
 * (gpt/gpt_cuda.h) and the scratch layouts, against the CPU implementation. What it
 * cannot check: races between the threads of the plain kernels (run one at a time), block
 * reductions with 128 or 256 threads, the device memory model, launch limits, and cuBLAS itself
 * (replaced by a naive GEMM). `make test-cuda-tsan` runs the emulation under ThreadSanitizer. */
#ifndef MHC_CUDA_EMULATE_H
#define MHC_CUDA_EMULATE_H

#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <pthread.h>
#include <thread>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __shared__ static

/* threads per block of the emulated block reductions (a power of two; the real launches use
   128 or 256: the reduction code is the same for any power of two) */
#ifndef MHC_EMU_SYNC_THREADS
#define MHC_EMU_SYNC_THREADS 4
#endif

struct mhc_emu_dim { unsigned x, y, z; };
static thread_local mhc_emu_dim threadIdx, blockIdx;
static mhc_emu_dim blockDim, gridDim;
static pthread_barrier_t mhc_emu_barrier;
static inline void __syncthreads(void) { pthread_barrier_wait(&mhc_emu_barrier); }

/* plain kernels: every (block, thread) in turn, on the calling thread */
#define MHC_CU_LAUNCH(k, grid, block, ...) do { \
    gridDim.x = (unsigned)(grid); blockDim.x = (unsigned)(block); \
    for (blockIdx.x = 0; blockIdx.x < gridDim.x; blockIdx.x++) \
        for (threadIdx.x = 0; threadIdx.x < blockDim.x; threadIdx.x++) k(__VA_ARGS__); } while (0)
/* block-synchronising kernels: nt_ threads walk the blocks together, a barrier before each block
   (so one block at a time uses the static __shared__ arrays) */
#define MHC_CU_LAUNCH_SYNC(k, grid, block, ...) do { \
    unsigned nt_ = (unsigned)(block) < MHC_EMU_SYNC_THREADS ? (unsigned)(block) : MHC_EMU_SYNC_THREADS; \
    std::vector<std::thread> th_; \
    gridDim.x = (unsigned)(grid); blockDim.x = nt_; \
    pthread_barrier_init(&mhc_emu_barrier, NULL, nt_); \
    for (unsigned q_ = 0; q_ < nt_; q_++) \
        th_.emplace_back([=]() { \
            threadIdx.x = q_; \
            for (blockIdx.x = 0; blockIdx.x < gridDim.x; blockIdx.x++) { __syncthreads(); k(__VA_ARGS__); } \
        }); \
    for (size_t q_ = 0; q_ < th_.size(); q_++) th_[q_].join(); \
    pthread_barrier_destroy(&mhc_emu_barrier); } while (0)

typedef enum cudaError { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 } cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
static inline const char *cudaGetErrorName(cudaError_t e) { return e == cudaSuccess ? "cudaSuccess" : "cudaErrorMemoryAllocation"; }
static inline const char *cudaGetErrorString(cudaError_t e) { return e == cudaSuccess ? "no error" : "out of memory"; }
static inline cudaError_t cudaGetLastError(void) { return cudaSuccess; }
static inline cudaError_t cudaGetDeviceCount(int *n) { *n = 1; return cudaSuccess; }
static inline cudaError_t cudaSetDevice(int d) { (void)d; return cudaSuccess; }
static inline cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }
static inline cudaError_t cudaMalloc(void **p, size_t bytes) {
    *p = malloc(bytes);
    return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
static inline cudaError_t cudaFree(void *p) { free(p); return cudaSuccess; }
static inline cudaError_t cudaMemset(void *p, int v, size_t bytes) { memset(p, v, bytes); return cudaSuccess; }
static inline cudaError_t cudaMemcpy(void *d, const void *s, size_t bytes, cudaMemcpyKind k) {
    (void)k;
    memcpy(d, s, bytes);
    return cudaSuccess;
}

typedef struct mhc_emu_blas *cublasHandle_t;
typedef enum cublasStatus { CUBLAS_STATUS_SUCCESS = 0, CUBLAS_STATUS_ALLOC_FAILED = 3 } cublasStatus_t;
typedef enum cublasOperation { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 } cublasOperation_t;
static inline cublasStatus_t cublasCreate(cublasHandle_t *h) {
    *h = (cublasHandle_t)malloc(1);
    return *h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_ALLOC_FAILED;
}
static inline cublasStatus_t cublasDestroy(cublasHandle_t h) { free((void *)h); return CUBLAS_STATUS_SUCCESS; }
/* column-major C[m,n] = alpha op(A)[m,k] op(B)[k,n] + beta C (beta 0: C not read), float sums */
static inline cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                                         int k, const float *alpha, const float *A, int lda, const float *B, int ldb,
                                         const float *beta, float *C, int ldc) {
    int i, j, q;
    (void)h;
    for (j = 0; j < n; j++)
        for (i = 0; i < m; i++) {
            float acc = 0.0f;
            for (q = 0; q < k; q++) {
                float a = ta == CUBLAS_OP_N ? A[i + (size_t)q * lda] : A[q + (size_t)i * lda];
                float b = tb == CUBLAS_OP_N ? B[q + (size_t)j * ldb] : B[j + (size_t)q * ldb];
                acc += a * b;
            }
            C[i + (size_t)j * ldc] = *alpha * acc + (*beta != 0.0f ? *beta * C[i + (size_t)j * ldc] : 0.0f);
        }
    return CUBLAS_STATUS_SUCCESS;
}

#endif
