/* tools/make_case.c - `mhc make-case`: a verification case with power.
 *
 *   mhc make-case --preset P --n N [--op layer|sinkhorn|head] [--T T] [--C C]
 *                 [--dtype float64|float32] [--seed S] [--min-power X] [--force] --out DIR
 *
 * It writes DIR/case.txt, the inputs (.npy, '<f8'; in a float32 case every value is a float32
 * value), DIR/expected/<output>.npy (computed in float64 from those inputs, as every golden vector)
 * and DIR/power.txt: for every convention slip a re-implementation commonly makes (one Sinkhorn
 * iteration more or fewer, the other orientation, the other Sinkhorn start, row- instead of
 * column-first, eps inside instead of outside the square root of the RMS or dropped, eps out of
 * the Sinkhorn divisions or dropped, the other eps rule, the other max shift, the per-stream
 * instead of the flat RMS, pre_eps 0, post_mult 1 instead of 2, the norm weight ignored, one
 * Newton-Schulz step more or fewer, the Kronecker factors reversed), the error that slip makes in
 * the worst tensor, as a multiple of `mhc compare`'s tolerance for the case's dtype:
 *
 *     err/tol = max over elements k of |slipped_k - expected_k| / (atol * max(1, max|expected|)
 *                                                                   + rtol * |expected_k|)
 *
 * (the rule of tools/compare.c; a NaN or Inf in the slipped outputs counts as infinitely far).
 * The slipped outputs are computed in float64 too, with the case's configuration changed in that
 * one knob. A slip that cannot change anything for this n (orientation, order, start, ... for
 * n = 1, where the residual matrix is 1 x 1; the per-stream RMS for one stream) is listed as
 * "n/a" with the reason and what it measured, and does not count.
 *
 * The inputs are built so that each slip shows: the tokens cycle through designs, each a direction
 * v of x (unit, orthogonal to the others where n*C allows) and a logit pattern u that fn maps it
 * to (fn = sum_d u_d v_d^T / sqrt(n C) + noise, so that the RMS-normalised token gives mix ~ u_d):
 *   generic    random logits: the orientation, the gates, the norm weight, the stream RMS;
 *   slow       a triangular residual pattern (0 on and above the diagonal, -L below), on which
 *              Sinkhorn converges like 1/k: the iteration count, the start, the order;
 *   dead col   one column of logits at -L (sums far below eps after exp): threshold vs zero vs add;
 *   dead row   the same for a row (the row-first order, the exp starts);
 *   eps col    one column at log(eps / (4 n)), the rest near 0 (a sum of about eps / 4, where s + eps,
 *   eps row    max(s, eps) and s differ most), and the same for a row;
 *   deep col   (the sinkhorn op) one column far below the rest, unevenly (-L - 15 |N(0,1)|), the
 *   deep row   rest N(0, 4): the clamp rule against add with a tiny eps (lucidrains' 1e-12);
 *   tiny       a token whose mean square is norm_eps (tiny2: norm_eps^2, so that its rms is
 *              norm_eps): eps inside/outside the square root, or dropped (in a float32 case the
 *              mean square stays >= 1e-30, so that a float32 implementation can square it);
 *   gated      stream 0 a thousand times larger, its pre gate at sigmoid(-40): pre_eps.
 * (The Sinkhorn designs only where the projection is a Sinkhorn one and n > 1; the head uses the
 * generic, tiny and gated ones, the sinkhorn op the logit designs; each sinkhorn-op token's logits
 * are then scaled by 1 + N(0, 0.05^2) and perturbed by N(0, 0.14^2), as a layer's mixing would.)
 * In a float32 case a draw counts only when mhc.h's own float32 computation meets its expected values
 * within half the tolerance (err/tol <= MC_FAIR = 0.5; power.txt says how close): the case must not
 * fail a correct float32 implementation.
 * Up to 48 draws (16 seeds, each with the strengths L = 25 g, g = 1, 0.6, 1.6) are tried until every slip
 * that applies reaches --min-power (default 100); the first such draw is written, else the best
 * (the largest minimum), with power.txt marking the weak slips and exit code 1.
 * Work: a draw runs the case nslips + 2 times; a case whose draw would take more than 5e10 flops
 * (about 6 T m n C + 30 iters T n^2 + ... per run, m the rows of fn) is refused before anything
 * runs, and a large one gets fewer draws (all of them at most 3e11 flops, about 2 minutes here).
 * Exit codes: 0 the case has the power asked for, 1 some slip stays under it (the case is still
 * written), 2 usage error, a bad preset / n, or an I/O error (nothing or an incomplete case). */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <dirent.h>
#include <unistd.h>
#include "mhc.h"
#include "tools/tool.h"
#include "tools/verify.h"

#define MC_PATH 4096
#define MC_MAX_SLIPS 24
#define MC_DESIGNS 11
#define MC_DRAWS 48
#define MC_WORK_DRAW 5e10   /* flops one draw may take (all its runs): about 20 s here */
#define MC_WORK_ALL 3e11    /* flops all draws may take (about 2 minutes): fewer draws for a large case */
#define MC_FAIR 0.5   /* a float32 case: mhc.h in float32 must meet expected/ within this err/tol */

enum { MC_GENERIC, MC_SLOW, MC_DEADCOL, MC_DEADROW, MC_EPSCOL, MC_EPSROW, MC_DEEPCOL, MC_DEEPROW, MC_TINY, MC_TINY2,
       MC_GATED };

/* The outputs, in the order of tool_verify_io's output pointers. */
enum { MO_LI, MO_HPRE, MO_HPOST, MO_HRES, MO_OUT, MO_DX, MO_DFN, MO_DSCALE, MO_DBASE, MO_DNW, MO_DF, MO_DLOGITS, MO_N };
static const char *const mc_out_names[MO_N] = {"layer_input", "h_pre", "h_post", "h_res", "out", "d_x", "d_fn",
                                               "d_scale", "d_base", "d_norm_weight", "d_f_out", "d_logits"};

typedef struct mc_slip {
    char name[96];
    mhc_hc_config cfg;
    int drop_nw;               /* run without the norm weight */
    const char *na;            /* NULL: the slip applies; else why it cannot show for this case */
    double power;              /* measured err/tol (HUGE_VAL: non-finite outputs) */
    int worst;                 /* the output (MO_*) where it is largest, -1 if none */
    char err[256];             /* a run that failed */
} mc_slip;

/* The arrays of one case: inputs and the outputs of one run. */
typedef struct mc_arrays {
    double *x, *fn, *scale, *base, *nw, *f_out, *d_out, *d_li, *logits;
    double *o[MO_N];
    size_t n_o[MO_N];
    int nd_o[MO_N], sh_o[MO_N][3];
} mc_arrays;

static double mc_z(double v) { return v == 0.0 ? MHC_ZERO : v; }

static int mc_is_sinkhorn(mhc_projection p) {
    return p == MHC_PROJ_SOFTMAX || p == MHC_PROJ_EXP || p == MHC_PROJ_LOG;
}

