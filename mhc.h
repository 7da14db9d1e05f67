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

/* C[M,N] (+)= A[M,K] B[K,N]          (acc = 0 overwrites, acc = 1 accumulates) */
MHCDEF void mhc_k_matmul_ab (mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[M,K] B[N,K]^T */
MHCDEF void mhc_k_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
/* C[M,N] (+)= A[K,M]^T B[K,N] */
MHCDEF void mhc_k_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc);
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

/* Pass MHC_ADAMW_ZERO for a field of mhc_adamw_config (lr, beta1, beta2, weight_decay,
   grad_clip) to ask for an explicit 0 there, since a plain 0 means "default". grad_clip 0 after
   resolution means no clipping. */
#define MHC_ADAMW_ZERO (-1.0)

/* Trainer configuration; zero fields mean the defaults shown. */
typedef struct mhc_adamw_config {
    mhc_lr_schedule schedule;   /* schedule.lr 0 -> 1e-3 (PyTorch's AdamW default) */
    double beta1;               /* 0 -> 0.9 */
    double beta2;               /* 0 -> 0.95 (the paper) */
    double eps;                 /* 0 -> 1e-8; the paper uses 1e-20 (set it); must end up > 0 */
    double weight_decay;        /* 0 -> 0.1; applied only to MHC_PARAM_DECAY tensors */
    double grad_clip;           /* 0 -> 1.0: the maximum global gradient norm; MHC_ADAMW_ZERO: off */
} mhc_adamw_config;

