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
 *       mhc_tensor *x = mhc_tensor_new(&tape, 2, (int[]){4, 8}, 1);   // [4,8], needs grad
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
 *   - mhc_tape: the autograd tape, living in an arena.
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
 *   Sinkhorn normalisers are accumulated in double in both builds. The double build is the one
 *   used for finite-difference gradient checks and for golden vectors.
 */

#ifndef MHC_H_INCLUDE
#define MHC_H_INCLUDE

#include <stddef.h>
#include <stdint.h>

#define MHC_VERSION_MAJOR 0
#define MHC_VERSION_MINOR 1
#define MHC_VERSION_PATCH 0
#define MHC_VERSION_STRING "0.1.0"

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

MHCDEF const char *mhc_version(void);   /* "0.1.0 (float32)" or "0.1.0 (float64)" */

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

typedef struct mhc_ctx {
    mhc_result last;            /* the code of the last error (MHC_OK if none) */
    char msg[MHC_MSG_SIZE];     /* the last error's detailed message ("" if none) */
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
MHCDEF uint64_t mhc_rng_u64(mhc_rng *rng);
MHCDEF uint32_t mhc_rng_below(mhc_rng *rng, uint32_t n);   /* uniform in [0, n), n >= 1 */
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
} mhc_tensor;

typedef struct mhc_arena_block mhc_arena_block;
typedef struct mhc_arena {
    mhc_ctx *ctx;
    mhc_arena_block *head;    /* current block (a chain only before the first reset) */
    size_t used_total;        /* bytes handed out since the last reset */
    size_t peak;              /* high-water mark of used_total */
    size_t capacity;          /* bytes owned in all blocks */
    size_t growths;           /* number of mallocs made (for the no-malloc-in-a-step test) */
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
/* Write "[2,3,4]" into buf (always terminated). Returns buf. */
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
 * below validate first. Each fast kernel has a naive reference (mhc_ref_*) beside it.
 * ========================================================================================= */

/* Matmul: a cache-blocked, packed GEMM with a register-blocked micro-kernel (AVX-512, AVX2+FMA or
   portable C, chosen at compile time); threads own output tiles, so the bits do not depend on the
   thread count. Uses about 250 KB of stack per thread for packing (no malloc). acc = 0 never
   reads C. */
/* C[M,N] (+)= A[M,K] B[K,N]          (acc = 0 overwrites, acc = 1 accumulates) */
MHCDEF void mhc_k_matmul_ab (mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[M,K] B[N,K]^T */
MHCDEF void mhc_k_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[K,M]^T B[K,N] */
MHCDEF void mhc_k_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* Which matmul micro-kernel this build uses: "avx512", "avx2+fma" or "portable" (chosen at compile
   time from the target ISA: e.g. -march=native; MHC_NO_SIMD forces "portable"). */
MHCDEF const char *mhc_k_matmul_isa(void);
/* Naive triple loops with double accumulation: the references the tests compare against. */
MHCDEF void mhc_ref_matmul_ab (mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
MHCDEF void mhc_ref_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
MHCDEF void mhc_ref_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);

/* RMSNorm over the last dimension: y = x * rsqrt(mean(x^2) + eps) * w   (w may be NULL).
   rstd[N] is saved for the backward. */
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

/* Stable softmax over the last dimension of [N,D]: y = exp(x - max) / sum. */
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

typedef struct mhc_node mhc_node;
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

typedef struct mhc_tape {
    mhc_ctx *ctx;
    mhc_arena *arena;
    mhc_node *last;             /* newest node */
    int nodes;                  /* number of recorded nodes */
    int no_grad;                /* nonzero: ops record nothing and outputs need no gradient */
    int backward_done;          /* set by mhc_tape_backward until the next reset */
    int failed;                 /* an op failed since the last reset (its message is in ctx) */
} mhc_tape;

MHCDEF mhc_result mhc_tape_init(mhc_ctx *ctx, mhc_tape *tp, mhc_arena *arena);
MHCDEF int        mhc_tape_set_no_grad(mhc_tape *tp, int no_grad);   /* returns the old value */
/* Seed d(loss)/d(loss) = 1 for a 1-element loss and run every node's backward, newest first.
   Gradients accumulate into parameter gradients (zero them yourself between steps). */
MHCDEF mhc_result mhc_tape_backward(mhc_tape *tp, mhc_tensor *loss);
/* Forget all nodes and reset the arena: every tensor made on this tape becomes invalid. */
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
MHCDEF mhc_tensor *mhc_mul(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b);     /* same shape, elementwise */
MHCDEF mhc_tensor *mhc_scale(mhc_tape *tp, mhc_tensor *a, double s);        /* out = s a */
MHCDEF mhc_tensor *mhc_rmsnorm(mhc_tape *tp, mhc_tensor *x, mhc_tensor *w, double eps);   /* w may be NULL */
MHCDEF mhc_tensor *mhc_activation(mhc_tape *tp, mhc_act act, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_sigmoid(mhc_tape *tp, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_tanh(mhc_tape *tp, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_gelu(mhc_tape *tp, mhc_tensor *x);                   /* tanh approximation */
MHCDEF mhc_tensor *mhc_silu(mhc_tape *tp, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_softmax(mhc_tape *tp, mhc_tensor *x);                /* over the last dim */
/* out[T,D] = table[ids[t]]; table is [V,D], ids copied into the arena. */
MHCDEF mhc_tensor *mhc_embedding(mhc_tape *tp, mhc_tensor *table, const int *ids, int T);
/* qkv [B,T,3C] (or [B*T,3C]) -> out [B,T,C], causal, H heads. */
MHCDEF mhc_tensor *mhc_attention(mhc_tape *tp, mhc_tensor *qkv, int B, int T, int H);
/* Mean cross-entropy of logits [N,V] against targets[N] -> a 1-element tensor. */
MHCDEF mhc_tensor *mhc_cross_entropy(mhc_tape *tp, mhc_tensor *logits, const int *targets);
/* Reductions to a 1-element tensor (losses for tests and examples). */
MHCDEF mhc_tensor *mhc_sum(mhc_tape *tp, mhc_tensor *x);
MHCDEF mhc_tensor *mhc_mean(mhc_tape *tp, mhc_tensor *x);
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
 * ========================================================================================= */

/* (section filled by the mHC layer) */

/* =========================================================================================
 * OPTIMIZER AND TRAINER
 * ========================================================================================= */

/* (section filled by the optimizer) */

/* =========================================================================================
 * I/O: .npy AND CHECKPOINTS
 * ========================================================================================= */

/* (section filled by the I/O layer) */

#ifdef __cplusplus
}
#endif
#endif /* MHC_H_INCLUDE */

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
#else
#define MHC__OMP 0
#define MHC__OMP_FOR(cond)
#endif

#ifdef __cplusplus
#define MHC__CAST(T, x) (static_cast<T>(x))
#else
#define MHC__CAST(T, x) ((T)(x))
#endif

/* Work (in multiply-adds) below which a loop stays on one thread. */
#define MHC__PAR_WORK 32768

#ifdef __cplusplus
extern "C" {
#endif

/* =========================================================================================
 * CONFIG AND PORTABILITY (implementation)
 * ========================================================================================= */

MHCDEF const char *mhc_version(void) { return MHC_VERSION_STRING " (" MHC_REAL_NAME ")"; }

/* a*b into *out; returns 0 on overflow. */
static int mhc__mul_ok(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

/* =========================================================================================
 * RESULTS AND ERRORS (implementation)
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
    uint64_t *s = rng->s;
    uint64_t result = mhc__rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0]; s[3] ^= s[1]; s[1] ^= s[2]; s[0] ^= s[3];
    s[2] ^= t;
    s[3] = mhc__rotl(s[3], 45);
    return result;
}

MHCDEF uint32_t mhc_rng_below(mhc_rng *rng, uint32_t n) {
    /* Lemire's multiply-shift with rejection: unbiased */
    uint64_t m;
    uint32_t l, t;
    if (n <= 1) return 0;
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
    if (!a || !b || a->ndim != b->ndim) return 0;
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
   in k (ab, abt); for atb, MHC__MM_MC rows of A at a time are first copied row by row into a
   contiguous block (strided columns would thrash the cache), and a last partial strip is packed
   with zero rows.
   Determinism: the micro-kernel always runs on a full MR x NR block (packing pads with zeros; a
   partial block goes through a small buffer) and element (i,j) always gets t = its sum over one
   K block in k order, then C = t (first K block when acc = 0) or C = C + t; the K blocks depend
   on K alone. So no bit depends on where tile boundaries fall, and the tiling may follow the
   thread count (for load balance) without changing any result. (Zero padding meets only lanes
   that are thrown away, so an inf or NaN in A or B stays in its own rows and columns.)
   Memory: the packing buffers are local arrays of mhc__mm_tile, i.e. on the stack of the thread
   that owns the tile: MHC__MM_KC * (MHC__MM_NC + MHC__MM_MC) + MR * NR reals, about 245 KB in both
   precisions (OpenMP worker stacks are 2 MB or more). No malloc, no static buffers.
   Micro-kernels: AVX-512F when the compiler targets it (e.g. -march=native on a CPU that has it),
   else AVX2 + FMA, else portable C that compilers auto-vectorise. MHC_NO_SIMD forces the
   portable one. The SIMD kernels have float and double versions. */

#if !defined(MHC_NO_SIMD) && defined(__AVX512F__)
#define MHC__MM_SIMD 512
#elif !defined(MHC_NO_SIMD) && defined(__AVX2__) && defined(__FMA__)
#define MHC__MM_SIMD 256
#else
#define MHC__MM_SIMD 0
#endif

#if MHC__MM_SIMD
#ifdef __cplusplus
}
#endif
#include <immintrin.h>
#ifdef __cplusplus
extern "C" {
#endif
#endif

#if MHC__MM_SIMD == 512 && !defined(MHC_DOUBLE)
typedef __m512 mhc__v;
#define MHC__V_W 16
#define MHC__V_LOAD(p) _mm512_loadu_ps(p)
#define MHC__V_STORE(p, v) _mm512_storeu_ps(p, v)
#define MHC__V_SET1(x) _mm512_set1_ps(x)
#define MHC__V_ZERO() _mm512_setzero_ps()
#define MHC__V_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define MHC__V_ADD(a, b) _mm512_add_ps(a, b)
#elif MHC__MM_SIMD == 512
typedef __m512d mhc__v;
#define MHC__V_W 8
#define MHC__V_LOAD(p) _mm512_loadu_pd(p)
#define MHC__V_STORE(p, v) _mm512_storeu_pd(p, v)
#define MHC__V_SET1(x) _mm512_set1_pd(x)
#define MHC__V_ZERO() _mm512_setzero_pd()
#define MHC__V_FMA(a, b, c) _mm512_fmadd_pd(a, b, c)
#define MHC__V_ADD(a, b) _mm512_add_pd(a, b)
#elif MHC__MM_SIMD == 256 && !defined(MHC_DOUBLE)
typedef __m256 mhc__v;
#define MHC__V_W 8
#define MHC__V_LOAD(p) _mm256_loadu_ps(p)
#define MHC__V_STORE(p, v) _mm256_storeu_ps(p, v)
#define MHC__V_SET1(x) _mm256_set1_ps(x)
#define MHC__V_ZERO() _mm256_setzero_ps()
#define MHC__V_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define MHC__V_ADD(a, b) _mm256_add_ps(a, b)
#elif MHC__MM_SIMD == 256
typedef __m256d mhc__v;
#define MHC__V_W 4
#define MHC__V_LOAD(p) _mm256_loadu_pd(p)
#define MHC__V_STORE(p, v) _mm256_storeu_pd(p, v)
#define MHC__V_SET1(x) _mm256_set1_pd(x)
#define MHC__V_ZERO() _mm256_setzero_pd()
#define MHC__V_FMA(a, b, c) _mm256_fmadd_pd(a, b, c)
#define MHC__V_ADD(a, b) _mm256_add_pd(a, b)
#endif

/* Register block MR x NR (the SIMD kernels hold MR x 2 vectors), K block, column block. */
#if MHC__MM_SIMD == 512
#define MHC__MM_MR 8
#else
#define MHC__MM_MR 6
#endif
#if MHC__MM_SIMD
#define MHC__MM_NR (2 * MHC__V_W)
#else
#define MHC__MM_NR 16
#endif
#ifdef MHC_DOUBLE
#define MHC__MM_KC 128
#else
#define MHC__MM_KC 256
#endif
#define MHC__MM_NC 192          /* columns of a packed B block: a multiple of every NR */
#define MHC__MM_MC 48           /* rows of a packed A block: a multiple of every MR */
#define MHC__MM_ALIGN (64 / (int)sizeof(mhc_real))
#define MHC__MM_PAR_WORK 262144.0

MHCDEF const char *mhc_k_matmul_isa(void) {
    return MHC__MM_SIMD == 512 ? "avx512" : MHC__MM_SIMD == 256 ? "avx2+fma" : "portable";
}

#if MHC__MM_SIMD
#if MHC__MM_MR == 8
#define MHC__MM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#else
#define MHC__MM_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#endif
#define MHC__MM_DECL(i) mhc__v t##i##0 = MHC__V_ZERO(), t##i##1 = MHC__V_ZERO();
#define MHC__MM_APTR(i) const mhc_real *a##i = a + (size_t)(i) * ars;
#define MHC__MM_FMA(i) { const mhc__v ai = MHC__V_SET1(a##i[p]); \
    t##i##0 = MHC__V_FMA(ai, b0, t##i##0); t##i##1 = MHC__V_FMA(ai, b1, t##i##1); }
#define MHC__MM_ADD(i) { mhc_real *ci = c + (size_t)(i) * ldc; \
    MHC__V_STORE(ci, MHC__V_ADD(MHC__V_LOAD(ci), t##i##0)); \
    MHC__V_STORE(ci + MHC__V_W, MHC__V_ADD(MHC__V_LOAD(ci + MHC__V_W), t##i##1)); }
#define MHC__MM_SET(i) { mhc_real *ci = c + (size_t)(i) * ldc; \
    MHC__V_STORE(ci, t##i##0); MHC__V_STORE(ci + MHC__V_W, t##i##1); }

/* c[MR,NR] (+)= a[MR,kc] b-panel[kc,NR], a(r,k) = a[r*ars + k*acs]  (SIMD: MR x 2 vector accumulators,
   fma in k order) */
static void mhc__mm_kernel(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b, mhc_real *c,
                           size_t ldc, int add) {
    int k;
    size_t p = 0;
    MHC__MM_ROWS(MHC__MM_APTR)
    MHC__MM_ROWS(MHC__MM_DECL)
    for (k = 0; k < kc; k++, p += acs, b += MHC__MM_NR) {
        const mhc__v b0 = MHC__V_LOAD(b), b1 = MHC__V_LOAD(b + MHC__V_W);
        MHC__MM_ROWS(MHC__MM_FMA)
    }
    if (add) { MHC__MM_ROWS(MHC__MM_ADD) } else { MHC__MM_ROWS(MHC__MM_SET) }
}
#else
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

/* c[MR,NR] (+)= a[MR,kc] b-panel[kc,NR], a(r,k) = a[r*ars + k*acs]  (portable: MR x NR scalars) */
#if defined(__GNUC__) && !defined(__clang__) && !defined(__INTEL_COMPILER)
__attribute__((optimize("no-tree-loop-vectorize")))
#endif
static void mhc__mm_kernel(int kc, const mhc_real *a, size_t ars, size_t acs, const mhc_real *b, mhc_real *c,
                           size_t ldc, int add) {
    int k;
    size_t p = 0;
    MHC__MM_PROWS(MHC__MM_PDECL)
    for (k = 0; k < kc; k++, p += acs, b += MHC__MM_NR) {
        MHC__MM_PROWS(MHC__MM_PFMA)
    }
    MHC__MM_PROWS(MHC__MM_PSTORE)
}
#endif

/* A strip [mr, kc] -> ap[k*MR + r] = A(r, k); rows mr..MR-1 are zero. */
static void mhc__mm_pack_strip(mhc_real *ap, const mhc_real *A, size_t ars, size_t acs, int mr, int kc) {
    int r, k;
    for (r = 0; r < mr; r++) {
        const mhc_real *a = A + (size_t)r * ars;
        for (k = 0; k < kc; k++) ap[(size_t)k * MHC__MM_MR + r] = a[(size_t)k * acs];
    }
    for (; r < MHC__MM_MR; r++)
        for (k = 0; k < kc; k++) ap[(size_t)k * MHC__MM_MR + r] = 0;
}

/* A block [mc, kc] (columns contiguous: atb) -> ap[k*MC + r] = A(r, k); rows up to the next multiple
   of MR are zero. A row of the block is a plain copy, and a strip of it is read with stride MC. */
static void mhc__mm_pack_block(mhc_real *ap, const mhc_real *A, size_t ars, size_t acs, int mc, int kc) {
    const int mpad = (mc + MHC__MM_MR - 1) / MHC__MM_MR * MHC__MM_MR;
    int r, k;
    for (k = 0; k < kc; k++) {
        const mhc_real *a = A + (size_t)k * acs;
        mhc_real *d = ap + (size_t)k * MHC__MM_MC;
        if (mc == MHC__MM_MC && ars == 1) {
            for (r = 0; r < MHC__MM_MC; r++) d[r] = a[r];
        } else {
            for (r = 0; r < mc; r++) d[r] = a[(size_t)r * ars];
            for (; r < mpad; r++) d[r] = 0;
        }
    }
}

#if MHC__MM_SIMD && !defined(MHC_DOUBLE)
#define MHC__MM_T8 1
/* d[k*ldd + s] = b[s*ldb + k] for s, k < 8: an 8 x 8 transpose of floats in AVX registers. */
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

/* B block [kc, nc] -> micro-panels of NR columns: bp[q*kc + k*NR + s] = B(k, q + s), q = 0, NR, ...;
   columns past nc are zero. */
static void mhc__mm_pack_b(mhc_real *bp, const mhc_real *B, size_t brs, size_t bcs, int kc, int nc) {
    int q, k, s;
    for (q = 0; q < nc; q += MHC__MM_NR) {
        const int nr = nc - q < MHC__MM_NR ? nc - q : MHC__MM_NR;
        mhc_real *d = bp + (size_t)q * kc;
        if (bcs == 1) {        /* rows of B contiguous in j (ab, atb) */
            for (k = 0; k < kc; k++) {
                const mhc_real *b = B + (size_t)k * brs + q;
                mhc_real *dk = d + (size_t)k * MHC__MM_NR;
                if (nr == MHC__MM_NR) {
                    for (s = 0; s < MHC__MM_NR; s++) dk[s] = b[s];
                } else {
                    for (s = 0; s < nr; s++) dk[s] = b[s];
                    for (; s < MHC__MM_NR; s++) dk[s] = 0;
                }
            }
        } else {               /* columns of B contiguous in k (abt): transpose */
            int k8 = 0;
#if MHC__MM_T8
            if (nr == MHC__MM_NR && brs == 1) {
                k8 = kc / 8 * 8;
                for (s = 0; s < MHC__MM_NR; s += 8)
                    for (k = 0; k < k8; k += 8)
                        mhc__mm_t8x8(d + (size_t)k * MHC__MM_NR + s, MHC__MM_NR, B + (size_t)(q + s) * bcs + k, bcs);
            }
#endif
            for (s = 0; s < nr; s++) {
                const mhc_real *b = B + (size_t)(q + s) * bcs;
                for (k = k8; k < kc; k++) d[(size_t)k * MHC__MM_NR + s] = b[(size_t)k * brs];
            }
            for (; s < MHC__MM_NR; s++)
                for (k = 0; k < kc; k++) d[(size_t)k * MHC__MM_NR + s] = 0;
        }
    }
}

static mhc_real *mhc__mm_align(mhc_real *p) {
    return p + ((64 - (size_t)((uintptr_t)p % 64)) % 64) / sizeof(mhc_real);
}

/* One output tile: rows [i0,i1) x columns [j0,j1) of C (row length ldc), over all of K. A strip of
   MR rows of A is read in place when its rows are contiguous in k (ab, abt); otherwise (atb, and a
   last partial strip) A is packed, MC rows at a time. */
static void mhc__mm_tile(mhc_real *C, size_t ldc, const mhc_real *A, size_t ars, size_t acs,
                         const mhc_real *B, size_t brs, size_t bcs, int i0, int i1, int j0, int j1,
                         int K, int acc) {
    mhc_real bbuf[MHC__MM_KC * MHC__MM_NC + MHC__MM_ALIGN];
    mhc_real abuf[MHC__MM_KC * MHC__MM_MC + MHC__MM_ALIGN];
    mhc_real tbuf[MHC__MM_MR * MHC__MM_NR + MHC__MM_ALIGN];
    mhc_real *bp = mhc__mm_align(bbuf), *ap = mhc__mm_align(abuf), *tp = mhc__mm_align(tbuf);
    const int pack_all = acs != 1;
    int p0;
    for (p0 = 0; p0 < K; p0 += MHC__MM_KC) {
        const int kc = K - p0 < MHC__MM_KC ? K - p0 : MHC__MM_KC;
        const int add = acc || p0 > 0;
        int ic, i, j, r, s;
        mhc__mm_pack_b(bp, B + (size_t)p0 * brs + (size_t)j0 * bcs, brs, bcs, kc, j1 - j0);
        for (ic = i0; ic < i1; ic += MHC__MM_MC) {
            const int mc = i1 - ic < MHC__MM_MC ? i1 - ic : MHC__MM_MC;
            if (pack_all) mhc__mm_pack_block(ap, A + (size_t)ic * ars + (size_t)p0 * acs, ars, acs, mc, kc);
            for (i = ic; i < ic + mc; i += MHC__MM_MR) {
                const int mr = ic + mc - i < MHC__MM_MR ? ic + mc - i : MHC__MM_MR;
                const mhc_real *a = A + (size_t)i * ars + (size_t)p0 * acs;
                size_t rs = ars, cs = acs;
                if (pack_all) {
                    a = ap + (i - ic); rs = 1; cs = MHC__MM_MC;
                } else if (mr < MHC__MM_MR) {
                    mhc__mm_pack_strip(ap, a, ars, acs, mr, kc);
                    a = ap; rs = 1; cs = MHC__MM_MR;
                }
                for (j = j0; j < j1; j += MHC__MM_NR) {
                    const int nr = j1 - j < MHC__MM_NR ? j1 - j : MHC__MM_NR;
                    const mhc_real *bj = bp + (size_t)(j - j0) * kc;
                    mhc_real *c = C + (size_t)i * ldc + j;
                    if (mr == MHC__MM_MR && nr == MHC__MM_NR) {
                        mhc__mm_kernel(kc, a, rs, cs, bj, c, ldc, add);
                    } else {   /* partial block: the same kernel into a buffer, then the same C update */
                        mhc__mm_kernel(kc, a, rs, cs, bj, tp, MHC__MM_NR, 0);
                        for (r = 0; r < mr; r++)
                            for (s = 0; s < nr; s++) {
                                mhc_real *cr = c + (size_t)r * ldc + s;
                                *cr = add ? *cr + tp[r * MHC__MM_NR + s] : tp[r * MHC__MM_NR + s];
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
    int nt = 1, nbm = 1, nbn, ntiles, t;
    const int mstrips = (M + MHC__MM_MR - 1) / MHC__MM_MR, nstrips = (N + MHC__MM_NR - 1) / MHC__MM_NR;
    if (M < 1 || N < 1) return;
    if (K < 1) {
        if (!acc) memset(C, 0, (size_t)M * (size_t)N * sizeof *C);
        return;
    }
#if MHC__OMP
    if ((double)M * K * N > MHC__MM_PAR_WORK) nt = omp_get_max_threads();
#endif
    /* Column blocks: as few as fit MHC__MM_NC, their count rounded up to a multiple of the thread
       count when there are micro-panels enough. Row bands: one, or one per thread when the column
       blocks do not share evenly. Blocks and bands split the NR-wide panels and MR-high strips as
       evenly as integers allow, so threads get equal work. Each packed B block serves a whole band:
       few bands, little packing. (The tiling never changes results, see above.) */
    nbn = (nstrips + MHC__MM_NC / MHC__MM_NR - 1) / (MHC__MM_NC / MHC__MM_NR);
    if (nt > 1 && nbn % nt && (nbn + nt - 1) / nt * nt <= nstrips) nbn = (nbn + nt - 1) / nt * nt;
    if (nt > 1 && nbn % nt) nbm = nt < mstrips ? nt : mstrips;
    ntiles = nbm * nbn;
    MHC__OMP_FOR(nt > 1 && ntiles > 1)
    for (t = 0; t < ntiles; t++) {
        const size_t bm = (size_t)(t / nbn), bn = (size_t)(t % nbn);
        const int i0 = (int)(bm * (size_t)mstrips / (size_t)nbm) * MHC__MM_MR;
        const int i1 = (int)((bm + 1) * (size_t)mstrips / (size_t)nbm) * MHC__MM_MR;
        const int j0 = (int)(bn * (size_t)nstrips / (size_t)nbn) * MHC__MM_NR;
        const int j1 = (int)((bn + 1) * (size_t)nstrips / (size_t)nbn) * MHC__MM_NR;
        mhc__mm_tile(C, (size_t)N, A, ars, acs, B, brs, bcs, i0, i1 < M ? i1 : M, j0, j1 < N ? j1 : N, K, acc);
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

/* dx_j += r w_j dy_j - x_j r^3/D sum_k dy_k w_k x_k;   dw_j += sum_rows dy_j x_j r */
MHCDEF void mhc_k_rmsnorm_backward(mhc_real *dx, mhc_real *dw, const mhc_real *dy, const mhc_real *x,
                                   const mhc_real *w, const mhc_real *rstd, int N, int D) {
    int i, j;
    if (dx) {
        MHC__OMP_FOR((double)N * D > MHC__PAR_WORK)
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
        MHC__OMP_FOR((double)N * D > MHC__PAR_WORK)
        for (j = 0; j < D; j++) {
            double s = 0.0;
            int r;
            for (r = 0; r < N; r++) s += (double)dy[(size_t)r * D + j] * (double)x[(size_t)r * D + j] * (double)rstd[r];
            dw[j] += (mhc_real)s;
        }
    }
}

#define MHC__GELU_K 0.7978845608028654   /* sqrt(2/pi) */
#define MHC__GELU_C 0.044715

/* sigmoid(x) = 1/(1+e^-x), computed without overflow on either side */
static double mhc__sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    else { double e = exp(x); return e / (1.0 + e); }
}

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

MHCDEF void mhc_k_act_forward(mhc_act act, mhc_real *y, const mhc_real *x, size_t n) {
    long i, nn = (long)n;
    MHC__OMP_FOR(nn > MHC__PAR_WORK / 8)
    for (i = 0; i < nn; i++) y[i] = (mhc_real)mhc_act_value(act, (double)x[i]);
}

MHCDEF void mhc_k_act_backward(mhc_act act, mhc_real *dx, const mhc_real *dy, const mhc_real *x, size_t n) {
    long i, nn = (long)n;
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

/* Causal attention per (b, h, t): p = softmax_{t2 <= t}(q_t . k_t2 / sqrt(hs)), out_t = sum p v_t2 */
MHCDEF void mhc_k_attention_forward(mhc_real *out, mhc_real *att, const mhc_real *qkv, int B, int T, int C, int H) {
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    long job, njobs = (long)B * H * T;
    MHC__OMP_FOR((double)njobs * T * hs > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
        const int t = (int)(job % T), h = (int)((job / T) % H), b = (int)(job / ((long)T * H));
        const mhc_real *q = qkv + ((size_t)b * T + t) * C3 + (size_t)h * hs;
        mhc_real *a = att + (((size_t)b * H + h) * T + t) * T;
        mhc_real *o = out + ((size_t)b * T + t) * C + (size_t)h * hs;
        double mx = -HUGE_VAL, s = 0.0;
        int t2, i;
        for (t2 = 0; t2 <= t; t2++) {
            const mhc_real *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
            double d = 0.0;
            for (i = 0; i < hs; i++) d += (double)q[i] * (double)k[i];
            d *= scale;
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
}

/* Backward per (b, h), serial over t inside, so each job owns its slices of dq, dk, dv:
   dv_t2 += p dout_t;  dp = v_t2 . dout_t;  ds = p (dp - sum p dp);  dq_t += ds k_t2 / sqrt(hs);
   dk_t2 += ds q_t / sqrt(hs). */
MHCDEF void mhc_k_attention_backward(mhc_real *dqkv, const mhc_real *dout, const mhc_real *att,
                                     const mhc_real *qkv, int B, int T, int C, int H) {
    const int hs = C / H, C3 = 3 * C;
    const double scale = 1.0 / sqrt((double)hs);
    long job, njobs = (long)B * H;
    MHC__OMP_FOR((double)njobs * T * T * hs > MHC__PAR_WORK)
    for (job = 0; job < njobs; job++) {
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
                double dp = 0.0;
                for (i = 0; i < hs; i++) dp += (double)v[i] * (double)g[i];
                sum_pdp += (double)a[t2] * dp;
            }
            for (t2 = 0; t2 <= t; t2++) {
                const mhc_real *k = qkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
                const mhc_real *v = qkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
                mhc_real *dk = dqkv + ((size_t)b * T + t2) * C3 + C + (size_t)h * hs;
                mhc_real *dv = dqkv + ((size_t)b * T + t2) * C3 + 2 * (size_t)C + (size_t)h * hs;
                double dp = 0.0, ds;
                const double p = (double)a[t2];
                for (i = 0; i < hs; i++) dp += (double)v[i] * (double)g[i];
                ds = p * (dp - sum_pdp) * scale;
                for (i = 0; i < hs; i++) {
                    dv[i] += (mhc_real)(p * (double)g[i]);
                    dq[i] += (mhc_real)(ds * (double)k[i]);
                    dk[i] += (mhc_real)(ds * (double)q[i]);
                }
            }
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
 * ========================================================================================= */

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
    return 1;
}

static int mhc__needs_grad(mhc_tape *tp, const mhc_tensor *t) {
    return tp && t && t->grad && !tp->no_grad;
}

/* A new arena tensor with zeroed data (and zeroed gradient when with_grad and grads are on). */
static mhc_tensor *mhc__new_like(mhc_tape *tp, int ndim, const int *shape, int with_grad, const char *op) {
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
    t->data = MHC__CAST(mhc_real *, mhc_arena_calloc(tp->arena, size, sizeof(mhc_real)));
    if (!t->data) { tp->failed = 1; return NULL; }
    if (with_grad && !tp->no_grad) {
        t->grad = MHC__CAST(mhc_real *, mhc_arena_calloc(tp->arena, size, sizeof(mhc_real)));
        if (!t->grad) { tp->failed = 1; return NULL; }
    }
    return t;
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
        if (tp->failed) return tp->ctx ? tp->ctx->last : MHC_ERR_STATE;
        return mhc_fail(tp->ctx, MHC_ERR_NULL, "mhc_tape_backward: loss is NULL");
    }
    if (tp->failed)
        return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: an op on this tape failed; reset it first");
    if (tp->backward_done)
        return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_backward: already run on this tape; call mhc_tape_reset first");
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
    if (!tp) return MHC_ERR_NULL;
    if (!tp->arena) return mhc_fail(tp->ctx, MHC_ERR_STATE, "mhc_tape_reset: the tape is not initialised");
    tp->last = NULL;
    tp->nodes = 0;
    tp->backward_done = 0;
    tp->failed = 0;
    return mhc_arena_reset(tp->arena);
}

MHCDEF void mhc_tape_free(mhc_tape *tp) {
    if (!tp) return;
    tp->last = NULL;
    tp->nodes = 0;
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
    out = mhc__new_like(tp, a->ndim, shape, mhc__needs_grad(tp, a) || mhc__needs_grad(tp, b), op);
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

static void mhc__bw_add(mhc_node *n) {   /* da += dout;  db += dout (summed over rows when broadcast) */
    mhc_tensor *a = n->in[0], *b = n->in[1], *o = n->out;
    size_t i;
    if (a->grad) for (i = 0; i < o->size; i++) a->grad[i] += o->grad[i];
    if (b->grad) {
        if (n->iarg[0]) {   /* broadcast bias: rows x D */
            size_t D = b->size, r, rows = o->size / D;
            for (r = 0; r < rows; r++)
                for (i = 0; i < D; i++) b->grad[i] += o->grad[r * D + i];
        } else {
            for (i = 0; i < o->size; i++) b->grad[i] += o->grad[i];
        }
    }
}

MHCDEF mhc_tensor *mhc_add(mhc_tape *tp, mhc_tensor *a, mhc_tensor *b) {
    mhc_tensor *out;
    mhc_node *n;
    int bcast;
    size_t i;
    char sa[64], sb[64];
    if (!mhc__op_begin(tp, "mhc_add", 2, a, b)) return NULL;
    bcast = !mhc_tensor_same_shape(a, b);
    if (bcast && !(b->ndim == 1 && b->shape[0] == a->shape[a->ndim - 1]))
        return mhc__op_fail(tp, MHC_ERR_SHAPE,
                            "mhc_add: a is %s and b is %s; expected equal shapes or b = [last dim of a]",
                            mhc_shape_str(a, sa, sizeof sa), mhc_shape_str(b, sb, sizeof sb));
    out = mhc__new_like(tp, a->ndim, a->shape, mhc__needs_grad(tp, a) || mhc__needs_grad(tp, b), "mhc_add");
    if (!out) return NULL;
    for (i = 0; i < a->size; i++) out->data[i] = a->data[i] + b->data[bcast ? i % b->size : i];
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
    if (!isfinite(s)) return mhc__op_fail(tp, MHC_ERR_NONFINITE, "mhc_scale: the factor is %g", s);
    out = mhc__new_like(tp, a->ndim, a->shape, mhc__needs_grad(tp, a), "mhc_scale");
    if (!out) return NULL;
    for (i = 0; i < a->size; i++) out->data[i] = (mhc_real)s * a->data[i];
    n = mhc__tape_record(tp, "mhc_scale", mhc__bw_scale, out);
    if (n) { n->in[0] = a; n->farg[0] = s; }
    return tp->failed ? NULL : out;
}

/* ---- rmsnorm --------------------------------------------------------------------------- */

static void mhc__bw_rmsnorm(mhc_node *n) {
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
    if (!mhc__fits_int(tp, x, "mhc_rmsnorm")) return NULL;
    mhc__as_2d(x, &N, &D);
    if (w && !(w->ndim == 1 && w->shape[0] == D))
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_rmsnorm: x is %s and the weight is %s; expected weight [%d]",
                            mhc_shape_str(x, sx, sizeof sx), mhc_shape_str(w, sw, sizeof sw), D);
    if (!(eps >= 0) || !isfinite(eps))
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

static void mhc__bw_act(mhc_node *n) {
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

static void mhc__bw_softmax(mhc_node *n) {
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

static void mhc__bw_embedding(mhc_node *n) {
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

static void mhc__bw_attention(mhc_node *n) {
    mhc_k_attention_backward(n->in[0]->grad, n->out->grad, MHC__CAST(const mhc_real *, n->saved), n->in[0]->data,
                             n->iarg[0], n->iarg[1], n->iarg[2], n->iarg[3]);
}

MHCDEF mhc_tensor *mhc_attention(mhc_tape *tp, mhc_tensor *qkv, int B, int T, int H) {
    mhc_tensor *out;
    mhc_node *n;
    mhc_real *att;
    int C3, C, shape[3];
    size_t att_size;
    char s[64];
    if (!mhc__op_begin(tp, "mhc_attention", 1, qkv, NULL)) return NULL;
    if (B < 1 || T < 1 || H < 1)
        return mhc__op_fail(tp, MHC_ERR_SIZE, "mhc_attention: B=%d T=%d H=%d, expected all >= 1", B, T, H);
    if (!mhc__fits_int(tp, qkv, "mhc_attention")) return NULL;
    C3 = qkv->shape[qkv->ndim - 1];
    if (C3 % 3 != 0 || qkv->size != (size_t)B * (size_t)T * (size_t)C3)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_attention: qkv has shape %s, expected [B*T=%d, 3C] or [%d,%d,3C]",
                            mhc_shape_str(qkv, s, sizeof s), B * T, B, T);
    C = C3 / 3;
    if (C % H != 0)
        return mhc__op_fail(tp, MHC_ERR_SHAPE, "mhc_attention: %d heads do not divide the width C=%d", H, C);
    if (!mhc__mul_ok((size_t)B * H, (size_t)T * T, &att_size) || att_size > (size_t)0x7fffffff)
        return mhc__op_fail(tp, MHC_ERR_OVERFLOW, "mhc_attention: B*H*T*T overflows (B=%d H=%d T=%d)", B, H, T);
    if (qkv->ndim == 3) { shape[0] = B; shape[1] = T; shape[2] = C; }
    else { shape[0] = B * T; shape[1] = C; }
    out = mhc__new_like(tp, qkv->ndim == 3 ? 3 : 2, shape, mhc__needs_grad(tp, qkv), "mhc_attention");
    if (!out) return NULL;
    att = MHC__CAST(mhc_real *, mhc_arena_alloc(tp->arena, att_size * sizeof(mhc_real)));
    if (!att) { tp->failed = 1; return NULL; }
    mhc_k_attention_forward(out->data, att, qkv->data, B, T, C, H);
    n = mhc__tape_record(tp, "mhc_attention", mhc__bw_attention, out);
    if (n) { n->in[0] = qkv; n->saved = att; n->iarg[0] = B; n->iarg[1] = T; n->iarg[2] = C; n->iarg[3] = H; }
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
 * ========================================================================================= */

/* (section filled by the mHC layer) */

/* =========================================================================================
 * OPTIMIZER AND TRAINER (implementation)
 * ========================================================================================= */

/* (section filled by the optimizer) */

/* =========================================================================================
 * I/O: .npy AND CHECKPOINTS (implementation)
 * ========================================================================================= */

/* (section filled by the I/O layer) */

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