/* Every field of the resolved spec, explicit (so a slip changes exactly one). */
static mhc_hc_config mc_explicit(const mhc_hc_spec *s) {
    mhc_hc_config c;
    int k;
    memset(&c, 0, sizeof c);
    c.preset = s->preset;
    c.variant = s->variant;
    c.projection = s->projection;
    c.orient = s->orient;
    c.sinkhorn_iters = s->iters;
    c.sinkhorn_eps = mc_z(s->sinkhorn_eps);
    c.norm_eps = mc_z(s->norm_eps);
    c.pre_eps = mc_z(s->pre_eps);
    c.post_mult = mc_z(s->post_mult);
    if (s->projection == MHC_PROJ_KRON)
        for (k = 0; k < s->kron_count; k++) c.kron_factors[k] = s->kron_factors[k];
    c.ns_iters = s->ns_iters;
    c.norm_eps_mode = s->norm_eps_mode;
    c.norm_scope = s->norm_scope;
    c.sinkhorn_eps_mode = s->sinkhorn_eps_mode;
    c.sinkhorn_order = s->sinkhorn_order;
    c.exp_shift = s->projection == MHC_PROJ_EXP || s->projection == MHC_PROJ_LOG ? s->exp_shift : MHC_EXP_SHIFT_PRESET;
    return c;
}

