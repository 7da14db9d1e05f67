/* mhc.h - Manifold-Constrained Hyper-Connections (mHC), a reference implementation
 * in one stb-style header: tensors, reverse-mode autograd, hyper-connection streams with
 * the Birkhoff projection, and an AdamW trainer. Public domain / MIT (see end of file).
 *
 * ===========================================================================================
 * QUICK START
 * ===========================================================================================
 *   In exactly one C or C++ file:
 *       #define MHC_IMPLEMENTATION
 *       #include "mhc.h"
 *   Everywhere else just #include "mhc.h". Link with -lm (and -fopenmp for threads).
 *
 *       mhc_ctx ctx;  mhc_arena arena;  mhc_tape tape;
 *       mhc_ctx_init(&ctx);
 *       mhc_arena_init(&ctx, &arena, 1 << 20);
 *       mhc_tape_init(&ctx, &tape, &arena);
 *       int shape[2] = {4, 8};
 *       mhc_tensor *x = mhc_tensor_new(&tape, 2, shape, 1);           // [4,8], needs grad
 *       ... fill x->data ...
 *       mhc_tensor *y = mhc_gelu(&tape, x);
 *       mhc_tensor *loss = mhc_mean(&tape, y);
 *       if (!loss || mhc_tape_backward(&tape, loss) != MHC_OK)
 *           fprintf(stderr, "%s\n", mhc_ctx_message(&ctx));
 *       mhc_tape_reset(&tape);       // frees the step's activations (arena reset)
 *       mhc_tape_free(&tape); mhc_arena_free(&arena);
 *
 * ===========================================================================================
 * CONFIGURATION MACROS (define before including the implementation)
 * ===========================================================================================
 *   MHC_IMPLEMENTATION   emit the implementation in this translation unit.
 *   MHC_STATIC           make every function static (private to the translation unit). With it
 *                        one program may include the implementation twice, once per precision.
 *   MHC_DOUBLE           mhc_real is double instead of float (verification, gradient checks).
 *   MHC_MALLOC(sz), MHC_REALLOC(p,sz), MHC_FREE(p)
 *                        the allocator; define all three or none (#error otherwise).
 *   MHC_ASSERT(x)        internal invariant checks (default: assert from <assert.h>). Only for
 *                        programmer errors inside the library; bad input never reaches it.
 *   MHC_NO_OPENMP        ignore OpenMP even when the compiler enables it.
 *   MHC_NO_SIMD          compile only the portable C matmul micro-kernel. Without it, GCC and
 *                        Clang on x86 build the AVX2+FMA and AVX-512 kernels too (target
 *                        attributes, whatever the -m flags) and pick the best one the CPU runs at
 *                        the first matmul; the environment variable MHC_ISA=portable|avx2|avx512
 *                        overrides (see mhc_k_matmul_isa).
 *   MHC_OMP_PASSIVE_DEFAULT
 *                        in one translation unit of an executable: OMP_WAIT_POLICY=passive unless
 *                        the environment sets a policy (see "OPENMP WAIT POLICY" below).
 *   MHC_CUDA             declare the optional CUDA API (implemented in mhc_cuda.cu, float only).
 *   MHC_SHARED_IMPLEMENTATION
 *                        emit only the static block "SHARED WITH THE CUDA UNIT" (AdamW on one
 *                        element, the per-token Birkhoff projection, the mHC gates): mhc_cuda.cu
 *                        compiles it for the device. MHC_IMPLEMENTATION emits it too.
 *
 * ===========================================================================================
 * MEMORY
 * ===========================================================================================
 *   Three owners, all caller-owned structs, no hidden globals:
 *   - mhc_params: the parameter store. Parameters, gradients and the two AdamW moments are four
 *     flat arrays (one allocation each); each parameter tensor points into them, so zeroing all
 *     gradients is one memset and AdamW is one flat loop.
 *   - mhc_arena: a bump allocator for one step's activations, tape nodes and saved values.
 *     mhc_arena_reset() makes everything free again; after the first step the arena holds one
 *     block of the peak size, so a training step does no malloc.
 *   - mhc_tape: the autograd tape, living in an arena. mhc_tape_set_hc_recompute trades some
 *     recomputation in the backward for keeping fewer mHC stream states (paper Sec. 4.3.2).
 *   The raw-array mHC functions (mhc_hc_pre_forward, mhc_sinkhorn_forward, ...) allocate their
 *   scratch once per call with MHC_MALLOC; the tape ops take theirs from the arena.
 *   Limits (checked before anything is allocated, so a small input cannot ask for unbounded memory):
 *   - scratch: one call allocates at most ctx->scratch_max bytes of scratch (0, the default:
 *     MHC_SCRATCH_MAX = 1 GiB, definable); more is refused with MHC_ERR_SIZE and a message naming
 *     the formula. The largest term is the Birkhoff projection, whose exact backward keeps every
 *     Sinkhorn iterate: P = (S + 4) n^2 + S n + 8 doubles per token (S = 2 iters steps, 2 iters - 1
 *     for the softmax start; 2 n! + 8 for the permutation mixture), held for 8 tokens at a time
 *     (n <= 8, softmax or exp start) or one per chunk of tokens (one chunk per OpenMP thread) on
 *     the CPU, and for every token on the GPU. E.g. n = 40, 100000 iterations: P = 2.6 GB,
 *     refused; dsv4 (n = 4, 20 iterations): P = 5.8 KB.
 *   - files: mhc_read_file refuses what is not a regular file and files above MHC_READ_MAX bytes
 *     (1 GiB, definable; mhc_read_file_max takes another limit); .npy files and checkpoints are
 *     read to the size their header gives (exactly the file's size), never more (I/O section).
 *   - counts: tensors and kernels index in int (each tensor's elements, T*n*C of the mHC layer,
 *     at most INT_MAX); trainer steps at most MHC_STEP_MAX.
 *   The matmul kernels pack their operands into local arrays: about 250 KB of stack per thread
 *   (OpenMP worker stacks must allow that; the defaults of glibc and libgomp do).
 *
 * ===========================================================================================
 * ERRORS
 * ===========================================================================================
 *   Errors are values. Checked functions return mhc_result (MHC_OK == 0) or, for ops that
 *   build tensors, a tensor pointer that is NULL on error. The detailed message ("matmul_abt:
 *   a is [4,8] and b is [3,7]; their last dimensions differ") is kept in the caller's mhc_ctx
 *   (mhc_ctx_message). Ops accept NULL inputs and return NULL without overwriting the first
 *   message, so a model's forward pass can be checked once at the end. The library never calls
 *   exit() or abort(), whatever the input.
 *   Raw kernels (mhc_k_*) take raw arrays and do not check: they are the building blocks that
 *   the checked functions call after validating their arguments.
 *   Ops validate every tensor they are given: 1 to 4 dimensions of sizes >= 1 whose product is
 *   its size, data present, and for a tensor a tape made, the op's own tape's arena and the
 *   generation since its last reset (a zeroed mhc_tensor, a tensor of another tape or from a
 *   previous step is MHC_ERR_SHAPE / MHC_ERR_STATE, never a read of freed memory). An arena
 *   serves one tape at a time: if another tape (or mhc_arena_reset / mhc_arena_free) resets it,
 *   this tape's next op or backward fails with MHC_ERR_STATE until mhc_tape_reset.
 *   Limits on memory, files and counts: see MEMORY.
 *
 * ===========================================================================================
 * THREADING
 * ===========================================================================================
 *   With OpenMP (-fopenmp) kernels use `#pragma omp parallel for` over the axis an output
 *   element belongs to: each output is computed by one thread in a fixed order, never with
 *   atomics or cross-thread reductions, so results are bit-identical for any thread count.
 *   The thread count is OpenMP's (OMP_NUM_THREADS or omp_set_num_threads in the caller).
 *   Objects (ctx, arena, tape, params) are not shared between threads by the library; give each
 *   thread of yours its own.
 *
 * ===========================================================================================
 * PRECISION
 * ===========================================================================================
 *   mhc_real is float by default and double under MHC_DOUBLE. Sums of squares, softmax and
 *   Sinkhorn normalisers, the mHC layer's gates and projection, and its dot products over C
 *   (dA, dh_post, the pre gates' gradients) are accumulated in double in both builds. Attention:
 *   the reference kernels (mhc_k_attention_forward/backward, kv_forward) take their dots in
 *   double; the flash kernels the tape uses take the score, value and gradient products in
 *   mhc_real through the GEMM tile and only the softmax normaliser in double. The stream
 *   mixes of the mHC layer (sums of n terms per element: A x + h_post f, sum_i h_pre[i] x_i and
 *   their backward counterparts) are computed in mhc_real. Matrix
 *   products go through the packed GEMM (mhc_k_matmul_*), which accumulates in mhc_real: in the
 *   float build that includes the three big products of the mHC pre step (the logits x fn^T over
 *   n*C, and their two backward products into dx and dfn). The double build is the one used for
 *   finite-difference gradient checks and for golden vectors.
 */

#ifndef MHC_H_INCLUDE
#define MHC_H_INCLUDE

#include <stddef.h>
#include <stdint.h>

#define MHC_VERSION_MAJOR 0
#define MHC_VERSION_MINOR 2
#define MHC_VERSION_PATCH 0
#define MHC_VERSION_STRING "0.2.0"

#ifndef MHCDEF
#ifdef MHC_STATIC
#if defined(__GNUC__) || defined(__clang__)
#define MHCDEF static __attribute__((unused))   /* a TU need not call every function */
#else
#define MHCDEF static
#endif
#else
#define MHCDEF extern
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* =========================================================================================
 * CONFIG AND PORTABILITY
 * The scalar type and a few limits. Everything else in the library is written in mhc_real.
 * ========================================================================================= */

#ifdef MHC_DOUBLE
typedef double mhc_real;
#define MHC_REAL_NAME "float64"
#else
typedef float mhc_real;
#define MHC_REAL_NAME "float32"
#endif

#define MHC_MAX_DIMS 4       /* tensors have 1 to 4 dimensions */
#define MHC_MSG_SIZE 512     /* capacity of the last-error message */
/* "An actual zero" for the double fields of the two configuration structs whose zero fields
   mean "the default": mhc_hc_config (sinkhorn_eps, norm_eps, pre_eps, post_mult: 0 takes the
   preset's value) and mhc_adamw_config (schedule.lr, beta1, beta2, weight_decay, grad_clip: 0
   takes the documented default). Set such a field to MHC_ZERO to ask for 0 itself. */
#define MHC_ZERO (-1.0)

MHCDEF const char *mhc_version(void);   /* "0.2.0 (float32)" or "0.2.0 (float64)" */

/* =========================================================================================
 * RESULTS AND ERRORS
 * mhc_result values and the caller-owned context that keeps the last detailed message.
 * ========================================================================================= */

typedef enum mhc_result {
    MHC_OK = 0,
    MHC_ERR_NULL,        /* a required pointer was NULL */
    MHC_ERR_SIZE,        /* a size was zero, negative or out of range */
    MHC_ERR_SHAPE,       /* shapes do not match */
    MHC_ERR_OVERFLOW,    /* a size computation overflows */
    MHC_ERR_NOMEM,       /* an allocation failed */
    MHC_ERR_VALUE,       /* an argument value is invalid (unknown name, bad option) */
    MHC_ERR_NONFINITE,   /* NaN or Inf where a finite number is required */
    MHC_ERR_STATE,       /* an object is used in the wrong state (e.g. backward twice) */
    MHC_ERR_IO,          /* a file could not be opened, read or written */
    MHC_ERR_FORMAT,      /* a file is malformed, truncated or corrupted */
    MHC_RESULT_COUNT
} mhc_result;

/* The default limit on the scratch memory one call may allocate (bytes): 1 GiB. A program may
   define MHC_SCRATCH_MAX before including the implementation, or set mhc_ctx.scratch_max at run
   time (see MEMORY). */
#ifndef MHC_SCRATCH_MAX
#define MHC_SCRATCH_MAX ((size_t)1 << 30)
#endif

typedef struct mhc_ctx {
    mhc_result last;            /* the code of the last error (MHC_OK if none) */
    char msg[MHC_MSG_SIZE];     /* the last error's detailed message ("" if none) */
    size_t scratch_max;         /* the most scratch (bytes) one call through this context may allocate:
                                   0 (what mhc_ctx_init sets) means MHC_SCRATCH_MAX; kept by
                                   mhc_ctx_clear. A call that would need more returns MHC_ERR_SIZE
                                   naming the formula before allocating anything. */
} mhc_ctx;

MHCDEF const char *mhc_result_string(mhc_result r);   /* "MHC_ERR_SHAPE: shapes do not match" */
MHCDEF void        mhc_ctx_init(mhc_ctx *ctx);
MHCDEF void        mhc_ctx_clear(mhc_ctx *ctx);        /* forget the last error */
MHCDEF const char *mhc_ctx_message(const mhc_ctx *ctx);
/* Record an error in ctx (printf-style message) and return r. Used by the library; callers
   that build on it may use it too. ctx may be NULL (the message is then dropped). */
MHCDEF mhc_result  mhc_fail(mhc_ctx *ctx, mhc_result r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* =========================================================================================
 * RNG
 * Explicit state, seeded, reproducible on every platform (splitmix64 seeding, xoshiro256**).
 * ========================================================================================= */

typedef struct mhc_rng { uint64_t s[4]; } mhc_rng;

MHCDEF void     mhc_rng_seed(mhc_rng *rng, uint64_t seed);
MHCDEF uint64_t mhc_rng_u64(mhc_rng *rng);                /* (rng NULL: 0, as the draws below) */
MHCDEF uint32_t mhc_rng_below(mhc_rng *rng, uint32_t n);   /* uniform in [0, n), n >= 1 (never seeded: 0) */
MHCDEF double   mhc_rng_uniform(mhc_rng *rng);             /* uniform in [0, 1), 53 bits */
MHCDEF double   mhc_rng_normal(mhc_rng *rng);              /* standard normal (Box-Muller) */
/* Fill x[0..count) with mean + std * N(0,1), or with uniform values in [lo, hi). */
MHCDEF void     mhc_rng_fill_normal(mhc_rng *rng, mhc_real *x, size_t count, double mean, double std);
MHCDEF void     mhc_rng_fill_uniform(mhc_rng *rng, mhc_real *x, size_t count, double lo, double hi);

/* =========================================================================================
 * TENSORS, ARENA, PARAMETER STORE
 * A tensor is a view: shape + pointers to data and (optional) gradient. The memory belongs to
 * an arena (activations) or to the parameter store (parameters). Row-major, contiguous.
 * ========================================================================================= */

typedef struct mhc_tensor {
    mhc_real *data;
    mhc_real *grad;           /* NULL when the tensor needs no gradient */
    int ndim;                 /* 1..4 */
    int shape[MHC_MAX_DIMS];  /* unused trailing entries are 1 */
    size_t size;              /* product of the shape */
    const char *name;         /* optional, for messages */
    /* Set by the tape for the tensors it makes (NULL / 0 for mhc_tensor_wrap, parameter stores
       and tensors you fill in yourself): the arena holding the memory and the arena's generation
       then. An op refuses an arena tensor of another arena or of an older generation (made before
       a reset: its memory is gone), instead of reading freed memory. */
    const struct mhc_arena *arena;
    size_t gen;
} mhc_tensor;

typedef struct mhc_arena_block mhc_arena_block;
typedef struct mhc_arena {
    mhc_ctx *ctx;
    mhc_arena_block *head;    /* current block (a chain only before the first reset) */
    size_t used_total;        /* bytes handed out since the last reset */
    size_t peak;              /* high-water mark of used_total */
    size_t capacity;          /* bytes owned in all blocks */
    size_t growths;           /* number of mallocs made (for the no-malloc-in-a-step test) */
    size_t generation;        /* counts resets and frees: what was made before is gone. A tape
                                 records it; an arena serves one tape at a time (a reset by another
                                 tape, or a direct mhc_arena_reset/free, makes this tape's next op
                                 or backward fail with MHC_ERR_STATE until mhc_tape_reset) */
} mhc_arena;

/* Create an arena with an initial block of `bytes` (>= 1). It grows by chaining blocks when a
   step needs more; mhc_arena_reset then replaces the chain by one block of the peak size. */
MHCDEF mhc_result mhc_arena_init(mhc_ctx *ctx, mhc_arena *a, size_t bytes);
MHCDEF void      *mhc_arena_alloc(mhc_arena *a, size_t bytes);   /* 64-byte aligned, NULL + ctx msg on failure */
MHCDEF void      *mhc_arena_calloc(mhc_arena *a, size_t count, size_t size); /* zeroed, overflow-checked */
MHCDEF mhc_result mhc_arena_reset(mhc_arena *a);
MHCDEF void       mhc_arena_free(mhc_arena *a);

/* Shape helpers. mhc_shape_size returns 0 and records an error on bad or overflowing shapes. */
MHCDEF size_t mhc_shape_size(mhc_ctx *ctx, int ndim, const int *shape, const char *what);
MHCDEF int    mhc_tensor_same_shape(const mhc_tensor *a, const mhc_tensor *b);
/* Write "[2,3,4]" into buf (always terminated; "(ndim 0)" when ndim is outside 1..4). Returns buf. */
MHCDEF char  *mhc_shape_str(const mhc_tensor *t, char *buf, size_t cap);

/* The parameter store. Declare every parameter (mhc_params_add), then allocate once
   (mhc_params_alloc): four arrays of `size` reals (data, grad, m, v). */
#define MHC_PARAM_DECAY    1   /* AdamW weight decay applies (matrices, embeddings) */
#define MHC_PARAM_NO_DECAY 0   /* biases, norm weights, static mixing parameters */
typedef struct mhc_params {
    mhc_ctx *ctx;
    mhc_tensor *tensors;      /* count entries, data/grad point into the flat arrays */
    unsigned char *decay;     /* per tensor: MHC_PARAM_DECAY or MHC_PARAM_NO_DECAY */
    size_t *offset;           /* per tensor: offset into the flat arrays */
    char (*names)[48];        /* per tensor name */
    int count, cap;
    size_t size;              /* total number of reals */
    mhc_real *data, *grad, *m, *v;   /* NULL until mhc_params_alloc */
} mhc_params;

MHCDEF mhc_result  mhc_params_init(mhc_ctx *ctx, mhc_params *p);
/* Declare a parameter; returns its index (>= 0) or -1 with a message in ctx. */
MHCDEF int         mhc_params_add(mhc_params *p, const char *name, int ndim, const int *shape, int decay);
MHCDEF mhc_result  mhc_params_alloc(mhc_params *p);   /* all arrays zeroed */
MHCDEF mhc_tensor *mhc_params_get(mhc_params *p, int index);
MHCDEF int         mhc_params_find(const mhc_params *p, const char *name);   /* -1 if absent */
MHCDEF void        mhc_params_zero_grad(mhc_params *p);
MHCDEF void        mhc_params_free(mhc_params *p);

/* =========================================================================================
 * KERNELS
 * Raw-array forward/backward pairs (llm.c style: outputs first, then saved values, then
 * inputs, then sizes). Backward functions ACCUMULATE (+=) into every gradient they are given;
 * a NULL gradient pointer means "not needed". No argument checking here: the checked tape ops
 * below validate first. A kernel with a fast path has its plain reference (mhc_ref_*) beside it
 * (the matmuls here; the mHC layer's, mhc_ref_hc_*, in HYPER-CONNECTIONS); the others are
 * written plainly and are their own reference.
 * ========================================================================================= */

/* Matmul: a cache-blocked, packed GEMM with a register-blocked micro-kernel (AVX-512, AVX2+FMA or
   portable C, chosen at run time, see mhc_k_matmul_isa); threads own output tiles, so the bits do not depend on the
   thread count. Uses about 250 KB of stack per thread for packing (no malloc). acc = 0 never
   reads C. */
/* C[M,N] (+)= A[M,K] B[K,N]          (acc = 0 overwrites, acc = 1 accumulates) */
MHCDEF void mhc_k_matmul_ab (mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[M,K] B[N,K]^T */
MHCDEF void mhc_k_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[K,M]^T B[K,N] */
MHCDEF void mhc_k_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* The matmul micro-kernel in use: "avx512", "avx2+fma" or "portable". Chosen once, at the first
   matmul, as the best one the CPU runs (GCC/Clang on x86: run-time detection, whatever the -m
   flags; elsewhere: what the compile-time target allows; MHC_NO_SIMD: "portable" only), unless the
   environment variable MHC_ISA names another one the CPU runs ("avx2" stands for "avx2+fma"; an
   unknown or unrunnable name is ignored). */
MHCDEF const char *mhc_k_matmul_isa(void);
/* 1 if this build has the named kernel and the CPU can run it, else 0. */
MHCDEF int mhc_k_matmul_isa_runnable(const char *name);
/* Use the named kernel from now on (NULL: back to the automatic choice). Returns 1, or 0 (and
   changes nothing) when the name is unknown or the kernel cannot run here. Not to be called while
   another thread is in a matmul: results differ between kernels (each is tested against the
   naive references), so switch between runs, e.g. in tests. */
MHCDEF int mhc_k_matmul_set_isa(const char *name);
/* Naive triple loops with double accumulation: the references the tests compare against. */
MHCDEF void mhc_ref_matmul_ab (mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
MHCDEF void mhc_ref_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
MHCDEF void mhc_ref_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);

/* RMSNorm over the last dimension: y = x * rsqrt(mean(x^2) + eps) * w   (w may be NULL).
   rstd[N] is saved for the backward: dx += r w dy - x r^3/D sum(dy w x);  dw += sum_rows dy x r. */
MHCDEF void mhc_k_rmsnorm_forward(mhc_real *y, mhc_real *rstd, const mhc_real *x, const mhc_real *w,
                                  int N, int D, double eps);
MHCDEF void mhc_k_rmsnorm_backward(mhc_real *dx, mhc_real *dw, const mhc_real *dy, const mhc_real *x,
                                   const mhc_real *w, const mhc_real *rstd, int N, int D);

/* Elementwise activations: y = f(x); backward dx += f'(x) dy. */
typedef enum mhc_act { MHC_ACT_SIGMOID, MHC_ACT_TANH, MHC_ACT_GELU, MHC_ACT_SILU } mhc_act;
MHCDEF double mhc_act_value(mhc_act act, double x);   /* the scalar definition, in double */
MHCDEF double mhc_act_deriv(mhc_act act, double x);   /* its derivative, in double */
MHCDEF void mhc_k_act_forward(mhc_act act, mhc_real *y, const mhc_real *x, size_t n);
MHCDEF void mhc_k_act_backward(mhc_act act, mhc_real *dx, const mhc_real *dy, const mhc_real *x, size_t n);

/* Elementwise sum with a repeating b: out[i] = a[i] + b[i % nb] for i < n (nb >= n: the same
   shape; nb = D: a bias over the rows of an [n / D, D] matrix; nb = 0 does nothing). out may be a
   (in place), not otherwise overlap a or b. Parallel in blocks; each output is one addition, so
   any thread count gives the same bits. The forward of mhc_add. */
MHCDEF void mhc_k_add(mhc_real *out, const mhc_real *a, const mhc_real *b, size_t n, size_t nb);

/* Stable softmax over the last dimension of [N,D]: y = exp(x - max) / sum.
   Backward: dx += y (dy - sum(dy y)) per row. */
MHCDEF void mhc_k_softmax_forward(mhc_real *y, const mhc_real *x, int N, int D);
MHCDEF void mhc_k_softmax_backward(mhc_real *dx, const mhc_real *dy, const mhc_real *y, int N, int D);

/* Embedding: out[t,:] = table[ids[t],:]. Backward accumulates rows (serial over t per column
   block, deterministic). ids must be in [0, V): checked by the tape op. */
MHCDEF void mhc_k_embedding_forward(mhc_real *out, const int *ids, const mhc_real *table, int T, int D);
MHCDEF void mhc_k_embedding_backward(mhc_real *dtable, const mhc_real *dout, const int *ids, int T, int D);

/* Causal multi-head self-attention over qkv[B,T,3C] (q | k | v, head h uses channels
   h*hs..h*hs+hs-1 of each), out[B,T,C]; att[B,H,T,T] saves the probabilities (row t is zero past t).
   scale = 1/sqrt(hs). */
MHCDEF void mhc_k_attention_forward(mhc_real *out, mhc_real *att, const mhc_real *qkv, int B, int T, int C, int H);
MHCDEF void mhc_k_attention_backward(mhc_real *dqkv, const mhc_real *dout, const mhc_real *att,
                                     const mhc_real *qkv, int B, int T, int C, int H);
/* The same attention, flash-style: per (b, h), blocks of MHC_ATTN_QB queries; a block's scores
   against keys 0 .. its last query (S = Q K^T), their softmax and P V go through the GEMM's serial
   tile (mhc_k_matmul's kernel on this CPU, summed in mhc_real), so no more than MHC_ATTN_QB x T
   scores exist per thread and the [T, T] matrix never does. The softmax is exact: a block holds
   all of its rows' keys. stats [B,H,T,2] keeps each row's score maximum m and its normaliser
   sum_t2 exp((s - m) / sqrt(hs)) (summed in double); the backward recomputes the scores by the same
   tile calls and the probabilities from stats (the same bits as the forward's), then
       dV += P^T dO,  dP = dO V^T,  dS = P (dP - rowsum(dO o O)) / sqrt(hs),  dQ += dS K,  dK += dS^T Q
   block by block (dqkv is accumulated into; out is the forward's output). exp is libm's in the
   double build and, in the float build, the GELU's branch-free exp (mhc__exp_lane and
   its AVX2 form, polynomial truncation 5.3e-9 relative; below -87 a probability is 0). work: nslots * mhc_k_attention_work(T)
   reals; the kernels run at most nslots threads, each with its slot. One (b, h) is one thread's
   work in a fixed order: the same bits for any thread count; across ISAs the GEMM kernel differs
   (tests/test_matmul.c checks each against the double reference). */
#define MHC_ATTN_QB 64
MHCDEF size_t mhc_k_attention_work(int T);
MHCDEF void mhc_k_attention_flash_forward(mhc_real *out, mhc_real *stats, const mhc_real *qkv, int B, int T, int C,
                                          int H, mhc_real *work, int nslots);
MHCDEF void mhc_k_attention_flash_backward(mhc_real *dqkv, const mhc_real *dout, const mhc_real *out,
                                           const mhc_real *stats, const mhc_real *qkv, int B, int T, int C, int H,
                                           mhc_real *work, int nslots);
/* The same attention for Tq new tokens against a key/value cache (inference: no backward). Query i
   sits at position p0 + i and attends to the cache rows 0 .. p0 + i:
       out[i, h] = sum_{t2 <= p0+i} softmax_t2(q[i, h] . k[t2, h] / sqrt(hs)) v[t2, h]
   q [Tq] rows of ldq reals, k and v [p0 + Tq] rows of ldkv reals (head h: channels h*hs ..
   h*hs + hs - 1 of a row; ldq, ldkv >= C: a qkv row has ldq = 3C), out [Tq, C]; att [Tq*H,
   p0 + Tq] is scratch (row i*H + h: the probabilities of query i, head h; zero past p0 + i).
   Decoding one token (Tq = 1) costs O(p0) per head; with p0 = 0 and Tq = T, and k, v pointing
   into the qkv rows, the rows are those of mhc_k_attention_forward (to rounding). Dots and the
   softmax in double, the weighted sum of v in mhc_real. */
MHCDEF void mhc_k_attention_kv_forward(mhc_real *out, mhc_real *att, const mhc_real *q, int ldq, const mhc_real *k,
                                       const mhc_real *v, int ldkv, int Tq, int p0, int C, int H);

/* Cross-entropy over logits[N,V] with integer targets[N]: losses[n] = logsumexp - logit[target].
   Backward: dlogits += dloss[n] * (softmax - onehot). */
MHCDEF void mhc_k_crossentropy_forward(mhc_real *losses, const mhc_real *logits, const int *targets, int N, int V);
MHCDEF void mhc_k_crossentropy_backward(mhc_real *dlogits, const mhc_real *dlosses, const mhc_real *logits,
                                        const int *targets, int N, int V);

/* =========================================================================================
 * AUTOGRAD TAPE AND OPS
 * A tape of coarse ops. Each op validates its inputs, computes the forward result into a new
 * arena tensor and, unless the tape is in no-grad mode or no input needs a gradient, records a
 * node whose hand-written backward accumulates into the inputs' gradients.
 * ========================================================================================= */

typedef struct mhc_node mhc_node;   /* a recorded op (opaque: only the ops below record nodes) */

/* Room on a tape for a family of ops (ops declared in another section that share state over
   the ops of one step, beyond what their nodes hold). The tape stores it and never looks inside;
   the family's section says what it holds and which of the MHC_TAPE_EXT_COUNT entries is its own.
     option  the family's setting (set through its API): 0 after mhc_tape_init, kept by
             mhc_tape_reset;
     step    the family's state for the current step, in the tape's arena: NULL after
             mhc_tape_init; mhc_tape_reset and mhc_tape_free set it back to NULL (its memory goes
             with the step's arena). */
#define MHC_TAPE_EXT_COUNT 1
typedef struct mhc_tape_ext {
    int   option;
    void *step;
} mhc_tape_ext;

typedef struct mhc_tape {
    mhc_ctx *ctx;
    mhc_arena *arena;
    mhc_node *last;             /* newest node */
    int nodes;                  /* number of recorded nodes */
    int no_grad;                /* nonzero: ops record nothing and outputs need no gradient */
    int backward_done;          /* set by mhc_tape_backward until the next reset */
    int failed;                 /* an op failed since the last reset (its message is in ctx) */
    mhc_tape_ext ext[MHC_TAPE_EXT_COUNT];   /* the op families' state (mhc_tape_ext) */
    size_t gen;                 /* arena->generation at the last init or reset (mhc_arena) */
} mhc_tape;

MHCDEF mhc_result mhc_tape_init(mhc_ctx *ctx, mhc_tape *tp, mhc_arena *arena);
MHCDEF int        mhc_tape_set_no_grad(mhc_tape *tp, int no_grad);   /* returns the old value */
/* Seed d(loss)/d(loss) = 1 for a 1-element loss and run every node's backward, newest first.
   Gradients accumulate into parameter gradients (zero them yourself between steps). */
MHCDEF mhc_result mhc_tape_backward(mhc_tape *tp, mhc_tensor *loss);
/* Forget all nodes and the op families' step state (mhc_tape_ext.step), and reset the arena:
   every tensor made on this tape becomes invalid. */
MHCDEF mhc_result mhc_tape_reset(mhc_tape *tp);
MHCDEF void       mhc_tape_free(mhc_tape *tp);   /* the tape owns nothing but its nodes (in the arena) */

/* Point t at caller-owned memory (grad may be NULL): for inputs and parameters kept outside
   an arena or parameter store. */
MHCDEF mhc_result mhc_tensor_wrap(mhc_ctx *ctx, mhc_tensor *t, mhc_real *data, mhc_real *grad, int ndim,
                                  const int *shape);
/* A new arena tensor, data zeroed; with_grad != 0 gives it a zeroed gradient (unless no-grad). */
MHCDEF mhc_tensor *mhc_tensor_new(mhc_tape *tp, int ndim, const int *shape, int with_grad);
/* A view of t with another shape of the same size; shares data and gradient. */
MHCDEF mhc_tensor *mhc_view(mhc_tape *tp, mhc_tensor *t, int ndim, const int *shape);
#define mhc_reshape mhc_view

/* out[M,N] = a[M,K] b[K,N]; a and b are viewed as 2-D: all leading dims of a are M. */
MHCDEF mhc_tensor *mhc_matmul_ab(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b);
/* out[M,N] = a[M,K] b[N,K]^T: the linear layer with weight b[out,in]. */
MHCDEF mhc_tensor *mhc_matmul_abt(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b);
/* out = a + b (same shape), or a[..,D] + b[D] when b is 1-D (bias broadcast over rows). */
MHCDEF mhc_tensor *mhc_add(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b);
MHCDEF mhc_tensor *mhc_mul(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b);     /* out = a * b, same shape, elementwise */
MHCDEF mhc_tensor *mhc_scale(mhc_tape *tp, mhc_tensor *a, double s);        /* out = s a */
/* out = x * rsqrt(mean(x^2) + eps) * w over the last dimension (w [D] may be NULL: no weight) */
MHCDEF mhc_tensor *mhc_rmsnorm(mhc_tape *tp, mhc_tensor *x, mhc_tensor *w, double eps);
MHCDEF mhc_tensor *mhc_activation(mhc_tape *tp, mhc_act act, mhc_tensor *x);   /* out = f(x) elementwise */
MHCDEF mhc_tensor *mhc_sigmoid(mhc_tape *tp, mhc_tensor *x);                /* 1 / (1 + exp(-x)) */
MHCDEF mhc_tensor *mhc_tanh(mhc_tape *tp, mhc_tensor *x);                   /* tanh(x) */
/* gelu, tanh approximation: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
MHCDEF mhc_tensor *mhc_gelu(mhc_tape *tp, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_silu(mhc_tape *tp, mhc_tensor *x);                   /* x sigmoid(x) */
MHCDEF mhc_tensor *mhc_softmax(mhc_tape *tp, mhc_tensor *x);                /* exp(x - max) / sum, over the last dim */
/* out[T,D] = table[ids[t]]; table is [V,D], ids copied into the arena. */
MHCDEF mhc_tensor *mhc_embedding(mhc_tape *tp, mhc_tensor *table, const int *ids, int T);
/* qkv [B,T,3C] (or [B*T,3C]) -> out [B,T,C], causal, H heads. */
MHCDEF mhc_tensor *mhc_attention(mhc_tape *tp, mhc_tensor *qkv, int B, int T, int H);
/* Mean cross-entropy of logits [N,V] against targets[N] -> a 1-element tensor. */
MHCDEF mhc_tensor *mhc_cross_entropy(mhc_tape *tp, mhc_tensor *logits, const int *targets);
/* Reductions to a 1-element tensor (losses for tests and examples). */
MHCDEF mhc_tensor *mhc_sum(mhc_tape *tp, mhc_tensor *x);                    /* sum_i x_i */
MHCDEF mhc_tensor *mhc_mean(mhc_tape *tp, mhc_tensor *x);                   /* sum_i x_i / size */
/* sum(x * w) where w is a constant array of x->size reals (copied): a "random projection" loss. */
MHCDEF mhc_tensor *mhc_dot_const(mhc_tape *tp, mhc_tensor *x, const mhc_real *w);

/* =========================================================================================
 * GRADIENT CHECKER
 * Central finite differences against the tape's gradients, per element and along one random
 * direction over all inputs at once. Meant for the MHC_DOUBLE build.
 * ========================================================================================= */

/* Builds the graph from `inputs` (which it must not reallocate) and returns a 1-element loss. */
typedef mhc_tensor *(*mhc_loss_fn)(mhc_tape *tp, mhc_tensor **inputs, int ninputs, void *user);
typedef struct mhc_gradcheck_result {
    double max_rel_err;       /* max over elements of |a - n| / max(|a|, |n|, floor) */
    double max_abs_err;
    double dir_rel_err;       /* the random-direction check */
    int worst_input, worst_index;
    long evaluations;
} mhc_gradcheck_result;
/* inputs: tensors with data and grad (not made on tp: allocate them yourself or in a param
   store). h: the finite-difference step (1e-6 is a good start in double). floor: the magnitude
   below which errors are taken as absolute (e.g. 1e-8). */
MHCDEF mhc_result mhc_gradcheck(mhc_tape *tp, mhc_loss_fn fn, mhc_tensor **inputs, int ninputs, void *user,
                                double h, double floor, uint64_t seed, mhc_gradcheck_result *res);

/* =========================================================================================
 * HYPER-CONNECTIONS (mHC)
 * The residual stream widened to n streams and mixed per token (MHC_SPEC.md Sec. 1-8):
 * configuration (a preset plus knobs), the Birkhoff projections (Sinkhorn variants, the mHC-lite
 * permutation mixture, the KromHC Kronecker mixture and orthostochastic mixing) as raw-array
 * functions, the layer as raw-array functions and as tape ops (expand, the fused pre step, post,
 * head), the parameters, and the diagnostics.
 *
 * Read first: the plain references of the layer, mhc_ref_hc_pre_forward / _backward,
 * mhc_ref_hc_head_forward / _backward and mhc_ref_hc_post_forward / _backward. They compute it
 * one token at a time, every step of MHC_SPEC.md Sec. 2, 5 and 6 a loop in double under its
 * formula, with the per-token projection mhc__proj_fwd / mhc__proj_bwd (block "SHARED WITH
 * THE CUDA UNIT"). Then the fast path with the same arguments and results, which the tape ops
 * and the trainer run: mhc_hc_pre_* / mhc_hc_head_* (the fused pre step: one GEMM for the
 * logits of all tokens, threads, 8-token Sinkhorn groups) and mhc_k_hc_post_*. The tests hold
 * the two together (tests/test_hc_ref.c) and each against an independent naive reference.
 *
 * Presets (every knob can be overridden on top; MHC_SPEC.md Sec. 4):
 *   MHC_PRESET_DSV4         DeepSeek-V4 production settings: norm_eps 1e-6, pre_eps 1e-6,
 *                           post_mult 2, softmax-start Sinkhorn, 20 iterations, sinkhorn eps
 *                           1e-6, orientation comb_t (A = comb^T), computed the way DeepSeek's
 *                           TileKernels reference does (mhc_pre = norm_fn, split_mixes,
 *                           sinkhorn_normalize, apply_mix; mhc_post; mhc_head).
 *   MHC_PRESET_TILEKERNELS  the same functions with the defaults of TileKernels' mhc_pre
 *                           (tile_kernels/modeling/mhc/functional.py): post_mult_value 1,
 *                           sinkhorn_repeat 10 (norm_eps, pre_eps, sinkhorn_eps 1e-6 as dsv4).
 *   MHC_PRESET_PAPER        the mHC paper (arXiv 2512.24880), Eqs. 7-9 and Table 5: norm_eps
 *                           1e-20, pre_eps 0, post_mult 2, exp-start Sinkhorn (M = exp(z), then
 *                           T_r(T_c(M)) 20 times), sinkhorn eps 0, orientation h (A = comb).
 *   MHC_PRESET_LITE         mHC-lite (arXiv 2601.05732): A = sum_k softmax(z)_k P_k over all n!
 *                           permutation matrices (lexicographic order), built directly (no
 *                           orientation); norm_eps 1e-20, pre_eps 0, post_mult 2. If a Sinkhorn
 *                           projection is forced on it: 20 iterations, eps 0.
 *   MHC_PRESET_KROMHC       KromHC (arXiv 2601.21579; wz1119/KromHC, hyper_conn/Kromhc.py): the
 *                           Kronecker mixture with the peer's factors (factorize_into_twos: 2s,
 *                           then the rest; n = 4: 2,2, n = 8: 2,2,2, n = 6: 2,3; n = 1: 1),
 *                           norm_eps 1e-20 (the peer's F.normalize(x) sqrt(nC) to rounding),
 *                           pre_eps 0, post_mult 2 (its sigmoid and 2 sigmoid gates). Its whole
 *                           layer maps onto mhc.h's parameters (README, "Conventions").
 *   MHC_PRESET_ORTHO        orthostochastic mixing (tokenbender/mHC-manifold-constrained-hyper-
 *                           connections, hyper_connections.py): 5 Newton-Schulz iterations,
 *                           orientation comb_t (the peer mixes with H^T); norm_eps 1e-20, pre_eps 0,
 *                           post_mult 2 (the peer's gates are softmaxes of static logits, not mHC
 *                           gates: this preset keeps mHC's). Forced Sinkhorn (variant mhc) on
 *                           either: exp start, 20 iterations, eps 0, as for lite.
 *   The peers' presets (README "Conventions": the file and snapshot each reproduces, and how the
 *   peer's parameters map onto x, fn, scale, base). Knobs not named are the defaults (inside,
 *   flat, add, col_first, none):
 *   MHC_PRESET_MEGATRON     NVIDIA Megatron-LM (megatron/core/transformer/hyper_connection.py):
 *                           norm_eps 1e-6 outside (1/(||x||/sqrt(nC) + eps)), pre_eps 0,
 *                           post_mult 2, exp start with exp_shift row_max, sinkhorn_order
 *                           row_first, 20 iterations, sinkhorn eps 1e-6 clamp (v/max(s, eps)),
 *                           orientation h. fn = mapping_proj.weight, as it is.
 *   MHC_PRESET_LIGER        LinkedIn Liger-Kernel (src/liger_kernel/ops/mhc.py): norm_eps 1e-6,
 *                           pre_eps 0, post_mult 2, softmax start, 20 iterations, eps 1e-6,
 *                           orientation h (x_out[o] = sum_i h_res[o,i] x[i]). fn = phi^T.
 *   MHC_PRESET_LUCIDRAINS   lucidrains/hyper-connections (mHCv2.py; the same numbers as
 *                           manifold_constrained_hyper_connections.py for one fraction, view and
 *                           proposal): norm_scope stream, norm_eps 1e-20 outside (F.normalize
 *                           divides by max(||x_i||, 1e-12): the same numbers wherever ||x_i||
 *                           >= 1e-12, and 0 for an all-zero stream),
 *                           pre_eps 0, post_mult 2, exp start with exp_shift col_max, 20
 *                           iterations, sinkhorn eps 1e-12 clamp, orientation comb_t. fn is block
 *                           sparse (a stream's logits read that stream's columns only).
 *   MHC_PRESET_MHC_CU       AndreSlavescu/mHC.cu (src/csrc/kernels/mhc_layer.cuh, the dynamic
 *                           layer with the batched Sinkhorn of sinkhorn_knopp.cuh): norm_eps 1e-5,
 *                           pre_eps 0, post_mult 2, exp start, sinkhorn_order row_first, 20
 *                           iterations, sinkhorn eps 1e-5 zero (v/s if s > eps, else 0),
 *                           orientation h. fn = phi_combined, as it is.
 * Convention knobs (MHC_SPEC.md Sec. 8; defaults reproduce Sec. 1-7 bit for bit):
 *   norm_eps_mode      inside: rstd = 1/sqrt(mean(x^2) + norm_eps) (default); outside:
 *                      rstd = 1/(sqrt(mean(x^2)) + norm_eps). Backward: d rstd/dx_j = -rstd^3 x_j/L
 *                      (inside) or -rstd^2 x_j/(L sqrt(mean(x^2))) (outside; 0 for an all-zero
 *                      line, the subgradient torch's norm takes there), L the line's length.
 *   norm_scope         flat: one rstd per token over its n*C values (default); stream: one
 *                      rstd_i per stream over its C values, mix_k = sum_i rstd_i dot(w_k[iC..(i+1)C),
 *                      x_i) (w = fn * norm_weight, as for flat). The head takes both norm knobs;
 *                      hc always normalises per stream (its own definition, Sec. 6) and takes
 *                      norm_eps_mode only.
 *   sinkhorn_eps_mode  each normalising division v/s of the Sinkhorn steps becomes add
 *                      v/(s + eps) (default), clamp v/max(s, eps), threshold v/s if s > eps
 *                      else v, or zero v/s if s > eps else 0 (log domain: the same rules on
 *                      logsumexp against log eps). The additive eps after the softmax start is
 *                      kept in every mode. Backward: exact for the branch the forward took; at
 *                      s == eps clamp takes v/s (the gradient flows through s, as
 *                      torch.clamp(min = eps) does), threshold and zero their else branch
 *                      (threshold: dX = dY; zero: dX = 0).
 *   sinkhorn_order     col_first (default); row_first = the col_first projection of z^T,
 *                      transposed back (the first step normalises rows).
 *   exp_shift          exp and log starts: none (default), row_max or col_max: the start is
 *                      exp(z - max) over each row or column of z itself (the shift is taken on z
 *                      before any transposition). Backward: the exact gradient with the max a
 *                      function of z (ties: the first index), i.e. dz[i][j*] -= sum_j dz'[i][j]
 *                      at each line's argmax j*. Finite for logits of any size (the unshifted exp
 *                      start overflows above ~709.78). Refused with the softmax start and the
 *                      permutation mixture (a preset's value is dropped there).
 *   The Sinkhorn knobs do nothing for the permutation and Kronecker mixtures and the
 *   orthostochastic projection (like iters and eps); the norm knobs apply to every variant.
 * Which path runs: a spec with every knob at its default (the four original presets, kromhc,
 * ortho and liger) runs the fast path below (GEMM, 8-token Sinkhorn groups; the perm, kron and
 * ortho projections are computed one token at a time inside it). A spec with any other knob value runs
 * the per-token path (mhc__pre_fwd_tok / mhc__pre_bwd_tok: one token at a time in double, parallel
 * over chunks of tokens, no GEMM and no groups; the parameter gradients still summed over tokens in
 * order, so bitwise identical for any thread count). The CUDA unit takes every knob but norm_scope
 * = stream, which it refuses with MHC_ERR_VALUE naming the knob.
 * Variants (MHC_SPEC.md Sec. 6): none (the plain residual, n = 1: layer_input = x,
 * out = x + f_out); hc (Hyper-Connections as the mHC paper's Eq. 5 restates them: per-stream
 * RMSNorm over C, tanh gates, unconstrained H_res; fn holds theta [n+2, C] = [pre | post | res]);
 * mhc; lite, kromhc and ortho (mHC with the permutation mixture, the Kronecker mixture, the
 * orthostochastic projection: each variant exactly when its projection is perm, kron, ortho).
 * The head (Sec. 5) is the same for every variant.
 * Orientation: in both DeepSeek presets the last Sinkhorn step normalises columns of comb, and
 * A = comb^T, so the ROWS of A are the exact marginal (rowsum = s/(s+eps)); in the paper preset the
 * last step normalises rows and A = comb: again the rows of A are exact. The other marginal is
 * only approximately 1 after a truncated iteration. The permutation mixture is doubly stochastic
 * to rounding.
 * Log domain (MHC_PROJ_LOG): the exp-start iteration on L = log M; the step M / (sum + eps)
 * becomes L - logaddexp(logsumexp(L), log eps) (plain logsumexp for eps = 0). Same numbers as
 * MHC_PROJ_EXP where exp does not overflow; finite for logits of any size.
 * Kronecker mixture (MHC_PROJ_KRON, KromHC, MHC_SPEC.md Sec. 8): factors a_1..a_K (kron_factors,
 * each 1..8, product n); R = sum_k a_k! logits per token, factor after factor; U_k = sum_r
 * softmax(z_k)_r P_r over the a_k! permutation matrices in lexicographic order (P_r[i][p_r(i)] =
 * 1, as for perm); A = kron(U_1, ..., U_K), the first factor's index varying slowest (numpy.kron).
 * Built directly (no orientation step), doubly stochastic to rounding; fn has 2n + R rows, one
 * res scale. Only 2 x 2 factors are symmetric: with a factor of 3 or more, A and A^T differ (the
 * peer mixes with H^T, but forms only 2 x 2 factors). Raw arrays: mhc_kron_forward / _backward.
 * Orthostochastic (MHC_PROJ_ORTHO, ns_iters K, default 5): X = Z / (||Z||_F + 1e-7); K times
 * A = X X^T, X = 3 X + (-3.2 A + 1.2 A^2) X; comb = X o X (elementwise), then the orientation
 * (comb_t: A = comb^T, as the peer mixes). Doubly stochastic ONLY as the iteration converges to
 * the polar factor of Z: at K = 5 the row and column sums of random logits are off by tenths
 * (up to 0.24 in the issue's example; 0.45 for 50 tokens of N(0,1) 4 x 4 logits in
 * tests/test_kron_ortho.c), at K = 100 they are 1 within 1e-12 for well-conditioned Z; a singular
 * Z never gets there (Z = 0 gives A = 0). Entries are >= 0 always. The trainer and the demo
 * report the distance (mhc_hc_ds_distance) at the default.
 *
 * Zero means "the preset's value": every numeric knob of mhc_hc_config left at 0 takes the
 * preset's value. To ask for an actual zero, set the knob to MHC_ZERO. Negative values other
 * than MHC_ZERO are refused.
 *
 * Sinkhorn backward: exact for the truncated iteration that was run (not the implicit
 * fixed-point gradient). Mode: RECOMPUTE. The backward recomputes the iterates of each token
 * from its logits into a small per-thread scratch ((2 iters + 4) n^2 doubles, 3 n^2 + n more with
 * the Sinkhorn knobs) and runs the
 * exact reverse of every normalisation step; nothing per iteration is stored between forward
 * and backward. The tape op saves only the pre step's matmul results and rstd (m + 1 doubles
 * per token); the raw-array backward recomputes those too.
 *
 * Threads and memory: the per-token work runs over chunks of tokens (one per OpenMP thread,
 * each with its own scratch); reductions over tokens (d_fn, d_base, d_scale, d_norm_weight)
 * run over the axis that owns the output, tokens summed in order: results are bitwise identical
 * for any thread count. Nothing is allocated per token; the raw-array functions allocate their
 * scratch once per call, the tape ops take it from the tape's arena.
 *
 * Numerical range (tested in tests/test_edge.c):
 * - Exp start (MHC_PROJ_EXP, the paper preset) takes exp(z) in double with no shift. A logit above
 *   log(DBL_MAX) ~ 709.78 overflows to +Inf and that token's whole matrix becomes NaN (Inf/Inf
 *   spreads through the column and row steps); with eps = 0, a row or column whose logits are all
 *   below ~ -745 underflows to 0 and gives 0/0 = NaN too (with eps > 0 it stays a zero line).
 *   Nothing is clamped and no error is returned (a clamp would silently change the mathematics);
 *   other tokens are unaffected. exp_shift = row_max or col_max (the megatron and lucidrains
 *   presets) starts from exp(z - max) instead: finite for any finite logits (tests/test_knobs.c
 *   checks it at logits ~715). In the layer the logits are mix * scale[2] + base, and
 *   |mix| <= sqrt(n C) ||w_k|| (the RMS division bounds it), so this takes very large weights.
 *   MHC_PROJ_LOG runs the same iteration on log M with logsumexp: finite and exact for any finite
 *   logits, equal to the exp start wherever that does not overflow. The softmax start and the
 *   permutation and Kronecker mixtures subtract the maximum first and are safe for any finite
 *   logits. The orthostochastic projection divides by ||Z||_F + 1e-7 first (scale-free: finite
 *   for any finite logits whose squares do not overflow); its gradient grows like 1/||Z|| for
 *   small logits and, through Newton-Schulz, like 3^K at small singular values of Z.
 * - A token whose x is all zero: mix = 0 * rsqrt(0 + norm_eps) = 0, so the gates take their bias
 *   values; the gradient with respect to that token's x is w_k * rsqrt(norm_eps) (the RMS factor
 *   has zero derivative there): 1e10 w_k for the paper's norm_eps 1e-20, large but finite in
 *   float. norm_eps = MHC_ZERO (an actual 0) leaves such a token undefined: its outputs are NaN
 *   (0 * Inf); the other tokens are unaffected. Every preset has norm_eps > 0.
 * - n = 1, T = 1 and C = 1 are valid sizes for every function here (n = 1: A is 1 x 1).
 * ========================================================================================= */

#define MHC_LITE_MAX_N 8       /* the permutation mixture needs n! logits per token */
#define MHC_KRON_MAX_FACTORS 10   /* KromHC: at most this many Kronecker factors (2^10 = 1024 streams) */
#define MHC_KRON_MAX_LOGITS 65536 /* KromHC: at most this many residual logits per token (sum a_k!) */
#define MHC_NS_MAX_ITERS 1000     /* orthostochastic: at most this many Newton-Schulz iterations */

typedef enum mhc_hc_preset {
    MHC_PRESET_DSV4 = 0,       /* the default (a zeroed config) */
    MHC_PRESET_TILEKERNELS,
    MHC_PRESET_PAPER,
    MHC_PRESET_LITE,
    MHC_PRESET_KROMHC,         /* KromHC (wz1119/KromHC): the Kronecker mixture, the peer's factors */
    MHC_PRESET_ORTHO,          /* orthostochastic (tokenbender/mHC-...): Newton-Schulz, 5 iterations */
    MHC_PRESET_MEGATRON,       /* the peers' conventions (MHC_SPEC.md Sec. 8; README "Conventions") */
    MHC_PRESET_LIGER,
    MHC_PRESET_LUCIDRAINS,
    MHC_PRESET_MHC_CU,
    MHC_PRESET_COUNT
} mhc_hc_preset;

/* The residual variants (MHC_SPEC.md Sec. 6), for comparisons. */
typedef enum mhc_hc_variant {
    MHC_VARIANT_PRESET = 0,    /* mhc, or lite under MHC_PRESET_LITE */
    MHC_VARIANT_NONE,          /* plain residual x + F(x): n = 1, no parameters */
    MHC_VARIANT_HC,            /* unconstrained Hyper-Connections (tanh gates, per-stream norm) */
    MHC_VARIANT_MHC,           /* mHC with a Sinkhorn projection */
    MHC_VARIANT_LITE,          /* mHC with the permutation mixture (projection MHC_PROJ_PERM) */
    MHC_VARIANT_KROMHC,        /* mHC with the Kronecker mixture (projection MHC_PROJ_KRON) */
    MHC_VARIANT_ORTHO,         /* mHC with orthostochastic mixing (projection MHC_PROJ_ORTHO) */
    MHC_VARIANT_COUNT
} mhc_hc_variant;

typedef enum mhc_projection {
    MHC_PROJ_PRESET = 0,
    MHC_PROJ_SOFTMAX,          /* S = softmax_row(z) + eps; col step; then (iters-1) x (row, col) */
    MHC_PROJ_EXP,              /* M = exp(z); iters x (col step, row step) */
    MHC_PROJ_LOG,              /* the exp-start iteration carried out on log M (logsumexp) */
    MHC_PROJ_PERM,             /* mHC-lite: A = sum_k softmax(z)_k P_k, lexicographic permutations */
    MHC_PROJ_KRON,             /* KromHC: A = kron(U_1, ..., U_K), U_k a permutation mixture of a_k x a_k */
    MHC_PROJ_ORTHO,            /* orthostochastic: H = X o X, X = Newton-Schulz(z / (||z||_F + 1e-7)) */
    MHC_PROJ_COUNT
} mhc_projection;

typedef enum mhc_orient {
    MHC_ORIENT_PRESET = 0,
    MHC_ORIENT_H,              /* A = comb */
    MHC_ORIENT_COMB_T,         /* A = comb^T */
    MHC_ORIENT_COUNT
} mhc_orient;

/* The convention knobs (MHC_SPEC.md Sec. 8; the doc block above). 0 is "the preset's value". */
typedef enum mhc_norm_eps_mode {
    MHC_NORM_EPS_PRESET = 0,
    MHC_NORM_EPS_INSIDE,       /* rstd = 1/sqrt(mean(x^2) + norm_eps) */
    MHC_NORM_EPS_OUTSIDE,      /* rstd = 1/(sqrt(mean(x^2)) + norm_eps) */
    MHC_NORM_EPS_COUNT
} mhc_norm_eps_mode;

typedef enum mhc_norm_scope {
    MHC_NORM_SCOPE_PRESET = 0,
    MHC_NORM_SCOPE_FLAT,       /* one rstd per token over n*C values */
    MHC_NORM_SCOPE_STREAM,     /* one rstd per stream over its C values */
    MHC_NORM_SCOPE_COUNT
} mhc_norm_scope;

typedef enum mhc_sinkhorn_eps_mode {
    MHC_SK_EPS_PRESET = 0,
    MHC_SK_EPS_ADD,            /* v / (s + eps) */
    MHC_SK_EPS_CLAMP,          /* v / max(s, eps) */
    MHC_SK_EPS_THRESHOLD,      /* v / s if s > eps, else v */
    MHC_SK_EPS_ZERO,           /* v / s if s > eps, else 0 */
    MHC_SK_EPS_COUNT
} mhc_sinkhorn_eps_mode;

typedef enum mhc_sinkhorn_order {
    MHC_SK_ORDER_PRESET = 0,
    MHC_SK_COL_FIRST,          /* the first step normalises columns */
    MHC_SK_ROW_FIRST,          /* the col_first projection of z^T, transposed back */
    MHC_SK_ORDER_COUNT
} mhc_sinkhorn_order;

typedef enum mhc_exp_shift {
    MHC_EXP_SHIFT_PRESET = 0,
    MHC_EXP_SHIFT_NONE,        /* exp(z) */
    MHC_EXP_SHIFT_ROW_MAX,     /* exp(z - max over each row of z) */
    MHC_EXP_SHIFT_COL_MAX,     /* exp(z - max over each column of z) */
    MHC_EXP_SHIFT_COUNT
} mhc_exp_shift;

/* What the user asks for: zero fields take the preset's value (MHC_ZERO for an actual 0). */
typedef struct mhc_hc_config {
    mhc_hc_preset  preset;
    mhc_hc_variant variant;
    mhc_projection projection;
    mhc_orient     orient;
    int    sinkhorn_iters;     /* >= 1 */
    double sinkhorn_eps;       /* added to every Sinkhorn normaliser (and to the softmax start) */
    double norm_eps;           /* inside the RMS: rsqrt(mean(x^2) + norm_eps) */
    double pre_eps;            /* h_pre = sigmoid(.) + pre_eps */
    double post_mult;          /* h_post = sigmoid(.) * post_mult */
    int    kron_factors[MHC_KRON_MAX_FACTORS];   /* KromHC: a_1, a_2, ... (each 1..8, product n), ended
                                                    by the first 0; all 0: the preset's factors */
    int    ns_iters;           /* orthostochastic: Newton-Schulz iterations, 1..MHC_NS_MAX_ITERS */
    mhc_norm_eps_mode     norm_eps_mode;       /* inside | outside the square root */
    mhc_norm_scope        norm_scope;          /* flat | stream */
    mhc_sinkhorn_eps_mode sinkhorn_eps_mode;   /* add | clamp | threshold | zero */
    mhc_sinkhorn_order    sinkhorn_order;      /* col_first | row_first */
    mhc_exp_shift         exp_shift;           /* none | row_max | col_max (exp and log starts) */
} mhc_hc_config;

/* What runs: every value explicit (from mhc_hc_resolve). */
typedef struct mhc_hc_spec {
    mhc_hc_preset  preset;
    mhc_hc_variant variant;    /* NONE, HC, MHC, LITE, KROMHC or ORTHO (LITE exactly when projection
                                  is PERM, KROMHC when KRON, ORTHO when ORTHO) */
    mhc_projection projection; /* SOFTMAX, EXP, LOG (MHC), PERM, KRON, ORTHO (meaningful for all but
                                  NONE and HC) */
    mhc_orient     orient;     /* H or COMB_T (PERM and KRON build A directly: orientation unused) */
    int    n;                  /* streams */
    int    iters;
    double sinkhorn_eps, norm_eps, pre_eps, post_mult;
    int    nres;               /* residual logits per token: n*n, n! for PERM, sum_k a_k! for KRON
                                  (0 for NONE/HC) */
    int    m;                  /* rows of fn: 2n + nres (MHC/LITE/KROMHC/ORTHO), n + 2 (HC: theta), 0 (NONE) */
    int    kron_count;         /* KRON: the number of factors K (else 0) */
    int    kron_factors[MHC_KRON_MAX_FACTORS];   /* KRON: a_1..a_K, product n (the rest 0) */
    int    ns_iters;           /* Newton-Schulz iterations (used by ORTHO) */
    /* the convention knobs, explicit (in a spec built by hand, 0 counts as the default) */
    mhc_norm_eps_mode     norm_eps_mode;
    mhc_norm_scope        norm_scope;
    mhc_sinkhorn_eps_mode sinkhorn_eps_mode;
    mhc_sinkhorn_order    sinkhorn_order;
    mhc_exp_shift         exp_shift;       /* NONE for the softmax start and the permutation mixture */
} mhc_hc_spec;

/* Resolve cfg (NULL: all defaults) for n streams into *out. Checks every knob: unknown enum
   values, negative values other than MHC_ZERO, non-finite values, iters out of [1, 100000],
   ns_iters out of [1, MHC_NS_MAX_ITERS], n < 1, n > MHC_LITE_MAX_N for the permutation mixture,
   n != 1 for the NONE variant, and for the Kronecker mixture its factor list: each factor in
   1..MHC_LITE_MAX_N, at most MHC_KRON_MAX_FACTORS of them, nothing after the first 0, product n,
   at most MHC_KRON_MAX_LOGITS logits (every message names the key kron_factors or ns_iters),
   and an explicit exp_shift with the softmax start, the permutation or Kronecker mixture or the
   orthostochastic projection (each message names the knob). */
MHCDEF mhc_result  mhc_hc_resolve(mhc_ctx *ctx, const mhc_hc_config *cfg, int n, mhc_hc_spec *out);
MHCDEF const char *mhc_hc_preset_name(mhc_hc_preset p);      /* "dsv4", "tilekernels", "paper", "lite",
                                                                "kromhc", "ortho", "megatron", "liger",
                                                                "lucidrains", "mhc_cu" */
MHCDEF const char *mhc_hc_variant_name(mhc_hc_variant v);    /* "none", "hc", "mhc", "lite", "kromhc",
                                                                "ortho" */
MHCDEF const char *mhc_projection_name(mhc_projection p);    /* "softmax", "exp", "log", "perm", "kron",
                                                                "ortho" */
MHCDEF const char *mhc_orient_name(mhc_orient o);            /* "h", "comb_t" */
/* Parse those names (case-sensitive); MHC_ERR_VALUE naming the string and the choices. */
MHCDEF mhc_result  mhc_hc_preset_parse(mhc_ctx *ctx, const char *s, mhc_hc_preset *out);
MHCDEF mhc_result  mhc_hc_variant_parse(mhc_ctx *ctx, const char *s, mhc_hc_variant *out);
MHCDEF mhc_result  mhc_projection_parse(mhc_ctx *ctx, const char *s, mhc_projection *out);
MHCDEF mhc_result  mhc_orient_parse(mhc_ctx *ctx, const char *s, mhc_orient *out);
/* The convention knobs' names, and their parsers (as above). */
MHCDEF const char *mhc_norm_eps_mode_name(mhc_norm_eps_mode m);         /* "inside", "outside" */
MHCDEF const char *mhc_norm_scope_name(mhc_norm_scope m);               /* "flat", "stream" */
MHCDEF const char *mhc_sinkhorn_eps_mode_name(mhc_sinkhorn_eps_mode m); /* "add", "clamp", "threshold", "zero" */
MHCDEF const char *mhc_sinkhorn_order_name(mhc_sinkhorn_order m);       /* "col_first", "row_first" */
MHCDEF const char *mhc_exp_shift_name(mhc_exp_shift m);                 /* "none", "row_max", "col_max" */
MHCDEF mhc_result  mhc_norm_eps_mode_parse(mhc_ctx *ctx, const char *s, mhc_norm_eps_mode *out);
MHCDEF mhc_result  mhc_norm_scope_parse(mhc_ctx *ctx, const char *s, mhc_norm_scope *out);
MHCDEF mhc_result  mhc_sinkhorn_eps_mode_parse(mhc_ctx *ctx, const char *s, mhc_sinkhorn_eps_mode *out);
MHCDEF mhc_result  mhc_sinkhorn_order_parse(mhc_ctx *ctx, const char *s, mhc_sinkhorn_order *out);
MHCDEF mhc_result  mhc_exp_shift_parse(mhc_ctx *ctx, const char *s, mhc_exp_shift *out);
/* Rows of fn: s->m for a layer, n for the head (head != 0). */
MHCDEF int         mhc_hc_fn_rows(const mhc_hc_spec *s, int head);
/* n! for 1 <= n <= 12, else -1. */
MHCDEF long        mhc_perm_count(int n);

/* ---- Birkhoff projections on raw arrays (per token, an n x n result; no orientation) ----
   logits [T, nres] (nres = n*n, or n! for MHC_PROJ_PERM), out [T, n, n]. iters and eps are
   ignored by MHC_PROJ_PERM. MHC_PROJ_ORTHO takes iters as its Newton-Schulz iteration count
   ns_iters (1..MHC_NS_MAX_ITERS; eps ignored). MHC_PROJ_KRON needs its factor list, which this
   signature cannot carry: it is refused here, use mhc_kron_forward / _backward. The backward
   ACCUMULATES into d_logits and recomputes the iterates from the logits (exact gradient of the
   truncated iteration). */
MHCDEF mhc_result mhc_sinkhorn_forward(mhc_ctx *ctx, mhc_projection proj, int n, int iters, double eps,
                                       mhc_real *out, const mhc_real *logits, int T);
MHCDEF mhc_result mhc_sinkhorn_backward(mhc_ctx *ctx, mhc_projection proj, int n, int iters, double eps,
                                        mhc_real *d_logits, const mhc_real *d_out, const mhc_real *logits, int T);
/* The Kronecker mixture (KromHC, projection MHC_PROJ_KRON) on raw arrays: factors[0..nfactors)
   = a_1..a_K (each 1..MHC_LITE_MAX_N, 1 <= K <= MHC_KRON_MAX_FACTORS), n = their product;
   logits [T, R] with R = sum_k a_k! (factor after factor), out [T, n, n] = kron(U_1, ..., U_K),
   U_k = sum_r softmax(z_k)_r P_r. The backward ACCUMULATES into d_logits [T, R]. */
MHCDEF mhc_result mhc_kron_forward(mhc_ctx *ctx, int nfactors, const int *factors, mhc_real *out,
                                   const mhc_real *logits, int T);
MHCDEF mhc_result mhc_kron_backward(mhc_ctx *ctx, int nfactors, const int *factors, mhc_real *d_logits,
                                    const mhc_real *d_out, const mhc_real *logits, int T);
/* The same for a spec, with its convention knobs (sinkhorn_eps_mode, sinkhorn_order, exp_shift;
   mhc_sinkhorn_* above are these with the defaults): logits [T, s->nres], out [T, n, n] (the
   projection's result, before orientation). The backward accumulates into d_logits. */
MHCDEF mhc_result mhc_hc_proj_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, const mhc_real *logits, int T);
MHCDEF mhc_result mhc_hc_proj_backward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *d_logits, const mhc_real *d_out,
                                       const mhc_real *logits, int T);

/* ---- the layer on raw arrays ----
   x [T, n, C]; fn [m, n*C] (HC: theta [n+2, C]); scale [3]; base [m] (HC: [2n + n*n]);
   norm_weight [n*C] (HC: [C]) or NULL. Outputs: layer_input [T, C], h_pre [T, n],
   h_post [T, n], h_res [T, n, n] (the matrix A: out = A x + h_post f_out); h_pre, h_post and
   h_res may be NULL.
   pre:  mix = (xf . w_k) * rsqrt(mean(xf^2) + norm_eps) (or with the norm knobs, norm_eps_mode and
         norm_scope: the doc block above); h_pre = sigmoid(mix s0 + b) + pre_eps;
         h_post = sigmoid(mix s1 + b) post_mult; A = orient(project(mix s2 + b));
         layer_input = sum_i h_pre[i] x[i]                                  (MHC_SPEC.md Sec. 2)
   The backward functions ACCUMULATE into every non-NULL gradient; NULL incoming gradients
   count as 0; they recompute the forward (nothing is saved between the two).
   Every function comes twice, with the same arguments, checks and results:
   - mhc_ref_hc_*, the plain references: read these first. One token at a time, every step in
     double, a plain loop for each step of MHC_SPEC.md Sec. 2, 5 and 6 with its formula beside
     it (the backward: docs/tour.md Sec. 6). For reading and for checking an implementation
     against, not for speed. Scratch is allocated once per call.
   - mhc_hc_pre_*, mhc_hc_head_*, mhc_k_hc_post_*, the fast path (what the tape ops and the
     trainer run): the logits of all tokens as one GEMM, threads over chunks of tokens, the
     projection of 8 tokens at a time in SIMD lanes, vector blocks over the channels. It
     computes the same numbers as the references, to rounding (the float build sums its GEMMs
     and stream mixes in float, see PRECISION); tests/test_hc_ref.c holds the two together for
     every variant, preset and projection. */

/* The plain references, arguments as the fast functions below (post: no checks, as
   mhc_k_hc_post_*). */
MHCDEF mhc_result mhc_ref_hc_pre_forward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                         mhc_real *layer_input, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                         const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                         const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF mhc_result mhc_ref_hc_pre_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                          mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                          mhc_real *d_norm_weight,
                                          const mhc_real *d_layer_input, const mhc_real *d_h_pre,
                                          const mhc_real *d_h_post, const mhc_real *d_h_res,
                                          const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                          const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF mhc_result mhc_ref_hc_head_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, mhc_real *h,
                                          const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                          const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF mhc_result mhc_ref_hc_head_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                           mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                           mhc_real *d_norm_weight, const mhc_real *d_out, const mhc_real *d_h,
                                           const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                           const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF void mhc_ref_hc_post_forward(mhc_real *out, const mhc_real *x, const mhc_real *h_res, const mhc_real *h_post,
                                    const mhc_real *f_out, int T, int n, int C);
MHCDEF void mhc_ref_hc_post_backward(mhc_real *d_x, mhc_real *d_h_res, mhc_real *d_h_post, mhc_real *d_f_out,
                                     const mhc_real *d_out, const mhc_real *x, const mhc_real *h_res,
                                     const mhc_real *h_post, const mhc_real *f_out, int T, int n, int C);

/* The fast path: the same functions fused, threaded and vectorised. Scratch is allocated once
   per call (MHC_MALLOC), never per token; the backward recomputes the logits GEMM. */
MHCDEF mhc_result mhc_hc_pre_forward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                     mhc_real *layer_input, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                     const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                     const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF mhc_result mhc_hc_pre_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                      mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                      mhc_real *d_norm_weight,
                                      const mhc_real *d_layer_input, const mhc_real *d_h_pre,
                                      const mhc_real *d_h_post, const mhc_real *d_h_res,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *norm_weight, int T, int C);
/* head (the final collapse, MHC_SPEC.md Sec. 5): fn [n, n*C], scale [1], base [n]:
   h = sigmoid(mix s0 + b) + pre_eps; out[T, C] = sum_i h[i] x[i]. h may be NULL. */
MHCDEF mhc_result mhc_hc_head_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, mhc_real *h,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *norm_weight, int T, int C);
MHCDEF mhc_result mhc_hc_head_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                       mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                       mhc_real *d_norm_weight, const mhc_real *d_out, const mhc_real *d_h,
                                       const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                       const mhc_real *base, const mhc_real *norm_weight, int T, int C);
/* post: out[t,i,c] = sum_j A[t,i,j] x[t,j,c] + h_post[t,i] f_out[t,c]   (f_out may be NULL = 0).
   Backward accumulates: dx += A^T dout, dA += dout x^T, dh_post += dout . f_out,
   df_out += sum_i h_post[i] dout[i]. Raw kernels: no checks. */
MHCDEF void mhc_k_hc_post_forward(mhc_real *out, const mhc_real *x, const mhc_real *h_res, const mhc_real *h_post,
                                  const mhc_real *f_out, int T, int n, int C);
MHCDEF void mhc_k_hc_post_backward(mhc_real *d_x, mhc_real *d_h_res, mhc_real *d_h_post, mhc_real *d_f_out,
                                   const mhc_real *d_out, const mhc_real *x, const mhc_real *h_res,
                                   const mhc_real *h_post, const mhc_real *f_out, int T, int n, int C);
/* expand: x[t,i,c] = e[t,c] for every stream i; backward de[t,c] += sum_i dx[t,i,c]. */
MHCDEF void mhc_k_hc_expand_forward(mhc_real *x, const mhc_real *e, int T, int n, int C);
MHCDEF void mhc_k_hc_expand_backward(mhc_real *d_e, const mhc_real *d_x, int T, int n, int C);

/* ---- parameters ---- */
typedef struct mhc_hc_params {
    mhc_tensor *fn, *scale, *base, *norm_weight;   /* norm_weight may be NULL */
} mhc_hc_params;
/* Shapes of a layer's (head != 0: the head's) parameters: fn [rows, cols], scale [nscale],
   base [nbase], norm_weight [nnw]. NONE: all 0. */
MHCDEF mhc_result mhc_hc_param_shapes(mhc_ctx *ctx, const mhc_hc_spec *s, int C, int head,
                                      int fn_shape[2], int *nscale, int *nbase, int *nnw);
/* Declare the parameters in a store as "<prefix>.fn", ".scale", ".base" (and ".norm_weight"
   when with_norm_weight); ids[4] receives their indices (-1 for absent ones). Call
   mhc_hc_params_get after mhc_params_alloc. */
MHCDEF mhc_result mhc_hc_params_declare(mhc_params *store, const mhc_hc_spec *s, int C, int head,
                                        int with_norm_weight, const char *prefix, int ids[4]);
MHCDEF mhc_result mhc_hc_params_get(mhc_params *store, const int ids[4], mhc_hc_params *out);
/* Initial values. mHC/lite/head: fn ~ N(0, fn_std), scale = 0.01 (the paper's gating factor),
   base = 0, norm_weight = 1. HC (MHC_SPEC.md Sec. 6): theta = 0 plus N(0, fn_std) noise,
   gates 0.01, b_pre = onehot(layer_index mod n), b_post = 1, b_res = I. kromhc and ortho as mHC,
   except the residual block of base, which starts where each peer starts its residual logits:
   kromhc -8, and 0 for the first permutation (the identity) of every factor (KromHC's
   init_alpha1: every U_k ~ I, A ~ I); ortho 0 on the diagonal and -8 elsewhere (the peer's
   H_res_logits: Z = -8 (J - I) has the polar factor I - 2J/n, so A tends to its elementwise
   square: J/4 at n = 4, within 0.003 after 5 iterations; the swap at n = 2). */
MHCDEF mhc_result mhc_hc_params_init(mhc_ctx *ctx, const mhc_hc_spec *s, int head, int layer_index,
                                     mhc_hc_params *w, mhc_rng *rng, double fn_std);

/* ---- tape ops ----
   A model (tests/test_hc_tape.c builds exactly this chain and gradchecks it):
       mhc_hc_spec s;  mhc_hc_resolve(&ctx, NULL, 4, &s);                 dsv4 preset, n = 4
       mhc_hc_params_declare(&store, &s, C, 0, 1, "l0", ids);            per layer (head: head = 1)
       mhc_params_alloc(&store); mhc_hc_params_get(&store, ids, &w); mhc_hc_params_init(...);
       x = mhc_hc_expand(tp, emb, 4);                                    [T,C] -> [T,4,C]
       for each sublayer:
           mhc_hc_pre(tp, &s, x, &w, &p);                                layer_input, h_pre, h_post, h_res
           f = F(tp, p.layer_input);                                     attention or MLP, [T,C]
           x = mhc_hc_post(tp, x, p.h_res, p.h_post, f);                 A x + h_post f
       y = mhc_hc_head(tp, &s, x, &wh);                                  [T,C], then the output norm
   The pre step as ONE fused op (matmul first, RMS division after, paper Sec. 4.3.1): the logits'
   dots of all tokens as one packed GEMM, then one pass per token for the sum of squares, gates,
   projection and layer_input, with a hand-written backward (two more GEMMs for dx and dfn). Outputs (all with gradients when any input needs one):
   layer_input [T,C], h_pre [T,n], h_post [T,n], h_res [T,n,n]. x is [T,n,C] (or [T,n*C]). */
typedef struct mhc_hc_pre_out {
    mhc_tensor *layer_input, *h_pre, *h_post, *h_res;
} mhc_hc_pre_out;
MHCDEF mhc_result mhc_hc_pre(mhc_tape *tp, const mhc_hc_spec *s, mhc_tensor *x, const mhc_hc_params *w,
                             mhc_hc_pre_out *out);
/* out[T,n,C] = A x + h_post f_out (f_out [T,C] may be NULL). */
MHCDEF mhc_tensor *mhc_hc_post(mhc_tape *tp, mhc_tensor *x, mhc_tensor *h_res, mhc_tensor *h_post, mhc_tensor *f_out);
/* e [T,C] -> x [T,n,C]: x[t,i,c] = e[t,c] (every stream a copy of the embedding). */
MHCDEF mhc_tensor *mhc_hc_expand(mhc_tape *tp, mhc_tensor *e, int n);
/* x [T,n,C] -> out [T,C] = sum_i h[i] x[i], h = sigmoid(mix s0 + b) + pre_eps (the head parameters:
   fn [n,n*C], scale [1], base [n]). */
MHCDEF mhc_tensor *mhc_hc_head(mhc_tape *tp, const mhc_hc_spec *s, mhc_tensor *x, const mhc_hc_params *w);
/* logits [T, nres] (or [T,n,n]) -> the projection [T,n,n], as a tape op (projections as
   mhc_sinkhorn_forward: ortho takes iters as ns_iters, kron is refused). */
MHCDEF mhc_tensor *mhc_sinkhorn(mhc_tape *tp, mhc_projection proj, int n, int iters, double eps, mhc_tensor *logits);

/* ---- recomputation of the stream states (paper Sec. 4.3.2) ----
   The tape ops above keep its setting and state on the tape, in tp->ext[MHC_TAPE_EXT_HC]
   (mhc_tape_ext): option = the block length L_r (0: off), step = the current step's shared
   buffers (arena memory, made by the step's first mhc_hc_post). */
#define MHC_TAPE_EXT_HC 0
/* Set the recomputation of tp's stream states. block = L_r >= 1 turns it on, 0 off
   (the default); it must be set while the tape is empty (after init or reset) and stays set across
   resets. With it on, of the stream states x_1, x_2, ... that mhc_hc_post returns in one step,
   only every L_r-th (x_{L_r}, x_{2 L_r}, ...) keeps its own memory; the others share L_r - 1
   buffers that the next block overwrites, and the backward pass recomputes them (A x + h_post f,
   the same kernel, so every result is bit for bit the same as without recomputation) when it
   reaches their block. All stream-state gradients share two buffers, each cleared once consumed.
   Contract: a stream state returned by mhc_hc_post may be used only as the x of the next
   mhc_hc_pre / mhc_hc_post / mhc_hc_head, in the usual order (pre, F, post per sublayer); its
   data and gradient are not kept for you after the step. mhc_hc_post refuses a state used out
   of order, and states of different shapes in one step. Peak memory: about (L/L_r + L_r) stream
   states instead of L. mhc_hc_recompute_block gives the paper's L_r. */
MHCDEF mhc_result mhc_tape_set_hc_recompute(mhc_tape *tp, int block);
/* The paper's block length L_r = sqrt(n L / (n + 2)) rounded, at least 1 (L = number of
   sublayers, i.e. of mhc_hc_post calls per step). */
MHCDEF int        mhc_hc_recompute_block(int n, int sublayers);

/* ---- diagnostics (MHC_SPEC.md Sec. 7) ---- */
typedef struct mhc_gain_stats {
    double fwd_max, fwd_mean;  /* over tokens: max_i sum_j |P_ij| of P = A_L ... A_1 */
    double bwd_max, bwd_mean;  /* over tokens: max_j sum_i |P_ij| */
} mhc_gain_stats;
/* A[l] is layer l's h_res [T,n,n] (l = 0 first applied); L >= 1 layers. */
MHCDEF mhc_result mhc_hc_amax_gain(mhc_ctx *ctx, const mhc_real *const *A, int L, int T, int n, mhc_gain_stats *out);
/* Distance of `count` n x n matrices from doubly stochastic: max |rowsum - 1|, max |colsum - 1|. */
MHCDEF mhc_result mhc_hc_ds_distance(mhc_ctx *ctx, const mhc_real *A, size_t count, int n,
                                     double *max_row_err, double *max_col_err);

/* =========================================================================================
 * OPTIMIZER AND TRAINER
 * AdamW as torch.optim.AdamW computes it (decoupled weight decay, bias correction), global-norm
 * gradient clipping as torch.nn.utils.clip_grad_norm_ computes it, learning-rate schedules, and
 * a small trainer that applies them to a parameter store (mhc_params) one step at a time.
 * Steps are 1-based everywhere: the first optimizer step is step 1 (the AdamW bias-correction
 * exponent t, and the argument of mhc_lr_at). mhc_trainer.step counts the steps taken so far.
 *
 * The paper's settings (Table 5): beta1 0.9, beta2 0.95, eps 1e-20, weight decay 0.1, 2000
 * warmup steps, step decay x0.316 at 80% and x0.1 at 90% of training:
 *     mhc_adamw_config cfg;  memset(&cfg, 0, sizeof cfg);   (zero fields = defaults)
 *     cfg.schedule.kind = MHC_LR_STEP;  cfg.schedule.lr = peak_lr;
 *     cfg.schedule.warmup = 2000;  cfg.schedule.total = total_steps;
 *     cfg.eps = 1e-20;             (the default is 1e-8, PyTorch's)
 * ========================================================================================= */

/* The largest step count the trainer keeps: mhc_trainer.step, schedule.warmup and schedule.total
   are each at most MHC_STEP_MAX = 2^31 - 2, so that step + 1 still fits a 32-bit int wherever
   steps are counted. mhc_trainer_init refuses a larger warmup or total, mhc_trainer_step refuses to
   take a step past it, and checkpoints holding a larger value are refused on save and on load. */
#define MHC_STEP_MAX 2147483646L

/* One AdamW step over n elements (a kernel: no argument checking). Per element, in double,
 * with g = grad * grad_scale and t = step (1-based; step < 1 is taken as 1):
 *     p <- p * (1 - lr * weight_decay)                            decoupled decay, first
 *     m <- beta1 m + (1 - beta1) g
 *     v <- beta2 v + (1 - beta2) g^2
 *     p <- p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * i.e. p -= lr * mhat / (sqrt(vhat) + eps) with mhat = m / (1 - beta1^t), vhat = v / (1 - beta2^t),
 * arranged exactly as torch.optim.AdamW arranges it (eps outside the square root). m and v are
 * stored as mhc_real and the update uses the stored values. Elementwise, so any thread count
 * gives the same bits. */
MHCDEF void mhc_adamw_step(mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t n,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           double grad_scale, long step);

/* Learning-rate schedules. With t the 1-based step and W = warmup:
 *   warmup (every kind): t <= W uses lr * t / W (t = 1 gives lr/W, t = W gives lr).
 *   MHC_LR_CONSTANT: lr after the warmup.
 *   MHC_LR_COSINE:   t > W: min + (lr - min) * (1 + cos(pi * (t - W) / (total - W))) / 2, with
 *                    min = min_lr_frac * lr; t = total gives min exactly, t > total stays at min.
 *   MHC_LR_STEP:     the paper's step decay: lr * warmup factor * multiplier, where the
 *                    multiplier is 1 for t <= B0, decay_mult[0] for B0 < t <= B1, decay_mult[1]
 *                    for t > B1, with Bk = floor(decay_at[k] * total) (total 100: steps 1-80 at lr,
 *                    81-90 at 0.316 lr, 91-100 at 0.1 lr).
 * Zero decay_at / decay_mult entries mean the paper's defaults (0.8, 0.9 / 0.316, 0.1). */
typedef enum mhc_lr_kind { MHC_LR_CONSTANT = 0, MHC_LR_COSINE, MHC_LR_STEP, MHC_LR_KIND_COUNT } mhc_lr_kind;
typedef struct mhc_lr_schedule {
    int kind;              /* mhc_lr_kind; 0 = MHC_LR_CONSTANT */
    double lr;             /* the peak learning rate */
    long warmup;           /* linear warmup steps (0: none) */
    long total;            /* the planned number of steps; MHC_LR_COSINE and MHC_LR_STEP need it */
    double min_lr_frac;    /* MHC_LR_COSINE: the final lr as a fraction of lr (0: decay to 0) */
    double decay_at[2];    /* MHC_LR_STEP: fractions of total (0: 0.8 and 0.9) */
    double decay_mult[2];  /* MHC_LR_STEP: the multipliers (0: 0.316 and 0.1) */
} mhc_lr_schedule;

/* The learning rate of 1-based step t (t < 1 is taken as 1). Pure; a NULL schedule gives 0. */
MHCDEF double mhc_lr_at(const mhc_lr_schedule *s, long step);

/* Set a field of mhc_adamw_config (schedule.lr, beta1, beta2, weight_decay, grad_clip) to
   MHC_ZERO (CONFIG AND PORTABILITY) to ask for an explicit 0 there, since a plain 0 means
   "default". grad_clip 0 after resolution means no clipping. */

/* Trainer configuration; zero fields mean the defaults shown.
   Against torch.optim.AdamW(params) with its defaults (lr 1e-3, betas (0.9, 0.999), eps 1e-8,
   weight_decay 1e-2, amsgrad False), exactly three defaults differ:
     beta2        0.95  here (the paper), 0.999 in torch;
     weight_decay 0.1   here (the paper), 0.01  in torch; and here it applies only to the tensors
                  declared MHC_PARAM_DECAY (torch decays every parameter of a group; build two
                  groups there, weight_decay 0 for the others, to match);
     grad_clip    1.0   here: the global norm is clipped as torch.nn.utils.clip_grad_norm_(p, 1.0)
                  would, a separate call in torch, which by default clips nothing (MHC_ZERO: off).
   The same as torch: lr 1e-3, beta1 0.9, eps 1e-8 (outside the square root), no amsgrad, and
   a constant learning rate (schedule.kind 0 with no warmup). */
typedef struct mhc_adamw_config {
    mhc_lr_schedule schedule;   /* schedule.lr 0 -> 1e-3 (PyTorch's AdamW default) */
    double beta1;               /* 0 -> 0.9 */
    double beta2;               /* 0 -> 0.95 (the paper) */
    double eps;                 /* 0 -> 1e-8; the paper uses 1e-20 (set it); must end up > 0 */
    double weight_decay;        /* 0 -> 0.1; applied only to MHC_PARAM_DECAY tensors */
    double grad_clip;           /* 0 -> 1.0: the maximum global gradient norm; MHC_ZERO: off */
} mhc_adamw_config;

typedef struct mhc_trainer {
    mhc_ctx *ctx;
    mhc_adamw_config cfg;       /* resolved: defaults filled in, MHC_ZERO turned into 0.
                                   May be changed between steps (checked on every step). */
    long step;                  /* optimizer steps taken; the next one is step + 1 */
    double last_grad_norm;      /* global gradient norm of the last step, before clipping */
    double last_clip_scale;     /* the factor the gradients were multiplied by (1: not clipped) */
    double last_lr;             /* the learning rate of the last step */
    int ready;                  /* set by mhc_trainer_init */
} mhc_trainer;

/* Resolve and check cfg (NULL: all defaults) into tr. Errors name the field and its value. */
MHCDEF mhc_result mhc_trainer_init(mhc_ctx *ctx, mhc_trainer *tr, const mhc_adamw_config *cfg);
/* The global L2 norm of all gradients of p (sqrt of a double sum of squares over p->grad, in a
   fixed chunking that does not depend on the thread count). NaN/Inf pass through; 0 if p has no
   gradients. */
MHCDEF double     mhc_grad_norm(const mhc_params *p);
/* One optimizer step on p with the gradients in p->grad:
 *   t = tr->step + 1;  lr = mhc_lr_at(&cfg.schedule, t);  norm = mhc_grad_norm(p);
 *   NaN/Inf norm -> MHC_ERR_NONFINITE naming the first bad gradient; nothing is changed;
 *   scale = min(1, grad_clip / (norm + 1e-6)) (torch.nn.utils.clip_grad_norm_; 1 when off);
 *   mhc_adamw_step on every tensor with weight_decay for MHC_PARAM_DECAY tensors, 0 otherwise;
 *   tr->step = t. The gradients are left as they were (zero them before the next backward). */
MHCDEF mhc_result mhc_trainer_step(mhc_trainer *tr, mhc_params *p);

/* =========================================================================================
 * CUDA (optional)
 * Declarations only: the implementation is mhc_cuda.cu (compiled with nvcc, `make cuda`),
 * linked only by programs that define MHC_CUDA before including mhc.h and link mhc_cuda.o,
 * -lcublas and -lcudart. mhc.h itself never needs CUDA. float32 only (not under MHC_DOUBLE).
 *
 * Every mhc_cuda_* function below takes DEVICE pointers (from mhc_cuda_alloc), checks its
 * arguments like the CPU functions (NULL, sizes < 1, unsupported spec) and returns an
 * mhc_result with a message in cu->ctx; a CUDA or cuBLAS error becomes MHC_ERR_STATE naming the
 * call and CUDA's error string. Kernels are launched on the default stream; the functions do
 * not synchronise (mhc_cuda_sync does, and reports asynchronous errors). Semantics are exactly
 * those of the CPU function of the same name (mhc_k_* / mhc_hc_* / mhc_adamw_step): same
 * formulas, backward functions ACCUMULATE. Per-token sums are taken in double as on the CPU;
 * the order differs (parallel reductions), so results agree to float rounding, not bitwise.
 * The Birkhoff projections run one thread per token and keep the iterates in device scratch
 * (the exact backward of the truncated iteration: the CPU's own per-token code, compiled for
 * the device from the block "SHARED WITH THE CUDA UNIT"). Supported: the MHC, LITE, KROMHC and
 * ORTHO variants (n <= 8) and the head; the HC and NONE variants of mhc_hc_pre_* are refused
 * (MHC_ERR_VALUE).
 * GEMMs go through cuBLAS (cublasSgemm on the row-major arrays, operands swapped).
 * ========================================================================================= */
#ifdef MHC_CUDA
#ifdef MHC_DOUBLE
#error "mhc.h: the CUDA path (MHC_CUDA) is float32 only; do not combine it with MHC_DOUBLE"
#endif

/* A device session: the cuBLAS handle and a growing scratch buffer. Zero it, then mhc_cuda_init. */
typedef struct mhc_cuda {
    mhc_ctx *ctx;
    int device;            /* the CUDA device used */
    void *blas;            /* cublasHandle_t */
    void *scratch;         /* device scratch for the mHC and attention kernels */
    size_t scratch_bytes;
    int ready;             /* set by mhc_cuda_init */
} mhc_cuda;

/* Number of usable CUDA devices: 0 when there is none or no driver (never fails). */
MHCDEF int        mhc_cuda_available(void);
/* Select device `device` (0 for the first), create the cuBLAS handle. MHC_ERR_STATE when no
   CUDA device exists ("no CUDA device") or the device index is out of range. */
MHCDEF mhc_result mhc_cuda_init(mhc_ctx *ctx, mhc_cuda *cu, int device);
MHCDEF void       mhc_cuda_free(mhc_cuda *cu);   /* frees the scratch and the handle; zeroes *cu */
/* Device memory: *dptr receives `bytes` zeroed bytes; mhc_cuda_release(cu, NULL) is fine. */
MHCDEF mhc_result mhc_cuda_alloc(mhc_cuda *cu, void **dptr, size_t bytes);
MHCDEF mhc_result mhc_cuda_release(mhc_cuda *cu, void *dptr);
MHCDEF mhc_result mhc_cuda_upload(mhc_cuda *cu, void *dst_device, const void *src_host, size_t bytes);
MHCDEF mhc_result mhc_cuda_download(mhc_cuda *cu, void *dst_host, const void *src_device, size_t bytes);
MHCDEF mhc_result mhc_cuda_memset0(mhc_cuda *cu, void *dptr, size_t bytes);
MHCDEF mhc_result mhc_cuda_sync(mhc_cuda *cu);   /* waits for the device; reports launch errors */

/* ---- kernels on device pointers (argument order and meaning as the CPU twins) ---- */
/* C[M,N] (+)= A[M,K] B[K,N] / A[M,K] B[N,K]^T / A[K,M]^T B[K,N]  (cuBLAS; acc = 0 overwrites) */
MHCDEF mhc_result mhc_cuda_matmul_ab (mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc);
MHCDEF mhc_result mhc_cuda_matmul_abt(mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc);
MHCDEF mhc_result mhc_cuda_matmul_atb(mhc_cuda *cu, float *C, const float *A, const float *B, int M, int K, int N, int acc);
/* y[N,D] = x[N,D] + b[D] (bias broadcast over rows); backward db[D] += sum_rows dy */
MHCDEF mhc_result mhc_cuda_add_bias_forward(mhc_cuda *cu, float *y, const float *x, const float *b, int N, int D);
MHCDEF mhc_result mhc_cuda_add_bias_backward(mhc_cuda *cu, float *db, const float *dy, int N, int D);
/* y = x + z elementwise (y may alias x); dst += src elementwise */
MHCDEF mhc_result mhc_cuda_add(mhc_cuda *cu, float *y, const float *x, const float *z, size_t count);
MHCDEF mhc_result mhc_cuda_accumulate(mhc_cuda *cu, float *dst, const float *src, size_t count);
/* out[t,:] = table[ids[t],:] (ids: device ints in [0, V), not checked); backward dtable += (per
   column, tokens in order: deterministic) */
MHCDEF mhc_result mhc_cuda_embedding_forward(mhc_cuda *cu, float *out, const int *ids, const float *table, int T, int D);
MHCDEF mhc_result mhc_cuda_embedding_backward(mhc_cuda *cu, float *dtable, const float *dout, const int *ids, int T, int D);
/* RMSNorm as mhc_k_rmsnorm_forward/backward (w may be NULL; rstd [N]) */
MHCDEF mhc_result mhc_cuda_rmsnorm_forward(mhc_cuda *cu, float *y, float *rstd, const float *x, const float *w,
                                           int N, int D, double eps);
MHCDEF mhc_result mhc_cuda_rmsnorm_backward(mhc_cuda *cu, float *dx, float *dw, const float *dy, const float *x,
                                            const float *w, const float *rstd, int N, int D);
/* GELU (tanh approximation) as mhc_k_act_forward/backward(MHC_ACT_GELU, ...) */
MHCDEF mhc_result mhc_cuda_gelu_forward(mhc_cuda *cu, float *y, const float *x, size_t count);
MHCDEF mhc_result mhc_cuda_gelu_backward(mhc_cuda *cu, float *dx, const float *dy, const float *x, size_t count);
/* causal attention as mhc_k_attention_forward/backward: qkv [B,T,3C], out [B,T,C], att [B,H,T,T] */
MHCDEF mhc_result mhc_cuda_attention_forward(mhc_cuda *cu, float *out, float *att, const float *qkv,
                                             int B, int T, int C, int H);
MHCDEF mhc_result mhc_cuda_attention_backward(mhc_cuda *cu, float *dqkv, const float *dout, const float *att,
                                              const float *qkv, int B, int T, int C, int H);
/* cross-entropy as mhc_k_crossentropy_forward/backward (targets: device ints in [0, V)) */
MHCDEF mhc_result mhc_cuda_crossentropy_forward(mhc_cuda *cu, float *losses, const float *logits, const int *targets,
                                                int N, int V);
MHCDEF mhc_result mhc_cuda_crossentropy_backward(mhc_cuda *cu, float *dlogits, const float *dlosses,
                                                 const float *logits, const int *targets, int N, int V);
/* AdamW as mhc_adamw_step (per element in double, same arrangement) */
MHCDEF mhc_result mhc_cuda_adamw_step(mhc_cuda *cu, float *param, const float *grad, float *m, float *v, size_t count,
                                      double lr, double beta1, double beta2, double eps, double weight_decay,
                                      double grad_scale, long step);
/* sum of squares of x[count] into *out_host (double accumulation; for gradient clipping) */
MHCDEF mhc_result mhc_cuda_sumsq(mhc_cuda *cu, double *out_host, const float *x, size_t count);

/* ---- the mHC layer on device pointers (as mhc_sinkhorn_* / mhc_hc_* / mhc_k_hc_*) ---- */
MHCDEF mhc_result mhc_cuda_sinkhorn_forward(mhc_cuda *cu, mhc_projection proj, int n, int iters, double eps,
                                            float *out, const float *logits, int T);
MHCDEF mhc_result mhc_cuda_sinkhorn_backward(mhc_cuda *cu, mhc_projection proj, int n, int iters, double eps,
                                             float *d_logits, const float *d_out, const float *logits, int T);
MHCDEF mhc_result mhc_cuda_kron_forward(mhc_cuda *cu, int nfactors, const int *factors, float *out, const float *logits,
                                        int T);
MHCDEF mhc_result mhc_cuda_kron_backward(mhc_cuda *cu, int nfactors, const int *factors, float *d_logits,
                                         const float *d_out, const float *logits, int T);
/* the projection of a spec with its Sinkhorn knobs (as mhc_hc_proj_*) */
MHCDEF mhc_result mhc_cuda_hc_proj_forward(mhc_cuda *cu, const mhc_hc_spec *s, float *out, const float *logits, int T);
MHCDEF mhc_result mhc_cuda_hc_proj_backward(mhc_cuda *cu, const mhc_hc_spec *s, float *d_logits, const float *d_out,
                                            const float *logits, int T);
/* The pre step and the head take every convention knob except norm_scope = stream (refused with
   MHC_ERR_VALUE naming it): the per-token kernels run the shared block's projection of the spec
   and mhc__rstd (norm_eps_mode). */
MHCDEF mhc_result mhc_cuda_hc_pre_forward(mhc_cuda *cu, const mhc_hc_spec *s,
                                          float *layer_input, float *h_pre, float *h_post, float *h_res,
                                          const float *x, const float *fn, const float *scale,
                                          const float *base, const float *norm_weight, int T, int C);
MHCDEF mhc_result mhc_cuda_hc_pre_backward(mhc_cuda *cu, const mhc_hc_spec *s,
                                           float *d_x, float *d_fn, float *d_scale, float *d_base, float *d_norm_weight,
                                           const float *d_layer_input, const float *d_h_pre,
                                           const float *d_h_post, const float *d_h_res,
                                           const float *x, const float *fn, const float *scale,
                                           const float *base, const float *norm_weight, int T, int C);
MHCDEF mhc_result mhc_cuda_hc_head_forward(mhc_cuda *cu, const mhc_hc_spec *s, float *out, float *h,
                                           const float *x, const float *fn, const float *scale,
                                           const float *base, const float *norm_weight, int T, int C);
MHCDEF mhc_result mhc_cuda_hc_head_backward(mhc_cuda *cu, const mhc_hc_spec *s,
                                            float *d_x, float *d_fn, float *d_scale, float *d_base, float *d_norm_weight,
                                            const float *d_out, const float *d_h,
                                            const float *x, const float *fn, const float *scale,
                                            const float *base, const float *norm_weight, int T, int C);
MHCDEF mhc_result mhc_cuda_hc_post_forward(mhc_cuda *cu, float *out, const float *x, const float *h_res,
                                           const float *h_post, const float *f_out, int T, int n, int C);
MHCDEF mhc_result mhc_cuda_hc_post_backward(mhc_cuda *cu, float *d_x, float *d_h_res, float *d_h_post, float *d_f_out,
                                            const float *d_out, const float *x, const float *h_res,
                                            const float *h_post, const float *f_out, int T, int n, int C);
MHCDEF mhc_result mhc_cuda_hc_expand_forward(mhc_cuda *cu, float *x, const float *e, int T, int n, int C);
MHCDEF mhc_result mhc_cuda_hc_expand_backward(mhc_cuda *cu, float *d_e, const float *d_x, int T, int n, int C);
#endif /* MHC_CUDA */

/* =========================================================================================
 * I/O: .npy AND CHECKPOINTS
 * ========================================================================================= */

/* I/O: .npy files (the interchange format of the test vectors: arrays of doubles) and, below,
 * checkpoints. Whole files are read with mhc_read_file; writes use stdio. The NPY part does not
 * depend on mhc_real (values are converted to and from double). */

/* ---------------------------------------- NPY ---------------------------------------------
 * NumPy .npy files: magic "\x93NUMPY", version 1.0 (2-byte header length) or 2.0 / 3.0
 * (4-byte), then a Python dict literal {'descr': ..., 'fortran_order': ..., 'shape': (...)}.
 * Read: dtype '<f4' or '<f8' only (converted to double; '>' big-endian, ints, structured
 * dtypes are refused), fortran_order False only, 0 to MHC_MAX_DIMS dimensions (0-d scalar:
 * ndim 0, size 1), every dimension >= 1 (empty arrays are refused). The data must be exactly
 * size * itemsize bytes: a truncated file AND trailing bytes after the data are both refused
 * (MHC_ERR_FORMAT), so a corrupted or concatenated file never loads silently. The parser reads
 * only inside [buf, buf + len) whatever the bytes (it is a fuzz target).
 * Write: '<f8', version 1.0, header laid out byte for byte as numpy 1.24 writes it (spare
 * spaces, 64-byte aligned data, final '\n'). */
typedef struct mhc_npy {
    int ndim;                   /* 0..MHC_MAX_DIMS */
    int shape[MHC_MAX_DIMS];    /* unused trailing entries are 1 */
    size_t size;                /* product of the shape (1 for a 0-d array) */
    int src_bytes;              /* 4 ('<f4') or 8 ('<f8'): the item size in the file */
    double *data;               /* size values, C order, MHC_MALLOC'd (mhc_npy_free) */
} mhc_npy;

/* Parse a whole .npy file held in memory. name names the source in messages (NULL:
   "<buffer>"). On error *out is left empty (data NULL) and the message names the problem. */
MHCDEF mhc_result mhc_npy_parse(mhc_ctx *ctx, const void *buf, size_t len, const char *name, mhc_npy *out);
/* mhc_read_file + mhc_npy_parse: '<f4' or '<f8', C order, version 1/2/3, converted to double. */
MHCDEF mhc_result mhc_npy_read(mhc_ctx *ctx, const char *path, mhc_npy *out);
/* Write a '<f8' version 1.0 file. ndim 0..MHC_MAX_DIMS (shape may be NULL when ndim is 0). The file
   is written in place (not atomically); on POSIX an existing path that is not a regular file (a
   device, a FIFO, a directory) is refused with MHC_ERR_IO before anything is written. */
MHCDEF mhc_result mhc_npy_write(mhc_ctx *ctx, const char *path, int ndim, const int *shape, const double *data);
MHCDEF void       mhc_npy_free(mhc_npy *a);   /* frees data and zeroes *a; NULL is fine */
/* Read a whole file into *buf (MHC_MALLOC'd, free with MHC_FREE; one extra 0 byte follows the
   len bytes, so a text file is a C string). *buf is NULL on error. Only regular files are read
   (on POSIX: a directory, device, FIFO or socket is refused with MHC_ERR_IO naming what it is, and a
   FIFO is not waited on), at most MHC_READ_MAX bytes (MHC_ERR_SIZE above it, before reading); the
   size is taken first and allocated once. */
#ifndef MHC_READ_MAX
#define MHC_READ_MAX ((size_t)1 << 30)   /* 1 GiB; define it before including mhc.h to change it */
#endif
MHCDEF mhc_result mhc_read_file(mhc_ctx *ctx, const char *path, void **buf, size_t *len);
/* The same with another limit: at most max_bytes bytes (a case file, a config: something small). */
MHCDEF mhc_result mhc_read_file_max(mhc_ctx *ctx, const char *path, size_t max_bytes, void **buf, size_t *len);

/* -------------------------------------- CHECKPOINTS ----------------------------------------
 * A checkpoint holds everything needed to continue training bit-identically: an opaque config
 * blob from the caller (the model configuration, stored as given), the parameter store (names,
 * shapes, decay flags, data and the AdamW moments m and v), the trainer state and an RNG state.
 * Saving is atomic (temporary file in the same directory, fsync, rename over the final name);
 * loading is all-or-nothing (the whole file is parsed and verified, checksum included, before
 * anything is written to the caller's objects). Gradients are not stored.
 *
 * Format version 1, every integer little-endian, reals IEEE-754 little-endian, nothing padded:
 *   offset  size  field
 *   0       8     magic "MHC_CKPT"
 *   8       4     u32 format version (1)
 *   12      4     u32 real size: 4 (float32) or 8 (float64); must equal sizeof(mhc_real)
 *   16      8     u64 file length in bytes, checksum included
 *   24      4     u32 flags: bit 0 trainer state present, bit 1 rng state present (others 0)
 *   28      4     u32 reserved, 0
 *   32      8     u64 config_bytes (B)
 *   40      B     the config blob
 *   then    4     u32 tensor count K (>= 1)
 *           K x   { u32 name length L (1..47), L bytes of name (no NUL),
 *                   u32 ndim (1..4), ndim x u32 shape (each 1..2^31-1), u32 decay (0 or 1) }
 *           8     u64 N, the total number of reals (the sum of the tensors' sizes)
 *           N x   data, then N x m, then N x v, each real in the stored real size
 *   if flags bit 0 (trainer, 140 bytes):
 *           i64 step, u32 schedule.kind, f64 schedule.lr, i64 schedule.warmup,
 *           i64 schedule.total, f64 schedule.min_lr_frac, f64 decay_at[0], f64 decay_at[1],
 *           f64 decay_mult[0], f64 decay_mult[1], f64 beta1, f64 beta2, f64 eps,
 *           f64 weight_decay, f64 grad_clip, f64 last_grad_norm, f64 last_clip_scale, f64 last_lr
 *   if flags bit 1 (rng, 32 bytes): u64 s[0..3] (not all zero)
 *   last    8     u64 FNV-1a 64 hash of every byte before it
 * The config blob is opaque: if it is a struct, the file is portable only among builds that
 * lay the struct out the same way (serialise it explicitly for portability).
 * Values: a checkpoint holds a state training can continue from. Every stored real (data, m, v)
 * is finite and every v is >= 0; saving any other state is refused (MHC_ERR_NONFINITE, or
 * MHC_ERR_VALUE for a negative v) and so is loading it (MHC_ERR_NONFINITE, or MHC_ERR_FORMAT for a
 * negative v), naming the tensor, the element and which of data/m/v holds it.
 * Fuzzing: with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION defined, a checksum mismatch is
 * ignored so that a fuzzer reaches the structure checks (which never trust a length).
 * ----------------------------------------------------------------------------------------- */

#define MHC_CHECKPOINT_VERSION 1

/* Write a checkpoint to path atomically. p is required and allocated; tr and rng may be NULL
   (not stored); config may be NULL when config_bytes is 0. On failure returns MHC_ERR_IO (or an
   argument error) with the reason, removes the temporary file and leaves path as it was.
   The target (POSIX): a symbolic link is followed to its target, which receives the checkpoint (the
   link stays); what is replaced must be a regular file with one hard link that the caller may
   write, or a new name in an existing directory; anything else (a directory, /dev/null or another
   device, a FIFO, a socket, a file with other hard links, a read-only file) is refused by name and
   nothing is written. An existing file keeps its mode (and, where permitted, its owner). The
   temporary file is "<name>.tmp.<pid>.<k>" in the target's directory, the name shortened so that
   it fits the directory's NAME_MAX and PATH_MAX. (Plain C99: no links, modes or types.) */
MHCDEF mhc_result mhc_checkpoint_save(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                      const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng);
/* The temporary file of a save. mhc_checkpoint_save(path) writes into a new file in the
   directory of path (of its final target when path is a symbolic link) and renames it over path; it tries up to MHC_CHECKPOINT_TMP_TRIES names (attempt 0
   first; a name that exists already is skipped). mhc_checkpoint_tmp_name writes the name of
   attempt `attempt` (0 <= attempt < MHC_CHECKPOINT_TMP_TRIES) in this process into buf[cap] and
   returns its length (snprintf-style: a result >= cap means buf was too small and holds a
   truncated name; strlen(path) + 64 always suffices); 0 for a NULL or empty path or a bad
   attempt. For a program that must remove a save's temporary file from a signal handler, which
   may call only async-signal-safe functions such as unlink: compute every name before the save,
   unlink them in the handler (tools/interrupt.h does this for `mhc train`). The names hold the
   process id, so no other process's save is touched. */
#define MHC_CHECKPOINT_TMP_TRIES 16
MHCDEF size_t mhc_checkpoint_tmp_name(char *buf, size_t cap, const char *path, int attempt);
/* Check, before any work, that mhc_checkpoint_save(path) can succeed as far as the file system
   goes: the target is resolved and checked as above, and the temporary file the save would write
   is created and removed again (so a missing, read-only or full directory is found now, not after
   hours of training). MHC_ERR_IO (or MHC_ERR_VALUE for a malformed name) with a message naming the
   target and the reason; MHC_OK leaves nothing behind. Any program that writes a whole file at
   the end of a long run may use it for that file too (build/mhc checks --save and --plot). */
MHCDEF mhc_result mhc_checkpoint_check_target(mhc_ctx *ctx, const char *path);
/* Read a checkpoint written by mhc_checkpoint_save: a regular file (anything else is refused with
   MHC_ERR_IO before reading), whose header is read first: a file whose length differs from the
   header's is refused before the rest is read; otherwise the whole file (exactly the header's
   length, one allocation) is read and checked as mhc_checkpoint_parse checks it. */
MHCDEF mhc_result mhc_checkpoint_load(mhc_ctx *ctx, const char *path, void *config, size_t config_cap,
                                      size_t *config_bytes, mhc_params *p, mhc_trainer *tr, mhc_rng *rng);
/* Parse a checkpoint held in memory (buf, len). Every output is optional:
 *   config/config_cap: receives the blob; if it is larger than config_cap -> MHC_ERR_SIZE (and
 *     *config_bytes says the size needed); config_bytes (may be NULL) receives its size;
 *   p: must be allocated with the same tensors (count, order, names, shapes, decay flags) as the
 *     file, else MHC_ERR_SHAPE naming the first differing tensor; receives data, m and v;
 *   tr: receives the trainer state (cfg, step, last_*) and is marked ready, tr->ctx = ctx;
 *     MHC_ERR_VALUE if the file holds none; rng: likewise for the rng state.
 * Pass p = tr = rng = NULL to read only the config (e.g. to build the model before loading).
 * Nothing is written to any output unless the whole buffer verifies. Malformed, truncated or
 * corrupted input gives MHC_ERR_FORMAT; a precision mismatch names both precisions. */
MHCDEF mhc_result mhc_checkpoint_parse(mhc_ctx *ctx, const void *buf, size_t len, void *config, size_t config_cap,
                                       size_t *config_bytes, mhc_params *p, mhc_trainer *tr, mhc_rng *rng);
/* Serialise into memory (snprintf-style): *len receives the size of the checkpoint; with buf NULL
   only the size is computed; cap < *len gives MHC_ERR_SIZE; otherwise the bytes are written. */
MHCDEF mhc_result mhc_checkpoint_serialize(mhc_ctx *ctx, void *buf, size_t cap, size_t *len,
                                           const void *config, size_t config_bytes, const mhc_params *p,
                                           const mhc_trainer *tr, const mhc_rng *rng);

#ifdef __cplusplus
}
#endif
#endif /* MHC_H_INCLUDE */

/* =========================================================================================
 * OPENMP WAIT POLICY (MHC_OMP_PASSIVE_DEFAULT, opt-in, for executables)
 * What an OpenMP thread does at the end of a parallel region, waiting for the next one, is
 * libgomp's OMP_WAIT_POLICY, read once when libgomp is loaded (before main; a setenv in main is
 * too late). Unset, libgomp spins for a while before it sleeps; a training step runs many
 * parallel regions, and on a machine where another process wants the same cores the spinning
 * threads take the time the working ones need. Measured by `make bench` on a 2-core
 * AVX2 machine (README, Performance): the mHC step under one busy process took 598 ms with the
 * policy unset, 308 ms passive and 497 ms active, against 162-172 ms alone, where passive and
 * unset took the same time in five of six alternating pairs (the sixth: 212 ms passive). On a
 * 2-core AVX-512 Xeon the quiet step at C = 256 took 103-110 ms passive against 91-93 ms unset
 * (each region's start and end put passive threads to sleep: 11 us a round trip against 1.3 us),
 * and 163-167 ms against 674-1020 ms under one busy process; a short spin (GOMP_SPINCOUNT
 * 1000-3000) took 95-101 ms quiet and 171-183 ms loaded, so the default stays passive.
 * Define MHC_OMP_PASSIVE_DEFAULT before including mhc.h in one translation unit of an executable
 * (build/mhc does, tools/main.c): on ELF systems with GCC or Clang and OpenMP it puts a function
 * in .preinit_array, which runs before any shared library's initialiser, and that adds
 * OMP_WAIT_POLICY=passive to the environment libgomp reads unless the environment already names
 * a policy (so a user's choice always wins); mhc_omp_passive_defaulted is 1 after it did.
 * Tested with glibc 2.36: gcc and g++ (libgomp), clang (libomp), -static, ASan, valgrind; the
 * user's other OpenMP variables (OMP_NUM_THREADS) still apply. With some C libraries the
 * program's own getenv("OMP_WAIT_POLICY") then says "passive", with glibc it says nothing. Not in a shared library (the
 * linker refuses .preinit_array there); elsewhere the macro does nothing. Library users who do
 * not define it keep libgomp's behaviour and choose with the environment variable.
 * ========================================================================================= */
#if defined(MHC_OMP_PASSIVE_DEFAULT) && !defined(MHC__OMP_PASSIVE_DONE)
#define MHC__OMP_PASSIVE_DONE
static int mhc_omp_passive_defaulted = 0;
#if defined(_OPENMP) && !defined(MHC_NO_OPENMP) && defined(__ELF__) && (defined(__GNUC__) || defined(__clang__))
#include <string.h>
#ifdef __cplusplus
extern "C" {
#endif
extern char **environ;
#ifdef __cplusplus
}
#endif
/* The C library's environ is not set yet when .preinit_array runs (glibc sets it in its own
   initialiser, and getenv and setenv would see an empty environment); the loader passes envp.
   So: no setenv, no malloc. If envp names no OMP_WAIT_POLICY (and has at most 4096 entries),
   environ becomes a static copy of envp plus "OMP_WAIT_POLICY=passive"; what the C library does
   with environ afterwards (keep it, or put its own envp back) leaves the program's environment
   intact, and libgomp has read the policy by then. */
static char *mhc__omp_passive_env[4096 + 2];
static char mhc__omp_passive_var[] = "OMP_WAIT_POLICY=passive";
static void mhc__omp_passive_preinit(int argc, char **argv, char **envp) {
    int k;
    (void)argc; (void)argv;
    if (!envp) return;
    for (k = 0; envp[k]; k++)
        if (k >= 4096 || strncmp(envp[k], "OMP_WAIT_POLICY=", 16) == 0) return;
    memcpy(mhc__omp_passive_env, envp, (size_t)k * sizeof *envp);
    mhc__omp_passive_env[k] = mhc__omp_passive_var;
    mhc__omp_passive_env[k + 1] = NULL;
    environ = mhc__omp_passive_env;
    mhc_omp_passive_defaulted = 1;
}
__attribute__((section(".preinit_array"), used))
static void (*const mhc__omp_passive_entry)(int, char **, char **) = mhc__omp_passive_preinit;
#endif
#endif

/* =========================================================================================
 * SHARED WITH THE CUDA UNIT (host and device)
 * The per-element and per-token code that mhc_cuda.cu runs on the device exactly as the CPU
 * runs it: this block is its only copy.
 *   mhc__adamw_elem                   AdamW on one element (the loop of mhc_adamw_step)
 *   mhc__sk_step, mhc__sk_step_back   one Sinkhorn row or column normalisation with an eps mode
 *                                     (add, clamp, threshold, zero), and its reverse
 *   mhc__sk_fwd, mhc__sk_bwd          one token's Sinkhorn projection (softmax or exp start, the
 *                                     log domain) or permutation mixture with the default
 *                                     conventions, in double, and its exact backward
 *                                     (MHC_SPEC.md Sec. 3; docs/tour.md Sec. 5, 7)
 *   mhc__kron_fwd, mhc__kron_bwd      the Kronecker mixture (KromHC), and its exact backward
 *   mhc__ortho_fwd, mhc__ortho_bwd    the orthostochastic projection (Newton-Schulz), and its
 *                                     exact backward (MHC_SPEC.md Sec. 8; docs/tour.md Sec. 7)
 *   mhc__proj_fwd, mhc__proj_bwd      every projection of a spec: one token's residual logits to
 *                                     its n x n matrix, with the convention knobs (eps mode,
 *                                     row_first, exp shift; MHC_SPEC.md Sec. 8: the shifted,
 *                                     transposed logits through mhc__sk_fwd_m, and back), or
 *                                     dispatching to the kron and ortho kernels above
 *   mhc__proj_token                   one token of the standalone projection (mhc_sinkhorn_*,
 *                                     mhc_kron_*, mhc_hc_proj_*)
 *   mhc__rstd                         the RMS factor of one line, eps inside or outside the root,
 *                                     and its derivative
 *   mhc__gates_token                  one token's mHC gates and residual logits from its dots
 * The implementation (MHC_IMPLEMENTATION) calls them, and its grouped CPU path (mhc__proj_fwd_g,
 * 8 tokens in SIMD lanes, CPU only, for the default conventions) repeats mhc__sk_fwd's operations
 * lane by lane.
 * mhc_cuda.cu defines MHC_SHARED_IMPLEMENTATION and includes mhc.h a second time: that emits
 * this block alone, and under nvcc MHC__HD is __host__ __device__. Every function here is
 * static, so the CUDA unit and an implementation unit link side by side.
 * ========================================================================================= */
#if defined(MHC_IMPLEMENTATION) || defined(MHC_SHARED_IMPLEMENTATION)
#ifndef MHC__SHARED_INCLUDED
#define MHC__SHARED_INCLUDED
#include <math.h>
#include <stddef.h>

#ifdef __CUDACC__
#define MHC__HD __host__ __device__
#else
#define MHC__HD
#endif
#if defined(__GNUC__) || defined(__clang__)
#define MHC__SHARED_FN static __attribute__((unused)) MHC__HD   /* a unit need not call every one */
#else
#define MHC__SHARED_FN static MHC__HD
#endif

/* ---- AdamW, one element ----
   The update of mhc_adamw_step (see its declaration for the formula), with the per-step
   constants step_size = lr / (1 - beta1^t), bc2_sqrt = sqrt(1 - beta2^t), decay = 1 - lr wd. */
MHC__SHARED_FN void mhc__adamw_elem(mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t i,
                                    double beta1, double beta2, double eps, double grad_scale,
                                    double step_size, double bc2_sqrt, double decay) {
    double g = (double)grad[i] * grad_scale;
    double p = (double)param[i] * decay;
    mhc_real mi = (mhc_real)(beta1 * (double)m[i] + (1.0 - beta1) * g);
    mhc_real vi = (mhc_real)(beta2 * (double)v[i] + (1.0 - beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    param[i] = (mhc_real)(p - step_size * (double)mi / (sqrt((double)vi) / bc2_sqrt + eps));
}

/* ---- mHC: the per-token Birkhoff projection (double) ---- */

/* sigmoid(x) = 1/(1+e^-x), computed without overflow on either side */
MHC__SHARED_FN double mhc__sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    else { double e = exp(x); return e / (1.0 + e); }
}

/* n! for 1 <= n <= 12, else -1 (the public mhc_perm_count) */
MHC__SHARED_FN long mhc__perm_count(int n) {
    long f = 1;
    int i;
    if (n < 1 || n > 12) return -1;
    for (i = 2; i <= n; i++) f *= i;
    return f;
}

/* log(exp(a) + exp(b)), b may be -inf */
MHC__SHARED_FN double mhc__logaddexp(double a, double b) {
    double mx = a > b ? a : b, mn = a > b ? b : a;
    if (mn == -HUGE_VAL) return mx;
    return mx + log1p(exp(mn - mx));
}

/* Next permutation in lexicographic order (wraps to the identity after the last). */
MHC__SHARED_FN void mhc__next_perm(int *p, int n) {
    int i = n - 2, j, t;
    while (i >= 0 && p[i] > p[i + 1]) i--;
    if (i >= 0) {
        j = n - 1;
        while (p[j] < p[i]) j--;
        t = p[i]; p[i] = p[j]; p[j] = t;
    }
    for (i = i + 1, j = n - 1; i < j; i++, j--) { t = p[i]; p[i] = p[j]; p[j] = t; }
}

/* Normalisation steps in the Sinkhorn schedule (step s = 1..nsteps; odd s: columns, even: rows). */
MHC__SHARED_FN int mhc__proj_steps(mhc_projection proj, int iters) {
    return proj == MHC_PROJ_SOFTMAX ? 2 * iters - 1 : 2 * iters;
}

/* Doubles of scratch one token's Sinkhorn projection (softmax, exp, log) or permutation mixture
   needs (forward and backward); mhc__proj_doubles below covers every projection of a spec. */
MHC__SHARED_FN size_t mhc__sk_doubles(mhc_projection proj, int n, int iters) {
    size_t nn = (size_t)n * (size_t)n;
    if (proj == MHC_PROJ_PERM) return 2 * (size_t)mhc__perm_count(n) + 8;
    return ((size_t)mhc__proj_steps(proj, iters) + 4) * nn + (size_t)mhc__proj_steps(proj, iters) * (size_t)n + 8;
}

/* One Sinkhorn step: every line (row a when cols = 0, column a when cols = 1) of X divided by its
   sum s, the division v/s taken as the eps mode says (MHC_SPEC.md Sec. 8):
     add        Y = X / (s + eps)                     (the default)
     clamp      Y = X / s if s >= eps, else X / eps    (v / max(s, eps))
     threshold  Y = X / s if s > eps, else X
     zero       Y = X / s if s > eps, else 0
   or, for the log form (logd), the same on L = logsumexp of the line against log eps: add
   Y = X - logaddexp(L, log eps); clamp X - L if L >= log eps, else X - log eps; threshold X - L if
   L > log eps, else X; zero X - L if L > log eps, else -inf. den[n] receives each line's s (or L),
   from which mhc__sk_step_back finds the branch again. With the add mode the operations are those
   of the paper's T_c / T_r with the eps of Sec. 3. */
MHC__SHARED_FN void mhc__sk_step(double *Y, const double *X, int n, int cols, double eps, int mode, int logd,
                                 double *den) {
    int a, j;
    int si = cols ? n : 1;
    double leps = eps > 0.0 ? log(eps) : -HUGE_VAL;
    if (!logd && !cols && mode == MHC_SK_EPS_ADD) {
        for (a = 0; a < n; a++) {           /* rows, the add mode: the line is contiguous */
            double s = 0.0, d;
            for (j = 0; j < n; j++) s += X[a * n + j];
            den[a] = s;
            d = s + eps;
            for (j = 0; j < n; j++) Y[a * n + j] = X[a * n + j] / d;
        }
        return;
    }
    if (!logd && cols && mode == MHC_SK_EPS_ADD) {
        int i;
        for (j = 0; j < n; j++) {           /* columns, the add mode: sums first, then one pass */
            double s = 0.0;
            for (i = 0; i < n; i++) s += X[i * n + j];
            den[j] = s;
        }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) Y[i * n + j] = X[i * n + j] / (den[j] + eps);
        return;
    }
    for (a = 0; a < n; a++) {
        int o = cols ? a : a * n;
        if (!logd) {
            double s = 0.0;
            for (j = 0; j < n; j++) s += X[o + j * si];
            den[a] = s;
            if (mode == MHC_SK_EPS_CLAMP) {
                double d = s >= eps ? s : eps;
                for (j = 0; j < n; j++) Y[o + j * si] = X[o + j * si] / d;
            } else if (s > eps) {           /* threshold and zero: divide only when s > eps */
                for (j = 0; j < n; j++) Y[o + j * si] = X[o + j * si] / s;
            } else {
                for (j = 0; j < n; j++) Y[o + j * si] = mode == MHC_SK_EPS_ZERO ? 0.0 : X[o + j * si];
            }
        } else {
            double mx = -HUGE_VAL, s = 0.0, lse, g;
            for (j = 0; j < n; j++) if (X[o + j * si] > mx) mx = X[o + j * si];
            if (mx == -HUGE_VAL) lse = -HUGE_VAL;
            else {
                for (j = 0; j < n; j++) s += exp(X[o + j * si] - mx);
                lse = mx + log(s);
            }
            den[a] = lse;
            if (mode == MHC_SK_EPS_ADD) g = mhc__logaddexp(lse, leps);
            else if (mode == MHC_SK_EPS_CLAMP) g = lse >= leps ? lse : leps;
            else if (lse > leps) g = lse;
            else {
                for (j = 0; j < n; j++) Y[o + j * si] = mode == MHC_SK_EPS_ZERO ? -HUGE_VAL : X[o + j * si];
                continue;
            }
            for (j = 0; j < n; j++) Y[o + j * si] = X[o + j * si] - g;
        }
    }
}

/* Reverse of one step: dX from dY (X, Y, den as the forward left them), for the branch the
   forward took on each line (see mhc__sk_step; at s == eps: clamp the division by s, threshold
   and zero their else branch). */
MHC__SHARED_FN void mhc__sk_step_back(double *dX, const double *dY, const double *X, const double *Y, int n, int cols,
                                      double eps, int mode, int logd, const double *den) {
    int a, j;
    int si = cols ? n : 1;
    double leps = eps > 0.0 ? log(eps) : -HUGE_VAL;
    for (a = 0; a < n; a++) {
        int o = cols ? a : a * n;
        double dot = 0.0;
        if (!logd) {
            /* Y = X / d with d = s (+ eps), s = sum(X):  dX = (dY - sum(dY Y)) / d;
               Y = X / eps: dX = dY / eps;  Y = X: dX = dY;  Y = 0: dX = 0 */
            double s = den[a], d;
            if (mode == MHC_SK_EPS_ADD) d = s + eps;
            else if (mode == MHC_SK_EPS_CLAMP ? s >= eps : s > eps) d = s;
            else {
                for (j = 0; j < n; j++)
                    dX[o + j * si] = mode == MHC_SK_EPS_CLAMP ? dY[o + j * si] / eps
                                   : mode == MHC_SK_EPS_ZERO ? 0.0 : dY[o + j * si];
                continue;
            }
            for (j = 0; j < n; j++) dot += dY[o + j * si] * Y[o + j * si];
            for (j = 0; j < n; j++) dX[o + j * si] = (dY[o + j * si] - dot) / d;
        } else {
            /* Y = X - g(L), L = logsumexp(X):  dX = dY - softmax(X) g'(L) sum(dY), g' = exp(L) / (exp(L) + eps)
               for add, 1 where the line is divided by its own sum; Y = X - log eps or X: dX = dY; -inf: 0 */
            double lse = den[a], gp;
            if (mode == MHC_SK_EPS_ADD) {
                if (eps > 0.0) gp = lse == -HUGE_VAL ? 0.0 : mhc__sigmoid(lse - log(eps));
                else gp = 1.0;
            } else if (mode == MHC_SK_EPS_CLAMP ? lse >= leps : lse > leps) {
                gp = 1.0;
            } else {
                for (j = 0; j < n; j++) dX[o + j * si] = mode == MHC_SK_EPS_ZERO ? 0.0 : dY[o + j * si];
                continue;
            }
            for (j = 0; j < n; j++) dot += dY[o + j * si];
            for (j = 0; j < n; j++) {
                double p = lse == -HUGE_VAL ? 0.0 : exp(X[o + j * si] - lse);
                dX[o + j * si] = dY[o + j * si] - p * gp * dot;
            }
        }
    }
}

/* Forward of one token's projection with the default conventions, columns first and the eps mode
   `mode` (the permutation mixture ignores iters, eps and mode): z [nres] -> out [n*n]; w: scratch
   (mhc__sk_doubles) left holding the iterates for mhc__sk_bwd_m. */
MHC__SHARED_FN void mhc__sk_fwd_m(mhc_projection proj, int n, int iters, double eps, int mode, const double *z,
                                  double *out, double *w) {
    size_t nn = (size_t)n * (size_t)n, k;
    int i, j, s, nsteps;
    double *it, *den, *P;
    if (proj == MHC_PROJ_PERM) {
        long K = mhc__perm_count(n), q;
        double mx = -HUGE_VAL, sum = 0.0;
        int p[MHC_LITE_MAX_N];
        double *a = w;
        for (q = 0; q < K; q++) if (z[q] > mx) mx = z[q];
        for (q = 0; q < K; q++) { a[q] = exp(z[q] - mx); sum += a[q]; }
        for (q = 0; q < K; q++) a[q] /= sum;
        for (k = 0; k < nn; k++) out[k] = 0.0;
        for (i = 0; i < n; i++) p[i] = i;
        for (q = 0; q < K; q++) {
            for (i = 0; i < n; i++) out[i * n + p[i]] += a[q];
            mhc__next_perm(p, n);
        }
        return;
    }
    nsteps = mhc__proj_steps(proj, iters);
    it = w;                                   /* (nsteps + 1) matrices */
    P = w + (size_t)(nsteps + 1) * nn;        /* softmax probabilities */
    den = P + 3 * nn;                         /* nsteps vectors of n (after 2 gradient buffers) */
    if (proj == MHC_PROJ_SOFTMAX) {
        for (i = 0; i < n; i++) {
            double mx = z[i * n], sum = 0.0;
            for (j = 1; j < n; j++) if (z[i * n + j] > mx) mx = z[i * n + j];
            for (j = 0; j < n; j++) { P[i * n + j] = exp(z[i * n + j] - mx); sum += P[i * n + j]; }
            for (j = 0; j < n; j++) { P[i * n + j] /= sum; it[i * n + j] = P[i * n + j] + eps; }
        }
    } else if (proj == MHC_PROJ_EXP) {
        for (k = 0; k < nn; k++) it[k] = exp(z[k]);
    } else {
        for (k = 0; k < nn; k++) it[k] = z[k];
    }
    for (s = 1; s <= nsteps; s++)
        mhc__sk_step(it + (size_t)s * nn, it + (size_t)(s - 1) * nn, n, s & 1, eps, mode, proj == MHC_PROJ_LOG,
                     den + (size_t)(s - 1) * (size_t)n);
    if (proj == MHC_PROJ_LOG)
        for (k = 0; k < nn; k++) out[k] = exp(it[(size_t)nsteps * nn + k]);
    else
        for (k = 0; k < nn; k++) out[k] = it[(size_t)nsteps * nn + k];
}

/* Its backward: dz [nres] = d(sum dout * out)/dz, written (not added). Recomputes the forward
   iterates into w first. out_tmp: n*n doubles. */
MHC__SHARED_FN void mhc__sk_bwd_m(mhc_projection proj, int n, int iters, double eps, int mode, const double *z,
                                  const double *dout, double *dz, double *w, double *out_tmp) {
    size_t nn = (size_t)n * (size_t)n, k;
    int i, j, s, nsteps;
    double *it, *den, *P, *g, *g2;
    mhc__sk_fwd_m(proj, n, iters, eps, mode, z, out_tmp, w);
    if (proj == MHC_PROJ_PERM) {
        long K = mhc__perm_count(n), q;
        int p[MHC_LITE_MAX_N];
        double *a = w, *da = w + K, dot = 0.0;
        for (i = 0; i < n; i++) p[i] = i;
        for (q = 0; q < K; q++) {
            double d = 0.0;
            for (i = 0; i < n; i++) d += dout[i * n + p[i]];
            da[q] = d;
            dot += d * a[q];
            mhc__next_perm(p, n);
        }
        for (q = 0; q < K; q++) dz[q] = a[q] * (da[q] - dot);
        return;
    }
    nsteps = mhc__proj_steps(proj, iters);
    it = w;
    P = w + (size_t)(nsteps + 1) * nn;
    g = P + nn;
    g2 = P + 2 * nn;
    den = P + 3 * nn;
    if (proj == MHC_PROJ_LOG)
        for (k = 0; k < nn; k++) g[k] = dout[k] * out_tmp[k];   /* out = exp(L) */
    else
        for (k = 0; k < nn; k++) g[k] = dout[k];
    for (s = nsteps; s >= 1; s--) {
        double *t;
        mhc__sk_step_back(g2, g, it + (size_t)(s - 1) * nn, it + (size_t)s * nn, n, s & 1, eps, mode,
                          proj == MHC_PROJ_LOG, den + (size_t)(s - 1) * (size_t)n);
        t = g; g = g2; g2 = t;
    }
    if (proj == MHC_PROJ_SOFTMAX) {
        /* it0 = P + eps, P = softmax_row(z) */
        for (i = 0; i < n; i++) {
            double dot = 0.0;
            for (j = 0; j < n; j++) dot += g[i * n + j] * P[i * n + j];
            for (j = 0; j < n; j++) dz[i * n + j] = P[i * n + j] * (g[i * n + j] - dot);
        }
    } else if (proj == MHC_PROJ_EXP) {
        for (k = 0; k < nn; k++) dz[k] = g[k] * it[k];      /* it0 = exp(z) */
    } else {
        for (k = 0; k < nn; k++) dz[k] = g[k];
    }
}

/* ---- KromHC: the Kronecker mixture (MHC_SPEC.md Sec. 8, arXiv 2601.21579) ----
   Factors a_1..a_K (s->kron_factors), n = a_1 ... a_K. The logits z [R], R = sum_k a_k!, hold
   factor after factor: z_k [a_k!]. Per factor, w_k = softmax(z_k) and U_k = sum_r w_k[r] P_r over
   the a_k! permutations in lexicographic order, P_r[i][p_r(i)] = 1 (the permutation mixture of
   mHC-lite, a_k x a_k). Then A = kron(U_1, ..., U_K) as numpy.kron nests it (the first factor's
   index varies slowest): with I = (i_1, ..., i_K) and J = (j_1, ..., j_K) in mixed radix
   (a_1, ..., a_K), A[I][J] = U_1[i_1][j_1] U_2[i_2][j_2] ... U_K[i_K][j_K] (multiplied in that
   order). Every U_k has rows and columns summing to sum_r w_k[r] = 1, so A is doubly stochastic
   to rounding. Built directly, like the permutation mixture (no orientation step). */

/* Scratch doubles: w [R] (the softmax weights), U and dU [sum_k a_k^2], dw [R]. */
MHC__SHARED_FN size_t mhc__kron_doubles(const mhc_hc_spec *s) {
    size_t R = 0, q = 0;
    int k;
    for (k = 0; k < s->kron_count; k++) {
        R += (size_t)mhc__perm_count(s->kron_factors[k]);
        q += (size_t)s->kron_factors[k] * (size_t)s->kron_factors[k];
    }
    return 2 * R + 2 * q + 8;
}

/* The mixed-radix digits of I: d[k] = i_k, the first factor's digit most significant. */
MHC__SHARED_FN void mhc__kron_digits(const mhc_hc_spec *s, int I, int *d) {
    int k;
    for (k = s->kron_count - 1; k >= 0; k--) {
        d[k] = I % s->kron_factors[k];
        I /= s->kron_factors[k];
    }
}

/* Forward: z [R] -> out [n*n]; w (mhc__kron_doubles) keeps w_k and U_k for mhc__kron_bwd. */
MHC__SHARED_FN void mhc__kron_fwd(const mhc_hc_spec *s, const double *z, double *out, double *w) {
    int K = s->kron_count, n = s->n, k, i, I, J, di[MHC_KRON_MAX_FACTORS], dj[MHC_KRON_MAX_FACTORS];
    size_t R = 0, zo = 0, uo = 0, uoff[MHC_KRON_MAX_FACTORS];
    double *wt = w, *U;
    for (k = 0; k < K; k++) R += (size_t)mhc__perm_count(s->kron_factors[k]);
    U = w + R;
    for (k = 0; k < K; k++) {
        int a = s->kron_factors[k], p[MHC_LITE_MAX_N];
        long P = mhc__perm_count(a), r;
        double mx = -HUGE_VAL, sum = 0.0, *Uk = U + uo;
        /* w_k = softmax(z_k) (the maximum subtracted first) */
        for (r = 0; r < P; r++) if (z[zo + r] > mx) mx = z[zo + r];
        for (r = 0; r < P; r++) { wt[zo + r] = exp(z[zo + r] - mx); sum += wt[zo + r]; }
        for (r = 0; r < P; r++) wt[zo + r] /= sum;
        /* U_k = sum_r w_k[r] P_r */
        for (i = 0; i < a * a; i++) Uk[i] = 0.0;
        for (i = 0; i < a; i++) p[i] = i;
        for (r = 0; r < P; r++) {
            for (i = 0; i < a; i++) Uk[i * a + p[i]] += wt[zo + r];
            mhc__next_perm(p, a);
        }
        uoff[k] = uo;
        zo += (size_t)P;
        uo += (size_t)a * (size_t)a;
    }
    /* A[I][J] = prod_k U_k[i_k][j_k] */
    for (I = 0; I < n; I++) {
        mhc__kron_digits(s, I, di);
        for (J = 0; J < n; J++) {
            double v;
            mhc__kron_digits(s, J, dj);
            v = U[uoff[0] + (size_t)di[0] * s->kron_factors[0] + dj[0]];
            for (k = 1; k < K; k++) v *= U[uoff[k] + (size_t)di[k] * s->kron_factors[k] + dj[k]];
            out[(size_t)I * n + J] = v;
        }
    }
}

/* Backward: dz [R] = d(sum dout * out)/dz, written (not added); recomputes the forward into w.
   dU_k[i][j] = sum over the (I, J) with i_k = i, j_k = j of dout[I][J] prod_{l != k} U_l[i_l][j_l]
   (the product of the other factors as prefix times suffix, never a division);
   dw_k[r] = sum_i dU_k[i][p_r(i)];  dz_k[r] = w_k[r] (dw_k[r] - sum_q w_k[q] dw_k[q]). */
MHC__SHARED_FN void mhc__kron_bwd(const mhc_hc_spec *s, const double *z, const double *dout, double *dz, double *w,
                                  double *out_tmp) {
    int K = s->kron_count, n = s->n, k, i, I, J, di[MHC_KRON_MAX_FACTORS], dj[MHC_KRON_MAX_FACTORS];
    size_t R = 0, Q = 0, zo = 0, uoff[MHC_KRON_MAX_FACTORS], q;
    double *wt = w, *U, *dU, *dw, f[MHC_KRON_MAX_FACTORS], pre[MHC_KRON_MAX_FACTORS];
    mhc__kron_fwd(s, z, out_tmp, w);
    for (k = 0; k < K; k++) {
        R += (size_t)mhc__perm_count(s->kron_factors[k]);
        uoff[k] = Q;
        Q += (size_t)s->kron_factors[k] * (size_t)s->kron_factors[k];
    }
    U = w + R;
    dU = U + Q;
    dw = dU + Q;
    for (q = 0; q < Q; q++) dU[q] = 0.0;
    for (I = 0; I < n; I++) {
        mhc__kron_digits(s, I, di);
        for (J = 0; J < n; J++) {
            double g = dout[(size_t)I * n + J], suf = 1.0;
            mhc__kron_digits(s, J, dj);
            for (k = 0; k < K; k++) {
                f[k] = U[uoff[k] + (size_t)di[k] * s->kron_factors[k] + dj[k]];
                pre[k] = k ? pre[k - 1] * f[k - 1] : 1.0;
            }
            for (k = K - 1; k >= 0; k--) {
                dU[uoff[k] + (size_t)di[k] * s->kron_factors[k] + dj[k]] += g * (pre[k] * suf);
                suf *= f[k];
            }
        }
    }
    for (k = 0; k < K; k++) {
        int a = s->kron_factors[k], p[MHC_LITE_MAX_N];
        long P = mhc__perm_count(a), r;
        double dot = 0.0, *dUk = dU + uoff[k];
        for (i = 0; i < a; i++) p[i] = i;
        for (r = 0; r < P; r++) {
            double d = 0.0;
            for (i = 0; i < a; i++) d += dUk[i * a + p[i]];
            dw[zo + r] = d;
            dot += d * wt[zo + r];
            mhc__next_perm(p, a);
        }
        for (r = 0; r < P; r++) dz[zo + r] = wt[zo + r] * (dw[zo + r] - dot);
        zo += (size_t)P;
    }
}

/* ---- orthostochastic mixing (MHC_SPEC.md Sec. 8; tokenbender/mHC-manifold-constrained-hyper-
   connections, zeropower_via_newtonschulz and orthostochastic_project) ----
   Per token, on the n x n logits Z (z[i*n + j] = Z[i][j]):
     X_0 = Z / (||Z||_F + 1e-7);
     K times (K = s->ns_iters):  A = X X^T;  B = -3.2 A + 1.2 A A;  X = 3.0 X + B X;
     H = X_K o X_K (elementwise square).
   The iteration drives X towards the orthogonal polar factor of Z (each singular value s goes
   to f(s) = 3 s - 3.2 s^3 + 1.2 s^5, which has the fixed point 1), and the elementwise square of
   an orthogonal matrix is doubly stochastic. H is doubly stochastic ONLY as the iteration
   converges: after 5 iterations (the peer's default) its row and column sums are off by up to
   ~0.24 for random logits; after 100 they are 1 to ~1e-12 (a singular Z, e.g. Z = 0, never gets
   there: its zero singular values stay 0). H >= 0 always. The orientation applies (the peer mixes
   with H^T: orient comb_t). */
#define MHC__NS_A 3.0
#define MHC__NS_B (-3.2)
#define MHC__NS_C 1.2
#define MHC__NS_EPS 1e-7

/* Scratch doubles: the iterates X_0..X_K, then seven n x n work matrices. */
MHC__SHARED_FN size_t mhc__ortho_doubles(int n, int K) {
    return ((size_t)K + 8) * (size_t)n * (size_t)n + 8;
}

/* A = X X^T and B = b A + c A A (both symmetric: the same products in the same order). */
MHC__SHARED_FN void mhc__ns_AB(const double *X, int n, double *A, double *B) {
    int i, j, l;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double a = 0.0;
            for (l = 0; l < n; l++) a += X[i * n + l] * X[j * n + l];
            A[i * n + j] = a;
        }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double a = 0.0;
            for (l = 0; l < n; l++) a += A[i * n + l] * A[l * n + j];
            B[i * n + j] = MHC__NS_B * A[i * n + j] + MHC__NS_C * a;
        }
}

/* Forward: z [n*n] -> out [n*n] = H; w (mhc__ortho_doubles) keeps X_0..X_K for mhc__ortho_bwd. */
MHC__SHARED_FN void mhc__ortho_fwd(int n, int K, const double *z, double *out, double *w) {
    size_t nn = (size_t)n * (size_t)n, k;
    double *A = w + ((size_t)K + 1) * nn, *B = A + nn, nrm = 0.0, sc;
    int it, i, j, l;
    for (k = 0; k < nn; k++) nrm += z[k] * z[k];
    sc = 1.0 / (sqrt(nrm) + MHC__NS_EPS);
    for (k = 0; k < nn; k++) w[k] = z[k] * sc;
    for (it = 1; it <= K; it++) {
        const double *X = w + (size_t)(it - 1) * nn;
        double *Y = w + (size_t)it * nn;
        mhc__ns_AB(X, n, A, B);
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double a = 0.0;
                for (l = 0; l < n; l++) a += B[i * n + l] * X[l * n + j];
                Y[i * n + j] = MHC__NS_A * X[i * n + j] + a;
            }
    }
    for (k = 0; k < nn; k++) out[k] = w[(size_t)K * nn + k] * w[(size_t)K * nn + k];
}

/* Backward: dz [n*n] = d(sum dout * H)/dz, written (not added); recomputes the forward into w.
   G = dX_K = 2 X_K o dout; then per iteration backwards, with X = X_{it-1}, A, B recomputed
   and Y = 3 X + B X:
     dX = 3 G + B^T G;  dB = G X^T;  dA = b dB + c (dB A^T + A^T dB);  dX += (dA + dA^T) X;
   and at X_0 = Z s, s = 1/(||Z|| + 1e-7): dZ = s G - s^2 (sum G o Z) Z / ||Z|| (for Z = 0 the
   norm's subgradient 0 is taken: dZ = G / 1e-7). */
MHC__SHARED_FN void mhc__ortho_bwd(int n, int K, const double *z, const double *dout, double *dz, double *w,
                                   double *out_tmp) {
    size_t nn = (size_t)n * (size_t)n, k;
    double *A, *B, *G, *G2, *dB, *dA, nrm = 0.0, sc, dot = 0.0;
    int it, i, j, l;
    mhc__ortho_fwd(n, K, z, out_tmp, w);
    A = w + ((size_t)K + 1) * nn; B = A + nn; G = B + nn; G2 = G + nn; dB = G2 + nn; dA = dB + nn;
    for (k = 0; k < nn; k++) G[k] = 2.0 * w[(size_t)K * nn + k] * dout[k];
    for (it = K; it >= 1; it--) {
        const double *X = w + (size_t)(it - 1) * nn;
        double *t;
        mhc__ns_AB(X, n, A, B);
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double a = 0.0, b = 0.0;
                for (l = 0; l < n; l++) a += B[l * n + i] * G[l * n + j];   /* (B^T G)[i][j] */
                for (l = 0; l < n; l++) b += G[i * n + l] * X[j * n + l];   /* (G X^T)[i][j] */
                G2[i * n + j] = MHC__NS_A * G[i * n + j] + a;
                dB[i * n + j] = b;
            }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double a = 0.0;
                for (l = 0; l < n; l++) a += dB[i * n + l] * A[j * n + l] + A[l * n + i] * dB[l * n + j];
                dA[i * n + j] = MHC__NS_B * dB[i * n + j] + MHC__NS_C * a;
            }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {
                double a = 0.0;
                for (l = 0; l < n; l++) a += (dA[i * n + l] + dA[l * n + i]) * X[l * n + j];
                G2[i * n + j] += a;
            }
        t = G; G = G2; G2 = t;
    }
    for (k = 0; k < nn; k++) { nrm += z[k] * z[k]; dot += G[k] * z[k]; }
    nrm = sqrt(nrm);
    sc = 1.0 / (nrm + MHC__NS_EPS);
    for (k = 0; k < nn; k++) dz[k] = sc * G[k] - (nrm > 0.0 ? sc * sc * dot * z[k] / nrm : 0.0);
}

/* The default conventions (eps added, columns first, no shift): mhc__sk_fwd_m / _bwd_m with the
   add mode. These are the projections of MHC_SPEC.md Sec. 3 exactly as the grouped CPU path
   (mhc__proj_fwd_g) repeats them lane by lane. */
MHC__SHARED_FN void mhc__sk_fwd(mhc_projection proj, int n, int iters, double eps, const double *z, double *out,
                                double *w) {
    mhc__sk_fwd_m(proj, n, iters, eps, MHC_SK_EPS_ADD, z, out, w);
}
MHC__SHARED_FN void mhc__sk_bwd(mhc_projection proj, int n, int iters, double eps, const double *z, const double *dout,
                                double *dz, double *w, double *out_tmp) {
    mhc__sk_bwd_m(proj, n, iters, eps, MHC_SK_EPS_ADD, z, dout, dz, w, out_tmp);
}

/* ---- every projection of a spec, one token, with its convention knobs (MHC_SPEC.md Sec. 8) ----
   The layer (references, fast path, CUDA unit) and the standalone projections call these; they
   dispatch on s->projection: the Kronecker mixture (mhc__kron_*, s->kron_factors), the
   orthostochastic projection (mhc__ortho_*, s->ns_iters), and the Sinkhorn forms and the
   permutation mixture (mhc__sk_*, with s->iters, s->sinkhorn_eps and the three Sinkhorn knobs).
   s needs projection, n, nres and the projection's own fields (a resolved spec, or one made by
   mhc__proj_spec_make; 0 in a knob counts as its default). */

/* Whether s asks for the default Sinkhorn conventions (then the projection is mhc__sk_fwd /
   mhc__sk_bwd, bit for bit; the permutation and Kronecker mixtures and the orthostochastic
   projection have no Sinkhorn steps: always). */
MHC__SHARED_FN int mhc__sk_plain(const mhc_hc_spec *s) {
    if (s->projection == MHC_PROJ_PERM || s->projection == MHC_PROJ_KRON || s->projection == MHC_PROJ_ORTHO) return 1;
    return (s->sinkhorn_eps_mode == MHC_SK_EPS_PRESET || s->sinkhorn_eps_mode == MHC_SK_EPS_ADD) &&
           s->sinkhorn_order != MHC_SK_ROW_FIRST &&
           (s->exp_shift == MHC_EXP_SHIFT_PRESET || s->exp_shift == MHC_EXP_SHIFT_NONE ||
            s->projection == MHC_PROJ_SOFTMAX);
}

/* Whether the norm knobs are the defaults (inside, flat). */
MHC__SHARED_FN int mhc__norm_plain(const mhc_hc_spec *s) {
    return s->norm_eps_mode != MHC_NORM_EPS_OUTSIDE && s->norm_scope != MHC_NORM_SCOPE_STREAM;
}

/* The eps mode of s as mhc__sk_step takes it (0 = the default, add). */
MHC__SHARED_FN int mhc__sk_mode(const mhc_hc_spec *s) {
    return s->sinkhorn_eps_mode == MHC_SK_EPS_PRESET ? (int)MHC_SK_EPS_ADD : (int)s->sinkhorn_eps_mode;
}

/* Whether the layer's A is comb^T (orientation comb_t): not for the mixtures built directly. */
MHC__SHARED_FN int mhc__proj_transposed(const mhc_hc_spec *s) {
    return s->projection != MHC_PROJ_PERM && s->projection != MHC_PROJ_KRON && s->orient == MHC_ORIENT_COMB_T;
}

/* Doubles of scratch one token's projection of s needs (forward and backward): the default one's,
   and for the knobs the prepared logits zt, the inner result or gradient, and the argmax of each line. */
MHC__SHARED_FN size_t mhc__proj_doubles(const mhc_hc_spec *s) {
    size_t nn = (size_t)s->n * (size_t)s->n, d = mhc__sk_doubles(s->projection, s->n, s->iters);
    if (s->projection == MHC_PROJ_KRON) return mhc__kron_doubles(s);
    if (s->projection == MHC_PROJ_ORTHO) return mhc__ortho_doubles(s->n, s->ns_iters);
    return mhc__sk_plain(s) ? d : d + 3 * nn + (size_t)s->n + 8;
}

/* The knobs' start: zt = the logits after the exp shift (each row's or column's max subtracted,
   argmax[line] = the first index of the max), transposed for row_first. */
MHC__SHARED_FN void mhc__proj_prep(const mhc_hc_spec *s, const double *z, double *zt, double *argmax) {
    int n = s->n, i, j, shift = s->projection == MHC_PROJ_SOFTMAX ? 0 : (int)s->exp_shift;
    int tr = s->sinkhorn_order == MHC_SK_ROW_FIRST;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) zt[tr ? j * n + i : i * n + j] = z[i * n + j];
    if (shift == MHC_EXP_SHIFT_ROW_MAX || shift == MHC_EXP_SHIFT_COL_MAX) {
        int rows = shift == MHC_EXP_SHIFT_ROW_MAX, a;
        for (a = 0; a < n; a++) {            /* line a of z: row a (row_max) or column a (col_max) */
            int best = 0, q;
            double mx;
            for (q = 1; q < n; q++)
                if ((rows ? z[a * n + q] : z[q * n + a]) > (rows ? z[a * n + best] : z[best * n + a])) best = q;
            mx = rows ? z[a * n + best] : z[best * n + a];
            argmax[a] = (double)best;
            for (q = 0; q < n; q++) {
                int i0 = rows ? a : q, j0 = rows ? q : a;         /* element (i0, j0) of z */
                zt[tr ? j0 * n + i0 : i0 * n + j0] -= mx;
            }
        }
    }
}

/* Forward of one token's projection: z [s->nres] -> out [n*n]; w: mhc__proj_doubles scratch. */
MHC__SHARED_FN void mhc__proj_fwd(const mhc_hc_spec *s, const double *z, double *out, double *w) {
    size_t nn = (size_t)s->n * (size_t)s->n, k;
    int n = s->n, i, j;
    double *zt, *o, *am;
    if (s->projection == MHC_PROJ_KRON) { mhc__kron_fwd(s, z, out, w); return; }
    if (s->projection == MHC_PROJ_ORTHO) { mhc__ortho_fwd(n, s->ns_iters, z, out, w); return; }
    if (mhc__sk_plain(s)) {
        mhc__sk_fwd(s->projection, s->n, s->iters, s->sinkhorn_eps, z, out, w);
        return;
    }
    zt = w + mhc__sk_doubles(s->projection, n, s->iters);
    o = zt + nn;
    am = o + nn;
    mhc__proj_prep(s, z, zt, am);
    mhc__sk_fwd_m(s->projection, n, s->iters, s->sinkhorn_eps, mhc__sk_mode(s), zt, o, w);
    if (s->sinkhorn_order == MHC_SK_ROW_FIRST)
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) out[i * n + j] = o[j * n + i];
    else
        for (k = 0; k < nn; k++) out[k] = o[k];
}

/* Backward of one token's projection: dz [s->nres] = d(sum dout * out)/dz, written (not added);
   recomputes the forward into w. out_tmp: n*n doubles. The shift's own term: z' = z - max(line),
   so dz[line's argmax] -= sum over the line of dz'. */
MHC__SHARED_FN void mhc__proj_bwd(const mhc_hc_spec *s, const double *z, const double *dout, double *dz, double *w,
                                  double *out_tmp) {
    size_t nn = (size_t)s->n * (size_t)s->n;
    int n = s->n, i, j, tr = s->sinkhorn_order == MHC_SK_ROW_FIRST, shift;
    double *zt, *g, *am;
    if (s->projection == MHC_PROJ_KRON) { mhc__kron_bwd(s, z, dout, dz, w, out_tmp); return; }
    if (s->projection == MHC_PROJ_ORTHO) { mhc__ortho_bwd(n, s->ns_iters, z, dout, dz, w, out_tmp); return; }
    if (mhc__sk_plain(s)) {
        mhc__sk_bwd(s->projection, s->n, s->iters, s->sinkhorn_eps, z, dout, dz, w, out_tmp);
        return;
    }
    zt = w + mhc__sk_doubles(s->projection, n, s->iters);
    g = zt + nn;
    am = g + nn;
    mhc__proj_prep(s, z, zt, am);
    for (i = 0; i < n; i++)                  /* d(inner result) = dout, transposed for row_first */
        for (j = 0; j < n; j++) g[i * n + j] = tr ? dout[j * n + i] : dout[i * n + j];
    mhc__sk_bwd_m(s->projection, n, s->iters, s->sinkhorn_eps, mhc__sk_mode(s), zt, g, out_tmp, w, dz);
    /* out_tmp now holds d zt; untranspose into dz */
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) dz[i * n + j] = tr ? out_tmp[j * n + i] : out_tmp[i * n + j];
    shift = s->projection == MHC_PROJ_SOFTMAX ? 0 : (int)s->exp_shift;
    if (shift == MHC_EXP_SHIFT_ROW_MAX || shift == MHC_EXP_SHIFT_COL_MAX) {
        int rows = shift == MHC_EXP_SHIFT_ROW_MAX, a, q;
        for (a = 0; a < n; a++) {
            double sum = 0.0;
            int best = (int)am[a];
            for (q = 0; q < n; q++) sum += rows ? dz[a * n + q] : dz[q * n + a];
            if (rows) dz[a * n + best] -= sum;
            else dz[best * n + a] -= sum;
        }
    }
}

/* A spec for the standalone projection (mhc_sinkhorn_* and their CUDA twins): projection, n,
   nres, iters (also ns_iters, for ortho), eps, the variant of the projection, orientation h; the
   knobs at their defaults. The Kronecker mixture's factors are set by the caller. */
MHC__SHARED_FN void mhc__proj_spec_make(mhc_hc_spec *s, mhc_projection proj, int n, int iters, double eps) {
    size_t k;
    unsigned char *b = (unsigned char *)s;
    for (k = 0; k < sizeof *s; k++) b[k] = 0;
    s->variant = proj == MHC_PROJ_PERM ? MHC_VARIANT_LITE : proj == MHC_PROJ_KRON ? MHC_VARIANT_KROMHC :
                 proj == MHC_PROJ_ORTHO ? MHC_VARIANT_ORTHO : MHC_VARIANT_MHC;
    s->projection = proj;
    s->orient = MHC_ORIENT_H;
    s->n = n;
    s->nres = proj == MHC_PROJ_PERM ? (int)mhc__perm_count(n) : n * n;
    s->iters = iters;
    s->ns_iters = iters;
    s->sinkhorn_eps = eps;
}

/* ---- mHC: one token of the standalone projection, and one token's gates ---- */

/* Doubles of scratch mhc__proj_token needs: the projection's (mhc__proj_doubles), then z [nres],
   out [n*n], dout [n*n], dz [nres]. */
MHC__SHARED_FN size_t mhc__proj_token_doubles(const mhc_hc_spec *s) {
    size_t nn = (size_t)s->n * (size_t)s->n, nres = (size_t)s->nres;
    return mhc__proj_doubles(s) + 2 * nres + 2 * nn;
}

/* One token of mhc_sinkhorn_forward / _backward, mhc_kron_* and mhc_hc_proj_* (and of their
   CUDA twins): out [n*n] = project(logits [nres]), or, when d_out [n*n] is given,
   d_logits [nres] += the gradient; w: mhc__proj_token_doubles scratch. */
MHC__SHARED_FN void mhc__proj_token(const mhc_hc_spec *s, const mhc_real *logits, mhc_real *out, mhc_real *d_logits,
                                    const mhc_real *d_out, double *w) {
    size_t nn = (size_t)s->n * (size_t)s->n, nres = (size_t)s->nres, k;
    double *z = w + mhc__proj_doubles(s), *o = z + nres, *g = o + nn, *dz = g + nn;
    for (k = 0; k < nres; k++) z[k] = (double)logits[k];
    if (!d_out) {
        mhc__proj_fwd(s, z, o, w);
        for (k = 0; k < nn; k++) out[k] = (mhc_real)o[k];
    } else {
        for (k = 0; k < nn; k++) g[k] = (double)d_out[k];
        mhc__proj_bwd(s, z, g, dz, w, o);
        for (k = 0; k < nres; k++) d_logits[k] += (mhc_real)dz[k];
    }
}

/* ---- mHC: the norm of one line (MHC_SPEC.md Sec. 2 step 1 and Sec. 8) ----
   rstd of len values with sum of squares ss: inside 1/sqrt(ss/len + eps), outside
   1/(sqrt(ss/len) + eps). *g (when not NULL) receives d rstd / d x_j divided by x_j: inside
   -rstd^3/len, outside -rstd^2/(len sqrt(ss/len)), and 0 at ss = 0 (outside: the subgradient 0
   of the norm at 0, as torch's norm backward takes it). */
MHC__SHARED_FN double mhc__rstd(double ss, int len, double eps, int outside, double *g) {
    double r;
    if (!outside) {
        r = 1.0 / sqrt(ss / (double)len + eps);
        if (g) *g = -r * r * r / (double)len;
    } else {
        double rms = sqrt(ss / (double)len);
        r = 1.0 / (rms + eps);
        if (g) *g = rms > 0.0 ? -r * r / ((double)len * rms) : 0.0;
    }
    return r;
}

/* mHC/lite/head, one token: the gates and the residual logits from its dots dot[m] and rstd
   (MHC_SPEC.md Sec. 2, steps 1-2, with mix[k] = dot[k] rstd): sp[i] = sigmoid(mix[i] s0 + base[i]),
   the pre gates without pre_eps; unless head: spo[i] = sigmoid(mix[n+i] s1 + base[n+i]), the post
   gates before post_mult, and z[k] = mix[2n+k] s2 + base[2n+k], the nres residual logits. */
MHC__SHARED_FN void mhc__gates_token(int n, int nres, int head, const mhc_real *scale, const mhc_real *base,
                                   const double *dot, double rstd, double *sp, double *spo, double *z) {
    int i, k;
    double s0 = (double)scale[0];
    for (i = 0; i < n; i++) sp[i] = mhc__sigmoid(dot[i] * rstd * s0 + (double)base[i]);
    if (head) return;
    {
        double s1 = (double)scale[1], s2 = (double)scale[2];
        for (i = 0; i < n; i++) spo[i] = mhc__sigmoid(dot[n + i] * rstd * s1 + (double)base[n + i]);
        for (k = 0; k < nres; k++) z[k] = dot[2 * n + k] * rstd * s2 + (double)base[2 * n + k];
    }
}

#endif /* MHC__SHARED_INCLUDED */
#endif /* MHC_IMPLEMENTATION || MHC_SHARED_IMPLEMENTATION */


/* ******************************************************************************************
 *                                    IMPLEMENTATION
 * ****************************************************************************************** */
#ifdef MHC_IMPLEMENTATION
#ifndef MHC_IMPLEMENTATION_INCLUDED
#define MHC_IMPLEMENTATION_INCLUDED

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <float.h>
#include <errno.h>
#include <limits.h>

#if defined(MHC_MALLOC) && defined(MHC_FREE) && defined(MHC_REALLOC)
/* all three given */
#elif !defined(MHC_MALLOC) && !defined(MHC_FREE) && !defined(MHC_REALLOC)
#define MHC_MALLOC(sz) malloc(sz)
#define MHC_REALLOC(p, sz) realloc(p, sz)
#define MHC_FREE(p) free(p)
#else
#error "mhc.h: define all of MHC_MALLOC, MHC_REALLOC and MHC_FREE, or none of them"
#endif

#ifndef MHC_ASSERT
#include <assert.h>
#define MHC_ASSERT(x) assert(x)
#endif

#if defined(_OPENMP) && !defined(MHC_NO_OPENMP)
#include <omp.h>
#define MHC__OMP 1
#define MHC__PRAGMA(x) _Pragma(#x)
#define MHC__OMP_FOR(cond) MHC__PRAGMA(omp parallel for schedule(static) if(cond))
/* at most n threads, each knowing its index (MHC__THREAD_NUM) for a per-thread scratch slot */
#define MHC__OMP_FOR_SLOTS(n, cond) MHC__PRAGMA(omp parallel for schedule(static) num_threads(n) if(cond))
#define MHC__THREAD_NUM() omp_get_thread_num()
/* one parallel region holding several worksharing loops (MHC__OMP_FOR_NOWAIT, no barrier between) */
#define MHC__OMP_PARALLEL(cond) MHC__PRAGMA(omp parallel if(cond))
#define MHC__OMP_FOR_NOWAIT MHC__PRAGMA(omp for schedule(static) nowait)
#else
#define MHC__OMP 0
#define MHC__OMP_FOR(cond)
#define MHC__OMP_FOR_SLOTS(n, cond)
#define MHC__THREAD_NUM() 0
#define MHC__OMP_PARALLEL(cond)
#define MHC__OMP_FOR_NOWAIT
#endif

#ifdef __cplusplus
#define MHC__CAST(T, x) (static_cast<T>(x))
#else
#define MHC__CAST(T, x) ((T)(x))
#endif

/* restrict (C99) where the language has it: the batched Sinkhorn loops vectorise without
   run-time alias checks */
#if defined(__cplusplus) && (defined(__GNUC__) || defined(_MSC_VER))
#define MHC__RESTRICT __restrict
#elif !defined(__cplusplus) && defined(__STDC_VERSION__) && __STDC_VERSION__ >= 199901L
#define MHC__RESTRICT restrict
#else
#define MHC__RESTRICT
#endif

/* Work (in multiply-adds) below which a loop stays on one thread. */
#define MHC__PAR_WORK 32768

#ifdef __cplusplus
extern "C" {
#endif

/* =========================================================================================
 * CONFIG AND PORTABILITY (implementation)
 * The version string and the overflow-checked multiplication used by the size computations.
 * ========================================================================================= */

MHCDEF const char *mhc_version(void) { return MHC_VERSION_STRING " (" MHC_REAL_NAME ")"; }

/* Finite by the bit pattern (exponent not all ones): -ffast-math cannot fold this test away,
   as it may fold isfinite() to 1. Every finiteness check of the library uses it. */
static int mhc__finite(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

/* a*b into *out; returns 0 on overflow. */
static int mhc__mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* =========================================================================================
 * RESULTS AND ERRORS (implementation)
 * Result names and the context's message: mhc_fail formats into the caller's mhc_ctx (never a
 * global), so each object reports its own last error.
 * ========================================================================================= */

MHCDEF const char *mhc_result_string(mhc_result r) {
    switch (r) {
    case MHC_OK: return "MHC_OK: success";
    case MHC_ERR_NULL: return "MHC_ERR_NULL: a required pointer was NULL";
    case MHC_ERR_SIZE: return "MHC_ERR_SIZE: a size was zero, negative or out of range";
    case MHC_ERR_SHAPE: return "MHC_ERR_SHAPE: shapes do not match";
    case MHC_ERR_OVERFLOW: return "MHC_ERR_OVERFLOW: a size computation overflows";
    case MHC_ERR_NOMEM: return "MHC_ERR_NOMEM: out of memory";
    case MHC_ERR_VALUE: return "MHC_ERR_VALUE: an argument value is invalid";
    case MHC_ERR_NONFINITE: return "MHC_ERR_NONFINITE: NaN or Inf where a finite number is required";
    case MHC_ERR_STATE: return "MHC_ERR_STATE: object used in the wrong state";
    case MHC_ERR_IO: return "MHC_ERR_IO: input/output error";
    case MHC_ERR_FORMAT: return "MHC_ERR_FORMAT: malformed, truncated or corrupted data";
    default: return "MHC_ERR_?: unknown result code";
    }
}

MHCDEF void mhc_ctx_init(mhc_ctx *ctx) {
    if (!ctx) return;
    memset(ctx, 0, sizeof *ctx);
}

MHCDEF void mhc_ctx_clear(mhc_ctx *ctx) {
    if (!ctx) return;
    ctx->last = MHC_OK;
    ctx->msg[0] = 0;
}

/* The scratch limit of ctx in bytes (mhc_ctx.scratch_max, 0 or no context: MHC_SCRATCH_MAX). */
static size_t mhc__scratch_limit(const mhc_ctx *ctx) {
    return ctx && ctx->scratch_max ? ctx->scratch_max : (size_t)MHC_SCRATCH_MAX;
}

/* MHC_OK if `doubles` doubles of scratch are within ctx's limit; else MHC_ERR_SIZE with a message
   naming fn, what the scratch is for and its formula (what), the size and the limit. doubles =
   SIZE_MAX stands for a size that overflows. */
static mhc_result mhc__scratch_ok(mhc_ctx *ctx, const char *fn, size_t doubles, const char *what) {
    size_t lim = mhc__scratch_limit(ctx);
    if (doubles <= lim / sizeof(double)) return MHC_OK;
    return mhc_fail(ctx, MHC_ERR_SIZE, "%s: %s needs %.4g bytes of scratch, more than the limit of %zu bytes "
                    "(mhc_ctx.scratch_max; 0 means MHC_SCRATCH_MAX = %zu): refused before allocating; raise "
                    "scratch_max to allow it", fn, what, (double)doubles * (double)sizeof(double), lim,
                    (size_t)MHC_SCRATCH_MAX);
}

MHCDEF const char *mhc_ctx_message(const mhc_ctx *ctx) {
    if (!ctx) return "(no context)";
    return ctx->msg[0] ? ctx->msg : mhc_result_string(ctx->last);
}

MHCDEF mhc_result mhc_fail(mhc_ctx *ctx, mhc_result r, const char *fmt, ...) {
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        va_end(ap);
        ctx->last = r;
    }
    return r;
}

/* =========================================================================================
 * RNG (implementation)
 * splitmix64 expands the seed into xoshiro256** state. The 64-bit stream is pure integer
 * arithmetic (the same on every platform); uniforms take its top 53 bits; normals are
 * Box-Muller in double.
 * ========================================================================================= */

static uint64_t mhc__splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

MHCDEF void mhc_rng_seed(mhc_rng *rng, uint64_t seed) {
    int i;
    if (!rng) return;
    for (i = 0; i < 4; i++) rng->s[i] = mhc__splitmix64(&seed);
}

static uint64_t mhc__rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

MHCDEF uint64_t mhc_rng_u64(mhc_rng *rng) {
    uint64_t *s, result, t;
    if (!rng) return 0;   /* (a NULL generator yields zeros, not a crash) */
    s = rng->s;
    result = mhc__rotl(s[1] * 5, 7) * 9;
    t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mhc__rotl(s[3], 45);
    return result;
}

MHCDEF uint32_t mhc_rng_below(mhc_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased */
    uint64_t m;
    uint32_t l, t;
    /* NULL, or a state never seeded (all zero: xoshiro then yields 0 forever, and the rejection
       below would never end) */
    if (n <= 1 || !rng || (rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0) return 0;
    m = (uint64_t)(uint32_t)(mhc_rng_u64(rng) >> 32) * n;
    l = (uint32_t)m;
    if (l < n) {
        t = (uint32_t)(0u - n) % n;
        while (l < t) {
            m = (uint64_t)(uint32_t)(mhc_rng_u64(rng) >> 32) * n;
            l = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

MHCDEF double mhc_rng_uniform(mhc_rng *rng) {
    return (double)(mhc_rng_u64(rng) >> 11) * (1.0 / 9007199254740992.0);
}

MHCDEF double mhc_rng_normal(mhc_rng *rng) {
    /* Box-Muller, one value per call (no cached spare: the state is just the generator) */
    double u1 = 1.0 - mhc_rng_uniform(rng);   /* (0, 1] */
    double u2 = mhc_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586476925 * u2);
}

MHCDEF void mhc_rng_fill_normal(mhc_rng *rng, mhc_real *x, size_t count, double mean, double std) {
    size_t i;
    if (!rng || !x) return;
    for (i = 0; i < count; i++) x[i] = (mhc_real)(mean + std * mhc_rng_normal(rng));
}

MHCDEF void mhc_rng_fill_uniform(mhc_rng *rng, mhc_real *x, size_t count, double lo, double hi) {
    size_t i;
    if (!rng || !x) return;
    for (i = 0; i < count; i++) x[i] = (mhc_real)(lo + (hi - lo) * mhc_rng_uniform(rng));
}

/* =========================================================================================
 * TENSORS, ARENA, PARAMETER STORE (implementation)
 * The arena's block chain (collapsed into one block of the peak size on reset, so steady-state
 * steps do not allocate), shape helpers, and the parameter store's four flat arrays.
 * ========================================================================================= */

struct mhc_arena_block {
    mhc_arena_block *prev;
    size_t cap, used;
    unsigned char *base;      /* 64-byte aligned start inside the allocation */
};

#define MHC__ALIGN 64

static mhc_arena_block *mhc__block_new(size_t cap) {
    size_t total;
    unsigned char *raw;
    mhc_arena_block *b;
    if (cap > SIZE_MAX - sizeof(mhc_arena_block) - 2 * MHC__ALIGN) return NULL;
    total = sizeof(mhc_arena_block) + cap + 2 * MHC__ALIGN;
    raw = MHC__CAST(unsigned char *, MHC_MALLOC(total));
    if (!raw) return NULL;
    b = MHC__CAST(mhc_arena_block *, (void *)raw);
    b->prev = NULL;
    b->cap = cap;
    b->used = 0;
    {
        uintptr_t p = (uintptr_t)(raw + sizeof(mhc_arena_block));
        p = (p + MHC__ALIGN - 1) & ~(uintptr_t)(MHC__ALIGN - 1);
        b->base = MHC__CAST(unsigned char *, (void *)p);
    }
    return b;
}

MHCDEF mhc_result mhc_arena_init(mhc_ctx *ctx, mhc_arena *a, size_t bytes) {
    if (!a) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_arena_init: arena is NULL");
    memset(a, 0, sizeof *a);
    a->ctx = ctx;
    if (bytes == 0) return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_arena_init: initial size is 0 bytes");
    a->head = mhc__block_new(bytes);
    if (!a->head) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_arena_init: cannot allocate %zu bytes", bytes);
    a->capacity = bytes;
    a->growths = 1;
    return MHC_OK;
}

MHCDEF void *mhc_arena_alloc(mhc_arena *a, size_t bytes) {
    mhc_arena_block *b;
    size_t need;
    void *p;
    if (!a) return NULL;
    if (!a->head) { mhc_fail(a->ctx, MHC_ERR_STATE, "mhc_arena_alloc: arena is not initialised"); return NULL; }
    if (bytes > SIZE_MAX - MHC__ALIGN) {
        mhc_fail(a->ctx, MHC_ERR_OVERFLOW, "mhc_arena_alloc: request of %zu bytes overflows", bytes);
        return NULL;
    }
    need = (bytes + MHC__ALIGN - 1) & ~(size_t)(MHC__ALIGN - 1);
    if (need == 0) need = MHC__ALIGN;
    b = a->head;
    if (b->cap - b->used < need) {
        size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
        mhc_arena_block *nb = mhc__block_new(cap);
        if (!nb) {
            mhc_fail(a->ctx, MHC_ERR_NOMEM, "mhc_arena_alloc: cannot grow the arena by %zu bytes", cap);
            return NULL;
        }
        nb->prev = b;
        a->head = b = nb;
        a->capacity += cap;
        a->growths++;
    }
    p = b->base + b->used;
    b->used += need;
    a->used_total += need;
    if (a->used_total > a->peak) a->peak = a->used_total;
    return p;
}

MHCDEF void *mhc_arena_calloc(mhc_arena *a, size_t count, size_t size) {
    size_t bytes;
    void *p;
    if (!a) return NULL;
    if (!mhc__mul_ok(count, size, &bytes)) {
        mhc_fail(a->ctx, MHC_ERR_OVERFLOW, "mhc_arena_calloc: %zu x %zu bytes overflows", count, size);
        return NULL;
    }
    p = mhc_arena_alloc(a, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

MHCDEF mhc_result mhc_arena_reset(mhc_arena *a) {
    if (!a) return MHC_ERR_NULL;
    if (!a->head) return mhc_fail(a->ctx, MHC_ERR_STATE, "mhc_arena_reset: arena is not initialised");
    a->generation++;
    if (a->head->prev) {
        /* consolidate the chain into one block of the peak size (plus alignment slack) */
        size_t cap = a->peak;
        mhc_arena_block *b = a->head, *nb;
        while (b) { mhc_arena_block *p = b->prev; MHC_FREE(b); b = p; }
        a->head = NULL;
        a->capacity = 0;
        nb = mhc__block_new(cap);
        if (!nb) return mhc_fail(a->ctx, MHC_ERR_NOMEM, "mhc_arena_reset: cannot allocate %zu bytes", cap);
        a->head = nb;
        a->capacity = cap;
        a->growths++;
    }
    a->head->used = 0;
    a->used_total = 0;
    return MHC_OK;
}

MHCDEF void mhc_arena_free(mhc_arena *a) {
    mhc_arena_block *b;
    if (!a) return;
    b = a->head;
    while (b) { mhc_arena_block *p = b->prev; MHC_FREE(b); b = p; }
    a->head = NULL;
    a->capacity = a->used_total = 0;
    a->generation++;
}

MHCDEF size_t mhc_shape_size(mhc_ctx *ctx, int ndim, const int *shape, const char *what) {
    size_t size = 1;
    int i;
    if (!what) what = "tensor";
    if (!shape) { mhc_fail(ctx, MHC_ERR_NULL, "%s: shape is NULL", what); return 0; }
    if (ndim < 1 || ndim > MHC_MAX_DIMS) {
        mhc_fail(ctx, MHC_ERR_SIZE, "%s: %d dimensions, expected 1 to %d", what, ndim, MHC_MAX_DIMS);
        return 0;
    }
    for (i = 0; i < ndim; i++) {
        if (shape[i] < 1) {
            mhc_fail(ctx, MHC_ERR_SIZE, "%s: dimension %d has size %d, expected >= 1", what, i, shape[i]);
            return 0;
        }
        if (!mhc__mul_ok(size, (size_t)shape[i], &size) || size > SIZE_MAX / (4 * sizeof(mhc_real))) {
            mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: the number of elements overflows at dimension %d", what, i);
            return 0;
        }
    }
    return size;
}

MHCDEF int mhc_tensor_same_shape(const mhc_tensor *a, const mhc_tensor *b) {
    int i;
    if (!a || !b || a->ndim != b->ndim || a->ndim < 0 || a->ndim > MHC_MAX_DIMS) return 0;
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

MHCDEF char *mhc_shape_str(const mhc_tensor *t, char *buf, size_t cap) {
    size_t len = 0;
    int i;
    if (!buf || cap == 0) return buf;
    buf[0] = 0;
    if (!t) { snprintf(buf, cap, "(null)"); return buf; }
    if (t->ndim < 1 || t->ndim > MHC_MAX_DIMS) {   /* a zeroed or damaged tensor: shape[] says nothing */
        snprintf(buf, cap, "(ndim %d)", t->ndim);
        return buf;
    }
    len += (size_t)snprintf(buf, cap, "[");
    for (i = 0; i < t->ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", t->shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

MHCDEF mhc_result mhc_params_init(mhc_ctx *ctx, mhc_params *p) {
    if (!p) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_params_init: params is NULL");
    memset(p, 0, sizeof *p);
    p->ctx = ctx;
    return MHC_OK;
}

MHCDEF int mhc_params_add(mhc_params *p, const char *name, int ndim, const int *shape, int decay) {
    size_t size;
    int i;
    if (!p) return -1;
    if (!name) { mhc_fail(p->ctx, MHC_ERR_NULL, "mhc_params_add: name is NULL"); return -1; }
    if (p->data) {
        mhc_fail(p->ctx, MHC_ERR_STATE, "mhc_params_add(%s): the store is already allocated", name);
        return -1;
    }
    if (strlen(name) >= sizeof p->names[0]) {
        mhc_fail(p->ctx, MHC_ERR_VALUE, "mhc_params_add: name '%s' is longer than %d characters", name,
                 (int)sizeof p->names[0] - 1);
        return -1;
    }
    if (mhc_params_find(p, name) >= 0) {
        mhc_fail(p->ctx, MHC_ERR_VALUE, "mhc_params_add: a parameter named '%s' already exists", name);
        return -1;
    }
    size = mhc_shape_size(p->ctx, ndim, shape, name);
    if (size == 0) return -1;
    if (p->size > SIZE_MAX / sizeof(mhc_real) - size) {
        mhc_fail(p->ctx, MHC_ERR_OVERFLOW, "mhc_params_add(%s): the store's total size overflows", name);
        return -1;
    }
    if (p->count == p->cap) {
        int cap = p->cap ? p->cap * 2 : 16;
        mhc_tensor *t = MHC__CAST(mhc_tensor *, MHC_REALLOC(p->tensors, (size_t)cap * sizeof *t));
        unsigned char *d;
        size_t *o;
        char (*nm)[48];
        if (!t) goto nomem;
        p->tensors = t;
        d = MHC__CAST(unsigned char *, MHC_REALLOC(p->decay, (size_t)cap));
        if (!d) goto nomem;
        p->decay = d;
        o = MHC__CAST(size_t *, MHC_REALLOC(p->offset, (size_t)cap * sizeof *o));
        if (!o) goto nomem;
        p->offset = o;
        nm = MHC__CAST(char(*)[48], MHC_REALLOC(p->names, (size_t)cap * sizeof *nm));
        if (!nm) goto nomem;
        p->names = nm;
        p->cap = cap;
    }
    i = p->count++;
    memset(&p->tensors[i], 0, sizeof p->tensors[i]);
    p->tensors[i].ndim = ndim;
    {
        int d;
        for (d = 0; d < MHC_MAX_DIMS; d++) p->tensors[i].shape[d] = d < ndim ? shape[d] : 1;
    }
    p->tensors[i].size = size;
    strcpy(p->names[i], name);
    p->decay[i] = (unsigned char)(decay ? MHC_PARAM_DECAY : MHC_PARAM_NO_DECAY);
    p->offset[i] = p->size;
    p->size += size;
    return i;
nomem:
    mhc_fail(p->ctx, MHC_ERR_NOMEM, "mhc_params_add(%s): out of memory", name);
    return -1;
}

MHCDEF mhc_result mhc_params_alloc(mhc_params *p) {
    size_t bytes;
    int i;
    if (!p) return MHC_ERR_NULL;
    if (p->data) return mhc_fail(p->ctx, MHC_ERR_STATE, "mhc_params_alloc: already allocated");
    if (p->count == 0) return mhc_fail(p->ctx, MHC_ERR_SIZE, "mhc_params_alloc: no parameters were declared");
    bytes = p->size * sizeof(mhc_real);
    p->data = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
    p->grad = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
    p->m = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
    p->v = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
    if (!p->data || !p->grad || !p->m || !p->v) {
        MHC_FREE(p->data); MHC_FREE(p->grad); MHC_FREE(p->m); MHC_FREE(p->v);
        p->data = p->grad = p->m = p->v = NULL;
        return mhc_fail(p->ctx, MHC_ERR_NOMEM, "mhc_params_alloc: cannot allocate 4 x %zu bytes", bytes);
    }
    memset(p->data, 0, bytes); memset(p->grad, 0, bytes);
    memset(p->m, 0, bytes); memset(p->v, 0, bytes);
    for (i = 0; i < p->count; i++) {
        p->tensors[i].data = p->data + p->offset[i];
        p->tensors[i].grad = p->grad + p->offset[i];
        p->tensors[i].name = p->names[i];
    }
    return MHC_OK;
}

MHCDEF mhc_tensor *mhc_params_get(mhc_params *p, int index) {
    if (!p) return NULL;
    if (index < 0 || index >= p->count) {
        mhc_fail(p->ctx, MHC_ERR_VALUE, "mhc_params_get: index %d out of range [0, %d)", index, p->count);
        return NULL;
    }
    return &p->tensors[index];
}

MHCDEF int mhc_params_find(const mhc_params *p, const char *name) {
    int i;
    if (!p || !name) return -1;
    for (i = 0; i < p->count; i++)
        if (strcmp(p->names[i], name) == 0) return i;
    return -1;
}

MHCDEF void mhc_params_zero_grad(mhc_params *p) {
    if (p && p->grad) memset(p->grad, 0, p->size * sizeof(mhc_real));
}

MHCDEF void mhc_params_free(mhc_params *p) {
    if (!p) return;
    MHC_FREE(p->tensors); MHC_FREE(p->decay); MHC_FREE(p->offset); MHC_FREE(p->names);
    MHC_FREE(p->data); MHC_FREE(p->grad); MHC_FREE(p->m); MHC_FREE(p->v);
    memset(p, 0, sizeof *p);
}

/* =========================================================================================
 * KERNELS (implementation)
 * Forward/backward pairs on raw arrays, each parallel over the axis that owns its output (rows,
 * or columns for weight gradients) and summing in a fixed order, so the bits do not depend on
 * the thread count. The naive mhc_ref_* loops (double accumulation) are the tests' references.
 * ========================================================================================= */

/* ---- matmul ------------------------------------------------------------------------------
   The three variants are one blocked GEMM on strided views of A and B:
       C[i,j] (+)= sum_k A(i,k) B(k,j),   A(i,k) = A[i*ars + k*acs],   B(k,j) = B[k*brs + j*bcs].
   Goto/BLIS structure. The output is cut into tiles (a band of rows x a block of at most
   MHC__MM_NC columns); each tile belongs to one thread (MHC__OMP_FOR over tiles). Inside a
   tile K is walked in blocks of MHC__MM_KC, in order. For each K block the tile's block of B is
   packed into micro-panels (kc x NR, one row of NR reals per k; the abt transpose uses 8 x 8
   register transposes when AVX is on), then each strip of MR rows of A is swept against the B
   micro-panels by the micro-kernel, which holds an MR x NR block of C in registers:
   t[i][j] += a(i,k) b(k,j) for k in order. A strip is read in place when A's rows are contiguous
   in k (ab, abt); for atb, MHC__MM_MC rows of A at a time are first packed into MR-row strips,
   each kc x MR and contiguous (strided columns would thrash the cache; a strip read with a
   stride of MC wasted most of each cache line), and a last partial strip is packed with zero
   rows.
   Determinism: the micro-kernel always runs on a full MR x NR block (packing pads with zeros; a
   partial block goes through a small buffer) and element (i,j) always gets t = its sum over one
   K block in k order, then C = t (first K block when acc = 0) or C = C + t; the K blocks depend
   on K alone. So no bit depends on where tile boundaries fall, and the tiling may follow the
   thread count (for load balance) without changing any result. (Zero padding meets only lanes
   that are thrown away, so an inf or NaN in A or B stays in its own rows and columns.)
   Memory: the packing buffers are local arrays of mhc__mm_tile, i.e. on the stack of the thread
   that owns the tile: MHC__MM_KC * (MHC__MM_NC + MHC__MM_MC) + MR * NR reals, about 245 KB in both
   precisions (OpenMP worker stacks are 2 MB or more). No malloc, no static buffers.
   Micro-kernels, chosen at run time (mhc__mm_pick, once, at the first matmul): AVX-512F (MR x NR
   = 8 x 2 vectors), else AVX2 + FMA (6 x 2 vectors), else portable C (6 x 16) that compilers
   auto-vectorise. With GCC or Clang on x86 the SIMD kernels are compiled with
   __attribute__((target)) whatever the build's -m flags, and __builtin_cpu_supports says which
   the CPU (and OS) can run, so a plain -O2 build gets the fast kernel. Other compilers and
   architectures get the kernels the compile-time target allows (e.g. -mavx2 -mfma), else the
   portable one. MHC_NO_SIMD compiles the portable one only. The environment variable MHC_ISA
   (portable, avx2+fma or avx2, avx512), read once at the first matmul, picks a kernel the CPU can
   run (an unknown or unrunnable name is ignored: mhc_k_matmul_isa tells what runs), and
   mhc_k_matmul_set_isa switches at run time (tests). The ISAs differ in MR, NR and fma vs
   separate multiply-add, so their bits differ; each is tested against the naive references. The
   SIMD kernels have float and double versions. */

#if !defined(MHC_NO_SIMD) && (defined(__x86_64__) || defined(__i386__)) && \
    ((defined(__clang__) && __clang_major__ >= 6) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 6)) && \
    !defined(__INTEL_COMPILER)
#define MHC__MM_DISPATCH 1
#define MHC__MM_HAVE256 1
#define MHC__MM_HAVE512 1
#define MHC__MM_TGT256 __attribute__((target("avx2,fma")))
#define MHC__MM_TGT512 __attribute__((target("avx512f,avx2,fma")))
#else
#define MHC__MM_DISPATCH 0
#define MHC__MM_TGT256
#define MHC__MM_TGT512
#if !defined(MHC_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define MHC__MM_HAVE256 1
#else
#define MHC__MM_HAVE256 0
#endif
#if !defined(MHC_NO_SIMD) && defined(__AVX512F__)
#define MHC__MM_HAVE512 1
#else
#define MHC__MM_HAVE512 0
#endif
#endif

#if MHC__MM_HAVE256 || MHC__MM_HAVE512
#ifdef __cplusplus
}
#endif
#include <immintrin.h>
#ifdef __cplusplus
extern "C" {
#endif
#endif

/* K block, column block (a multiple of every NR), row block (a multiple of every MR). */
#ifdef MHC_DOUBLE
#define MHC__MM_KC 128
#else
#define MHC__MM_KC 256
#endif
#define MHC__MM_NC 192
#define MHC__MM_MC 48
#define MHC__MM_MRNR_MAX (8 * 32)   /* the largest micro-tile (AVX-512 float) */
#ifdef MHC_DOUBLE
#define MHC__MM_NR256 8             /* NR = 2 vectors of AVX2, AVX-512 reals */
#define MHC__MM_NR512 16
#else
#define MHC__MM_NR256 16
#define MHC__MM_NR512 32
#endif
#define MHC__MM_ALIGN (64 / (int)sizeof(mhc_real))
#define MHC__MM_PAR_WORK 262144.0

/* c[MR,NR] (+)= a[MR,kc] b-panel[kc,NR], a(r,k) = a[r*ars + k*acs] */
typedef void (*mhc__mm_kfn)(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b, mhc_real *c,
                            size_t ldc, int add);
typedef struct {
    const char *name;
    int mr, nr;        /* the micro-tile */
    int t8;            /* the abt packing may use the AVX 8 x 8 float transpose */
    mhc__mm_kfn kernel;
} mhc__mm_isa;

/* Portable: MR x NR named scalar accumulators, written out by the macros below so that the compiler's
   straight-line (SLP) vectoriser turns each row into vectors and keeps them in registers. GCC at -O3
   would instead vectorise the k loop as in-order reductions (several times slower), so its loop
   vectoriser is switched off for this one function. */
#define MHC__MM_PROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MHC__MM_PCOLS(X, i) X(i, 0) X(i, 1) X(i, 2) X(i, 3) X(i, 4) X(i, 5) X(i, 6) X(i, 7) \
    X(i, 8) X(i, 9) X(i, 10) X(i, 11) X(i, 12) X(i, 13) X(i, 14) X(i, 15)
#define MHC__MM_PDECL1(i, j) mhc_real t##i##_##j = 0;
#define MHC__MM_PDECL(i) MHC__MM_PCOLS(MHC__MM_PDECL1, i) const mhc_real *a##i = a + (size_t)(i) * ars;
#define MHC__MM_PFMA1(i, j) t##i##_##j += ai * b[j];
#define MHC__MM_PFMA(i) { const mhc_real ai = a##i[p]; MHC__MM_PCOLS(MHC__MM_PFMA1, i) }
#define MHC__MM_PADD1(i, j) ci[j] = ci[j] + t##i##_##j;
#define MHC__MM_PSET1(i, j) ci[j] = t##i##_##j;
#define MHC__MM_PSTORE(i) { mhc_real *ci = c + (size_t)(i) * ldc; \
    if (add) { MHC__MM_PCOLS(MHC__MM_PADD1, i) } else { MHC__MM_PCOLS(MHC__MM_PSET1, i) } }

/* portable: MR = 6, NR = 16 scalars */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER)
__attribute__((optimize("no-tree-loop-vectorize")))
#endif
static void mhc__mm_kernel_portable(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b,
                                    mhc_real *c, size_t ldc, int add) {
    int k;
    size_t p = 0;
    MHC__MM_PROWS(MHC__MM_PDECL)
    for (k = 0; k < kc; k++, p += acs, b += 16) {
        MHC__MM_PROWS(MHC__MM_PFMA)
    }
    MHC__MM_PROWS(MHC__MM_PSTORE)
}

/* SIMD: MR x 2 vector accumulators, fma in k order. One body, expanded under each ISA's
   MHC__V_* definitions (ROWS lists the MR rows). */
#define MHC__MM_ROWS6(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define MHC__MM_ROWS8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define MHC__MM_DECL(i) MHC__V_T t##i##0 = MHC__V_ZERO(), t##i##1 = MHC__V_ZERO();
#define MHC__MM_APTR(i) const mhc_real *a##i = a + (size_t)(i) * ars;
#define MHC__MM_FMA(i) { const MHC__V_T ai = MHC__V_SET1(a##i[p]); \
    t##i##0 = MHC__V_FMA(ai, b0, t##i##0); t##i##1 = MHC__V_FMA(ai, b1, t##i##1); }
#define MHC__MM_ADD(i) { mhc_real *ci = c + (size_t)(i) * ldc; \
    MHC__V_STORE(ci, MHC__V_ADD(MHC__V_LOAD(ci), t##i##0)); \
    MHC__V_STORE(ci + MHC__V_W, MHC__V_ADD(MHC__V_LOAD(ci + MHC__V_W), t##i##1)); }
#define MHC__MM_SET(i) { mhc_real *ci = c + (size_t)(i) * ldc; \
    MHC__V_STORE(ci, t##i##0); MHC__V_STORE(ci + MHC__V_W, t##i##1); }
#define MHC__MM_SIMD_BODY(ROWS) \
    int k; \
    size_t p = 0; \
    ROWS(MHC__MM_APTR) \
    ROWS(MHC__MM_DECL) \
    for (k = 0; k < kc; k++, p += acs, b += 2 * MHC__V_W) { \
        const MHC__V_T b0 = MHC__V_LOAD(b), b1 = MHC__V_LOAD(b + MHC__V_W); \
        ROWS(MHC__MM_FMA) \
    } \
    if (add) { ROWS(MHC__MM_ADD) } else { ROWS(MHC__MM_SET) }

#if MHC__MM_HAVE256
#ifndef MHC_DOUBLE
#define MHC__V_T __m256
#define MHC__V_W 8
#define MHC__V_LOAD(p) _mm256_loadu_ps(p)
#define MHC__V_STORE(p, v) _mm256_storeu_ps(p, v)
#define MHC__V_SET1(x) _mm256_set1_ps(x)
#define MHC__V_ZERO() _mm256_setzero_ps()
#define MHC__V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define MHC__V_ADD(a, b) _mm256_add_ps(a, b)
#else
#define MHC__V_T __m256d
#define MHC__V_W 4
#define MHC__V_LOAD(p) _mm256_loadu_pd(p)
#define MHC__V_STORE(p, v) _mm256_storeu_pd(p, v)
#define MHC__V_SET1(x) _mm256_set1_pd(x)
#define MHC__V_ZERO() _mm256_setzero_pd()
#define MHC__V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define MHC__V_ADD(a, b) _mm256_add_pd(a, b)
#endif
/* AVX2 + FMA: MR = 6, NR = 16 float / 8 double */
MHC__MM_TGT256
static void mhc__mm_kernel_avx2(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b,
                                mhc_real *c, size_t ldc, int add) {
    MHC__MM_SIMD_BODY(MHC__MM_ROWS6)
}
#undef MHC__V_T
#undef MHC__V_W
#undef MHC__V_LOAD
#undef MHC__V_STORE
#undef MHC__V_SET1
#undef MHC__V_ZERO
#undef MHC__V_FMA
#undef MHC__V_ADD
#endif

#if MHC__MM_HAVE512
#ifndef MHC_DOUBLE
#define MHC__V_T __m512
#define MHC__V_W 16
#define MHC__V_LOAD(p) _mm512_loadu_ps(p)
#define MHC__V_STORE(p, v) _mm512_storeu_ps(p, v)
#define MHC__V_SET1(x) _mm512_set1_ps(x)
#define MHC__V_ZERO() _mm512_setzero_ps()
#define MHC__V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define MHC__V_ADD(a, b) _mm512_add_ps(a, b)
#else
#define MHC__V_T __m512d
#define MHC__V_W 8
#define MHC__V_LOAD(p) _mm512_loadu_pd(p)
#define MHC__V_STORE(p, v) _mm512_storeu_pd(p, v)
#define MHC__V_SET1(x) _mm512_set1_pd(x)
#define MHC__V_ZERO() _mm512_setzero_pd()
#define MHC__V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define MHC__V_ADD(a, b) _mm512_add_pd(a, b)
#endif
/* AVX-512F: MR = 8, NR = 32 float / 16 double */
MHC__MM_TGT512
static void mhc__mm_kernel_avx512(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b,
                                  mhc_real *c, size_t ldc, int add) {
    MHC__MM_SIMD_BODY(MHC__MM_ROWS8)
}
#undef MHC__V_T
#undef MHC__V_W
#undef MHC__V_LOAD
#undef MHC__V_STORE
#undef MHC__V_SET1
#undef MHC__V_ZERO
#undef MHC__V_FMA
#undef MHC__V_ADD
#endif

#if (MHC__MM_HAVE256 || MHC__MM_HAVE512) && !defined(MHC_DOUBLE)
#define MHC__MM_T8 1
/* d[k*ldd + s] = b[s*ldb + k] for s, k < 8: an 8 x 8 transpose of floats in AVX registers. */
MHC__MM_TGT256
static void mhc__mm_t8x8(mhc_real *d, size_t ldd, const mhc_real *b, size_t ldb) {
    const __m256 r0 = _mm256_loadu_ps(b), r1 = _mm256_loadu_ps(b + ldb), r2 = _mm256_loadu_ps(b + 2 * ldb),
                 r3 = _mm256_loadu_ps(b + 3 * ldb), r4 = _mm256_loadu_ps(b + 4 * ldb), r5 = _mm256_loadu_ps(b + 5 * ldb),
                 r6 = _mm256_loadu_ps(b + 6 * ldb), r7 = _mm256_loadu_ps(b + 7 * ldb);
    const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1), t2 = _mm256_unpacklo_ps(r2, r3),
                 t3 = _mm256_unpackhi_ps(r2, r3), t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
                 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
                 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
                 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
                 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(d, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(d + ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(d + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(d + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(d + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(d + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(d + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(d + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}
#else
#define MHC__MM_T8 0
#endif

/* The kernels this build has, slowest first; mhc__mm_isa_sel indexes the one in use (-1: not yet
   chosen). */
static const mhc__mm_isa mhc__mm_isas[] = {
    {"portable", 6, 16, 0, mhc__mm_kernel_portable},
#if MHC__MM_HAVE256
    {"avx2+fma", 6, MHC__MM_NR256, MHC__MM_T8, mhc__mm_kernel_avx2},
#endif
#if MHC__MM_HAVE512
    {"avx512", 8, MHC__MM_NR512, MHC__MM_T8, mhc__mm_kernel_avx512},
#endif
};
#define MHC__MM_NISA ((int)(sizeof mhc__mm_isas / sizeof mhc__mm_isas[0]))
static int mhc__mm_isa_sel = -1;
#if MHC__MM_DISPATCH
#define MHC__MM_SEL_LOAD() __atomic_load_n(&mhc__mm_isa_sel, __ATOMIC_RELAXED)
#define MHC__MM_SEL_STORE(v) __atomic_store_n(&mhc__mm_isa_sel, (v), __ATOMIC_RELAXED)
#else
#define MHC__MM_SEL_LOAD() mhc__mm_isa_sel
#define MHC__MM_SEL_STORE(v) (mhc__mm_isa_sel = (v))
#endif

/* Can this CPU run kernel i of the table? */
static int mhc__mm_runnable(int i) {
    const char *n = mhc__mm_isas[i].name;
    if (n[0] == 'p') return 1;
#if MHC__MM_DISPATCH
    __builtin_cpu_init();
    if (n[0] == 'a' && n[3] == '2') return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 1;   /* compiled in only when the compile-time target has it */
#endif
}

/* The table index of an ISA name ("avx2" stands for "avx2+fma"), or -1. */
static int mhc__mm_isa_index(const char *name) {
    int i;
    if (!name) return -1;
    if (strcmp(name, "avx2") == 0) name = "avx2+fma";
    for (i = 0; i < MHC__MM_NISA; i++)
        if (strcmp(name, mhc__mm_isas[i].name) == 0) return i;
    return -1;
}

static const mhc__mm_isa *mhc__mm_pick(void) {
    int sel = MHC__MM_SEL_LOAD();
    if (sel < 0) {
        int e = mhc__mm_isa_index(getenv("MHC_ISA"));
        if (e >= 0 && mhc__mm_runnable(e)) sel = e;
        else for (sel = MHC__MM_NISA - 1; sel > 0 && !mhc__mm_runnable(sel); sel--) {}
        MHC__MM_SEL_STORE(sel);
    }
    return &mhc__mm_isas[sel];
}

MHCDEF const char *mhc_k_matmul_isa(void) { return mhc__mm_pick()->name; }

/* ---- the vector clones of the other hot loops ----
   The dot products, stream mixes, attention and AdamW loops (mhc__dots, mhc__mix_rows, the
   attention jobs, mhc_adamw_step's chunks) are plain C that compilers vectorise to the build's
   target: SSE2 in a plain -O2 x86-64 build. MHC__CLONES compiles such a body three times, as it
   is, with __attribute__((target("avx2"))) and (GCC) with target("avx512f,prefer-vector-width=512"),
   and runs the AVX2 copy when the matmul dispatch picked avx2+fma, the AVX-512 copy when it picked
   avx512 (MHC_ISA and mhc_k_matmul_set_isa choose both). Neither target brings fma: the copies get
   wider vectors but no fused multiply-add the plain copy lacks (no contraction), and compilers do
   not reorder float sums when vectorising, so all copies give the same bits (tests/test_matmul.c,
   "vector clones", run under every ISA the CPU has). Clang's avx512f implies fma (and clang
   contracts a*b+c by default), so under clang the third copy is the AVX2 one. Measured on a 2-core
   AVX-512 Xeon, plain -O2 build: the mHC post backward 1.98 -> 1.33 ms at T = 1024, n = 4,
   C = 512 (the -march=native build's time). Other compilers build the plain copy only. */
#if MHC__MM_DISPATCH
#define MHC__V256_CLONES 1
#define MHC__INLINE static inline __attribute__((always_inline))
#if defined(__GNUC__) && !defined(__clang__)
#define MHC__VECTORISE __attribute__((optimize("tree-vectorize", "vect-cost-model=dynamic")))
#else
#define MHC__VECTORISE
#endif
#if defined(__clang__)   /* clang's avx512f brings fma, and clang contracts a*b+c by default: keep AVX2 */
#define MHC__TGT_V512 __attribute__((target("avx2")))
#else
#define MHC__TGT_V512 __attribute__((target("avx512f,prefer-vector-width=512")))
#endif
#define MHC__CLONES(fn, params, args)                                                       \
    MHC__VECTORISE static void fn##_v0 params { fn##_body args; }                           \
    __attribute__((target("avx2"))) MHC__VECTORISE static void fn##_v256 params { fn##_body args; } \
    MHC__TGT_V512 MHC__VECTORISE static void fn##_v512 params { fn##_body args; }           \
    static void fn params {                                                                 \
        const char *isa_ = mhc__mm_pick()->name;                                            \
        if (isa_[0] != 'a') fn##_v0 args;                                                   \
        else if (isa_[3] == '5') fn##_v512 args;                                            \
        else fn##_v256 args;                                                                \
    }
#else
#define MHC__V256_CLONES 0
#define MHC__INLINE static inline
#define MHC__CLONES(fn, params, args) static void fn params { fn##_body args; }
#endif

MHCDEF int mhc_k_matmul_isa_runnable(const char *name) {
    const int i = mhc__mm_isa_index(name);
    return i >= 0 && mhc__mm_runnable(i);
}

MHCDEF int mhc_k_matmul_set_isa(const char *name) {
    int i;
    if (name == NULL) {        /* back to the automatic choice (MHC_ISA, else the best) */
        MHC__MM_SEL_STORE(-1);
        (void)mhc__mm_pick();
        return 1;
    }
    i = mhc__mm_isa_index(name);
    if (i < 0 || !mhc__mm_runnable(i)) return 0;
    MHC__MM_SEL_STORE(i);
    return 1;
}

/* A strip [mr, kc] -> ap[k*MR + r] = A(r, k); rows mr..MR-1 are zero. */
static void mhc__mm_pack_strip(mhc_real *ap, const mhc_real *A, size_t ars, size_t acs, int mr, int kc, int MR) {
    int r, k;
    for (r = 0; r < mr; r++) {
        const mhc_real *a = A + (size_t)r * ars;
        for (k = 0; k < kc; k++) ap[(size_t)k * MR + r] = a[(size_t)k * acs];
    }
    for (; r < MR; r++)
        for (k = 0; k < kc; k++) ap[(size_t)k * MR + r] = 0;
}

/* A block [mc, kc] (columns contiguous: atb) -> strips of MR rows, each kc x MR and contiguous:
   ap[(r / MR) * MR * kc + k * MR + r % MR] = A(r, k) (the layout of mhc__mm_pack_strip, so the
   kernel reads a strip's 6 or 8 values of each k from one place); rows up to the next multiple of
   MR are zero. A column k of the block is read contiguously (ars = 1) and spread over the strips. */
static void mhc__mm_pack_block(mhc_real *ap, const mhc_real *A, size_t ars, size_t acs, int mc, int kc, int MR) {
    const int mfull = mc / MR * MR, sstride = MR * kc;
    int r, k, q;
    for (k = 0; k < kc; k++) {
        const mhc_real *a = A + (size_t)k * acs;
        mhc_real *d = ap + (size_t)k * MR;
        if (ars == 1 && MR == 6)
            for (r = 0; r < mfull; r += 6, d += sstride) memcpy(d, a + r, 6 * sizeof *d);
        else if (ars == 1 && MR == 8)
            for (r = 0; r < mfull; r += 8, d += sstride) memcpy(d, a + r, 8 * sizeof *d);
        else
            for (r = 0; r < mfull; r += MR, d += sstride)
                for (q = 0; q < MR; q++) d[q] = a[(size_t)(r + q) * ars];
        if (r < mc) {
            for (q = 0; r + q < mc; q++) d[q] = a[(size_t)(r + q) * ars];
            for (; q < MR; q++) d[q] = 0;
        }
    }
}

/* B block [kc, nc] -> micro-panels of NR columns: bp[q*kc + k*NR + s] = B(k, q + s), q = 0, NR, ...;
   columns past nc are zero. */
static void mhc__mm_pack_b(mhc_real *bp, const mhc_real *B, size_t brs, size_t bcs, int kc, int nc, int NR, int t8) {
    int q, k, s;
    (void)t8;
    for (q = 0; q < nc; q += NR) {
        const int nr = nc - q < NR ? nc - q : NR;
        mhc_real *d = bp + (size_t)q * kc;
        if (bcs == 1) {        /* rows of B contiguous in j (ab, atb) */
            for (k = 0; k < kc; k++) {
                const mhc_real *b = B + (size_t)k * brs + q;
                mhc_real *dk = d + (size_t)k * NR;
                if (nr == NR) {
                    memcpy(dk, b, (size_t)NR * sizeof *dk);
                } else {
                    for (s = 0; s < nr; s++) dk[s] = b[s];
                    for (; s < NR; s++) dk[s] = 0;
                }
            }
        } else {               /* columns of B contiguous in k (abt): transpose */
            int k8 = 0;
#if MHC__MM_T8
            if (t8 && nr == NR && brs == 1) {
                k8 = kc / 8 * 8;
                for (s = 0; s < NR; s += 8)
                    for (k = 0; k < k8; k += 8)
                        mhc__mm_t8x8(d + (size_t)k * NR + s, (size_t)NR, B + (size_t)(q + s) * bcs + k, bcs);
            }
#endif
            for (s = 0; s < nr; s++) {
                const mhc_real *b = B + (size_t)(q + s) * bcs;
                for (k = k8; k < kc; k++) d[(size_t)k * NR + s] = b[(size_t)k * brs];
            }
            for (; s < NR; s++)
                for (k = 0; k < kc; k++) d[(size_t)k * NR + s] = 0;
        }
    }
}

static mhc_real *mhc__mm_align(mhc_real *p) {
    return p + ((64 - (size_t)((uintptr_t)p % 64)) % 64) / sizeof(mhc_real);
}

/* One output tile: rows [i0,i1) x columns [j0,j1) of C (row length ldc), over all of K. A strip of
   MR rows of A is read in place when its rows are contiguous in k (ab, abt); otherwise (atb, and a
   last partial strip) A is packed, MC rows at a time. */
static void mhc__mm_tile(const mhc__mm_isa *isa, mhc_real *C, size_t ldc, const mhc_real *A, size_t ars,
                         size_t acs, const mhc_real *B, size_t brs, size_t bcs, int i0, int i1, int j0, int j1,
                         int K, int acc) {
    mhc_real bbuf[MHC__MM_KC * MHC__MM_NC + MHC__MM_ALIGN];
    mhc_real abuf[MHC__MM_KC * MHC__MM_MC + MHC__MM_ALIGN];
    mhc_real tbuf[MHC__MM_MRNR_MAX + MHC__MM_ALIGN];
    mhc_real *bp = mhc__mm_align(bbuf), *ap = mhc__mm_align(abuf), *tp = mhc__mm_align(tbuf);
    const int pack_all = acs != 1, MR = isa->mr, NR = isa->nr;
    const mhc__mm_kfn kernel = isa->kernel;
    int p0;
    for (p0 = 0; p0 < K; p0 += MHC__MM_KC) {
        const int kc = K - p0 < MHC__MM_KC ? K - p0 : MHC__MM_KC;
        const int add = acc || p0 > 0;
        int ic, i, j, r, s;
        mhc__mm_pack_b(bp, B + (size_t)p0 * brs + (size_t)j0 * bcs, brs, bcs, kc, j1 - j0, NR, isa->t8);
        for (ic = i0; ic < i1; ic += MHC__MM_MC) {
            const int mc = i1 - ic < MHC__MM_MC ? i1 - ic : MHC__MM_MC;
            if (pack_all) mhc__mm_pack_block(ap, A + (size_t)ic * ars + (size_t)p0 * acs, ars, acs, mc, kc, MR);
            for (i = ic; i < ic + mc; i += MR) {
                const int mr = ic + mc - i < MR ? ic + mc - i : MR;
                const mhc_real *a = A + (size_t)i * ars + (size_t)p0 * acs;
                size_t rs = ars, cs = acs;
                if (pack_all) {
                    a = ap + (size_t)(i - ic) * kc; rs = 1; cs = (size_t)MR;
                } else if (mr < MR) {
                    mhc__mm_pack_strip(ap, a, ars, acs, mr, kc, MR);
                    a = ap; rs = 1; cs = (size_t)MR;
                }
                for (j = j0; j < j1; j += NR) {
                    const int nr = j1 - j < NR ? j1 - j : NR;
                    const mhc_real *bj = bp + (size_t)(j - j0) * kc;
                    mhc_real *c = C + (size_t)i * ldc + j;
                    if (mr == MR && nr == NR) {
                        kernel(kc, a, rs, cs, bj, c, ldc, add);
                    } else {   /* partial block: the same kernel into a buffer, then the same C update */
                        kernel(kc, a, rs, cs, bj, tp, (size_t)NR, 0);
                        for (r = 0; r < mr; r++)
                            for (s = 0; s < nr; s++) {
                                mhc_real *cr = c + (size_t)r * ldc + s;
                                *cr = add ? *cr + tp[r * NR + s] : tp[r * NR + s];
                            }
                    }
                }
            }
        }
    }
}

/* C[M,N] (+)= A(i,k) B(k,j) over the strided views above: plan the tiles, run them in parallel. */
static void mhc__mm(mhc_real *C, const mhc_real *A, size_t ars, size_t acs, const mhc_real *B, size_t brs,
                    size_t bcs, int M, int K, int N, int acc) {
    const mhc__mm_isa *isa;
    int nt = 1, nbm = 1, nbn, ntiles, t, MR, NR, mstrips, nstrips;
    if (M < 1 || N < 1) return;
    if (K < 1) {
        if (!acc) memset(C, 0, (size_t)M * (size_t)N * sizeof *C);
        return;
    }
    isa = mhc__mm_pick();
    MR = isa->mr; NR = isa->nr;
    mstrips = (M + MR - 1) / MR; nstrips = (N + NR - 1) / NR;
#if MHC__OMP
    if ((double)M * K * N > MHC__MM_PAR_WORK) nt = omp_get_max_threads();
#endif
    /* Column blocks: as few as fit MHC__MM_NC, their count rounded up to a multiple of the thread
       count when there are micro-panels enough. Row bands: one, or one per thread when the column
       blocks do not share evenly. Blocks and bands split the NR-wide panels and MR-high strips as
       evenly as integers allow, so threads get equal work. Each packed B block serves a whole band:
       few bands, little packing. (The tiling never changes results, see above.) */
    nbn = (nstrips + MHC__MM_NC / NR - 1) / (MHC__MM_NC / NR);
    if (nt > 1 && nbn % nt && (nbn + nt - 1) / nt * nt <= nstrips) nbn = (nbn + nt - 1) / nt * nt;
    if (nt > 1 && nbn % nt) nbm = nt < mstrips ? nt : mstrips;
    ntiles = nbm * nbn;
    MHC__OMP_FOR(nt > 1 && ntiles > 1)
    for (t = 0; t < ntiles; t++) {
        const size_t bm = (size_t)(t / nbn), bn = (size_t)(t % nbn);
        const int i0 = (int)(bm * (size_t)mstrips / (size_t)nbm) * MR;
        const int i1 = (int)((bm + 1) * (size_t)mstrips / (size_t)nbm) * MR;
        const int j0 = (int)(bn * (size_t)nstrips / (size_t)nbn) * NR;
        const int j1 = (int)((bn + 1) * (size_t)nstrips / (size_t)nbn) * NR;
        mhc__mm_tile(isa, C, (size_t)N, A, ars, acs, B, brs, bcs, i0, i1 < M ? i1 : M, j0, j1 < N ? j1 : N, K, acc);
    }
}
/* C[M,N] (+)= A[M,K] B[K,N] */
MHCDEF void mhc_k_matmul_ab(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    mhc__mm(C, A, (size_t)K, 1, B, (size_t)N, 1, M, K, N, acc);
}

/* C[M,N] (+)= A[M,K] B[N,K]^T */
MHCDEF void mhc_k_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    mhc__mm(C, A, (size_t)K, 1, B, 1, (size_t)K, M, K, N, acc);
}

/* C[M,N] (+)= A[K,M]^T B[K,N] */
MHCDEF void mhc_k_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    mhc__mm(C, A, 1, (size_t)M, B, (size_t)N, 1, M, K, N, acc);
}

/* The naive references: one output at a time, accumulated in double. */
MHCDEF void mhc_ref_matmul_ab(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = acc ? (double)C[(size_t)i * N + j] : 0.0;
            for (k = 0; k < K; k++) s += (double)A[(size_t)i * K + k] * (double)B[(size_t)k * N + j];
            C[(size_t)i * N + j] = (mhc_real)s;
        }
}
MHCDEF void mhc_ref_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = acc ? (double)C[(size_t)i * N + j] : 0.0;
            for (k = 0; k < K; k++) s += (double)A[(size_t)i * K + k] * (double)B[(size_t)j * K + k];
            C[(size_t)i * N + j] = (mhc_real)s;
        }
}
MHCDEF void mhc_ref_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i, j, k;
    for (i = 0; i < M; i++)
        for (j = 0; j < N; j++) {
            double s = acc ? (double)C[(size_t)i * N + j] : 0.0;
            for (k = 0; k < K; k++) s += (double)A[(size_t)k * M + i] * (double)B[(size_t)k * N + j];
            C[(size_t)i * N + j] = (mhc_real)s;
        }
}

/* RMSNorm: y = x * r * w,  r = 1 / sqrt(mean(x^2) + eps). */
MHCDEF void mhc_k_rmsnorm_forward(mhc_real *y, mhc_real *rstd, const mhc_real *x, const mhc_real *w,
                                  int N, int D, double eps) {
    int i;
    MHC__OMP_FOR((double)N * D > MHC__PAR_WORK)
    for (i = 0; i < N; i++) {
        const mhc_real *xi = x + (size_t)i * D;
        mhc_real *yi = y + (size_t)i * D;
        double ss = 0.0, r;
        int j;
        for (j = 0; j < D; j++) ss += (double)xi[j] * (double)xi[j];
        r = 1.0 / sqrt(ss / D + eps);
        if (rstd) rstd[i] = (mhc_real)r;
        for (j = 0; j < D; j++) yi[j] = (mhc_real)((double)xi[j] * r * (w ? (double)w[j] : 1.0));
    }
}

/* dx_j += r w_j dy_j - x_j r^3/D sum_k dy_k w_k x_k;   dw_j += sum_rows dy_j x_j r.
   One parallel region: the rows of dx, then (no barrier between) dw in blocks of 64 columns, each
   column summed over the rows in row order in double (row-major sweeps of the block, so x and dy
   are read along their rows; the same sums, in the same order, as one column at a time). */
#define MHC__COL_BLOCK 64   /* columns per block of the column sums over rows (RMSNorm dw, mhc_add's bias gradient) */
MHCDEF void mhc_k_rmsnorm_backward(mhc_real *dx, mhc_real *dw, const mhc_real *dy, const mhc_real *x,
                                   const mhc_real *w, const mhc_real *rstd, int N, int D) {
    const int nb = (D + MHC__COL_BLOCK - 1) / MHC__COL_BLOCK;
    MHC__OMP_PARALLEL((double)N * D > MHC__PAR_WORK)
    {
    int i, jb;
    if (dx) {
        MHC__OMP_FOR_NOWAIT
        for (i = 0; i < N; i++) {
            const mhc_real *xi = x + (size_t)i * D, *dyi = dy + (size_t)i * D;
            mhc_real *dxi = dx + (size_t)i * D;
            double r = (double)rstd[i], dot = 0.0, c;
            int k;
            for (k = 0; k < D; k++) dot += (double)dyi[k] * (w ? (double)w[k] : 1.0) * (double)xi[k];
            c = r * r * r * dot / D;
            for (k = 0; k < D; k++)
                dxi[k] += (mhc_real)(r * (w ? (double)w[k] : 1.0) * (double)dyi[k] - (double)xi[k] * c);
        }
    }
    if (dw) {
        MHC__OMP_FOR_NOWAIT
        for (jb = 0; jb < nb; jb++) {
            const int j0 = jb * MHC__COL_BLOCK, nj = D - j0 < MHC__COL_BLOCK ? D - j0 : MHC__COL_BLOCK;
            double s[MHC__COL_BLOCK];
            int r, j;
            for (j = 0; j < nj; j++) s[j] = 0.0;
            for (r = 0; r < N; r++) {
                const mhc_real *dyr = dy + (size_t)r * D + j0, *xr = x + (size_t)r * D + j0;
                const double rr = (double)rstd[r];
                for (j = 0; j < nj; j++) s[j] += (double)dyr[j] * (double)xr[j] * rr;
            }
            for (j = 0; j < nj; j++) dw[j0 + j] += (mhc_real)s[j];
        }
    }
    }
}

#define MHC__GELU_K 0.7978845608028654   /* sqrt(2/pi) */
#define MHC__GELU_C 0.044715

MHCDEF double mhc_act_value(mhc_act act, double x) {
    switch (act) {
    case MHC_ACT_SIGMOID: return mhc__sigmoid(x);
    case MHC_ACT_TANH: return tanh(x);
    case MHC_ACT_GELU: return 0.5 * x * (1.0 + tanh(MHC__GELU_K * (x + MHC__GELU_C * x * x * x)));
    case MHC_ACT_SILU: return x * mhc__sigmoid(x);
    }
    return 0.0;
}

MHCDEF double mhc_act_deriv(mhc_act act, double x) {
    switch (act) {
    case MHC_ACT_SIGMOID: { double s = mhc__sigmoid(x); return s * (1.0 - s); }
    case MHC_ACT_TANH: { double t = tanh(x); return 1.0 - t * t; }
    case MHC_ACT_GELU: {
        double t = tanh(MHC__GELU_K * (x + MHC__GELU_C * x * x * x));
        return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * MHC__GELU_K * (1.0 + 3.0 * MHC__GELU_C * x * x);
    }
    case MHC_ACT_SILU: { double s = mhc__sigmoid(x); return s + x * s * (1.0 - s); }
    }
    return 0.0;
}

/* GELU in float32 builds, vectorised. The double build (MHC_DOUBLE) keeps the definition above:
   libm's tanh in double, the reference. The float build computes the same function as
       gelu(x) = x * sigmoid(2u) = x / (1 + e),   e = exp(-2u),   u = sqrt(2/pi) (x + 0.044715 x^3)
   (0.5 (1 + tanh u) = sigmoid(2u): no cancellation for negative x), and its derivative as
       gelu'(x) = s + x * 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2) * s * (e s),   s = 1 / (1 + e)
   (s (1 - s) = s * (e s)), in float, with a branch-free exp: exp(z) = 2^k exp(r), k = round(z / ln 2)
   (the 1.5 * 2^23 rounding trick), r = z - k ln 2 in two parts (|r| <= ln 2 / 2), exp(r) by its
   Taylor polynomial to r^7 (truncation <= 5.3e-9 relative), 2^k built in the exponent bits. z = -2u
   is clamped to [-87, 88] (2^k stays a normal float); outside that range gelu is x (z < -87, i.e.
   x > 10.1) or x * 0 (z > 88, x < -10.1) and gelu' is 1 or 0, the formulas' limits. NaN stays NaN.
   Two versions of the same operations: AVX2 intrinsics, 8 lanes (run when the matmul dispatch picks
   avx2+fma or avx512: mhc_k_matmul_isa, MHC_ISA), and portable C, one element at a time (MHC_NO_SIMD,
   other compilers and CPUs). Both use separate multiplies and adds in the same order, no fma.
   Error against the double evaluation of the formulas above with libm's exp (checked by the group
   gelu_fast of tests/test_matmul.c on every ISA the machine runs, over x in [-12, 12] at a step of
   2^-12, a log grid out to +-1e30 and the specials):
       |gelu - ref| <= 2.4e-7 (1 + |2u|) |ref| + 1e-35,
       |gelu' - ref'| <= 2.4e-7 (1 + |2u|) (|s| + |second term|) + 1e-35
   (measured worst 1.7e-7 (1 + |2u|): the float rounding of 2u, which exp magnifies by |2u|, so about
   2 ulp near 0 and 1e-5 relative at x = -9.8 where gelu is 1e-36; the backward is relative to the
   size of its two terms because gelu' crosses 0 near x = -0.75). mhc_act_value's tanh form itself
   cancels for x < -5 (1 + tanh u), so against it the difference is absolute: <= 6e-7 forward and
   <= 2e-7 backward for |x| <= 12. The previous float kernel (libm in double, rounded) was within
   0.5 ulp. Speed, one thread on the AVX2 machine of the README: 1.5 ns (forward) and 2.0 ns
   (backward) per element against 31 and 37 ns for the libm kernel; the portable loop 11 and 21 ns. */
#ifndef MHC_DOUBLE
#define MHC__GELU_REL 2.4e-7   /* the bound's factor (see above), checked by tests/test_matmul.c */

/* exp(z), z in [-87, 88] */
static float mhc__exp_lane(float z) {
    union { float f; uint32_t u; } t, p2;
    float kf, r;
    t.f = z * 1.44269504f + 12582912.0f;                         /* k + 1.5 * 2^23, k = round(z / ln 2) */
    kf = t.f - 12582912.0f;
    r = (z - kf * 0.693359375f) - kf * -2.12194440e-4f;          /* ln 2 = 0.693359375 - 2.1219444e-4 */
    p2.u = (t.u - 0x4B400000u + 127u) << 23;                     /* 2^k */
    return p2.f * (1.0f + r * (1.0f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f +
                   r * (8.33333377e-3f + r * (1.38888892e-3f + r * 1.98412701e-4f)))))));
}

static void mhc__gelu_portable_fwd(float *y, const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        const float xv = x[i], zr = -1.59576912f * (xv + 0.044715f * xv * xv * xv);   /* -2u */
        const float zl = zr < -87.0f ? -87.0f : zr, zc = zl > 88.0f ? 88.0f : zl;
        const float m = zr > 88.0f ? 0.0f : 1.0f;    /* z > 88: s = 0; z < -87: s = 1 exactly, y = x */
        y[i] = xv * (m / (1.0f + mhc__exp_lane(zc)));
    }
}

static void mhc__gelu_portable_bwd(float *dx, const float *dy, const float *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        const float xv = x[i], zr = -1.59576912f * (xv + 0.044715f * xv * xv * xv);
        const float zl = zr < -87.0f ? -87.0f : zr, zc = zl > 88.0f ? 88.0f : zl;
        /* inside the clamp |x| < 10.1; outside it the second term is 0 (xc keeps it finite) */
        const float m = zr > 88.0f ? 0.0f : 1.0f, m2 = (zr >= -87.0f && zr <= 88.0f) ? 1.0f : 0.0f;
        const float xl = xv < -16.0f ? -16.0f : xv, xc = xl > 16.0f ? 16.0f : xl;
        const float e = mhc__exp_lane(zc), s = m / (1.0f + e);
        dx[i] += dy[i] * (s + m2 * (xc * (1.59576912f * (1.0f + 0.134145f * xc * xc)) * s * (e * s)));
    }
}

#if MHC__MM_HAVE256
#define MHC__GELU_SIMD 1
/* the same operations, 8 lanes. _mm256_max_ps(c, v) returns v when v is NaN, so NaN passes the
   clamps as it does the portable ternaries. */
MHC__MM_TGT256 static inline __m256 mhc__exp8(__m256 z) {
    const __m256 magic = _mm256_set1_ps(12582912.0f);
    const __m256 t = _mm256_add_ps(_mm256_mul_ps(z, _mm256_set1_ps(1.44269504f)), magic);
    const __m256 kf = _mm256_sub_ps(t, magic);
    const __m256 r = _mm256_sub_ps(_mm256_sub_ps(z, _mm256_mul_ps(kf, _mm256_set1_ps(0.693359375f))),
                                   _mm256_mul_ps(kf, _mm256_set1_ps(-2.12194440e-4f)));
    const __m256i p2 = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(t), _mm256_set1_epi32(127 - 0x4B400000)), 23);
    __m256 p = _mm256_add_ps(_mm256_set1_ps(1.38888892e-3f), _mm256_mul_ps(r, _mm256_set1_ps(1.98412701e-4f)));
    p = _mm256_add_ps(_mm256_set1_ps(8.33333377e-3f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(4.16666679e-2f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(1.66666672e-1f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(0.5f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(r, p));
    p = _mm256_add_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(r, p));
    return _mm256_mul_ps(_mm256_castsi256_ps(p2), p);
}

/* -2u, its clamp, and m (0 where z > 88, else 1) */
MHC__MM_TGT256 static inline __m256 mhc__gelu_z8(__m256 xv, __m256 *zc, __m256 *m) {
    const __m256 zr = _mm256_mul_ps(_mm256_set1_ps(-1.59576912f),
        _mm256_add_ps(xv, _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.044715f), xv), xv), xv)));
    *zc = _mm256_min_ps(_mm256_set1_ps(88.0f), _mm256_max_ps(_mm256_set1_ps(-87.0f), zr));
    *m = _mm256_andnot_ps(_mm256_cmp_ps(zr, _mm256_set1_ps(88.0f), _CMP_GT_OQ), _mm256_set1_ps(1.0f));
    return zr;
}

/* The tails (n % 8 elements) go through the same 8 lanes, copied into a zero-padded buffer: every
   element gets the value of the lane code wherever it sits (a scalar tail compiled inside this
   target would be contracted into fma by compilers that contract by default, e.g. clang). */
MHC__MM_TGT256 static void mhc__gelu_avx2_fwd(float *y, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        __m256 zc, m;
        (void)mhc__gelu_z8(xv, &zc, &m);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(xv, _mm256_div_ps(m, _mm256_add_ps(_mm256_set1_ps(1.0f), mhc__exp8(zc)))));
    }
    if (i < n) {
        float xb[8] = {0, 0, 0, 0, 0, 0, 0, 0}, yb[8];
        size_t k;
        for (k = 0; k < n - i; k++) xb[k] = x[i + k];
        mhc__gelu_avx2_fwd(yb, xb, 8);
        for (k = 0; k < n - i; k++) y[i + k] = yb[k];
    }
}

MHC__MM_TGT256 static void mhc__gelu_avx2_bwd(float *dx, const float *dy, const float *x, size_t n) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i), one = _mm256_set1_ps(1.0f);
        __m256 zc, m, zr, m2, xc, e, s, t;
        zr = mhc__gelu_z8(xv, &zc, &m);
        m2 = _mm256_and_ps(_mm256_and_ps(_mm256_cmp_ps(zr, _mm256_set1_ps(-87.0f), _CMP_GE_OQ),
                                         _mm256_cmp_ps(zr, _mm256_set1_ps(88.0f), _CMP_LE_OQ)), one);
        xc = _mm256_min_ps(_mm256_set1_ps(16.0f), _mm256_max_ps(_mm256_set1_ps(-16.0f), xv));
        e = mhc__exp8(zc);
        s = _mm256_div_ps(m, _mm256_add_ps(one, e));
        t = _mm256_mul_ps(_mm256_set1_ps(1.59576912f), _mm256_add_ps(one, _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.134145f), xc), xc)));
        t = _mm256_mul_ps(_mm256_mul_ps(_mm256_mul_ps(xc, t), s), _mm256_mul_ps(e, s));
        t = _mm256_add_ps(s, _mm256_mul_ps(m2, t));
        _mm256_storeu_ps(dx + i, _mm256_add_ps(_mm256_loadu_ps(dx + i), _mm256_mul_ps(_mm256_loadu_ps(dy + i), t)));
    }
    if (i < n) {   /* the tail through the same lanes (see above) */
        float xb[8] = {0, 0, 0, 0, 0, 0, 0, 0}, dyb[8] = {0, 0, 0, 0, 0, 0, 0, 0}, dxb[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        size_t k;
        for (k = 0; k < n - i; k++) { xb[k] = x[i + k]; dyb[k] = dy[i + k]; dxb[k] = dx[i + k]; }
        mhc__gelu_avx2_bwd(dxb, dyb, xb, 8);
        for (k = 0; k < n - i; k++) dx[i + k] = dxb[k];
    }
}
#else
#define MHC__GELU_SIMD 0
#endif

/* Whether the GELU runs the AVX2 lanes: the matmul dispatch's choice (avx2+fma or avx512) */
static int mhc__gelu_simd(void) {
#if MHC__GELU_SIMD
    return mhc__mm_pick()->name[0] == 'a';
#else
    return 0;
#endif
}

#define MHC__ACT_CHUNK 4096   /* elements per OpenMP chunk of the float GELU */

/* The float GELU over n elements in MHC__ACT_CHUNK chunks (OpenMP over chunks, each chunk one
   ISA's loop): dy == NULL: the forward, out = gelu(x); else the backward, out += gelu'(x) dy. */
static void mhc__gelu_chunks(float *out, const float *dy, const float *x, size_t n) {
    const int simd = mhc__gelu_simd();
    const long nc = (long)((n + MHC__ACT_CHUNK - 1) / MHC__ACT_CHUNK);
    long i;
    (void)simd;
    MHC__OMP_FOR((long)n > MHC__PAR_WORK / 2)
    for (i = 0; i < nc; i++) {
        const size_t lo = (size_t)i * MHC__ACT_CHUNK, len = n - lo < MHC__ACT_CHUNK ? n - lo : MHC__ACT_CHUNK;
#if MHC__GELU_SIMD
        if (simd) {
            if (dy) mhc__gelu_avx2_bwd(out + lo, dy + lo, x + lo, len);
            else mhc__gelu_avx2_fwd(out + lo, x + lo, len);
            continue;
        }
#endif
        if (dy) mhc__gelu_portable_bwd(out + lo, dy + lo, x + lo, len);
        else mhc__gelu_portable_fwd(out + lo, x + lo, len);
    }
}
#endif /* !MHC_DOUBLE */

MHCDEF void mhc_k_act_forward(mhc_act act, mhc_real *y, const mhc_real *x, size_t n) {
    long i, nn = (long)n;
#ifndef MHC_DOUBLE
    if (act == MHC_ACT_GELU) { mhc__gelu_chunks(y, NULL, x, n); return; }
#endif
    MHC__OMP_FOR(nn > MHC__PAR_WORK / 8)
    for (i = 0; i < nn; i++) y[i] = (mhc_real)mhc_act_value(act, (double)x[i]);
}

MHCDEF void mhc_k_act_backward(mhc_act act, mhc_real *dx, const mhc_real *dy, const mhc_real *x, size_t n) {
    long i, nn = (long)n;
#ifndef MHC_DOUBLE
    if (act == MHC_ACT_GELU) { mhc__gelu_chunks(dx, dy, x, n); return; }
#endif
    MHC__OMP_FOR(nn > MHC__PAR_WORK / 8)
    for (i = 0; i < nn; i++) dx[i] += (mhc_real)(mhc_act_deriv(act, (double)x[i]) * (double)dy[i]);
}

/* softmax: y_j = exp(x_j - max) / sum_k exp(x_k - max) */
MHCDEF void mhc_k_softmax_forward(mhc_real *y, const mhc_real *x, int N, int D) {
    int i;
    MHC__OMP_FOR((double)N * D > MHC__PAR_WORK / 8)
    for (i = 0; i < N; i++) {
        const mhc_real *xi = x + (size_t)i * D;
        mhc_real *yi = y + (size_t)i * D;
        double mx = (double)xi[0], s = 0.0;
        int j;
        for (j = 1; j < D; j++) if ((double)xi[j] > mx) mx = (double)xi[j];
        for (j = 0; j < D; j++) s += exp((double)xi[j] - mx);
        for (j = 0; j < D; j++) yi[j] = (mhc_real)(exp((double)xi[j] - mx) / s);
    }
}

/* dx_j += y_j (dy_j - sum_k y_k dy_k) */
MHCDEF void mhc_k_softmax_backward(mhc_real *dx, const mhc_real *dy, const mhc_real *y, int N, int D) {
    int i;
    MHC__OMP_FOR((double)N * D > MHC__PAR_WORK / 8)
    for (i = 0; i < N; i++) {
        const mhc_real *yi = y + (size_t)i * D, *dyi = dy + (size_t)i * D;
        mhc_real *dxi = dx + (size_t)i * D;
        double dot = 0.0;
        int j;
        for (j = 0; j < D; j++) dot += (double)yi[j] * (double)dyi[j];
        for (j = 0; j < D; j++) dxi[j] += (mhc_real)((double)yi[j] * ((double)dyi[j] - dot));
    }
}

/* out[t,:] = table[ids[t],:] */
MHCDEF void mhc_k_embedding_forward(mhc_real *out, const int *ids, const mhc_real *table, int T, int D) {
    int t;
    for (t = 0; t < T; t++) memcpy(out + (size_t)t * D, table + (size_t)ids[t] * D, (size_t)D * sizeof(mhc_real));
}

/* dtable[ids[t],:] += dout[t,:]   (serial over t: rows may repeat, the order is fixed) */
MHCDEF void mhc_k_embedding_backward(mhc_real *dtable, const mhc_real *dout, const int *ids, int T, int D) {
    int t, j;
    for (t = 0; t < T; t++) {
        mhc_real *d = dtable + (size_t)ids[t] * D;
        const mhc_real *g = dout + (size_t)t * D;
        for (j = 0; j < D; j++) d[j] += g[j];
    }
}

/* ---- lane helpers: sums in double with a fixed lane split ----
   Sixteen double lanes, each summing every 16th term in order, then the lanes in a fixed tree:
   the same bits for any thread count, and loops of a fixed length that compilers vectorise. */
#define MHC__LN 16
/* Channel blocks for the elementwise sums over streams (a[MHC__CB] per block; with GCC's -O3 a
   block of 16 is unrolled into scalars, 64 is vectorised). */
#define MHC__CB 64

MHC__INLINE double mhc__lanes_sum(const double *a) {
    double s[8];
    int q;
    for (q = 0; q < 8; q++) s[q] = a[q] + a[q + 8];
    return ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]));
}

/* out[r] = sum_j g[j] rows[r*stride + j] (double) for r < nr, in MHC__LN lanes per row, up to 8
   rows in one sweep over g (g loaded once, 8 x 16 independent lanes). Cloned (MHC__CLONES). */
MHC__INLINE void mhc__dots_body(double *out, const mhc_real *g, const mhc_real *rows, size_t stride, int nr, int len) {
    enum { R = 8 };
    double acc[R][MHC__LN];
    int r0, r, j, q;
    for (r0 = 0; r0 < nr; r0 += R) {
        const int rn = nr - r0 < R ? nr - r0 : R;
        const mhc_real *rb = rows + (size_t)r0 * stride;
        for (r = 0; r < rn; r++)
            for (q = 0; q < MHC__LN; q++) acc[r][q] = 0.0;
        for (j = 0; j + MHC__LN <= len; j += MHC__LN) {
            double gv[MHC__LN];
            for (q = 0; q < MHC__LN; q++) gv[q] = (double)g[j + q];
            for (r = 0; r < rn; r++) {
                const mhc_real *x = rb + (size_t)r * stride + j;
                for (q = 0; q < MHC__LN; q++) acc[r][q] += gv[q] * (double)x[q];
            }
        }
        for (r = 0; r < rn; r++) {
            const mhc_real *x = rb + (size_t)r * stride;
            int jj;
            for (q = 0, jj = j; jj < len; jj++, q++) acc[r][q] += (double)g[jj] * (double)x[jj];
            out[r0 + r] = mhc__lanes_sum(acc[r]);
        }
    }
}

MHC__CLONES(mhc__dots, (double *out, const mhc_real *g, const mhc_real *rows, size_t stride, int nr, int len),
            (out, g, rows, stride, nr, len))

/* sum_j a[j] b[j] (double): mhc__dots with one row (the body, for the cloned callers; and the
   dispatched call) */
MHC__INLINE double mhc__dotd_body(const mhc_real *a, const mhc_real *b, int len) {
    double d;
    mhc__dots_body(&d, a, b, 0, 1, len);
    return d;
}
static double mhc__dotd(const mhc_real *a, const mhc_real *b, int len) {
    double d;
    mhc__dots(&d, a, b, 0, 1, len);
    return d;
}

/* A stream mix: out[c] = (f ? hf f[c] : 0) + sum_r w[r*ws] rows[r*rs + c], or out[c] += the sum
   (without the f term) when acc; summed in mhc_real, r in order, MHC__CB channels at a time. */
MHC__INLINE void mhc__mix_rows_body(mhc_real *out, int acc, const mhc_real *w, size_t ws, const mhc_real *rows,
                                    size_t rs, int nr, const mhc_real *f, mhc_real hf, int C) {
    int c, r, q;
    for (c = 0; c + MHC__CB <= C; c += MHC__CB) {
        mhc_real a[MHC__CB];
        if (f)  /* the test outside the loops: GCC -O2 vectorises no loop with a branch inside */
            for (q = 0; q < MHC__CB; q++) a[q] = hf * f[c + q];
        else
            for (q = 0; q < MHC__CB; q++) a[q] = 0;
        for (r = 0; r < nr; r++) {
            const mhc_real wr = w[(size_t)r * ws], *xr = rows + (size_t)r * rs + c;
            for (q = 0; q < MHC__CB; q++) a[q] += wr * xr[q];
        }
        if (acc)
            for (q = 0; q < MHC__CB; q++) out[c + q] += a[q];
        else
            for (q = 0; q < MHC__CB; q++) out[c + q] = a[q];
    }
    for (; c < C; c++) {
        mhc_real a = f ? hf * f[c] : 0;
        for (r = 0; r < nr; r++) a += w[(size_t)r * ws] * rows[(size_t)r * rs + c];
        if (acc) out[c] += a;
        else out[c] = a;
    }
}
MHC__CLONES(mhc__mix_rows, (mhc_real *out, int acc, const mhc_real *w, size_t ws, const mhc_real *rows, size_t rs,
                            int nr, const mhc_real *f, mhc_real hf, int C),
            (out, acc, w, ws, rows, rs, nr, f, hf, C))

/* Causal attention per (b, h, t): p = softmax_{t2 <= t}(q_t . k_t2 / sqrt(hs)), out_t = sum p v_t2.
   One job = one (b, h, t); the job is cloned (MHC__CLONES). */
MHC__INLINE void mhc__attn_fwd_job_body(mhc_real *out, mhc_real *att, const mhc_real *qkv, int T, int C, int H,
                                        long job) {
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    const int t = (int)(job % T), h = (int)((job / T) % H), b = (int)(job / ((long)T * H));
    const mhc_real *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
    mhc_real *a = att + (((size_t)b * H + h) * T + t) * T;
    mhc_real *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
    double mx = -HUGE_VAL, s = 0.0;
    int t2, i;
    for (t2 = 0; t2 <= t; t2++) {
        const mhc_real *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
        double d = mhc__dotd_body(q, k, hs) * scale;
        a[t2] = (mhc_real)d;
        if (d > mx) mx = d;
    }
    for (t2 = 0; t2 <= t; t2++) { double e = exp((double)a[t2] - mx); a[t2] = (mhc_real)e; s += e; }
    for (t2 = 0; t2 <= t; t2++) a[t2] = (mhc_real)((double)a[t2] / s);
    for (t2 = t + 1; t2 < T; t2++) a[t2] = 0;
    for (i = 0; i < hs; i++) o[i] = 0;
    for (t2 = 0; t2 <= t; t2++) {
        const mhc_real *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
        const mhc_real p = a[t2];
        for (i = 0; i < hs; i++) o[i] += p * v[i];
    }
}
MHC__CLONES(mhc__attn_fwd_job, (mhc_real *out, mhc_real *att, const mhc_real *qkv, int T, int C, int H, long job),
            (out, att, qkv, T, C, H, job))

MHCDEF void mhc_k_attention_forward(mhc_real *out, mhc_real *att, const mhc_real *qkv, int B, int T, int C, int H) {
    long job, njobs = (long)B * H * T;
    MHC__OMP_FOR((double)njobs * T * (C / H) > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) mhc__attn_fwd_job(out, att, qkv, T, C, H, job);
}

/* Backward per (b, h), serial over t inside, so each job owns its slices of dq, dk, dv:
   dv_t2 += p dout_t;  dp = v_t2 . dout_t;  ds = p (dp - sum p dp);  dq_t += ds k_t2 / sqrt(hs);
   dk_t2 += ds q_t / sqrt(hs). dp (T doubles, or NULL: computed twice) keeps the dots v_t2 . dout_t
   of one t for the second sweep. The job is cloned (MHC__CLONES). */
MHC__INLINE void mhc__attn_bwd_job_body(mhc_real *dqkv, const mhc_real *dout, const mhc_real *att, const mhc_real *qkv,
                                        int T, int C, int H, long job, double *dp) {
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    const int h = (int)(job % H), b = (int)(job / H);
    int t, t2, i;
    for (t = 0; t < T; t++) {
        const mhc_real *a = att + (((size_t)b * H + h) * T + t) * T;
        const mhc_real *g = dout + ((size_t)b * T + t) * C + (size_t)h * hs;
        const mhc_real *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        mhc_real *dq = dqkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        double sum_pdp = 0.0;
        for (t2 = 0; t2 <= t; t2++) {
            const mhc_real *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
            const double d = mhc__dotd_body(v, g, hs);
            if (dp) dp[t2] = d;
            sum_pdp += (double)a[t2] * d;
        }
        for (t2 = 0; t2 <= t; t2++) {
            const mhc_real *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            const mhc_real *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
            mhc_real *dk = dqkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            mhc_real *dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
            const double p = (double)a[t2], ds = p * ((dp ? dp[t2] : mhc__dotd_body(v, g, hs)) - sum_pdp) * scale;
            /* three loops of one store each (dv, dq, dk are disjoint slices of dqkv): compilers
               vectorise each one, none of the fused loop (same operations, same bits) */
            for (i = 0; i < hs; i++) dv[i] += (mhc_real)(p * (double)g[i]);
            for (i = 0; i < hs; i++) dq[i] += (mhc_real)(ds * (double)k[i]);
            for (i = 0; i < hs; i++) dk[i] += (mhc_real)(ds * (double)q[i]);
        }
    }
}
MHC__CLONES(mhc__attn_bwd_job, (mhc_real *dqkv, const mhc_real *dout, const mhc_real *att, const mhc_real *qkv, int T,
                                int C, int H, long job, double *dp),
            (dqkv, dout, att, qkv, T, C, H, job, dp))

MHCDEF void mhc_k_attention_backward(mhc_real *dqkv, const mhc_real *dout, const mhc_real *att,
                                     const mhc_real *qkv, int B, int T, int C, int H) {
    long job, njobs = (long)B * H;
    MHC__OMP_FOR((double)njobs * T * T * (C / H) > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
        double *dp = (double *)MHC_MALLOC((size_t)T * sizeof(double));   /* NULL: the dots twice */
        mhc__attn_bwd_job(dqkv, dout, att, qkv, T, C, H, job, dp);
        MHC_FREE(dp);
    }
}

/* Per (i, h): the scores of query i against cache rows t2 <= p0 + i, their softmax, the mix of v */
MHCDEF void mhc_k_attention_kv_forward(mhc_real *out, mhc_real *att, const mhc_real *q, int ldq, const mhc_real *k,
                                       const mhc_real *v, int ldkv, int Tq, int p0, int C, int H) {
    const int hs = C / H, L = p0 + Tq;
    const double scale = 1.0 / sqrt((double)hs);
    long job, njobs = (long)Tq * H;
    MHC__OMP_FOR((double)njobs * L * hs > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
        const int i = (int)(job / H), h = (int)(job % H), last = p0 + i;
        const mhc_real *qi = q + (size_t)i * ldq + (size_t)h * hs;
        mhc_real *a = att + (size_t)job * L;
        mhc_real *o = out + (size_t)i * C + (size_t)h * hs;
        double mx = -HUGE_VAL, s = 0.0;
        int t2, c;
        for (t2 = 0; t2 <= last; t2++) {
            double d = mhc__dotd(qi, k + (size_t)t2 * ldkv + (size_t)h * hs, hs) * scale;
            a[t2] = (mhc_real)d;
            if (d > mx) mx = d;
        }
        for (t2 = 0; t2 <= last; t2++) { double e = exp((double)a[t2] - mx); a[t2] = (mhc_real)e; s += e; }
        for (t2 = 0; t2 <= last; t2++) a[t2] = (mhc_real)((double)a[t2] / s);
        for (t2 = last + 1; t2 < L; t2++) a[t2] = 0;
        for (c = 0; c < hs; c++) o[c] = 0;
        for (t2 = 0; t2 <= last; t2++) {
            const mhc_real p = a[t2], *vr = v + (size_t)t2 * ldkv + (size_t)h * hs;
            for (c = 0; c < hs; c++) o[c] += p * vr[c];
        }
    }
}

/* ---- flash-style attention (see mhc_k_attention_flash_forward) ---- */
MHCDEF size_t mhc_k_attention_work(int T) { return T < 1 ? 0 : (size_t)2 * MHC_ATTN_QB * (size_t)T; }

/* C[M,N] (+)= A(i,k) B(k,j) on this thread: the GEMM's tile in column blocks of MHC__MM_NC */
static void mhc__attn_mm(const mhc__mm_isa *isa, mhc_real *C, size_t ldc, const mhc_real *A, size_t ars, size_t acs,
                         const mhc_real *B, size_t brs, size_t bcs, int M, int N, int K, int acc) {
    int j0;
    for (j0 = 0; j0 < N; j0 += MHC__MM_NC)
        mhc__mm_tile(isa, C, ldc, A, ars, acs, B, brs, bcs, 0, M, j0, N - j0 < MHC__MM_NC ? N : j0 + MHC__MM_NC, K,
                     acc);
}

/* e[j] = exp((s[j] - m) * scale) for j < n (0 where the argument is below -87 in float) */
#if !defined(MHC_DOUBLE) && MHC__GELU_SIMD
MHC__MM_TGT256 static int mhc__attn_exp8(mhc_real *e, const mhc_real *s, int n, mhc_real m, mhc_real scale) {
    const __m256 mv = _mm256_set1_ps(m), sc = _mm256_set1_ps(scale), lo = _mm256_set1_ps(-87.0f);
    int j;
    for (j = 0; j + 8 <= n; j += 8) {
        const __m256 z = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv), sc);
        const __m256 keep = _mm256_cmp_ps(z, lo, _CMP_NLT_UQ);   /* z >= -87 or NaN */
        _mm256_storeu_ps(e + j, _mm256_and_ps(keep, mhc__exp8(_mm256_max_ps(lo, z))));
    }
    return j;
}
#endif
static void mhc__attn_exp(mhc_real *e, const mhc_real *s, int n, mhc_real m, mhc_real scale) {
    int j = 0;
#ifdef MHC_DOUBLE
    for (; j < n; j++) e[j] = exp((s[j] - m) * scale);
#else
#if MHC__GELU_SIMD
    if (mhc__gelu_simd()) j = mhc__attn_exp8(e, s, n, m, scale);
#endif
    for (; j < n; j++) {
        const float z = (s[j] - m) * scale;
        e[j] = z < -87.0f ? 0.0f : mhc__exp_lane(z);
    }
#endif
}

/* One query row's probabilities in place: row[j] (a raw score q . k_j) for j < len becomes
   exp((row[j] - m) scale) / sum, row[len .. nk) becomes 0. st_in NULL (the forward): m and sum are
   the row's, written to st_out; else they are read from st_in. */
static void mhc__attn_prob_row(mhc_real *row, int len, int nk, mhc_real scale, const mhc_real *st_in,
                               mhc_real *st_out) {
    mhc_real m, sum;
    int j;
    if (!st_in) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        m = row[0];
        for (j = 1; j < len; j++) m = row[j] > m ? row[j] : m;
        mhc__attn_exp(row, row, len, m, scale);
        for (j = 0; j + 4 <= len; j += 4) {
            s0 += (double)row[j]; s1 += (double)row[j + 1]; s2 += (double)row[j + 2]; s3 += (double)row[j + 3];
        }
        for (; j < len; j++) s0 += (double)row[j];
        sum = (mhc_real)((s0 + s1) + (s2 + s3));
        st_out[0] = m; st_out[1] = sum;
    } else {
        m = st_in[0]; sum = st_in[1];
        mhc__attn_exp(row, row, len, m, scale);
    }
    for (j = 0; j < len; j++) row[j] = row[j] / sum;
    for (j = len; j < nk; j++) row[j] = 0;
}

/* Queries t0 .. t0 + m - 1 of one (b, h): P[m, t0 + m] = their scores against keys 0 .. t0 + m - 1
   (S = Q K^T by the GEMM tile), made probabilities row by row. The forward passes st_out (each row's
   m and sum are written to st_out[2t]); the backward passes st_in and so recomputes the forward's
   probabilities by the same calls. */
static void mhc__attn_block_probs(const mhc__mm_isa *isa, mhc_real *P, const mhc_real *Q, const mhc_real *K, size_t C3,
                                  int t0, int m, int hs, mhc_real scale, const mhc_real *st_in, mhc_real *st_out) {
    const int nk = t0 + m;
    int r;
    mhc__attn_mm(isa, P, (size_t)nk, Q + t0 * C3, C3, 1, K, 1, C3, m, nk, hs, 0);
    for (r = 0; r < m; r++) {
        const size_t t = (size_t)(t0 + r);
        mhc__attn_prob_row(P + (size_t)r * nk, t0 + r + 1, nk, scale, st_in ? st_in + 2 * t : NULL,
                           st_in ? NULL : st_out + 2 * t);
    }
}

MHCDEF void mhc_k_attention_flash_forward(mhc_real *out, mhc_real *stats, const mhc_real *qkv, int B, int T, int C,
                                          int H, mhc_real *work, int nslots) {
    const mhc__mm_isa *isa = mhc__mm_pick();
    const int hs = C / H, QB = MHC_ATTN_QB;
    const size_t C3 = 3 * (size_t)C;
    const mhc_real scale = (mhc_real)(1.0 / sqrt((double)hs));
    long job, njobs = (long)B * H;
    if (nslots < 1) nslots = 1;
    MHC__OMP_FOR_SLOTS(nslots, (double)njobs * T * T * hs > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
        const int b = (int)(job / H), h = (int)(job % H);
        const mhc_real *Q = qkv + (size_t)b * T * C3 + (size_t)h * hs, *K = Q + C, *V = Q + 2 * (size_t)C;
        mhc_real *O = out + (size_t)b * T * C + (size_t)h * hs, *st = stats + (size_t)job * T * 2;
        mhc_real *S = work + (size_t)MHC__THREAD_NUM() * mhc_k_attention_work(T);
        int t0;
        for (t0 = 0; t0 < T; t0 += QB) {
            const int m = T - t0 < QB ? T - t0 : QB, nk = t0 + m;
            mhc__attn_block_probs(isa, S, Q, K, C3, t0, m, hs, scale, NULL, st);
            mhc__attn_mm(isa, O + (size_t)t0 * C, (size_t)C, S, (size_t)nk, 1, V, C3, 1, m, hs, nk, 0);
        }
    }
}

MHCDEF void mhc_k_attention_flash_backward(mhc_real *dqkv, const mhc_real *dout, const mhc_real *out,
                                           const mhc_real *stats, const mhc_real *qkv, int B, int T, int C, int H,
                                           mhc_real *work, int nslots) {
    const mhc__mm_isa *isa = mhc__mm_pick();
    const int hs = C / H, QB = MHC_ATTN_QB;
    const size_t C3 = 3 * (size_t)C;
    const mhc_real scale = (mhc_real)(1.0 / sqrt((double)hs));
    long job, njobs = (long)B * H;
    if (nslots < 1) nslots = 1;
    MHC__OMP_FOR_SLOTS(nslots, (double)njobs * T * T * hs > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
        const int b = (int)(job / H), h = (int)(job % H);
        const size_t qoff = (size_t)b * T * C3 + (size_t)h * hs, ooff = (size_t)b * T * C + (size_t)h * hs;
        const mhc_real *Q = qkv + qoff, *K = Q + C, *V = Q + 2 * (size_t)C, *O = out + ooff, *dO = dout + ooff;
        mhc_real *dQ = dqkv + qoff, *dK = dQ + C, *dV = dQ + 2 * (size_t)C;
        const mhc_real *st = stats + (size_t)job * T * 2;
        mhc_real *P = work + (size_t)MHC__THREAD_NUM() * mhc_k_attention_work(T), *dS = P + (size_t)QB * T;
        int t0, r, j;
        for (t0 = 0; t0 < T; t0 += QB) {
            const int m = T - t0 < QB ? T - t0 : QB, nk = t0 + m;
            mhc__attn_block_probs(isa, P, Q, K, C3, t0, m, hs, scale, st, NULL);
            mhc__attn_mm(isa, dS, (size_t)nk, dO + (size_t)t0 * C, (size_t)C, 1, V, 1, C3, m, nk, hs, 0);
            for (r = 0; r < m; r++) {
                const int t = t0 + r;
                const mhc_real d = (mhc_real)mhc__dotd(dO + (size_t)t * C, O + (size_t)t * C, hs);
                const mhc_real *pr = P + (size_t)r * nk;
                mhc_real *sr = dS + (size_t)r * nk;
                for (j = 0; j <= t; j++) sr[j] = pr[j] * (sr[j] - d) * scale;
                for (; j < nk; j++) sr[j] = 0;
            }
            mhc__attn_mm(isa, dV, C3, P, 1, (size_t)nk, dO + (size_t)t0 * C, (size_t)C, 1, nk, hs, m, 1);
            mhc__attn_mm(isa, dK, C3, dS, 1, (size_t)nk, Q + t0 * C3, C3, 1, nk, hs, m, 1);
            mhc__attn_mm(isa, dQ + t0 * C3, C3, dS, (size_t)nk, 1, K, C3, 1, m, hs, nk, 1);
        }
    }
}

/* loss_n = log(sum_j exp(x_nj)) - x_n,target */
MHCDEF void mhc_k_crossentropy_forward(mhc_real *losses, const mhc_real *logits, const int *targets, int N, int V) {
    int n;
    MHC__OMP_FOR((double)N * V > MHC__PAR_WORK / 8)
    for (n = 0; n < N; n++) {
        const mhc_real *x = logits + (size_t)n * V;
        double mx = (double)x[0], s = 0.0;
        int j;
        for (j = 1; j < V; j++) if ((double)x[j] > mx) mx = (double)x[j];
        for (j = 0; j < V; j++) s += exp((double)x[j] - mx);
        losses[n] = (mhc_real)(mx + log(s) - (double)x[targets[n]]);
    }
}

/* dx_nj += dloss_n (softmax_nj - [j == target_n]) */
MHCDEF void mhc_k_crossentropy_backward(mhc_real *dlogits, const mhc_real *dlosses, const mhc_real *logits,
                                        const int *targets, int N, int V) {
    int n;
    MHC__OMP_FOR((double)N * V > MHC__PAR_WORK / 8)
    for (n = 0; n < N; n++) {
        const mhc_real *x = logits + (size_t)n * V;
        mhc_real *dx = dlogits + (size_t)n * V;
        const double g = (double)dlosses[n];
        double mx = (double)x[0], s = 0.0;
        int j;
        for (j = 1; j < V; j++) if ((double)x[j] > mx) mx = (double)x[j];
        for (j = 0; j < V; j++) s += exp((double)x[j] - mx);
        for (j = 0; j < V; j++) {
            double p = exp((double)x[j] - mx) / s;
            dx[j] += (mhc_real)(g * (p - (j == targets[n] ? 1.0 : 0.0)));
        }
    }
}

/* =========================================================================================
 * AUTOGRAD TAPE AND OPS (implementation)
 * Node recording and the checked ops: each op validates its inputs (the message names the
 * shapes), runs its kernel, and records a node whose backward (mhc__bw_*) accumulates into the
 * inputs' gradients, mostly through the kernel's backward.
 * ========================================================================================= */

/* A recorded op: its backward, its output and inputs, and what the backward needs. */
typedef void (*mhc_backward_fn)(mhc_node *node);
struct mhc_node {
    const char *op;             /* op name, for messages and profiles */
    mhc_backward_fn backward;
    mhc_tensor *out;
    mhc_tensor *in[4];
    void *saved;                /* op-specific saved values (arena memory) */
    int iarg[8];
    double farg[4];
    mhc_node *prev;             /* the tape is a linked list, newest first */
};

/* The tape is a linked list of nodes in the arena, newest first. An op:
     1. returns NULL at once if an input is NULL and the tape already failed (the first message
        stays in ctx), or records "input is NULL" if nothing failed before;
     2. validates shapes and values, recording a message that names the op and the shapes;
     3. allocates its output (and saved values) in the arena and computes the forward;
     4. records a node if some input needs a gradient and the tape is not in no-grad mode.
   Backward functions only accumulate (+=) into gradients that exist (non-NULL). */

/* tp->arena->ctx is the context; a failed op sets tp's failure flag through ctx->last. */
static mhc_tensor *mhc__op_fail(mhc_tape *tp, mhc_result r, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static mhc_tensor *mhc__op_fail(mhc_tape *tp, mhc_result r, const char *fmt, ...) {
    if (tp->ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(tp->ctx->msg, sizeof tp->ctx->msg, fmt, ap);
        va_end(ap);
        tp->ctx->last = r;
    }
    tp->failed = 1;
    return NULL;
}

/* The tape's arena still holds what the tape recorded: not freed, not reset by anyone else
   (another tape sharing it, a direct mhc_arena_reset). 0 with a message otherwise. */
static int mhc__tape_arena_ok(mhc_tape *tp, const char *op) {
    if (!tp->arena->head) {
        mhc__op_fail(tp, MHC_ERR_STATE, "%s: the tape's arena was freed (mhc_arena_free); initialise the arena and "
                     "the tape again", op);
        return 0;
    }
    if (tp->gen != tp->arena->generation) {
        mhc__op_fail(tp, MHC_ERR_STATE, "%s: the tape's arena was reset by someone else (another tape on the same "
                     "arena, or mhc_arena_reset): this tape's tensors and nodes are gone; call mhc_tape_reset on it "
                     "(an arena serves one tape at a time)", op);
        return 0;
    }
    return 1;
}

/* A tensor an op may read: 1 to MHC_MAX_DIMS dimensions of sizes >= 1 whose product is t->size,
   data present, and, for a tensor the tape made, of this tape's arena and generation. 0 with a
   message naming the op and the tensor (what) otherwise. */
static int mhc__tensor_ok(mhc_tape *tp, const char *op, const mhc_tensor *t, const char *what) {
    size_t size = 1;
    int d;
    if (t->ndim < 1 || t->ndim > MHC_MAX_DIMS) {
        mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: %s has ndim %d, expected 1 to %d (a zeroed or uninitialised tensor? "
                     "make tensors with mhc_tensor_new, mhc_tensor_wrap or a parameter store)", op, what, t->ndim,
                     MHC_MAX_DIMS);
        return 0;
    }
    for (d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 1) {
            mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: %s: dimension %d has size %d, expected >= 1", op, what, d, t->shape[d]);
            return 0;
        }
        if (!mhc__mul_ok(size, (size_t)t->shape[d], &size)) {
            mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: %s: the number of elements overflows at dimension %d", op, what, d);
            return 0;
        }
    }
    if (size != t->size) {
        char sh[64];
        mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: %s has size %zu but its shape %s holds %zu elements", op, what, t->size,
                     mhc_shape_str(t, sh, sizeof sh), size);
        return 0;
    }
    if (!t->data) {
        mhc__op_fail(tp, MHC_ERR_NULL, "%s: %s has no data (data is NULL; a parameter store before mhc_params_alloc?)",
                     op, what);
        return 0;
    }
    if (t->arena && t->arena != tp->arena) {
        mhc__op_fail(tp, MHC_ERR_STATE, "%s: %s was made on a tape of another arena; a tape's tensors are valid on that "
                     "tape only, until its next reset (mhc_tensor_wrap or a parameter store for long-lived inputs)", op,
                     what);
        return 0;
    }
    if (t->arena && t->gen != tp->gen) {
        mhc__op_fail(tp, MHC_ERR_STATE, "%s: %s was made before the tape's last reset: its memory is gone", op, what);
        return 0;
    }
    return 1;
}

/* Checks the tape and the inputs; returns 0 (and may record an error) if the op must stop. */
static int mhc__op_begin(mhc_tape *tp, const char *op, int nin, mhc_tensor *a, mhc_tensor *b) {
    if (!tp) return 0;
    if (!tp->arena) { mhc__op_fail(tp, MHC_ERR_STATE, "%s: the tape is not initialised", op); return 0; }
    if ((nin >= 1 && !a) || (nin >= 2 && !b)) {
        if (!tp->failed)
            mhc__op_fail(tp, MHC_ERR_NULL, "%s: input %s is NULL", op, (nin >= 1 && !a) ? "1" : "2");
        return 0;
    }
    if (tp->backward_done) {
        mhc__op_fail(tp, MHC_ERR_STATE, "%s: the tape was already run backward; call mhc_tape_reset first", op);
        return 0;
    }
    if (!mhc__tape_arena_ok(tp, op)) return 0;
    if (nin >= 1 && !mhc__tensor_ok(tp, op, a, nin >= 2 ? "input 1" : "the input")) return 0;
    if (nin >= 2 && !mhc__tensor_ok(tp, op, b, "input 2")) return 0;
    return 1;
}

/* An optional extra input of an op (NULL passes): mhc__tensor_ok, named what. */
static int mhc__opt_ok(mhc_tape *tp, const char *op, const mhc_tensor *t, const char *what) {
    return !t || mhc__tensor_ok(tp, op, t, what);
}

/* Marks t as made by tp (mhc_tensor.arena, .gen). */
static void mhc__tag(mhc_tape *tp, mhc_tensor *t) {
    t->arena = tp->arena;
    t->gen = tp->gen;
}

static int mhc__needs_grad(mhc_tape *tp, const mhc_tensor *t) {
    return tp && t && t->grad && !tp->no_grad;
}

/* A new arena tensor with zeroed data (and zeroed gradient when with_grad and grads are on). */
static mhc_tensor *mhc__new_tensor(mhc_tape *tp, int ndim, const int *shape, int with_grad, const char *op,
                                   int zero_data) {
    mhc_tensor *t;
    size_t size;
    int d;
    size = mhc_shape_size(tp->ctx, ndim, shape, op);
    if (size == 0) { tp->failed = 1; return NULL; }
    t = MHC__CAST(mhc_tensor *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc_tensor)));
    if (!t) { tp->failed = 1; return NULL; }
    t->ndim = ndim;
    for (d = 0; d < MHC_MAX_DIMS; d++) t->shape[d] = d < ndim ? shape[d] : 1;
    t->size = size;
    t->name = op;
    mhc__tag(tp, t);
    t->data = MHC__CAST(mhc_real *, zero_data ? mhc_arena_calloc(tp->arena, size, sizeof(mhc_real))
                                              : mhc_arena_alloc(tp->arena, size * sizeof(mhc_real)));
    if (!t->data) { tp->failed = 1; return NULL; }
    if (with_grad && !tp->no_grad) {
        t->grad = MHC__CAST(mhc_real *, mhc_arena_calloc(tp->arena, size, sizeof(mhc_real)));
        if (!t->grad) { tp->failed = 1; return NULL; }
    }
    return t;
}

/* A new arena tensor with zeroed data (and a zeroed gradient when with_grad). */
static mhc_tensor *mhc__new_like(mhc_tape *tp, int ndim, const int *shape, int with_grad, const char *op) {
    return mhc__new_tensor(tp, ndim, shape, with_grad, op, 1);
}

/* The same with the data left uninitialised, for ops whose forward writes every element of it
   (the mHC expand, pre and post steps: their [T, n, C]-sized outputs are not zeroed just to be
   overwritten). */
static mhc_tensor *mhc__new_out(mhc_tape *tp, int ndim, const int *shape, int with_grad, const char *op) {
    return mhc__new_tensor(tp, ndim, shape, with_grad, op, 0);
}

/* Records a node for out (NULL, with no error, when out has no gradient to propagate). */
static mhc_node *mhc__tape_record(mhc_tape *tp, const char *op, mhc_backward_fn bw, mhc_tensor *out) {
    mhc_node *n;
    if (!out || !out->grad || tp->no_grad) return NULL;
    n = MHC__CAST(mhc_node *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc_node)));
    if (!n) { tp->failed = 1; return NULL; }
    n->op = op;
    n->backward = bw;
    n->out = out;
    n->prev = tp->last;
    tp->last = n;
    tp->nodes++;
    return n;
}

/* Arena copy of an array (saved values: ids, targets, constants). */
static void *mhc__tape_copy(mhc_tape *tp, const void *src, size_t bytes) {
    void *p = mhc_arena_alloc(tp->arena, bytes);
    if (!p) { tp->failed = 1; return NULL; }
    memcpy(p, src, bytes);
    return p;
}

/* The last dimension of t and the product of the others (t viewed as [rows, cols]). */
static void mhc__as_2d(const mhc_tensor *t, int *rows, int *cols) {
    *cols = t->shape[t->ndim - 1];
    *rows = (int)(t->size / (size_t)*cols);
}

/* Sizes handed to the int-indexed kernels must fit in int. */
static int mhc__fits_int(mhc_tape *tp, const mhc_tensor *t, const char *op) {
    if (t->size > (size_t)0x7fffffff) {
        mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: tensor of %zu elements exceeds the kernels' int range", op, t->size);
        return 0;
    }
    return 1;
}

MHCDEF mhc_result mhc_tape_init(mhc_ctx *ctx, mhc_tape *tp, mhc_arena *arena) {
    if (!tp) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_tape_init: tape is NULL");
    memset(tp, 0, sizeof *tp);
    tp->ctx = ctx;
    if (!arena) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_tape_init: arena is NULL");
    if (!arena->head) return mhc_fail(ctx, MHC_ERR_STATE, "mhc_tape_init: the arena is not initialised");
    tp->arena = arena;
    tp->gen = arena->generation;
    return MHC_OK;
}

MHCDEF int mhc_tape_set_no_grad(mhc_tape *tp, int no_grad) {
    int old;
    if (!tp) return 0;
    old = tp->no_grad;
    tp->no_grad = no_grad ? 1 : 0;
    return old;
}

MHCDEF mhc_result mhc_tape_backward(mhc_tape *tp, mhc_tensor *loss) {
    mhc_node *n;
    if (!tp) return MHC_ERR_NULL;
    if (!tp->arena) return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: the tape is not initialised");
    if (!loss) {
        /* the first failure's message stays; if it was cleared (mhc_ctx_clear), say why again */
        if (tp->failed && tp->ctx && tp->ctx->last != MHC_OK) return tp->ctx->last;
        if (tp->failed)
            return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: loss is NULL: an op on this tape failed since "
                            "its last reset (its message was cleared); call mhc_tape_reset");
        return mhc_fail(tp->ctx, MHC_ERR_NULL, "mhc_tape_backward: loss is NULL");
    }
    if (tp->failed)
        return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: an op on this tape failed; reset it first");
    if (tp->backward_done)
        return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: already run on this tape; call mhc_tape_reset first");
    if (!mhc__tape_arena_ok(tp, "mhc_tape_backward") || !mhc__tensor_ok(tp, "mhc_tape_backward", loss, "the loss"))
        return tp->ctx ? tp->ctx->last : MHC_ERR_STATE;
    if (loss->size != 1) {
        char s[64];
        return mhc_fail(tp->ctx, MHC_ERR_SHAPE, "mhc_tape_backward: loss has shape %s, expected one element",
                        mhc_shape_str(loss, s, sizeof s));
    }
    if (!loss->grad)
        return mhc_fail(tp->ctx, MHC_ERR_STATE,
                        "mhc_tape_backward: the loss needs no gradient (no input has one, or no-grad mode is on)");
    loss->grad[0] += 1;
    for (n = tp->last; n; n = n->prev) n->backward(n);
    tp->backward_done = 1;
    return MHC_OK;
}

MHCDEF mhc_result mhc_tape_reset(mhc_tape *tp) {
    int k;
    mhc_result r;
    if (!tp) return MHC_ERR_NULL;
    if (!tp->arena) return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_reset: the tape is not initialised");
    tp->last = NULL;
    tp->nodes = 0;
    tp->backward_done = 0;
    tp->failed = 0;
    for (k = 0; k < MHC_TAPE_EXT_COUNT; k++) tp->ext[k].step = NULL;
    r = mhc_arena_reset(tp->arena);
    tp->gen = tp->arena->generation;
    return r;
}

MHCDEF void mhc_tape_free(mhc_tape *tp) {
    int k;
    if (!tp) return;
    tp->last = NULL;
    tp->nodes = 0;
    for (k = 0; k < MHC_TAPE_EXT_COUNT; k++) tp->ext[k].step = NULL;
    tp->arena = NULL;
}

MHCDEF mhc_result mhc_tensor_wrap(mhc_ctx *ctx, mhc_tensor *t, mhc_real *data, mhc_real *grad, int ndim,
                                  const int *shape) {
    size_t size;
    int d;
    if (!t) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_tensor_wrap: tensor is NULL");
    if (!data) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_tensor_wrap: data is NULL");
    size = mhc_shape_size(ctx, ndim, shape, "mhc_tensor_wrap");
    if (size == 0) return ctx ? ctx->last : MHC_ERR_SIZE;
    memset(t, 0, sizeof *t);
    t->data = data;
    t->grad = grad;
    t->ndim = ndim;
    for (d = 0; d < MHC_MAX_DIMS; d++) t->shape[d] = d < ndim ? shape[d] : 1;
    t->size = size;
    return MHC_OK;
}

MHCDEF mhc_tensor *mhc_tensor_new(mhc_tape *tp, int ndim, const int *shape, int with_grad) {
    if (!mhc__op_begin(tp, "mhc_tensor_new", 0, NULL, NULL)) return NULL;
    return mhc__new_like(tp, ndim, shape, with_grad, "mhc_tensor_new");
}

MHCDEF mhc_tensor *mhc_view(mhc_tape *tp, mhc_tensor *t, int ndim, const int *shape) {
    mhc_tensor *v;
    size_t size;
    int d;
    char s[64];
    if (!mhc__op_begin(tp, "mhc_view", 1, t, NULL)) return NULL;
    size = mhc_shape_size(tp->ctx, ndim, shape, "mhc_view");
    if (size == 0) { tp->failed = 1; return NULL; }
    if (size != t->size)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_view: cannot view %s (%zu elements) with %zu elements",
                            mhc_shape_str(t, s, sizeof s), t->size, size);
    v = MHC__CAST(mhc_tensor *, mhc__tape_copy(tp, t, sizeof *t));
    if (!v) return NULL;
    v->ndim = ndim;
    for (d = 0; d < MHC_MAX_DIMS; d++) v->shape[d] = d < ndim ? shape[d] : 1;
    if (tp->no_grad) v->grad = NULL;
    return v;
}

/* ---- matmul ---------------------------------------------------------------------------- */

static void mhc__bw_matmul_ab(mhc_node *n) {   /* out = a b:  da += dout b^T,  db += a^T dout */
    mhc_tensor *a = n->in[0], *b = n->in[1], *o = n->out;
    int M = n->iarg[0], K = n->iarg[1], N = n->iarg[2];
    if (a->grad) mhc_k_matmul_abt(a->grad, o->grad, b->data, M, N, K, 1);
    if (b->grad) mhc_k_matmul_atb(b->grad, a->data, o->grad, K, M, N, 1);
}

static void mhc__bw_matmul_abt(mhc_node *n) {  /* out = a b^T:  da += dout b,  db += dout^T a */
    mhc_tensor *a = n->in[0], *b = n->in[1], *o = n->out;
    int M = n->iarg[0], K = n->iarg[1], N = n->iarg[2];
    if (a->grad) mhc_k_matmul_ab(a->grad, o->grad, b->data, M, N, K, 1);
    if (b->grad) mhc_k_matmul_atb(b->grad, o->grad, a->data, N, M, K, 1);
}

static mhc_tensor *mhc__matmul(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b, int transpose_b) {
    const char *op = transpose_b ? "mhc_matmul_abt" : "mhc_matmul_ab";
    int M, K, N, shape[MHC_MAX_DIMS], d;
    mhc_tensor *out;
    mhc_node *n;
    char sa[64], sb[64];
    if (!mhc__op_begin(tp, op, 2, a, b)) return NULL;
    if (b->ndim != 2)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: b has shape %s, expected 2 dimensions", op,
                            mhc_shape_str(b, sb, sizeof sb));
    if (!mhc__fits_int(tp, a, op) || !mhc__fits_int(tp, b, op)) return NULL;
    mhc__as_2d(a, &M, &K);
    if ((transpose_b ? b->shape[1] : b->shape[0]) != K)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: a is %s and b is %s; the inner dimensions differ (%d vs %d)",
                            op, mhc_shape_str(a, sa, sizeof sa), mhc_shape_str(b, sb, sizeof sb), K,
                            transpose_b ? b->shape[1] : b->shape[0]);
    N = transpose_b ? b->shape[0] : b->shape[1];
    for (d = 0; d < a->ndim; d++) shape[d] = a->shape[d];
    shape[a->ndim - 1] = N;
    out = mhc__new_out(tp, a->ndim, shape, mhc__needs_grad(tp, a) || mhc__needs_grad(tp, b), op);  /* acc = 0: all written */
    if (!out) return NULL;
    if (transpose_b) mhc_k_matmul_abt(out->data, a->data, b->data, M, K, N, 0);
    else mhc_k_matmul_ab(out->data, a->data, b->data, M, K, N, 0);
    n = mhc__tape_record(tp, op, transpose_b ? mhc__bw_matmul_abt : mhc__bw_matmul_ab, out);
    if (n) { n->in[0] = a; n->in[1] = b; n->iarg[0] = M; n->iarg[1] = K; n->iarg[2] = N; }
    return tp->failed ? NULL : out;
}

MHCDEF mhc_tensor *mhc_matmul_ab(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b) { return mhc__matmul(tp, a, b, 0); }
MHCDEF mhc_tensor *mhc_matmul_abt(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b) { return mhc__matmul(tp, a, b, 1); }

/* ---- add, mul, scale ------------------------------------------------------------------- */

#define MHC__EW_CHUNK 16384   /* elements per parallel block of mhc_k_add when b does not repeat */
MHCDEF void mhc_k_add(mhc_real *out, const mhc_real *a, const mhc_real *b, size_t n, size_t nb) {
    /* blocks: the rows of b when it repeats (nb < n), else chunks; b's index restarts per block */
    size_t D, nblk;
    long r;
    if (nb < 1) return;
    D = nb < n ? nb : MHC__EW_CHUNK;
    nblk = (n + D - 1) / D;
    MHC__OMP_FOR(n > (size_t)MHC__PAR_WORK && nblk > 1)
    for (r = 0; r < (long)nblk; r++) {
        const size_t lo = (size_t)r * D, len = n - lo < D ? n - lo : D;
        const mhc_real *x = a + lo, *y = nb < n ? b : b + lo;
        mhc_real *z = out + lo;
        size_t j;
        for (j = 0; j < len; j++) z[j] = x[j] + y[j];
    }
}

static void mhc__bw_add(mhc_node *n) {   /* da += dout;  db += dout (summed over rows when broadcast) */
    mhc_tensor *a = n->in[0], *b = n->in[1], *o = n->out;
    if (a->grad) mhc_k_add(a->grad, a->grad, o->grad, o->size, o->size);
    if (b->grad) {
        if (n->iarg[0]) {   /* broadcast bias: rows x D; each column summed over the rows in row order,
                               columns in parallel blocks of MHC__COL_BLOCK (the same bits for any thread count) */
            const size_t D = b->size, rows = o->size / D;
            const long nb = (long)((D + MHC__COL_BLOCK - 1) / MHC__COL_BLOCK);
            long cb;
            MHC__OMP_FOR(o->size > (size_t)MHC__PAR_WORK && nb > 1)
            for (cb = 0; cb < nb; cb++) {
                const size_t lo = (size_t)cb * MHC__COL_BLOCK, hi = D - lo < MHC__COL_BLOCK ? D : lo + MHC__COL_BLOCK;
                mhc_real *g = b->grad;
                size_t r, i;
                for (r = 0; r < rows; r++) {
                    const mhc_real *og = o->grad + r * D;
                    for (i = lo; i < hi; i++) g[i] += og[i];
                }
            }
        } else {
            mhc_k_add(b->grad, b->grad, o->grad, o->size, o->size);
        }
    }
}

MHCDEF mhc_tensor *mhc_add(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b) {
    mhc_tensor *out;
    mhc_node *n;
    int bcast;
    char sa[64], sb[64];
    if (!mhc__op_begin(tp, "mhc_add", 2, a, b)) return NULL;
    bcast = !mhc_tensor_same_shape(a, b);
    if (bcast && !(b->ndim == 1 && b->shape[0] == a->shape[a->ndim - 1]))
        return mhc__op_fail(tp, MHC_ERR_SHAPE,
                            "mhc_add: a is %s and b is %s; expected equal shapes or b = [last dim of a]",
                            mhc_shape_str(a, sa, sizeof sa), mhc_shape_str(b, sb, sizeof sb));
    out = mhc__new_out(tp, a->ndim, a->shape, mhc__needs_grad(tp, a) || mhc__needs_grad(tp, b), "mhc_add");
    if (!out) return NULL;
    mhc_k_add(out->data, a->data, b->data, a->size, b->size);   /* every element written */
    n = mhc__tape_record(tp, "mhc_add", mhc__bw_add, out);
    if (n) { n->in[0] = a; n->in[1] = b; n->iarg[0] = bcast; }
    return tp->failed ? NULL : out;
}

static void mhc__bw_mul(mhc_node *n) {   /* da += dout b;  db += dout a */
    mhc_tensor *a = n->in[0], *b = n->in[1], *o = n->out;
    size_t i;
    if (a->grad) for (i = 0; i < o->size; i++) a->grad[i] += o->grad[i] * b->data[i];
    if (b->grad) for (i = 0; i < o->size; i++) b->grad[i] += o->grad[i] * a->data[i];
}

MHCDEF mhc_tensor *mhc_mul(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b) {
    mhc_tensor *out;
    mhc_node *n;
    size_t i;
    char sa[64], sb[64];
    if (!mhc__op_begin(tp, "mhc_mul", 2, a, b)) return NULL;
    if (!mhc_tensor_same_shape(a, b))
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_mul: a is %s and b is %s; expected equal shapes",
                            mhc_shape_str(a, sa, sizeof sa), mhc_shape_str(b, sb, sizeof sb));
    out = mhc__new_like(tp, a->ndim, a->shape, mhc__needs_grad(tp, a) || mhc__needs_grad(tp, b), "mhc_mul");
    if (!out) return NULL;
    for (i = 0; i < a->size; i++) out->data[i] = a->data[i] * b->data[i];
    n = mhc__tape_record(tp, "mhc_mul", mhc__bw_mul, out);
    if (n) { n->in[0] = a; n->in[1] = b; }
    return tp->failed ? NULL : out;
}

static void mhc__bw_scale(mhc_node *n) {   /* da += s dout */
    size_t i;
    const mhc_real s = (mhc_real)n->farg[0];
    for (i = 0; i < n->out->size; i++) n->in[0]->grad[i] += s * n->out->grad[i];
}

MHCDEF mhc_tensor *mhc_scale(mhc_tape *tp, mhc_tensor *a, double s) {
    mhc_tensor *out;
    mhc_node *n;
    size_t i;
    if (!mhc__op_begin(tp, "mhc_scale", 1, a, NULL)) return NULL;
    if (!mhc__finite(s)) return mhc__op_fail(tp, MHC_ERR_NONFINITE, "mhc_scale: the factor is %g; expected a finite number", s);
    out = mhc__new_like(tp, a->ndim, a->shape, mhc__needs_grad(tp, a), "mhc_scale");
    if (!out) return NULL;
    for (i = 0; i < a->size; i++) out->data[i] = (mhc_real)s * a->data[i];
    n = mhc__tape_record(tp, "mhc_scale", mhc__bw_scale, out);
    if (n) { n->in[0] = a; n->farg[0] = s; }
    return tp->failed ? NULL : out;
}

/* ---- rmsnorm --------------------------------------------------------------------------- */

static void mhc__bw_rmsnorm(mhc_node *n) {   /* dx += r w dy - x r^3/D sum(dy w x);  dw += sum_rows dy x r */
    mhc_tensor *x = n->in[0], *w = n->in[1];
    mhc_k_rmsnorm_backward(x->grad, w ? w->grad : NULL, n->out->grad, x->data, w ? w->data : NULL,
                           MHC__CAST(const mhc_real *, n->saved), n->iarg[0], n->iarg[1]);
}

MHCDEF mhc_tensor *mhc_rmsnorm(mhc_tape *tp, mhc_tensor *x, mhc_tensor *w, double eps) {
    mhc_tensor *out;
    mhc_node *n;
    mhc_real *rstd;
    int N, D;
    char sx[64], sw[64];
    if (!mhc__op_begin(tp, "mhc_rmsnorm", 1, x, NULL)) return NULL;
    if (!mhc__opt_ok(tp, "mhc_rmsnorm", w, "the weight")) return NULL;
    if (!mhc__fits_int(tp, x, "mhc_rmsnorm")) return NULL;
    mhc__as_2d(x, &N, &D);
    if (w && !(w->ndim == 1 && w->shape[0] == D))
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_rmsnorm: x is %s and the weight is %s; expected weight [%d]",
                            mhc_shape_str(x, sx, sizeof sx), mhc_shape_str(w, sw, sizeof sw), D);
    if (!mhc__finite(eps) || !(eps >= 0))
        return mhc__op_fail(tp, MHC_ERR_VALUE, "mhc_rmsnorm: eps is %g, expected a finite value >= 0", eps);
    out = mhc__new_like(tp, x->ndim, x->shape, mhc__needs_grad(tp, x) || mhc__needs_grad(tp, w), "mhc_rmsnorm");
    if (!out) return NULL;
    rstd = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, (size_t)N * sizeof(mhc_real)));
    if (!rstd) { tp->failed = 1; return NULL; }
    mhc_k_rmsnorm_forward(out->data, rstd, x->data, w ? w->data : NULL, N, D, eps);
    n = mhc__tape_record(tp, "mhc_rmsnorm", mhc__bw_rmsnorm, out);
    if (n) { n->in[0] = x; n->in[1] = w; n->saved = rstd; n->iarg[0] = N; n->iarg[1] = D; }
    return tp->failed ? NULL : out;
}

/* ---- activations, softmax -------------------------------------------------------------- */

static void mhc__bw_act(mhc_node *n) {   /* dx += f'(x) dout */
    mhc_k_act_backward((mhc_act)n->iarg[0], n->in[0]->grad, n->out->grad, n->in[0]->data, n->out->size);
}

MHCDEF mhc_tensor *mhc_activation(mhc_tape *tp, mhc_act act, mhc_tensor *x) {
    mhc_tensor *out;
    mhc_node *n;
    if (!mhc__op_begin(tp, "mhc_activation", 1, x, NULL)) return NULL;
    if ((int)act < (int)MHC_ACT_SIGMOID || (int)act > (int)MHC_ACT_SILU)
        return mhc__op_fail(tp, MHC_ERR_VALUE, "mhc_activation: unknown activation %d", (int)act);
    out = mhc__new_like(tp, x->ndim, x->shape, mhc__needs_grad(tp, x), "mhc_activation");
    if (!out) return NULL;
    mhc_k_act_forward(act, out->data, x->data, x->size);
    n = mhc__tape_record(tp, "mhc_activation", mhc__bw_act, out);
    if (n) { n->in[0] = x; n->iarg[0] = (int)act; }
    return tp->failed ? NULL : out;
}

MHCDEF mhc_tensor *mhc_sigmoid(mhc_tape *tp, mhc_tensor *x) { return mhc_activation(tp, MHC_ACT_SIGMOID, x); }
MHCDEF mhc_tensor *mhc_tanh(mhc_tape *tp, mhc_tensor *x) { return mhc_activation(tp, MHC_ACT_TANH, x); }
MHCDEF mhc_tensor *mhc_gelu(mhc_tape *tp, mhc_tensor *x) { return mhc_activation(tp, MHC_ACT_GELU, x); }
MHCDEF mhc_tensor *mhc_silu(mhc_tape *tp, mhc_tensor *x) { return mhc_activation(tp, MHC_ACT_SILU, x); }

static void mhc__bw_softmax(mhc_node *n) {   /* dx += y (dout - sum(dout y)) per row */
    mhc_k_softmax_backward(n->in[0]->grad, n->out->grad, n->out->data, n->iarg[0], n->iarg[1]);
}

MHCDEF mhc_tensor *mhc_softmax(mhc_tape *tp, mhc_tensor *x) {
    mhc_tensor *out;
    mhc_node *n;
    int N, D;
    if (!mhc__op_begin(tp, "mhc_softmax", 1, x, NULL)) return NULL;
    if (!mhc__fits_int(tp, x, "mhc_softmax")) return NULL;
    mhc__as_2d(x, &N, &D);
    out = mhc__new_like(tp, x->ndim, x->shape, mhc__needs_grad(tp, x), "mhc_softmax");
    if (!out) return NULL;
    mhc_k_softmax_forward(out->data, x->data, N, D);
    n = mhc__tape_record(tp, "mhc_softmax", mhc__bw_softmax, out);
    if (n) { n->in[0] = x; n->iarg[0] = N; n->iarg[1] = D; }
    return tp->failed ? NULL : out;
}

/* ---- embedding ------------------------------------------------------------------------- */

static void mhc__bw_embedding(mhc_node *n) {   /* dtable[ids[t]] += dout[t] */
    mhc_k_embedding_backward(n->in[0]->grad, n->out->grad, MHC__CAST(const int *, n->saved), n->iarg[0], n->iarg[1]);
}

MHCDEF mhc_tensor *mhc_embedding(mhc_tape *tp, mhc_tensor *table, const int *ids, int T) {
    mhc_tensor *out;
    mhc_node *n;
    int *saved, t, shape[2];
    char s[64];
    if (!mhc__op_begin(tp, "mhc_embedding", 1, table, NULL)) return NULL;
    if (!ids) return mhc__op_fail(tp, MHC_ERR_NULL, "mhc_embedding: ids is NULL");
    if (T < 1) return mhc__op_fail(tp, MHC_ERR_SIZE, "mhc_embedding: T is %d, expected >= 1", T);
    if (table->ndim != 2)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_embedding: table has shape %s, expected [V,D]",
                            mhc_shape_str(table, s, sizeof s));
    for (t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= table->shape[0])
            return mhc__op_fail(tp, MHC_ERR_VALUE, "mhc_embedding: ids[%d] = %d is outside [0, %d)", t, ids[t],
                                table->shape[0]);
    shape[0] = T;
    shape[1] = table->shape[1];
    out = mhc__new_like(tp, 2, shape, mhc__needs_grad(tp, table), "mhc_embedding");
    if (!out) return NULL;
    mhc_k_embedding_forward(out->data, ids, table->data, T, shape[1]);
    n = mhc__tape_record(tp, "mhc_embedding", mhc__bw_embedding, out);
    if (n) {
        saved = MHC__CAST(int *, mhc__tape_copy(tp, ids, (size_t)T * sizeof(int)));
        n->in[0] = table; n->saved = saved; n->iarg[0] = T; n->iarg[1] = shape[1];
    }
    return tp->failed ? NULL : out;
}

/* ---- attention ------------------------------------------------------------------------- */

/* saved: the stats [B,H,T,2] of the flash kernels, then iarg[4] work slots of mhc_k_attention_work(T) */
static void mhc__bw_attention(mhc_node *n) {   /* dqkv from dout through softmax(q k^T / sqrt(hs)) v */
    mhc_real *stats = MHC__CAST(mhc_real *, n->saved);
    const size_t nst = (size_t)n->iarg[0] * (size_t)n->iarg[3] * (size_t)n->iarg[1] * 2;
    mhc_k_attention_flash_backward(n->in[0]->grad, n->out->grad, n->out->data, stats, n->in[0]->data, n->iarg[0],
                                   n->iarg[1], n->iarg[2], n->iarg[3], stats + nst, n->iarg[4]);
}

MHCDEF mhc_tensor *mhc_attention(mhc_tape *tp, mhc_tensor *qkv, int B, int T, int H) {
    mhc_tensor *out;
    mhc_node *n;
    mhc_real *saved;
    int C3, C, shape[3], nslots = 1;
    size_t nst, nwork;
    char s[64];
    if (!mhc__op_begin(tp, "mhc_attention", 1, qkv, NULL)) return NULL;
    if (B < 1 || T < 1 || H < 1)
        return mhc__op_fail(tp, MHC_ERR_SIZE, "mhc_attention: B=%d T=%d H=%d, expected all >= 1", B, T, H);
    if (!mhc__fits_int(tp, qkv, "mhc_attention")) return NULL;
    C3 = qkv->shape[qkv->ndim - 1];
    if (C3 % 3 != 0 || qkv->size != (size_t)B * (size_t)T * (size_t)C3)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_attention: qkv has shape %s, expected [B*T=%lld, 3C] or [%d,%d,3C]",
                            mhc_shape_str(qkv, s, sizeof s), (long long)B * T, B, T);
    C = C3 / 3;
    if (C % H != 0)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_attention: %d heads do not divide the width C=%d", H, C);
#if MHC__OMP
    nslots = omp_get_max_threads();
    if (nslots < 1) nslots = 1;
#endif
    /* saved: stats [B,H,T,2] and nslots work slots (the scratch of the forward and the backward) */
    if (!mhc__mul_ok((size_t)B * H, (size_t)T * 2, &nst) || !mhc__mul_ok((size_t)nslots, mhc_k_attention_work(T), &nwork) ||
        nst > (size_t)0x7fffffff || nwork > (size_t)0x7fffffff || nst + nwork > SIZE_MAX / sizeof(mhc_real))
        return mhc__op_fail(tp, MHC_ERR_OVERFLOW, "mhc_attention: the scratch of B=%d H=%d T=%d overflows", B, H, T);
    if (qkv->ndim == 3) { shape[0] = B; shape[1] = T; shape[2] = C; }
    else { shape[0] = B * T; shape[1] = C; }
    out = mhc__new_like(tp, qkv->ndim == 3 ? 3 : 2, shape, mhc__needs_grad(tp, qkv), "mhc_attention");
    if (!out) return NULL;
    saved = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, (nst + nwork) * sizeof(mhc_real)));
    if (!saved) { tp->failed = 1; return NULL; }
    mhc_k_attention_flash_forward(out->data, saved, qkv->data, B, T, C, H, saved + nst, nslots);
    n = mhc__tape_record(tp, "mhc_attention", mhc__bw_attention, out);
    if (n) {
        n->in[0] = qkv; n->saved = saved;
        n->iarg[0] = B; n->iarg[1] = T; n->iarg[2] = C; n->iarg[3] = H; n->iarg[4] = nslots;
    }
    return tp->failed ? NULL : out;
}

/* ---- cross-entropy and reductions ------------------------------------------------------ */

static void mhc__bw_cross_entropy(mhc_node *n) {   /* mean over rows: dloss_n = dout / N */
    const int N = n->iarg[0], V = n->iarg[1];
    mhc_real *dl = MHC__CAST(mhc_real *, n->saved);   /* N reals of scratch saved by the forward */
    const int *targets = MHC__CAST(const int *, (const void *)(dl + N));
    int i;
    for (i = 0; i < N; i++) dl[i] = (mhc_real)((double)n->out->grad[0] / N);
    mhc_k_crossentropy_backward(n->in[0]->grad, dl, n->in[0]->data, targets, N, V);
}

MHCDEF mhc_tensor *mhc_cross_entropy(mhc_tape *tp, mhc_tensor *logits, const int *targets) {
    mhc_tensor *out;
    mhc_node *n;
    mhc_real *losses;
    int N, V, i, one = 1;
    double s = 0.0;
    if (!mhc__op_begin(tp, "mhc_cross_entropy", 1, logits, NULL)) return NULL;
    if (!targets) return mhc__op_fail(tp, MHC_ERR_NULL, "mhc_cross_entropy: targets is NULL");
    if (!mhc__fits_int(tp, logits, "mhc_cross_entropy")) return NULL;
    mhc__as_2d(logits, &N, &V);
    for (i = 0; i < N; i++)
        if (targets[i] < 0 || targets[i] >= V)
            return mhc__op_fail(tp, MHC_ERR_VALUE, "mhc_cross_entropy: targets[%d] = %d is outside [0, %d)", i,
                                targets[i], V);
    out = mhc__new_like(tp, 1, &one, mhc__needs_grad(tp, logits), "mhc_cross_entropy");
    if (!out) return NULL;
    /* N losses, then (in the backward) reused as N dloss values, then the N targets */
    losses = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, (size_t)N * (sizeof(mhc_real) + sizeof(int))));
    if (!losses) { tp->failed = 1; return NULL; }
    memcpy((void *)(losses + N), targets, (size_t)N * sizeof(int));
    mhc_k_crossentropy_forward(losses, logits->data, targets, N, V);
    for (i = 0; i < N; i++) s += (double)losses[i];
    out->data[0] = (mhc_real)(s / N);
    n = mhc__tape_record(tp, "mhc_cross_entropy", mhc__bw_cross_entropy, out);
    if (n) { n->in[0] = logits; n->saved = losses; n->iarg[0] = N; n->iarg[1] = V; }
    return tp->failed ? NULL : out;
}

static void mhc__bw_reduce(mhc_node *n) {   /* sum: dx += dout;  mean: dx += dout / size;  dot: dx += dout w */
    mhc_tensor *x = n->in[0];
    const mhc_real *w = MHC__CAST(const mhc_real *, n->saved);
    const double g = (double)n->out->grad[0] * n->farg[0];
    size_t i;
    for (i = 0; i < x->size; i++) x->grad[i] += (mhc_real)(w ? g * (double)w[i] : g);
}

static mhc_tensor *mhc__reduce(mhc_tape *tp, mhc_tensor *x, const mhc_real *w, int mean, const char *op) {
    mhc_tensor *out;
    mhc_node *n;
    double s = 0.0;
    size_t i;
    int one = 1;
    if (!mhc__op_begin(tp, op, 1, x, NULL)) return NULL;
    if (w == NULL && mean < 0) return mhc__op_fail(tp, MHC_ERR_NULL, "%s: the weights are NULL", op);
    out = mhc__new_like(tp, 1, &one, mhc__needs_grad(tp, x), op);
    if (!out) return NULL;
    for (i = 0; i < x->size; i++) s += w ? (double)x->data[i] * (double)w[i] : (double)x->data[i];
    out->data[0] = (mhc_real)(mean > 0 ? s / (double)x->size : s);
    n = mhc__tape_record(tp, op, mhc__bw_reduce, out);
    if (n) {
        n->in[0] = x;
        n->farg[0] = mean > 0 ? 1.0 / (double)x->size : 1.0;
        if (w) n->saved = mhc__tape_copy(tp, w, x->size * sizeof(mhc_real));
    }
    return tp->failed ? NULL : out;
}

MHCDEF mhc_tensor *mhc_sum(mhc_tape *tp, mhc_tensor *x) { return mhc__reduce(tp, x, NULL, 0, "mhc_sum"); }
MHCDEF mhc_tensor *mhc_mean(mhc_tape *tp, mhc_tensor *x) { return mhc__reduce(tp, x, NULL, 1, "mhc_mean"); }
MHCDEF mhc_tensor *mhc_dot_const(mhc_tape *tp, mhc_tensor *x, const mhc_real *w) {
    return mhc__reduce(tp, x, w, -1, "mhc_dot_const");
}

/* =========================================================================================
 * GRADIENT CHECKER (implementation)
 * Central differences of the loss (evaluated in no-grad mode) against the tape's gradients,
 * per element and along one random direction through all inputs at once.
 * ========================================================================================= */

/* Evaluate the loss without recording (no-grad): used for the finite differences. */
static mhc_result mhc__gc_eval(mhc_tape *tp, mhc_loss_fn fn, mhc_tensor **inputs, int ninputs, void *user,
                               double *loss) {
    mhc_tensor *l;
    int old = mhc_tape_set_no_grad(tp, 1);
    mhc_result r = MHC_OK;
    l = fn(tp, inputs, ninputs, user);
    if (!l) r = mhc_fail(tp->ctx, tp->ctx && tp->ctx->last ? tp->ctx->last : MHC_ERR_STATE,
                         "mhc_gradcheck: the loss function failed: %s", tp->ctx ? tp->ctx->msg : "");
    else if (l->size != 1) r = mhc_fail(tp->ctx, MHC_ERR_SHAPE, "mhc_gradcheck: the loss has %zu elements, expected 1", l->size);
    else *loss = (double)l->data[0];
    mhc_tape_set_no_grad(tp, old);
    if (r == MHC_OK) r = mhc_tape_reset(tp);
    else mhc_tape_reset(tp);
    return r;
}

MHCDEF mhc_result mhc_gradcheck(mhc_tape *tp, mhc_loss_fn fn, mhc_tensor **inputs, int ninputs, void *user,
                                double h, double floor, uint64_t seed, mhc_gradcheck_result *res) {
    mhc_ctx *ctx;
    mhc_real **analytic = NULL, **dir = NULL;
    mhc_tensor *loss;
    mhc_rng rng;
    mhc_result r = MHC_OK;
    double dd_analytic = 0.0, lp, lm;
    int i;
    size_t j;
    if (!tp) return MHC_ERR_NULL;
    ctx = tp->ctx;
    if (!fn || !inputs || !res) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_gradcheck: fn, inputs or res is NULL");
    if (ninputs < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_gradcheck: %d inputs, expected >= 1", ninputs);
    if (!(h > 0) || !(floor > 0))
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_gradcheck: h = %g and floor = %g must be > 0", h, floor);
    for (i = 0; i < ninputs; i++)
        if (!inputs[i] || !inputs[i]->data || !inputs[i]->grad)
            return mhc_fail(ctx, MHC_ERR_NULL, "mhc_gradcheck: input %d is NULL or has no data/grad", i);
        else if (inputs[i]->arena)
            return mhc_fail(ctx, MHC_ERR_STATE, "mhc_gradcheck: input %d was made on a tape; the checker resets tp "
                            "between evaluations, so inputs must outlive it (mhc_tensor_wrap or a parameter store)", i);
    memset(res, 0, sizeof *res);
    res->worst_input = res->worst_index = -1;
    analytic = MHC__CAST(mhc_real **, MHC_MALLOC((size_t)ninputs * sizeof(mhc_real *)));
    if (analytic) for (i = 0; i < ninputs; i++) analytic[i] = NULL;
    dir = MHC__CAST(mhc_real **, MHC_MALLOC((size_t)ninputs * sizeof(mhc_real *)));
    if (dir) for (i = 0; i < ninputs; i++) dir[i] = NULL;
    if (!analytic || !dir) { r = mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_gradcheck: out of memory"); goto done; }
    /* 1. analytic gradients */
    mhc_tape_reset(tp);
    for (i = 0; i < ninputs; i++) memset(inputs[i]->grad, 0, inputs[i]->size * sizeof(mhc_real));
    loss = fn(tp, inputs, ninputs, user);
    r = mhc_tape_backward(tp, loss);
    mhc_tape_reset(tp);
    if (r != MHC_OK) goto done;
    mhc_rng_seed(&rng, seed);
    for (i = 0; i < ninputs; i++) {
        size_t bytes = inputs[i]->size * sizeof(mhc_real);
        analytic[i] = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
        dir[i] = MHC__CAST(mhc_real *, MHC_MALLOC(bytes));
        if (!analytic[i] || !dir[i]) { r = mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_gradcheck: out of memory"); goto done; }
        memcpy(analytic[i], inputs[i]->grad, bytes);
        mhc_rng_fill_normal(&rng, dir[i], inputs[i]->size, 0.0, 1.0);
        for (j = 0; j < inputs[i]->size; j++) dd_analytic += (double)analytic[i][j] * (double)dir[i][j];
    }
    /* 2. element by element */
    for (i = 0; i < ninputs; i++) {
        for (j = 0; j < inputs[i]->size; j++) {
            mhc_real *x = inputs[i]->data + j, x0 = *x;
            double num, a, err, rel;
            *x = (mhc_real)(x0 + h);
            r = mhc__gc_eval(tp, fn, inputs, ninputs, user, &lp);
            *x = (mhc_real)(x0 - h);
            if (r == MHC_OK) r = mhc__gc_eval(tp, fn, inputs, ninputs, user, &lm);
            *x = x0;
            if (r != MHC_OK) goto done;
            res->evaluations += 2;
            num = (lp - lm) / (2.0 * h);
            a = (double)analytic[i][j];
            err = fabs(a - num);
            rel = err / fmax(floor, fmax(fabs(a), fabs(num)));
            if (!(err <= res->max_abs_err)) res->max_abs_err = err;
            if (!(rel <= res->max_rel_err)) { res->max_rel_err = rel; res->worst_input = i; res->worst_index = (int)j; }
        }
    }
    /* 3. one random direction over all inputs at once */
    {
        double num;
        int pass;
        for (pass = 0; pass < 2 && r == MHC_OK; pass++) {
            double sgn = pass == 0 ? h : -h;
            for (i = 0; i < ninputs; i++)
                for (j = 0; j < inputs[i]->size; j++)
                    inputs[i]->data[j] = (mhc_real)((double)inputs[i]->data[j] + sgn * (double)dir[i][j]);
            r = mhc__gc_eval(tp, fn, inputs, ninputs, user, pass == 0 ? &lp : &lm);
            for (i = 0; i < ninputs; i++)
                for (j = 0; j < inputs[i]->size; j++)
                    inputs[i]->data[j] = (mhc_real)((double)inputs[i]->data[j] - sgn * (double)dir[i][j]);
        }
        if (r != MHC_OK) goto done;
        res->evaluations += 2;
        num = (lp - lm) / (2.0 * h);
        res->dir_rel_err = fabs(num - dd_analytic) / fmax(floor, fmax(fabs(num), fabs(dd_analytic)));
    }
    /* leave the analytic gradient in the inputs */
    for (i = 0; i < ninputs; i++) memcpy(inputs[i]->grad, analytic[i], inputs[i]->size * sizeof(mhc_real));
done:
    if (analytic) for (i = 0; i < ninputs; i++) MHC_FREE(analytic[i]);
    if (dir) for (i = 0; i < ninputs; i++) MHC_FREE(dir[i]);
    MHC_FREE(analytic);
    MHC_FREE(dir);
    return r;
}

/* =========================================================================================
 * HYPER-CONNECTIONS (mHC) (implementation)
 * Names and config resolution; then the layer twice. First the plain references
 * (mhc_ref_hc_*): one token at a time, each step of MHC_SPEC.md a loop in double, calling the
 * per-token projection (mhc__proj_fwd / mhc__proj_bwd: forward fills the iterates into a
 * scratch, backward recomputes them and runs the exact reverse of each step; block "SHARED
 * WITH THE CUDA UNIT"). Then the fast path, which computes the same numbers: the projection of
 * 8 tokens at a time in SIMD lanes, the fused pre/head kernels (mHC, lite, HC, none) with the
 * logits GEMM over all tokens, over chunks of tokens, one chunk per thread, each with its own
 * scratch; token reductions (d_fn, d_base, ...) over the axis that owns the output, in a fixed
 * token order (bitwise identical for any thread count).
 * ========================================================================================= */

static const char *const mhc__preset_names[MHC_PRESET_COUNT] = {"dsv4", "tilekernels", "paper", "lite", "kromhc",
                                                                 "ortho", "megatron", "liger", "lucidrains",
                                                                 "mhc_cu"};
static const char *const mhc__variant_names[MHC_VARIANT_COUNT] = {"preset", "none", "hc", "mhc", "lite", "kromhc",
                                                                  "ortho"};
static const char *const mhc__proj_names[MHC_PROJ_COUNT] = {"preset", "softmax", "exp", "log", "perm", "kron", "ortho"};
static const char *const mhc__orient_names[MHC_ORIENT_COUNT] = {"preset", "h", "comb_t"};
static const char *const mhc__norm_eps_mode_names[MHC_NORM_EPS_COUNT] = {"preset", "inside", "outside"};
static const char *const mhc__norm_scope_names[MHC_NORM_SCOPE_COUNT] = {"preset", "flat", "stream"};
static const char *const mhc__sk_eps_names[MHC_SK_EPS_COUNT] = {"preset", "add", "clamp", "threshold", "zero"};
static const char *const mhc__sk_order_names[MHC_SK_ORDER_COUNT] = {"preset", "col_first", "row_first"};
static const char *const mhc__exp_shift_names[MHC_EXP_SHIFT_COUNT] = {"preset", "none", "row_max", "col_max"};

MHCDEF const char *mhc_hc_preset_name(mhc_hc_preset p) {
    return ((int)p >= 0 && p < MHC_PRESET_COUNT) ? mhc__preset_names[p] : "?";
}
MHCDEF const char *mhc_hc_variant_name(mhc_hc_variant v) {
    return ((int)v >= 0 && v < MHC_VARIANT_COUNT) ? mhc__variant_names[v] : "?";
}
MHCDEF const char *mhc_projection_name(mhc_projection p) {
    return ((int)p >= 0 && p < MHC_PROJ_COUNT) ? mhc__proj_names[p] : "?";
}
MHCDEF const char *mhc_orient_name(mhc_orient o) {
    return ((int)o >= 0 && o < MHC_ORIENT_COUNT) ? mhc__orient_names[o] : "?";
}
MHCDEF const char *mhc_norm_eps_mode_name(mhc_norm_eps_mode m) {
    return ((int)m >= 0 && m < MHC_NORM_EPS_COUNT) ? mhc__norm_eps_mode_names[m] : "?";
}
MHCDEF const char *mhc_norm_scope_name(mhc_norm_scope m) {
    return ((int)m >= 0 && m < MHC_NORM_SCOPE_COUNT) ? mhc__norm_scope_names[m] : "?";
}
MHCDEF const char *mhc_sinkhorn_eps_mode_name(mhc_sinkhorn_eps_mode m) {
    return ((int)m >= 0 && m < MHC_SK_EPS_COUNT) ? mhc__sk_eps_names[m] : "?";
}
MHCDEF const char *mhc_sinkhorn_order_name(mhc_sinkhorn_order m) {
    return ((int)m >= 0 && m < MHC_SK_ORDER_COUNT) ? mhc__sk_order_names[m] : "?";
}
MHCDEF const char *mhc_exp_shift_name(mhc_exp_shift m) {
    return ((int)m >= 0 && m < MHC_EXP_SHIFT_COUNT) ? mhc__exp_shift_names[m] : "?";
}

/* Index of s in names[first..count), or -1. */
static int mhc__name_find(const char *const *names, int first, int count, const char *s) {
    int i;
    for (i = first; i < count; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}

/* The parsers below: index of s among names[first..count) into *out, or an error that names s
   and the accepted values. */
static mhc_result mhc__parse_name(mhc_ctx *ctx, const char *fn, const char *what, const char *const *names, int first,
                                  int count, const char *expected, const char *s, int *out) {
    int i;
    if (!s || !out) return mhc_fail(ctx, MHC_ERR_NULL, "%s: NULL argument", fn);
    i = mhc__name_find(names, first, count, s);
    if (i < 0) return mhc_fail(ctx, MHC_ERR_VALUE, "unknown %s '%s' (expected %s)", what, s, expected);
    *out = i;
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_preset_parse(mhc_ctx *ctx, const char *s, mhc_hc_preset *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_hc_preset_parse", "preset", mhc__preset_names, 0, MHC_PRESET_COUNT,
                                   "dsv4, tilekernels, paper, lite, kromhc, ortho, megatron, liger, lucidrains "
                                   "or mhc_cu", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_hc_preset)i;
    return r;
}
MHCDEF mhc_result mhc_hc_variant_parse(mhc_ctx *ctx, const char *s, mhc_hc_variant *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_hc_variant_parse", "variant", mhc__variant_names, 1, MHC_VARIANT_COUNT,
                                   "none, hc, mhc, lite, kromhc or ortho", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_hc_variant)i;
    return r;
}
MHCDEF mhc_result mhc_projection_parse(mhc_ctx *ctx, const char *s, mhc_projection *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_projection_parse", "projection", mhc__proj_names, 1, MHC_PROJ_COUNT,
                                   "softmax, exp, log, perm, kron or ortho", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_projection)i;
    return r;
}
MHCDEF mhc_result mhc_orient_parse(mhc_ctx *ctx, const char *s, mhc_orient *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_orient_parse", "orientation", mhc__orient_names, 1, MHC_ORIENT_COUNT,
                                   "h or comb_t", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_orient)i;
    return r;
}

MHCDEF mhc_result mhc_norm_eps_mode_parse(mhc_ctx *ctx, const char *s, mhc_norm_eps_mode *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_norm_eps_mode_parse", "norm_eps_mode", mhc__norm_eps_mode_names, 1,
                                   MHC_NORM_EPS_COUNT, "inside or outside", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_norm_eps_mode)i;
    return r;
}
MHCDEF mhc_result mhc_norm_scope_parse(mhc_ctx *ctx, const char *s, mhc_norm_scope *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_norm_scope_parse", "norm_scope", mhc__norm_scope_names, 1,
                                   MHC_NORM_SCOPE_COUNT, "flat or stream", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_norm_scope)i;
    return r;
}
MHCDEF mhc_result mhc_sinkhorn_eps_mode_parse(mhc_ctx *ctx, const char *s, mhc_sinkhorn_eps_mode *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_sinkhorn_eps_mode_parse", "sinkhorn_eps_mode", mhc__sk_eps_names, 1,
                                   MHC_SK_EPS_COUNT, "add, clamp, threshold or zero", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_sinkhorn_eps_mode)i;
    return r;
}
MHCDEF mhc_result mhc_sinkhorn_order_parse(mhc_ctx *ctx, const char *s, mhc_sinkhorn_order *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_sinkhorn_order_parse", "sinkhorn_order", mhc__sk_order_names, 1,
                                   MHC_SK_ORDER_COUNT, "col_first or row_first", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_sinkhorn_order)i;
    return r;
}
MHCDEF mhc_result mhc_exp_shift_parse(mhc_ctx *ctx, const char *s, mhc_exp_shift *out) {
    int i = 0;
    mhc_result r = mhc__parse_name(ctx, "mhc_exp_shift_parse", "exp_shift", mhc__exp_shift_names, 1,
                                   MHC_EXP_SHIFT_COUNT, "none, row_max or col_max", s, out ? &i : NULL);
    if (r == MHC_OK) *out = (mhc_exp_shift)i;
    return r;
}

MHCDEF long mhc_perm_count(int n) { return mhc__perm_count(n); }

/* The preset table (MHC_SPEC.md Sec. 4). */
typedef struct mhc__preset_row {
    double norm_eps, pre_eps, post_mult, sinkhorn_eps;
    mhc_projection proj;
    int iters;
    mhc_orient orient;
    int ns_iters;              /* Newton-Schulz iterations (when the projection is ortho) */
    mhc_norm_eps_mode norm_eps_mode;
    mhc_norm_scope norm_scope;
    mhc_sinkhorn_eps_mode sk_eps_mode;
    mhc_sinkhorn_order sk_order;
    mhc_exp_shift exp_shift;
} mhc__preset_row;

static mhc__preset_row mhc__preset_get(mhc_hc_preset p) {
    mhc__preset_row r;
    r.ns_iters = 5;            /* the orthostochastic peer's ns_steps, in every preset */
    r.norm_eps_mode = MHC_NORM_EPS_INSIDE; r.norm_scope = MHC_NORM_SCOPE_FLAT;
    r.sk_eps_mode = MHC_SK_EPS_ADD; r.sk_order = MHC_SK_COL_FIRST; r.exp_shift = MHC_EXP_SHIFT_NONE;
    switch (p) {
    default:
    case MHC_PRESET_DSV4:
        r.norm_eps = 1e-6; r.pre_eps = 1e-6; r.post_mult = 2.0; r.sinkhorn_eps = 1e-6;
        r.proj = MHC_PROJ_SOFTMAX; r.iters = 20; r.orient = MHC_ORIENT_COMB_T; break;
    case MHC_PRESET_TILEKERNELS:
        r.norm_eps = 1e-6; r.pre_eps = 1e-6; r.post_mult = 1.0; r.sinkhorn_eps = 1e-6;
        r.proj = MHC_PROJ_SOFTMAX; r.iters = 10; r.orient = MHC_ORIENT_COMB_T; break;
    case MHC_PRESET_PAPER:
        r.norm_eps = 1e-20; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 0.0;
        r.proj = MHC_PROJ_EXP; r.iters = 20; r.orient = MHC_ORIENT_H; break;
    case MHC_PRESET_LITE:
        r.norm_eps = 1e-20; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 0.0;
        r.proj = MHC_PROJ_PERM; r.iters = 20; r.orient = MHC_ORIENT_H; break;
    case MHC_PRESET_KROMHC:
        /* wz1119/KromHC hyper_conn/Kromhc.py: F.normalize(x) * sqrt(nC) (eps 1e-12 on the norm:
           1e-20 here), sigmoid pre gate (no eps), 2 sigmoid post gate; the factors of
           factorize_into_twos (mhc__kron_default) */
        r.norm_eps = 1e-20; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 0.0;
        r.proj = MHC_PROJ_KRON; r.iters = 20; r.orient = MHC_ORIENT_H; break;
    case MHC_PRESET_ORTHO:
        /* tokenbender/mHC-manifold-constrained-hyper-connections hyper_connections.py:
           orthostochastic_project with ns_steps 5, mixed as H^T; the gates are mHC's (the peer's
           static softmax gates are not an mHC gate), with the paper's norm_eps, pre_eps, post_mult */
        r.norm_eps = 1e-20; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 0.0;
        r.proj = MHC_PROJ_ORTHO; r.iters = 20; r.orient = MHC_ORIENT_COMB_T; break;
    /* the peers (README "Conventions" names the file and snapshot each one reproduces) */
    case MHC_PRESET_MEGATRON:
        /* hyper_connection.py: r = 1/(||x||/sqrt(nC) + 1e-6); h_pre = sigmoid, h_post = 2 sigmoid;
           SinkhornKnopp: exp(H - rowmax), then 20 x (rows, columns), each sum clamp(min = 1e-6);
           out = H_res @ residual */
        r.norm_eps = 1e-6; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 1e-6;
        r.proj = MHC_PROJ_EXP; r.iters = 20; r.orient = MHC_ORIENT_H;
        r.norm_eps_mode = MHC_NORM_EPS_OUTSIDE; r.sk_eps_mode = MHC_SK_EPS_CLAMP; r.sk_order = MHC_SK_ROW_FIRST;
        r.exp_shift = MHC_EXP_SHIFT_ROW_MAX; break;
    case MHC_PRESET_LIGER:
        /* ops/mhc.py: mix = (x @ phi) rsqrt(mean(x^2) + 1e-6); softmax start, then columns,
           (tmax - 1) x (rows, columns), eps 1e-6 added; pre_eps 0, post_mult 2;
           x_out[o] = sum_i h_res[o,i] x[i] */
        r.norm_eps = 1e-6; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 1e-6;
        r.proj = MHC_PROJ_SOFTMAX; r.iters = 20; r.orient = MHC_ORIENT_H; break;
    case MHC_PRESET_LUCIDRAINS:
        /* mHCv2.py: per-stream F.normalize(x) sqrt(d) (gamma + 1); exp(H - colmax), then 20 x
           (l1norm over dim -2, over dim -1), F.normalize's eps 1e-12 a clamp; the branch input and
           the new streams sum over the first index of H (A = H^T); sigmoid pre gate, 2 sigmoid post.
           The norm: 1/(rms + 1e-20) is 1/rms to the last bit wherever rms >> 1e-20, as the peer's
           1/max(rms, 1e-12/sqrt(C)) is wherever ||x_i|| >= 1e-12; both give 0 for an all-zero stream */
        r.norm_eps = 1e-20; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 1e-12;
        r.proj = MHC_PROJ_EXP; r.iters = 20; r.orient = MHC_ORIENT_COMB_T;
        r.norm_eps_mode = MHC_NORM_EPS_OUTSIDE; r.norm_scope = MHC_NORM_SCOPE_STREAM;
        r.sk_eps_mode = MHC_SK_EPS_CLAMP; r.exp_shift = MHC_EXP_SHIFT_COL_MAX; break;
    case MHC_PRESET_MHC_CU:
        /* mhc_layer.cuh (dynamic H): rms = sqrt(mean(x^2) + 1e-5); exp(H); the batched Sinkhorn:
           20 x (rows, columns), each 1/s only when s > 1e-5, else 0; pre sigmoid, post 2 sigmoid;
           out_i = sum_j M[i][j] x_j */
        r.norm_eps = 1e-5; r.pre_eps = 0.0; r.post_mult = 2.0; r.sinkhorn_eps = 1e-5;
        r.proj = MHC_PROJ_EXP; r.iters = 20; r.orient = MHC_ORIENT_H;
        r.sk_eps_mode = MHC_SK_EPS_ZERO; r.sk_order = MHC_SK_ROW_FIRST; break;
    }
    return r;
}

/* One numeric knob: 0 -> the preset's value, MHC_ZERO -> 0, else a finite value >= 0. */
static mhc_result mhc__knob(mhc_ctx *ctx, const char *name, double v, double preset, double *out) {
    /* finiteness first: under -ffinite-math-only a NaN may compare equal to 0 */
    if (!mhc__finite(v))
        return mhc_fail(ctx, MHC_ERR_NONFINITE, "mhc_hc_resolve: %s = %g is not finite", name, v);
    if (v == 0.0) { *out = preset; return MHC_OK; }
    if (v == MHC_ZERO) { *out = 0.0; return MHC_OK; }
    if (v < 0.0)
        return mhc_fail(ctx, MHC_ERR_VALUE,
                        "mhc_hc_resolve: %s = %g is negative (0 means the preset's value, MHC_ZERO an actual 0)",
                        name, v);
    *out = v;
    return MHC_OK;
}

/* The variant a projection belongs to (lite: perm, kromhc: kron, ortho: ortho; mhc: the Sinkhorn
   forms), and back (MHC_PROJ_PRESET for the variants without a projection of their own). */
static mhc_hc_variant mhc__proj_variant(mhc_projection p) {
    return p == MHC_PROJ_PERM ? MHC_VARIANT_LITE : p == MHC_PROJ_KRON ? MHC_VARIANT_KROMHC
         : p == MHC_PROJ_ORTHO ? MHC_VARIANT_ORTHO : MHC_VARIANT_MHC;
}
static mhc_projection mhc__variant_proj(mhc_hc_variant v) {
    return v == MHC_VARIANT_LITE ? MHC_PROJ_PERM : v == MHC_VARIANT_KROMHC ? MHC_PROJ_KRON
         : v == MHC_VARIANT_ORTHO ? MHC_PROJ_ORTHO : MHC_PROJ_PRESET;
}

/* "2,2,3": a factor list for messages */
static const char *mhc__kron_str(const int *a, int K, char *buf, size_t cap) {
    size_t len = 0;
    int k;
    buf[0] = 0;
    for (k = 0; k < K && len + 1 < cap; k++) {
        int w = snprintf(buf + len, cap - len, k ? ",%d" : "%d", a[k]);
        if (w < 0) break;
        len += (size_t)w;
    }
    return buf;
}

/* KromHC's factors when none are given (wz1119/KromHC factorize_into_twos): every factor 2 of n,
   then what remains if it is > 1 (n = 6: 2,3; n = 12: 2,2,3; n = 9: 9); n = 1: the one factor 1.
   Returns the count (at most 10 for n <= 1024). */
static int mhc__kron_default(int n, int *a) {
    int k = 0;
    if (n == 1) { a[0] = 1; return 1; }
    while (n % 2 == 0 && k < MHC_KRON_MAX_FACTORS) { a[k++] = 2; n /= 2; }
    if (n > 1 && k < MHC_KRON_MAX_FACTORS) a[k++] = n;
    return k;
}

/* Check the factor list a[0..K) and write it into s (kron_count, kron_factors, nres = sum_k a_k!);
   n > 0: the product must be n; n = 0: s->n = the product (at most 1024). Messages name the key
   kron_factors. */
static mhc_result mhc__kron_set(mhc_ctx *ctx, const char *fname, int K, const int *a, int n, mhc_hc_spec *s) {
    char b[64];
    long R = 0, prod = 1;
    int k;
    if (K < 1 || K > MHC_KRON_MAX_FACTORS)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: kron_factors has %d factors, expected 1..%d", fname, K, MHC_KRON_MAX_FACTORS);
    for (k = 0; k < K; k++) {
        if (a[k] < 1 || a[k] > MHC_LITE_MAX_N)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: kron_factors[%d] = %d is out of range (each factor 1..%d: a factor a "
                            "takes a! logits)", fname, k, a[k], MHC_LITE_MAX_N);
        prod *= a[k];
        R += mhc__perm_count(a[k]);
    }
    if (n > 0 && prod != n)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: kron_factors = %s has the product %ld, not n = %d", fname,
                        mhc__kron_str(a, K, b, sizeof b), prod, n);
    if (prod > 1024)
        return mhc_fail(ctx, MHC_ERR_SIZE, "%s: kron_factors = %s has the product %ld: more than 1024 streams", fname,
                        mhc__kron_str(a, K, b, sizeof b), prod);
    if (R > MHC_KRON_MAX_LOGITS)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: kron_factors = %s take %ld residual logits per token, at most %d", fname,
                        mhc__kron_str(a, K, b, sizeof b), R, MHC_KRON_MAX_LOGITS);
    if (n == 0) s->n = (int)prod;
    s->kron_count = K;
    for (k = 0; k < MHC_KRON_MAX_FACTORS; k++) s->kron_factors[k] = k < K ? a[k] : 0;
    s->nres = (int)R;
    return MHC_OK;
}

/* The factor list of a config (ended by its first 0; all 0: mhc__kron_default) into s. */
static mhc_result mhc__kron_resolve(mhc_ctx *ctx, const mhc_hc_config *c, int n, mhc_hc_spec *s) {
    int a[MHC_KRON_MAX_FACTORS], K = 0, k;
    char b[64];
    while (K < MHC_KRON_MAX_FACTORS && c->kron_factors[K] != 0) K++;
    for (k = 0; k < MHC_KRON_MAX_FACTORS; k++) {
        if (c->kron_factors[k] < 0)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: kron_factors[%d] = %d is negative", k, c->kron_factors[k]);
        if (k > K && c->kron_factors[k] != 0)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: kron_factors[%d] = %d follows a 0 (the list ends at its "
                            "first 0)", k, c->kron_factors[k]);
    }
    if (K > 0) return mhc__kron_set(ctx, "mhc_hc_resolve", K, c->kron_factors, n, s);
    K = mhc__kron_default(n, a);
    for (k = 0; k < K; k++)
        if (a[k] > MHC_LITE_MAX_N)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: kron_factors: the default factors of n = %d (2s, then the "
                            "rest: %s) include %d > %d; give kron_factors (each 1..%d, product %d)", n,
                            mhc__kron_str(a, K, b, sizeof b), a[k], MHC_LITE_MAX_N, MHC_LITE_MAX_N, n);
    return mhc__kron_set(ctx, "mhc_hc_resolve", K, a, n, s);
}

MHCDEF mhc_result mhc_hc_resolve(mhc_ctx *ctx, const mhc_hc_config *cfg, int n, mhc_hc_spec *out) {
    mhc_hc_config c;
    mhc__preset_row pr;
    mhc_result r;
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_resolve: out is NULL");
    memset(out, 0, sizeof *out);
    if (cfg) c = *cfg; else memset(&c, 0, sizeof c);
    if ((int)c.preset < 0 || c.preset >= MHC_PRESET_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: preset %d is not a mhc_hc_preset", (int)c.preset);
    if ((int)c.variant < 0 || c.variant >= MHC_VARIANT_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: variant %d is not a mhc_hc_variant", (int)c.variant);
    if ((int)c.projection < 0 || c.projection >= MHC_PROJ_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: projection %d is not a mhc_projection", (int)c.projection);
    if ((int)c.orient < 0 || c.orient >= MHC_ORIENT_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: orient %d is not a mhc_orient", (int)c.orient);
    if ((int)c.norm_eps_mode < 0 || c.norm_eps_mode >= MHC_NORM_EPS_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: norm_eps_mode %d is not inside or outside",
                        (int)c.norm_eps_mode);
    if ((int)c.norm_scope < 0 || c.norm_scope >= MHC_NORM_SCOPE_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: norm_scope %d is not flat or stream", (int)c.norm_scope);
    if ((int)c.sinkhorn_eps_mode < 0 || c.sinkhorn_eps_mode >= MHC_SK_EPS_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: sinkhorn_eps_mode %d is not add, clamp, threshold or zero",
                        (int)c.sinkhorn_eps_mode);
    if ((int)c.sinkhorn_order < 0 || c.sinkhorn_order >= MHC_SK_ORDER_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: sinkhorn_order %d is not col_first or row_first",
                        (int)c.sinkhorn_order);
    if ((int)c.exp_shift < 0 || c.exp_shift >= MHC_EXP_SHIFT_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: exp_shift %d is not none, row_max or col_max",
                        (int)c.exp_shift);
    if (n < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_hc_resolve: n = %d streams, expected n >= 1", n);
    if (n > 1024) return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_hc_resolve: n = %d streams is too many (at most 1024)", n);
    if (c.sinkhorn_iters < 0 || c.sinkhorn_iters > 100000)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: sinkhorn_iters = %d, expected 1..100000 (0: the preset's)",
                        c.sinkhorn_iters);
    if (c.ns_iters < 0 || c.ns_iters > MHC_NS_MAX_ITERS)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: ns_iters = %d, expected 1..%d (0: the preset's)", c.ns_iters,
                        MHC_NS_MAX_ITERS);
    pr = mhc__preset_get(c.preset);
    out->preset = c.preset;
    out->n = n;
    out->iters = c.sinkhorn_iters ? c.sinkhorn_iters : pr.iters;
    out->ns_iters = c.ns_iters ? c.ns_iters : pr.ns_iters;
    out->orient = c.orient != MHC_ORIENT_PRESET ? c.orient : pr.orient;
    if ((r = mhc__knob(ctx, "sinkhorn_eps", c.sinkhorn_eps, pr.sinkhorn_eps, &out->sinkhorn_eps)) != MHC_OK) return r;
    if ((r = mhc__knob(ctx, "norm_eps", c.norm_eps, pr.norm_eps, &out->norm_eps)) != MHC_OK) return r;
    if ((r = mhc__knob(ctx, "pre_eps", c.pre_eps, pr.pre_eps, &out->pre_eps)) != MHC_OK) return r;
    if ((r = mhc__knob(ctx, "post_mult", c.post_mult, pr.post_mult, &out->post_mult)) != MHC_OK) return r;
    out->norm_eps_mode = c.norm_eps_mode != MHC_NORM_EPS_PRESET ? c.norm_eps_mode : pr.norm_eps_mode;
    out->norm_scope = c.norm_scope != MHC_NORM_SCOPE_PRESET ? c.norm_scope : pr.norm_scope;
    out->sinkhorn_eps_mode = c.sinkhorn_eps_mode != MHC_SK_EPS_PRESET ? c.sinkhorn_eps_mode : pr.sk_eps_mode;
    out->sinkhorn_order = c.sinkhorn_order != MHC_SK_ORDER_PRESET ? c.sinkhorn_order : pr.sk_order;
    out->exp_shift = c.exp_shift != MHC_EXP_SHIFT_PRESET ? c.exp_shift : pr.exp_shift;
    /* variant and projection: LITE exactly when the projection is PERM, KROMHC when KRON, ORTHO
       when ORTHO */
    out->variant = c.variant;
    if (out->variant == MHC_VARIANT_PRESET)
        out->variant = c.projection == MHC_PROJ_PRESET ? mhc__proj_variant(pr.proj) : MHC_VARIANT_MHC;
    if (mhc__variant_proj(out->variant) != MHC_PROJ_PRESET) {
        mhc_projection own = mhc__variant_proj(out->variant);
        if (c.projection != MHC_PROJ_PRESET && c.projection != own)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: variant %s needs projection %s, not %s",
                            mhc_hc_variant_name(out->variant), mhc_projection_name(own), mhc_projection_name(c.projection));
        out->projection = own;
    } else if (out->variant == MHC_VARIANT_MHC) {
        out->projection = c.projection != MHC_PROJ_PRESET ? c.projection : pr.proj;
        if (mhc__proj_variant(out->projection) != MHC_VARIANT_MHC) {
            if (c.projection == MHC_PROJ_PRESET && c.variant == MHC_VARIANT_MHC)
                out->projection = MHC_PROJ_EXP;   /* mhc forced on the lite/kromhc/ortho preset: its Sinkhorn is exp start */
            else
                out->variant = mhc__proj_variant(out->projection);
        }
    } else {
        out->projection = c.projection != MHC_PROJ_PRESET ? c.projection : pr.proj;
    }
    /* the exp shift belongs to the exp and log starts: refused when asked for with another
       projection, dropped when it is only a preset's value */
    if (out->projection != MHC_PROJ_EXP && out->projection != MHC_PROJ_LOG) {
        if (c.exp_shift != MHC_EXP_SHIFT_PRESET && c.exp_shift != MHC_EXP_SHIFT_NONE &&
            out->variant != MHC_VARIANT_NONE && out->variant != MHC_VARIANT_HC)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: exp_shift = %s applies to the exp and log starts "
                            "(projection exp or log), not to projection %s", mhc_exp_shift_name(c.exp_shift),
                            mhc_projection_name(out->projection));
        out->exp_shift = MHC_EXP_SHIFT_NONE;
    }
    switch (out->variant) {
    case MHC_VARIANT_NONE:
        if (n != 1)
            return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_resolve: variant none is the plain residual and needs n = 1, not n = %d", n);
        out->nres = 0; out->m = 0;
        break;
    case MHC_VARIANT_HC:
        out->nres = 0; out->m = n + 2;
        break;
    case MHC_VARIANT_LITE:
        if (n > MHC_LITE_MAX_N)
            return mhc_fail(ctx, MHC_ERR_VALUE,
                            "mhc_hc_resolve: the permutation mixture (lite) needs n! logits per token; n = %d is "
                            "too large (at most n = %d, %ld permutations)", n, MHC_LITE_MAX_N, mhc_perm_count(MHC_LITE_MAX_N));
        out->nres = (int)mhc_perm_count(n); out->m = 2 * n + out->nres;
        break;
    case MHC_VARIANT_KROMHC:
        if ((r = mhc__kron_resolve(ctx, &c, n, out)) != MHC_OK) return r;
        out->m = 2 * n + out->nres;
        break;
    default:
        out->nres = n * n; out->m = 2 * n + out->nres;
        break;
    }
    return MHC_OK;
}

MHCDEF int mhc_hc_fn_rows(const mhc_hc_spec *s, int head) {
    if (!s) return 0;
    return head ? s->n : s->m;
}

/* ---- per-token projections ----
   mhc__proj_fwd / mhc__proj_bwd and their helpers (mhc__sk_step, mhc__sk_step_back, mhc__logaddexp,
   mhc__next_perm, mhc__proj_steps, mhc__proj_doubles, mhc__sigmoid) are the shared block
   "SHARED WITH THE CUDA UNIT" above the implementation (with mhc__proj_token and
   mhc__gates_token): the one copy, which mhc_cuda.cu compiles for the device too. */

/* ---- the layer, plainly: the references (read these first) ----
   mhc_ref_hc_pre_forward / _backward, mhc_ref_hc_head_forward / _backward and
   mhc_ref_hc_post_forward / _backward compute the layer the way MHC_SPEC.md writes it: one
   token at a time, every step in double, each step a plain loop under its formula. The fast
   functions further down (the fused pre step, mhc_k_hc_post_*) compute the same numbers with
   a GEMM over all tokens, threads, 8-token Sinkhorn groups and vector blocks;
   tests/test_hc_ref.c holds the two against each other for every variant. The references call
   the per-token projection mhc__proj_fwd / mhc__proj_bwd (plain per-token code itself) and
   share the fast functions' argument checks; they allocate one scratch block per call. */

/* The argument checks of the raw-array pre/head functions (mhc__pre_args, defined with them). */
static mhc_result mhc__pre_check(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, int head,
                                 const mhc_real *x, const mhc_real *fn, const mhc_real *scale, const mhc_real *base,
                                 int T, int C);

/* The references' scratch: count doubles, zeroed (NULL with the error in ctx). */
static double *mhc__ref_scratch(mhc_ctx *ctx, const char *fname, size_t count) {
    double *w;
    size_t k;
    if (count > SIZE_MAX / sizeof(double)) {
        mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: scratch size overflows", fname);
        return NULL;
    }
    if (mhc__scratch_ok(ctx, fname, count, "one token's workspace (the projection keeps every Sinkhorn iterate: "
                                           "(2 iters + 4) n^2 doubles; the backward also m n C)") != MHC_OK)
        return NULL;
    w = MHC__CAST(double *, MHC_MALLOC(count * sizeof(double)));
    if (!w) {
        mhc_fail(ctx, MHC_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch", fname, count * sizeof(double));
        return NULL;
    }
    for (k = 0; k < count; k++) w[k] = 0.0;
    return w;
}

/* mHC, lite and the head, one token, MHC_SPEC.md Sec. 2 steps 1-2 (Sec. 5 for the head: only
   the pre block; the norm knobs of Sec. 8). From xt = x[t] (xf, D = n*C values) it computes
     flat scope:   r = rstd(xf over its D values)      (inside: 1/sqrt(mean xf^2 + norm_eps),
                   dot[k] = sum_j xf[j] w[k][j]          outside: 1/(sqrt(mean xf^2) + norm_eps))
                   mix[k] = dot[k] * r,                 w[k][j] = fn[k][j] * norm_weight[j] (or fn)
     stream scope: rs[i] = rstd(x_i over its C values)
                   pdot[i*m + k] = sum_c x_i[c] w[k][i*C + c]
                   mix[k] = sum_i rs[i] pdot[i*m + k]                          (k < m)
     sp[i]    = sigmoid(mix[i] scale[0] + base[i])              h_pre  = sp + pre_eps
     so[i]    = sigmoid(mix[n+i] scale[1] + base[n+i])          h_post = so * post_mult
     z[k]     = mix[2n+k] scale[2] + base[2n+k]                 the residual logits (k < nres)
   (the last two not for the head). rs[i] and gs[i] (d rs[i] / d x_j, over x_j, for x_j in stream
   i) are filled for either scope (flat: every stream the same r); it returns r (flat). */
static double mhc__ref_mix_token(const mhc_hc_spec *s, int head, int C, const mhc_real *xt, const mhc_real *fn,
                                 const mhc_real *scale, const mhc_real *base, const mhc_real *nw,
                                 double *dot, double *pdot, double *rs, double *gs, double *mix, double *sp, double *so,
                                 double *z) {
    int n = s->n, D = n * C, m = head ? n : s->m, i, j, k, c;
    int outside = s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE;
    double ss = 0.0, r = 0.0, g;
    if (s->norm_scope != MHC_NORM_SCOPE_STREAM) {
        for (j = 0; j < D; j++) ss += (double)xt[j] * (double)xt[j];
        r = mhc__rstd(ss, D, s->norm_eps, outside, &g);
        for (i = 0; i < n; i++) { rs[i] = r; gs[i] = g; }
        for (k = 0; k < m; k++) {
            double a = 0.0;
            for (j = 0; j < D; j++) a += (double)xt[j] * (double)fn[(size_t)k * D + j] * (nw ? (double)nw[j] : 1.0);
            dot[k] = a;
            mix[k] = a * r;
        }
    } else {
        for (i = 0; i < n; i++) {
            const mhc_real *xi = xt + (size_t)i * C;
            ss = 0.0;
            for (c = 0; c < C; c++) ss += (double)xi[c] * (double)xi[c];
            rs[i] = mhc__rstd(ss, C, s->norm_eps, outside, &gs[i]);
        }
        for (k = 0; k < m; k++) {
            double mk = 0.0;
            for (i = 0; i < n; i++) {
                double a = 0.0;
                for (c = 0; c < C; c++) {
                    j = i * C + c;
                    a += (double)xt[j] * (double)fn[(size_t)k * D + j] * (nw ? (double)nw[j] : 1.0);
                }
                pdot[i * m + k] = a;
                mk += rs[i] * a;
            }
            dot[k] = 0.0;
            mix[k] = mk;
        }
    }
    for (i = 0; i < n; i++) sp[i] = mhc__sigmoid(mix[i] * (double)scale[0] + (double)base[i]);
    if (head) return r;
    for (i = 0; i < n; i++) so[i] = mhc__sigmoid(mix[n + i] * (double)scale[1] + (double)base[n + i]);
    for (k = 0; k < s->nres; k++) z[k] = mix[2 * n + k] * (double)scale[2] + (double)base[2 * n + k];
    return r;
}

/* layer_input[c] = sum_i h[i] x[i][c] for one token (MHC_SPEC.md Sec. 2 step 5, Sec. 5). */
static void mhc__ref_collapse(mhc_real *out, const double *h, const mhc_real *xt, int n, int C) {
    int i, c;
    for (c = 0; c < C; c++) {
        double a = 0.0;
        for (i = 0; i < n; i++) a += h[i] * (double)xt[(size_t)i * C + c];
        out[c] = (mhc_real)a;
    }
}

/* mHC / lite / head forward, token by token (MHC_SPEC.md Sec. 2 steps 1-5, Sec. 5). */
static mhc_result mhc__ref_pre_fwd_mhc(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, int head,
                                       mhc_real *li, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                       const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                       const mhc_real *base, const mhc_real *nw, int T, int C) {
    int n = s->n, m = head ? n : s->m, nres = head ? 0 : s->nres, t, i, j;
    size_t nn = (size_t)n * n, pj = head ? 0 : mhc__proj_doubles(s);
    double *w = mhc__ref_scratch(ctx, fname, 2 * (size_t)m + 5 * (size_t)n + (size_t)nres + nn + pj + (size_t)n * m);
    double *dot, *mix, *sp, *so, *hp, *z, *comb, *pw, *rs, *gs, *pdot;
    if (!w) return ctx ? ctx->last : MHC_ERR_NOMEM;
    dot = w; mix = dot + m; sp = mix + m; so = sp + n; hp = so + n; z = hp + n; comb = z + nres; pw = comb + nn;
    rs = pw + pj; gs = rs + n; pdot = gs + n;
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * n * C;
        /* steps 1-2: mix, the gates, the residual logits */
        mhc__ref_mix_token(s, head, C, xt, fn, scale, base, nw, dot, pdot, rs, gs, mix, sp, so, z);
        for (i = 0; i < n; i++) hp[i] = sp[i] + s->pre_eps;                     /* h_pre */
        if (h_pre) for (i = 0; i < n; i++) h_pre[(size_t)t * n + i] = (mhc_real)hp[i];
        if (!head && h_post)
            for (i = 0; i < n; i++) h_post[(size_t)t * n + i] = (mhc_real)(so[i] * s->post_mult);
        /* steps 3-4: comb = project(z); A = comb, or comb^T */
        if (!head && h_res) {
            mhc__proj_fwd(s, z, comb, pw);
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++)
                    h_res[(size_t)t * nn + (size_t)i * n + j] =
                        (mhc_real)(mhc__proj_transposed(s) ? comb[j * n + i] : comb[i * n + j]);
        }
        /* step 5: layer_input = sum_i h_pre[i] x_i */
        mhc__ref_collapse(li + (size_t)t * C, hp, xt, n, C);
    }
    MHC_FREE(w);
    return MHC_OK;
}

/* mHC / lite / head backward, token by token (derived in docs/tour.md Sec. 6). Per token, from
   the incoming gradients dli, dh_pre, dh_post, dA (NULL = 0):
     du[i]    = (dh_pre[i] + sum_c dli[c] x[i][c]) sp[i] (1 - sp[i])       (sigmoid' = s (1 - s))
     du[n+i]  = dh_post[i] post_mult so[i] (1 - so[i])
     du[2n+k] = dz[k], the projection's backward of dcomb = dA (comb_t: dA^T)
     dbase[k] += du[k];   dscale[g] += du[k] mix[k]      (g = 0, 1, 2: the block of row k)
     dmix[k]  = du[k] scale[g]
   flat:   ddot[k] = dmix[k] r;  dr = sum_k dmix[k] dot[k];  the rstd term of dxf[j]: dr g xf[j]
           (inside: g = -r^3 / D, written -dr r^3 xf[j] / D)
   stream: dr_i = sum_k dmix[k] pdot[i*m + k]; the rstd term of x_i[c]: dr_i g_i x_i[c]
     dxf[j]  += sum_k dmix[k] rs[i] w[k][j]  +  the rstd term  +  h_pre[i] dli[c]   (j = i*C + c)
     dfn[k][j] += dmix[k] rs[i] xf[j] nw[j];   dnw[j] += sum_k dmix[k] rs[i] xf[j] fn[k][j]
   The parameter gradients are summed over tokens in double and added once at the end. */
static mhc_result mhc__ref_pre_bwd_mhc(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, int head,
                                       mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                       mhc_real *d_nw, const mhc_real *g_li, const mhc_real *g_hpre,
                                       const mhc_real *g_hpost, const mhc_real *g_hres,
                                       const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                       const mhc_real *base, const mhc_real *nw, int T, int C) {
    int n = s->n, D = n * C, m = head ? n : s->m, nres = head ? 0 : s->nres, t, i, j, k, c;
    int stream = s->norm_scope == MHC_NORM_SCOPE_STREAM, outside = s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE;
    size_t nn = (size_t)n * n, pj = head ? 0 : mhc__proj_doubles(s);
    double *w = mhc__ref_scratch(ctx, fname, 4 * (size_t)m + 2 * (size_t)n + 2 * (size_t)nres + 2 * nn + pj +
                                             (size_t)m * D + (size_t)D + (size_t)m + 3 + 3 * (size_t)n + (size_t)n * m);
    double *dot, *mix, *sp, *so, *z, *du, *ddot, *dz, *dcomb, *otmp, *pw, *acc_fn, *acc_nw, *acc_base, *acc_scale;
    double *rs, *gs, *dri, *pdot;
    if (!w) return ctx ? ctx->last : MHC_ERR_NOMEM;
    dot = w; mix = dot + m; du = mix + m; ddot = du + m; sp = ddot + m; so = sp + n; z = so + n; dz = z + nres;
    dcomb = dz + nres; otmp = dcomb + nn; pw = otmp + nn; acc_fn = pw + pj; acc_nw = acc_fn + (size_t)m * D;
    acc_base = acc_nw + D; acc_scale = acc_base + m; rs = acc_scale + 3; gs = rs + n; dri = gs + n; pdot = dri + n;
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * D, *dli = g_li ? g_li + (size_t)t * C : NULL;
        double r, dr = 0.0;
        /* the forward of this token again */
        r = mhc__ref_mix_token(s, head, C, xt, fn, scale, base, nw, dot, pdot, rs, gs, mix, sp, so, z);
        /* du: the gradient reaching each gate's argument */
        for (i = 0; i < n; i++) {
            double dh = g_hpre ? (double)g_hpre[(size_t)t * n + i] : 0.0;
            if (dli)
                for (c = 0; c < C; c++) dh += (double)dli[c] * (double)xt[(size_t)i * C + c];
            du[i] = dh * sp[i] * (1.0 - sp[i]);
        }
        if (!head) {
            for (i = 0; i < n; i++)
                du[n + i] = (g_hpost ? (double)g_hpost[(size_t)t * n + i] : 0.0) * s->post_mult * so[i] * (1.0 - so[i]);
            for (k = 0; k < nres; k++) du[2 * n + k] = 0.0;
            if (g_hres) {
                const mhc_real *dA = g_hres + (size_t)t * nn;
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++)
                        dcomb[i * n + j] = (double)(mhc__proj_transposed(s) ? dA[j * n + i] : dA[i * n + j]);
                mhc__proj_bwd(s, z, dcomb, dz, pw, otmp);
                for (k = 0; k < nres; k++) du[2 * n + k] = dz[k];
            }
        }
        /* the biases and scales; then back through mix (ddot[k] = dmix[k], times rs[i] below) */
        for (i = 0; i < n; i++) dri[i] = 0.0;
        for (k = 0; k < m; k++) {
            int g = k < n ? 0 : (k < 2 * n ? 1 : 2);
            double dmix = du[k] * (double)scale[g];
            acc_base[k] += du[k];
            acc_scale[g] += du[k] * mix[k];
            if (!stream) {
                ddot[k] = dmix * r;
                dr += dmix * dot[k];
            } else {
                ddot[k] = dmix;
                for (i = 0; i < n; i++) dri[i] += dmix * pdot[i * m + k];
            }
        }
        /* into x: through the dots, through the rstd (d rs_i/dxf[j] = gs[i] xf[j]), through layer_input */
        if (d_x)
            for (j = 0; j < D; j++) {   /* xf[j] is x[i][c] with i = j / C, c = j % C */
                double a = !stream ? (outside ? dr * gs[0] * (double)xt[j] : -dr * r * r * r * (double)xt[j] / (double)D)
                                   : dri[j / C] * gs[j / C] * (double)xt[j];
                double f = stream ? rs[j / C] : 1.0;
                for (k = 0; k < m; k++) a += f * ddot[k] * (double)fn[(size_t)k * D + j] * (nw ? (double)nw[j] : 1.0);
                if (dli) a += (sp[j / C] + s->pre_eps) * (double)dli[j % C];
                d_x[(size_t)t * D + j] += (mhc_real)a;
            }
        /* into fn and norm_weight */
        for (k = 0; k < m; k++)
            for (j = 0; j < D; j++) {
                double f = stream ? rs[j / C] : 1.0;
                acc_fn[(size_t)k * D + j] += f * ddot[k] * (double)xt[j] * (nw ? (double)nw[j] : 1.0);
                acc_nw[j] += f * ddot[k] * (double)xt[j] * (double)fn[(size_t)k * D + j];
            }
    }
    if (d_fn) for (k = 0; k < m * D; k++) d_fn[k] += (mhc_real)acc_fn[k];
    if (d_nw && nw) for (j = 0; j < D; j++) d_nw[j] += (mhc_real)acc_nw[j];
    if (d_base) for (k = 0; k < m; k++) d_base[k] += (mhc_real)acc_base[k];
    if (d_scale) for (k = 0; k < (head ? 1 : 3); k++) d_scale[k] += (mhc_real)acc_scale[k];
    MHC_FREE(w);
    return MHC_OK;
}

/* HC (MHC_SPEC.md Sec. 6), one token: per stream i, with theta = fn [n+2][C] (row 0 pre, row 1
   post, rows 2.. res),
     r[i]     = 1 / sqrt(mean_c x_i[c]^2 + norm_eps)    (outside: 1 / (sqrt(mean_c x_i[c]^2) + norm_eps);
                                                        gq[i] = d r[i]/d x_i[c] over x_i[c], when gq != NULL)
     xn_i[c]  = x_i[c] r[i] norm_weight[c]             (RMSNorm of the stream)
     d[i][q]  = sum_c theta[q][c] xn_i[c]              (q < n + 2)
   and the gates
     h_pre[i] = scale[0] tanh(d[i][0]) + base[i],    h_post[i] = scale[1] tanh(d[i][1]) + base[n+i],
     A[i][j]  = scale[2] tanh(d[j][2+i]) + base[2n + i*n + j]. */
static void mhc__ref_hc_token(const mhc_hc_spec *s, int C, const mhc_real *xt, const mhc_real *fn, const mhc_real *scale,
                              const mhc_real *base, const mhc_real *nw, double *r, double *gq, double *xn, double *d,
                              double *hp, double *hq, double *A) {
    int n = s->n, q = n + 2, i, j, c, k;
    for (i = 0; i < n; i++) {
        const mhc_real *xi = xt + (size_t)i * C;
        double ss = 0.0;
        for (c = 0; c < C; c++) ss += (double)xi[c] * (double)xi[c];
        r[i] = mhc__rstd(ss, C, s->norm_eps, s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE, gq ? &gq[i] : NULL);
        for (c = 0; c < C; c++) xn[(size_t)i * C + c] = (double)xi[c] * r[i] * (nw ? (double)nw[c] : 1.0);
        for (k = 0; k < q; k++) {
            double a = 0.0;
            for (c = 0; c < C; c++) a += (double)fn[(size_t)k * C + c] * xn[(size_t)i * C + c];
            d[i * q + k] = a;
        }
    }
    for (i = 0; i < n; i++) {
        hp[i] = (double)scale[0] * tanh(d[i * q]) + (double)base[i];
        hq[i] = (double)scale[1] * tanh(d[i * q + 1]) + (double)base[n + i];
        for (j = 0; j < n; j++) A[i * n + j] = (double)scale[2] * tanh(d[j * q + 2 + i]) + (double)base[2 * n + i * n + j];
    }
}

/* HC forward, token by token (MHC_SPEC.md Sec. 6, then Sec. 2 step 5). */
static mhc_result mhc__ref_pre_fwd_hc(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s,
                                      mhc_real *li, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *nw, int T, int C) {
    int n = s->n, t, i;
    size_t nn = (size_t)n * n;
    double *w = mhc__ref_scratch(ctx, fname, (size_t)n * C + (size_t)n * (n + 2) + 3 * (size_t)n + nn);
    double *xn, *d, *r, *hp, *hq, *A;
    if (!w) return ctx ? ctx->last : MHC_ERR_NOMEM;
    xn = w; d = xn + (size_t)n * C; r = d + (size_t)n * (n + 2); hp = r + n; hq = hp + n; A = hq + n;
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * n * C;
        mhc__ref_hc_token(s, C, xt, fn, scale, base, nw, r, NULL, xn, d, hp, hq, A);
        for (i = 0; i < n; i++) {
            if (h_pre) h_pre[(size_t)t * n + i] = (mhc_real)hp[i];
            if (h_post) h_post[(size_t)t * n + i] = (mhc_real)hq[i];
        }
        if (h_res) for (i = 0; i < (int)nn; i++) h_res[(size_t)t * nn + i] = (mhc_real)A[i];
        mhc__ref_collapse(li + (size_t)t * C, hp, xt, n, C);
    }
    MHC_FREE(w);
    return MHC_OK;
}

/* HC backward, token by token. With G the incoming gradient of a gate (for h_pre: dh_pre[i] +
   dli . x_i) and th its tanh:
     dbase += G;   dscale[g] += G th;   dd[i][q] = G scale[g] (1 - th^2)       (d d[i][q])
     dtheta[q][c] += dd[i][q] xn_i[c];   dxn_i[c] = sum_q dd[i][q] theta[q][c]
     dnw[c] += dxn_i[c] x_i[c] r[i]
     dx_i[c] += r[i] nw[c] dxn_i[c] - r[i]^3 / C x_i[c] sum_c' x_i[c'] nw[c'] dxn_i[c'] + h_pre[i] dli[c]
   (the RMSNorm backward per stream; norm_eps_mode outside: gq[i] x_i[c] sum_c' ... in place of the
   -r^3/C term). Parameter gradients are summed in double. */
static mhc_result mhc__ref_pre_bwd_hc(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s,
                                      mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                      mhc_real *d_nw, const mhc_real *g_li, const mhc_real *g_hpre,
                                      const mhc_real *g_hpost, const mhc_real *g_hres,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *nw, int T, int C) {
    int n = s->n, q = n + 2, nb = 2 * n + n * n, t, i, j, c, k;
    size_t nn = (size_t)n * n;
    double *w = mhc__ref_scratch(ctx, fname, (size_t)n * C + 2 * (size_t)n * q + 3 * (size_t)n + nn + (size_t)C +
                                             (size_t)q * C + (size_t)C + (size_t)nb + 3 + (size_t)n);
    double *xn, *d, *dd, *r, *hp, *hq, *A, *dxn, *acc_fn, *acc_nw, *acc_base, *acc_scale, *gq;
    int outside = s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE;
    if (!w) return ctx ? ctx->last : MHC_ERR_NOMEM;
    xn = w; d = xn + (size_t)n * C; dd = d + (size_t)n * q; r = dd + (size_t)n * q; hp = r + n; hq = hp + n;
    A = hq + n; dxn = A + nn; acc_fn = dxn + C; acc_nw = acc_fn + (size_t)q * C; acc_base = acc_nw + C;
    acc_scale = acc_base + nb; gq = acc_scale + 3;
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * n * C, *dli = g_li ? g_li + (size_t)t * C : NULL;
        mhc__ref_hc_token(s, C, xt, fn, scale, base, nw, r, gq, xn, d, hp, hq, A);
        for (i = 0; i < n; i++) {
            double G = g_hpre ? (double)g_hpre[(size_t)t * n + i] : 0.0, th = tanh(d[i * q]);
            if (dli)
                for (c = 0; c < C; c++) G += (double)dli[c] * (double)xt[(size_t)i * C + c];
            acc_base[i] += G; acc_scale[0] += G * th; dd[i * q] = G * (double)scale[0] * (1.0 - th * th);
            G = g_hpost ? (double)g_hpost[(size_t)t * n + i] : 0.0;
            th = tanh(d[i * q + 1]);
            acc_base[n + i] += G; acc_scale[1] += G * th; dd[i * q + 1] = G * (double)scale[1] * (1.0 - th * th);
        }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) {   /* A[i][j] = scale[2] tanh(d[j][2+i]) + base[2n + i*n + j] */
                double G = g_hres ? (double)g_hres[(size_t)t * nn + (size_t)i * n + j] : 0.0, th = tanh(d[j * q + 2 + i]);
                acc_base[2 * n + i * n + j] += G; acc_scale[2] += G * th;
                dd[j * q + 2 + i] = G * (double)scale[2] * (1.0 - th * th);
            }
        for (i = 0; i < n; i++) {
            const mhc_real *xi = xt + (size_t)i * C;
            double sdot = 0.0;
            for (c = 0; c < C; c++) {
                double a = 0.0;
                for (k = 0; k < q; k++) {
                    a += dd[i * q + k] * (double)fn[(size_t)k * C + c];
                    acc_fn[(size_t)k * C + c] += dd[i * q + k] * xn[(size_t)i * C + c];
                }
                dxn[c] = a;
                acc_nw[c] += a * (double)xi[c] * r[i];
                sdot += (double)xi[c] * (nw ? (double)nw[c] : 1.0) * a;
            }
            if (d_x)
                for (c = 0; c < C; c++)
                    d_x[((size_t)t * n + i) * C + c] +=
                        (mhc_real)(r[i] * (nw ? (double)nw[c] : 1.0) * dxn[c] -
                                   (outside ? -gq[i] : r[i] * r[i] * r[i] / (double)C) * (double)xi[c] * sdot +
                                   (dli ? hp[i] * (double)dli[c] : 0.0));
        }
    }
    if (d_fn) for (k = 0; k < q * C; k++) d_fn[k] += (mhc_real)acc_fn[k];
    if (d_nw && nw) for (c = 0; c < C; c++) d_nw[c] += (mhc_real)acc_nw[c];
    if (d_base) for (k = 0; k < nb; k++) d_base[k] += (mhc_real)acc_base[k];
    if (d_scale) for (k = 0; k < 3; k++) d_scale[k] += (mhc_real)acc_scale[k];
    MHC_FREE(w);
    return MHC_OK;
}

MHCDEF mhc_result mhc_ref_hc_pre_forward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                         mhc_real *layer_input, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                         const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                         const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    const char *fname = "mhc_ref_hc_pre_forward";
    mhc_result r = mhc__pre_check(ctx, fname, s, 0, x, fn, scale, base, T, C);
    size_t t;
    if (r != MHC_OK) return r;
    if (!layer_input) return mhc_fail(ctx, MHC_ERR_NULL, "%s: layer_input is NULL", fname);
    switch (s->variant) {
    case MHC_VARIANT_NONE:   /* the plain residual: layer_input = x, h_pre = h_post = A = 1 */
        for (t = 0; t < (size_t)T * C; t++) layer_input[t] = x[t];
        for (t = 0; t < (size_t)T; t++) {
            if (h_pre) h_pre[t] = 1;
            if (h_post) h_post[t] = 1;
            if (h_res) h_res[t] = 1;
        }
        return MHC_OK;
    case MHC_VARIANT_HC:
        return mhc__ref_pre_fwd_hc(ctx, fname, s, layer_input, h_pre, h_post, h_res, x, fn, scale, base, norm_weight, T, C);
    default:
        return mhc__ref_pre_fwd_mhc(ctx, fname, s, 0, layer_input, h_pre, h_post, h_res, x, fn, scale, base, norm_weight,
                                    T, C);
    }
}

MHCDEF mhc_result mhc_ref_hc_pre_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                          mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                          mhc_real *d_norm_weight,
                                          const mhc_real *d_layer_input, const mhc_real *d_h_pre,
                                          const mhc_real *d_h_post, const mhc_real *d_h_res,
                                          const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                          const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    const char *fname = "mhc_ref_hc_pre_backward";
    mhc_result r = mhc__pre_check(ctx, fname, s, 0, x, fn, scale, base, T, C);
    size_t k;
    if (r != MHC_OK) return r;
    switch (s->variant) {
    case MHC_VARIANT_NONE:   /* dx += d layer_input */
        if (d_x && d_layer_input)
            for (k = 0; k < (size_t)T * C; k++) d_x[k] += d_layer_input[k];
        return MHC_OK;
    case MHC_VARIANT_HC:
        return mhc__ref_pre_bwd_hc(ctx, fname, s, d_x, d_fn, d_scale, d_base, d_norm_weight, d_layer_input, d_h_pre,
                                   d_h_post, d_h_res, x, fn, scale, base, norm_weight, T, C);
    default:
        return mhc__ref_pre_bwd_mhc(ctx, fname, s, 0, d_x, d_fn, d_scale, d_base, d_norm_weight, d_layer_input, d_h_pre,
                                    d_h_post, d_h_res, x, fn, scale, base, norm_weight, T, C);
    }
}

MHCDEF mhc_result mhc_ref_hc_head_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, mhc_real *h,
                                          const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                          const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    const char *fname = "mhc_ref_hc_head_forward";
    mhc_result r = mhc__pre_check(ctx, fname, s, 1, x, fn, scale, base, T, C);
    if (r != MHC_OK) return r;
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "%s: out is NULL", fname);
    return mhc__ref_pre_fwd_mhc(ctx, fname, s, 1, out, h, NULL, NULL, x, fn, scale, base, norm_weight, T, C);
}

MHCDEF mhc_result mhc_ref_hc_head_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                           mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                           mhc_real *d_norm_weight, const mhc_real *d_out, const mhc_real *d_h,
                                           const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                           const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    const char *fname = "mhc_ref_hc_head_backward";
    mhc_result r = mhc__pre_check(ctx, fname, s, 1, x, fn, scale, base, T, C);
    if (r != MHC_OK) return r;
    return mhc__ref_pre_bwd_mhc(ctx, fname, s, 1, d_x, d_fn, d_scale, d_base, d_norm_weight, d_out, d_h, NULL, NULL, x,
                                fn, scale, base, norm_weight, T, C);
}

/* post (MHC_SPEC.md Sec. 2 step 5): out[t][i][c] = sum_j A[t][i][j] x[t][j][c] + h_post[t][i] f_out[t][c] */
MHCDEF void mhc_ref_hc_post_forward(mhc_real *out, const mhc_real *x, const mhc_real *h_res, const mhc_real *h_post,
                                    const mhc_real *f_out, int T, int n, int C) {
    int t, i, j, c;
    for (t = 0; t < T; t++)
        for (i = 0; i < n; i++)
            for (c = 0; c < C; c++) {
                double a = f_out ? (double)h_post[(size_t)t * n + i] * (double)f_out[(size_t)t * C + c] : 0.0;
                for (j = 0; j < n; j++)
                    a += (double)h_res[((size_t)t * n + i) * n + j] * (double)x[((size_t)t * n + j) * C + c];
                out[((size_t)t * n + i) * C + c] = (mhc_real)a;
            }
}

/* Its backward, token by token: dx_j += sum_i A[i][j] dout_i;  dA[i][j] += dout_i . x_j;
   dh_post[i] += dout_i . f_out;  df_out += sum_i h_post[i] dout_i. */
MHCDEF void mhc_ref_hc_post_backward(mhc_real *d_x, mhc_real *d_h_res, mhc_real *d_h_post, mhc_real *d_f_out,
                                     const mhc_real *d_out, const mhc_real *x, const mhc_real *h_res,
                                     const mhc_real *h_post, const mhc_real *f_out, int T, int n, int C) {
    int t, i, j, c;
    for (t = 0; t < T; t++) {
        const mhc_real *A = h_res + (size_t)t * n * n, *xt = x + (size_t)t * n * C, *go = d_out + (size_t)t * n * C;
        const mhc_real *f = f_out ? f_out + (size_t)t * C : NULL;
        if (d_x)
            for (j = 0; j < n; j++)
                for (c = 0; c < C; c++) {
                    double a = 0.0;
                    for (i = 0; i < n; i++) a += (double)A[i * n + j] * (double)go[(size_t)i * C + c];
                    d_x[((size_t)t * n + j) * C + c] += (mhc_real)a;
                }
        for (i = 0; i < n; i++) {
            if (d_h_res)
                for (j = 0; j < n; j++) {
                    double a = 0.0;
                    for (c = 0; c < C; c++) a += (double)go[(size_t)i * C + c] * (double)xt[(size_t)j * C + c];
                    d_h_res[(size_t)t * n * n + (size_t)i * n + j] += (mhc_real)a;
                }
            if (f && d_h_post) {
                double a = 0.0;
                for (c = 0; c < C; c++) a += (double)go[(size_t)i * C + c] * (double)f[c];
                d_h_post[(size_t)t * n + i] += (mhc_real)a;
            }
        }
        if (f && d_f_out)
            for (c = 0; c < C; c++) {
                double a = 0.0;
                for (i = 0; i < n; i++) a += (double)h_post[(size_t)t * n + i] * (double)go[(size_t)i * C + c];
                d_f_out[(size_t)t * C + c] += (mhc_real)a;
            }
    }
}

/* ---- the projection of a group of tokens (batched) ----
   Every token projects its own small n x n matrix: ~40 Sinkhorn steps, each n sums and n*n
   divisions, too short along a row to vectorise. So MHC__SKG tokens are projected together, in a
   structure-of-arrays layout: element k of token (lane) g is a[k*MHC__SKG + g], and every
   innermost loop runs over the lanes, for (g = 0; g < MHC__SKG; g++), a compile-time trip count
   the compiler turns into vector instructions (8 doubles: one AVX-512 register, two AVX2 ones).
   Each lane does the scalar code's IEEE operations in the same order (mhc__sk_step,
   mhc__sk_step_back, mhc__proj_fwd/bwd), so a token's result is bit-identical on either path;
   lanes never mix. For the softmax and exp starts with n <= MHC__SKG_MAXN (the scratch grows
   with MHC__SKG n^2 iters); log and perm stay per token. */
#define MHC__SKG 8
#define MHC__SKG_MAXN 8

/* The tests (which define MHC_TEST_HOOKS) set this to force the per-token path, whose results must
   be the same bits; in every other build it is the constant 0 (no mutable global state). */
#ifdef MHC_TEST_HOOKS
static int mhc__sk_group_off = 0;
#else
#define mhc__sk_group_off 0
#endif

/* Whether the projection proj of n x n can run in groups (sizes the scratch; the toggle aside). */
static int mhc__proj_group_ok(mhc_projection proj, int n) {
    return (proj == MHC_PROJ_SOFTMAX || proj == MHC_PROJ_EXP) && n <= MHC__SKG_MAXN;
}

/* Tokens per projection call: MHC__SKG, or 1 for the per-token path. */
static int mhc__proj_group(mhc_projection proj, int n) {
    return mhc__proj_group_ok(proj, n) && !mhc__sk_group_off ? MHC__SKG : 1;
}

/* Lanes gn..MHC__SKG-1 of a[len*MHC__SKG] := lane gn-1 (a short last group computes a real
   token's values again in the unused lanes, which are never read). */
static void mhc__group_pad(double *a, size_t len, int gn) {
    size_t k;
    int g;
    for (k = 0; k < len; k++)
        for (g = gn; g < MHC__SKG; g++) a[k * MHC__SKG + g] = a[k * MHC__SKG + gn - 1];
}

/* mhc__sk_step (exp/softmax forms) in every lane: Y = X / (sum + eps) along rows (cols = 0) or
   columns (cols = 1); den [n * MHC__SKG] receives the denominators. */
static void mhc__sk_step_g(double *MHC__RESTRICT Y, const double *MHC__RESTRICT X, int n, int cols, double eps,
                           double *MHC__RESTRICT den) {
    enum { G = MHC__SKG };
    int i, j, g;
    if (!cols) {
        for (i = 0; i < n; i++) {
            double s[G], *d = den + (size_t)i * G;
            const double *x = X + (size_t)i * n * G;
            double *y = Y + (size_t)i * n * G;
            for (g = 0; g < G; g++) s[g] = 0.0;
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) s[g] += x[j * G + g];
            for (g = 0; g < G; g++) d[g] = s[g] + eps;
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) y[j * G + g] = x[j * G + g] / d[g];
        }
    } else {
        for (j = 0; j < n; j++) {
            double s[G];
            for (g = 0; g < G; g++) s[g] = 0.0;
            for (i = 0; i < n; i++)
                for (g = 0; g < G; g++) s[g] += X[((size_t)i * n + j) * G + g];
            for (g = 0; g < G; g++) den[(size_t)j * G + g] = s[g] + eps;
        }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++)
                    Y[((size_t)i * n + j) * G + g] = X[((size_t)i * n + j) * G + g] / den[(size_t)j * G + g];
    }
}

/* mhc__sk_step_back (exp/softmax forms) in every lane: dX = (dY - sum(dY Y)) / den per line. */
static void mhc__sk_step_back_g(double *MHC__RESTRICT dX, const double *MHC__RESTRICT dY, const double *MHC__RESTRICT Y,
                                int n, int cols, const double *MHC__RESTRICT den) {
    enum { G = MHC__SKG };
    int a, j, g;
    size_t si = cols ? (size_t)n : 1;
    for (a = 0; a < n; a++) {
        size_t o = cols ? (size_t)a : (size_t)a * n;
        double dot[G];
        const double *d = den + (size_t)a * G;
        for (g = 0; g < G; g++) dot[g] = 0.0;
        for (j = 0; j < n; j++)
            for (g = 0; g < G; g++) dot[g] += dY[(o + j * si) * G + g] * Y[(o + j * si) * G + g];
        for (j = 0; j < n; j++)
            for (g = 0; g < G; g++) dX[(o + j * si) * G + g] = (dY[(o + j * si) * G + g] - dot[g]) / d[g];
    }
}

/* Doubles of scratch one group's projection needs (mhc__proj_fwd_g, mhc__proj_bwd_g). */
static size_t mhc__proj_group_doubles(mhc_projection proj, int n, int iters) {
    return (size_t)MHC__SKG * mhc__sk_doubles(proj, n, iters);
}

/* mhc__proj_fwd for a group: z, out [n*n*MHC__SKG] in the lane layout; w: scratch
   (mhc__proj_group_doubles) laid out as the scalar one, times MHC__SKG. keep = 1 leaves every
   iterate in w (for mhc__proj_bwd_g); keep = 0 alternates two buffers. out may be NULL. */
static void mhc__proj_fwd_g(mhc_projection proj, int n, int iters, double eps, const double *z, double *out,
                            double *w, int keep) {
    enum { G = MHC__SKG };
    size_t nn = (size_t)n * (size_t)n, nG = (size_t)n * G, nnG = nn * G, k;
    int i, j, g, s, nsteps = mhc__proj_steps(proj, iters);
    double *it = w, *P = w + (size_t)(nsteps + 1) * nnG, *den = P + 3 * nnG, *last;
    if (proj == MHC_PROJ_SOFTMAX) {
        for (i = 0; i < n; i++) {
            const double *zi = z + (size_t)i * nG;
            double *pi = P + (size_t)i * nG, *ii = it + (size_t)i * nG, mx[G], sum[G];
            for (g = 0; g < G; g++) { mx[g] = zi[g]; sum[g] = 0.0; }
            for (j = 1; j < n; j++)
                for (g = 0; g < G; g++) mx[g] = zi[j * G + g] > mx[g] ? zi[j * G + g] : mx[g];
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) { pi[j * G + g] = exp(zi[j * G + g] - mx[g]); sum[g] += pi[j * G + g]; }
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) { pi[j * G + g] /= sum[g]; ii[j * G + g] = pi[j * G + g] + eps; }
        }
    } else {
        for (k = 0; k < nnG; k++) it[k] = exp(z[k]);
    }
    for (s = 1; s <= nsteps; s++) {
        const double *X = it + (size_t)(keep ? s - 1 : (s - 1) & 1) * nnG;
        double *Y = it + (size_t)(keep ? s : s & 1) * nnG;
        mhc__sk_step_g(Y, X, n, s & 1, eps, den + (keep ? (size_t)(s - 1) * nG : 0));
    }
    last = it + (size_t)(keep ? nsteps : nsteps & 1) * nnG;
    if (out)
        for (k = 0; k < nnG; k++) out[k] = last[k];
}

/* mhc__proj_bwd for a group: dz = d(sum dout * out)/dz, all [n*n*MHC__SKG] in the lane layout. */
static void mhc__proj_bwd_g(mhc_projection proj, int n, int iters, double eps, const double *z, const double *dout,
                            double *dz, double *w) {
    enum { G = MHC__SKG };
    size_t nn = (size_t)n * (size_t)n, nG = (size_t)n * G, nnG = nn * G, k;
    int i, j, g, s, nsteps = mhc__proj_steps(proj, iters);
    double *it = w, *P = w + (size_t)(nsteps + 1) * nnG, *gr = P + nnG, *gr2 = P + 2 * nnG, *den = P + 3 * nnG;
    mhc__proj_fwd_g(proj, n, iters, eps, z, NULL, w, 1);
    for (k = 0; k < nnG; k++) gr[k] = dout[k];
    for (s = nsteps; s >= 1; s--) {
        double *t;
        mhc__sk_step_back_g(gr2, gr, it + (size_t)s * nnG, n, s & 1, den + (size_t)(s - 1) * nG);
        t = gr; gr = gr2; gr2 = t;
    }
    if (proj == MHC_PROJ_SOFTMAX) {
        for (i = 0; i < n; i++) {
            const double *pi = P + (size_t)i * nG, *gi = gr + (size_t)i * nG;
            double *di = dz + (size_t)i * nG, dot[G];
            for (g = 0; g < G; g++) dot[g] = 0.0;
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) dot[g] += gi[j * G + g] * pi[j * G + g];
            for (j = 0; j < n; j++)
                for (g = 0; g < G; g++) di[j * G + g] = pi[j * G + g] * (gi[j * G + g] - dot[g]);
        }
    } else {
        for (k = 0; k < nnG; k++) dz[k] = gr[k] * it[k];
    }
}

/* Chunks of tokens for the parallel loops: one per thread when the work is large enough. */
static int mhc__nchunks(int T, double work_per_token) {
#if MHC__OMP
    int nt = omp_get_max_threads();
    if (nt < 1) nt = 1;
    if (nt > T) nt = T;
    if ((double)T * work_per_token < (double)MHC__PAR_WORK) nt = 1;
    return nt;
#else
    (void)T; (void)work_per_token;
    return 1;
#endif
}


/* The checks of mhc_sinkhorn_forward / _backward and the tape op; *s receives their spec. */
static mhc_result mhc__proj_args(mhc_ctx *ctx, const char *fn, mhc_projection proj, int n, int iters, double eps,
                                 const void *a, const void *b, int T, mhc_hc_spec *s) {
    if (!a || !b) return mhc_fail(ctx, MHC_ERR_NULL, "%s: an array argument is NULL", fn);
    if (T < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "%s: T = %d tokens, expected >= 1", fn, T);
    if (n < 1 || n > 1024) return mhc_fail(ctx, MHC_ERR_SIZE, "%s: n = %d, expected 1..1024", fn, n);
    if ((int)proj <= (int)MHC_PROJ_PRESET || proj >= MHC_PROJ_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: projection %d is not softmax, exp, log, perm, kron or ortho", fn, (int)proj);
    if (proj == MHC_PROJ_KRON)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: projection kron needs its factor list: use mhc_kron_forward / "
                        "mhc_kron_backward", fn);
    mhc__proj_spec_make(s, proj, n, iters, eps);
    if (proj == MHC_PROJ_PERM) {
        if (n > MHC_LITE_MAX_N)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the permutation mixture needs n! logits; n = %d is too large (at most %d)",
                            fn, n, MHC_LITE_MAX_N);
        return MHC_OK;
    }
    if (proj == MHC_PROJ_ORTHO) {
        if (iters < 1 || iters > MHC_NS_MAX_ITERS)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: iters = %d (ns_iters, the Newton-Schulz iterations of ortho), expected "
                            "1..%d", fn, iters, MHC_NS_MAX_ITERS);
        return MHC_OK;
    }
    if (iters < 1 || iters > 100000)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: iters = %d, expected 1..100000", fn, iters);
    if (!mhc__finite(eps) || eps < 0.0)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: eps = %g, expected a finite value >= 0", fn, eps);
    return MHC_OK;
}

/* The checks of mhc_kron_forward / _backward; *s receives their spec. */
static mhc_result mhc__kron_args(mhc_ctx *ctx, const char *fn, int nfactors, const int *factors, const void *a,
                                 const void *b, int T, mhc_hc_spec *s) {
    if (!a || !b || !factors) return mhc_fail(ctx, MHC_ERR_NULL, "%s: an array argument is NULL", fn);
    if (T < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "%s: T = %d tokens, expected >= 1", fn, T);
    mhc__proj_spec_make(s, MHC_PROJ_KRON, 1, 1, 0.0);
    return mhc__kron_set(ctx, fn, nfactors, factors, 0, s);
}

/* Doubles of scratch per chunk of tokens for the raw-array projections (per-token: w, z, o, g, dz;
   in groups: w, then z, dout and out/dz in the lane layout). */
static size_t mhc__sk_per(const mhc_hc_spec *s) {
    size_t nn = (size_t)s->n * (size_t)s->n, per = mhc__proj_token_doubles(s), grp;
    if (!mhc__proj_group_ok(s->projection, s->n) || !mhc__sk_plain(s)) return per;
    grp = mhc__proj_group_doubles(s->projection, s->n, s->iters) + 3 * nn * MHC__SKG;
    return grp > per ? grp : per;
}

/* Scratch for the raw-array projections: nch chunks of *per doubles (0 on overflow). */
static size_t mhc__sk_scratch(const mhc_hc_spec *s, int T, int *nch, size_t *per) {
    size_t tot;
    *per = mhc__sk_per(s);
    *nch = mhc__nchunks(T, (double)*per * 4.0);
    if (!mhc__mul_ok(*per, (size_t)*nch, &tot) || tot > SIZE_MAX / sizeof(double)) return 0;
    return tot;
}

/* Forward (y = out [T,n,n]) or backward (y = d_logits [T,nres] += ..., dy = d_out) over tokens,
   one chunk of tokens per thread, each with its own scratch; softmax/exp in groups of MHC__SKG
   tokens of the chunk (mhc__proj_fwd_g) when the spec has the default Sinkhorn conventions, the
   rest per token (mhc__proj_token). */
static void mhc__sk_exec(const mhc_hc_spec *s, mhc_real *y, const mhc_real *dy, const mhc_real *logits, int T,
                         int backward, double *work, int nch, size_t per) {
    mhc_projection proj = s->projection;
    int n = s->n, iters = s->iters;
    double eps = s->sinkhorn_eps;
    size_t nn = (size_t)n * (size_t)n, nres = (size_t)s->nres;
    int ch, gs = mhc__sk_plain(s) ? mhc__proj_group(proj, n) : 1;
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        double *w = work + (size_t)ch * per;
        int t0 = (int)((long long)T * ch / nch), t1 = (int)((long long)T * (ch + 1) / nch), t;
        size_t k;
        if (gs > 1) {
            double *zg = w + mhc__proj_group_doubles(proj, n, iters), *dg = zg + nn * MHC__SKG, *og = dg + nn * MHC__SKG;
            int gn, u;
            for (t = t0; t < t1; t += gn) {
                gn = t1 - t < MHC__SKG ? t1 - t : MHC__SKG;
                for (u = 0; u < gn; u++)
                    for (k = 0; k < nn; k++) zg[k * MHC__SKG + u] = (double)logits[(size_t)(t + u) * nn + k];
                mhc__group_pad(zg, nn, gn);
                if (!backward) {
                    mhc__proj_fwd_g(proj, n, iters, eps, zg, og, w, 0);
                    for (u = 0; u < gn; u++)
                        for (k = 0; k < nn; k++) y[(size_t)(t + u) * nn + k] = (mhc_real)og[k * MHC__SKG + u];
                } else {
                    for (u = 0; u < gn; u++)
                        for (k = 0; k < nn; k++) dg[k * MHC__SKG + u] = (double)dy[(size_t)(t + u) * nn + k];
                    mhc__group_pad(dg, nn, gn);
                    mhc__proj_bwd_g(proj, n, iters, eps, zg, dg, og, w);
                    for (u = 0; u < gn; u++)
                        for (k = 0; k < nn; k++) y[(size_t)(t + u) * nn + k] += (mhc_real)og[k * MHC__SKG + u];
                }
            }
        } else {
            for (t = t0; t < t1; t++)
                mhc__proj_token(s, logits + (size_t)t * nres, backward ? NULL : y + (size_t)t * nn,
                                backward ? y + (size_t)t * nres : NULL, backward ? dy + (size_t)t * nn : NULL, w);
        }
    }
}

/* The projections' scratch against ctx's limit (mhc__scratch_ok), with the formula. */
static mhc_hc_spec mhc__spec_zero(void) {
    mhc_hc_spec s;
    memset(&s, 0, sizeof s);
    return s;
}

static mhc_result mhc__sk_scratch_ok(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, int nch, size_t total) {
    char what[256];
    int n = s->n, g = mhc__sk_plain(s) ? mhc__proj_group(s->projection, n) : 1;
    if (s->projection == MHC_PROJ_PERM)
        snprintf(what, sizeof what, "the permutation mixture (n = %d: 2 n! + 8 doubles per token, %d chunk%s of tokens)",
                 n, nch, nch == 1 ? "" : "s");
    else if (s->projection == MHC_PROJ_KRON)
        snprintf(what, sizeof what, "the Kronecker mixture (n = %d: 2 R + 2 sum_k a_k^2 + 8 doubles per token, R = %d "
                 "logits, %d chunk%s of tokens)", n, s->nres, nch, nch == 1 ? "" : "s");
    else if (s->projection == MHC_PROJ_ORTHO)
        snprintf(what, sizeof what, "the orthostochastic projection (n = %d, %d Newton-Schulz iterations: (K + 8) n^2 + 8 "
                 "doubles per token, %d chunk%s of tokens)", n, s->ns_iters, nch, nch == 1 ? "" : "s");
    else
        snprintf(what, sizeof what, "the projection (n = %d, %d iterations: the exact backward keeps every iterate, "
                 "(S + 4) n^2 + S n + 8 doubles per token with S = %d steps, %d token%s at a time, %d chunk%s)", n,
                 s->iters, mhc__proj_steps(s->projection, s->iters), g, g == 1 ? "" : "s", nch, nch == 1 ? "" : "s");
    return mhc__scratch_ok(ctx, fname, total, what);
}

/* Shared body of mhc_sinkhorn_* and mhc_kron_*. */
static mhc_result mhc__sinkhorn_run(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, mhc_real *y,
                                    const mhc_real *dy, const mhc_real *logits, int T, int backward) {
    size_t per, total;
    int nch;
    double *work;
    mhc_result r;
    total = mhc__sk_scratch(s, T, &nch, &per);
    if (total == 0) return mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: T = %d, n = %d: sizes overflow", fname, T, s->n);
    if ((r = mhc__sk_scratch_ok(ctx, fname, s, nch, total)) != MHC_OK) return r;
    work = MHC__CAST(double *, MHC_MALLOC(total * sizeof(double)));
    if (!work) return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch", fname, total * sizeof(double));
    mhc__sk_exec(s, y, dy, logits, T, backward, work, nch, per);
    MHC_FREE(work);
    return MHC_OK;
}

MHCDEF mhc_result mhc_sinkhorn_forward(mhc_ctx *ctx, mhc_projection proj, int n, int iters, double eps,
                                       mhc_real *out, const mhc_real *logits, int T) {
    mhc_hc_spec s = mhc__spec_zero();   /* filled by the check (zeroed: gcc -O2 cannot see that) */
    mhc_result r = mhc__proj_args(ctx, "mhc_sinkhorn_forward", proj, n, iters, eps, out, logits, T, &s);
    if (r != MHC_OK) return r;
    return mhc__sinkhorn_run(ctx, "mhc_sinkhorn_forward", &s, out, NULL, logits, T, 0);
}

MHCDEF mhc_result mhc_sinkhorn_backward(mhc_ctx *ctx, mhc_projection proj, int n, int iters, double eps,
                                        mhc_real *d_logits, const mhc_real *d_out, const mhc_real *logits, int T) {
    mhc_hc_spec s = mhc__spec_zero();   /* filled by the check (zeroed: gcc -O2 cannot see that) */
    mhc_result r = mhc__proj_args(ctx, "mhc_sinkhorn_backward", proj, n, iters, eps, d_logits, logits, T, &s);
    if (r != MHC_OK) return r;
    if (!d_out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_sinkhorn_backward: d_out is NULL");
    return mhc__sinkhorn_run(ctx, "mhc_sinkhorn_backward", &s, d_logits, d_out, logits, T, 1);
}

MHCDEF mhc_result mhc_kron_forward(mhc_ctx *ctx, int nfactors, const int *factors, mhc_real *out,
                                   const mhc_real *logits, int T) {
    mhc_hc_spec s = mhc__spec_zero();
    mhc_result r = mhc__kron_args(ctx, "mhc_kron_forward", nfactors, factors, out, logits, T, &s);
    if (r != MHC_OK) return r;
    return mhc__sinkhorn_run(ctx, "mhc_kron_forward", &s, out, NULL, logits, T, 0);
}

MHCDEF mhc_result mhc_kron_backward(mhc_ctx *ctx, int nfactors, const int *factors, mhc_real *d_logits,
                                    const mhc_real *d_out, const mhc_real *logits, int T) {
    mhc_hc_spec s = mhc__spec_zero();
    mhc_result r = mhc__kron_args(ctx, "mhc_kron_backward", nfactors, factors, d_logits, logits, T, &s);
    if (r != MHC_OK) return r;
    if (!d_out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_kron_backward: d_out is NULL");
    return mhc__sinkhorn_run(ctx, "mhc_kron_backward", &s, d_logits, d_out, logits, T, 1);
}

/* The projection of a spec with its knobs (mhc_hc_proj_*): the spec's fields checked (the
   projection's own: n, nres, iters and eps or ns_iters or the Kronecker factors; the knobs in
   range), then mhc__sinkhorn_run on it: with the default conventions exactly mhc_sinkhorn_* /
   mhc_kron_* (the same path, the same bits); otherwise one token at a time. */
static mhc_result mhc__hc_proj_run(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, mhc_real *y,
                                   const mhc_real *dy, const mhc_real *logits, int T, int backward) {
    mhc_hc_spec chk;
    mhc_result r;
    int nres;
    if (!s) return mhc_fail(ctx, MHC_ERR_NULL, "%s: spec is NULL", fname);
    if (s->projection == MHC_PROJ_KRON) {
        if ((r = mhc__kron_args(ctx, fname, s->kron_count, s->kron_factors, y, logits, T, &chk)) != MHC_OK) return r;
        if (chk.n != s->n)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.kron_factors have the product %d, not spec.n = %d (use "
                            "mhc_hc_resolve)", fname, chk.n, s->n);
        nres = chk.nres;
    } else {
        if ((r = mhc__proj_args(ctx, fname, s->projection, s->n, s->projection == MHC_PROJ_ORTHO ? s->ns_iters : s->iters,
                                s->sinkhorn_eps, y, logits, T, &chk)) != MHC_OK)
            return r;
        nres = chk.nres;
    }
    if (backward && !dy) return mhc_fail(ctx, MHC_ERR_NULL, "%s: d_out is NULL", fname);
    if (s->nres != nres)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.nres = %d does not match n = %d and projection %s (%d; use "
                        "mhc_hc_resolve)", fname, s->nres, s->n, mhc_projection_name(s->projection), nres);
    if ((int)s->sinkhorn_eps_mode < 0 || s->sinkhorn_eps_mode >= MHC_SK_EPS_COUNT || (int)s->sinkhorn_order < 0 ||
        s->sinkhorn_order >= MHC_SK_ORDER_COUNT || (int)s->exp_shift < 0 || s->exp_shift >= MHC_EXP_SHIFT_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.sinkhorn_eps_mode = %d, sinkhorn_order = %d or exp_shift = %d is "
                        "out of range", fname, (int)s->sinkhorn_eps_mode, (int)s->sinkhorn_order, (int)s->exp_shift);
    chk.sinkhorn_eps_mode = s->sinkhorn_eps_mode;
    chk.sinkhorn_order = s->sinkhorn_order;
    chk.exp_shift = s->projection == MHC_PROJ_EXP || s->projection == MHC_PROJ_LOG ? s->exp_shift : MHC_EXP_SHIFT_NONE;
    return mhc__sinkhorn_run(ctx, fname, &chk, y, dy, logits, T, backward);
}

MHCDEF mhc_result mhc_hc_proj_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, const mhc_real *logits, int T) {
    return mhc__hc_proj_run(ctx, "mhc_hc_proj_forward", s, out, NULL, logits, T, 0);
}

MHCDEF mhc_result mhc_hc_proj_backward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *d_logits, const mhc_real *d_out,
                                       const mhc_real *logits, int T) {
    return mhc__hc_proj_run(ctx, "mhc_hc_proj_backward", s, d_logits, d_out, logits, T, 1);
}

/* ---- the fused pre step (mHC, lite, head), HC and none ----
   The fast path of mhc_ref_hc_pre_* and mhc_ref_hc_head_* above: the same numbers (to
   rounding; tests/test_hc_ref.c), computed with the logits of all tokens as one GEMM, the
   tokens in chunks over threads, the projection in 8-token groups. Read the references first. */

typedef struct mhc__pre_io {
    const mhc_hc_spec *s;
    int head, T, C;
    const mhc_real *x, *fn, *scale, *base, *nw;
    mhc_real *li, *hpre, *hpost, *hres;                 /* forward outputs (all but li may be NULL) */
    double *saved;                                      /* forward: T*(mr+1) dots and rstd, or NULL */
    const double *saved_in;                             /* backward: the forward's saved values, or NULL */
    const mhc_real *g_li, *g_hpre, *g_hpost, *g_hres;   /* backward: incoming gradients, NULL = 0 */
    mhc_real *dx, *dfn, *dscale, *dbase, *dnw;          /* backward: accumulated, NULL = not needed */
} mhc__pre_io;

/* Which kernel: 0 none, 1 HC, 2 mHC/lite/head with the default conventions (the fast path), 3
   mHC/lite/head with any other norm or (layer) Sinkhorn knob value (the per-token path,
   mhc__pre_fwd_tok / mhc__pre_bwd_tok). */
static int mhc__pre_kind(const mhc__pre_io *io) {
    if (io->head) return mhc__norm_plain(io->s) ? 2 : 3;
    if (io->s->variant == MHC_VARIANT_NONE) return 0;
    if (io->s->variant == MHC_VARIANT_HC) return 1;
    return mhc__norm_plain(io->s) && mhc__sk_plain(io->s) ? 2 : 3;
}

static int mhc__pre_rows(const mhc__pre_io *io) { return io->head ? io->s->n : io->s->m; }

/* mHC/lite/head: one chunk's scratch, for a group of tokens (lanes = MHC__SKG where the
   projection runs in groups, mhc__proj_group_ok; else 1): lane u's values dot + u*mr, du + u*mr,
   z + u*nres, sp + u*n, spo + u*n, rstd[u]; one token's dz [nres], otmp, comb, dcomb [n*n]; the
   group's logits, incoming gradients and projections (or their gradients) zg, dg, og in the
   lane layout [n*n*MHC__SKG]; pw, the projection's scratch. */
typedef struct mhc__pre_chunk {
    double *dot, *du, *z, *sp, *spo, *rstd;
    double *dz, *otmp, *comb, *dcomb;
    double *zg, *dg, *og, *pw;
    mhc_real *hr;               /* one token's h_pre in mhc_real (the weights of its stream mix) */
} mhc__pre_chunk;

/* len doubles at offset *o of w (NULL while only counting), *o += len */
static double *mhc__carve(double *w, size_t *o, size_t len) {
    double *p = w ? w + *o : NULL;
    *o += len;
    return p;
}

/* Lays one chunk's scratch out at w (mhc__pre_chunk); returns its size in doubles (w may be NULL). */
static size_t mhc__pre_chunk_map(const mhc__pre_io *io, double *w, mhc__pre_chunk *c) {
    const mhc_hc_spec *s = io->s;
    size_t n = (size_t)s->n, nn = n * n, mr = (size_t)mhc__pre_rows(io), nres = io->head ? 0 : (size_t)s->nres, o = 0;
    int grp = !io->head && mhc__proj_group_ok(s->projection, s->n);
    size_t L = grp ? MHC__SKG : 1, G = grp ? nn * MHC__SKG : 0;
    size_t pj = io->head ? 0 : grp ? mhc__proj_group_doubles(s->projection, s->n, s->iters) : mhc__proj_doubles(s);
    c->dot = mhc__carve(w, &o, L * mr);
    c->du = mhc__carve(w, &o, L * mr);
    c->z = mhc__carve(w, &o, L * nres);
    c->sp = mhc__carve(w, &o, L * n);
    c->spo = mhc__carve(w, &o, L * n);
    c->rstd = mhc__carve(w, &o, L);
    c->dz = mhc__carve(w, &o, nres);
    c->otmp = mhc__carve(w, &o, nn);
    c->comb = mhc__carve(w, &o, nn);
    c->dcomb = mhc__carve(w, &o, nn);
    c->zg = mhc__carve(w, &o, G);
    c->dg = mhc__carve(w, &o, G);
    c->og = mhc__carve(w, &o, G);
    c->pw = mhc__carve(w, &o, pj);
    c->hr = (mhc_real *)(void *)mhc__carve(w, &o, n);   /* n doubles hold n mhc_real */
    return o + 8;
}

/* The per-token path's chunk (mhc__pre_fwd_tok / mhc__pre_bwd_tok, below). */
typedef struct mhc__tok_chunk {
    double *rs, *gs, *pdot, *mix, *du, *sp, *spo, *z, *dz, *comb, *dcomb, *otmp, *pw, *dxa;
} mhc__tok_chunk;

/* Lays one chunk's scratch out at w (NULL while counting); returns its size in doubles. */
static size_t mhc__tok_chunk_map(const mhc__pre_io *io, double *w, mhc__tok_chunk *c) {
    const mhc_hc_spec *s = io->s;
    size_t n = (size_t)s->n, nn = n * n, mr = (size_t)mhc__pre_rows(io), nres = io->head ? 0 : (size_t)s->nres, o = 0;
    size_t pj = io->head ? 0 : mhc__proj_doubles(s);
    c->rs = mhc__carve(w, &o, n);
    c->gs = mhc__carve(w, &o, n);
    c->pdot = mhc__carve(w, &o, n * mr);
    c->mix = mhc__carve(w, &o, mr);
    c->du = mhc__carve(w, &o, mr);
    c->sp = mhc__carve(w, &o, n);
    c->spo = mhc__carve(w, &o, n);
    c->z = mhc__carve(w, &o, nres);
    c->dz = mhc__carve(w, &o, nres);
    c->comb = mhc__carve(w, &o, nn);
    c->dcomb = mhc__carve(w, &o, nn);
    c->otmp = mhc__carve(w, &o, nn);
    c->pw = mhc__carve(w, &o, pj);
    c->dxa = mhc__carve(w, &o, n * (size_t)io->C);
    return o + 8;
}

/* Per-chunk scratch (doubles). */
static size_t mhc__pre_chunk_doubles(const mhc__pre_io *io) {
    const mhc_hc_spec *s = io->s;
    size_t n = (size_t)s->n, C = (size_t)io->C, nn = n * n;
    mhc__pre_chunk c;
    mhc__tok_chunk tc;
    switch (mhc__pre_kind(io)) {
    case 0: return 8;
    case 1: return n * C + C + 2 * n * (n + 2) + n + 3 * nn + 8;
    case 3: return mhc__tok_chunk_map(io, NULL, &tc);
    default: return mhc__pre_chunk_map(io, NULL, &c);
    }
}

/* The scratch after the chunks (doubles): HC's per-token reduction buffer (backward only); for
   mHC/lite/head the GEMM buffers and per-token reductions of mhc__pre_big_map (both directions). */
static size_t mhc__pre_tok_doubles(const mhc__pre_io *io, int backward, int *ok) {
    size_t n = (size_t)io->s->n, T = (size_t)io->T, mr = (size_t)mhc__pre_rows(io), D = n * (size_t)io->C;
    size_t dbl = 0, reals = 0, a, tot = 0;
    *ok = 1;
    switch (mhc__pre_kind(io)) {
    case 0: return 0;
    case 1:
        if (!backward) return 0;
        *ok = mhc__mul_ok((2 * n + n * n) + n * (n + 2) + 3, T, &dbl);
        reals = 0;
        break;
    case 3:   /* mhc__pre_bwd_tok: du_all, dsc_all, coef (doubles), x' (reals) */
        if (!backward) return 0;
        *ok = mhc__mul_ok(2 * mr + 3, T, &dbl) && mhc__mul_ok(D, T, &reals) && reals < SIZE_MAX / 64 &&
              dbl < SIZE_MAX / 64;
        if (!*ok) return 0;
        break;
    default:
        *ok = mhc__mul_ok(mr, T, &a) && mhc__mul_ok(mr, D, &tot) && a < SIZE_MAX / 64 && tot < SIZE_MAX / 64;
        if (!*ok) return 0;                              /* (then no sum below can wrap) */
        dbl = backward ? a + 3 * T : 0;                  /* du_all, dsc_all */
        reals = a + (io->nw ? tot : 0);                  /* dotT, W */
        if (backward) reals += a + (io->nw ? tot : 0);   /* coef, P */
        break;
    }
    tot = dbl + (reals * sizeof(mhc_real) + sizeof(double) - 1) / sizeof(double);
    *ok = *ok && tot >= dbl && tot < SIZE_MAX / (4 * sizeof(double));
    return tot;
}

/* Work per token (multiply-adds), for the chunking decision. */
static double mhc__pre_token_work(const mhc__pre_io *io) {
    double n = io->s->n, C = io->C;
    switch (mhc__pre_kind(io)) {
    case 0: return C;
    case 1: return n * C * (n + 4);
    default: return n * C * (mhc__pre_rows(io) + 2) + (io->head ? 0.0 : 4.0 * io->s->iters * n * n);
    }
}

/* y[0..len) += c x[0..len). In blocks of a fixed length so that -O2 (GCC's "very cheap"
   vectorizer) vectorizes it; every y[j] still gets its terms in the same order. */
static void mhc__axpy(double *y, double c, const mhc_real *x, int len) {
    int j = 0, q;
    for (; j + 16 <= len; j += 16)
        for (q = 0; q < 16; q++) y[j + q] += c * (double)x[j + q];
    for (; j < len; j++) y[j] += c * (double)x[j];
}

/* acc[k][j] = sum_r coef[r*m + k] X[r*D + j];  dW[k][j] += acc[k][j] (* nw[j]);
   dnw[j] += sum_k acc[k][j] W[k][j]. Parallel over column blocks j (each output owned by one
   block); rows r summed in order. */
static void mhc__acc_reduce(mhc_real *dW, mhc_real *dnw, const double *coef, const mhc_real *X, const mhc_real *W,
                            const mhc_real *nw, int R, int m, int D) {
    enum { KB = 32, JB = 64 };
    int nj = (D + JB - 1) / JB, u;
    if (!dW && !dnw) return;
    MHC__OMP_FOR((double)R * m * D > MHC__PAR_WORK && nj > 1)
    for (u = 0; u < nj; u++) {
        double acc[KB * JB], nwacc[JB];
        int j0 = u * JB, jn = D - j0 < JB ? D - j0 : JB, k0, r, k, j;
        for (j = 0; j < jn; j++) nwacc[j] = 0.0;
        for (k0 = 0; k0 < m; k0 += KB) {
            int kn = m - k0 < KB ? m - k0 : KB;
            for (k = 0; k < kn * JB; k++) acc[k] = 0.0;
            for (r = 0; r < R; r++) {
                const double *cr = coef + (size_t)r * (size_t)m + (size_t)k0;
                const mhc_real *xr = X + (size_t)r * (size_t)D + (size_t)j0;
                for (k = 0; k < kn; k++)
                    if (cr[k] != 0.0) mhc__axpy(acc + k * JB, cr[k], xr, jn);
            }
            for (k = 0; k < kn; k++) {
                size_t row = (size_t)(k0 + k) * (size_t)D + (size_t)j0;
                for (j = 0; j < jn; j++) {
                    double a = acc[k * JB + j];
                    if (dW) dW[row + (size_t)j] += (mhc_real)(nw ? a * (double)nw[j0 + j] : a);
                    if (dnw) nwacc[j] += a * (double)W[row + (size_t)j];
                }
            }
        }
        if (dnw)
            for (j = 0; j < jn; j++) dnw[j0 + j] += (mhc_real)nwacc[j];
    }
}

/* sum_j x[j]^2 (double) in MHC__CB lanes (eight independent vector chains: a sum of squares
   over n*C is latency-bound with fewer), then the lanes in a fixed order. */
static double mhc__sumsq(const mhc_real *x, int len) {
    double acc[MHC__CB], s = 0.0;
    int j = 0, q;
    for (q = 0; q < MHC__CB; q++) acc[q] = 0.0;
    for (; j + MHC__CB <= len; j += MHC__CB)
        for (q = 0; q < MHC__CB; q++) acc[q] += (double)x[j + q] * (double)x[j + q];
    for (q = 0; j < len; j++, q++) acc[q] += (double)x[j] * (double)x[j];
    for (q = 0; q < MHC__CB; q += MHC__LN) s += mhc__lanes_sum(acc + q);
    return s;
}

/* mHC/lite/head: the scratch after the chunks (mhc__pre_tok_doubles), laid out as
   doubles: du_all[T*mr], dsc_all[T*3] (backward); then reals: dotT[mr*T] (the GEMM's logits,
   row k = logit k of every token), W[mr*D] (fn * norm_weight, only with a norm weight),
   coef[T*mr] (backward: d dot), P[mr*D] (backward with a norm weight: coef^T x). */
typedef struct mhc__pre_big {
    double *du_all, *dsc_all;
    mhc_real *dotT, *W, *coef, *P;
} mhc__pre_big;

static void mhc__pre_big_map(const mhc__pre_io *io, int backward, double *tok, mhc__pre_big *b) {
    size_t T = (size_t)io->T, mr = (size_t)mhc__pre_rows(io), D = (size_t)io->s->n * (size_t)io->C;
    mhc_real *r;
    b->du_all = tok;
    b->dsc_all = tok + (backward ? T * mr : 0);
    r = (mhc_real *)(void *)(b->dsc_all + (backward ? T * 3 : 0));
    b->dotT = r; r += mr * T;
    b->W = io->nw ? r : NULL; r += io->nw ? mr * D : 0;
    b->coef = backward ? r : NULL; r += backward ? T * mr : 0;
    b->P = backward && io->nw ? r : NULL;
}

/* The logits' raw dots of every token, dotT[k*T + t] = sum_j x[t][j] w[k][j], as one packed
   GEMM (mhc_k_matmul_abt, deterministic for any thread count); W = fn, or fn * norm_weight. */
static const mhc_real *mhc__pre_dots(const mhc__pre_io *io, const mhc__pre_big *b) {
    int mr = mhc__pre_rows(io), D = io->s->n * io->C, k, j;
    const mhc_real *W = io->fn;
    if (io->nw) {
        for (k = 0; k < mr; k++)
            for (j = 0; j < D; j++) b->W[(size_t)k * D + j] = io->fn[(size_t)k * D + j] * io->nw[j];
        W = b->W;
    }
    if (!io->saved_in) mhc_k_matmul_abt(b->dotT, W, io->x, mr, D, io->T, 0);
    return W;
}

/* mHC/lite/head, one token: the dots and rstd (saved by the forward, or the GEMM's dots and
   one pass over x for the sum of squares). */
static void mhc__mix_token(const mhc__pre_io *io, const mhc__pre_big *b, int t, double *dot, double *rstd) {
    int D = io->s->n * io->C, mr = mhc__pre_rows(io), k;
    if (io->saved_in) {
        const double *sv = io->saved_in + (size_t)t * (size_t)(mr + 1);
        for (k = 0; k < mr; k++) dot[k] = sv[k];
        *rstd = sv[mr];
        return;
    }
    {
        const mhc_real *xt = io->x + (size_t)t * (size_t)D;
        for (k = 0; k < mr; k++) dot[k] = (double)b->dotT[(size_t)k * (size_t)io->T + (size_t)t];
        *rstd = 1.0 / sqrt(mhc__sumsq(xt, D) / (double)D + io->s->norm_eps);
    }
}

/* h_res of token t from its projection comb [n*n] (orientation comb_t: the transpose). */
static void mhc__pre_put_A(const mhc__pre_io *io, int t, const double *comb) {
    int n = io->s->n, i, j;
    size_t nn = (size_t)n * (size_t)n;
    mhc_real *A = io->hres + (size_t)t * nn;
    if (mhc__proj_transposed(io->s)) {
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) A[i * n + j] = (mhc_real)comb[j * n + i];
    } else {
        for (i = 0; i < (int)nn; i++) A[i] = (mhc_real)comb[i];
    }
}

/* The incoming gradient of token t's projection, dcomb [n*n], from d h_res (undoing the orientation). */
static void mhc__pre_get_dcomb(const mhc__pre_io *io, int t, double *dcomb) {
    int n = io->s->n, i, j;
    size_t nn = (size_t)n * (size_t)n;
    const mhc_real *gA = io->g_hres + (size_t)t * nn;
    if (mhc__proj_transposed(io->s)) {
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) dcomb[i * n + j] = (double)gA[j * n + i];
    } else {
        for (i = 0; i < (int)nn; i++) dcomb[i] = (double)gA[i];
    }
}

/* mHC/lite/head forward: mix = (xf . w_k) r; h_pre = sigmoid(mix s0 + b) + pre_eps;
   h_post = sigmoid(mix s1 + b) post_mult; A = orient(project(mix s2 + b)); li = sum_i h_pre[i] x_i.
   The dots of all tokens are one GEMM (mhc__pre_dots); then one pass per token, parallel over
   chunks of tokens: its sum of squares, gates and li (x_t is then in L1), and the projections,
   MHC__SKG tokens of the chunk at a time where they run in groups (mhc__proj_fwd_g). */
static void mhc__pre_fwd_mhc(const mhc__pre_io *io, double *work, int nch, double *tok) {
    const mhc_hc_spec *s = io->s;
    int n = s->n, C = io->C, D = n * C, mr = mhc__pre_rows(io), ch;
    int proj = !io->head && io->hres, gs = proj ? mhc__proj_group(s->projection, n) : 1;
    size_t per = mhc__pre_chunk_doubles(io), nn = (size_t)n * (size_t)n;
    mhc__pre_big b;
    mhc__pre_big_map(io, 0, tok, &b);
    mhc__pre_dots(io, &b);
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        mhc__pre_chunk w;
        double *dot, *z, *sp, *spo, rstd;
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), tg, gn, u, i;
        size_t k;
        mhc__pre_chunk_map(io, work + (size_t)ch * per, &w);
        dot = w.dot; z = w.z; sp = w.sp; spo = w.spo;
        for (tg = t0; tg < t1; tg += gn) {
            gn = t1 - tg < gs ? t1 - tg : gs;
            for (u = 0; u < gn; u++) {
                int t = tg + u;
                const mhc_real *xt = io->x + (size_t)t * (size_t)D;
                mhc_real *lt = io->li + (size_t)t * C;
                mhc__mix_token(io, &b, t, dot, &rstd);
                if (io->saved) {
                    double *sv = io->saved + (size_t)t * (size_t)(mr + 1);
                    for (i = 0; i < mr; i++) sv[i] = dot[i];
                    sv[mr] = rstd;
                }
                mhc__gates_token(n, s->nres, io->head, io->scale, io->base, dot, rstd, sp, spo, z);
                for (i = 0; i < n; i++) sp[i] += s->pre_eps;               /* h_pre */
                if (io->hpre)
                    for (i = 0; i < n; i++) io->hpre[(size_t)t * n + i] = (mhc_real)sp[i];
                if (!io->head && io->hpost)
                    for (i = 0; i < n; i++) io->hpost[(size_t)t * n + i] = (mhc_real)(spo[i] * s->post_mult);
                if (proj && gs > 1) {
                    for (k = 0; k < nn; k++) w.zg[k * MHC__SKG + u] = z[k];   /* into lane u */
                } else if (proj) {
                    mhc__proj_fwd(s, z, w.comb, w.pw);
                    mhc__pre_put_A(io, t, w.comb);
                }
                /* li = sum_i h_pre[i] x_i (a stream mix, in mhc_real: see PRECISION) */
                for (i = 0; i < n; i++) w.hr[i] = (mhc_real)sp[i];
                mhc__mix_rows(lt, 0, w.hr, 1, xt, (size_t)C, n, NULL, 0, C);
            }
            if (proj && gs > 1) {
                mhc__group_pad(w.zg, nn, gn);
                mhc__proj_fwd_g(s->projection, n, s->iters, s->sinkhorn_eps, w.zg, w.og, w.pw, 0);
                for (u = 0; u < gn; u++) {
                    for (k = 0; k < nn; k++) w.comb[k] = w.og[k * MHC__SKG + u];
                    mhc__pre_put_A(io, tg + u, w.comb);
                }
            }
        }
    }
}

/* Its backward (derived in docs/tour.md Sec. 6): du_pre = (dh_pre + dli . x_i) s'(.), du_post =
   dh_post post_mult s'(.), du_res = dz (mhc__proj_bwd); dbase += du; dscale[g] += du mix;
   ddot = du s_g r; dr = sum du s_g dot; dx += sum_k ddot[k] w[k] - dr r^3 x / D + h_pre dli;
   dfn[k][j] += sum_t ddot[t][k] x[t][j] (* nw[j]); dnw[j] += sum_k fn[k][j] sum_t ddot[t][k] x[t][j].
   One pass per token (parallel over chunks) for everything but the two products with ddot, which
   are packed GEMMs over all tokens: dx += ddot W (mhc_k_matmul_ab) and dfn from ddot^T x
   (mhc_k_matmul_atb). */
static void mhc__pre_bwd_mhc(const mhc__pre_io *io, double *work, int nch, double *tok) {
    const mhc_hc_spec *s = io->s;
    int n = s->n, C = io->C, D = n * C, mr = mhc__pre_rows(io), nres = io->head ? 0 : s->nres, ch, k;
    int proj = !io->head && io->g_hres, gs = proj ? mhc__proj_group(s->projection, n) : 1;
    size_t per = mhc__pre_chunk_doubles(io), nn = (size_t)n * (size_t)n;
    mhc__pre_big b;
    const mhc_real *W;
    mhc__pre_big_map(io, 1, tok, &b);
    W = mhc__pre_dots(io, &b);
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        mhc__pre_chunk w;
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), tg, gn, u, i, c, k;
        size_t q;
        mhc__pre_chunk_map(io, work + (size_t)ch * per, &w);
        for (tg = t0; tg < t1; tg += gn) {
            gn = t1 - tg < gs ? t1 - tg : gs;
            /* each token of the group (lane u): gates, du of the pre and post gates, the logits and
               incoming gradient of its projection */
            for (u = 0; u < gn; u++) {
                int t = tg + u;
                const mhc_real *xt = io->x + (size_t)t * (size_t)D;
                const mhc_real *gli = io->g_li ? io->g_li + (size_t)t * C : NULL;
                double *dot = w.dot + (size_t)u * mr, *du = w.du + (size_t)u * mr, *z = w.z + (size_t)u * nres;
                double *sp = w.sp + (size_t)u * n, *spo = w.spo + (size_t)u * n;
                mhc__mix_token(io, &b, t, dot, &w.rstd[u]);
                mhc__gates_token(n, s->nres, io->head, io->scale, io->base, dot, w.rstd[u], sp, spo, z);
                if (gli) mhc__dots(du, gli, xt, (size_t)C, n, C);     /* du[i] = g_li . x_i, for now */
                for (i = 0; i < n; i++) {
                    double dh = io->g_hpre ? (double)io->g_hpre[(size_t)t * n + i] : 0.0;
                    if (gli) dh += du[i];
                    du[i] = dh * sp[i] * (1.0 - sp[i]);
                }
                if (io->head) continue;
                for (i = 0; i < n; i++) {
                    double dh = io->g_hpost ? (double)io->g_hpost[(size_t)t * n + i] : 0.0;
                    du[n + i] = dh * s->post_mult * spo[i] * (1.0 - spo[i]);
                }
                if (!proj) {
                    for (k = 0; k < nres; k++) du[2 * n + k] = 0.0;
                } else if (gs > 1) {
                    mhc__pre_get_dcomb(io, t, w.dcomb);
                    for (q = 0; q < nn; q++) {
                        w.zg[q * MHC__SKG + u] = z[q];
                        w.dg[q * MHC__SKG + u] = w.dcomb[q];
                    }
                } else {
                    mhc__pre_get_dcomb(io, t, w.dcomb);
                    mhc__proj_bwd(s, z, w.dcomb, w.dz, w.pw, w.otmp);
                    for (k = 0; k < nres; k++) du[2 * n + k] = w.dz[k];
                }
            }
            /* du of the residual logits: the group's projections backward together */
            if (proj && gs > 1) {
                mhc__group_pad(w.zg, nn, gn);
                mhc__group_pad(w.dg, nn, gn);
                mhc__proj_bwd_g(s->projection, n, s->iters, s->sinkhorn_eps, w.zg, w.dg, w.og, w.pw);
                for (u = 0; u < gn; u++)
                    for (k = 0; k < nres; k++) w.du[(size_t)u * mr + 2 * n + k] = w.og[(size_t)k * MHC__SKG + u];
            }
            for (u = 0; u < gn; u++) {
                int t = tg + u;
                const mhc_real *xt = io->x + (size_t)t * (size_t)D;
                const mhc_real *gli = io->g_li ? io->g_li + (size_t)t * C : NULL;
                const double *dot = w.dot + (size_t)u * mr, *du = w.du + (size_t)u * mr, *sp = w.sp + (size_t)u * n;
                double *dsc = b.dsc_all + (size_t)t * 3, drstd = 0.0, s0, sc, rstd = w.rstd[u];
                mhc_real *coef = b.coef + (size_t)t * mr;
                /* gate scales: d scale[g] = sum du * mix; d mix = du * scale[g] */
                dsc[0] = dsc[1] = dsc[2] = 0.0;
                s0 = (double)io->scale[0];
                for (k = 0; k < mr; k++) {
                    int g = k < n ? 0 : (k < 2 * n ? 1 : 2);
                    sc = g == 0 ? s0 : (double)io->scale[g];
                    dsc[g] += du[k] * dot[k] * rstd;
                    coef[k] = (mhc_real)(du[k] * sc * rstd);       /* d dot[k] */
                    drstd += du[k] * sc * dot[k];
                    b.du_all[(size_t)t * mr + k] = du[k];
                }
                if (io->dx) {
                    /* the elementwise terms: dx += h_pre g_li + drstd * d rstd/dx, d rstd/dx = -rstd^3 x / D
                       (the sum_k ddot[k] w[k] term is the GEMM after this loop) */
                    mhc_real *dxt = io->dx + (size_t)t * (size_t)D;
                    const mhc_real f = (mhc_real)(-drstd * rstd * rstd * rstd / (double)D);
                    for (i = 0; i < n; i++) {
                        const mhc_real hp = (mhc_real)(sp[i] + s->pre_eps);
                        const mhc_real *xi = xt + (size_t)i * C;
                        mhc_real *di = dxt + (size_t)i * C;
                        if (gli)
                            for (c = 0; c < C; c++) di[c] += f * xi[c] + hp * gli[c];
                        else
                            for (c = 0; c < C; c++) di[c] += f * xi[c];
                    }
                }
            }
        }
    }
    if (io->dx) mhc_k_matmul_ab(io->dx, b.coef, W, io->T, mr, D, 1);
    if (io->dbase) {
        MHC__OMP_FOR((double)io->T * mr > MHC__PAR_WORK)
        for (k = 0; k < mr; k++) {
            double a = 0.0;
            int t;
            for (t = 0; t < io->T; t++) a += b.du_all[(size_t)t * mr + k];
            io->dbase[k] += (mhc_real)a;
        }
    }
    if (io->dscale) {
        double a[3] = {0.0, 0.0, 0.0};
        int t, g, ng = io->head ? 1 : 3;
        for (t = 0; t < io->T; t++)
            for (g = 0; g < 3; g++) a[g] += b.dsc_all[(size_t)t * 3 + g];
        for (g = 0; g < ng; g++) io->dscale[g] += (mhc_real)a[g];
    }
    if (!io->nw) {
        if (io->dfn) mhc_k_matmul_atb(io->dfn, b.coef, io->x, mr, io->T, D, 1);
    } else if (io->dfn || io->dnw) {
        /* P = ddot^T x;  dfn[k][j] += P[k][j] nw[j];  dnw[j] += sum_k P[k][j] fn[k][j] (k in order) */
        int j;
        mhc_k_matmul_atb(b.P, b.coef, io->x, mr, io->T, D, 0);
        MHC__OMP_FOR((double)mr * D > MHC__PAR_WORK)
        for (j = 0; j < D; j++) {
            double a = 0.0;
            for (k = 0; k < mr; k++) {
                const size_t o = (size_t)k * (size_t)D + (size_t)j;
                if (io->dfn) io->dfn[o] += (mhc_real)((double)b.P[o] * (double)io->nw[j]);
                a += (double)b.P[o] * (double)io->fn[o];
            }
            if (io->dnw) io->dnw[j] += (mhc_real)a;
        }
    }
}

/* ---- the per-token pre step (any convention knob) ----
   What runs for mHC, lite and the head when a norm knob (norm_eps_mode, norm_scope) or, for the
   layer, a Sinkhorn knob (sinkhorn_eps_mode, sinkhorn_order, exp_shift) is not its default
   (mhc__pre_kind 3): the mathematics of the references, one token at a time in double, without
   the logits GEMM and the 8-token groups; parallel over chunks of tokens (each token's dx written
   by its own chunk), the parameter gradients summed over tokens in order (dbase, dscale as the
   fast path; dfn, dnw by mhc__acc_reduce over x' = rstd_i x_i): bitwise identical for any
   thread count. Per token, with w = fn * norm_weight and r_i the rstd of stream i (flat: every
   stream the token's one rstd),
     pdot[i][k] = sum_c w[k][iC+c] x_i[c],   mix[k] = sum_i r_i pdot[i][k]   (flat: r sum_i pdot[i][k])
   and the backward, with dmix[k] = du[k] scale[g] as in the fast path,
     dx_i[c] += r_i nw[iC+c] sum_k dmix[k] fn[k][iC+c] + dr g x_i[c] + h_pre[i] dli[c]
     dr = sum_k dmix[k] pdot[i][k] for stream i (flat: summed over the streams, g the token's),
     dfn[k][j] += sum_t dmix[t][k] x'[t][j] nw[j],   dnw[j] += sum_k fn[k][j] sum_t dmix[t][k] x'[t][j]. */
/* Token t's rstd (rs, gs per stream), partial dots pdot [n][mr] and logits mix [mr]. */
static void mhc__tok_mix(const mhc__pre_io *io, int t, mhc__tok_chunk *w) {
    const mhc_hc_spec *s = io->s;
    int n = s->n, C = io->C, D = n * C, mr = mhc__pre_rows(io), i, k, c;
    int outside = s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE, stream = s->norm_scope == MHC_NORM_SCOPE_STREAM;
    const mhc_real *xt = io->x + (size_t)t * (size_t)D;
    double ss = 0.0;
    for (i = 0; i < n; i++) {
        const mhc_real *xi = xt + (size_t)i * C;
        double si = 0.0;
        for (c = 0; c < C; c++) si += (double)xi[c] * (double)xi[c];
        if (stream) w->rs[i] = mhc__rstd(si, C, s->norm_eps, outside, &w->gs[i]);
        ss += si;
    }
    if (!stream) {
        double g, r = mhc__rstd(ss, D, s->norm_eps, outside, &g);
        for (i = 0; i < n; i++) { w->rs[i] = r; w->gs[i] = g; }
    }
    for (k = 0; k < mr; k++) {
        const mhc_real *row = io->fn + (size_t)k * (size_t)D;
        double mk = 0.0;
        for (i = 0; i < n; i++) {
            const mhc_real *xi = xt + (size_t)i * C, *ri = row + (size_t)i * C, *wi = io->nw ? io->nw + (size_t)i * C : NULL;
            double a = 0.0;
            if (wi) for (c = 0; c < C; c++) a += (double)xi[c] * ((double)ri[c] * (double)wi[c]);
            else for (c = 0; c < C; c++) a += (double)xi[c] * (double)ri[c];
            w->pdot[(size_t)i * mr + k] = a;
            mk += stream ? w->rs[i] * a : a;
        }
        w->mix[k] = stream ? mk : w->rs[0] * mk;
    }
}

static void mhc__pre_fwd_tok(const mhc__pre_io *io, double *work, int nch) {
    const mhc_hc_spec *s = io->s;
    int n = s->n, C = io->C, D = n * C, ch;
    mhc__tok_chunk sz;
    size_t per = mhc__tok_chunk_map(io, NULL, &sz), nn = (size_t)n * (size_t)n;
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        mhc__tok_chunk w;
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), t, i, j, c;
        mhc__tok_chunk_map(io, work + (size_t)ch * per, &w);
        for (t = t0; t < t1; t++) {
            const mhc_real *xt = io->x + (size_t)t * (size_t)D;
            mhc__tok_mix(io, t, &w);
            mhc__gates_token(n, s->nres, io->head, io->scale, io->base, w.mix, 1.0, w.sp, w.spo, w.z);
            for (i = 0; i < n; i++) w.sp[i] += s->pre_eps;                  /* h_pre */
            if (io->hpre)
                for (i = 0; i < n; i++) io->hpre[(size_t)t * n + i] = (mhc_real)w.sp[i];
            if (!io->head && io->hpost)
                for (i = 0; i < n; i++) io->hpost[(size_t)t * n + i] = (mhc_real)(w.spo[i] * s->post_mult);
            if (!io->head && io->hres) {
                mhc_real *A = io->hres + (size_t)t * nn;
                mhc__proj_fwd(s, w.z, w.comb, w.pw);
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++)
                        A[i * n + j] = (mhc_real)(mhc__proj_transposed(s) ? w.comb[j * n + i] : w.comb[i * n + j]);
            }
            for (c = 0; c < C; c++) {                                      /* li = sum_i h_pre[i] x_i */
                double a = 0.0;
                for (i = 0; i < n; i++) a += w.sp[i] * (double)xt[(size_t)i * C + c];
                io->li[(size_t)t * C + c] = (mhc_real)a;
            }
        }
    }
}

/* Its backward. tok: du_all [T*mr], dsc_all [T*3], coef [T*mr] (dmix) as doubles, then
   x' [T*D] in mhc_real. */
static void mhc__pre_bwd_tok(const mhc__pre_io *io, double *work, int nch, double *tok) {
    const mhc_hc_spec *s = io->s;
    int n = s->n, C = io->C, D = n * C, mr = mhc__pre_rows(io), nres = io->head ? 0 : s->nres, ch, k;
    int stream = s->norm_scope == MHC_NORM_SCOPE_STREAM;
    mhc__tok_chunk sz;
    size_t per = mhc__tok_chunk_map(io, NULL, &sz), nn = (size_t)n * (size_t)n, T = (size_t)io->T;
    double *du_all = tok, *dsc_all = du_all + T * (size_t)mr, *coef_all = dsc_all + 3 * T;
    mhc_real *xs = (mhc_real *)(void *)(coef_all + T * (size_t)mr);
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        mhc__tok_chunk w;
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), t, i, j, c, k;
        mhc__tok_chunk_map(io, work + (size_t)ch * per, &w);
        for (t = t0; t < t1; t++) {
            const mhc_real *xt = io->x + (size_t)t * (size_t)D;
            const mhc_real *gli = io->g_li ? io->g_li + (size_t)t * C : NULL;
            double *du = du_all + (size_t)t * mr, *dsc = dsc_all + (size_t)t * 3, *coef = coef_all + (size_t)t * mr;
            double drf = 0.0;
            mhc__tok_mix(io, t, &w);
            mhc__gates_token(n, s->nres, io->head, io->scale, io->base, w.mix, 1.0, w.sp, w.spo, w.z);
            for (i = 0; i < n; i++) {
                double dh = io->g_hpre ? (double)io->g_hpre[(size_t)t * n + i] : 0.0;
                if (gli)
                    for (c = 0; c < C; c++) dh += (double)gli[c] * (double)xt[(size_t)i * C + c];
                du[i] = dh * w.sp[i] * (1.0 - w.sp[i]);
            }
            if (!io->head) {
                for (i = 0; i < n; i++) {
                    double dh = io->g_hpost ? (double)io->g_hpost[(size_t)t * n + i] : 0.0;
                    du[n + i] = dh * s->post_mult * w.spo[i] * (1.0 - w.spo[i]);
                }
                for (k = 0; k < nres; k++) du[2 * n + k] = 0.0;
                if (io->g_hres) {
                    const mhc_real *gA = io->g_hres + (size_t)t * nn;
                    for (i = 0; i < n; i++)
                        for (j = 0; j < n; j++)
                            w.dcomb[i * n + j] = (double)(mhc__proj_transposed(s) ? gA[j * n + i] : gA[i * n + j]);
                    mhc__proj_bwd(s, w.z, w.dcomb, w.dz, w.pw, w.otmp);
                    for (k = 0; k < nres; k++) du[2 * n + k] = w.dz[k];
                }
            }
            /* gate scales and biases; dmix; d rstd per stream (w.spo reused for dr_i) */
            dsc[0] = dsc[1] = dsc[2] = 0.0;
            for (i = 0; i < n; i++) w.spo[i] = 0.0;
            for (j = 0; j < D; j++) w.dxa[j] = 0.0;
            for (k = 0; k < mr; k++) {
                int g = k < n ? 0 : (k < 2 * n ? 1 : 2);
                double dmix = du[k] * (double)io->scale[g];
                const mhc_real *row = io->fn + (size_t)k * (size_t)D;
                dsc[g] += du[k] * w.mix[k];
                coef[k] = dmix;
                for (i = 0; i < n; i++) w.spo[i] += dmix * w.pdot[(size_t)i * mr + k];
                if (dmix != 0.0)
                    for (j = 0; j < D; j++) w.dxa[j] += dmix * (double)row[j];
            }
            if (!stream) {
                for (i = 0; i < n; i++) drf += w.spo[i];
                for (i = 0; i < n; i++) w.spo[i] = drf;
            }
            for (i = 0; i < n; i++) {
                const mhc_real *xi = xt + (size_t)i * C;
                double r = w.rs[i], rg = w.spo[i] * w.gs[i], hp = w.sp[i] + s->pre_eps;
                mhc_real *xsi = xs + (size_t)t * (size_t)D + (size_t)i * C;
                for (c = 0; c < C; c++) xsi[c] = (mhc_real)(r * (double)xi[c]);
                if (io->dx) {
                    mhc_real *dxi = io->dx + (size_t)t * (size_t)D + (size_t)i * C;
                    const double *ai = w.dxa + (size_t)i * C;
                    for (c = 0; c < C; c++) {
                        double a = r * ai[c] * (io->nw ? (double)io->nw[(size_t)i * C + c] : 1.0) + rg * (double)xi[c];
                        if (gli) a += hp * (double)gli[c];
                        dxi[c] += (mhc_real)a;
                    }
                }
            }
        }
    }
    if (io->dbase) {
        MHC__OMP_FOR((double)io->T * mr > MHC__PAR_WORK)
        for (k = 0; k < mr; k++) {
            double a = 0.0;
            int t;
            for (t = 0; t < io->T; t++) a += du_all[(size_t)t * mr + k];
            io->dbase[k] += (mhc_real)a;
        }
    }
    if (io->dscale) {
        double a[3] = {0.0, 0.0, 0.0};
        int t, g, ng = io->head ? 1 : 3;
        for (t = 0; t < io->T; t++)
            for (g = 0; g < 3; g++) a[g] += dsc_all[(size_t)t * 3 + g];
        for (g = 0; g < ng; g++) io->dscale[g] += (mhc_real)a[g];
    }
    mhc__acc_reduce(io->dfn, io->dnw, coef_all, xs, io->fn, io->nw, io->T, mr, D);
}

/* HC (MHC_SPEC.md Sec. 6), one token: per-stream rstd rs[n] (gq[n]: its derivative over x, when
   not NULL; norm_eps_mode as mhc__rstd), normalised xn[n*C], dots[n][n+2]. */
static void mhc__hcdyn_token(const mhc__pre_io *io, int t, double *rs, double *gq, double *xn, double *dots) {
    int n = io->s->n, C = io->C, q = n + 2, i, c, k;
    const mhc_real *xt = io->x + (size_t)t * (size_t)n * (size_t)C;
    for (i = 0; i < n; i++) {
        const mhc_real *xi = xt + (size_t)i * C;
        double ss = 0.0, r;
        for (c = 0; c < C; c++) ss += (double)xi[c] * (double)xi[c];
        r = mhc__rstd(ss, C, io->s->norm_eps, io->s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE, gq ? &gq[i] : NULL);
        rs[i] = r;
        for (c = 0; c < C; c++) xn[(size_t)i * C + c] = (double)xi[c] * r * (io->nw ? (double)io->nw[c] : 1.0);
        for (k = 0; k < q; k++) {
            const mhc_real *th = io->fn + (size_t)k * C;
            double a = 0.0;
            for (c = 0; c < C; c++) a += (double)th[c] * xn[(size_t)i * C + c];
            dots[i * q + k] = a;
        }
    }
}

/* HC forward, per token: h_pre[i] = a0 tanh(th_pre . xn_i) + b_pre[i]; h_post likewise;
   A[i][j] = a2 tanh(th_res[i] . xn_j) + b_res[i][j]; li = sum_i h_pre[i] x_i */
static void mhc__pre_fwd_hc(const mhc__pre_io *io, double *work, int nch) {
    int n = io->s->n, C = io->C, q = n + 2, ch;
    size_t per = mhc__pre_chunk_doubles(io);
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        double *xn = work + (size_t)ch * per, *dots = xn + (size_t)n * C + C, *rs = dots + 2 * (size_t)n * q, *hp = rs + n;
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), t, i, j, c;
        double a0 = (double)io->scale[0], a1 = (double)io->scale[1], a2 = (double)io->scale[2];
        for (t = t0; t < t1; t++) {
            const mhc_real *xt = io->x + (size_t)t * (size_t)n * (size_t)C;
            mhc__hcdyn_token(io, t, rs, NULL, xn, dots);
            for (i = 0; i < n; i++) {
                hp[i] = a0 * tanh(dots[i * q]) + (double)io->base[i];
                if (io->hpre) io->hpre[(size_t)t * n + i] = (mhc_real)hp[i];
                if (io->hpost)
                    io->hpost[(size_t)t * n + i] = (mhc_real)(a1 * tanh(dots[i * q + 1]) + (double)io->base[n + i]);
            }
            if (io->hres)
                for (i = 0; i < n; i++)        /* A[i][j] = a2 tanh(theta_res[i] . xn[j]) + b_res[i][j] */
                    for (j = 0; j < n; j++)
                        io->hres[(size_t)t * n * n + (size_t)i * n + j] =
                            (mhc_real)(a2 * tanh(dots[j * q + 2 + i]) + (double)io->base[2 * n + i * n + j]);
            for (c = 0; c < C; c++) {
                double a = 0.0;
                for (i = 0; i < n; i++) a += hp[i] * (double)xt[(size_t)i * C + c];
                io->li[(size_t)t * C + c] = (mhc_real)a;
            }
        }
    }
}

/* Its backward: tanh' = 1 - tanh^2 for the gates, then the per-stream RMSNorm backward into x */
static void mhc__pre_bwd_hc(const mhc__pre_io *io, double *work, int nch, double *tok) {
    int n = io->s->n, C = io->C, q = n + 2, nb = 2 * n + n * n, ch, k;
    size_t per = mhc__pre_chunk_doubles(io);
    double *du_all = tok, *coef_all = tok + (size_t)io->T * nb, *dsc_all = coef_all + (size_t)io->T * n * q;
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        double *xn = work + (size_t)ch * per, *dxn = xn + (size_t)n * C, *dots = dxn + C, *dd = dots + (size_t)n * q;
        double *rs = dd + (size_t)n * q, *hp = rs + n, *gq = hp + n;   /* (the chunk holds 3n^2 + n + 8 more) */
        int t0 = (int)((long long)io->T * ch / nch), t1 = (int)((long long)io->T * (ch + 1) / nch), t, i, j, c, k;
        int outside = io->s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE;
        double a0 = (double)io->scale[0], a1 = (double)io->scale[1], a2 = (double)io->scale[2];
        for (t = t0; t < t1; t++) {
            const mhc_real *xt = io->x + (size_t)t * (size_t)n * (size_t)C;
            const mhc_real *gli = io->g_li ? io->g_li + (size_t)t * C : NULL;
            double *du = du_all + (size_t)t * nb, *dsc = dsc_all + (size_t)t * 3;
            double *coef = coef_all + (size_t)t * n * q;
            mhc__hcdyn_token(io, t, rs, gq, xn, dots);
            dsc[0] = dsc[1] = dsc[2] = 0.0;
            for (i = 0; i < n; i++) {
                double th, g = io->g_hpre ? (double)io->g_hpre[(size_t)t * n + i] : 0.0;
                hp[i] = a0 * tanh(dots[i * q]) + (double)io->base[i];
                if (gli)
                    for (c = 0; c < C; c++) g += (double)gli[c] * (double)xt[(size_t)i * C + c];
                th = tanh(dots[i * q]);
                du[i] = g; dsc[0] += g * th; dd[i * q] = g * a0 * (1.0 - th * th);
                g = io->g_hpost ? (double)io->g_hpost[(size_t)t * n + i] : 0.0;
                th = tanh(dots[i * q + 1]);
                du[n + i] = g; dsc[1] += g * th; dd[i * q + 1] = g * a1 * (1.0 - th * th);
            }
            for (i = 0; i < n; i++)
                for (j = 0; j < n; j++) {
                    double g = io->g_hres ? (double)io->g_hres[(size_t)t * n * n + (size_t)i * n + j] : 0.0;
                    double th = tanh(dots[j * q + 2 + i]);
                    du[2 * n + i * n + j] = g; dsc[2] += g * th; dd[j * q + 2 + i] = g * a2 * (1.0 - th * th);
                }
            for (i = 0; i < n; i++)
                for (k = 0; k < q; k++) coef[i * q + k] = dd[i * q + k] * rs[i];
            if (io->dx) {
                for (i = 0; i < n; i++) {
                    /* y = x r w: dx = r w dy - r^3/C x sum(x w dy); plus the direct h_pre g_li */
                    const mhc_real *xi = xt + (size_t)i * C;
                    mhc_real *dxi = io->dx + ((size_t)t * n + i) * (size_t)C;
                    double r = rs[i], sdot = 0.0;
                    for (c = 0; c < C; c++) dxn[c] = 0.0;
                    for (k = 0; k < q; k++) {
                        const mhc_real *th = io->fn + (size_t)k * C;
                        double d = dd[i * q + k];
                        if (d != 0.0) mhc__axpy(dxn, d, th, C);
                    }
                    for (c = 0; c < C; c++) {
                        if (io->nw) dxn[c] *= (double)io->nw[c];
                        sdot += (double)xi[c] * dxn[c];
                    }
                    for (c = 0; c < C; c++)
                        dxi[c] += (mhc_real)(r * dxn[c] - (outside ? -gq[i] : r * r * r / (double)C) * (double)xi[c] * sdot +
                                             (gli ? hp[i] * (double)gli[c] : 0.0));
                }
            }
        }
    }
    if (io->dbase) {
        MHC__OMP_FOR((double)io->T * nb > MHC__PAR_WORK)
        for (k = 0; k < nb; k++) {
            double a = 0.0;
            int t;
            for (t = 0; t < io->T; t++) a += du_all[(size_t)t * nb + k];
            io->dbase[k] += (mhc_real)a;
        }
    }
    if (io->dscale) {
        double a[3] = {0.0, 0.0, 0.0};
        int t, g;
        for (t = 0; t < io->T; t++)
            for (g = 0; g < 3; g++) a[g] += dsc_all[(size_t)t * 3 + g];
        for (g = 0; g < 3; g++) io->dscale[g] += (mhc_real)a[g];
    }
    mhc__acc_reduce(io->dfn, io->dnw, coef_all, io->x, io->fn, io->nw, io->T * n, q, C);
}

/* none (the plain residual, n = 1): li = x, h_pre = h_post = A = 1;  backward dx += dli */
static void mhc__pre_fwd_none(const mhc__pre_io *io) {
    size_t t, C = (size_t)io->C;
    for (t = 0; t < (size_t)io->T; t++) {
        memcpy(io->li + t * C, io->x + t * C, C * sizeof(mhc_real));
        if (io->hpre) io->hpre[t] = 1;
        if (io->hpost) io->hpost[t] = 1;
        if (io->hres) io->hres[t] = 1;
    }
}

static void mhc__pre_bwd_none(const mhc__pre_io *io) {
    size_t k, N = (size_t)io->T * (size_t)io->C;
    if (io->dx && io->g_li)
        for (k = 0; k < N; k++) io->dx[k] += io->g_li[k];
}

/* Run the pre (or head) forward or backward with caller-provided scratch: work holds
   nch * mhc__pre_chunk_doubles, then tok: mhc__pre_tok_doubles. */
static void mhc__pre_exec(const mhc__pre_io *io, int backward, double *work, int nch, double *tok) {
    switch (mhc__pre_kind(io)) {
    case 0: if (backward) mhc__pre_bwd_none(io); else mhc__pre_fwd_none(io); break;
    case 1: if (backward) mhc__pre_bwd_hc(io, work, nch, tok); else mhc__pre_fwd_hc(io, work, nch); break;
    case 3: if (backward) mhc__pre_bwd_tok(io, work, nch, tok); else mhc__pre_fwd_tok(io, work, nch); break;
    default: if (backward) mhc__pre_bwd_mhc(io, work, nch, tok); else mhc__pre_fwd_mhc(io, work, nch, tok); break;
    }
}

/* Doubles of scratch for mhc__pre_exec (0 on overflow, with *nch set). */
static size_t mhc__pre_scratch(const mhc__pre_io *io, int backward, int *nch) {
    size_t per = mhc__pre_chunk_doubles(io), w, tk = 0, tot;
    int ok = 1;
    *nch = mhc__nchunks(io->T, mhc__pre_token_work(io));
    if (!mhc__mul_ok(per, (size_t)*nch, &w)) return 0;
    tk = mhc__pre_tok_doubles(io, backward, &ok);
    if (!ok || w > SIZE_MAX / (4 * sizeof(double)) - tk) return 0;
    tot = w + tk;
    return tot;
}

/* Check a spec built by hand (mhc_hc_resolve makes valid ones). */
static mhc_result mhc__spec_check(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s) {
    int n;
    if (!s) return mhc_fail(ctx, MHC_ERR_NULL, "%s: spec is NULL", fname);
    n = s->n;
    if (n < 1 || n > 1024) return mhc_fail(ctx, MHC_ERR_SIZE, "%s: spec.n = %d, expected 1..1024", fname, n);
    switch (s->variant) {
    case MHC_VARIANT_NONE:
        if (n != 1) return mhc_fail(ctx, MHC_ERR_VALUE, "%s: variant none needs n = 1, not %d", fname, n);
        break;
    case MHC_VARIANT_HC:
        if (s->m != n + 2) return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.m = %d, expected n + 2 = %d for hc", fname, s->m, n + 2);
        break;
    case MHC_VARIANT_MHC:
    case MHC_VARIANT_LITE:
    case MHC_VARIANT_KROMHC:
    case MHC_VARIANT_ORTHO: {
        int nres = n * n;
        if (s->variant == MHC_VARIANT_MHC ? (s->projection < MHC_PROJ_SOFTMAX || s->projection > MHC_PROJ_LOG)
                                          : s->projection != mhc__variant_proj(s->variant))
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: variant %s does not go with projection %s (use mhc_hc_resolve)",
                            fname, mhc_hc_variant_name(s->variant), mhc_projection_name(s->projection));
        if (s->projection == MHC_PROJ_PERM && n > MHC_LITE_MAX_N)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the permutation mixture supports n <= %d, not %d", fname, MHC_LITE_MAX_N, n);
        if (s->projection == MHC_PROJ_PERM) nres = (int)mhc_perm_count(n);
        if (s->projection == MHC_PROJ_KRON) {   /* the factor list, as mhc_hc_resolve checks it */
            mhc_hc_spec k;
            memset(&k, 0, sizeof k);
            if (s->kron_count < 1 || s->kron_count > MHC_KRON_MAX_FACTORS)
                return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.kron_count = %d, expected 1..%d", fname, s->kron_count,
                                MHC_KRON_MAX_FACTORS);
            if (mhc__kron_set(ctx, fname, s->kron_count, s->kron_factors, n, &k) != MHC_OK) return ctx ? ctx->last : MHC_ERR_VALUE;
            nres = k.nres;
        }
        if (s->nres != nres || s->m != 2 * n + s->nres)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.nres = %d / spec.m = %d do not match n = %d (use mhc_hc_resolve)",
                            fname, s->nres, s->m, n);
        if (s->projection <= MHC_PROJ_LOG && (s->iters < 1 || s->iters > 100000))
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.iters = %d, expected 1..100000", fname, s->iters);
        if (s->projection == MHC_PROJ_ORTHO && (s->ns_iters < 1 || s->ns_iters > MHC_NS_MAX_ITERS))
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.ns_iters = %d, expected 1..%d", fname, s->ns_iters, MHC_NS_MAX_ITERS);
        if (s->orient != MHC_ORIENT_H && s->orient != MHC_ORIENT_COMB_T)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.orient = %d is not h or comb_t", fname, (int)s->orient);
        break;
    }
    default:
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.variant = %d is not none, hc, mhc, lite, kromhc or ortho", fname,
                        (int)s->variant);
    }
    if (!mhc__finite(s->norm_eps) || !mhc__finite(s->pre_eps) || !mhc__finite(s->sinkhorn_eps) ||
        !mhc__finite(s->post_mult) || s->norm_eps < 0.0 || s->pre_eps < 0.0 || s->sinkhorn_eps < 0.0 ||
        s->post_mult < 0.0)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec epsilons and post_mult must be finite and >= 0", fname);
    if ((int)s->norm_eps_mode < 0 || s->norm_eps_mode >= MHC_NORM_EPS_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.norm_eps_mode = %d is not inside or outside", fname, (int)s->norm_eps_mode);
    if ((int)s->norm_scope < 0 || s->norm_scope >= MHC_NORM_SCOPE_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.norm_scope = %d is not flat or stream", fname, (int)s->norm_scope);
    if ((int)s->sinkhorn_eps_mode < 0 || s->sinkhorn_eps_mode >= MHC_SK_EPS_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.sinkhorn_eps_mode = %d is not add, clamp, threshold or zero", fname,
                        (int)s->sinkhorn_eps_mode);
    if ((int)s->sinkhorn_order < 0 || s->sinkhorn_order >= MHC_SK_ORDER_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.sinkhorn_order = %d is not col_first or row_first", fname,
                        (int)s->sinkhorn_order);
    if ((int)s->exp_shift < 0 || s->exp_shift >= MHC_EXP_SHIFT_COUNT)
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: spec.exp_shift = %d is not none, row_max or col_max", fname, (int)s->exp_shift);
    return MHC_OK;
}

/* Argument checks shared by the raw-array pre/head functions. */
static mhc_result mhc__pre_args(mhc_ctx *ctx, const char *fname, const mhc__pre_io *io) {
    mhc_result r = mhc__spec_check(ctx, fname, io->s);
    int dims[3];
    size_t fsz;
    if (r != MHC_OK) return r;
    if (!io->x) return mhc_fail(ctx, MHC_ERR_NULL, "%s: x is NULL", fname);
    if (io->T < 1 || io->C < 1)
        return mhc_fail(ctx, MHC_ERR_SIZE, "%s: T = %d, C = %d, expected both >= 1", fname, io->T, io->C);
    dims[0] = io->T; dims[1] = io->s->n; dims[2] = io->C;
    if (mhc_shape_size(ctx, 3, dims, fname) == 0) return ctx ? ctx->last : MHC_ERR_OVERFLOW;
    /* the kernels index in int: T*n*C (and so n*C and T*n) and the rows of fn times n*C must fit */
    if ((size_t)io->T * (size_t)io->s->n * (size_t)io->C > (size_t)INT_MAX)
        return mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: x has T*n*C = %d*%d*%d = %.0f elements, more than the kernels' int "
                        "range (%d)", fname, io->T, io->s->n, io->C, (double)io->T * io->s->n * io->C, INT_MAX);
    if (mhc__pre_kind(io) == 0) return MHC_OK;
    if (!io->fn || !io->scale || !io->base)
        return mhc_fail(ctx, MHC_ERR_NULL, "%s: fn, scale and base are required (fn %s, scale %s, base %s)", fname,
                        io->fn ? "given" : "NULL", io->scale ? "given" : "NULL", io->base ? "given" : "NULL");
    dims[0] = mhc__pre_rows(io);
    dims[1] = mhc__pre_kind(io) == 1 ? 1 : io->s->n;
    dims[2] = io->C;
    fsz = mhc_shape_size(ctx, 3, dims, fname);
    if (fsz == 0) return ctx ? ctx->last : MHC_ERR_OVERFLOW;
    if (fsz > (size_t)INT_MAX)
        return mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: fn has %d rows of %d columns = %zu elements, more than the kernels' "
                        "int range (%d)", fname, dims[0], dims[1] * dims[2], fsz, INT_MAX);
    return MHC_OK;
}

/* mhc__pre_args on plain arguments: the checks of the references (mhc_ref_hc_*). */
static mhc_result mhc__pre_check(mhc_ctx *ctx, const char *fname, const mhc_hc_spec *s, int head,
                                 const mhc_real *x, const mhc_real *fn, const mhc_real *scale, const mhc_real *base,
                                 int T, int C) {
    mhc__pre_io io;
    memset(&io, 0, sizeof io);
    io.s = s; io.head = head; io.T = T; io.C = C;
    io.x = x; io.fn = fn; io.scale = scale; io.base = base;
    return mhc__pre_args(ctx, fname, &io);
}

/* The pre step's scratch against ctx's limit (mhc__scratch_ok), with the formula. */
static mhc_result mhc__pre_scratch_ok(mhc_ctx *ctx, const char *fname, const mhc__pre_io *io, int nch, size_t nd) {
    char what[256];
    const mhc_hc_spec *s = io->s;
    if (mhc__pre_kind(io) == 2 && !io->head && s->projection != MHC_PROJ_PERM)
        snprintf(what, sizeof what, "the pre step (T = %d, n = %d, C = %d, %d iterations: per chunk of tokens %d x "
                 "((S + 4) n^2 + S n) doubles for the projection, S = %d steps, whose exact backward keeps every "
                 "iterate; %d chunk%s; and about T m + m n C for all tokens)", io->T, s->n, io->C, s->iters,
                 mhc__proj_group_ok(s->projection, s->n) ? 8 : 1, mhc__proj_steps(s->projection, s->iters), nch,
                 nch == 1 ? "" : "s");
    else
        snprintf(what, sizeof what, "the %s step (T = %d, n = %d, C = %d: per chunk of tokens about m + n^2 doubles, "
                 "%d chunk%s; and about T m + m n C for all tokens)", io->head ? "head" : "pre", io->T, s->n, io->C, nch,
                 nch == 1 ? "" : "s");
    return mhc__scratch_ok(ctx, fname, nd, what);
}

/* Allocate scratch, run, free (the raw-array entry points). */
static mhc_result mhc__pre_call(mhc_ctx *ctx, const char *fname, const mhc__pre_io *io, int backward) {
    int nch;
    size_t nd = mhc__pre_scratch(io, backward, &nch);
    double *work;
    mhc_result r;
    if (nd == 0) return mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: scratch size overflows (T = %d, n = %d, C = %d)", fname,
                                 io->T, io->s->n, io->C);
    if ((r = mhc__pre_scratch_ok(ctx, fname, io, nch, nd)) != MHC_OK) return r;
    work = MHC__CAST(double *, MHC_MALLOC(nd * sizeof(double)));
    if (!work) return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: cannot allocate %zu bytes of scratch", fname, nd * sizeof(double));
    mhc__pre_exec(io, backward, work, nch, work + (size_t)nch * mhc__pre_chunk_doubles(io));
    MHC_FREE(work);
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_pre_forward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                     mhc_real *layer_input, mhc_real *h_pre, mhc_real *h_post, mhc_real *h_res,
                                     const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                     const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    mhc__pre_io io;
    mhc_result r;
    memset(&io, 0, sizeof io);
    io.s = s; io.T = T; io.C = C;
    io.x = x; io.fn = fn; io.scale = scale; io.base = base; io.nw = norm_weight;
    io.li = layer_input; io.hpre = h_pre; io.hpost = h_post; io.hres = h_res;
    if ((r = mhc__pre_args(ctx, "mhc_hc_pre_forward", &io)) != MHC_OK) return r;
    if (!layer_input) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_pre_forward: layer_input is NULL");
    return mhc__pre_call(ctx, "mhc_hc_pre_forward", &io, 0);
}

MHCDEF mhc_result mhc_hc_pre_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                      mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                      mhc_real *d_norm_weight,
                                      const mhc_real *d_layer_input, const mhc_real *d_h_pre,
                                      const mhc_real *d_h_post, const mhc_real *d_h_res,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    mhc__pre_io io;
    mhc_result r;
    memset(&io, 0, sizeof io);
    io.s = s; io.T = T; io.C = C;
    io.x = x; io.fn = fn; io.scale = scale; io.base = base; io.nw = norm_weight;
    io.g_li = d_layer_input; io.g_hpre = d_h_pre; io.g_hpost = d_h_post; io.g_hres = d_h_res;
    io.dx = d_x; io.dfn = d_fn; io.dscale = d_scale; io.dbase = d_base; io.dnw = norm_weight ? d_norm_weight : NULL;
    if ((r = mhc__pre_args(ctx, "mhc_hc_pre_backward", &io)) != MHC_OK) return r;
    return mhc__pre_call(ctx, "mhc_hc_pre_backward", &io, 1);
}

MHCDEF mhc_result mhc_hc_head_forward(mhc_ctx *ctx, const mhc_hc_spec *s, mhc_real *out, mhc_real *h,
                                      const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                      const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    mhc__pre_io io;
    mhc_result r;
    memset(&io, 0, sizeof io);
    io.s = s; io.head = 1; io.T = T; io.C = C;
    io.x = x; io.fn = fn; io.scale = scale; io.base = base; io.nw = norm_weight;
    io.li = out; io.hpre = h;
    if ((r = mhc__pre_args(ctx, "mhc_hc_head_forward", &io)) != MHC_OK) return r;
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_head_forward: out is NULL");
    return mhc__pre_call(ctx, "mhc_hc_head_forward", &io, 0);
}

MHCDEF mhc_result mhc_hc_head_backward(mhc_ctx *ctx, const mhc_hc_spec *s,
                                       mhc_real *d_x, mhc_real *d_fn, mhc_real *d_scale, mhc_real *d_base,
                                       mhc_real *d_norm_weight, const mhc_real *d_out, const mhc_real *d_h,
                                       const mhc_real *x, const mhc_real *fn, const mhc_real *scale,
                                       const mhc_real *base, const mhc_real *norm_weight, int T, int C) {
    mhc__pre_io io;
    mhc_result r;
    memset(&io, 0, sizeof io);
    io.s = s; io.head = 1; io.T = T; io.C = C;
    io.x = x; io.fn = fn; io.scale = scale; io.base = base; io.nw = norm_weight;
    io.g_li = d_out; io.g_hpre = d_h;
    io.dx = d_x; io.dfn = d_fn; io.dscale = d_scale; io.dbase = d_base; io.dnw = norm_weight ? d_norm_weight : NULL;
    if ((r = mhc__pre_args(ctx, "mhc_hc_head_backward", &io)) != MHC_OK) return r;
    return mhc__pre_call(ctx, "mhc_hc_head_backward", &io, 1);
}

/* ---- post and expand (raw kernels) ----
   mhc_k_hc_post_* are the fast twins of mhc_ref_hc_post_* (the plain references above). */

/* out[t][i][c] = sum_j A[t][i][j] x[t][j][c] + h_post[t][i] f_out[t][c]: one pass per token,
   parallel over tokens; each output summed in mhc_real (a stream mix, see PRECISION: the h_post
   term first, then j in order), MHC__CB channels at a time so that the loops vectorise. */
MHCDEF void mhc_k_hc_post_forward(mhc_real *out, const mhc_real *x, const mhc_real *h_res, const mhc_real *h_post,
                                  const mhc_real *f_out, int T, int n, int C) {
    int t;
    MHC__OMP_FOR((double)T * n * n * C > MHC__PAR_WORK)
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * n * C, *A = h_res + (size_t)t * n * n;
        const mhc_real *f = f_out ? f_out + (size_t)t * C : NULL;
        mhc_real *ot = out + (size_t)t * n * C;
        int i;
        for (i = 0; i < n; i++)
            mhc__mix_rows(ot + (size_t)i * C, 0, A + (size_t)i * n, 1, xt, (size_t)C, n, f,
                          f ? h_post[(size_t)t * n + i] : 0, C);
    }
}

/* Its backward, one pass per token (parallel over tokens; every sum in a fixed order):
   dx[j][c] += sum_i A[i][j] dout[i][c];  dA[i][j] += dout_i . x_j;  dh_post[i] += dout_i . f;
   df[c] += sum_i h_post[i] dout[i][c]. The dot products over C sum in double (mhc__dots), the
   stream mixes over i in mhc_real. */
MHCDEF void mhc_k_hc_post_backward(mhc_real *d_x, mhc_real *d_h_res, mhc_real *d_h_post, mhc_real *d_f_out,
                                   const mhc_real *d_out, const mhc_real *x, const mhc_real *h_res,
                                   const mhc_real *h_post, const mhc_real *f_out, int T, int n, int C) {
    int t;
    MHC__OMP_FOR((double)T * n * n * C > MHC__PAR_WORK)
    for (t = 0; t < T; t++) {
        const mhc_real *xt = x + (size_t)t * n * C, *A = h_res + (size_t)t * n * n, *go = d_out + (size_t)t * n * C;
        const mhc_real *f = f_out ? f_out + (size_t)t * C : NULL;
        int i, j, q;
        if (d_x)
            for (j = 0; j < n; j++)        /* dx_j += sum_i A[i][j] dout_i: column j of A, stride n */
                mhc__mix_rows(d_x + ((size_t)t * n + j) * C, 1, A + j, (size_t)n, go, (size_t)C, n, NULL, 0, C);
        if (d_h_res)
            for (i = 0; i < n; i++) {
                double dr[8];
                for (j = 0; j < n; j += 8) {
                    const int jn = n - j < 8 ? n - j : 8;
                    mhc__dots(dr, go + (size_t)i * C, xt + (size_t)j * C, (size_t)C, jn, C);
                    for (q = 0; q < jn; q++) d_h_res[(size_t)t * n * n + (size_t)i * n + j + q] += (mhc_real)dr[q];
                }
            }
        if (f && d_h_post)
            for (i = 0; i < n; i += 8) {
                double dp[8];
                const int in = n - i < 8 ? n - i : 8;
                mhc__dots(dp, f, go + (size_t)i * C, (size_t)C, in, C);
                for (q = 0; q < in; q++) d_h_post[(size_t)t * n + i + q] += (mhc_real)dp[q];
            }
        if (f && d_f_out)
            mhc__mix_rows(d_f_out + (size_t)t * C, 1, h_post + (size_t)t * n, 1, go, (size_t)C, n, NULL, 0, C);
    }
}

MHCDEF void mhc_k_hc_expand_forward(mhc_real *x, const mhc_real *e, int T, int n, int C) {
    int t;
    MHC__OMP_FOR((double)T * n * C > MHC__PAR_WORK)
    for (t = 0; t < T; t++) {
        int i;
        for (i = 0; i < n; i++) memcpy(x + ((size_t)t * n + i) * C, e + (size_t)t * C, (size_t)C * sizeof(mhc_real));
    }
}

MHCDEF void mhc_k_hc_expand_backward(mhc_real *d_e, const mhc_real *d_x, int T, int n, int C) {
    int t;
    MHC__OMP_FOR((double)T * n * C > MHC__PAR_WORK)
    for (t = 0; t < T; t++) {
        int i, c;
        for (c = 0; c < C; c++) {
            double a = 0.0;
            for (i = 0; i < n; i++) a += (double)d_x[((size_t)t * n + i) * C + c];
            d_e[(size_t)t * C + c] += (mhc_real)a;
        }
    }
}

/* ---- parameters ---- */

MHCDEF mhc_result mhc_hc_param_shapes(mhc_ctx *ctx, const mhc_hc_spec *s, int C, int head,
                                      int fn_shape[2], int *nscale, int *nbase, int *nnw) {
    mhc_result r = mhc__spec_check(ctx, "mhc_hc_param_shapes", s);
    int n;
    if (r != MHC_OK) return r;
    if (!fn_shape || !nscale || !nbase || !nnw) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_param_shapes: NULL output");
    if (C < 1) return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_hc_param_shapes: C = %d, expected >= 1", C);
    n = s->n;
    if (C > INT32_MAX / n) return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_hc_param_shapes: n*C = %d*%d overflows", n, C);
    if (head) {
        fn_shape[0] = n; fn_shape[1] = n * C; *nscale = 1; *nbase = n; *nnw = n * C;
    } else if (s->variant == MHC_VARIANT_NONE) {
        fn_shape[0] = fn_shape[1] = 0; *nscale = *nbase = *nnw = 0;
    } else if (s->variant == MHC_VARIANT_HC) {
        fn_shape[0] = n + 2; fn_shape[1] = C; *nscale = 3; *nbase = 2 * n + n * n; *nnw = C;
    } else {
        fn_shape[0] = s->m; fn_shape[1] = n * C; *nscale = 3; *nbase = s->m; *nnw = n * C;
    }
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_params_declare(mhc_params *store, const mhc_hc_spec *s, int C, int head,
                                        int with_norm_weight, const char *prefix, int ids[4]) {
    int fs[2], ns, nb, nw, k;
    char name[64];
    mhc_result r;
    if (!store) return MHC_ERR_NULL;
    if (!ids || !prefix) return mhc_fail(store->ctx, MHC_ERR_NULL, "mhc_hc_params_declare: ids or prefix is NULL");
    for (k = 0; k < 4; k++) ids[k] = -1;
    if ((r = mhc_hc_param_shapes(store->ctx, s, C, head, fs, &ns, &nb, &nw)) != MHC_OK) return r;
    if (strlen(prefix) > 30)
        return mhc_fail(store->ctx, MHC_ERR_VALUE, "mhc_hc_params_declare: prefix '%s' is longer than 30 characters", prefix);
    if (fs[0] == 0) return MHC_OK;    /* none: no parameters */
    snprintf(name, sizeof name, "%s.fn", prefix);
    if ((ids[0] = mhc_params_add(store, name, 2, fs, MHC_PARAM_DECAY)) < 0) return store->ctx ? store->ctx->last : MHC_ERR_VALUE;
    snprintf(name, sizeof name, "%s.scale", prefix);
    if ((ids[1] = mhc_params_add(store, name, 1, &ns, MHC_PARAM_NO_DECAY)) < 0) return store->ctx ? store->ctx->last : MHC_ERR_VALUE;
    snprintf(name, sizeof name, "%s.base", prefix);
    if ((ids[2] = mhc_params_add(store, name, 1, &nb, MHC_PARAM_NO_DECAY)) < 0) return store->ctx ? store->ctx->last : MHC_ERR_VALUE;
    if (with_norm_weight) {
        snprintf(name, sizeof name, "%s.norm_weight", prefix);
        if ((ids[3] = mhc_params_add(store, name, 1, &nw, MHC_PARAM_NO_DECAY)) < 0)
            return store->ctx ? store->ctx->last : MHC_ERR_VALUE;
    }
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_params_get(mhc_params *store, const int ids[4], mhc_hc_params *out) {
    mhc_tensor *t[4];
    int k;
    if (!store) return MHC_ERR_NULL;
    if (!ids || !out) return mhc_fail(store->ctx, MHC_ERR_NULL, "mhc_hc_params_get: ids or out is NULL");
    if (!store->data) return mhc_fail(store->ctx, MHC_ERR_STATE, "mhc_hc_params_get: the store is not allocated yet");
    for (k = 0; k < 4; k++) {
        t[k] = NULL;
        if (ids[k] >= 0 && !(t[k] = mhc_params_get(store, ids[k]))) return store->ctx ? store->ctx->last : MHC_ERR_VALUE;
    }
    out->fn = t[0]; out->scale = t[1]; out->base = t[2]; out->norm_weight = t[3];
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_params_init(mhc_ctx *ctx, const mhc_hc_spec *s, int head, int layer_index,
                                     mhc_hc_params *w, mhc_rng *rng, double fn_std) {
    mhc_result r = mhc__spec_check(ctx, "mhc_hc_params_init", s);
    size_t k;
    int n, i;
    if (r != MHC_OK) return r;
    if (!w || !rng) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_params_init: w or rng is NULL");
    if (!head && s->variant == MHC_VARIANT_NONE) return MHC_OK;
    if (!w->fn || !w->scale || !w->base || !w->fn->data || !w->scale->data || !w->base->data)
        return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_params_init: fn, scale and base tensors (with data) are required");
    if (!mhc__finite(fn_std) || fn_std < 0.0)
        return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_hc_params_init: fn_std = %g, expected a finite value >= 0", fn_std);
    n = s->n;
    if (head ? (w->base->size != (size_t)n || w->scale->size != 1)
             : (w->base->size != (size_t)(s->variant == MHC_VARIANT_HC ? 2 * n + n * n : s->m) || w->scale->size != 3))
        return mhc_fail(ctx, MHC_ERR_SHAPE, "mhc_hc_params_init: scale has %zu and base %zu entries; they do not match n = %d",
                        w->scale->size, w->base->size, n);
    mhc_rng_fill_normal(rng, w->fn->data, w->fn->size, 0.0, fn_std);
    for (k = 0; k < w->scale->size; k++) w->scale->data[k] = (mhc_real)0.01;
    for (k = 0; k < w->base->size; k++) w->base->data[k] = 0;
    if (!head && s->variant == MHC_VARIANT_KROMHC) {
        size_t o = 2 * (size_t)n;
        for (k = 0; k < (size_t)s->nres; k++) w->base->data[2 * (size_t)n + k] = (mhc_real)-8.0;
        for (i = 0; i < s->kron_count; i++) {
            w->base->data[o] = 0;                                 /* the identity of factor i */
            o += (size_t)mhc_perm_count(s->kron_factors[i]);
        }
    }
    if (!head && s->variant == MHC_VARIANT_ORTHO)
        for (i = 0; i < n * n; i++) w->base->data[2 * n + i] = (mhc_real)(i % (n + 1) == 0 ? 0.0 : -8.0);
    if (!head && s->variant == MHC_VARIANT_HC) {
        if (layer_index < 0) layer_index = -layer_index;
        w->base->data[layer_index % n] = 1;                       /* b_pre = onehot(layer mod n) */
        for (i = 0; i < n; i++) w->base->data[n + i] = 1;         /* b_post = 1 */
        for (i = 0; i < n; i++) w->base->data[2 * n + i * n + i] = 1;   /* b_res = I */
    }
    if (w->norm_weight && w->norm_weight->data)
        for (k = 0; k < w->norm_weight->size; k++) w->norm_weight->data[k] = 1;
    return MHC_OK;
}

/* ---- tape ops ---- */

/* ---- recomputation of the stream states (mhc_tape_set_hc_recompute) ----
   The block length L_r is tp->ext[MHC_TAPE_EXT_HC].option; the step's mhc__rc (below) is
   tp->ext[MHC_TAPE_EXT_HC].step, created by the step's first mhc_hc_post that needs a gradient. */
typedef char mhc__tape_ext_hc_exists[MHC_TAPE_EXT_HC < MHC_TAPE_EXT_COUNT ? 1 : -1];

MHCDEF mhc_result mhc_tape_set_hc_recompute(mhc_tape *tp, int block) {
    if (!tp) return MHC_ERR_NULL;
    if (!tp->arena) return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_set_hc_recompute: the tape is not initialised");
    if (block < 0 || block > 1000000)
        return mhc_fail(tp->ctx, MHC_ERR_VALUE, "mhc_tape_set_hc_recompute: block = %d, expected 0 (off) or 1..1000000",
                        block);
    if (tp->nodes > 0 || tp->ext[MHC_TAPE_EXT_HC].step)
        return mhc_fail(tp->ctx, MHC_ERR_STATE,
                        "mhc_tape_set_hc_recompute: the tape holds %d nodes; set it before the forward pass "
                        "(after mhc_tape_init or mhc_tape_reset)", tp->nodes);
    tp->ext[MHC_TAPE_EXT_HC].option = block;
    return MHC_OK;
}

MHCDEF int mhc_hc_recompute_block(int n, int sublayers) {
    double v;
    if (n < 1 || sublayers < 1) return 1;
    v = floor(sqrt((double)n * (double)sublayers / ((double)n + 2.0)) + 0.5);
    return v < 1.0 ? 1 : (int)v;
}

/* Positions: the p-th mhc_hc_post of a step returns x_p (p = 1, 2, ...). x_p with p % L_r == 0 is
   a checkpoint (its own arena memory); the others live in slot (p % L_r) - 1 of L_r - 1 shared
   buffers, which the next block overwrites. slot_pos[s] says which x_p slot s holds now. The
   backward of post p-1... reads x_{p-1}: mhc__rc_ensure recomputes it (and, first, the states
   before it in its block) from the block's checkpoint when its slot holds another position.
   Gradients: d x_p lives in ring[p % 2]; post p's backward reads d x_{p+1} and then clears it for
   d x_{p-1}, the next state to accumulate into that buffer. */
typedef struct mhc__post_node mhc__post_node;
typedef struct mhc__rc {
    int block, count, T, n, C;
    mhc_real **slot;            /* block - 1 buffers of T*n*C */
    int *slot_pos;              /* the position each slot holds (0: none) */
    mhc_real *ring[2];          /* gradient buffers of T*n*C */
    mhc__post_node *last;       /* the newest post of this step */
} mhc__rc;

/* A post's place in the recomputation (its tape node keeps the inputs: in[0..3] = x, A, h_post, f;
   iarg = T, n, C; nd->saved points here, and is NULL when recomputation is off). */
struct mhc__post_node {
    mhc__rc *rc;
    int pos, slot;              /* slot -1: checkpoint (own memory) */
    mhc__post_node *prev;       /* the post that made x when x is a stream state, else NULL */
    mhc__post_node *next;       /* the post that took this one's output as x, else NULL */
    mhc_node *nd;               /* its tape node */
};

static int mhc__rc_stale(const mhc__post_node *q) {
    return q && q->slot >= 0 && q->rc->slot_pos[q->slot] != q->pos;
}

/* out = A x + h_post f of a recorded post node, into its output's data */
static void mhc__post_node_forward(const mhc_node *nd) {
    const mhc_tensor *x = nd->in[0], *A = nd->in[1], *hp = nd->in[2], *f = nd->in[3];
    mhc_k_hc_post_forward(nd->out->data, x->data, A->data, f ? hp->data : NULL, f ? f->data : NULL, nd->iarg[0],
                          nd->iarg[1], nd->iarg[2]);
}

/* Make q's output data current: walk back to the oldest stale state of its block (the one after
   a checkpoint, or after a state still in its slot), then recompute forward up to q. */
static void mhc__rc_ensure(mhc__post_node *q) {
    mhc__post_node *r = q;
    if (!mhc__rc_stale(q)) return;
    while (mhc__rc_stale(r->prev)) r = r->prev;
    for (;; r = r->next) {
        mhc__post_node_forward(r->nd);
        r->rc->slot_pos[r->slot] = r->pos;
        if (r == q) break;
    }
}

/* out = A x + h_post f_out:  dx += A^T dout, dA += dout x^T, dh_post += dout . f, df += h_post . dout */
static void mhc__bw_hc_post(mhc_node *nd) {
    mhc__post_node *p = MHC__CAST(mhc__post_node *, nd->saved);
    mhc_tensor *x = nd->in[0], *A = nd->in[1], *hp = nd->in[2], *f = nd->in[3];
    if (p) mhc__rc_ensure(p->prev);
    mhc_k_hc_post_backward(x->grad, A->grad, hp ? hp->grad : NULL, f ? f->grad : NULL, nd->out->grad, x->data, A->data,
                           hp ? hp->data : NULL, f ? f->data : NULL, nd->iarg[0], nd->iarg[1], nd->iarg[2]);
    if (p) memset(nd->out->grad, 0, nd->out->size * sizeof(mhc_real));   /* the ring buffer, for d x_{p-2} */
}

/* The recomputation state of this step, created by its first post (NULL + message on failure). */
static mhc__rc *mhc__rc_get(mhc_tape *tp, const char *op, int T, int n, int C) {
    mhc__rc *rc = MHC__CAST(mhc__rc *, tp->ext[MHC_TAPE_EXT_HC].step);
    size_t sz = (size_t)T * (size_t)n * (size_t)C;
    int k;
    if (rc) {
        if (rc->T != T || rc->n != n || rc->C != C) {
            mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: recomputation needs every stream state of a step to have one shape: "
                         "x is [%d,%d,%d], earlier states were [%d,%d,%d]", op, T, n, C, rc->T, rc->n, rc->C);
            return NULL;
        }
        return rc;
    }
    rc = MHC__CAST(mhc__rc *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc__rc)));
    if (!rc) { tp->failed = 1; return NULL; }
    rc->block = tp->ext[MHC_TAPE_EXT_HC].option; rc->T = T; rc->n = n; rc->C = C;
    if (rc->block > 1) {
        rc->slot = MHC__CAST(mhc_real **, mhc_arena_calloc(tp->arena, (size_t)rc->block - 1, sizeof(mhc_real *)));
        rc->slot_pos = MHC__CAST(int *, mhc_arena_calloc(tp->arena, (size_t)rc->block - 1, sizeof(int)));
        if (!rc->slot || !rc->slot_pos) { tp->failed = 1; return NULL; }
    }
    for (k = 0; k < 2; k++) {
        rc->ring[k] = MHC__CAST(mhc_real *, mhc_arena_calloc(tp->arena, sz, sizeof(mhc_real)));
        if (!rc->ring[k]) { tp->failed = 1; return NULL; }
    }
    tp->ext[MHC_TAPE_EXT_HC].step = rc;
    return rc;
}

/* With recomputation on, x may be a stream state of this step only if it is the newest one
   (older states share their data and gradient buffers with newer ones). */
static mhc_result mhc__rc_check_x(mhc_tape *tp, const char *op, const mhc_tensor *x) {
    const mhc__rc *rc = MHC__CAST(const mhc__rc *, tp->ext[MHC_TAPE_EXT_HC].step);
    if (!rc || !x->grad || (x->grad != rc->ring[0] && x->grad != rc->ring[1])) return MHC_OK;
    if (rc->last && rc->last->nd->out == x) return MHC_OK;
    mhc__op_fail(tp, MHC_ERR_STATE, "%s: recomputation is on and x is a stream state that a later mhc_hc_post has "
                 "already replaced (each state may feed only the next pre, post or head)", op);
    return MHC_ERR_STATE;
}

/* What the fused pre/head node keeps (arena memory). */
typedef struct mhc__pre_node {
    mhc_hc_spec spec;                 /* a copy: the caller's spec may not outlive the step */
    mhc_tensor *x, *fn, *scale, *base, *nw;
    mhc_tensor *packed;               /* blocks [li T*C | h_pre T*n | h_post T*n | h_res T*n*n] */
    int head, T, C, nch;
    double *saved;                    /* T*(rows+1): dots and rstd (mHC/lite/head), else NULL */
    double *work;                     /* scratch, allocated with the forward for the backward */
} mhc__pre_node;

/* d(li, h_pre, h_post, h_res) -> dx, dfn, dscale, dbase, dnw (accumulated) */
static void mhc__bw_hc_pre(mhc_node *nd) {
    mhc__pre_node *p = MHC__CAST(mhc__pre_node *, nd->saved);
    mhc__pre_io io;
    size_t T = (size_t)p->T, n = (size_t)p->spec.n;
    mhc_real *g = p->packed->grad;
    memset(&io, 0, sizeof io);
    io.s = &p->spec; io.head = p->head; io.T = p->T; io.C = p->C;
    io.x = p->x->data;
    io.fn = p->fn ? p->fn->data : NULL;
    io.scale = p->scale ? p->scale->data : NULL;
    io.base = p->base ? p->base->data : NULL;
    io.nw = p->nw ? p->nw->data : NULL;
    io.saved_in = p->saved;
    io.g_li = g;
    io.g_hpre = g + T * (size_t)p->C;
    if (!p->head) {
        io.g_hpost = io.g_hpre + T * n;
        io.g_hres = io.g_hpost + T * n;
    }
    io.dx = p->x->grad;
    io.dfn = p->fn ? p->fn->grad : NULL;
    io.dscale = p->scale ? p->scale->grad : NULL;
    io.dbase = p->base ? p->base->grad : NULL;
    io.dnw = p->nw ? p->nw->grad : NULL;
    mhc__pre_exec(&io, 1, p->work, p->nch, p->work + (size_t)p->nch * mhc__pre_chunk_doubles(&io));
}

/* An arena tensor viewing base's data and gradient from element off, with the given shape. */
static mhc_tensor *mhc__subview(mhc_tape *tp, mhc_tensor *base, size_t off, int ndim, const int *shape, const char *name) {
    mhc_tensor *t = MHC__CAST(mhc_tensor *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc_tensor)));
    int d;
    size_t size = 1;
    if (!t) { tp->failed = 1; return NULL; }
    for (d = 0; d < MHC_MAX_DIMS; d++) {
        t->shape[d] = d < ndim ? shape[d] : 1;
        if (d < ndim) size *= (size_t)shape[d];
    }
    t->ndim = ndim;
    t->size = size;
    t->data = base->data + off;
    t->grad = base->grad ? base->grad + off : NULL;
    t->name = name;
    mhc__tag(tp, t);
    return t;
}

static mhc_result mhc__tape_last(mhc_tape *tp, mhc_result dflt) {
    return tp->ctx && tp->ctx->last != MHC_OK ? tp->ctx->last : dflt;
}

/* The shared body of mhc_hc_pre and mhc_hc_head: outs[0..3] = li (head: out), h_pre, h_post, h_res.
   One forward pass (mhc__pre_exec) over the tokens; the node saves the dots and rstd. */
static mhc_result mhc__hc_pre_op(mhc_tape *tp, const char *op, const mhc_hc_spec *s, int head, mhc_tensor *x,
                                 const mhc_hc_params *w, mhc_tensor **outs) {
    mhc__pre_io io;
    mhc__pre_node *p = NULL;
    mhc_tensor *fn = NULL, *scale = NULL, *base = NULL, *nw = NULL, *packed;
    mhc_node *node;
    double *work;
    int n, T, C, D, kind, rows, shape[3], need, nch;
    size_t nd;
    char sh[64];
    outs[0] = outs[1] = outs[2] = outs[3] = NULL;
    if (!tp) return MHC_ERR_NULL;
    if (!mhc__op_begin(tp, op, 1, x, NULL)) return mhc__tape_last(tp, MHC_ERR_STATE);
    if (mhc__spec_check(tp->ctx, op, s) != MHC_OK) { tp->failed = 1; return mhc__tape_last(tp, MHC_ERR_VALUE); }
    n = s->n;
    memset(&io, 0, sizeof io);
    io.s = s; io.head = head;
    kind = mhc__pre_kind(&io);
    if (kind != 0) {
        if (!w) { mhc__op_fail(tp, MHC_ERR_NULL, "%s: the parameters (w) are NULL", op); return MHC_ERR_NULL; }
        fn = w->fn; scale = w->scale; base = w->base; nw = w->norm_weight;
        if (!fn || !scale || !base) {
            if (!tp->failed)
                mhc__op_fail(tp, MHC_ERR_NULL, "%s: parameter %s is NULL", op, !fn ? "fn" : !scale ? "scale" : "base");
            return mhc__tape_last(tp, MHC_ERR_NULL);
        }
        if (!mhc__tensor_ok(tp, op, fn, "parameter fn") || !mhc__tensor_ok(tp, op, scale, "parameter scale") ||
            !mhc__tensor_ok(tp, op, base, "parameter base") || !mhc__opt_ok(tp, op, nw, "parameter norm_weight"))
            return mhc__tape_last(tp, MHC_ERR_SHAPE);
    }
    if (x->ndim == 3 && x->shape[1] == n) { T = x->shape[0]; C = x->shape[2]; }
    else if (x->ndim == 2 && x->shape[1] % n == 0) { T = x->shape[0]; C = x->shape[1] / n; }
    else {
        mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: x has shape %s, expected [T, n, C] (or [T, n*C]) with n = %d", op,
                     mhc_shape_str(x, sh, sizeof sh), n);
        return MHC_ERR_SHAPE;
    }
    if (!mhc__fits_int(tp, x, op)) return MHC_ERR_OVERFLOW;
    if (mhc__rc_check_x(tp, op, x) != MHC_OK) return MHC_ERR_STATE;
    D = n * C;
    io.T = T; io.C = C;
    rows = mhc__pre_rows(&io);
    if (kind != 0) {
        int cols = kind == 1 ? C : D, nb = head ? n : (kind == 1 ? 2 * n + n * n : s->m), ns = head ? 1 : 3;
        if (fn->ndim != 2 || fn->shape[0] != rows || fn->shape[1] != cols) {
            mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: fn has shape %s, expected [%d,%d] (%s; n = %d, C = %d)", op,
                         mhc_shape_str(fn, sh, sizeof sh), rows, cols,
                         head ? "the head: n rows, n*C columns"
                              : kind == 1 ? "hc: theta has n + 2 rows, C columns"
                                          : s->variant == MHC_VARIANT_LITE ? "2n + n! rows, n*C columns"
                                                                           : "2n + n*n rows, n*C columns",
                         n, C);
            return MHC_ERR_SHAPE;
        }
        if (scale->size != (size_t)ns || base->size != (size_t)nb) {
            mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: scale has %zu and base %zu elements, expected %d and %d (n = %d)", op,
                         scale->size, base->size, ns, nb, n);
            return MHC_ERR_SHAPE;
        }
        if (nw && nw->size != (size_t)cols) {
            mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: norm_weight has %zu elements, expected %d", op, nw->size, cols);
            return MHC_ERR_SHAPE;
        }
    }
    need = mhc__needs_grad(tp, x) || mhc__needs_grad(tp, fn) || mhc__needs_grad(tp, scale) ||
           mhc__needs_grad(tp, base) || mhc__needs_grad(tp, nw);
    shape[0] = T;
    if ((size_t)C + (size_t)n + (head ? 0 : (size_t)n + (size_t)n * n) > (size_t)INT_MAX) {
        mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: C + 2n + n*n = %d + %d + %d exceeds the kernels' int range", op, C,
                     2 * n, n * n);
        return MHC_ERR_OVERFLOW;
    }
    shape[1] = C + n + (head ? 0 : n + n * n);    /* the packed outputs (laid out block by block) */
    packed = mhc__new_out(tp, 2, shape, need, op);     /* every element is written by mhc__pre_exec */
    if (!packed) return mhc__tape_last(tp, MHC_ERR_NOMEM);
    shape[1] = C;
    outs[0] = mhc__subview(tp, packed, 0, 2, shape, head ? "hc_head.out" : "hc_pre.layer_input");
    shape[1] = n;
    outs[1] = mhc__subview(tp, packed, (size_t)T * C, 2, shape, "hc_pre.h_pre");
    if (!head) {
        outs[2] = mhc__subview(tp, packed, (size_t)T * (C + n), 2, shape, "hc_pre.h_post");
        shape[2] = n;
        outs[3] = mhc__subview(tp, packed, (size_t)T * (C + 2 * n), 3, shape, "hc_pre.h_res");
    }
    if (!outs[0] || !outs[1] || (!head && (!outs[2] || !outs[3]))) goto fail;
    io.x = x->data; io.fn = fn ? fn->data : NULL; io.scale = scale ? scale->data : NULL;
    io.base = base ? base->data : NULL; io.nw = nw ? nw->data : NULL;
    io.li = outs[0]->data; io.hpre = outs[1]->data;
    if (!head) { io.hpost = outs[2]->data; io.hres = outs[3]->data; }
    if (packed->grad) {
        p = MHC__CAST(mhc__pre_node *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc__pre_node)));
        if (!p) goto fail;
        if (kind == 2) {
            p->saved = MHC__CAST(double *, mhc_arena_calloc(tp->arena, (size_t)T * (size_t)(rows + 1), sizeof(double)));
            if (!p->saved) goto fail;
            io.saved = p->saved;
        }
    }
    nd = mhc__pre_scratch(&io, packed->grad != NULL, &nch);
    if (nd == 0) {
        mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: scratch size overflows (T = %d, n = %d, C = %d)", op, T, n, C);
        goto fail;
    }
    if (mhc__pre_scratch_ok(tp->ctx, op, &io, nch, nd) != MHC_OK) goto fail;
    work = MHC__CAST(double *, mhc_arena_alloc(tp->arena, nd * sizeof(double)));
    if (!work) goto fail;
    mhc__pre_exec(&io, 0, work, nch, work + (size_t)nch * mhc__pre_chunk_doubles(&io));
    node = mhc__tape_record(tp, op, mhc__bw_hc_pre, packed);
    if (node) {
        p->spec = *s;
        p->x = x; p->fn = fn; p->scale = scale; p->base = base; p->nw = nw;
        p->packed = packed; p->head = head; p->T = T; p->C = C; p->nch = nch; p->work = work;
        node->in[0] = x; node->in[1] = fn; node->in[2] = scale; node->in[3] = base;
        node->saved = p;
    }
    if (tp->failed) goto fail;
    return MHC_OK;
fail:
    tp->failed = 1;
    outs[0] = outs[1] = outs[2] = outs[3] = NULL;
    return mhc__tape_last(tp, MHC_ERR_NOMEM);
}

MHCDEF mhc_result mhc_hc_pre(mhc_tape *tp, const mhc_hc_spec *s, mhc_tensor *x, const mhc_hc_params *w,
                             mhc_hc_pre_out *out) {
    mhc_tensor *o[4];
    mhc_result r;
    if (!out) {
        if (tp) tp->failed = 1;
        return mhc_fail(tp ? tp->ctx : NULL, MHC_ERR_NULL, "mhc_hc_pre: out is NULL");
    }
    r = mhc__hc_pre_op(tp, "mhc_hc_pre", s, 0, x, w, o);
    out->layer_input = o[0]; out->h_pre = o[1]; out->h_post = o[2]; out->h_res = o[3];
    return r;
}

MHCDEF mhc_tensor *mhc_hc_head(mhc_tape *tp, const mhc_hc_spec *s, mhc_tensor *x, const mhc_hc_params *w) {
    mhc_tensor *o[4];
    return mhc__hc_pre_op(tp, "mhc_hc_head", s, 1, x, w, o) == MHC_OK ? o[0] : NULL;
}

MHCDEF mhc_tensor *mhc_hc_post(mhc_tape *tp, mhc_tensor *x, mhc_tensor *h_res, mhc_tensor *h_post, mhc_tensor *f_out) {
    const char *op = "mhc_hc_post";
    mhc_tensor *out;
    mhc_node *nd;
    mhc__post_node *pn = NULL;
    mhc__rc *rc = NULL;
    int T, n, C, need;
    char s1[64], s2[64];
    if (!mhc__op_begin(tp, op, 2, x, h_res)) return NULL;
    if (tp->failed && (!h_post || !f_out)) return NULL;   /* an optional input may be missing from a failed op */
    if (f_out && !h_post) return mhc__op_fail(tp, MHC_ERR_NULL, "%s: h_post is NULL (needed with f_out)", op);
    if (f_out && (!mhc__tensor_ok(tp, op, h_post, "h_post") || !mhc__tensor_ok(tp, op, f_out, "f_out"))) return NULL;
    if (x->ndim != 3) return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: x has shape %s, expected [T, n, C]", op, mhc_shape_str(x, s1, sizeof s1));
    if (!mhc__fits_int(tp, x, op)) return NULL;
    T = x->shape[0]; n = x->shape[1]; C = x->shape[2];
    if (h_res->size != (size_t)T * n * n)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: h_res has shape %s, expected [%d,%d,%d] for x %s", op,
                            mhc_shape_str(h_res, s1, sizeof s1), T, n, n, mhc_shape_str(x, s2, sizeof s2));
    if (f_out && h_post->size != (size_t)T * n)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: h_post has shape %s, expected [%d,%d]", op,
                            mhc_shape_str(h_post, s1, sizeof s1), T, n);
    if (f_out && f_out->size != (size_t)T * C)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: f_out has shape %s, expected [%d,%d]", op,
                            mhc_shape_str(f_out, s1, sizeof s1), T, C);
    need = mhc__needs_grad(tp, x) || mhc__needs_grad(tp, h_res) ||
           (f_out && (mhc__needs_grad(tp, h_post) || mhc__needs_grad(tp, f_out)));
    if (tp->ext[MHC_TAPE_EXT_HC].option > 0 && need && !tp->no_grad) {
        rc = mhc__rc_get(tp, op, T, n, C);
        if (!rc) return NULL;
    }
    if (rc) {
        /* x must be a checkpoint (or not a stream state of this step), or the newest post's output */
        int pos = rc->count + 1, slot = rc->block > 1 && pos % rc->block ? pos % rc->block - 1 : -1;
        mhc__post_node *prev = NULL;
        if (mhc__rc_check_x(tp, op, x) != MHC_OK) return NULL;
        if (rc->last && rc->last->nd->out == x) prev = rc->last;
        out = MHC__CAST(mhc_tensor *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc_tensor)));
        if (!out) { tp->failed = 1; return NULL; }
        *out = *x;
        out->name = op;
        mhc__tag(tp, out);
        if (slot >= 0) {
            if (!rc->slot[slot]) {
                rc->slot[slot] = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, x->size * sizeof(mhc_real)));
                if (!rc->slot[slot]) { tp->failed = 1; return NULL; }
            }
            out->data = rc->slot[slot];
            rc->slot_pos[slot] = pos;
        } else {
            out->data = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, x->size * sizeof(mhc_real)));
            if (!out->data) { tp->failed = 1; return NULL; }
        }
        out->grad = rc->ring[pos & 1];
        pn = MHC__CAST(mhc__post_node *, mhc_arena_calloc(tp->arena, 1, sizeof(mhc__post_node)));
        if (!pn) { tp->failed = 1; return NULL; }
        pn->rc = rc; pn->pos = pos; pn->slot = slot; pn->prev = prev;
    } else {
        out = mhc__new_out(tp, 3, x->shape, need, op);     /* mhc_k_hc_post_forward writes all of it */
        if (!out) return NULL;
    }
    mhc_k_hc_post_forward(out->data, x->data, h_res->data, f_out ? h_post->data : NULL, f_out ? f_out->data : NULL, T, n, C);
    nd = mhc__tape_record(tp, op, mhc__bw_hc_post, out);
    if (nd) {
        nd->in[0] = x; nd->in[1] = h_res; nd->in[2] = f_out ? h_post : NULL; nd->in[3] = f_out;
        nd->iarg[0] = T; nd->iarg[1] = n; nd->iarg[2] = C;
        nd->saved = pn;
        if (pn) {                  /* (recorded: the next post may take this output as its x) */
            pn->nd = nd;
            if (pn->prev) pn->prev->next = pn;
            rc->count = pn->pos;
            rc->last = pn;
        }
    }
    return tp->failed ? NULL : out;
}

/* x[t,i,c] = e[t,c]:  de[t,c] += sum_i dx[t,i,c] */
static void mhc__bw_hc_expand(mhc_node *nd) {
    if (nd->in[0]->grad) mhc_k_hc_expand_backward(nd->in[0]->grad, nd->out->grad, nd->iarg[0], nd->iarg[1], nd->iarg[2]);
}

MHCDEF mhc_tensor *mhc_hc_expand(mhc_tape *tp, mhc_tensor *e, int n) {
    const char *op = "mhc_hc_expand";
    mhc_tensor *out;
    mhc_node *nd;
    int T, C, shape[3];
    if (!mhc__op_begin(tp, op, 1, e, NULL)) return NULL;
    if (n < 1 || n > 1024) return mhc__op_fail(tp, MHC_ERR_SIZE, "%s: n = %d streams, expected 1..1024", op, n);
    mhc__as_2d(e, &T, &C);
    if (e->size > (size_t)0x7fffffff / (size_t)n)
        return mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: %zu elements x %d streams exceeds the kernels' int range", op, e->size, n);
    shape[0] = T; shape[1] = n; shape[2] = C;
    out = mhc__new_out(tp, 3, shape, mhc__needs_grad(tp, e), op);   /* every element is a copy */
    if (!out) return NULL;
    mhc_k_hc_expand_forward(out->data, e->data, T, n, C);
    nd = mhc__tape_record(tp, op, mhc__bw_hc_expand, out);
    if (nd) { nd->in[0] = e; nd->iarg[0] = T; nd->iarg[1] = n; nd->iarg[2] = C; }
    return tp->failed ? NULL : out;
}

/* out = project(logits): d_logits += the exact backward of the truncated iteration (recomputed) */
static void mhc__bw_sinkhorn(mhc_node *nd) {
    mhc_tensor *z = nd->in[0];
    mhc_projection proj = (mhc_projection)nd->iarg[0];
    int n = nd->iarg[1], iters = nd->iarg[2], T = nd->iarg[3], nch = nd->iarg[4];
    mhc_hc_spec s;
    if (!z->grad) return;
    mhc__proj_spec_make(&s, proj, n, iters, nd->farg[0]);
    mhc__sk_exec(&s, z->grad, nd->out->grad, z->data, T, 1, MHC__CAST(double *, nd->saved), nch, mhc__sk_per(&s));
}

MHCDEF mhc_tensor *mhc_sinkhorn(mhc_tape *tp, mhc_projection proj, int n, int iters, double eps, mhc_tensor *logits) {
    const char *op = "mhc_sinkhorn";
    mhc_tensor *out;
    mhc_node *nd;
    double *work;
    size_t per, tot, nres;
    int T, nch, shape[3];
    char sh[64];
    mhc_hc_spec s;
    if (!mhc__op_begin(tp, op, 1, logits, NULL)) return NULL;
    if (mhc__proj_args(tp->ctx, op, proj, n, iters, eps, logits->data, logits->data, 1, &s) != MHC_OK) {
        tp->failed = 1;
        return NULL;
    }
    if (!mhc__fits_int(tp, logits, op)) return NULL;
    nres = (size_t)s.nres;
    if (!((logits->ndim == 2 && (size_t)logits->shape[1] == nres) ||
          (proj != MHC_PROJ_PERM && logits->ndim == 3 && logits->shape[1] == n && logits->shape[2] == n)))
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "%s: logits have shape %s, expected [T, %zu]%s (n = %d, projection %s)", op,
                            mhc_shape_str(logits, sh, sizeof sh), nres, proj == MHC_PROJ_PERM ? "" : " or [T, n, n]", n,
                            mhc_projection_name(proj));
    T = logits->shape[0];
    shape[0] = T; shape[1] = n; shape[2] = n;
    tot = mhc__sk_scratch(&s, T, &nch, &per);
    if (tot == 0) return mhc__op_fail(tp, MHC_ERR_OVERFLOW, "%s: scratch size overflows (T = %d, n = %d)", op, T, n);
    if (mhc__sk_scratch_ok(tp->ctx, op, &s, nch, tot) != MHC_OK) { tp->failed = 1; return NULL; }
    out = mhc__new_like(tp, 3, shape, mhc__needs_grad(tp, logits), op);
    if (!out) return NULL;
    work = MHC__CAST(double *, mhc_arena_alloc(tp->arena, tot * sizeof(double)));
    if (!work) { tp->failed = 1; return NULL; }
    mhc__sk_exec(&s, out->data, NULL, logits->data, T, 0, work, nch, per);
    nd = mhc__tape_record(tp, op, mhc__bw_sinkhorn, out);
    if (nd) {
        nd->in[0] = logits; nd->saved = work;
        nd->iarg[0] = (int)proj; nd->iarg[1] = n; nd->iarg[2] = iters; nd->iarg[3] = T; nd->iarg[4] = nch;
        nd->farg[0] = eps;
    }
    return tp->failed ? NULL : out;
}

/* ---- diagnostics ---- */

MHCDEF mhc_result mhc_hc_amax_gain(mhc_ctx *ctx, const mhc_real *const *A, int L, int T, int n, mhc_gain_stats *out) {
    double *buf, fmax = 0.0, fsum = 0.0, bmax = 0.0, bsum = 0.0;
    size_t nn = (size_t)n * (size_t)n, per, tot;
    int l, nch, ch, t;
    if (!A || !out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_amax_gain: A or out is NULL");
    if (L < 1 || T < 1 || n < 1 || n > 1024)
        return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_hc_amax_gain: L = %d, T = %d, n = %d; expected L, T >= 1 and 1 <= n <= 1024", L, T, n);
    for (l = 0; l < L; l++)
        if (!A[l]) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_amax_gain: A[%d] is NULL", l);
    per = 3 * nn;
    nch = mhc__nchunks(T, (double)L * (double)nn * n);
    if (!mhc__mul_ok(per, (size_t)nch, &tot) || tot > SIZE_MAX / sizeof(double) - 2 * (size_t)T)
        return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_hc_amax_gain: scratch size overflows");
    tot += 2 * (size_t)T;
    if (mhc__scratch_ok(ctx, "mhc_hc_amax_gain", tot, "the gain (3 n^2 doubles per chunk of tokens and 2 per token)")
        != MHC_OK)
        return ctx ? ctx->last : MHC_ERR_SIZE;
    buf = MHC__CAST(double *, MHC_MALLOC(tot * sizeof(double)));
    if (!buf) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_hc_amax_gain: cannot allocate %zu bytes", tot * sizeof(double));
    MHC__OMP_FOR(nch > 1)
    for (ch = 0; ch < nch; ch++) {
        double *P = buf + 2 * (size_t)T + (size_t)ch * per, *Q = P + nn;
        int t0 = (int)((long long)T * ch / nch), t1 = (int)((long long)T * (ch + 1) / nch), tt, ll, i, j, k;
        for (tt = t0; tt < t1; tt++) {
            double fw = 0.0, bw = 0.0;
            /* P = A_L ... A_1 (A[0] applied first) */
            for (k = 0; k < (int)nn; k++) P[k] = (double)A[0][(size_t)tt * nn + k];
            for (ll = 1; ll < L; ll++) {
                const mhc_real *Al = A[ll] + (size_t)tt * nn;
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++) {
                        double a = 0.0;
                        for (k = 0; k < n; k++) a += (double)Al[i * n + k] * P[k * n + j];
                        Q[i * n + j] = a;
                    }
                for (k = 0; k < (int)nn; k++) P[k] = Q[k];
            }
            for (i = 0; i < n; i++) {
                double r = 0.0, c = 0.0;
                for (j = 0; j < n; j++) { r += fabs(P[i * n + j]); c += fabs(P[j * n + i]); }
                if (r > fw) fw = r;
                if (c > bw) bw = c;
            }
            buf[tt] = fw;
            buf[T + tt] = bw;
        }
    }
    for (t = 0; t < T; t++) {
        fsum += buf[t]; bsum += buf[T + t];
        if (buf[t] > fmax || t == 0) fmax = buf[t];
        if (buf[T + t] > bmax || t == 0) bmax = buf[T + t];
    }
    out->fwd_max = fmax; out->fwd_mean = fsum / T;
    out->bwd_max = bmax; out->bwd_mean = bsum / T;
    MHC_FREE(buf);
    return MHC_OK;
}

MHCDEF mhc_result mhc_hc_ds_distance(mhc_ctx *ctx, const mhc_real *A, size_t count, int n,
                                     double *max_row_err, double *max_col_err) {
    size_t q;
    double re = 0.0, ce = 0.0;
    int i, j;
    if (!A || !max_row_err || !max_col_err) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_hc_ds_distance: NULL argument");
    if (count < 1 || n < 1 || n > 1024)
        return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_hc_ds_distance: count = %zu, n = %d; expected count >= 1 and 1 <= n <= 1024",
                        count, n);
    for (q = 0; q < count; q++) {
        const mhc_real *M = A + q * (size_t)n * (size_t)n;
        for (i = 0; i < n; i++) {
            double r = 0.0, c = 0.0;
            for (j = 0; j < n; j++) { r += (double)M[i * n + j]; c += (double)M[j * n + i]; }
            /* NaN and Inf count as infinitely far */
            double dr = mhc__finite(r) ? fabs(r - 1.0) : HUGE_VAL, dc = mhc__finite(c) ? fabs(c - 1.0) : HUGE_VAL;
            if (dr > re) re = dr;
            if (dc > ce) ce = dc;
        }
    }
    *max_row_err = re;
    *max_col_err = ce;
    return MHC_OK;
}

/* =========================================================================================
 * OPTIMIZER AND TRAINER (implementation)
 * AdamW in double per element, the schedules, the global gradient norm in fixed chunks
 * (thread-count independent), and the trainer step that checks, clips and updates.
 * ========================================================================================= */

/* mhc_adamw_step's elements [lo, hi), cloned (MHC__CLONES); chunks of MHC__ADAMW_CHUNK elements
   per OpenMP iteration (each element's update is independent: any split gives the same bits) */
#define MHC__ADAMW_CHUNK 4096
MHC__INLINE void mhc__adamw_range_body(mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t lo,
                                       size_t hi, double beta1, double beta2, double eps, double grad_scale,
                                       double step_size, double bc2_sqrt, double decay) {
    size_t i;
    for (i = lo; i < hi; i++)
        mhc__adamw_elem(param, grad, m, v, i, beta1, beta2, eps, grad_scale, step_size, bc2_sqrt, decay);
}
MHC__CLONES(mhc__adamw_range, (mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t lo, size_t hi,
                               double beta1, double beta2, double eps, double grad_scale, double step_size,
                               double bc2_sqrt, double decay),
            (param, grad, m, v, lo, hi, beta1, beta2, eps, grad_scale, step_size, bc2_sqrt, decay))

/* The per-step constants of mhc_adamw_step: lr / bias_correction1 and sqrt(bias_correction2) */
static void mhc__adamw_consts(double lr, double beta1, double beta2, long step, double *step_size, double *bc2_sqrt) {
    const double t = (double)(step < 1 ? 1 : step);
    *step_size = lr / (1.0 - pow(beta1, t));
    *bc2_sqrt = sqrt(1.0 - pow(beta2, t));
}

MHCDEF void mhc_adamw_step(mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t n,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           double grad_scale, long step) {
    double step_size, bc2_sqrt;
    const double decay = 1.0 - lr * weight_decay;
    const long nc = (long)((n + MHC__ADAMW_CHUNK - 1) / MHC__ADAMW_CHUNK);
    long c;
    mhc__adamw_consts(lr, beta1, beta2, step, &step_size, &bc2_sqrt);
    MHC__OMP_FOR(n > (size_t)MHC__PAR_WORK)
    for (c = 0; c < nc; c++) {
        const size_t lo = (size_t)c * MHC__ADAMW_CHUNK, hi = n - lo < MHC__ADAMW_CHUNK ? n : lo + MHC__ADAMW_CHUNK;
        mhc__adamw_range(param, grad, m, v, lo, hi, beta1, beta2, eps, grad_scale, step_size, bc2_sqrt, decay);
    }
}

/* floor(frac * total), robust to frac being stored a hair below its decimal value. */
static long mhc__lr_boundary(double frac, long total) {
    double x = frac * (double)total;
    return (long)floor(x + 1e-9 * (x > 1.0 ? x : 1.0));
}

MHCDEF double mhc_lr_at(const mhc_lr_schedule *s, long step) {
    double lr, w = 1.0;
    if (!s) return 0.0;
    if (step < 1) step = 1;
    lr = s->lr;
    if (s->warmup > 0 && step <= s->warmup) w = (double)step / (double)s->warmup;
    if (s->kind == MHC_LR_COSINE) {
        double lo = s->min_lr_frac * lr, prog;
        if (s->warmup > 0 && step <= s->warmup) return lr * w;
        if (s->total <= s->warmup) return lo;
        prog = (double)(step - s->warmup) / (double)(s->total - s->warmup);
        if (prog > 1.0) prog = 1.0;
        return lo + (lr - lo) * 0.5 * (1.0 + cos(3.141592653589793238462643 * prog));
    }
    if (s->kind == MHC_LR_STEP) {
        double at0 = s->decay_at[0] != 0.0 ? s->decay_at[0] : 0.8;
        double at1 = s->decay_at[1] != 0.0 ? s->decay_at[1] : 0.9;
        double m0 = s->decay_mult[0] != 0.0 ? s->decay_mult[0] : 0.316;
        double m1 = s->decay_mult[1] != 0.0 ? s->decay_mult[1] : 0.1;
        double mult = 1.0;
        if (step > mhc__lr_boundary(at0, s->total)) mult = m0;
        if (step > mhc__lr_boundary(at1, s->total)) mult = m1;
        return lr * w * mult;
    }
    return lr * w;   /* MHC_LR_CONSTANT */
}

/* Bit tests for "field is 0" (+0 or -0) and "field is x": under -ffast-math a NaN may compare
   equal to anything, and a NaN field must be refused, not turned into a default. */
static int mhc__opt_is_zero(double x) {
    uint64_t a;
    memcpy(&a, &x, sizeof a);
    return (a << 1) == 0;
}
static int mhc__opt_is(double x, double y) {
    uint64_t a, b;
    memcpy(&a, &x, sizeof a);
    memcpy(&b, &y, sizeof b);
    return a == b;
}

/* Fill in the defaults: zero fields get the documented defaults, MHC_ZERO becomes 0. */
static void mhc__adamw_defaults(const mhc_adamw_config *in, mhc_adamw_config *out) {
    if (in) *out = *in;
    else memset(out, 0, sizeof *out);
#define MHC__DEF(field, dflt) \
    if (mhc__opt_is_zero(out->field)) out->field = (dflt); \
    else if (mhc__opt_is(out->field, MHC_ZERO)) out->field = 0.0
    MHC__DEF(schedule.lr, 1e-3);
    MHC__DEF(beta1, 0.9);
    MHC__DEF(beta2, 0.95);
    MHC__DEF(weight_decay, 0.1);
    MHC__DEF(grad_clip, 1.0);
#undef MHC__DEF
    if (mhc__opt_is_zero(out->eps)) out->eps = 1e-8;
    if (mhc__opt_is_zero(out->schedule.decay_at[0])) out->schedule.decay_at[0] = 0.8;
    if (mhc__opt_is_zero(out->schedule.decay_at[1])) out->schedule.decay_at[1] = 0.9;
    if (mhc__opt_is_zero(out->schedule.decay_mult[0])) out->schedule.decay_mult[0] = 0.316;
    if (mhc__opt_is_zero(out->schedule.decay_mult[1])) out->schedule.decay_mult[1] = 0.1;
}

/* Check a resolved configuration; fn prefixes the message. NaN is caught by mhc__opt_finite
   (bit test), not only by comparisons, so the checks survive -ffast-math. */
static mhc_result mhc__adamw_validate(mhc_ctx *ctx, const char *fn, const mhc_adamw_config *c, mhc_result code) {
    const mhc_lr_schedule *s = &c->schedule;
    if (s->kind < 0 || s->kind >= MHC_LR_KIND_COUNT)
        return mhc_fail(ctx, code, "%s: schedule.kind is %d; expected MHC_LR_CONSTANT (0), MHC_LR_COSINE (1) "
                        "or MHC_LR_STEP (2)", fn, s->kind);
    if (!(s->lr >= 0.0) || !mhc__finite(s->lr))
        return mhc_fail(ctx, code, "%s: schedule.lr is %g; expected a finite learning rate >= 0", fn, s->lr);
    if (s->warmup < 0 || s->warmup > MHC_STEP_MAX)
        return mhc_fail(ctx, code, "%s: schedule.warmup is %ld; expected 0 to MHC_STEP_MAX (%ld)", fn, s->warmup,
                        MHC_STEP_MAX);
    if (s->total < 0 || s->total > MHC_STEP_MAX)
        return mhc_fail(ctx, code, "%s: schedule.total is %ld; expected 0 to MHC_STEP_MAX (%ld)", fn, s->total,
                        MHC_STEP_MAX);
    if (s->kind != MHC_LR_CONSTANT) {
        if (s->total < 1)
            return mhc_fail(ctx, code, "%s: schedule.total is %ld; the %s schedule needs the total number of "
                            "steps (>= 1)", fn, s->total, s->kind == MHC_LR_COSINE ? "cosine" : "step-decay");
        if (s->warmup > s->total)
            return mhc_fail(ctx, code, "%s: schedule.warmup (%ld) exceeds schedule.total (%ld)", fn, s->warmup,
                            s->total);
    }
    if (!mhc__finite(s->min_lr_frac) || !(s->min_lr_frac >= 0.0 && s->min_lr_frac <= 1.0))
        return mhc_fail(ctx, code, "%s: schedule.min_lr_frac is %g; expected 0 <= min_lr_frac <= 1", fn,
                        s->min_lr_frac);
    if (!mhc__finite(s->decay_at[0]) || !mhc__finite(s->decay_at[1]) ||
        !(s->decay_at[0] > 0.0 && s->decay_at[0] <= s->decay_at[1] && s->decay_at[1] <= 1.0))
        return mhc_fail(ctx, code, "%s: schedule.decay_at is {%g, %g}; expected 0 < decay_at[0] <= decay_at[1] <= 1",
                        fn, s->decay_at[0], s->decay_at[1]);
    if (!(s->decay_mult[0] > 0.0) || !mhc__finite(s->decay_mult[0]) || !(s->decay_mult[1] > 0.0) ||
        !mhc__finite(s->decay_mult[1]))
        return mhc_fail(ctx, code, "%s: schedule.decay_mult is {%g, %g}; expected finite multipliers > 0", fn,
                        s->decay_mult[0], s->decay_mult[1]);
    if (!mhc__finite(c->beta1) || !(c->beta1 >= 0.0 && c->beta1 < 1.0))
        return mhc_fail(ctx, code, "%s: beta1 is %g; expected 0 <= beta1 < 1", fn, c->beta1);
    if (!mhc__finite(c->beta2) || !(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return mhc_fail(ctx, code, "%s: beta2 is %g; expected 0 <= beta2 < 1", fn, c->beta2);
    if (!(c->eps > 0.0) || !mhc__finite(c->eps))
        return mhc_fail(ctx, code, "%s: eps is %g; expected a finite eps > 0 (the paper uses 1e-20)", fn, c->eps);
    if (!(c->weight_decay >= 0.0) || !mhc__finite(c->weight_decay))
        return mhc_fail(ctx, code, "%s: weight_decay is %g; expected a finite value >= 0 (MHC_ZERO for none)",
                        fn, c->weight_decay);
    if (!(c->grad_clip >= 0.0) || !mhc__finite(c->grad_clip))
        return mhc_fail(ctx, code, "%s: grad_clip is %g; expected a finite norm > 0 (MHC_ZERO for no clipping)",
                        fn, c->grad_clip);
    return MHC_OK;
}

MHCDEF mhc_result mhc_trainer_init(mhc_ctx *ctx, mhc_trainer *tr, const mhc_adamw_config *cfg) {
    mhc_adamw_config c;
    mhc_result r;
    if (!tr) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_trainer_init: trainer is NULL");
    memset(tr, 0, sizeof *tr);
    tr->ctx = ctx;
    mhc__adamw_defaults(cfg, &c);
    r = mhc__adamw_validate(ctx, "mhc_trainer_init", &c, MHC_ERR_VALUE);
    if (r != MHC_OK) return r;
    tr->cfg = c;
    tr->last_clip_scale = 1.0;
    tr->ready = 1;
    return MHC_OK;
}

/* Sum of squares in double over 64 fixed chunks (boundaries depend on n only), chunk sums
   added in order: the same bits for any thread count. */
#define MHC__SUMSQ_CHUNKS 64
static double mhc__sumsq_fixed(const mhc_real *x, size_t n) {
    double part[MHC__SUMSQ_CHUNKS], total = 0.0;
    size_t chunk = (n + MHC__SUMSQ_CHUNKS - 1) / MHC__SUMSQ_CHUNKS;
    int c;
    MHC__OMP_FOR(n > (size_t)MHC__PAR_WORK)
    for (c = 0; c < MHC__SUMSQ_CHUNKS; c++) {
        size_t lo = (size_t)c * chunk, hi = lo + chunk, i;
        double s = 0.0;
        if (lo > n) lo = n;
        if (hi > n) hi = n;
        for (i = lo; i < hi; i += (size_t)1 << 20)     /* mhc__sumsq: vectorised lanes, fixed order */
            s += mhc__sumsq(x + i, (int)(hi - i < ((size_t)1 << 20) ? hi - i : ((size_t)1 << 20)));
        part[c] = s;
    }
    for (c = 0; c < MHC__SUMSQ_CHUNKS; c++) total += part[c];
    return total;
}

MHCDEF double mhc_grad_norm(const mhc_params *p) {
    if (!p || !p->grad || p->size == 0) return 0.0;
    return sqrt(mhc__sumsq_fixed(p->grad, p->size));
}

/* mhc_adamw_step on every tensor of p (weight decay for MHC_PARAM_DECAY ones) in one parallel region:
   the tensors' chunk loops share it without barriers between them (one region per step instead of
   one per tensor; each element's update is the same arithmetic, so the same bits). */
static void mhc__adamw_all(mhc_params *p, double lr, const mhc_adamw_config *c, double scale, long step) {
    double step_size, bc2_sqrt;
    mhc__adamw_consts(lr, c->beta1, c->beta2, step, &step_size, &bc2_sqrt);
    MHC__OMP_PARALLEL(p->size > (size_t)MHC__PAR_WORK)
    {
        int i;
        for (i = 0; i < p->count; i++) {
            const size_t off = p->offset[i], n = p->tensors[i].size;
            const double decay = 1.0 - lr * (p->decay[i] == MHC_PARAM_DECAY ? c->weight_decay : 0.0);
            const long nc = (long)((n + MHC__ADAMW_CHUNK - 1) / MHC__ADAMW_CHUNK);
            long k;
            MHC__OMP_FOR_NOWAIT
            for (k = 0; k < nc; k++) {
                const size_t lo = (size_t)k * MHC__ADAMW_CHUNK, hi = n - lo < MHC__ADAMW_CHUNK ? n : lo + MHC__ADAMW_CHUNK;
                mhc__adamw_range(p->data + off, p->grad + off, p->m + off, p->v + off, lo, hi, c->beta1, c->beta2,
                                 c->eps, scale, step_size, bc2_sqrt, decay);
            }
        }
    }
}

MHCDEF mhc_result mhc_trainer_step(mhc_trainer *tr, mhc_params *p) {
    const mhc_adamw_config *c;
    double norm, scale = 1.0, lr;
    long t;
    mhc_result r;
    if (!tr) return MHC_ERR_NULL;
    if (!tr->ready) return mhc_fail(tr->ctx, MHC_ERR_STATE, "mhc_trainer_step: the trainer is not initialised "
                                    "(call mhc_trainer_init)");
    if (!p) return mhc_fail(tr->ctx, MHC_ERR_NULL, "mhc_trainer_step: params is NULL");
    if (!p->data || !p->grad || !p->m || !p->v)
        return mhc_fail(tr->ctx, MHC_ERR_STATE, "mhc_trainer_step: the parameter store is not allocated "
                        "(call mhc_params_alloc)");
    c = &tr->cfg;
    r = mhc__adamw_validate(tr->ctx, "mhc_trainer_step", c, MHC_ERR_VALUE);
    if (r != MHC_OK) return r;
    if (tr->step < 0 || tr->step >= MHC_STEP_MAX)
        return mhc_fail(tr->ctx, MHC_ERR_STATE, "mhc_trainer_step: the step counter is %ld; a step can be taken from "
                        "0 to MHC_STEP_MAX - 1 (%ld) steps", tr->step, MHC_STEP_MAX - 1);
    t = tr->step + 1;
    lr = mhc_lr_at(&c->schedule, t);
    norm = mhc_grad_norm(p);
    if (!mhc__finite(norm)) {
        size_t j;
        for (j = 0; j < p->size; j++)
            if (!mhc__finite((double)p->grad[j])) break;
        if (j < p->size) {
            int k = 0;
            while (k + 1 < p->count && p->offset[k + 1] <= j) k++;
            return mhc_fail(tr->ctx, MHC_ERR_NONFINITE, "mhc_trainer_step: step %ld: the gradient norm is not finite "
                            "(%g): gradient of '%s' element %zu is %g; parameters not updated", t, norm, p->names[k],
                            j - p->offset[k], (double)p->grad[j]);
        }
        return mhc_fail(tr->ctx, MHC_ERR_NONFINITE, "mhc_trainer_step: step %ld: the gradient norm is not finite (%g): "
                        "the sum of squares overflows; parameters not updated", t, norm);
    }
    if (c->grad_clip > 0.0) {
        double coef = c->grad_clip / (norm + 1e-6);
        if (coef < 1.0) scale = coef;
    }
    mhc__adamw_all(p, lr, c, scale, t);
    tr->step = t;
    tr->last_grad_norm = norm;
    tr->last_clip_scale = scale;
    tr->last_lr = lr;
    return MHC_OK;
}

/* =========================================================================================
 * I/O: .npy AND CHECKPOINTS (implementation)
 * File reading shared by both formats, the bounds-checked .npy parser and writer, and the
 * checkpoint serialiser/verifier (all-or-nothing load, atomic save).
 * ========================================================================================= */

/* ---------------------------------------- NPY ---------------------------------------------
 * A bounds-checked reader for the tiny Python-literal header (every access goes through the
 * lexer below, which never looks past `end`), little-endian byte assembly for the data (so the
 * host's byte order does not matter), and a writer that mimics numpy's header layout. */

#ifdef __cplusplus
}
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#include <fcntl.h>
#include <sys/types.h>
#include <sys/stat.h>
#define MHC__POSIX_IO 1
#else
#define MHC__POSIX_IO 0
#endif
#ifdef __cplusplus
extern "C" {
#endif
/* Strict C (e.g. -std=c99 without a feature-test macro) hides these POSIX.1-2001 functions from the
   system headers; their signatures are fixed by POSIX, so the library declares them itself then. */
#if MHC__POSIX_IO && !defined(__cplusplus) && !defined(__APPLE__) && !defined(_GNU_SOURCE) && \
    !defined(_DEFAULT_SOURCE) && !defined(_BSD_SOURCE) && !defined(_XOPEN_SOURCE) && \
    !(defined(_POSIX_C_SOURCE) && _POSIX_C_SOURCE >= 200112L) && !defined(__USE_XOPEN2K) && \
    !defined(__USE_XOPEN_EXTENDED)
int lstat(const char *path, struct stat *st);
ssize_t readlink(const char *path, char *buf, size_t cap);
int fchmod(int fd, mode_t mode);
int fchown(int fd, uid_t owner, gid_t group);
#endif
#if MHC__POSIX_IO && !defined(S_ISSOCK)
#define S_ISSOCK(m) (((m) & 0170000) == 0140000)
#endif

#define MHC__NPY_MAGIC "\x93NUMPY"
#define MHC__NPY_GROWTH_DIGITS 21   /* numpy >= 1.23 leaves room for 21 digits in shape[0] */

MHCDEF void mhc_npy_free(mhc_npy *a) {
    if (!a) return;
    MHC_FREE(a->data);
    memset(a, 0, sizeof *a);
}

/* strerror of err, or a fixed text when errno was not set */
static const char *mhc__io_reason(int err) { return err ? strerror(err) : "unknown error"; }

/* ---- reading files: the type and size first, then exactly that many bytes ----
   On POSIX the file is opened without blocking (O_NONBLOCK: a FIFO must not hang the open), its
   type and size taken with fstat, and anything but a regular file refused (a device, a FIFO or a
   socket has no size to trust: /dev/zero never ends). A regular file is read to the size fstat gave
   (allocated once) and must not grow or shrink meanwhile; files that report size 0 but have
   content (Linux /proc) are read up to the limit. Plain C99 (no POSIX): fread until the end, never
   past the limit. */
#if MHC__POSIX_IO
typedef struct mhc__rfile { int fd; } mhc__rfile;
static const char *mhc__type_name(mode_t m) {
    return S_ISDIR(m) ? "a directory" : S_ISCHR(m) ? "a character device" : S_ISBLK(m) ? "a block device"
         : S_ISFIFO(m) ? "a FIFO (named pipe)" : S_ISSOCK(m) ? "a socket" : S_ISLNK(m) ? "a symbolic link"
         : "not a regular file";
}
/* Open path for reading: 0 and the file's size in *size, or -1 with errno set, or -2 when it is not a
   regular file (*what names its type). */
static int mhc__rf_open(mhc__rfile *f, const char *path, unsigned long long *size, const char **what) {
    struct stat st;
    int fl;
    f->fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (f->fd < 0) return -1;
    if (fstat(f->fd, &st) != 0) { int e = errno; close(f->fd); errno = e; return -1; }
    if (!S_ISREG(st.st_mode)) { *what = mhc__type_name(st.st_mode); close(f->fd); return -2; }
    fl = fcntl(f->fd, F_GETFL);
    if (fl >= 0) (void)fcntl(f->fd, F_SETFL, fl & ~O_NONBLOCK);
    *size = (unsigned long long)st.st_size;
    return 0;
}
/* Read up to n bytes (fewer only at the end of the file), retrying on EINTR; -1 on error. */
static long long mhc__rf_read(mhc__rfile *f, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        size_t chunk = n - got > ((size_t)1 << 30) ? ((size_t)1 << 30) : n - got;
        ssize_t r = read(f->fd, (unsigned char *)buf + got, chunk);
        if (r < 0) { if (errno == EINTR) continue; return -1; }
        if (r == 0) break;
        got += (size_t)r;
    }
    return (long long)got;
}
static void mhc__rf_close(mhc__rfile *f) { if (f->fd >= 0) close(f->fd); f->fd = -1; }
#else
typedef struct mhc__rfile { FILE *f; } mhc__rfile;
/* C99 cannot tell a file's type or size: size 0 (unknown) is reported, and reads are capped. */
static int mhc__rf_open(mhc__rfile *f, const char *path, unsigned long long *size, const char **what) {
    (void)what;
    f->f = fopen(path, "rb");
    *size = 0;
    return f->f ? 0 : -1;
}
static long long mhc__rf_read(mhc__rfile *f, void *buf, size_t n) {
    size_t got = fread(buf, 1, n, f->f);
    return ferror(f->f) ? -1 : (long long)got;
}
static void mhc__rf_close(mhc__rfile *f) { if (f->f) fclose(f->f); f->f = NULL; }
#endif

/* Open path for a reader: MHC_OK with the (regular) file open and its size in *size (0: unknown
   or empty), else the error naming fn and path. */
static mhc_result mhc__open_read(mhc_ctx *ctx, const char *fn, const char *path, mhc__rfile *f,
                                 unsigned long long *size) {
    const char *what = "not a regular file";
    int rc = mhc__rf_open(f, path, size, &what);
    if (rc == -1) return mhc_fail(ctx, MHC_ERR_IO, "%s: cannot open '%s' for reading: %s", fn, path, strerror(errno));
    if (rc == -2)
        return mhc_fail(ctx, MHC_ERR_IO, "%s: '%s' is %s, not a regular file (a reader needs the size of what it "
                        "reads: nothing was read)", fn, path, what);
    return MHC_OK;
}

/* Read all of the open file f (reported size `size`, 0 = unknown) into a new buffer of at most max
   bytes plus a terminating 0. */
static mhc_result mhc__read_all(mhc_ctx *ctx, const char *fn, const char *path, mhc__rfile *f,
                                unsigned long long size, size_t max, void **buf, size_t *len) {
    unsigned char *data = NULL, extra;
    size_t cap, n = 0;
    long long got;
    if (size > (unsigned long long)max)
        return mhc_fail(ctx, MHC_ERR_SIZE, "%s: '%s' has %llu bytes, more than the limit of %zu bytes for this reader; not read", fn,
                        path, size, max);
    if (size > 0) {   /* the size is known: one allocation, exactly that many bytes */
        cap = (size_t)size + 1;
        data = MHC__CAST(unsigned char *, MHC_MALLOC(cap));
        if (!data) return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory reading '%s' (%zu bytes)", fn, path, cap);
        got = mhc__rf_read(f, data, (size_t)size);
        if (got < 0) goto ioerr;
        if ((unsigned long long)got != size || mhc__rf_read(f, &extra, 1) != 0) {
            MHC_FREE(data);
            return mhc_fail(ctx, MHC_ERR_IO, "%s: '%s' changed size while being read (%llu bytes expected, %lld read)",
                            fn, path, size, got);
        }
        n = (size_t)got;
    } else {          /* unknown (or zero) size: grow by doubling, never past max */
        cap = 0;
        for (;;) {
            size_t want;
            if (n == max) {   /* at the limit: the file must end here */
                got = mhc__rf_read(f, &extra, 1);
                if (got < 0) goto ioerr;
                if (got > 0) {
                    MHC_FREE(data);
                    return mhc_fail(ctx, MHC_ERR_SIZE, "%s: '%s' has more than the limit of %zu bytes for this reader; not read", fn,
                                    path, max);
                }
                break;
            }
            if (cap - n < 2) {
                size_t ncap = cap ? cap * 2 : 4096;
                unsigned char *nd;
                if (ncap > max + 1 || ncap < cap) ncap = max + 1;
                nd = MHC__CAST(unsigned char *, MHC_REALLOC(data, ncap));
                if (!nd) {
                    MHC_FREE(data);
                    return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory reading '%s' (%zu bytes)", fn, path, ncap);
                }
                data = nd;
                cap = ncap;
            }
            want = cap - n - 1 < max - n ? cap - n - 1 : max - n;
            got = mhc__rf_read(f, data + n, want);
            if (got < 0) goto ioerr;
            n += (size_t)got;
            if ((size_t)got < want) break;
        }
        if (!data) {   /* max == 0 and an empty file */
            data = MHC__CAST(unsigned char *, MHC_MALLOC(1));
            if (!data) return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory reading '%s'", fn, path);
        }
    }
    data[n] = 0;
    *buf = data;
    *len = n;
    return MHC_OK;
ioerr:
    MHC_FREE(data);
    return mhc_fail(ctx, MHC_ERR_IO, "%s: read error on '%s' (after %zu bytes): %s", fn, path, n, strerror(errno));
}

MHCDEF mhc_result mhc_read_file_max(mhc_ctx *ctx, const char *path, size_t max_bytes, void **buf, size_t *len) {
    mhc__rfile f;
    unsigned long long size = 0;
    mhc_result r;
    if (buf) *buf = NULL;
    if (len) *len = 0;
    if (!path || !buf || !len)
        return mhc_fail(ctx, MHC_ERR_NULL, "mhc_read_file: %s is NULL", !path ? "path" : !buf ? "buf" : "len");
    if (max_bytes >= SIZE_MAX) max_bytes = SIZE_MAX - 1;
    if ((r = mhc__open_read(ctx, "mhc_read_file", path, &f, &size)) != MHC_OK) return r;
    r = mhc__read_all(ctx, "mhc_read_file", path, &f, size, max_bytes, buf, len);
    mhc__rf_close(&f);
    return r;
}

MHCDEF mhc_result mhc_read_file(mhc_ctx *ctx, const char *path, void **buf, size_t *len) {
    return mhc_read_file_max(ctx, path, (size_t)MHC_READ_MAX, buf, len);
}

/* The header lexer: a cursor in [p, end) plus what the messages need. */
typedef struct mhc__npy_lex {
    const char *start, *p, *end;   /* the header text */
    size_t base;                   /* offset of the header text in the file (for messages) */
    const char *name;
    mhc_ctx *ctx;
} mhc__npy_lex;

static mhc_result mhc__npy_bad(mhc__npy_lex *lx, const char *what) {
    return mhc_fail(lx->ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: malformed header at byte %zu: %s", lx->name,
                    lx->base + (size_t)(lx->p - lx->start), what);
}

static void mhc__npy_ws(mhc__npy_lex *lx) {
    while (lx->p < lx->end && (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\n' || *lx->p == '\r')) lx->p++;
}

/* Expect the character c (after optional white space). */
static int mhc__npy_accept(mhc__npy_lex *lx, char c) {
    mhc__npy_ws(lx);
    if (lx->p < lx->end && *lx->p == c) { lx->p++; return 1; }
    return 0;
}

/* A quoted string without escapes: *s points into the header, *n is its length. */
static mhc_result mhc__npy_string(mhc__npy_lex *lx, const char **s, size_t *n, const char *what) {
    char q;
    const char *b;
    mhc__npy_ws(lx);
    if (lx->p >= lx->end || (*lx->p != '\'' && *lx->p != '"')) return mhc__npy_bad(lx, what);
    q = *lx->p++;
    b = lx->p;
    while (lx->p < lx->end && *lx->p != q) {
        if (*lx->p == '\\' || *lx->p == '\n') return mhc__npy_bad(lx, "escape or line break inside a string");
        lx->p++;
    }
    if (lx->p >= lx->end) return mhc__npy_bad(lx, "unterminated string");
    *s = b;
    *n = (size_t)(lx->p - b);
    lx->p++;
    return MHC_OK;
}

/* Copy at most 16 characters of s into out, printable ASCII only (for messages). */
static const char *mhc__npy_show(char *out, const char *s, size_t n) {
    size_t i;
    if (n > 16) n = 16;
    for (i = 0; i < n; i++) out[i] = (s[i] >= 32 && s[i] < 127) ? s[i] : '?';
    out[n] = 0;
    return out;
}

static int mhc__npy_is(const char *s, size_t n, const char *lit) {
    return n == strlen(lit) && memcmp(s, lit, n) == 0;
}

/* 'shape': a tuple of non-negative Python ints (a trailing 'L' from Python 2 is accepted). */
static mhc_result mhc__npy_shape(mhc__npy_lex *lx, mhc_npy *out) {
    int count = 0, comma = 0;
    if (!mhc__npy_accept(lx, '(')) return mhc__npy_bad(lx, "'shape' is not a tuple");
    for (;;) {
        long v = 0;
        mhc__npy_ws(lx);
        if (lx->p < lx->end && *lx->p == ')') break;
        if (count > 0 && !comma) return mhc__npy_bad(lx, "expected ',' or ')' in 'shape'");
        if (lx->p < lx->end && *lx->p == '-')
            return mhc_fail(lx->ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: 'shape' has a negative dimension", lx->name);
        if (lx->p >= lx->end || *lx->p < '0' || *lx->p > '9')
            return mhc__npy_bad(lx, "expected a non-negative integer in 'shape'");
        if (*lx->p == '0' && lx->p + 1 < lx->end && lx->p[1] >= '0' && lx->p[1] <= '9')
            return mhc__npy_bad(lx, "integer with a leading zero in 'shape'");
        while (lx->p < lx->end && *lx->p >= '0' && *lx->p <= '9') {
            if (v > (2147483647L - (*lx->p - '0')) / 10)   /* v * 10 + digit would exceed INT_MAX */
                return mhc_fail(lx->ctx, MHC_ERR_OVERFLOW, "mhc_npy_parse: %s: dimension %d of 'shape' exceeds %d",
                                lx->name, count, 2147483647);
            v = v * 10 + (*lx->p - '0');
            lx->p++;
        }
        if (lx->p < lx->end && (*lx->p == 'L' || *lx->p == 'l')) lx->p++;
        if (count == MHC_MAX_DIMS)
            return mhc_fail(lx->ctx, MHC_ERR_SIZE, "mhc_npy_parse: %s: 'shape' has more than %d dimensions",
                            lx->name, MHC_MAX_DIMS);
        if (v == 0)
            return mhc_fail(lx->ctx, MHC_ERR_SIZE, "mhc_npy_parse: %s: dimension %d of 'shape' is 0 (empty arrays "
                            "are not supported)", lx->name, count);
        out->shape[count++] = (int)v;
        comma = mhc__npy_accept(lx, ',');
    }
    if (count == 1 && !comma) return mhc__npy_bad(lx, "'shape' (n) is not a tuple: write (n,)");
    lx->p++;   /* ')' */
    out->ndim = count;
    return MHC_OK;
}

/* The preamble and the header of the .npy file whose first len bytes are at buf: on success
   out->ndim, shape, size and src_bytes are set and *data_at is where the data begins (the data
   itself is not looked at). mhc_npy_parse empties *out when it fails. */
static mhc_result mhc__npy_head(mhc_ctx *ctx, const void *buf, size_t len, const char *name, mhc_npy *out,
                                size_t *data_at) {
    const unsigned char *b = MHC__CAST(const unsigned char *, buf);
    mhc__npy_lex lx;
    size_t prefix, hlen;
    int have_descr = 0, have_order = 0, have_shape = 0, d;
    char shown[17];
    mhc_result r;
    if (len < 10 || memcmp(b, MHC__NPY_MAGIC, 6) != 0)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: not a .npy file (%s)", name,
                        len < 10 ? "shorter than the 10-byte preamble" : "no \\x93NUMPY magic");
    if ((b[6] != 1 && b[6] != 2 && b[6] != 3) || b[7] != 0)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: format version %d.%d is not supported "
                        "(1.0, 2.0 or 3.0)", name, b[6], b[7]);
    if (b[6] == 1) {
        prefix = 10;
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
    } else {
        if (len < 12)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: truncated: %zu bytes, shorter than the "
                            "12-byte version %d.0 preamble", name, len, b[6]);
        prefix = 12;
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
    }
    if (hlen > len - prefix)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: truncated: the header needs %zu bytes, the file "
                        "has %zu after the preamble", name, hlen, len - prefix);

    lx.start = lx.p = MHC__CAST(const char *, buf) + prefix;
    lx.end = lx.start + hlen;
    lx.base = prefix;
    lx.name = name;
    lx.ctx = ctx;
    if (!mhc__npy_accept(&lx, '{')) return mhc__npy_bad(&lx, "the header is not a dict ('{' expected)");
    for (;;) {
        const char *key, *s;
        size_t kn, sn;
        if (mhc__npy_accept(&lx, '}')) break;
        if ((r = mhc__npy_string(&lx, &key, &kn, "expected a quoted key or '}'")) != MHC_OK) return r;
        if (!mhc__npy_accept(&lx, ':')) return mhc__npy_bad(&lx, "expected ':' after a key");
        mhc__npy_ws(&lx);
        if (mhc__npy_is(key, kn, "descr")) {
            if (have_descr++) return mhc__npy_bad(&lx, "duplicate key 'descr'");
            if ((r = mhc__npy_string(&lx, &s, &sn, "'descr' is not a string (structured dtypes are not supported)")) != MHC_OK)
                return r;
            if (mhc__npy_is(s, sn, "<f8")) out->src_bytes = 8;
            else if (mhc__npy_is(s, sn, "<f4")) out->src_bytes = 4;
            else if (sn > 0 && s[0] == '>')
                return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: dtype '%s' is big-endian; only '<f4' and "
                                "'<f8' are supported", name, mhc__npy_show(shown, s, sn));
            else
                return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: dtype '%s' is not supported; only '<f4' and "
                                "'<f8' are", name, mhc__npy_show(shown, s, sn));
        } else if (mhc__npy_is(key, kn, "fortran_order")) {
            if (have_order++) return mhc__npy_bad(&lx, "duplicate key 'fortran_order'");
            if (lx.end - lx.p >= 5 && memcmp(lx.p, "False", 5) == 0) lx.p += 5;
            else if (lx.end - lx.p >= 4 && memcmp(lx.p, "True", 4) == 0)
                return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: fortran_order is True; only C-order arrays "
                                "are supported", name);
            else return mhc__npy_bad(&lx, "'fortran_order' is not True or False");
        } else if (mhc__npy_is(key, kn, "shape")) {
            if (have_shape++) return mhc__npy_bad(&lx, "duplicate key 'shape'");
            if ((r = mhc__npy_shape(&lx, out)) != MHC_OK) return r;
        } else {
            return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: unknown header key '%s'", name,
                            mhc__npy_show(shown, key, kn));
        }
        if (mhc__npy_accept(&lx, '}')) break;
        if (!mhc__npy_accept(&lx, ',')) return mhc__npy_bad(&lx, "expected ',' or '}' after a value");
    }
    mhc__npy_ws(&lx);
    if (lx.p != lx.end) return mhc__npy_bad(&lx, "unexpected characters after the dict");
    if (!have_descr || !have_order || !have_shape)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: the header lacks the key '%s'", name,
                        !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");

    out->size = 1;
    for (d = 0; d < out->ndim; d++)
        if (!mhc__mul_ok(out->size, (size_t)out->shape[d], &out->size) || out->size > SIZE_MAX / sizeof(double))
            return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_npy_parse: %s: the number of elements overflows at "
                            "dimension %d", name, d);
    *data_at = prefix + hlen;
    return MHC_OK;
}

/* The data bytes must be exactly what the shape needs (have = the bytes after the header). */
static mhc_result mhc__npy_data_len(mhc_ctx *ctx, const char *name, const mhc_npy *out, unsigned long long have) {
    size_t need = out->size * (size_t)out->src_bytes;
    if (have != (unsigned long long)need)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: %s: the shape needs %zu data bytes, the file has "
                        "%llu", name, have < (unsigned long long)need ? "truncated data" : "trailing bytes after the data",
                        need, have);
    return MHC_OK;
}

/* count little-endian values of src_bytes (4 or 8) bytes at b into dst, as double. */
static void mhc__npy_convert(double *dst, const unsigned char *b, size_t count, int src_bytes) {
    size_t i;
    if (src_bytes == 8) {
        for (i = 0; i < count; i++, b += 8) {
            uint64_t u = 0;
            int k;
            for (k = 7; k >= 0; k--) u = u << 8 | b[k];
            memcpy(&dst[i], &u, 8);
        }
    } else {
        for (i = 0; i < count; i++, b += 4) {
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            float f;
            memcpy(&f, &u, 4);
            dst[i] = f;
        }
    }
}

/* The parser proper; mhc_npy_parse empties *out when it fails. */
static mhc_result mhc__npy_parse(mhc_ctx *ctx, const void *buf, size_t len, const char *name, mhc_npy *out) {
    size_t at = 0;
    mhc_result r = mhc__npy_head(ctx, buf, len, name, out, &at);
    if (r != MHC_OK) return r;
    if ((r = mhc__npy_data_len(ctx, name, out, (unsigned long long)(len - at))) != MHC_OK) return r;
    out->data = MHC__CAST(double *, MHC_MALLOC(out->size * sizeof(double)));
    if (!out->data)
        return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_npy_parse: %s: cannot allocate %zu values", name, out->size);
    mhc__npy_convert(out->data, MHC__CAST(const unsigned char *, buf) + at, out->size, out->src_bytes);
    return MHC_OK;
}

MHCDEF mhc_result mhc_npy_parse(mhc_ctx *ctx, const void *buf, size_t len, const char *name, mhc_npy *out) {
    mhc_result r;
    int d;
    if (!name) name = "<buffer>";
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_parse: %s: out is NULL", name);
    memset(out, 0, sizeof *out);
    for (d = 0; d < MHC_MAX_DIMS; d++) out->shape[d] = 1;
    if (!buf) r = mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_parse: %s: buf is NULL", name);
    else r = mhc__npy_parse(ctx, buf, len, name, out);
    if (r != MHC_OK) {
        MHC_FREE(out->data);   /* NULL: the data is allocated last */
        memset(out, 0, sizeof *out);
    }
    return r;
}

/* The largest .npy header read (numpy writes a few hundred bytes; it reads at most 10000 itself). */
#define MHC__NPY_HEADER_MAX ((size_t)1 << 20)

/* mhc_npy_read on an open regular file of size bytes (> 0): the preamble, then the header, then
   the data only once the file's size is what the header says. */
static mhc_result mhc__npy_read_open(mhc_ctx *ctx, const char *path, mhc__rfile *f, unsigned long long size,
                                     mhc_npy *out) {
    unsigned char pre[12], *head = NULL, chunk[1 << 14];
    size_t got, prefix, hlen, at = 0, done;
    long long rd;
    mhc_result r;
    rd = mhc__rf_read(f, pre, size < sizeof pre ? (size_t)size : sizeof pre);
    if (rd < 0) return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_read: read error on '%s': %s", path, strerror(errno));
    got = (size_t)rd;
    if (got < 10 || memcmp(pre, MHC__NPY_MAGIC, 6) != 0 || (pre[6] != 1 && pre[6] != 2 && pre[6] != 3) || pre[7] != 0 ||
        (pre[6] != 1 && got < 12))
        return mhc_npy_parse(ctx, pre, got, path, out);   /* its message for a bad preamble */
    prefix = pre[6] == 1 ? 10 : 12;
    hlen = pre[6] == 1 ? ((size_t)pre[8] | (size_t)pre[9] << 8)
                       : ((size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24);
    if ((unsigned long long)hlen > size - prefix)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: truncated: the header needs %zu bytes, the file has "
                        "%llu after the preamble", path, hlen, size - prefix);
    if (hlen > MHC__NPY_HEADER_MAX)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: the header has %zu bytes, more than the %zu a .npy "
                        "reader accepts", path, hlen, MHC__NPY_HEADER_MAX);
    head = MHC__CAST(unsigned char *, MHC_MALLOC(prefix + hlen));
    if (!head) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_npy_read: out of memory reading '%s'", path);
    memcpy(head, pre, got);
    rd = got < prefix + hlen ? mhc__rf_read(f, head + got, prefix + hlen - got) : 0;
    if (rd < 0 || got + (size_t)rd != prefix + hlen) {
        MHC_FREE(head);
        return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_read: read error on '%s': %s", path,
                        rd < 0 ? strerror(errno) : "the file shrank while being read");
    }
    memset(out, 0, sizeof *out);
    { int d; for (d = 0; d < MHC_MAX_DIMS; d++) out->shape[d] = 1; }
    r = mhc__npy_head(ctx, head, prefix + hlen, path, out, &at);
    MHC_FREE(head);
    if (r != MHC_OK) return r;
    if ((r = mhc__npy_data_len(ctx, path, out, size - at)) != MHC_OK) return r;
    out->data = MHC__CAST(double *, MHC_MALLOC(out->size * sizeof(double)));
    if (!out->data) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_npy_parse: %s: cannot allocate %zu values", path, out->size);
    for (done = 0; done < out->size;) {   /* the data, converted a chunk at a time */
        size_t k = out->size - done, bytes;
        if (k > sizeof chunk / (size_t)out->src_bytes) k = sizeof chunk / (size_t)out->src_bytes;
        bytes = k * (size_t)out->src_bytes;
        rd = mhc__rf_read(f, chunk, bytes);
        if (rd < 0 || (size_t)rd != bytes)
            return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_read: '%s' changed size or could not be read (at value %zu of %zu)",
                            path, done, out->size);
        mhc__npy_convert(out->data + done, chunk, k, out->src_bytes);
        done += k;
    }
    if (mhc__rf_read(f, chunk, 1) != 0)
        return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_read: '%s' grew while being read", path);
    return MHC_OK;
}

MHCDEF mhc_result mhc_npy_read(mhc_ctx *ctx, const char *path, mhc_npy *out) {
    void *buf;
    size_t len;
    mhc__rfile f;
    unsigned long long size = 0;
    mhc_result r;
    if (out) memset(out, 0, sizeof *out);
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_read: path is NULL");
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_read: %s: out is NULL", path);
    if ((r = mhc__open_read(ctx, "mhc_npy_read", path, &f, &size)) != MHC_OK) return r;
    if (size > 0) {
        r = mhc__npy_read_open(ctx, path, &f, size, out);
        mhc__rf_close(&f);
        if (r != MHC_OK) mhc_npy_free(out);
        return r;
    }
    /* size unknown (plain C99) or 0: read it whole, up to MHC_READ_MAX, and parse */
    r = mhc__read_all(ctx, "mhc_npy_read", path, &f, 0, (size_t)MHC_READ_MAX, &buf, &len);
    mhc__rf_close(&f);
    if (r != MHC_OK) return r;
    r = mhc_npy_parse(ctx, buf, len, path, out);
    MHC_FREE(buf);
    return r;
}

MHCDEF mhc_result mhc_npy_write(mhc_ctx *ctx, const char *path, int ndim, const int *shape, const double *data) {
    char head[256];
    unsigned char chunk[8 * 256];
    size_t size = 1, hl, pad, i, k;
    FILE *f;
    int d, ok, err = 0;
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_write: path is NULL");
    if (!data) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_write: %s: data is NULL", path);
    if (ndim < 0 || ndim > MHC_MAX_DIMS)
        return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_npy_write: %s: %d dimensions, expected 0 to %d", path, ndim, MHC_MAX_DIMS);
    if (ndim > 0 && !shape) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_write: %s: shape is NULL", path);
    for (d = 0; d < ndim; d++) {
        if (shape[d] < 1)
            return mhc_fail(ctx, MHC_ERR_SIZE, "mhc_npy_write: %s: dimension %d has size %d, expected >= 1", path, d,
                            shape[d]);
        if (!mhc__mul_ok(size, (size_t)shape[d], &size) || size > SIZE_MAX / 8)
            return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_npy_write: %s: the number of elements overflows at "
                            "dimension %d", path, d);
    }
    /* numpy's layout: dict, spare spaces for shape[0] to grow, spaces to 64-byte alignment, '\n' */
    hl = (size_t)sprintf(head, "{'descr': '<f8', 'fortran_order': False, 'shape': (");
    for (d = 0; d < ndim; d++) hl += (size_t)sprintf(head + hl, d ? ", %d" : "%d", shape[d]);
    hl += (size_t)sprintf(head + hl, "%s), }", ndim == 1 ? "," : "");
    if (ndim > 0) {
        char digits[16];
        for (k = (size_t)sprintf(digits, "%d", shape[0]); k < MHC__NPY_GROWTH_DIGITS; k++) head[hl++] = ' ';
    }
    for (pad = 64 - (10 + hl + 1) % 64; pad > 0; pad--) head[hl++] = ' ';
    head[hl++] = '\n';

#if MHC__POSIX_IO
    {   /* written in place (symlinks followed by fopen): only a regular file or a new name */
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
            return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_write: '%s' is %s, not a regular file; nothing was written", path,
                            mhc__type_name(st.st_mode));
    }
#endif
    f = fopen(path, "wb");
    if (!f) return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_write: cannot open '%s' for writing: %s", path, strerror(errno));
    memcpy(chunk, MHC__NPY_MAGIC "\x01\x00", 8);
    chunk[8] = (unsigned char)(hl & 0xff);
    chunk[9] = (unsigned char)(hl >> 8);
    ok = fwrite(chunk, 1, 10, f) == 10 && fwrite(head, 1, hl, f) == hl;
    for (i = 0; ok && i < size; i += k) {
        size_t m = size - i < 256 ? size - i : 256;
        for (k = 0; k < m; k++) {
            uint64_t u;
            int byte;
            memcpy(&u, &data[i + k], 8);
            for (byte = 0; byte < 8; byte++) chunk[8 * k + (size_t)byte] = (unsigned char)(u >> (8 * byte));
        }
        ok = fwrite(chunk, 8, m, f) == m;
    }
    if (!ok) err = errno;
    if (fclose(f) != 0 && ok) { ok = 0; err = errno; }
    if (!ok) {
        remove(path);
        return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_write: write error on '%s': %s", path, mhc__io_reason(err));
    }
    return MHC_OK;
}

/* -------------------------------------- CHECKPOINTS ----------------------------------------
 * Serialisation writes bytes explicitly (little-endian, no structs). The parser checks the whole
 * buffer first (mhc__ckpt_check: it touches no output and records in a mhc__ckpt_plan what is to
 * be copied), then copies (mhc__ckpt_commit, which cannot fail). The writer builds the whole file
 * in memory, then writes it to a temporary file and renames it.
 * ----------------------------------------------------------------------------------------- */

#define MHC__CKPT_HEADER 40u
#define MHC__CKPT_TRAINER 140u
#define MHC__CKPT_RNG 32u
#define MHC__CKPT_FLAG_TRAINER 1u
#define MHC__CKPT_FLAG_RNG 2u
#define MHC__CKPT_NAME_MAX 47u

static const unsigned char mhc__ckpt_magic[8] = { 'M', 'H', 'C', '_', 'C', 'K', 'P', 'T' };

/* FNV-1a, 64 bit: h = (h ^ byte) * 0x100000001b3, from 0xcbf29ce484222325. Any single changed
   byte changes the result (each step is a bijection of h). */
static uint64_t mhc__fnv1a64(const unsigned char *b, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    size_t i;
    for (i = 0; i < n; i++) { h ^= b[i]; h *= 0x100000001b3ull; }
    return h;
}

/* ---- writer: the caller has sized the buffer ---- */
typedef struct mhc__wr { unsigned char *b; size_t pos; } mhc__wr;
static void mhc__w_u32(mhc__wr *w, uint32_t x) {
    int i;
    for (i = 0; i < 4; i++) w->b[w->pos++] = (unsigned char)(x >> (8 * i));
}
static void mhc__w_u64(mhc__wr *w, uint64_t x) {
    int i;
    for (i = 0; i < 8; i++) w->b[w->pos++] = (unsigned char)(x >> (8 * i));
}
static void mhc__w_f64(mhc__wr *w, double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    mhc__w_u64(w, u);
}
static void mhc__w_i64(mhc__wr *w, long x) { mhc__w_u64(w, (uint64_t)(int64_t)x); }
static void mhc__w_reals(mhc__wr *w, const mhc_real *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
#ifdef MHC_DOUBLE
        mhc__w_f64(w, x[i]);
#else
        uint32_t u;
        memcpy(&u, &x[i], sizeof u);
        mhc__w_u32(w, u);
#endif
    }
}

/* ---- reader: every read is preceded by a bounds check (mhc__r_has) ---- */
typedef struct mhc__rd { const unsigned char *b; size_t len, pos; } mhc__rd;
static int mhc__r_has(const mhc__rd *r, size_t n) { return r->len - r->pos >= n; }
static uint32_t mhc__r_u32(mhc__rd *r) {
    uint32_t x = 0;
    int i;
    for (i = 0; i < 4; i++) x |= (uint32_t)r->b[r->pos++] << (8 * i);
    return x;
}
static uint64_t mhc__r_u64(mhc__rd *r) {
    uint64_t x = 0;
    int i;
    for (i = 0; i < 8; i++) x |= (uint64_t)r->b[r->pos++] << (8 * i);
    return x;
}
static double mhc__r_f64(mhc__rd *r) {
    uint64_t u = mhc__r_u64(r);
    double x;
    memcpy(&x, &u, sizeof x);
    return x;
}
static void mhc__r_reals(mhc__rd *r, mhc_real *x, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
#ifdef MHC_DOUBLE
        x[i] = mhc__r_f64(r);
#else
        uint32_t u = mhc__r_u32(r);
        memcpy(&x[i], &u, sizeof u);
#endif
    }
}

/* a + b into *acc; returns 0 on overflow. */
static int mhc__add_ok(size_t *acc, size_t b) {
    if (*acc > SIZE_MAX - b) return 0;
    *acc += b;
    return 1;
}

/* The stored reals must be a state training can continue from: finite data, m and v, and v >= 0
   (AdamW takes its square root). Checked on the bits (-ffast-math safe). kind: 0 ok, 1 NaN,
   2 +Inf, 3 -Inf, 4 negative (only where neg_bad). */
static int mhc__ckpt_real_kind(uint64_t u, uint32_t rsize, int neg_bad) {
    uint64_t expo = rsize == 8 ? (u >> 52) & 0x7FFu : (u >> 23) & 0xFFu;
    uint64_t emax = rsize == 8 ? 0x7FFu : 0xFFu;
    uint64_t frac = rsize == 8 ? u & 0xFFFFFFFFFFFFFull : u & 0x7FFFFFu;
    int neg = (int)((u >> (8 * rsize - 1)) & 1u);
    if (expo == emax) return frac ? 1 : neg ? 3 : 2;
    if (neg_bad && neg && (expo | frac)) return 4;   /* -0 is fine */
    return 0;
}
static const char *const mhc__ckpt_part_name[3] = { "parameters", "AdamW first moment m", "AdamW second moment v" };
static const char *const mhc__ckpt_kind_name[5] = { "finite", "NaN", "+Inf", "-Inf", "negative" };

/* The message for a bad real at flat index idx of part `part` (0 data, 1 m, 2 v). */
static mhc_result mhc__ckpt_bad_real(mhc_ctx *ctx, const char *fn, const char *name, uint64_t elem, int part,
                                     int kind, double value, int saving) {
    if (kind == 4)
        return mhc_fail(ctx, saving ? MHC_ERR_VALUE : MHC_ERR_FORMAT, "%s: tensor '%s' element %llu of its %s is %g; "
                        "it must be >= 0%s", fn, name, (unsigned long long)elem, mhc__ckpt_part_name[part], value,
                        saving ? " (not saved)" : "");
    return mhc_fail(ctx, MHC_ERR_NONFINITE, "%s: tensor '%s' element %llu of its %s is %s; a checkpoint holds finite "
                    "values only%s", fn, name, (unsigned long long)elem, mhc__ckpt_part_name[part],
                    mhc__ckpt_kind_name[kind], saving ? " (not saved)" : "");
}

/* Saving: every real of p (data, m, v) checked as the reader will check it. */
static mhc_result mhc__ckpt_check_store(mhc_ctx *ctx, const char *fn, const mhc_params *p) {
    int part, k;
    for (part = 0; part < 3; part++) {
        const mhc_real *x = part == 0 ? p->data : part == 1 ? p->m : p->v;
        for (k = 0; k < p->count; k++) {
            const mhc_real *t = x + p->offset[k];
            size_t i, n = p->tensors[k].size;
            for (i = 0; i < n; i++) {
                uint64_t u;
                int kind;
#ifdef MHC_DOUBLE
                memcpy(&u, &t[i], 8);
#else
                uint32_t u32;
                memcpy(&u32, &t[i], 4);
                u = u32;
#endif
                kind = mhc__ckpt_real_kind(u, (uint32_t)sizeof(mhc_real), part == 2);
                if (kind) return mhc__ckpt_bad_real(ctx, fn, p->names[k], (uint64_t)i, part, kind, (double)t[i], 1);
            }
        }
    }
    return MHC_OK;
}

/* Loading: the 3 x nreals stored reals at b (already bounds-checked), with the tensor table
   at b + table (count entries, already validated) to name the tensor of a bad value. */
static mhc_result mhc__ckpt_check_reals(mhc_ctx *ctx, const char *fn, const unsigned char *buf, size_t table,
                                        uint32_t count, const unsigned char *b, uint64_t nreals, uint32_t rsize) {
    uint64_t i, total = 3 * nreals;
    for (i = 0; i < total; i++) {
        const unsigned char *q = b + i * rsize;
        uint64_t u = 0, elem = i % nreals;
        uint32_t j, k;
        int kind, part = (int)(i / nreals);
        double value = 0;
        size_t pos = table;
        char name[MHC__CKPT_NAME_MAX + 1];
        for (j = 0; j < rsize; j++) u |= (uint64_t)q[j] << (8 * j);
        kind = mhc__ckpt_real_kind(u, rsize, part == 2);
        if (!kind) continue;
        if (kind == 4) {
            if (rsize == 8) { memcpy(&value, &u, 8); }
            else { uint32_t u32 = (uint32_t)u; float f; memcpy(&f, &u32, 4); value = (double)f; }
        }
        /* walk the (validated) table to the tensor that holds elem */
        name[0] = 0;
        for (k = 0; k < count; k++) {
            uint32_t nl = 0, ndim = 0, d;
            uint64_t size = 1;
            for (j = 0; j < 4; j++) nl |= (uint32_t)buf[pos + j] << (8 * j);
            memcpy(name, buf + pos + 4, nl);
            name[nl] = 0;
            pos += 4 + nl;
            for (j = 0; j < 4; j++) ndim |= (uint32_t)buf[pos + j] << (8 * j);
            pos += 4;
            for (d = 0; d < ndim; d++, pos += 4) {
                uint32_t s = 0;
                for (j = 0; j < 4; j++) s |= (uint32_t)buf[pos + j] << (8 * j);
                size *= s;
            }
            pos += 4;   /* decay */
            if (elem < size) break;
            elem -= size;
        }
        return mhc__ckpt_bad_real(ctx, fn, name, elem, part, kind, value, 0);
    }
    return MHC_OK;
}

MHCDEF mhc_result mhc_checkpoint_serialize(mhc_ctx *ctx, void *buf, size_t cap, size_t *len,
                                           const void *config, size_t config_bytes, const mhc_params *p,
                                           const mhc_trainer *tr, const mhc_rng *rng) {
    const char *fn = "mhc_checkpoint_serialize";
    size_t total = MHC__CKPT_HEADER, reals;
    uint32_t flags = 0;
    mhc__wr w;
    int i;
    mhc_result r;
    if (!len) return mhc_fail(ctx, MHC_ERR_NULL, "%s: len is NULL", fn);
    *len = 0;
    if (!p) return mhc_fail(ctx, MHC_ERR_NULL, "%s: params is NULL", fn);
    if (!p->data || !p->m || !p->v || p->count < 1)
        return mhc_fail(ctx, MHC_ERR_STATE, "%s: the parameter store is not allocated (call mhc_params_alloc)", fn);
    if (!config && config_bytes > 0)
        return mhc_fail(ctx, MHC_ERR_NULL, "%s: config is NULL but config_bytes is %zu", fn, config_bytes);
    if (tr) {
        if (!tr->ready) return mhc_fail(ctx, MHC_ERR_STATE, "%s: the trainer is not initialised", fn);
        r = mhc__adamw_validate(ctx, fn, &tr->cfg, MHC_ERR_VALUE);
        if (r != MHC_OK) return r;
        if (tr->step < 0 || tr->step > MHC_STEP_MAX)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the trainer's step is %ld; expected 0 to MHC_STEP_MAX (%ld)", fn,
                            tr->step, MHC_STEP_MAX);
        flags |= MHC__CKPT_FLAG_TRAINER;
    }
    if (rng) {
        if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the rng state is all zero (not seeded)", fn);
        flags |= MHC__CKPT_FLAG_RNG;
    }
    r = mhc__ckpt_check_store(ctx, fn, p);
    if (r != MHC_OK) return r;
    /* size, overflow-checked */
    if (!mhc__add_ok(&total, config_bytes) || !mhc__add_ok(&total, 4)) goto overflow;
    for (i = 0; i < p->count; i++) {
        size_t entry = 4 + strlen(p->names[i]) + 4 + 4 * (size_t)p->tensors[i].ndim + 4;
        if (!mhc__add_ok(&total, entry)) goto overflow;
    }
    if (!mhc__add_ok(&total, 8)) goto overflow;
    if (!mhc__mul_ok(p->size, 3 * sizeof(mhc_real), &reals) || !mhc__add_ok(&total, reals)) goto overflow;
    if (tr && !mhc__add_ok(&total, MHC__CKPT_TRAINER)) goto overflow;
    if (rng && !mhc__add_ok(&total, MHC__CKPT_RNG)) goto overflow;
    if (!mhc__add_ok(&total, 8)) goto overflow;
    *len = total;
    if (!buf) return MHC_OK;
    if (cap < total)
        return mhc_fail(ctx, MHC_ERR_SIZE, "%s: the buffer holds %zu bytes, the checkpoint needs %zu", fn, cap, total);
    w.b = MHC__CAST(unsigned char *, buf);
    w.pos = 0;
    memcpy(w.b, mhc__ckpt_magic, 8);
    w.pos = 8;
    mhc__w_u32(&w, MHC_CHECKPOINT_VERSION);
    mhc__w_u32(&w, (uint32_t)sizeof(mhc_real));
    mhc__w_u64(&w, (uint64_t)total);
    mhc__w_u32(&w, flags);
    mhc__w_u32(&w, 0);
    mhc__w_u64(&w, (uint64_t)config_bytes);
    if (config_bytes) memcpy(w.b + w.pos, config, config_bytes);
    w.pos += config_bytes;
    mhc__w_u32(&w, (uint32_t)p->count);
    for (i = 0; i < p->count; i++) {
        size_t nl = strlen(p->names[i]);
        int d;
        mhc__w_u32(&w, (uint32_t)nl);
        memcpy(w.b + w.pos, p->names[i], nl);
        w.pos += nl;
        mhc__w_u32(&w, (uint32_t)p->tensors[i].ndim);
        for (d = 0; d < p->tensors[i].ndim; d++) mhc__w_u32(&w, (uint32_t)p->tensors[i].shape[d]);
        mhc__w_u32(&w, p->decay[i] == MHC_PARAM_DECAY ? 1u : 0u);
    }
    mhc__w_u64(&w, (uint64_t)p->size);
    mhc__w_reals(&w, p->data, p->size);
    mhc__w_reals(&w, p->m, p->size);
    mhc__w_reals(&w, p->v, p->size);
    if (tr) {
        const mhc_adamw_config *c = &tr->cfg;
        mhc__w_i64(&w, tr->step);
        mhc__w_u32(&w, (uint32_t)c->schedule.kind);
        mhc__w_f64(&w, c->schedule.lr);
        mhc__w_i64(&w, c->schedule.warmup);
        mhc__w_i64(&w, c->schedule.total);
        mhc__w_f64(&w, c->schedule.min_lr_frac);
        mhc__w_f64(&w, c->schedule.decay_at[0]);
        mhc__w_f64(&w, c->schedule.decay_at[1]);
        mhc__w_f64(&w, c->schedule.decay_mult[0]);
        mhc__w_f64(&w, c->schedule.decay_mult[1]);
        mhc__w_f64(&w, c->beta1);
        mhc__w_f64(&w, c->beta2);
        mhc__w_f64(&w, c->eps);
        mhc__w_f64(&w, c->weight_decay);
        mhc__w_f64(&w, c->grad_clip);
        mhc__w_f64(&w, tr->last_grad_norm);
        mhc__w_f64(&w, tr->last_clip_scale);
        mhc__w_f64(&w, tr->last_lr);
    }
    if (rng) for (i = 0; i < 4; i++) mhc__w_u64(&w, rng->s[i]);
    mhc__w_u64(&w, mhc__fnv1a64(w.b, w.pos));
    MHC_ASSERT(w.pos == total);
    return MHC_OK;
overflow:
    return mhc_fail(ctx, MHC_ERR_OVERFLOW, "%s: the checkpoint size overflows (config %zu bytes, %zu reals)", fn,
                    config_bytes, p->size);
}

/* "[2,3]" from a u32 shape. */
static void mhc__shape_u32_str(char *buf, size_t cap, const uint32_t *shape, uint32_t ndim) {
    size_t len = 0;
    uint32_t d;
    buf[0] = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (d = 0; d < ndim && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, d ? ",%lu" : "%lu", (unsigned long)shape[d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* What mhc__ckpt_check found in a checkpoint that verifies, and mhc__ckpt_commit copies out. */
typedef struct mhc__ckpt_plan {
    size_t config_at, config_bytes;   /* the config blob: offset and size */
    int config_short;                 /* the check failed only because the blob exceeds config_cap */
    size_t reals_at;                  /* offset of the data, m and v arrays, nreals reals each */
    uint64_t nreals;
    int has_trainer, has_rng;
    mhc_trainer trainer;              /* decoded and validated (ctx and ready: set by the commit) */
    uint64_t rng[4];
} mhc__ckpt_plan;

/* The fixed header and the checksum: magic, version, real size, file length, checksum, flags and
   the reserved field. On success *r reads the structure (r->len stops where the checksum begins)
   and stands at the config size (offset 32). */
/* The first 24 bytes (magic, version, real size, file length) of a checkpoint of total length len,
   of which avail >= min(len, 24) bytes are at b (the loader checks them before reading the rest). */
static mhc_result mhc__ckpt_check_preamble(mhc_ctx *ctx, const char *fn, const unsigned char *b, size_t avail,
                                           unsigned long long len) {
    mhc__rd r;
    uint32_t version, rsize;
    uint64_t flen;
    r.b = b;
    r.len = avail;
    r.pos = 0;
    if (len >= 8 && memcmp(b, mhc__ckpt_magic, 8) != 0)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: not an mhc checkpoint (the magic bytes differ from \"MHC_CKPT\")", fn);
    if (len < MHC__CKPT_HEADER + 8)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %llu bytes, a checkpoint has at least %u", fn, len,
                        MHC__CKPT_HEADER + 8);
    r.pos = 8;
    version = mhc__r_u32(&r);
    if (version != MHC_CHECKPOINT_VERSION)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: format version %lu; this build reads version %d", fn,
                        (unsigned long)version, MHC_CHECKPOINT_VERSION);
    rsize = mhc__r_u32(&r);
    if (rsize != 4 && rsize != 8)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: real size %lu bytes; expected 4 (float32) or 8 (float64)", fn,
                        (unsigned long)rsize);
    if (rsize != sizeof(mhc_real))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the checkpoint stores %s reals but this build uses %s (%s)", fn,
                        rsize == 8 ? "float64" : "float32", MHC_REAL_NAME,
                        rsize == 8 ? "define MHC_DOUBLE to read it" : "read it in a build without MHC_DOUBLE");
    flen = mhc__r_u64(&r);
    if (flen != (uint64_t)len) {
        if (flen > (uint64_t)len)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %llu bytes, the header says %llu", fn, len,
                            (unsigned long long)flen);
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: %llu bytes but the header says %llu (trailing bytes or a corrupted "
                        "header)", fn, len, (unsigned long long)flen);
    }
    return MHC_OK;
}

static mhc_result mhc__ckpt_check_header(mhc_ctx *ctx, const char *fn, const unsigned char *b, size_t len,
                                         mhc__rd *r, uint32_t *rsize_out, uint32_t *flags_out) {
    uint32_t rsize, flags;
    uint64_t want, got;
    mhc_result res = mhc__ckpt_check_preamble(ctx, fn, b, len, (unsigned long long)len);
    if (res != MHC_OK) return res;
    rsize = (uint32_t)sizeof(mhc_real);
    r->b = b;
    r->len = len;
    r->pos = len - 8;
    want = mhc__r_u64(r);
    got = mhc__fnv1a64(b, len - 8);
    if (want != got) {
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: checksum mismatch (stored %016llx, computed %016llx): the "
                        "checkpoint is corrupted", fn, (unsigned long long)want, (unsigned long long)got);
#endif
    }
    r->len = len - 8;   /* the structure ends where the checksum begins */
    r->pos = 24;
    flags = mhc__r_u32(r);
    if (flags & ~(MHC__CKPT_FLAG_TRAINER | MHC__CKPT_FLAG_RNG))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: unknown flags 0x%lx", fn, (unsigned long)flags);
    if (mhc__r_u32(r) != 0) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the reserved header field is not 0", fn);
    *rsize_out = rsize;
    *flags_out = flags;
    return MHC_OK;
}

/* The tensor table, from the tensor count to the total number of reals N (r stands at the count):
   every entry well-formed, the sizes summed without overflow into N, and, when p is given, the same
   tensors as p in the same order. *table receives the offset of the first entry (to name the
   tensor of a bad real later), *count the number of entries, *nreals N. */
static mhc_result mhc__ckpt_check_table(mhc_ctx *ctx, const char *fn, mhc__rd *r, const mhc_params *p,
                                        uint32_t *count_out, size_t *table, uint64_t *nreals) {
    uint32_t count, k;
    uint64_t sum = 0;
    if (!mhc__r_has(r, 4)) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated before the tensor count", fn);
    count = mhc__r_u32(r);
    if (count < 1) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the tensor count is 0", fn);
    *table = r->pos;
    for (k = 0; k < count; k++) {
        char name[MHC__CKPT_NAME_MAX + 1];
        uint32_t nl, ndim, d, decay, shape[MHC_MAX_DIMS];
        uint64_t size = 1;
        if (!mhc__r_has(r, 4)) goto trunc_table;
        nl = mhc__r_u32(r);
        if (nl < 1 || nl > MHC__CKPT_NAME_MAX)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor %lu: name length %lu; expected 1 to %u", fn,
                            (unsigned long)k, (unsigned long)nl, MHC__CKPT_NAME_MAX);
        if (!mhc__r_has(r, nl)) goto trunc_table;
        memcpy(name, r->b + r->pos, nl);
        name[nl] = 0;
        r->pos += nl;
        if (strlen(name) != nl)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor %lu: the name contains a NUL byte", fn, (unsigned long)k);
        if (!mhc__r_has(r, 4)) goto trunc_table;
        ndim = mhc__r_u32(r);
        if (ndim < 1 || ndim > MHC_MAX_DIMS)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': %lu dimensions; expected 1 to %d", fn, name,
                            (unsigned long)ndim, MHC_MAX_DIMS);
        if (!mhc__r_has(r, 4 * (size_t)ndim + 4)) goto trunc_table;
        for (d = 0; d < ndim; d++) {
            shape[d] = mhc__r_u32(r);
            if (shape[d] < 1 || shape[d] > (uint32_t)INT_MAX)
                return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': dimension %lu has size %lu", fn, name,
                                (unsigned long)d, (unsigned long)shape[d]);
            if (size > UINT64_MAX / shape[d]) goto too_big;
            size *= shape[d];
        }
        decay = mhc__r_u32(r);
        if (decay > 1)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': decay flag %lu; expected 0 or 1", fn, name,
                            (unsigned long)decay);
        if (sum > UINT64_MAX - size) goto too_big;
        sum += size;
        if (p) {
            char fs[64], ss[64];
            const mhc_tensor *t;
            int same = 1;
            if (k >= (uint32_t)p->count)
                return mhc_fail(ctx, MHC_ERR_SHAPE, "%s: the file has tensor %lu '%s' that the parameter store lacks "
                                "(the store has %d tensors)", fn, (unsigned long)k, name, p->count);
            t = &p->tensors[k];
            if (strcmp(name, p->names[k]) != 0 || ndim != (uint32_t)t->ndim) same = 0;
            for (d = 0; same && d < ndim; d++)
                if (shape[d] != (uint32_t)t->shape[d]) same = 0;
            if (!same) {
                mhc__shape_u32_str(fs, sizeof fs, shape, ndim);
                mhc_shape_str(t, ss, sizeof ss);
                return mhc_fail(ctx, MHC_ERR_SHAPE, "%s: tensor %lu is '%s' %s in the file but '%s' %s in the parameter "
                                "store", fn, (unsigned long)k, name, fs, p->names[k], ss);
            }
            if (decay != (p->decay[k] == MHC_PARAM_DECAY ? 1u : 0u))
                return mhc_fail(ctx, MHC_ERR_SHAPE, "%s: tensor '%s' has decay flag %lu in the file but %d in the "
                                "parameter store", fn, name, (unsigned long)decay, p->decay[k] == MHC_PARAM_DECAY);
        }
    }
    if (p && count < (uint32_t)p->count)
        return mhc_fail(ctx, MHC_ERR_SHAPE, "%s: the parameter store has tensor %lu '%s' that the file lacks (the file "
                        "has %lu tensors)", fn, (unsigned long)count, p->names[count], (unsigned long)count);
    if (!mhc__r_has(r, 8)) goto trunc_table;
    *nreals = mhc__r_u64(r);
    if (*nreals != sum)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the file says %llu reals but its tensors hold %llu", fn,
                        (unsigned long long)*nreals, (unsigned long long)sum);
    *count_out = count;
    return MHC_OK;
trunc_table:
    return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the tensor table (tensor %lu of %lu)", fn,
                    (unsigned long)k, (unsigned long)count);
too_big:
    return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the tensor sizes overflow at tensor %lu", fn, (unsigned long)k);
}

/* The trainer state (r stands at its first byte), decoded into *t and validated as
   mhc_trainer_init validates a configuration. */
static mhc_result mhc__ckpt_read_trainer(mhc_ctx *ctx, const char *fn, mhc__rd *r, mhc_trainer *t) {
    mhc_adamw_config *c = &t->cfg;
    int64_t st, wu, tot;
    uint32_t kind;
    char pre[96];
    if (!mhc__r_has(r, MHC__CKPT_TRAINER))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the trainer state", fn);
    memset(t, 0, sizeof *t);
    st = (int64_t)mhc__r_u64(r);
    kind = mhc__r_u32(r);
    if (kind >= (uint32_t)MHC_LR_KIND_COUNT)   /* (before the cast to int) */
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the stored trainer configuration is invalid: schedule.kind is "
                        "%lu; expected 0, 1 or 2", fn, (unsigned long)kind);
    c->schedule.kind = (int)kind;
    c->schedule.lr = mhc__r_f64(r);
    wu = (int64_t)mhc__r_u64(r);
    tot = (int64_t)mhc__r_u64(r);
    c->schedule.min_lr_frac = mhc__r_f64(r);
    c->schedule.decay_at[0] = mhc__r_f64(r);
    c->schedule.decay_at[1] = mhc__r_f64(r);
    c->schedule.decay_mult[0] = mhc__r_f64(r);
    c->schedule.decay_mult[1] = mhc__r_f64(r);
    c->beta1 = mhc__r_f64(r);
    c->beta2 = mhc__r_f64(r);
    c->eps = mhc__r_f64(r);
    c->weight_decay = mhc__r_f64(r);
    c->grad_clip = mhc__r_f64(r);
    t->last_grad_norm = mhc__r_f64(r);
    t->last_clip_scale = mhc__r_f64(r);
    t->last_lr = mhc__r_f64(r);
    if (st < 0 || wu < 0 || tot < 0 || st > (int64_t)MHC_STEP_MAX || wu > (int64_t)MHC_STEP_MAX ||
        tot > (int64_t)MHC_STEP_MAX)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the stored trainer %s is %lld; a trainer continues from 0 to "
                        "MHC_STEP_MAX (%ld)", fn,
                        st < 0 || st > (int64_t)MHC_STEP_MAX ? "step" : wu < 0 || wu > (int64_t)MHC_STEP_MAX
                                                                        ? "schedule.warmup" : "schedule.total",
                        (long long)(st < 0 || st > (int64_t)MHC_STEP_MAX ? st
                                    : wu < 0 || wu > (int64_t)MHC_STEP_MAX ? wu : tot), MHC_STEP_MAX);
    t->step = (long)st;
    c->schedule.warmup = (long)wu;
    c->schedule.total = (long)tot;
    snprintf(pre, sizeof pre, "%s: the stored trainer configuration is invalid", fn);
    return mhc__adamw_validate(ctx, pre, c, MHC_ERR_FORMAT);
}

/* Verify a whole checkpoint against what the caller asks for (the config buffer and its capacity,
   the parameter store p, whether a trainer and an rng state are wanted), writing no output: what
   the commit needs goes into *plan. */
static mhc_result mhc__ckpt_check(mhc_ctx *ctx, const char *fn, const unsigned char *b, size_t len,
                                  const void *config, size_t config_cap, const mhc_params *p, int want_trainer,
                                  int want_rng, mhc__ckpt_plan *plan) {
    mhc__rd r;
    uint32_t rsize = 0, flags = 0, count = 0;
    uint64_t cbytes;
    size_t table = 0;
    mhc_result res;
    memset(plan, 0, sizeof *plan);
    res = mhc__ckpt_check_header(ctx, fn, b, len, &r, &rsize, &flags);
    if (res != MHC_OK) return res;
    cbytes = mhc__r_u64(&r);
    if (cbytes > (uint64_t)(r.len - r.pos))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the config blob claims %llu bytes but only %zu remain", fn,
                        (unsigned long long)cbytes, r.len - r.pos);
    if (config_cap > 0 && !config)
        return mhc_fail(ctx, MHC_ERR_NULL, "%s: config is NULL but config_cap is %zu", fn, config_cap);
    plan->config_at = r.pos;
    plan->config_bytes = (size_t)cbytes;
    if (config && cbytes > (uint64_t)config_cap) {
        plan->config_short = 1;
        return mhc_fail(ctx, MHC_ERR_SIZE, "%s: the config blob has %llu bytes but the buffer holds %zu", fn,
                        (unsigned long long)cbytes, config_cap);
    }
    r.pos += (size_t)cbytes;
    res = mhc__ckpt_check_table(ctx, fn, &r, p, &count, &table, &plan->nreals);
    if (res != MHC_OK) return res;
    if (plan->nreals > (uint64_t)((r.len - r.pos) / (3 * (size_t)rsize)))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %llu reals (x3 for data, m, v) do not fit in the %zu "
                        "remaining bytes", fn, (unsigned long long)plan->nreals, r.len - r.pos);
    res = mhc__ckpt_check_reals(ctx, fn, b, table, count, r.b + r.pos, plan->nreals, rsize);
    if (res != MHC_OK) return res;
    plan->reals_at = r.pos;
    r.pos += 3 * (size_t)plan->nreals * rsize;
    if (flags & MHC__CKPT_FLAG_TRAINER) {
        res = mhc__ckpt_read_trainer(ctx, fn, &r, &plan->trainer);
        if (res != MHC_OK) return res;
        plan->has_trainer = 1;
    } else if (want_trainer) {
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the checkpoint holds no trainer state (it was saved without one)", fn);
    }
    if (flags & MHC__CKPT_FLAG_RNG) {
        int i;
        if (!mhc__r_has(&r, MHC__CKPT_RNG)) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the rng state", fn);
        for (i = 0; i < 4; i++) plan->rng[i] = mhc__r_u64(&r);
        if ((plan->rng[0] | plan->rng[1] | plan->rng[2] | plan->rng[3]) == 0)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the stored rng state is all zero", fn);
        plan->has_rng = 1;
    } else if (want_rng) {
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the checkpoint holds no rng state (it was saved without one)", fn);
    }
    if (r.pos != r.len)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: %zu unexpected bytes before the checksum", fn, r.len - r.pos);
    return MHC_OK;
}

/* Copy a checkpoint that mhc__ckpt_check verified (with the same buffer and outputs) into the
   outputs. Cannot fail: every size and value was checked. */
static void mhc__ckpt_commit(mhc_ctx *ctx, const mhc__ckpt_plan *plan, const unsigned char *b, void *config,
                             size_t *config_bytes, mhc_params *p, mhc_trainer *tr, mhc_rng *rng) {
    int i;
    if (config && plan->config_bytes) memcpy(config, b + plan->config_at, plan->config_bytes);
    if (config_bytes) *config_bytes = plan->config_bytes;
    if (p) {
        mhc__rd r;
        MHC_ASSERT((uint64_t)p->size == plan->nreals);
        r.b = b;
        r.pos = plan->reals_at;
        r.len = plan->reals_at + 3 * p->size * sizeof(mhc_real);
        mhc__r_reals(&r, p->data, p->size);
        mhc__r_reals(&r, p->m, p->size);
        mhc__r_reals(&r, p->v, p->size);
    }
    if (tr && plan->has_trainer) {
        *tr = plan->trainer;
        tr->ctx = ctx;
        tr->ready = 1;
    }
    if (rng && plan->has_rng) for (i = 0; i < 4; i++) rng->s[i] = plan->rng[i];
}

/* Check, then commit: all or nothing. The one output a failure sets is *config_bytes when the
   config buffer is too small (the size it needs). */
static mhc_result mhc__ckpt_parse_all(mhc_ctx *ctx, const char *fn, const void *buf, size_t len, void *config,
                                      size_t config_cap, size_t *config_bytes, mhc_params *p, mhc_trainer *tr,
                                      mhc_rng *rng) {
    const unsigned char *b = MHC__CAST(const unsigned char *, buf);
    mhc__ckpt_plan plan;
    mhc_result r;
    if (!buf) return mhc_fail(ctx, MHC_ERR_NULL, "%s: buffer is NULL", fn);
    if (p && (!p->data || !p->m || !p->v))
        return mhc_fail(ctx, MHC_ERR_STATE, "%s: the parameter store is not allocated (call mhc_params_alloc)", fn);
    r = mhc__ckpt_check(ctx, fn, b, len, config, config_cap, p, tr != NULL, rng != NULL, &plan);
    if (r != MHC_OK) {
        if (plan.config_short && config_bytes) *config_bytes = plan.config_bytes;
        return r;
    }
    mhc__ckpt_commit(ctx, &plan, b, config, config_bytes, p, tr, rng);
    return MHC_OK;
}

MHCDEF mhc_result mhc_checkpoint_parse(mhc_ctx *ctx, const void *buf, size_t len, void *config, size_t config_cap,
                                       size_t *config_bytes, mhc_params *p, mhc_trainer *tr, mhc_rng *rng) {
    return mhc__ckpt_parse_all(ctx, "mhc_checkpoint_parse", buf, len, config, config_cap, config_bytes, p, tr, rng);
}

MHCDEF mhc_result mhc_checkpoint_load(mhc_ctx *ctx, const char *path, void *config, size_t config_cap,
                                      size_t *config_bytes, mhc_params *p, mhc_trainer *tr, mhc_rng *rng) {
    char fn[160];
    void *buf = NULL;
    size_t len = 0;
    mhc_result r;
    mhc__rfile f;
    unsigned long long size = 0;
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_checkpoint_load: path is NULL");
    snprintf(fn, sizeof fn, "mhc_checkpoint_load('%s')", path);
    if ((r = mhc__open_read(ctx, fn, path, &f, &size)) != MHC_OK) return r;
    if (size >= MHC__CKPT_HEADER + 8) {
        /* the header first: the file must be a checkpoint of exactly the length it gives (the
           whole file is read only then, in one allocation of that size) */
        unsigned char h[MHC__CKPT_HEADER];
        long long got = mhc__rf_read(&f, h, sizeof h);
        if (got != (long long)sizeof h) {
            mhc__rf_close(&f);
            return mhc_fail(ctx, MHC_ERR_IO, "%s: read error: %s", fn, got < 0 ? strerror(errno) : "the file shrank");
        }
        if ((r = mhc__ckpt_check_preamble(ctx, fn, h, sizeof h, size)) != MHC_OK) {   /* not a checkpoint of this size */
            mhc__rf_close(&f);
            return r;
        }
        if (size > (unsigned long long)(SIZE_MAX - 1)) {
            mhc__rf_close(&f);
            return mhc_fail(ctx, MHC_ERR_SIZE, "%s: %llu bytes do not fit in memory", fn, size);
        }
        buf = MHC_MALLOC((size_t)size + 1);
        if (!buf) {
            mhc__rf_close(&f);
            return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: cannot allocate %llu bytes to read it", fn, size);
        }
        memcpy(buf, h, sizeof h);
        got = mhc__rf_read(&f, (unsigned char *)buf + sizeof h, (size_t)size - sizeof h);
        if (got != (long long)((size_t)size - sizeof h) || mhc__rf_read(&f, h, 1) != 0) {
            MHC_FREE(buf);
            mhc__rf_close(&f);
            return mhc_fail(ctx, MHC_ERR_IO, "%s: changed size while being read, or a read error", fn);
        }
        len = (size_t)size;
    } else {
        /* small, or of unknown size (plain C99): read it whole (at most MHC_READ_MAX), then parse */
        r = mhc__read_all(ctx, fn, path, &f, size, (size_t)MHC_READ_MAX, &buf, &len);
        if (r != MHC_OK) { mhc__rf_close(&f); return r; }
    }
    mhc__rf_close(&f);
    r = mhc__ckpt_parse_all(ctx, fn, buf, len, config, config_cap, config_bytes, p, tr, rng);
    MHC_FREE(buf);
    return r;
}

/* ---- the atomic writer's file primitives ----
   One POSIX and one plain C99 implementation. Each returns NULL on success, else the reason for
   the failure (strerror of errno, or a fixed text), for the writer's message. */

/* ---- the save target ----
   What a save replaces: path with symbolic links followed to their target (the link stays a link
   and its target receives the checkpoint), which must be a regular file (one hard link, writable)
   or a new name in an existing directory. */
typedef struct mhc__target {
    char *final;          /* the name written (path, symlinks followed); MHC_MALLOC'd */
    size_t dirlen;        /* final[0, dirlen) is its directory, '/' included ("" = the current one) */
    int exists, linked;   /* final exists; path was a symbolic link */
#if MHC__POSIX_IO
    struct stat st;       /* final's status when it exists */
#endif
} mhc__target;

static void mhc__target_free(mhc__target *t) { MHC_FREE(t->final); t->final = NULL; }

static size_t mhc__dirlen(const char *p) {
    const char *slash = strrchr(p, '/');
    return slash ? (size_t)(slash - p) + 1 : 0;
}

static char *mhc__strndup(const char *s, size_t n) {
    char *d = MHC__CAST(char *, MHC_MALLOC(n + 1));
    if (d) { memcpy(d, s, n); d[n] = 0; }
    return d;
}

/* Resolve path into *t and check what it names. fn names the caller in messages. */
static mhc_result mhc__target_resolve(mhc_ctx *ctx, const char *fn, const char *path, mhc__target *t) {
    memset(t, 0, sizeof *t);
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "%s: path is NULL", fn);
    if (!path[0]) return mhc_fail(ctx, MHC_ERR_VALUE, "%s: path is empty", fn);
    t->final = mhc__strndup(path, strlen(path));
    if (!t->final) return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory", fn);
#if MHC__POSIX_IO
    {
        int hops;
        for (hops = 0;; hops++) {
            char *link = NULL, *next;
            size_t cap = 256;
            ssize_t n;
            if (lstat(t->final, &t->st) != 0) {
                int e = errno;
                if (e == ENOENT) break;   /* a new name (or a dangling link's target) */
                mhc__target_free(t);
                return mhc_fail(ctx, MHC_ERR_IO, "%s: cannot examine '%s': %s", fn, path, strerror(e));
            }
            if (!S_ISLNK(t->st.st_mode)) { t->exists = 1; break; }
            if (hops == 32) {
                mhc__target_free(t);
                return mhc_fail(ctx, MHC_ERR_IO, "%s: '%s': more than 32 symbolic links to follow", fn, path);
            }
            t->linked = 1;
            for (;;) {   /* the link's text, growing the buffer until it fits */
                char *nb = MHC__CAST(char *, MHC_REALLOC(link, cap));
                if (!nb) { MHC_FREE(link); mhc__target_free(t); return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory", fn); }
                link = nb;
                n = readlink(t->final, link, cap);
                if (n < 0) {
                    int e = errno;
                    MHC_FREE(link);
                    mhc__target_free(t);
                    return mhc_fail(ctx, MHC_ERR_IO, "%s: cannot read the symbolic link '%s': %s", fn, path, strerror(e));
                }
                if ((size_t)n < cap) break;
                cap *= 2;
            }
            if (n == 0) { MHC_FREE(link); mhc__target_free(t); return mhc_fail(ctx, MHC_ERR_IO, "%s: '%s' is an empty symbolic link", fn, path); }
            if (link[0] == '/') {
                next = mhc__strndup(link, (size_t)n);
            } else {   /* relative to the link's own directory */
                size_t dl = mhc__dirlen(t->final);
                next = MHC__CAST(char *, MHC_MALLOC(dl + (size_t)n + 1));
                if (next) { memcpy(next, t->final, dl); memcpy(next + dl, link, (size_t)n); next[dl + (size_t)n] = 0; }
            }
            MHC_FREE(link);
            if (!next) { mhc__target_free(t); return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory", fn); }
            MHC_FREE(t->final);
            t->final = next;
        }
    }
#else
    {
        FILE *e = fopen(path, "rb");
        if (e) { fclose(e); t->exists = 1; }
    }
#endif
    t->dirlen = mhc__dirlen(t->final);
    if (!t->final[t->dirlen]) {
        mhc_fail(ctx, MHC_ERR_VALUE, "%s: '%s' ends with '/': it names a directory, not a file", fn, path);
        mhc__target_free(t);
        return MHC_ERR_VALUE;
    }
#if MHC__POSIX_IO
    {
        char shown[96];
        if (t->linked) snprintf(shown, sizeof shown, " (the target of the symbolic link)");
        else shown[0] = 0;
        if (t->exists && !S_ISREG(t->st.st_mode)) {
            mhc_fail(ctx, MHC_ERR_IO, "%s: '%s'%s is %s, not a regular file: a checkpoint replaces a regular file or "
                     "creates a new one; nothing was written", fn, t->final, shown, mhc__type_name(t->st.st_mode));
            mhc__target_free(t);
            return MHC_ERR_IO;
        }
        if (t->exists && t->st.st_nlink > 1) {
            mhc_fail(ctx, MHC_ERR_IO, "%s: '%s'%s has %lu hard links: a save replaces this name only, and the other "
                     "names would keep the old checkpoint; save to a file with one link", fn, t->final, shown,
                     (unsigned long)t->st.st_nlink);
            mhc__target_free(t);
            return MHC_ERR_IO;
        }
        if (t->exists && access(t->final, W_OK) != 0) {
            int e = errno;
            mhc_fail(ctx, MHC_ERR_IO, "%s: '%s'%s is not writable (%s, mode %04o); it is not replaced", fn, t->final,
                     shown, strerror(e), (unsigned)(t->st.st_mode & 07777));
            mhc__target_free(t);
            return MHC_ERR_IO;
        }
        if (!t->exists) {   /* a new name: its directory must exist */
            struct stat ds;
            char *dir = t->dirlen ? mhc__strndup(t->final, t->dirlen > 1 ? t->dirlen - 1 : 1) : mhc__strndup(".", 1);
            int rc, e;
            if (!dir) { mhc__target_free(t); return mhc_fail(ctx, MHC_ERR_NOMEM, "%s: out of memory", fn); }
            rc = stat(dir, &ds);
            e = errno;
            if (rc != 0 || !S_ISDIR(ds.st_mode)) {
                mhc_fail(ctx, MHC_ERR_IO, "%s: cannot save '%s'%s: its directory '%s' %s; nothing was written", fn,
                         t->final, shown, dir, rc != 0 ? (e == ENOENT ? "does not exist" : strerror(e))
                                                       : "is not a directory");
                MHC_FREE(dir);
                mhc__target_free(t);
                return MHC_ERR_IO;
            }
            MHC_FREE(dir);
        }
    }
#endif
    return MHC_OK;
}

/* The temporary name for attempt k of saving to t: in t's directory, t's name with
   ".tmp.<pid>.<k>", the name shortened so that it fits the directory's NAME_MAX and the whole
   path its PATH_MAX (pathconf; 255 and 4096 when unknown). 0 when even an empty prefix cannot fit. */
static int mhc__tmp_name(char *tmp, size_t cap, const mhc__target *t, unsigned long pid, int k, long name_max,
                         long path_max) {
    char suffix[48];
    size_t sl = (size_t)snprintf(suffix, sizeof suffix, ".tmp.%lu.%d", pid, k), base = strlen(t->final + t->dirlen), keep = base;
    if (name_max > 0 && (size_t)name_max < sl + 1) return 0;
    if (name_max > 0 && keep + sl > (size_t)name_max) keep = (size_t)name_max - sl;
    if (path_max > 0 && t->dirlen + keep + sl + 1 > (size_t)path_max) {
        if (t->dirlen + sl + 2 > (size_t)path_max) return 0;
        keep = (size_t)path_max - 1 - t->dirlen - sl;
    }
    if (keep == 0) keep = 1;
    if (t->dirlen + keep + sl + 1 > cap) return 0;
    memcpy(tmp, t->final, t->dirlen + keep);
    memcpy(tmp + t->dirlen + keep, suffix, sl + 1);
    return 1;
}

#if MHC__POSIX_IO
typedef struct mhc__wfile { int fd; } mhc__wfile;   /* fd -1: not open */
static unsigned long mhc__fs_pid(void) { return (unsigned long)getpid(); }
/* The name and path limits of the target's directory. */
static void mhc__fs_limits(const mhc__target *t, long *name_max, long *path_max) {
    char *dir = t->dirlen ? mhc__strndup(t->final, t->dirlen) : NULL;
    *name_max = pathconf(dir ? dir : ".", _PC_NAME_MAX);
    *path_max = pathconf(dir ? dir : ".", _PC_PATH_MAX);
    if (*name_max <= 0) *name_max = 255;
    if (*path_max <= 0) *path_max = 4096;
    MHC_FREE(dir);
}
/* Create name for writing; fails if it exists (then *taken = 1: the caller may try another name). */
static const char *mhc__wf_create(mhc__wfile *f, const char *name, int *taken) {
    int err;
    f->fd = open(name, O_WRONLY | O_CREAT | O_EXCL, 0666);
    if (f->fd >= 0) return NULL;
    err = errno;
    *taken = err == EEXIST;
    return mhc__io_reason(err);
}
/* Give the new file the owner (best effort: only root may give a file away) and the mode of the
   file it replaces. */
static const char *mhc__wf_like(mhc__wfile *f, const mhc__target *t) {
    if (!t->exists) return NULL;
    if (fchown(f->fd, t->st.st_uid, t->st.st_gid) != 0) { /* not permitted: keep ours */ }
    return fchmod(f->fd, t->st.st_mode & 07777) == 0 ? NULL : mhc__io_reason(errno);
}
static int mhc__wf_is_open(const mhc__wfile *f) { return f->fd >= 0; }
/* Write p[0..n), in pieces of at most 1 GiB, retrying on EINTR; *done grows by what is written. */
static const char *mhc__wf_write(mhc__wfile *f, const unsigned char *p, size_t n, size_t *done) {
    size_t off = 0;
    while (off < n) {
        size_t chunk = n - off;
        ssize_t wr;
        if (chunk > ((size_t)1 << 30)) chunk = (size_t)1 << 30;
        wr = write(f->fd, p + off, chunk);
        if (wr < 0) {
            if (errno == EINTR) continue;
            return mhc__io_reason(errno);
        }
        if (wr == 0) return "write() wrote nothing";
        off += (size_t)wr;
        *done += (size_t)wr;
    }
    return NULL;
}
static const char *mhc__wf_sync(mhc__wfile *f) { return fsync(f->fd) == 0 ? NULL : mhc__io_reason(errno); }
/* Close f; it is closed afterwards even when close reports an error. */
static const char *mhc__wf_close(mhc__wfile *f) {
    int rc = close(f->fd);
    f->fd = -1;
    return rc == 0 ? NULL : mhc__io_reason(errno);
}
/* Rename from to to, replacing to (atomically: POSIX rename). */
static const char *mhc__fs_rename(const char *from, const char *to) {
    return rename(from, to) == 0 ? NULL : mhc__io_reason(errno);
}
/* Make a rename in path's directory durable: fsync the directory (best effort). buf holds at
   least strlen(path) + 2 chars. */
static void mhc__fs_sync_dir(const char *path, char *buf) {
    const char *slash = strrchr(path, '/');
    int dfd;
    if (slash) {
        size_t dl = (size_t)(slash - path);
        memcpy(buf, path, dl ? dl : 1);
        buf[dl ? dl : 1] = 0;
    } else {
        strcpy(buf, ".");
    }
    dfd = open(buf, O_RDONLY);
    if (dfd >= 0) { (void)fsync(dfd); (void)close(dfd); }
}
#else
typedef struct mhc__wfile { FILE *f; } mhc__wfile;  /* f NULL: not open */
static unsigned long mhc__fs_pid(void) { return 0; }
static void mhc__fs_limits(const mhc__target *t, long *name_max, long *path_max) {
    (void)t;
    *name_max = 255;
    *path_max = FILENAME_MAX;
}
/* C99 has no exclusive create: a name that can be opened for reading counts as taken. */
static const char *mhc__wf_create(mhc__wfile *f, const char *name, int *taken) {
    FILE *e = fopen(name, "rb");
    if (e) {
        fclose(e);
        f->f = NULL;
        *taken = 1;
        return "a file of that name exists";
    }
    f->f = fopen(name, "wb");
    return f->f ? NULL : mhc__io_reason(errno);
}
/* C99 has no file modes */
static const char *mhc__wf_like(mhc__wfile *f, const mhc__target *t) { (void)f; (void)t; return NULL; }
static int mhc__wf_is_open(const mhc__wfile *f) { return f->f != NULL; }
static const char *mhc__wf_write(mhc__wfile *f, const unsigned char *p, size_t n, size_t *done) {
    size_t off = 0;
    while (off < n) {
        size_t chunk = n - off, wr;
        if (chunk > ((size_t)1 << 30)) chunk = (size_t)1 << 30;
        wr = fwrite(p + off, 1, chunk, f->f);
        off += wr;
        *done += wr;
        if (wr != chunk) return mhc__io_reason(errno);
    }
    return NULL;
}
/* fflush: C99 has no way to reach the disk itself */
static const char *mhc__wf_sync(mhc__wfile *f) { return fflush(f->f) == 0 ? NULL : mhc__io_reason(errno); }
static const char *mhc__wf_close(mhc__wfile *f) {
    int rc = fclose(f->f);
    f->f = NULL;
    return rc == 0 ? NULL : mhc__io_reason(errno);
}
/* Platforms whose rename does not replace (Windows) get remove + rename: not atomic there. */
static const char *mhc__fs_rename(const char *from, const char *to) {
    int err;
    if (rename(from, to) == 0) return NULL;
    err = errno;
    if (remove(to) == 0 && rename(from, to) == 0) return NULL;
    return mhc__io_reason(err);
}
static void mhc__fs_sync_dir(const char *path, char *buf) { (void)path; (void)buf; }
#endif
static void mhc__fs_remove(const char *name) { (void)remove(name); }

/* The writer calls the four primitives a test can make fail (create, write, sync, rename) as
   mhc__io_*. In the tests' builds (MHC_TEST_HOOKS) those are wrappers that apply the faults of
   mhc__ckpt_fault_hook (and record the temporary name); everywhere else they are the primitives
   themselves (no mutable global state). */
#ifdef MHC_TEST_HOOKS
typedef struct mhc__ckpt_faults {
    size_t write_limit;   /* the write fails once this many bytes are written (SIZE_MAX: never) */
    int fail_sync;        /* the sync step fails */
    int fail_rename;      /* the final rename fails */
    /* once exactly pause_at bytes are in the temporary file (pause_at <= the file's length; the
       file's length: all written, before the sync), on_pause(pause_user) is called once, e.g. to
       stop the process there and have a test kill it (a crash mid-write) */
    size_t pause_at;
    void (*on_pause)(void *pause_user);
    void *pause_user;
    int paused;           /* set once on_pause was called */
    char tmp_path[512];   /* out: the temporary file's name */
} mhc__ckpt_faults;
static mhc__ckpt_faults *mhc__ckpt_fault_hook = NULL;   /* NULL: no faults */

static const char *mhc__io_create(mhc__wfile *f, const char *name, int *taken) {
    mhc__ckpt_faults *h = mhc__ckpt_fault_hook;
    if (h) snprintf(h->tmp_path, sizeof h->tmp_path, "%s", name);
    return mhc__wf_create(f, name, taken);
}
/* p[0..n), failing as a full disk would once h->write_limit bytes are in the file */
static const char *mhc__io_write_limited(mhc__ckpt_faults *h, mhc__wfile *f, const unsigned char *p, size_t n,
                                         size_t *done) {
    size_t room = h->write_limit > *done ? h->write_limit - *done : 0;
    const char *why;
    if (room >= n) return mhc__wf_write(f, p, n, done);
    why = mhc__wf_write(f, p, room, done);
    return why ? why : "simulated write failure (test hook)";
}
static const char *mhc__io_write(mhc__wfile *f, const unsigned char *p, size_t n, size_t *done) {
    mhc__ckpt_faults *h = mhc__ckpt_fault_hook;
    if (!h) return mhc__wf_write(f, p, n, done);
    if (h->on_pause && !h->paused && h->pause_at >= *done && h->pause_at - *done <= n) {
        size_t first = h->pause_at - *done;
        const char *why = mhc__io_write_limited(h, f, p, first, done);
        if (why) return why;
        h->paused = 1;
        h->on_pause(h->pause_user);
        p += first;
        n -= first;
    }
    return mhc__io_write_limited(h, f, p, n, done);
}
static const char *mhc__io_sync(mhc__wfile *f) {
    if (mhc__ckpt_fault_hook && mhc__ckpt_fault_hook->fail_sync) return "simulated sync failure (test hook)";
    return mhc__wf_sync(f);
}
static const char *mhc__io_rename(const char *from, const char *to) {
    if (mhc__ckpt_fault_hook && mhc__ckpt_fault_hook->fail_rename) return "simulated rename failure (test hook)";
    return mhc__fs_rename(from, to);
}
#else
#define mhc__io_create mhc__wf_create
#define mhc__io_write  mhc__wf_write
#define mhc__io_sync   mhc__wf_sync
#define mhc__io_rename mhc__fs_rename
#endif

/* Create the temporary file for t (mhc__tmp_name; a taken name moves on to the next of MHC_CHECKPOINT_TMP_TRIES) with
   t's owner and mode; *tmp receives its name (MHC_MALLOC'd, also on failure when one was made,
   for the message). NULL, or the reason with *stage_create set when nothing was created. */
static const char *mhc__tmp_create(const mhc__target *t, mhc__wfile *f, char **tmp, int *created) {
    size_t tcap = strlen(t->final) + 64;
    long name_max, path_max;
    const char *why = "no temporary name fits the directory's name and path limits";
    int attempt, taken = 1;
    *created = 0;
    *tmp = MHC__CAST(char *, MHC_MALLOC(tcap));
    if (!*tmp) return "out of memory";
    (*tmp)[0] = 0;
    mhc__fs_limits(t, &name_max, &path_max);
    for (attempt = 0; attempt < MHC_CHECKPOINT_TMP_TRIES && taken; attempt++) {
        if (!mhc__tmp_name(*tmp, tcap, t, mhc__fs_pid(), attempt, name_max, path_max)) break;
        taken = 0;
        why = mhc__io_create(f, *tmp, &taken);
    }
    if (why) return why;
    *created = 1;
    return mhc__wf_like(f, t);
}

/* Write buf to a temporary file in the target's directory (symlinks followed: the checkpoint goes
   to the link's target; an existing file's owner and mode are kept), sync, close, rename over the
   target, sync the directory. On any failure the temporary is removed and the target untouched. */
enum { MHC__AW_CREATE, MHC__AW_WRITE, MHC__AW_SYNC, MHC__AW_CLOSE, MHC__AW_RENAME };   /* its stages */
static mhc_result mhc__write_atomic(mhc_ctx *ctx, const char *path, const unsigned char *buf, size_t len) {
    static const char *const stage_name[5] = { "create", "write", "sync", "close", "rename" };
    const char *fn = "mhc_checkpoint_save";
    size_t done = 0;
    char *tmp = NULL, shown[32];
    const char *why = NULL;
    mhc__wfile f;
    mhc__target t;
    int created = 0, stage = MHC__AW_CREATE;
    mhc_result res;
    if ((res = mhc__target_resolve(ctx, fn, path, &t)) != MHC_OK) return res;
    snprintf(shown, sizeof shown, "%s", t.linked ? " (the symbolic link's target)" : "");
    if ((why = mhc__tmp_create(&t, &f, &tmp, &created)) != NULL) goto fail;
    stage = MHC__AW_WRITE;
    if ((why = mhc__io_write(&f, buf, len, &done)) != NULL) goto fail;
    stage = MHC__AW_SYNC;
    if ((why = mhc__io_sync(&f)) != NULL) goto fail;
    stage = MHC__AW_CLOSE;
    if ((why = mhc__wf_close(&f)) != NULL) goto fail;
    stage = MHC__AW_RENAME;
    if ((why = mhc__io_rename(tmp, t.final)) != NULL) goto fail;
    mhc__fs_sync_dir(t.final, tmp);
    MHC_FREE(tmp);
    mhc__target_free(&t);
    return MHC_OK;
fail:
    if (created && mhc__wf_is_open(&f)) (void)mhc__wf_close(&f);
    if (created) mhc__fs_remove(tmp);
    if (stage == MHC__AW_CREATE)
        res = mhc_fail(ctx, MHC_ERR_IO, "%s: cannot create the temporary file '%s': %s; '%s'%s is unchanged", fn,
                       tmp && tmp[0] ? tmp : "(none)", why, t.final, shown);
    else if (stage == MHC__AW_RENAME)
        res = mhc_fail(ctx, MHC_ERR_IO, "%s: cannot rename '%s' to '%s': %s; '%s' is unchanged", fn, tmp, t.final,
                       why, t.final);
    else
        res = mhc_fail(ctx, MHC_ERR_IO, "%s: cannot %s the temporary file '%s' (%zu of %zu bytes written): %s; '%s' "
                       "is unchanged", fn, stage_name[stage], tmp, done, len, why, t.final);
    MHC_FREE(tmp);
    mhc__target_free(&t);
    return res;
}

MHCDEF size_t mhc_checkpoint_tmp_name(char *buf, size_t cap, const char *path, int attempt) {
    mhc__target t;
    char *tmp;
    size_t tcap, len = 0;
    long name_max, path_max;
    if (!path || !path[0] || attempt < 0 || attempt >= MHC_CHECKPOINT_TMP_TRIES) return 0;
    if (mhc__target_resolve(NULL, "mhc_checkpoint_tmp_name", path, &t) != MHC_OK) return 0;   /* as the save resolves it */
    tcap = strlen(t.final) + 64;
    tmp = MHC__CAST(char *, MHC_MALLOC(tcap));   /* the writer's own buffer size */
    if (tmp) {
        mhc__fs_limits(&t, &name_max, &path_max);
        if (mhc__tmp_name(tmp, tcap, &t, mhc__fs_pid(), attempt, name_max, path_max)) {
            len = strlen(tmp);
            if (buf && cap > 0) {
                size_t k = len < cap ? len : cap - 1;
                memcpy(buf, tmp, k);
                buf[k] = 0;
            }
        }
        MHC_FREE(tmp);
    }
    mhc__target_free(&t);
    return len;
}

MHCDEF mhc_result mhc_checkpoint_check_target(mhc_ctx *ctx, const char *path) {
    const char *fn = "mhc_checkpoint_check_target", *why;
    char *tmp = NULL;
    mhc__wfile f;
    mhc__target t;
    int created = 0;
    mhc_result r = mhc__target_resolve(ctx, fn, path, &t);
    if (r != MHC_OK) return r;
    why = mhc__tmp_create(&t, &f, &tmp, &created);   /* the save's own first step, undone */
    if (created && mhc__wf_is_open(&f)) (void)mhc__wf_close(&f);
    if (created) mhc__fs_remove(tmp);
    if (why)
        r = mhc_fail(ctx, MHC_ERR_IO, "%s: cannot save to '%s': creating a file in its directory fails (%s: %s)", fn,
                     t.final, tmp && tmp[0] ? tmp : "no temporary name", why);
    MHC_FREE(tmp);
    mhc__target_free(&t);
    return r;
}

MHCDEF mhc_result mhc_checkpoint_save(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                      const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    size_t len = 0;
    unsigned char *buf;
    mhc_result r;
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_checkpoint_save: path is NULL");
    if (!path[0]) return mhc_fail(ctx, MHC_ERR_VALUE, "mhc_checkpoint_save: path is empty");
    r = mhc_checkpoint_serialize(ctx, NULL, 0, &len, config, config_bytes, p, tr, rng);
    if (r != MHC_OK) return r;
    buf = MHC__CAST(unsigned char *, MHC_MALLOC(len));
    if (!buf) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_checkpoint_save: cannot allocate %zu bytes", len);
    r = mhc_checkpoint_serialize(ctx, buf, len, &len, config, config_bytes, p, tr, rng);
    if (r == MHC_OK) r = mhc__write_atomic(ctx, path, buf, len);
    MHC_FREE(buf);
    return r;
}

#ifdef __cplusplus
}
#endif
#endif /* MHC_IMPLEMENTATION_INCLUDED */
#endif /* MHC_IMPLEMENTATION */

/*
------------------------------------------------------------------------------
This software is available under 2 licenses -- choose whichever you prefer.
------------------------------------------------------------------------------
ALTERNATIVE A - MIT License
Copyright (c) 2026 the mhc.h authors
Permission is hereby granted, free of charge, to any person obtaining a copy of
this software and associated documentation files (the "Software"), to deal in
the Software without restriction, including without limitation the rights to
use, copy, modify, merge, publish, distribute, sublicense, and/or sell copies
of the Software, and to permit persons to whom the Software is furnished to do
so, subject to the following conditions:
The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
ALTERNATIVE B - Public Domain (www.unlicense.org)
This is free and unencumbered software released into the public domain.
Anyone is free to copy, modify, publish, use, compile, sell, or distribute this
software, either in source code form or as a compiled binary, for any purpose,
commercial or non-commercial, and by any means.
In jurisdictions that recognize copyright laws, the author or authors of this
software dedicate any and all copyright interest in the software to the public
domain. We make this dedication in addition to any and all copyright interest
in the software under copyright law.
THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
------------------------------------------------------------------------------
*/