typedef struct mhc_trainer {
    mhc_ctx *ctx;
    mhc_adamw_config cfg;       /* resolved: defaults filled in, MHC_ADAMW_ZERO turned into 0.
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
/* Write a '<f8' version 1.0 file. ndim 0..MHC_MAX_DIMS (shape may be NULL when ndim is 0). */
MHCDEF mhc_result mhc_npy_write(mhc_ctx *ctx, const char *path, int ndim, const int *shape, const double *data);
MHCDEF void       mhc_npy_free(mhc_npy *a);   /* frees data and zeroes *a; NULL is fine */
/* Read a whole file into *buf (MHC_MALLOC'd, free with MHC_FREE; one extra 0 byte follows the
   len bytes, so a text file is a C string). *buf is NULL on error. */
MHCDEF mhc_result mhc_read_file(mhc_ctx *ctx, const char *path, void **buf, size_t *len);

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
 * Fuzzing: with FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION defined, a checksum mismatch is
 * ignored so that a fuzzer reaches the structure checks (which never trust a length).
 * ----------------------------------------------------------------------------------------- */

#define MHC_CHECKPOINT_VERSION 1

/* Write a checkpoint to path atomically. p is required and allocated; tr and rng may be NULL
   (not stored); config may be NULL when config_bytes is 0. On failure returns MHC_ERR_IO (or an
   argument error) with the reason, removes the temporary file and leaves path as it was. */
MHCDEF mhc_result mhc_checkpoint_save(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                      const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng);
/* Read a checkpoint written by mhc_checkpoint_save (the whole file is read into memory, then
   mhc_checkpoint_parse). */
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

/* Matmul. Each output row belongs to one thread; inside a row the k loop runs in a fixed order,
   so the bits do not depend on the thread count. Loop orders keep the innermost loop contiguous. */

/* C[M,N] (+)= A[M,K] B[K,N] */
MHCDEF void mhc_k_matmul_ab(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i;
    MHC__OMP_FOR((double)M * K * N > MHC__PAR_WORK)
    for (i = 0; i < M; i++) {
        mhc_real *c = C + (size_t)i * N;
        const mhc_real *a = A + (size_t)i * K;
        int k, j;
        if (!acc) for (j = 0; j < N; j++) c[j] = 0;
        for (k = 0; k < K; k++) {
            const mhc_real aik = a[k];
            const mhc_real *b = B + (size_t)k * N;
            for (j = 0; j < N; j++) c[j] += aik * b[j];
        }
    }
}

/* C[M,N] (+)= A[M,K] B[N,K]^T   (row-by-row dot products) */
MHCDEF void mhc_k_matmul_abt(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i;
    MHC__OMP_FOR((double)M * K * N > MHC__PAR_WORK)
    for (i = 0; i < M; i++) {
        const mhc_real *a = A + (size_t)i * K;
        int j, k;
        for (j = 0; j < N; j++) {
            const mhc_real *b = B + (size_t)j * K;
            mhc_real s = 0;
            for (k = 0; k < K; k++) s += a[k] * b[k];
            if (acc) C[(size_t)i * N + j] += s; else C[(size_t)i * N + j] = s;
        }
    }
}

/* C[M,N] (+)= A[K,M]^T B[K,N] */
MHCDEF void mhc_k_matmul_atb(mhc_real *C, const mhc_real *A, const mhc_real *B, int M, int K, int N, int acc) {
    int i;
    MHC__OMP_FOR((double)M * K * N > MHC__PAR_WORK)
    for (i = 0; i < M; i++) {
        mhc_real *c = C + (size_t)i * N;
        int k, j;
        if (!acc) for (j = 0; j < N; j++) c[j] = 0;
        for (k = 0; k < K; k++) {
            const mhc_real aki = A[(size_t)k * M + i];
            const mhc_real *b = B + (size_t)k * N;
            for (j = 0; j < N; j++) c[j] += aki * b[j];
        }
    }
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

/* Finite test on the bits (stays correct under -ffast-math, where isfinite may fold to 1). */
static int mhc__opt_finite(double x) {
    uint64_t u;
    memcpy(&u, &x, sizeof u);
    return ((u >> 52) & 0x7FFu) != 0x7FFu;
}

MHCDEF void mhc_adamw_step(mhc_real *param, const mhc_real *grad, mhc_real *m, mhc_real *v, size_t n,
                           double lr, double beta1, double beta2, double eps, double weight_decay,
                           double grad_scale, long step) {
    double t = (double)(step < 1 ? 1 : step);
    double step_size = lr / (1.0 - pow(beta1, t));          /* lr / bias_correction1 */
    double bc2_sqrt = sqrt(1.0 - pow(beta2, t));            /* sqrt(bias_correction2) */
    double decay = 1.0 - lr * weight_decay;
    size_t i;
    MHC__OMP_FOR(n > (size_t)MHC__PAR_WORK)
    for (i = 0; i < n; i++) {
        double g = (double)grad[i] * grad_scale;
        double p = (double)param[i] * decay;
        mhc_real mi = (mhc_real)(beta1 * (double)m[i] + (1.0 - beta1) * g);
        mhc_real vi = (mhc_real)(beta2 * (double)v[i] + (1.0 - beta2) * g * g);
        m[i] = mi;
        v[i] = vi;
        param[i] = (mhc_real)(p - step_size * (double)mi / (sqrt((double)vi) / bc2_sqrt + eps));
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

/* Fill in the defaults: zero fields get the documented defaults, MHC_ADAMW_ZERO becomes 0. */
static void mhc__adamw_defaults(const mhc_adamw_config *in, mhc_adamw_config *out) {
    if (in) *out = *in;
    else memset(out, 0, sizeof *out);
#define MHC__DEF(field, dflt) \
    if (mhc__opt_is_zero(out->field)) out->field = (dflt); \
    else if (mhc__opt_is(out->field, MHC_ADAMW_ZERO)) out->field = 0.0
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
    if (!(s->lr >= 0.0) || !mhc__opt_finite(s->lr))
        return mhc_fail(ctx, code, "%s: schedule.lr is %g; expected a finite learning rate >= 0", fn, s->lr);
    if (s->warmup < 0)
        return mhc_fail(ctx, code, "%s: schedule.warmup is %ld; expected >= 0", fn, s->warmup);
    if (s->total < 0)
        return mhc_fail(ctx, code, "%s: schedule.total is %ld; expected >= 0", fn, s->total);
    if (s->kind != MHC_LR_CONSTANT) {
        if (s->total < 1)
            return mhc_fail(ctx, code, "%s: schedule.total is %ld; the %s schedule needs the total number of "
                            "steps (>= 1)", fn, s->total, s->kind == MHC_LR_COSINE ? "cosine" : "step-decay");
        if (s->warmup > s->total)
            return mhc_fail(ctx, code, "%s: schedule.warmup (%ld) exceeds schedule.total (%ld)", fn, s->warmup,
                            s->total);
    }
    if (!mhc__opt_finite(s->min_lr_frac) || !(s->min_lr_frac >= 0.0 && s->min_lr_frac <= 1.0))
        return mhc_fail(ctx, code, "%s: schedule.min_lr_frac is %g; expected 0 <= min_lr_frac <= 1", fn,
                        s->min_lr_frac);
    if (!mhc__opt_finite(s->decay_at[0]) || !mhc__opt_finite(s->decay_at[1]) ||
        !(s->decay_at[0] > 0.0 && s->decay_at[0] <= s->decay_at[1] && s->decay_at[1] <= 1.0))
        return mhc_fail(ctx, code, "%s: schedule.decay_at is {%g, %g}; expected 0 < decay_at[0] <= decay_at[1] <= 1",
                        fn, s->decay_at[0], s->decay_at[1]);
    if (!(s->decay_mult[0] > 0.0) || !mhc__opt_finite(s->decay_mult[0]) || !(s->decay_mult[1] > 0.0) ||
        !mhc__opt_finite(s->decay_mult[1]))
        return mhc_fail(ctx, code, "%s: schedule.decay_mult is {%g, %g}; expected finite multipliers > 0", fn,
                        s->decay_mult[0], s->decay_mult[1]);
    if (!mhc__opt_finite(c->beta1) || !(c->beta1 >= 0.0 && c->beta1 < 1.0))
        return mhc_fail(ctx, code, "%s: beta1 is %g; expected 0 <= beta1 < 1", fn, c->beta1);
    if (!mhc__opt_finite(c->beta2) || !(c->beta2 >= 0.0 && c->beta2 < 1.0))
        return mhc_fail(ctx, code, "%s: beta2 is %g; expected 0 <= beta2 < 1", fn, c->beta2);
    if (!(c->eps > 0.0) || !mhc__opt_finite(c->eps))
        return mhc_fail(ctx, code, "%s: eps is %g; expected a finite eps > 0 (the paper uses 1e-20)", fn, c->eps);
    if (!(c->weight_decay >= 0.0) || !mhc__opt_finite(c->weight_decay))
        return mhc_fail(ctx, code, "%s: weight_decay is %g; expected a finite value >= 0 (MHC_ADAMW_ZERO for none)",
                        fn, c->weight_decay);
    if (!(c->grad_clip >= 0.0) || !mhc__opt_finite(c->grad_clip))
        return mhc_fail(ctx, code, "%s: grad_clip is %g; expected a finite norm > 0 (MHC_ADAMW_ZERO for no clipping)",
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
        for (i = lo; i < hi; i++) s += (double)x[i] * (double)x[i];
        part[c] = s;
    }
    for (c = 0; c < MHC__SUMSQ_CHUNKS; c++) total += part[c];
    return total;
}

MHCDEF double mhc_grad_norm(const mhc_params *p) {
    if (!p || !p->grad || p->size == 0) return 0.0;
    return sqrt(mhc__sumsq_fixed(p->grad, p->size));
}

MHCDEF mhc_result mhc_trainer_step(mhc_trainer *tr, mhc_params *p) {
    const mhc_adamw_config *c;
    double norm, scale = 1.0, lr;
    long t;
    int i;
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
    if (tr->step < 0)
        return mhc_fail(tr->ctx, MHC_ERR_STATE, "mhc_trainer_step: the step counter is %ld; expected >= 0", tr->step);
    t = tr->step + 1;
    lr = mhc_lr_at(&c->schedule, t);
    norm = mhc_grad_norm(p);
    if (!mhc__opt_finite(norm)) {
        size_t j;
        for (j = 0; j < p->size; j++)
            if (!mhc__opt_finite((double)p->grad[j])) break;
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
    for (i = 0; i < p->count; i++) {
        size_t off = p->offset[i];
        double wd = p->decay[i] == MHC_PARAM_DECAY ? c->weight_decay : 0.0;
        mhc_adamw_step(p->data + off, p->grad + off, p->m + off, p->v + off, p->tensors[i].size, lr, c->beta1,
                       c->beta2, c->eps, wd, scale, t);
    }
    tr->step = t;
    tr->last_grad_norm = norm;
    tr->last_clip_scale = scale;
    tr->last_lr = lr;
    return MHC_OK;
}

/* =========================================================================================
 * I/O: .npy AND CHECKPOINTS (implementation)
 * ========================================================================================= */

/* ---------------------------------------- NPY ---------------------------------------------
 * A bounds-checked reader for the tiny Python-literal header (every access goes through the
 * lexer below, which never looks past `end`), little-endian byte assembly for the data (so the
 * host's byte order does not matter), and a writer that mimics numpy's header layout. */

#define MHC__NPY_MAGIC "\x93NUMPY"
#define MHC__NPY_GROWTH_DIGITS 21   /* numpy >= 1.23 leaves room for 21 digits in shape[0] */

MHCDEF void mhc_npy_free(mhc_npy *a) {
    if (!a) return;
    MHC_FREE(a->data);
    memset(a, 0, sizeof *a);
}

MHCDEF mhc_result mhc_read_file(mhc_ctx *ctx, const char *path, void **buf, size_t *len) {
    FILE *f;
    unsigned char *data = NULL;
    size_t cap = 0, n = 0;
    if (buf) *buf = NULL;
    if (len) *len = 0;
    if (!path || !buf || !len)
        return mhc_fail(ctx, MHC_ERR_NULL, "mhc_read_file: %s is NULL", !path ? "path" : !buf ? "buf" : "len");
    f = fopen(path, "rb");
    if (!f) return mhc_fail(ctx, MHC_ERR_IO, "mhc_read_file: cannot open '%s' for reading", path);
    for (;;) {
        size_t want, got;
        if (cap - n < 2) {   /* room for at least one more byte and the terminating 0 */
            size_t ncap = cap ? cap * 2 : 4096;
            unsigned char *nd;
            if (cap > SIZE_MAX / 2) {
                MHC_FREE(data);
                fclose(f);
                return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_read_file: '%s' is too large to hold in memory", path);
            }
            nd = MHC__CAST(unsigned char *, MHC_REALLOC(data, ncap));
            if (!nd) {
                MHC_FREE(data);
                fclose(f);
                return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_read_file: out of memory reading '%s' (%zu bytes)", path, ncap);
            }
            data = nd;
            cap = ncap;
        }
        want = cap - n - 1;
        got = fread(data + n, 1, want, f);
        n += got;
        if (got < want) break;
    }
    if (ferror(f)) {
        MHC_FREE(data);
        fclose(f);
        return mhc_fail(ctx, MHC_ERR_IO, "mhc_read_file: read error on '%s' (after %zu bytes)", path, n);
    }
    fclose(f);
    data[n] = 0;
    *buf = data;
    *len = n;
    return MHC_OK;
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

/* The parser proper; mhc_npy_parse empties *out when it fails. */
static mhc_result mhc__npy_parse(mhc_ctx *ctx, const void *buf, size_t len, const char *name, mhc_npy *out) {
    const unsigned char *b = MHC__CAST(const unsigned char *, buf);
    mhc__npy_lex lx;
    size_t prefix, hlen, need, i;
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
    need = out->size * (size_t)out->src_bytes;
    if (len - prefix - hlen != need) {
        size_t have = len - prefix - hlen;
        return mhc_fail(ctx, MHC_ERR_FORMAT, "mhc_npy_parse: %s: %s: the shape needs %zu data bytes, the file has "
                        "%zu", name, have < need ? "truncated data" : "trailing bytes after the data", need, have);
    }
    out->data = MHC__CAST(double *, MHC_MALLOC(out->size * sizeof(double)));
    if (!out->data)
        return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_npy_parse: %s: cannot allocate %zu values", name, out->size);
    b += prefix + hlen;
    if (out->src_bytes == 8) {
        for (i = 0; i < out->size; i++, b += 8) {
            uint64_t u = 0;
            int k;
            for (k = 7; k >= 0; k--) u = u << 8 | b[k];
            memcpy(&out->data[i], &u, 8);
        }
    } else {
        for (i = 0; i < out->size; i++, b += 4) {
            uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            float f;
            memcpy(&f, &u, 4);
            out->data[i] = f;
        }
    }
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

MHCDEF mhc_result mhc_npy_read(mhc_ctx *ctx, const char *path, mhc_npy *out) {
    void *buf;
    size_t len;
    mhc_result r;
    if (out) memset(out, 0, sizeof *out);
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_read: path is NULL");
    if (!out) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_npy_read: %s: out is NULL", path);
    r = mhc_read_file(ctx, path, &buf, &len);
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
    int d, ok;
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

    f = fopen(path, "wb");
    if (!f) return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_write: cannot open '%s' for writing", path);
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
    if (fclose(f) != 0) ok = 0;
    if (!ok) {
        remove(path);
        return mhc_fail(ctx, MHC_ERR_IO, "mhc_npy_write: write error on '%s'", path);
    }
    return MHC_OK;
}

/* -------------------------------------- CHECKPOINTS ----------------------------------------
 * Serialisation writes bytes explicitly (little-endian, no structs). The parser runs twice over
 * a verified buffer: a checking pass that touches no output, then a committing pass. The writer
 * builds the whole file in memory, then writes it to a temporary file and renames it.
 * ----------------------------------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif
#include <errno.h>
#include <limits.h>
#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#include <fcntl.h>
#include <sys/types.h>
#define MHC__POSIX_IO 1
#else
#define MHC__POSIX_IO 0
#endif
#ifdef __cplusplus
extern "C" {
#endif

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
        if (tr->step < 0) return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the trainer's step is %ld; expected >= 0", fn, tr->step);
        flags |= MHC__CKPT_FLAG_TRAINER;
    }
    if (rng) {
        if ((rng->s[0] | rng->s[1] | rng->s[2] | rng->s[3]) == 0)
            return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the rng state is all zero (not seeded)", fn);
        flags |= MHC__CKPT_FLAG_RNG;
    }
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

/* One pass over a checkpoint. commit = 0: verify everything, write nothing; commit = 1: copy
   into the outputs (only after a successful commit = 0 pass over the same buffer). */
static mhc_result mhc__ckpt_parse(mhc_ctx *ctx, const char *fn, const unsigned char *b, size_t len, void *config,
                                  size_t config_cap, size_t *config_bytes, mhc_params *p, mhc_trainer *tr,
                                  mhc_rng *rng, int commit) {
    mhc__rd r;
    uint32_t version, rsize, flags, count, k;
    uint64_t flen, cbytes, nreals, sum = 0;
    r.b = b;
    r.len = len;
    r.pos = 0;
    if (len >= 8 && memcmp(b, mhc__ckpt_magic, 8) != 0)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: not an mhc checkpoint (the magic bytes differ from \"MHC_CKPT\")", fn);
    if (len < MHC__CKPT_HEADER + 8)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %zu bytes, a checkpoint has at least %u", fn, len,
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
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %zu bytes, the header says %llu", fn, len,
                            (unsigned long long)flen);
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: %zu bytes but the header says %llu (trailing bytes or a corrupted "
                        "header)", fn, len, (unsigned long long)flen);
    }
    if (!commit) {
        uint64_t want, got;
        r.pos = len - 8;
        want = mhc__r_u64(&r);
        got = mhc__fnv1a64(b, len - 8);
        if (want != got) {
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: checksum mismatch (stored %016llx, computed %016llx): the "
                            "checkpoint is corrupted", fn, (unsigned long long)want, (unsigned long long)got);
#endif
        }
    }
    r.len = len - 8;   /* the structure ends where the checksum begins */
    r.pos = 24;
    flags = mhc__r_u32(&r);
    if (flags & ~(MHC__CKPT_FLAG_TRAINER | MHC__CKPT_FLAG_RNG))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: unknown flags 0x%lx", fn, (unsigned long)flags);
    if (mhc__r_u32(&r) != 0) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the reserved header field is not 0", fn);
    cbytes = mhc__r_u64(&r);
    if (cbytes > (uint64_t)(r.len - r.pos))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the config blob claims %llu bytes but only %zu remain", fn,
                        (unsigned long long)cbytes, r.len - r.pos);
    if (!commit) {
        if (config_cap > 0 && !config)
            return mhc_fail(ctx, MHC_ERR_NULL, "%s: config is NULL but config_cap is %zu", fn, config_cap);
        if (config && cbytes > (uint64_t)config_cap) {
            if (config_bytes) *config_bytes = (size_t)cbytes;
            return mhc_fail(ctx, MHC_ERR_SIZE, "%s: the config blob has %llu bytes but the buffer holds %zu", fn,
                            (unsigned long long)cbytes, config_cap);
        }
    } else {
        if (config && cbytes) memcpy(config, r.b + r.pos, (size_t)cbytes);
        if (config_bytes) *config_bytes = (size_t)cbytes;
    }
    r.pos += (size_t)cbytes;
    if (!mhc__r_has(&r, 4)) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated before the tensor count", fn);
    count = mhc__r_u32(&r);
    if (count < 1) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the tensor count is 0", fn);
    for (k = 0; k < count; k++) {
        char name[MHC__CKPT_NAME_MAX + 1];
        uint32_t nl, ndim, d, decay, shape[MHC_MAX_DIMS];
        uint64_t size = 1;
        if (!mhc__r_has(&r, 4)) goto trunc_table;
        nl = mhc__r_u32(&r);
        if (nl < 1 || nl > MHC__CKPT_NAME_MAX)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor %lu: name length %lu; expected 1 to %u", fn,
                            (unsigned long)k, (unsigned long)nl, MHC__CKPT_NAME_MAX);
        if (!mhc__r_has(&r, nl)) goto trunc_table;
        memcpy(name, r.b + r.pos, nl);
        name[nl] = 0;
        r.pos += nl;
        if (strlen(name) != nl)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor %lu: the name contains a NUL byte", fn, (unsigned long)k);
        if (!mhc__r_has(&r, 4)) goto trunc_table;
        ndim = mhc__r_u32(&r);
        if (ndim < 1 || ndim > MHC_MAX_DIMS)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': %lu dimensions; expected 1 to %d", fn, name,
                            (unsigned long)ndim, MHC_MAX_DIMS);
        if (!mhc__r_has(&r, 4 * (size_t)ndim + 4)) goto trunc_table;
        for (d = 0; d < ndim; d++) {
            shape[d] = mhc__r_u32(&r);
            if (shape[d] < 1 || shape[d] > (uint32_t)INT_MAX)
                return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': dimension %lu has size %lu", fn, name,
                                (unsigned long)d, (unsigned long)shape[d]);
            if (size > UINT64_MAX / shape[d]) goto too_big;
            size *= shape[d];
        }
        decay = mhc__r_u32(&r);
        if (decay > 1)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: tensor '%s': decay flag %lu; expected 0 or 1", fn, name,
                            (unsigned long)decay);
        if (sum > UINT64_MAX - size) goto too_big;
        sum += size;
        if (p && !commit) {
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
    if (p && !commit && count < (uint32_t)p->count)
        return mhc_fail(ctx, MHC_ERR_SHAPE, "%s: the parameter store has tensor %lu '%s' that the file lacks (the file "
                        "has %lu tensors)", fn, (unsigned long)count, p->names[count], (unsigned long)count);
    if (!mhc__r_has(&r, 8)) goto trunc_table;
    nreals = mhc__r_u64(&r);
    if (nreals != sum)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the file says %llu reals but its tensors hold %llu", fn,
                        (unsigned long long)nreals, (unsigned long long)sum);
    if (nreals > (uint64_t)((r.len - r.pos) / (3 * (size_t)rsize)))
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated: %llu reals (x3 for data, m, v) do not fit in the %zu "
                        "remaining bytes", fn, (unsigned long long)nreals, r.len - r.pos);
    if (commit && p) {
        mhc__r_reals(&r, p->data, p->size);
        mhc__r_reals(&r, p->m, p->size);
        mhc__r_reals(&r, p->v, p->size);
    } else {
        r.pos += 3 * (size_t)nreals * rsize;
    }
    if (flags & MHC__CKPT_FLAG_TRAINER) {
        mhc_trainer t;
        mhc_adamw_config *c = &t.cfg;
        int64_t st, wu, tot;
        if (!mhc__r_has(&r, MHC__CKPT_TRAINER))
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the trainer state", fn);
        memset(&t, 0, sizeof t);
        st = (int64_t)mhc__r_u64(&r);
        c->schedule.kind = (int)(mhc__r_u32(&r) & 0x7FFFFFFFu);
        c->schedule.lr = mhc__r_f64(&r);
        wu = (int64_t)mhc__r_u64(&r);
        tot = (int64_t)mhc__r_u64(&r);
        c->schedule.min_lr_frac = mhc__r_f64(&r);
        c->schedule.decay_at[0] = mhc__r_f64(&r);
        c->schedule.decay_at[1] = mhc__r_f64(&r);
        c->schedule.decay_mult[0] = mhc__r_f64(&r);
        c->schedule.decay_mult[1] = mhc__r_f64(&r);
        c->beta1 = mhc__r_f64(&r);
        c->beta2 = mhc__r_f64(&r);
        c->eps = mhc__r_f64(&r);
        c->weight_decay = mhc__r_f64(&r);
        c->grad_clip = mhc__r_f64(&r);
        t.last_grad_norm = mhc__r_f64(&r);
        t.last_clip_scale = mhc__r_f64(&r);
        t.last_lr = mhc__r_f64(&r);
        if (st < 0 || wu < 0 || tot < 0 || st > (int64_t)LONG_MAX || wu > (int64_t)LONG_MAX || tot > (int64_t)LONG_MAX)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: trainer step %lld, warmup %lld or total %lld is out of range", fn,
                            (long long)st, (long long)wu, (long long)tot);
        t.step = (long)st;
        c->schedule.warmup = (long)wu;
        c->schedule.total = (long)tot;
        if (!commit) {
            char pre[96];
            mhc_result res;
            snprintf(pre, sizeof pre, "%s: the stored trainer configuration is invalid", fn);
            res = mhc__adamw_validate(ctx, pre, c, MHC_ERR_FORMAT);
            if (res != MHC_OK) return res;
        } else if (tr) {
            t.ctx = ctx;
            t.ready = 1;
            *tr = t;
        }
    } else if (tr && !commit) {
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the checkpoint holds no trainer state (it was saved without one)", fn);
    }
    if (flags & MHC__CKPT_FLAG_RNG) {
        uint64_t s[4];
        int i;
        if (!mhc__r_has(&r, MHC__CKPT_RNG)) return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the rng state", fn);
        for (i = 0; i < 4; i++) s[i] = mhc__r_u64(&r);
        if ((s[0] | s[1] | s[2] | s[3]) == 0)
            return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the stored rng state is all zero", fn);
        if (commit && rng) for (i = 0; i < 4; i++) rng->s[i] = s[i];
    } else if (rng && !commit) {
        return mhc_fail(ctx, MHC_ERR_VALUE, "%s: the checkpoint holds no rng state (it was saved without one)", fn);
    }
    if (r.pos != r.len)
        return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: %zu unexpected bytes before the checksum", fn, r.len - r.pos);
    return MHC_OK;