#if defined(__GNUC__)
static mc_slip *mc_add(mc_slip *sl, int *count, const mhc_hc_config *base, const char *na, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
#endif
static mc_slip *mc_add(mc_slip *sl, int *count, const mhc_hc_config *base, const char *na, const char *fmt, ...) {
    mc_slip *p = &sl[*count];
    va_list ap;
    memset(p, 0, sizeof *p);
    p->cfg = *base;
    p->na = na;
    p->worst = -1;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    (*count)++;
    return p;
}

/* The slips that make sense for op and the resolved spec s (with_nw: the case has a norm weight). */
static int mc_slips(int op, const mhc_hc_spec *s, int with_nw, mc_slip *sl) {
    static const char *const one_by_one = "n = 1: the residual matrix is 1 x 1 (at most eps-sized changes)";
    mhc_hc_config b = mc_explicit(s);
    int count = 0, layer = op == TOOL_VERIFY_LAYER, gates = op != TOOL_VERIFY_SINKHORN;
    const char *na1 = s->n == 1 ? one_by_one : NULL;
    mc_slip *p;
    if (op != TOOL_VERIFY_HEAD && mc_is_sinkhorn(s->projection)) {
        const char *pn = mhc_projection_name(s->projection);
        p = mc_add(sl, &count, &b, na1, "sinkhorn_iters %d -> %d", s->iters, s->iters + 1);
        p->cfg.sinkhorn_iters = s->iters + 1;
        if (s->iters > 1) {
            p = mc_add(sl, &count, &b, na1, "sinkhorn_iters %d -> %d", s->iters, s->iters - 1);
            p->cfg.sinkhorn_iters = s->iters - 1;
        }
        p = mc_add(sl, &count, &b, na1, "projection %s -> %s (the other Sinkhorn start)", pn,
                   s->projection == MHC_PROJ_SOFTMAX ? "exp" : "softmax");
        p->cfg.projection = s->projection == MHC_PROJ_SOFTMAX ? MHC_PROJ_EXP : MHC_PROJ_SOFTMAX;
        p->cfg.exp_shift = MHC_EXP_SHIFT_PRESET;   /* dropped for softmax; the softmax presets' none for exp */
        p = mc_add(sl, &count, &b, na1, "sinkhorn_order %s -> %s", mhc_sinkhorn_order_name(s->sinkhorn_order),
                   s->sinkhorn_order == MHC_SK_ROW_FIRST ? "col_first" : "row_first");
        p->cfg.sinkhorn_order = s->sinkhorn_order == MHC_SK_ROW_FIRST ? MHC_SK_COL_FIRST : MHC_SK_ROW_FIRST;
        if (s->sinkhorn_eps > 0) {
            p = mc_add(sl, &count, &b, na1, "sinkhorn_eps %g -> 0 (no eps anywhere)", s->sinkhorn_eps);
            p->cfg.sinkhorn_eps = MHC_ZERO;
            if (s->sinkhorn_eps_mode == MHC_SK_EPS_ADD) {
                p = mc_add(sl, &count, &b, na1, "sinkhorn_eps_mode add -> threshold (eps out of the divisions: v/s)");
                p->cfg.sinkhorn_eps_mode = MHC_SK_EPS_THRESHOLD;
                p = mc_add(sl, &count, &b, na1, "sinkhorn_eps_mode add -> clamp (v/max(s, eps))");
                p->cfg.sinkhorn_eps_mode = MHC_SK_EPS_CLAMP;
            } else {
                p = mc_add(sl, &count, &b, na1, "sinkhorn_eps_mode %s -> add (v/(s + eps))",
                           mhc_sinkhorn_eps_mode_name(s->sinkhorn_eps_mode));
                p->cfg.sinkhorn_eps_mode = MHC_SK_EPS_ADD;
                if (s->sinkhorn_eps_mode == MHC_SK_EPS_ZERO || s->sinkhorn_eps_mode == MHC_SK_EPS_THRESHOLD) {
                    int z = s->sinkhorn_eps_mode == MHC_SK_EPS_ZERO;
                    p = mc_add(sl, &count, &b, na1, "sinkhorn_eps_mode %s -> %s", z ? "zero" : "threshold",
                               z ? "threshold" : "zero");
                    p->cfg.sinkhorn_eps_mode = z ? MHC_SK_EPS_THRESHOLD : MHC_SK_EPS_ZERO;
                }
            }
        } else {
            p = mc_add(sl, &count, &b, na1, "sinkhorn_eps 0 -> 1e-06 (added to the sums)");
            p->cfg.sinkhorn_eps = 1e-6;
            p->cfg.sinkhorn_eps_mode = MHC_SK_EPS_ADD;
        }
        if (s->projection != MHC_PROJ_SOFTMAX) {
            static const mhc_exp_shift all[3] = {MHC_EXP_SHIFT_NONE, MHC_EXP_SHIFT_ROW_MAX, MHC_EXP_SHIFT_COL_MAX};
            int k;
            for (k = 0; k < 3; k++)
                if (all[k] != s->exp_shift) {
                    /* exp(z - max) over columns (rows) scales each column (row) of M: with no eps
                       the first step, over the same axis, divides that scale away exactly */
                    static const char *const inv = "with sinkhorn_eps 0 the first step, over the shift's axis, "
                                                   "divides the shift away exactly";
                    mhc_exp_shift from = s->exp_shift, to = all[k];
                    mhc_exp_shift first = s->sinkhorn_order == MHC_SK_ROW_FIRST ? MHC_EXP_SHIFT_ROW_MAX
                                                                                 : MHC_EXP_SHIFT_COL_MAX;
                    int invariant = s->sinkhorn_eps == 0 && (from == MHC_EXP_SHIFT_NONE || from == first) &&
                                    (to == MHC_EXP_SHIFT_NONE || to == first);
                    p = mc_add(sl, &count, &b, na1 ? na1 : invariant ? inv : NULL, "exp_shift %s -> %s",
                               mhc_exp_shift_name(from), mhc_exp_shift_name(to));
                    p->cfg.exp_shift = to;
                }
        }
    }
    if (op != TOOL_VERIFY_HEAD && s->projection == MHC_PROJ_ORTHO) {
        const char *na = s->n == 1 ? "n = 1: X = z / (|z| + 1e-7) is +-1 to 1e-7, a fixed point of the step" : NULL;
        p = mc_add(sl, &count, &b, na, "ns_iters %d -> %d", s->ns_iters, s->ns_iters + 1);
        p->cfg.ns_iters = s->ns_iters + 1;
        if (s->ns_iters > 1) {
            p = mc_add(sl, &count, &b, na, "ns_iters %d -> %d", s->ns_iters, s->ns_iters - 1);
            p->cfg.ns_iters = s->ns_iters - 1;
        }
    }
    if (op != TOOL_VERIFY_HEAD && s->projection == MHC_PROJ_KRON && s->kron_count > 1) {
        int k, K = s->kron_count, pal = 1;
        char from[64], to[64];
        size_t lf = 0, lt = 0;
        for (k = 0; k < K; k++) {
            if (s->kron_factors[k] != s->kron_factors[K - 1 - k]) pal = 0;
            lf += (size_t)snprintf(from + lf, sizeof from - lf, k ? ",%d" : "%d", s->kron_factors[k]);
            lt += (size_t)snprintf(to + lt, sizeof to - lt, k ? ",%d" : "%d", s->kron_factors[K - 1 - k]);
        }
        if (!pal) {   /* a palindrome reversed is itself: nothing to slip */
            p = mc_add(sl, &count, &b, NULL, "kron_factors %s -> %s (the factors reversed)", from, to);
            for (k = 0; k < K; k++) p->cfg.kron_factors[k] = s->kron_factors[K - 1 - k];
        }
    }
    if (layer && s->projection != MHC_PROJ_PERM && s->projection != MHC_PROJ_KRON) {
        p = mc_add(sl, &count, &b, s->n == 1 ? "n = 1: A is 1 x 1, A = A^T" : NULL, "orient %s -> %s (A^T for A)",
                   mhc_orient_name(s->orient), s->orient == MHC_ORIENT_H ? "comb_t" : "h");
        p->cfg.orient = s->orient == MHC_ORIENT_H ? MHC_ORIENT_COMB_T : MHC_ORIENT_H;
    }
    if (gates) {
        p = mc_add(sl, &count, &b, NULL, "norm_eps_mode %s -> %s", mhc_norm_eps_mode_name(s->norm_eps_mode),
                   s->norm_eps_mode == MHC_NORM_EPS_INSIDE ? "outside" : "inside");
        p->cfg.norm_eps_mode = s->norm_eps_mode == MHC_NORM_EPS_INSIDE ? MHC_NORM_EPS_OUTSIDE : MHC_NORM_EPS_INSIDE;
        if (s->norm_eps > 0) {
            p = mc_add(sl, &count, &b, NULL, "norm_eps %g -> 0", s->norm_eps);
            p->cfg.norm_eps = MHC_ZERO;
        }
        p = mc_add(sl, &count, &b, s->n == 1 ? "n = 1: one stream, its RMS is the token's" : NULL,
                   "norm_scope %s -> %s", mhc_norm_scope_name(s->norm_scope),
                   s->norm_scope == MHC_NORM_SCOPE_FLAT ? "stream" : "flat");
        p->cfg.norm_scope = s->norm_scope == MHC_NORM_SCOPE_FLAT ? MHC_NORM_SCOPE_STREAM : MHC_NORM_SCOPE_FLAT;
        if (with_nw) {
            p = mc_add(sl, &count, &b, NULL, "norm_weight ignored");
            p->drop_nw = 1;
        }
        if (s->pre_eps > 0) {
            p = mc_add(sl, &count, &b, NULL, "pre_eps %g -> 0", s->pre_eps);
            p->cfg.pre_eps = MHC_ZERO;
        } else {
            p = mc_add(sl, &count, &b, NULL, "pre_eps 0 -> 1e-06");
            p->cfg.pre_eps = 1e-6;
        }
    }
    if (layer) {
        p = mc_add(sl, &count, &b, NULL, "post_mult %g -> %g", s->post_mult, s->post_mult == 1.0 ? 2.0 : 1.0);
        p->cfg.post_mult = s->post_mult == 1.0 ? 2.0 : 1.0;
    }
    return count;
}

/* ---- the inputs ---- */

typedef struct mc_shape {
    int op, n, T, C, f32, m, nres, fs0, fs1, ns, nb, nw, perm;
} mc_shape;

static double mc_round(const mc_shape *sh, double v) { return sh->f32 ? (double)(float)v : v; }

static void mc_normal(mhc_rng *r, double *a, size_t count, double std) {
    size_t i;
    for (i = 0; i < count; i++) a[i] = std * mhc_rng_normal(r);
}

/* The designs a case uses (tools of their own for each slip; see the header comment). */
static int mc_designs(const mc_shape *sh, const mhc_hc_spec *s, int *list) {
    int k = 0, sk = mc_is_sinkhorn(s->projection) && sh->n > 1;
    list[k++] = MC_GENERIC;
    if (sh->op != TOOL_VERIFY_HEAD && sk) {
        list[k++] = MC_SLOW;
        list[k++] = MC_DEADCOL;
        list[k++] = MC_DEADROW;
        list[k++] = MC_EPSCOL;
        list[k++] = MC_EPSROW;
        if (sh->op == TOOL_VERIFY_SINKHORN) {
            list[k++] = MC_DEEPCOL;
            list[k++] = MC_DEEPROW;
        }
    }
    if (sh->op != TOOL_VERIFY_SINKHORN) {
        list[k++] = MC_TINY;
        list[k++] = MC_TINY2;
        list[k++] = MC_GATED;
    }
    return k;
}

/* The residual logit pattern of a design (n x n, or a flat row for perm and kron). */
static void mc_res_pattern(mhc_rng *r, const mc_shape *sh, const mhc_hc_spec *s, int d, double g, double *z) {
    int i, j, n = sh->n;
    double L = 25.0 * g, e = s->sinkhorn_eps > 0 ? s->sinkhorn_eps : 1e-6, lo = log(e / (4.0 * n));
    if (!mc_is_sinkhorn(s->projection) || d == MC_GENERIC || d >= MC_TINY) {
        mc_normal(r, z, (size_t)sh->nres, 1.5 * g);
        return;
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) {
            double v = mhc_rng_normal(r);
            if (d == MC_SLOW) v = j >= i ? 0.3 * v : -L;
            else if (d == MC_DEADCOL) v = j == 0 ? -L : v;
            else if (d == MC_DEADROW) v = i == 0 ? -L : v;
            else if (d == MC_EPSCOL) v = j == 0 ? lo + 0.1 * v : 0.1 * v;   /* the column sums to ~eps / 4 */
            else if (d == MC_DEEPCOL) v = j == 0 ? -L - 15.0 * fabs(v) : 2.0 * v;   /* uneven, far below */
            else if (d == MC_DEEPROW) v = i == 0 ? -L - 15.0 * fabs(v) : 2.0 * v;
            else v = i == 0 ? lo + 0.1 * v : 0.1 * v;                       /* MC_EPSROW: the row */
            z[i * n + j] = v;
        }
}

/* Unit directions v_k in R^D, one per design of the list (orthonormal by Gram-Schmidt where
   D allows); the gated design's lies in stream 0's C coordinates. */
static void mc_directions(mhc_rng *r, const mc_shape *sh, const int *list, int nd, double *v) {
    int D = sh->n * sh->C, d, e, k, gated = -1;
    for (d = 0; d < nd; d++)
        if (list[d] == MC_GATED) gated = d;
    for (d = 0; d < nd; d++) {   /* the gated one first, the others made orthogonal to it and to each other */
        int dd = gated < 0 ? d : d == 0 ? gated : d <= gated ? d - 1 : d;
        double *vd = v + (size_t)dd * D, norm = 0;
        for (k = 0; k < D; k++) vd[k] = list[dd] == MC_GATED && k >= sh->C ? 0.0 : mhc_rng_normal(r);
        if (D >= nd)
            for (e = 0; e < d; e++) {
                int ee = gated < 0 ? e : e == 0 ? gated : e <= gated ? e - 1 : e;
                const double *ve = v + (size_t)ee * D;
                double dot = 0;
                for (k = 0; k < D; k++) dot += vd[k] * ve[k];
                for (k = 0; k < D; k++) vd[k] -= dot * ve[k];
            }
        for (k = 0; k < D; k++) norm += vd[k] * vd[k];
        norm = sqrt(norm);
        for (k = 0; k < D; k++) vd[k] = norm > 0 ? vd[k] / norm : (k == dd % D ? 1.0 : 0.0);
    }
}

/* The mean square of a tiny token: norm_eps (TINY: the inside rule's scale) or norm_eps^2
   (TINY2: rms = norm_eps, the outside rule's), at least 1e-30 in a float32 case (a float32
   implementation must be able to square it). */
static double mc_tiny_ms(const mc_shape *sh, const mhc_hc_spec *s, int d) {
    double e = s->norm_eps > 0 ? s->norm_eps : 1e-6, ms = d == MC_TINY ? e : e * e;
    return sh->f32 && ms < 1e-30 ? 1e-30 : ms;
}

/* Fill the inputs of one draw; 0, or -1 out of memory. */
static int mc_fill(const mc_shape *sh, const mhc_hc_spec *s, uint64_t seed, double g, mc_arrays *a) {
    mhc_rng r;
    int T = sh->T, n = sh->n, C = sh->C, D = n * C, t, k, d, i, list[MC_DESIGNS], nd = mc_designs(sh, s, list);
    double *v, *u, sq = sqrt((double)D);
    mhc_rng_seed(&r, seed);
    if (sh->op == TOOL_VERIFY_SINKHORN) {
        for (t = 0; t < T; t++) {   /* the designs with the perturbations a layer's mixing adds (fn noise, scale) */
            double *z = a->logits + (size_t)t * sh->nres, sc = 1.0 + 0.05 * mhc_rng_normal(&r);
            mc_res_pattern(&r, sh, s, list[t % nd], g, z);
            for (k = 0; k < sh->nres; k++) z[k] = sc * z[k] + 0.14 * mhc_rng_normal(&r);
        }
        mc_normal(&r, a->d_out, (size_t)T * n * n, 1.0);
        for (k = 0; k < T * sh->nres; k++) a->logits[k] = mc_round(sh, a->logits[k]);
        for (k = 0; k < T * n * n; k++) a->d_out[k] = mc_round(sh, a->d_out[k]);
        return 0;
    }
    v = (double *)malloc(sizeof(double) * (size_t)nd * D);
    u = (double *)malloc(sizeof(double) * (size_t)nd * sh->m);
    if (!v || !u) { free(v); free(u); return -1; }
    mc_directions(&r, sh, list, nd, v);
    for (d = 0; d < nd; d++) {
        double *ud = u + (size_t)d * sh->m;
        mc_normal(&r, ud, (size_t)(sh->op == TOOL_VERIFY_HEAD ? n : 2 * n), 1.0 * g);
        if (list[d] == MC_GATED) ud[0] = -40.0;
        if (sh->op == TOOL_VERIFY_LAYER) mc_res_pattern(&r, sh, s, list[d], g, ud + 2 * n);
    }
    /* fn = sum_d u_d v_d^T / sqrt(D) + noise */
    mc_normal(&r, a->fn, (size_t)sh->m * D, 0.1 / sq);
    for (d = 0; d < nd; d++)
        for (i = 0; i < sh->m; i++)
            for (k = 0; k < D; k++) a->fn[(size_t)i * D + k] += u[(size_t)d * sh->m + i] * v[(size_t)d * D + k] / sq;
    for (k = 0; k < sh->ns; k++) a->scale[k] = 1.0 + 0.02 * mhc_rng_normal(&r);
    mc_normal(&r, a->base, (size_t)sh->nb, 0.1);
    if (a->nw)
        for (k = 0; k < sh->nw; k++) a->nw[k] = 1.0 + 0.3 * mhc_rng_normal(&r);
    for (t = 0; t < T; t++) {
        double *xt = a->x + (size_t)t * D, amp = 1.0, noise = 0.05;
        int dk = t % nd, dd = list[dk];
        if (dd == MC_TINY || dd == MC_TINY2) {   /* mean(x^2) of the token */
            amp = sqrt((double)D * mc_tiny_ms(sh, s, dd));
            noise = 0.05 * amp;
        } else if (dd == MC_GATED) {
            amp = 1000.0;
        }
        for (k = 0; k < D; k++) xt[k] = amp * v[(size_t)dk * D + k] + noise * mhc_rng_normal(&r);
    }
    if (a->f_out) mc_normal(&r, a->f_out, (size_t)T * C, 1.0);
    mc_normal(&r, a->d_out, (size_t)T * (sh->op == TOOL_VERIFY_HEAD ? C : D), 1.0);
    if (a->d_li) mc_normal(&r, a->d_li, (size_t)T * C, 1.0);
    /* a float32 case holds float32 values: round every input */
#define MC_R(p, cnt) do { if (p) for (k = 0; k < (int)(cnt); k++) (p)[k] = mc_round(sh, (p)[k]); } while (0)
    MC_R(a->x, T * D); MC_R(a->fn, sh->m * D); MC_R(a->scale, sh->ns); MC_R(a->base, sh->nb); MC_R(a->nw, sh->nw);
    MC_R(a->f_out, T * C); MC_R(a->d_out, T * (sh->op == TOOL_VERIFY_HEAD ? C : D)); MC_R(a->d_li, T * C);
#undef MC_R
    free(v);
    free(u);
    return 0;
}

static void mc_io(const mc_shape *sh, const mhc_hc_config *cfg, const mc_arrays *a, int drop_nw, double *const *o,
                  tool_verify_io *io) {
    memset(io, 0, sizeof *io);
    io->op = sh->op;
    io->cfg = *cfg;
    io->n = sh->n; io->T = sh->T; io->C = sh->C;
    io->x = a->x; io->fn = a->fn; io->scale = a->scale; io->base = a->base; io->norm_weight = drop_nw ? NULL : a->nw;
    io->f_out = a->f_out; io->d_out = a->d_out; io->d_layer_input = a->d_li; io->logits = a->logits;
    io->layer_input = o[MO_LI]; io->h_pre = o[MO_HPRE]; io->h_post = o[MO_HPOST]; io->h_res = o[MO_HRES];
    io->out = o[MO_OUT]; io->d_x = o[MO_DX]; io->d_fn = o[MO_DFN]; io->d_scale = o[MO_DSCALE]; io->d_base = o[MO_DBASE];
    io->d_norm_weight = drop_nw ? NULL : o[MO_DNW]; io->d_f_out = o[MO_DF]; io->d_logits = o[MO_DLOGITS];
}

static int mc_finite(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

/* err/tol of got against exp (count elements) by `mhc compare`'s rule; a NaN or Inf counts as
   infinitely far. */
static double mc_errtol(const double *got, const double *exp, size_t count, double rtol, double atol) {
    tool_compare_stats st;
    tool_compare_tensor(got, exp, count, rtol, atol, &st);
    return st.nonfinite ? HUGE_VAL : st.worst;
}

/* One draw: the expected outputs into a->o, every slip's power, and (float32 cases) *fair, the
   err/tol of mhc.h's own float32 computation against the expected values (0 for float64 cases).
   Returns the minimum over the slips that apply (HUGE_VAL if none applies), -1 with err when the
   correct run fails or is not finite. */
static double mc_draw(const mc_shape *sh, const mhc_hc_config *cfg, mc_arrays *a, double **scratch, mc_slip *sl,
                      int nslips, double rtol, double atol, double *fair, char *err, size_t cap) {
    tool_verify_io io;
    double minp = HUGE_VAL;
    int k, j;
    size_t e;
    *fair = 0;
    mc_io(sh, cfg, a, 0, a->o, &io);
    if (tool_verify_run_f64(&io, err, cap) != 0) return -1;
    for (k = 0; k < MO_N; k++)
        for (e = 0; a->o[k] && e < a->n_o[k]; e++)
            if (!mc_finite(a->o[k][e])) {
                snprintf(err, cap, "the expected %s has a non-finite element %zu", mc_out_names[k], e);
                return -1;
            }
    if (sh->f32) {   /* a correct float32 implementation must pass the case: mhc.h's does, with margin */
        mc_io(sh, cfg, a, 0, scratch, &io);
        if (tool_verify_run_f32(&io, err, cap) != 0) return -1;
        for (k = 0; k < MO_N; k++)
            if (a->o[k]) {
                double q = mc_errtol(scratch[k], a->o[k], a->n_o[k], rtol, atol);
                if (q > *fair) *fair = q;
            }
    }
    for (j = 0; j < nslips; j++) {
        mc_slip *p = &sl[j];
        mc_io(sh, &p->cfg, a, p->drop_nw, scratch, &io);
        p->power = 0;
        p->worst = -1;
        p->err[0] = 0;
        if (tool_verify_run_f64(&io, p->err, sizeof p->err) != 0) {
            p->power = -1;
        } else {
            for (k = 0; k < MO_N; k++) {
                double q;
                if (!a->o[k] || (p->drop_nw && k == MO_DNW)) continue;
                q = mc_errtol(scratch[k], a->o[k], a->n_o[k], rtol, atol);
                if (q > p->power) { p->power = q; p->worst = k; }
            }
        }
        if (!p->na && p->power < minp) minp = p->power;
    }
    return minp;
}

/* ---- writing ---- */

static int mc_write(const char *dir, const char *name, int nd, const int *shape, const double *data, char *err,
                    size_t cap) {
    char path[MC_PATH];
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if ((size_t)snprintf(path, sizeof path, "%s/%s.npy", dir, name) >= sizeof path) {
        snprintf(err, cap, "%s/%s.npy: path too long", dir, name);
        return 2;
    }
    if (mhc_npy_write(&ctx, path, nd, shape, data) != MHC_OK) {
        snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
        return 2;
    }
    return 0;
}

static void mc_power_str(char *buf, size_t cap, double p) {
    if (p < 0) snprintf(buf, cap, "-");
    else if (p == HUGE_VAL) snprintf(buf, cap, "inf");
    else snprintf(buf, cap, "%.3g", p);
}

/* power.txt (and the same table to report when given). */
static int mc_write_power(const char *dir, const mc_shape *sh, const char *preset, const mc_slip *sl, int nslips,
                          double minp, double min_power, double rtol, double atol, double fair, FILE *report,
                          char *err, size_t cap) {
    char path[MC_PATH], num[32];
    FILE *f;
    int j, pass;
    snprintf(path, sizeof path, "%s/power.txt", dir);
    f = fopen(path, "w");
    if (!f) {
        snprintf(err, cap, "%s: cannot create: %s", path, strerror(errno));
        return 2;
    }
    for (pass = 0; pass < 2; pass++) {
        FILE *o = pass ? report : f;
        int weakest = -1;
        if (!o) continue;
        fprintf(o, "# power of this case (mhc make-case --op %s --preset %s --n %d --T %d --C %d --dtype %s): each\n"
                   "# convention slip, run in float64 on these inputs, against expected/, as err/tol of `mhc compare`\n"
                   "# (rtol %g, atol %g); a slip passes at >= %g\n",
                sh->op == TOOL_VERIFY_LAYER ? "layer" : sh->op == TOOL_VERIFY_HEAD ? "head" : "sinkhorn", preset, sh->n,
                sh->T, sh->C, sh->f32 ? "float32" : "float64", rtol, atol, min_power);
        if (sh->f32)
            fprintf(o, "# fair: mhc.h computing in float32 meets expected/ at err/tol %.3g (a draw is kept only at <= %g)\n",
                    fair, MC_FAIR);
        fprintf(o, "%-62s %10s  %-14s %s\n", "# slip", "err/tol", "tensor", "status");
        for (j = 0; j < nslips; j++) {
            const mc_slip *p = &sl[j];
            mc_power_str(num, sizeof num, p->power);
            if (p->power < 0)
                fprintf(o, "%-62s %10s  %-14s %s: %s\n", p->name, num, "-", p->na ? "n/a" : "FAILED", p->err);
            else
                fprintf(o, "%-62s %10s  %-14s %s%s%s\n", p->name, num, p->worst >= 0 ? mc_out_names[p->worst] : "-",
                        p->na ? "n/a (" : p->power >= min_power ? "ok" : "WEAK", p->na ? p->na : "", p->na ? ")" : "");
            if (!p->na && (weakest < 0 || p->power < sl[weakest].power)) weakest = j;
        }
        mc_power_str(num, sizeof num, minp == HUGE_VAL ? -1 : minp);
        if (weakest < 0) fprintf(o, "minimum %s: no slip applies to this case\n", "-");
        else fprintf(o, "minimum %s over %d slips (%s)\n", num, nslips, sl[weakest].name);
    }
    if (fclose(f) != 0) {
        snprintf(err, cap, "%s: write failed: %s", path, strerror(errno));
        return 2;
    }
    return 0;
}

/* ---- the command ---- */

int tool_make_case_op(const char *name) {
    return !name ? -1 : strcmp(name, "layer") == 0 ? TOOL_VERIFY_LAYER : strcmp(name, "sinkhorn") == 0
         ? TOOL_VERIFY_SINKHORN : strcmp(name, "head") == 0 ? TOOL_VERIFY_HEAD : -1;
}

int tool_make_case_args(int argc, char **argv, tool_make_case_opts *o, char *err, size_t cap) {
    int i;
    memset(o, 0, sizeof *o);
    o->op = TOOL_VERIFY_LAYER;
    o->T = 18;
    o->C = 8;
    o->seed = 1;
    o->min_power = 100;
    o->n = -1;
    if (cap) err[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) return 1;
        if (strcmp(a, "--force") == 0) { o->force = 1; continue; }
        if (a[0] != '-' || a[1] != '-') {
            snprintf(err, cap, "unexpected argument '%.200s' (options only; the case goes to --out DIR)", a);
            return 2;
        }
        if (!v) {
            snprintf(err, cap, "%.100s needs a value", a);
            return 2;
        }
        i++;
        if (strcmp(a, "--op") == 0) {
            if ((o->op = tool_make_case_op(v)) < 0) {
                snprintf(err, cap, "--op '%.100s': expected layer, sinkhorn or head", v);
                return 2;
            }
        } else if (strcmp(a, "--preset") == 0) {
            o->preset = v;
        } else if (strcmp(a, "--out") == 0) {
            o->out = v;
        } else if (strcmp(a, "--dtype") == 0) {
            if (strcmp(v, "float64") == 0) o->f32 = 0;
            else if (strcmp(v, "float32") == 0) o->f32 = 1;
            else { snprintf(err, cap, "--dtype '%.100s': expected float64 or float32", v); return 2; }
        } else if (strcmp(a, "--n") == 0 || strcmp(a, "--T") == 0 || strcmp(a, "--C") == 0) {
            long x;
            int lim = a[2] == 'n' ? TOOL_MAKE_CASE_N_MAX : TOOL_MAKE_CASE_TC_MAX;
            errno = 0;
            x = strtol(v, &end, 10);
            if (end == v || *end || errno || x < 1 || x > lim) {
                snprintf(err, cap, "%s '%.100s': expected an integer in 1..%d", a, v, lim);
                return 2;
            }
            if (a[2] == 'n') o->n = (int)x;
            else if (a[2] == 'T') o->T = (int)x;
            else o->C = (int)x;
        } else if (strcmp(a, "--seed") == 0) {
            unsigned long long x;
            errno = 0;
            x = strtoull(v, &end, 10);
            if (end == v || *end || errno || v[0] == '-') {
                snprintf(err, cap, "--seed '%.100s': expected a non-negative integer", v);
                return 2;
            }
            o->seed = x;
        } else if (strcmp(a, "--min-power") == 0) {
            double x;
            x = strtod(v, &end);
            if (end == v || *end || !mc_finite(x) || x < 0) {
                snprintf(err, cap, "--min-power '%.100s': expected a finite number >= 0", v);
                return 2;
            }
            o->min_power = x;
        } else {
            snprintf(err, cap, "unknown option '%.200s'", a);
            return 2;
        }
    }
    if (!o->preset || o->n < 0 || !o->out) {
        snprintf(err, cap, "missing %s", !o->preset ? "--preset P" : o->n < 0 ? "--n N" : "--out DIR");
        return 2;
    }
    return 0;
}

/* Is dir absent or an empty directory? (1 yes, 0 no; -1 not a directory) */
static int mc_dir_empty(const char *dir) {
    struct stat st;
    DIR *d;
    struct dirent *e;
    int empty = 1;
    if (stat(dir, &st) != 0) return 1;
    if (!S_ISDIR(st.st_mode)) return -1;
    if (!(d = opendir(dir))) return 0;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) { empty = 0; break; }
    closedir(d);
    return empty;
}