trunc_table:
    return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: truncated in the tensor table (tensor %lu of %lu)", fn,
                    (unsigned long)k, (unsigned long)count);
too_big:
    return mhc_fail(ctx, MHC_ERR_FORMAT, "%s: the tensor sizes overflow at tensor %lu", fn, (unsigned long)k);
}

static mhc_result mhc__ckpt_parse_all(mhc_ctx *ctx, const char *fn, const void *buf, size_t len, void *config,
                                      size_t config_cap, size_t *config_bytes, mhc_params *p, mhc_trainer *tr,
                                      mhc_rng *rng) {
    mhc_result r;
    if (!buf) return mhc_fail(ctx, MHC_ERR_NULL, "%s: buffer is NULL", fn);
    if (p && (!p->data || !p->m || !p->v))
        return mhc_fail(ctx, MHC_ERR_STATE, "%s: the parameter store is not allocated (call mhc_params_alloc)", fn);
    r = mhc__ckpt_parse(ctx, fn, MHC__CAST(const unsigned char *, buf), len, config, config_cap, config_bytes, p, tr,
                        rng, 0);
    if (r != MHC_OK) return r;
    r = mhc__ckpt_parse(ctx, fn, MHC__CAST(const unsigned char *, buf), len, config, config_cap, config_bytes, p, tr,
                        rng, 1);
    MHC_ASSERT(r == MHC_OK);
    return r;
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
    if (!path) return mhc_fail(ctx, MHC_ERR_NULL, "mhc_checkpoint_load: path is NULL");
    snprintf(fn, sizeof fn, "mhc_checkpoint_load('%s')", path);
    r = mhc_read_file(ctx, path, &buf, &len);   /* grows by doubling: no length is trusted */
    if (r != MHC_OK) return r;
    r = mhc__ckpt_parse_all(ctx, fn, buf, len, config, config_cap, config_bytes, p, tr, rng);
    MHC_FREE(buf);
    return r;
}

/* Test hook: simulated faults for the atomic write (NULL in the public path). */
typedef struct mhc__ckpt_faults {
    size_t write_limit;   /* the write fails once this many bytes are written (SIZE_MAX: never) */
    int fail_sync;        /* the flush/fsync step fails */
    int fail_rename;      /* the final rename fails */
    char tmp_path[512];   /* out: the temporary file's name */
} mhc__ckpt_faults;

/* Write buf to path.tmp.<pid>.<n> in the same directory, sync, close, rename over path. On any
   failure the temporary is removed and path is untouched. */
static mhc_result mhc__write_atomic(mhc_ctx *ctx, const char *path, const unsigned char *buf, size_t len,
                                    mhc__ckpt_faults *faults) {
    size_t plen = strlen(path), off = 0, tcap;
    char *tmp;
    const char *stage = "create";
    const char *why = NULL;
    int err = 0, created = 0, attempt;
    unsigned long pid = 0;
#if MHC__POSIX_IO
    int fd = -1;
    pid = (unsigned long)getpid();
#else
    FILE *f = NULL;
#endif
    if (plen > SIZE_MAX - 64) return mhc_fail(ctx, MHC_ERR_OVERFLOW, "mhc_checkpoint_save: path too long");
    tcap = plen + 64;
    tmp = MHC__CAST(char *, MHC_MALLOC(tcap));
    if (!tmp) return mhc_fail(ctx, MHC_ERR_NOMEM, "mhc_checkpoint_save: out of memory");
    for (attempt = 0; attempt < 16; attempt++) {
        snprintf(tmp, tcap, "%s.tmp.%lu.%d", path, pid, attempt);
#if MHC__POSIX_IO
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
        if (fd >= 0 || errno != EEXIST) break;
#else
        f = fopen(tmp, "rb");   /* C99 has no exclusive create: skip names that exist */
        if (f) { fclose(f); f = NULL; continue; }
        f = fopen(tmp, "wb");
        break;
#endif
    }
    if (faults) snprintf(faults->tmp_path, sizeof faults->tmp_path, "%s", tmp);
#if MHC__POSIX_IO
    if (fd < 0) { err = errno; goto fail; }
    created = 1;
    stage = "write";
    while (off < len) {
        size_t chunk = len - off;
        ssize_t wr;
        if (chunk > ((size_t)1 << 30)) chunk = (size_t)1 << 30;
        if (faults && faults->write_limit - off < chunk) {
            chunk = faults->write_limit > off ? faults->write_limit - off : 0;
            if (chunk == 0) { why = "simulated write failure (test hook)"; goto fail; }
        }
        wr = write(fd, buf + off, chunk);
        if (wr < 0) {
            if (errno == EINTR) continue;
            err = errno;
            goto fail;
        }
        if (wr == 0) { why = "write() wrote nothing"; goto fail; }
        off += (size_t)wr;
    }
    stage = "sync";
    if (faults && faults->fail_sync) { why = "simulated sync failure (test hook)"; goto fail; }
    if (fsync(fd) != 0) { err = errno; goto fail; }
    stage = "close";
    {
        int rc = close(fd);
        fd = -1;
        if (rc != 0) { err = errno; goto fail; }
    }
#else
    if (!f) { err = errno; goto fail; }
    created = 1;
    stage = "write";
    while (off < len) {
        size_t chunk = len - off, wr;
        if (chunk > ((size_t)1 << 30)) chunk = (size_t)1 << 30;
        if (faults && faults->write_limit - off < chunk) {
            chunk = faults->write_limit > off ? faults->write_limit - off : 0;
            if (chunk == 0) { why = "simulated write failure (test hook)"; goto fail; }
        }
        wr = fwrite(buf + off, 1, chunk, f);
        off += wr;
        if (wr != chunk) { err = errno; goto fail; }
    }
    stage = "sync";
    if (faults && faults->fail_sync) { why = "simulated sync failure (test hook)"; goto fail; }
    if (fflush(f) != 0) { err = errno; goto fail; }
    stage = "close";
    {
        int rc = fclose(f);
        f = NULL;
        if (rc != 0) { err = errno; goto fail; }
    }
#endif
    stage = "rename";
    if (faults && faults->fail_rename) { why = "simulated rename failure (test hook)"; goto fail; }
    if (rename(tmp, path) != 0) {
        err = errno;
#if !MHC__POSIX_IO
        /* platforms whose rename does not replace (Windows): not atomic there */
        if (remove(path) == 0 && rename(tmp, path) == 0) goto renamed;
#endif
        goto fail;
    }
#if !MHC__POSIX_IO
renamed:
#endif
#if MHC__POSIX_IO
    {   /* make the rename durable: fsync the directory (best effort) */
        const char *slash = strrchr(path, '/');
        int dfd;
        if (slash) {
            size_t dl = (size_t)(slash - path);
            memcpy(tmp, path, dl ? dl : 1);
            tmp[dl ? dl : 1] = 0;
        } else {
            strcpy(tmp, ".");
        }
        dfd = open(tmp, O_RDONLY);
        if (dfd >= 0) { (void)fsync(dfd); (void)close(dfd); }
    }
#endif
    MHC_FREE(tmp);
    return MHC_OK;
fail:
    {
        mhc_result res;
        if (!why) why = err ? strerror(err) : "unknown error";
#if MHC__POSIX_IO
        if (fd >= 0) (void)close(fd);
#else
        if (f) fclose(f);
#endif
        if (created) (void)remove(tmp);
        if (strcmp(stage, "create") == 0)
            res = mhc_fail(ctx, MHC_ERR_IO, "mhc_checkpoint_save: cannot create the temporary file '%s': %s; '%s' is "
                           "unchanged", tmp, why, path);
        else if (strcmp(stage, "rename") == 0)
            res = mhc_fail(ctx, MHC_ERR_IO, "mhc_checkpoint_save: cannot rename '%s' to '%s': %s; '%s' is unchanged",
                           tmp, path, why, path);
        else
            res = mhc_fail(ctx, MHC_ERR_IO, "mhc_checkpoint_save: cannot %s the temporary file '%s' (%zu of %zu bytes "
                           "written): %s; '%s' is unchanged", stage, tmp, off, len, why, path);
        MHC_FREE(tmp);
        return res;
    }
}

static mhc_result mhc__checkpoint_save_impl(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                            const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng,
                                            mhc__ckpt_faults *faults) {
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
    if (r == MHC_OK) r = mhc__write_atomic(ctx, path, buf, len, faults);
    MHC_FREE(buf);
    return r;
}

MHCDEF mhc_result mhc_checkpoint_save(mhc_ctx *ctx, const char *path, const void *config, size_t config_bytes,
                                      const mhc_params *p, const mhc_trainer *tr, const mhc_rng *rng) {
    return mhc__checkpoint_save_impl(ctx, path, config, config_bytes, p, tr, rng, NULL);
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