/* --force: remove what a previous case left in dir (case.txt, power.txt, every *.npy file of dir and
   dir/expected), so that no stale input or expected tensor of another op stays behind. One of those
   names that is not a regular file (a symbolic link: writing would follow it) is refused before
   anything is removed. 0, or -1 with err. */
static int mc_clean(const char *dir, char *err, size_t cap) {
    const char *sub[2] = {"", "/expected"};
    int i, pass;
    {
        char d[MC_PATH];
        struct stat st;
        snprintf(d, sizeof d, "%s/expected", dir);
        if (lstat(d, &st) == 0 && !S_ISDIR(st.st_mode)) {
            snprintf(err, cap, "--force: '%.300s' is not a directory (%s); nothing was replaced", d,
                     S_ISLNK(st.st_mode) ? "a symbolic link" : "a file");
            return -1;
        }
    }
    for (pass = 0; pass < 2; pass++)   /* 0: check every name, 1: remove */
        for (i = 0; i < 2; i++) {
            char d[MC_PATH], path[MC_PATH];
            DIR *dd;
            struct dirent *e;
            struct stat st;
            snprintf(d, sizeof d, "%s%s", dir, sub[i]);
            if (!(dd = opendir(d))) continue;
            while ((e = readdir(dd)) != NULL) {
                size_t len = strlen(e->d_name);
                int known = (len > 4 && strcmp(e->d_name + len - 4, ".npy") == 0) ||
                            (i == 0 && (strcmp(e->d_name, "case.txt") == 0 || strcmp(e->d_name, "power.txt") == 0));
                if (!known || (size_t)snprintf(path, sizeof path, "%s/%s", d, e->d_name) >= sizeof path) continue;
                if (lstat(path, &st) != 0) continue;
                if (!S_ISREG(st.st_mode)) {   /* a link or a FIFO there would be written through: refuse */
                    snprintf(err, cap, "--force: '%.300s' is %s, not a regular file; nothing was replaced (remove it "
                             "first)", path, S_ISLNK(st.st_mode) ? "a symbolic link" : S_ISDIR(st.st_mode)
                             ? "a directory" : "a device, FIFO or socket");
                    closedir(dd);
                    return -1;
                }
                if (pass == 1 && unlink(path) != 0) {
                    snprintf(err, cap, "--force: cannot remove the old '%.300s': %s", path, strerror(errno));
                    closedir(dd);
                    return -1;
                }
            }
            closedir(dd);
        }
    return 0;
}

int tool_make_case(const tool_make_case_opts *o, FILE *report, char *err, size_t cap) {
    mhc_ctx ctx;
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mc_shape sh;
    mc_arrays a, best;
    mc_slip sl[MC_MAX_SLIPS], best_sl[MC_MAX_SLIPS];
    double *scratch[MO_N], rtol = o->f32 ? TOOL_COMPARE_RTOL_F32 : TOOL_COMPARE_RTOL_F64;
    double atol = o->f32 ? TOOL_COMPARE_ATOL_F32 : TOOL_COMPARE_ATOL_F64, bestp = -2, g[3] = {1.0, 0.6, 1.6};
    double fair = 0, best_fair = 0;
    int unfair = 0;
    int rc = 2, k, nslips, draw, draws = MC_DRAWS, fs[2] = {0, 0}, ns = 0, nb = 0, nw = 0, head;
    double total;
    char dir_exp[MC_PATH], path[MC_PATH];
    FILE *f;
    memset(&a, 0, sizeof a);
    memset(&best, 0, sizeof best);
    memset(scratch, 0, sizeof scratch);
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    if (!o->preset || !o->out || o->op < TOOL_VERIFY_LAYER || o->op > TOOL_VERIFY_HEAD) {
        snprintf(err, cap, "make-case: no preset, no output directory or an unknown op");
        return 2;
    }
    if (o->n < 1 || o->n > TOOL_MAKE_CASE_N_MAX || o->T < 1 || o->T > TOOL_MAKE_CASE_TC_MAX || o->C < 1 ||
        o->C > TOOL_MAKE_CASE_TC_MAX) {
        snprintf(err, cap, "n = %d, T = %d, C = %d: n must be in 1..%d, T and C in 1..%d", o->n, o->T, o->C,
                 TOOL_MAKE_CASE_N_MAX, TOOL_MAKE_CASE_TC_MAX);
        return 2;
    }
    if (!mc_finite(o->min_power) || o->min_power < 0) {
        snprintf(err, cap, "min_power = %g: expected a finite number >= 0", o->min_power);
        return 2;
    }
    if (mhc_hc_preset_parse(&ctx, o->preset, &cfg.preset) != MHC_OK) {
        snprintf(err, cap, "--preset: %s", mhc_ctx_message(&ctx));
        return 2;
    }
    if (mhc_hc_resolve(&ctx, &cfg, o->n, &s) != MHC_OK) {
        snprintf(err, cap, "--preset %s --n %d: %s", o->preset, o->n, mhc_ctx_message(&ctx));
        return 2;
    }
    head = o->op == TOOL_VERIFY_HEAD;
    memset(&sh, 0, sizeof sh);
    sh.op = o->op; sh.n = o->n; sh.T = o->T; sh.C = o->C; sh.f32 = o->f32;
    sh.nres = s.nres;
    sh.perm = s.projection == MHC_PROJ_PERM || s.projection == MHC_PROJ_KRON;
    if (o->op != TOOL_VERIFY_SINKHORN) {
        if (mhc_hc_param_shapes(&ctx, &s, o->C, head, fs, &ns, &nb, &nw) != MHC_OK) {
            snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
            return 2;
        }
        sh.m = fs[0]; sh.fs0 = fs[0]; sh.fs1 = fs[1]; sh.ns = ns; sh.nb = nb; sh.nw = nw;
    }
    /* every array of a draw (inputs, expected and the slipped outputs, the best draw's copy) */
    total = 3.0 * ((double)o->T * o->n * o->C * 4 + (double)sh.m * o->n * o->C * 2 + (double)o->T * sh.nres * 2 +
                   (double)o->T * o->n * o->n * 3) * 8.0;
    if (total > (double)((size_t)1 << 30)) {
        snprintf(err, cap, "the case would need about %.3g bytes (3 copies of 8 B x (4 T n C + 2 m n C + 2 T nres + "
                 "3 T n^2), m = %d rows of fn, nres = %d), more than make-case's limit of 1 GiB; choose a smaller T or C",
                 total, sh.m, sh.nres);
        return 2;
    }
    k = mc_dir_empty(o->out);
    if (k < 0) {
        snprintf(err, cap, "--out '%.300s' exists and is not a directory", o->out);
        return 2;
    }
    if (k == 0 && !o->force) {
        snprintf(err, cap, "--out '%.300s' is not empty; give an empty or new directory (or --force to overwrite the "
                 "case files in it)", o->out);
        return 2;
    }
    nslips = mc_slips(o->op, &s, o->op != TOOL_VERIFY_SINKHORN && s.variant != MHC_VARIANT_NONE, sl);
    /* the work, checked before anything runs: each draw runs the case nslips + 2 times (the expected
       values, float32's fairness, every slip); a draw may take MC_WORK_DRAW flops, all of them MC_WORK_ALL */
    {
        double T = o->T, n = o->n, D = (double)o->n * o->C, iters = s.iters > 0 ? s.iters : 1;
        double run = 6.0 * T * sh.m * D + 30.0 * iters * T * n * n + 8.0 * T * sh.nres * n + 8.0 * T * n * n * o->C;
        double work = run * (nslips + 2);
        if (work > MC_WORK_DRAW) {
            snprintf(err, cap, "the case needs about %.3g flops per draw ((%d slips + 2) runs of about 6 T m n C + 30 "
                     "iters T n^2 + 8 T nres n + 8 T n^2 C flops, m = %d rows of fn), more than make-case's limit of %g "
                     "per draw; make-case is for small cases: choose a smaller T or C", work, nslips, sh.m,
                     MC_WORK_DRAW);
            return 2;
        }
        draws = (int)(MC_WORK_ALL / work);
        if (draws > MC_DRAWS) draws = MC_DRAWS;
        if (draws < 1) draws = 1;
    }
    /* arrays */
    {
        size_t T = (size_t)o->T, n = (size_t)o->n, C = (size_t)o->C, D = n * C;
        int failed = 0;
#define MC_A(p, cnt) do { (p) = (double *)calloc((cnt) != 0 ? (size_t)(cnt) : 1, sizeof(double)); if (!(p)) failed = 1; } while (0)
        if (o->op == TOOL_VERIFY_SINKHORN) {
            MC_A(a.logits, T * (size_t)sh.nres);
            MC_A(a.d_out, T * n * n);
            a.n_o[MO_OUT] = T * n * n; a.nd_o[MO_OUT] = 3; a.sh_o[MO_OUT][0] = o->T; a.sh_o[MO_OUT][1] = o->n;
            a.sh_o[MO_OUT][2] = o->n;
            a.n_o[MO_DLOGITS] = T * (size_t)sh.nres;
            if (sh.perm) { a.nd_o[MO_DLOGITS] = 2; a.sh_o[MO_DLOGITS][0] = o->T; a.sh_o[MO_DLOGITS][1] = sh.nres; }
            else { a.nd_o[MO_DLOGITS] = 3; a.sh_o[MO_DLOGITS][0] = o->T; a.sh_o[MO_DLOGITS][1] = o->n; a.sh_o[MO_DLOGITS][2] = o->n; }
        } else {
            MC_A(a.x, T * D);
            MC_A(a.fn, (size_t)fs[0] * (size_t)fs[1]);
            MC_A(a.scale, (size_t)ns);
            MC_A(a.base, (size_t)nb);
            MC_A(a.nw, (size_t)nw);
            MC_A(a.d_out, T * (head ? C : D));
            if (!head) { MC_A(a.f_out, T * C); MC_A(a.d_li, T * C); }
#define MC_O(k, d0, d1, d2, nd) (a.n_o[k] = (size_t)(d0) * (size_t)(d1) * (size_t)(d2), a.nd_o[k] = (nd), \
                                 a.sh_o[k][0] = (d0), a.sh_o[k][1] = (d1), a.sh_o[k][2] = (d2))
            if (head) {
                MC_O(MO_OUT, o->T, o->C, 1, 2);
                MC_O(MO_HPRE, o->T, o->n, 1, 2);
            } else {
                MC_O(MO_LI, o->T, o->C, 1, 2);
                MC_O(MO_HPRE, o->T, o->n, 1, 2);
                MC_O(MO_HPOST, o->T, o->n, 1, 2);
                MC_O(MO_HRES, o->T, o->n, o->n, 3);
                MC_O(MO_OUT, o->T, o->n, o->C, 3);
                MC_O(MO_DF, o->T, o->C, 1, 2);
            }
            MC_O(MO_DX, o->T, o->n, o->C, 3);
            MC_O(MO_DFN, fs[0], fs[1], 1, 2);
            MC_O(MO_DSCALE, ns, 1, 1, 1);
            MC_O(MO_DBASE, nb, 1, 1, 1);
            MC_O(MO_DNW, nw, 1, 1, 1);
#undef MC_O
        }
        for (k = 0; k < MO_N; k++)
            if (a.nd_o[k]) { MC_A(a.o[k], a.n_o[k]); MC_A(scratch[k], a.n_o[k]); MC_A(best.o[k], a.n_o[k]); }
        MC_A(best.x, o->op == TOOL_VERIFY_SINKHORN ? 1 : T * D);
        MC_A(best.fn, (size_t)fs[0] * (size_t)fs[1]);
        MC_A(best.scale, (size_t)ns);
        MC_A(best.base, (size_t)nb);
        MC_A(best.nw, (size_t)nw);
        MC_A(best.d_out, T * (o->op == TOOL_VERIFY_SINKHORN ? n * n : head ? C : D));
        MC_A(best.f_out, T * C);
        MC_A(best.d_li, T * C);
        MC_A(best.logits, T * (size_t)sh.nres);
#undef MC_A
        if (failed) { snprintf(err, cap, "out of memory"); goto done; }
    }
    /* draws: seed, seed + 1, ... over the strengths; keep the first with the power asked, else the best */
    for (draw = 0; draw < draws; draw++) {
        double p;
        char msg[256];
        uint64_t seed = (uint64_t)o->seed * 1000003u + (uint64_t)(draw / 3);
        if (mc_fill(&sh, &s, seed, g[draw % 3], &a) != 0) { snprintf(err, cap, "out of memory"); goto done; }
        p = mc_draw(&sh, &cfg, &a, scratch, sl, nslips, rtol, atol, &fair, msg, sizeof msg);
        if (p < 0 && draw == 0 && strstr(msg, "non-finite") == NULL) {
            snprintf(err, cap, "--preset %s --n %d: %s", o->preset, o->n, msg);
            goto done;
        }
        if (p >= 0 && fair > MC_FAIR) {   /* unfair to float32 implementations: not a candidate */
            unfair++;
            continue;
        }
        if (p > bestp) {
            best_fair = fair;
            size_t T = (size_t)o->T, n = (size_t)o->n, C = (size_t)o->C, D = n * C;
            bestp = p;
            memcpy(best_sl, sl, sizeof sl);
#define MC_C(f, cnt) do { if (a.f) memcpy(best.f, a.f, (cnt) * sizeof(double)); } while (0)
            MC_C(x, T * D); MC_C(fn, (size_t)fs[0] * (size_t)fs[1]); MC_C(scale, (size_t)ns); MC_C(base, (size_t)nb);
            MC_C(nw, (size_t)nw); MC_C(d_out, T * (o->op == TOOL_VERIFY_SINKHORN ? n * n : head ? C : D));
            MC_C(f_out, T * C); MC_C(d_li, T * C); MC_C(logits, T * (size_t)sh.nres);
#undef MC_C
            for (k = 0; k < MO_N; k++)
                if (a.o[k]) memcpy(best.o[k], a.o[k], a.n_o[k] * sizeof(double));
        }
        if (p >= o->min_power) break;
    }
    if (bestp < 0) {
        if (unfair)
            snprintf(err, cap, "--preset %s --n %d: in %d of %d draws mhc.h's own float32 computation missed the "
                     "expected values by more than %g x the tolerance (unfair to a float32 implementation), the rest "
                     "were not finite; nothing written (try another --seed or --dtype float64)", o->preset, o->n,
                     unfair, draws, MC_FAIR);
        else
            snprintf(err, cap, "--preset %s --n %d: no draw gave finite expected outputs", o->preset, o->n);
        goto done;
    }
    /* write the case (with --force, into a directory cleared of the previous case's files) */
    if (o->force && mc_clean(o->out, err, cap) != 0) goto done;
    if (tool_mkdir_p(o->out) != 0) {
        snprintf(err, cap, "cannot create the directory '%.300s': %s", o->out, strerror(errno));
        goto done;
    }
    if ((size_t)snprintf(dir_exp, sizeof dir_exp, "%s/expected", o->out) >= sizeof dir_exp ||
        (size_t)snprintf(path, sizeof path, "%s/case.txt", o->out) >= sizeof path) {
        snprintf(err, cap, "--out '%.300s': path too long", o->out);
        goto done;
    }
    if (tool_mkdir_p(dir_exp) != 0) {
        snprintf(err, cap, "cannot create the directory '%.300s': %s", dir_exp, strerror(errno));
        goto done;
    }
    if (!(f = fopen(path, "w"))) {
        snprintf(err, cap, "%s: cannot create: %s", path, strerror(errno));
        goto done;
    }
    fprintf(f, "# written by mhc make-case --op %s --preset %s --n %d --T %d --C %d --dtype %s --seed %llu\n"
               "# (mhc.h %s); power.txt lists the slips these inputs expose\n",
            o->op == TOOL_VERIFY_LAYER ? "layer" : head ? "head" : "sinkhorn", o->preset, o->n, o->T, o->C,
            o->f32 ? "float32" : "float64", o->seed, mhc_version());
    fprintf(f, "op = %s\npreset = %s\nn = %d\ndtype = %s\n", o->op == TOOL_VERIFY_LAYER ? "layer" : head ? "head" : "sinkhorn",
            mhc_hc_preset_name(s.preset), o->n, o->f32 ? "float32" : "float64");
    if (fclose(f) != 0) {
        snprintf(err, cap, "%s: write failed: %s", path, strerror(errno));
        goto done;
    }
    {
        int x3[3] = {o->T, o->n, o->C}, tc[2] = {o->T, o->C}, tnn[3] = {o->T, o->n, o->n}, tr[2] = {o->T, sh.nres};
        int r = 0;
        if (o->op == TOOL_VERIFY_SINKHORN) {
            r = r ? r : mc_write(o->out, "logits", sh.perm ? 2 : 3, sh.perm ? tr : tnn, best.logits, err, cap);
            r = r ? r : mc_write(o->out, "d_out", 3, tnn, best.d_out, err, cap);
        } else {
            r = r ? r : mc_write(o->out, "x", 3, x3, best.x, err, cap);
            r = r ? r : mc_write(o->out, "fn", 2, fs, best.fn, err, cap);
            r = r ? r : mc_write(o->out, "scale", 1, &ns, best.scale, err, cap);
            r = r ? r : mc_write(o->out, "base", 1, &nb, best.base, err, cap);
            r = r ? r : mc_write(o->out, "norm_weight", 1, &nw, best.nw, err, cap);
            r = r ? r : mc_write(o->out, "d_out", head ? 2 : 3, head ? tc : x3, best.d_out, err, cap);
            if (!head) {
                r = r ? r : mc_write(o->out, "f_out", 2, tc, best.f_out, err, cap);
                r = r ? r : mc_write(o->out, "d_layer_input", 2, tc, best.d_li, err, cap);
            }
        }
        for (k = 0; k < MO_N && !r; k++)
            if (a.nd_o[k]) r = mc_write(dir_exp, mc_out_names[k], a.nd_o[k], a.sh_o[k], best.o[k], err, cap);
        if (r) goto done;
    }
    if (mc_write_power(o->out, &sh, mhc_hc_preset_name(s.preset), best_sl, nslips, bestp, o->min_power, rtol, atol,
                       best_fair, report, err, cap))
        goto done;
    if (bestp >= o->min_power) {
        rc = 0;
        snprintf(err, cap, "wrote the case to %s (power.txt: every slip that applies >= %g x the tolerance); check an "
                 "implementation with: mhc verify %s --out OUT && mhc compare OUT %s/expected", o->out, o->min_power,
                 o->out, o->out);
    } else {
        rc = 1;
        snprintf(err, cap, "wrote the case to %s, but some slip stays under %g x the tolerance (WEAK in %s/power.txt); "
                 "try another --seed, a larger --T or --C", o->out, o->min_power, o->out);
    }
done:
    free(a.x); free(a.fn); free(a.scale); free(a.base); free(a.nw); free(a.f_out); free(a.d_out); free(a.d_li);
    free(a.logits);
    free(best.x); free(best.fn); free(best.scale); free(best.base); free(best.nw); free(best.f_out); free(best.d_out);
    free(best.d_li); free(best.logits);
    for (k = 0; k < MO_N; k++) { free(a.o[k]); free(scratch[k]); free(best.o[k]); }
    return rc;
}

static void mc_usage(FILE *f) {
    fprintf(f,
            "usage: mhc make-case --preset P --n N [--op layer|sinkhorn|head] [--T T] [--C C]\n"
            "                     [--dtype float64|float32] [--seed S] [--min-power X] [--force] --out DIR\n"
            "  Writes a verification case (DIR/case.txt, inputs, DIR/expected/) whose inputs make every\n"
            "  common convention slip (Sinkhorn iterations +-1, the other orientation, start, order, eps\n"
            "  rule or max shift, eps inside/outside the RMS or dropped, the per-stream RMS, pre_eps 0,\n"
            "  post_mult 1 vs 2, the norm weight ignored, ...) move some output or gradient by at least\n"
            "  X (default 100) times `mhc compare`'s tolerance for the dtype, and DIR/power.txt, the table\n"
            "  of every slip with the err/tol it produces. Defaults: --op layer --T 18 --C 8 --dtype\n"
            "  float64 --seed 1. DIR must be new or empty (--force: replace the case in it: its case.txt,\n"
            "  power.txt and .npy files are removed first).\n"
            "  Exit code 0: the case has that power; 1: some slip stays under it (the case and power.txt\n"
            "  are still written, the weak slips marked); 2: usage, preset/n or I/O error. Limits, checked\n"
            "  first: 1 GiB of arrays, 5e10 flops per draw (fewer draws for large cases): it is for small cases.\n");
}

int tool_cmd_make_case(int argc, char **argv) {
    tool_make_case_opts o;
    char err[1024];
    int rc = tool_make_case_args(argc, argv, &o, err, sizeof err);
    if (rc == 1) {
        mc_usage(stdout);
        return 0;
    }
    if (rc == 2) {
        fprintf(stderr, "make-case: %s\n", err);
        mc_usage(stderr);
        return 2;
    }
    rc = tool_make_case(&o, stdout, err, sizeof err);
    fprintf(rc ? stderr : stdout, "make-case: %s\n", err);
    return rc;
}
