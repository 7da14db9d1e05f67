/* tools/verify.c - `mhc verify CASE_DIR --out OUT_DIR`: run one golden-vector case
 * (tests/vectors/<case>/, format in tests/vectors/README.md) through the library and write
 * every output as OUT_DIR/<name>.npy ('<f8'); `mhc compare OUT_DIR CASE_DIR/expected` then
 * checks them.
 *
 * CASE_DIR/case.txt holds `key = value` lines (blank lines and # comments allowed):
 *   op (layer | sinkhorn | head), preset (dsv4 | tilekernels | paper | lite | kromhc | ortho |
 *   megatron | liger | lucidrains | mhc_cu), n, dtype (float64 | float32: the precision the
 *   computation runs in), and optional overrides
 *   sinkhorn_iters, sinkhorn_eps, norm_eps, pre_eps, post_mult, orient (h | comb_t),
 *   projection (softmax | exp | log | perm | kron | ortho), variant (mhc | lite | kromhc | ortho |
 *   hc | none; layer only), kron_factors (a comma-separated list, e.g. `kron_factors = 2,2`; each
 *   1..8, product n), ns_iters (the Newton-Schulz iterations of ortho, 1..1000), norm_eps_mode
 *   (inside | outside), norm_scope (flat | stream), sinkhorn_eps_mode (add | clamp | threshold |
 *   zero), sinkhorn_order (col_first | row_first), exp_shift (none | row_max | col_max).
 *   A value of 0 in the file is an actual 0 (it becomes MHC_ZERO in mhc_hc_config).
 * Inputs are '<f4' or '<f8' .npy files (read as double, then converted to the case's dtype).
 * A bad case -- a missing or unreadable file, a wrong shape or dtype, NaN or Inf in an input,
 * in a float32 case a finite value beyond float32's range (|x| > FLT_MAX: it would become Inf),
 * an unknown or repeated key, a bad value -- exits 2 with a message naming the file and the
 * problem. Exit codes: 0 success, 2 bad case, I/O or usage error.
 *
 * Limits (checked before allocating): case.txt at most TOOL_VERIFY_CASE_MAX (1 MiB); the memory of
 * a case, counted as
 *     8 B x (input elements + output elements) + R x (input + output elements + T (n^2 + n))
 * (R = 4 or 8, the dtype's size; an input is counted from its file's size, at most 2 x the file,
 * before it is read) at most TOOL_VERIFY_MEMORY_MAX (4 GiB), plus the library's own scratch, which
 * mhc.h bounds by mhc_ctx.scratch_max (1 GiB: e.g. n = 40 with 100000 Sinkhorn iterations is
 * refused there, naming the formula). */
#include <errno.h>
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include "mhc.h"
#include "tools/tool.h"
#include "tools/verify.h"

#define VF_PATH 4096
#define TOOL_VERIFY_CASE_MAX ((size_t)1 << 20)
#define TOOL_VERIFY_MEMORY_MAX ((size_t)-1 > 0xffffffffu ? (size_t)4 << 30 : (size_t)1 << 30)

enum { VF_OP, VF_PRESET, VF_N, VF_DTYPE, VF_ITERS, VF_SKEPS, VF_NORMEPS, VF_PREEPS, VF_POSTMULT, VF_ORIENT,
       VF_PROJ, VF_VARIANT, VF_KRON, VF_NSITERS, VF_NORM_EPS_MODE, VF_NORM_SCOPE, VF_SK_EPS_MODE, VF_SK_ORDER,
       VF_EXP_SHIFT, VF_NKEYS };
static const char *const vf_keys[VF_NKEYS] = {"op", "preset", "n", "dtype", "sinkhorn_iters", "sinkhorn_eps",
                                              "norm_eps", "pre_eps", "post_mult", "orient", "projection", "variant",
                                              "kron_factors", "ns_iters", "norm_eps_mode", "norm_scope",
                                              "sinkhorn_eps_mode", "sinkhorn_order", "exp_shift"};

typedef struct vf_case {
    int op, n, f32;
    mhc_hc_config cfg;
} vf_case;

static int vf_finite(double v) {   /* by the bit pattern: -ffast-math safe */
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

static int vf_isnan(double v) {    /* exponent all ones and a nonzero mantissa */
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return !vf_finite(v) && (u & 0xfffffffffffffull) != 0;
}

static char *vf_trim(char *s) {
    char *e;
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r')) *--e = 0;
    return s;
}

/* A non-negative finite number; 0 becomes MHC_ZERO (an actual zero). */
static int vf_number(const char *v, double *out) {
    char *end;
    double d;
    if (!*v) return 0;
    errno = 0;
    d = strtod(v, &end);
    if (*end || errno == ERANGE || !vf_finite(d) || d < 0) return 0;
    *out = d == 0.0 ? MHC_ZERO : d;
    return 1;
}

static int vf_int(const char *v, int lo, int hi, int *out) {
    char *end;
    long l;
    if (!*v) return 0;
    errno = 0;
    l = strtol(v, &end, 10);
    if (*end || errno == ERANGE || l < lo || l > hi) return 0;
    *out = (int)l;
    return 1;
}

/* "2,2,3": 1 to MHC_KRON_MAX_FACTORS integers in 1..MHC_LITE_MAX_N separated by commas (spaces
   around them allowed) into out[] (the rest 0). v is modified. */
static int vf_int_list(char *v, int *out) {
    int k = 0;
    char *p = v;
    for (k = 0; k < MHC_KRON_MAX_FACTORS; k++) out[k] = 0;
    k = 0;
    for (;;) {
        char *comma = strchr(p, ',');
        if (comma) *comma = 0;
        if (k == MHC_KRON_MAX_FACTORS || !vf_int(vf_trim(p), 1, MHC_LITE_MAX_N, &out[k])) return 0;
        k++;
        if (!comma) return 1;
        p = comma + 1;
    }
}

/* Parse the text of a case.txt into c: buf holds len bytes and a terminating NUL (buf[len] == 0)
   and is modified (lines are cut in place); path names it in messages. 0 on success, else 2
   with a message. */
static int vf_parse_text(char *buf, size_t len, const char *path, vf_case *c, char *err, size_t cap) {
    mhc_ctx ctx;
    char *p, *line;
    int seen[VF_NKEYS], lineno = 0, k;
    mhc_ctx_init(&ctx);
    memset(c, 0, sizeof *c);
    memset(seen, 0, sizeof seen);
    if (memchr(buf, 0, len)) {
        snprintf(err, cap, "%s: contains a NUL byte; not a text file", path);
        return 2;
    }
    for (p = (char *)buf; p; ) {
        char *nl = strchr(p, '\n'), *eq, *key, *val, *hash;
        line = p;
        if (nl) { *nl = 0; p = nl + 1; } else p = NULL;
        lineno++;
        if ((hash = strchr(line, '#')) != NULL) *hash = 0;
        line = vf_trim(line);
        if (!*line) continue;
        eq = strchr(line, '=');
        if (!eq) {
            snprintf(err, cap, "%s:%d: expected 'key = value', got '%.60s'", path, lineno, line);
            goto fail;
        }
        *eq = 0;
        key = vf_trim(line);
        val = vf_trim(eq + 1);
        for (k = 0; k < VF_NKEYS; k++)
            if (strcmp(key, vf_keys[k]) == 0) break;
        if (k == VF_NKEYS) {
            snprintf(err, cap, "%s:%d: unknown key '%.60s' (expected op, preset, n, dtype, sinkhorn_iters, sinkhorn_eps, "
                     "norm_eps, pre_eps, post_mult, orient, projection, variant, kron_factors, ns_iters, "
                     "norm_eps_mode, norm_scope, sinkhorn_eps_mode, sinkhorn_order or exp_shift)", path, lineno, key);
            goto fail;
        }
        if (seen[k]) {
            snprintf(err, cap, "%s:%d: key '%s' given twice (first on line %d)", path, lineno, key, seen[k]);
            goto fail;
        }
        seen[k] = lineno;
        switch (k) {
        case VF_OP:
            if (strcmp(val, "layer") == 0) c->op = TOOL_VERIFY_LAYER;
            else if (strcmp(val, "sinkhorn") == 0) c->op = TOOL_VERIFY_SINKHORN;
            else if (strcmp(val, "head") == 0) c->op = TOOL_VERIFY_HEAD;
            else {
                snprintf(err, cap, "%s:%d: unknown op '%.60s' (expected layer, sinkhorn or head)", path, lineno, val);
                goto fail;
            }
            break;
        case VF_DTYPE:
            if (strcmp(val, "float64") == 0) c->f32 = 0;
            else if (strcmp(val, "float32") == 0) c->f32 = 1;
            else {
                snprintf(err, cap, "%s:%d: unknown dtype '%.60s' (expected float64 or float32)", path, lineno, val);
                goto fail;
            }
            break;
        case VF_N:
            if (!vf_int(val, 1, 1024, &c->n)) {
                snprintf(err, cap, "%s:%d: n = '%.60s' is not an integer in 1..1024", path, lineno, val);
                goto fail;
            }
            break;
        case VF_ITERS:
            if (!vf_int(val, 1, 100000, &c->cfg.sinkhorn_iters)) {
                snprintf(err, cap, "%s:%d: sinkhorn_iters = '%.60s' is not an integer in 1..100000", path, lineno, val);
                goto fail;
            }
            break;
        case VF_NSITERS:
            if (!vf_int(val, 1, MHC_NS_MAX_ITERS, &c->cfg.ns_iters)) {
                snprintf(err, cap, "%s:%d: ns_iters = '%.60s' is not an integer in 1..%d", path, lineno, val,
                         MHC_NS_MAX_ITERS);
                goto fail;
            }
            break;
        case VF_KRON: {
            char copy[256];
            snprintf(copy, sizeof copy, "%s", val);
            if (strlen(val) >= sizeof copy || !vf_int_list(copy, c->cfg.kron_factors)) {
                snprintf(err, cap, "%s:%d: kron_factors = '%.60s' is not a list of 1 to %d integers in 1..%d separated by "
                         "commas (e.g. 2,2)", path, lineno, val, MHC_KRON_MAX_FACTORS, MHC_LITE_MAX_N);
                goto fail;
            }
            break;
        }
        case VF_SKEPS: case VF_NORMEPS: case VF_PREEPS: case VF_POSTMULT: {
            double *dst = k == VF_SKEPS ? &c->cfg.sinkhorn_eps : k == VF_NORMEPS ? &c->cfg.norm_eps
                        : k == VF_PREEPS ? &c->cfg.pre_eps : &c->cfg.post_mult;
            if (!vf_number(val, dst)) {
                snprintf(err, cap, "%s:%d: %s = '%.60s' is not a finite number >= 0", path, lineno, key, val);
                goto fail;
            }
            break;
        }
        default: {
            mhc_result r;
            if (k == VF_PRESET) r = mhc_hc_preset_parse(&ctx, val, &c->cfg.preset);
            else if (k == VF_ORIENT) r = mhc_orient_parse(&ctx, val, &c->cfg.orient);
            else if (k == VF_PROJ) r = mhc_projection_parse(&ctx, val, &c->cfg.projection);
            else if (k == VF_NORM_EPS_MODE) r = mhc_norm_eps_mode_parse(&ctx, val, &c->cfg.norm_eps_mode);
            else if (k == VF_NORM_SCOPE) r = mhc_norm_scope_parse(&ctx, val, &c->cfg.norm_scope);
            else if (k == VF_SK_EPS_MODE) r = mhc_sinkhorn_eps_mode_parse(&ctx, val, &c->cfg.sinkhorn_eps_mode);
            else if (k == VF_SK_ORDER) r = mhc_sinkhorn_order_parse(&ctx, val, &c->cfg.sinkhorn_order);
            else if (k == VF_EXP_SHIFT) r = mhc_exp_shift_parse(&ctx, val, &c->cfg.exp_shift);
            else r = mhc_hc_variant_parse(&ctx, val, &c->cfg.variant);
            if (r != MHC_OK) {
                snprintf(err, cap, "%s:%d: %s", path, lineno, mhc_ctx_message(&ctx));
                goto fail;
            }
        }
        }
    }
    for (k = 0; k < 4; k++)
        if (!seen[k]) {
            snprintf(err, cap, "%s: the key '%s' is missing (op, preset, n and dtype are required)", path, vf_keys[k]);
            return 2;
        }
    if (seen[VF_VARIANT] && c->op != TOOL_VERIFY_LAYER) {
        snprintf(err, cap, "%s:%d: variant applies to op = layer only", path, seen[VF_VARIANT]);
        return 2;
    }
    return 0;
fail:
    return 2;
}

/* Read and parse the file case.txt at path. */
static int vf_parse(const char *path, vf_case *c, char *err, size_t cap) {
    mhc_ctx ctx;
    void *buf = NULL;
    size_t len = 0;
    int rc;
    mhc_ctx_init(&ctx);
    memset(c, 0, sizeof *c);
    if (mhc_read_file_max(&ctx, path, TOOL_VERIFY_CASE_MAX, &buf, &len) != MHC_OK) {   /* buf[len] == 0 */
        snprintf(err, cap, "%s: cannot read the case file (%s)", path, mhc_ctx_message(&ctx));
        return 2;
    }
    rc = vf_parse_text((char *)buf, len, path, c, err, cap);
    free(buf);
    return rc;
}

int tool_verify_parse_case(const char *text, size_t len, const char *name, tool_verify_case_txt *out, char *err,
                          size_t cap) {
    vf_case c;
    char *buf;
    int rc;
    if (!name) name = "case.txt";
    if (!out || !err || cap < 1) return 2;
    memset(out, 0, sizeof *out);
    err[0] = 0;
    if (!text && len > 0) { snprintf(err, cap, "%s: no text", name); return 2; }
    if (len == (size_t)-1) { snprintf(err, cap, "%s: too large", name); return 2; }
    buf = (char *)malloc(len + 1);
    if (!buf) { snprintf(err, cap, "%s: out of memory (%zu bytes)", name, len); return 2; }
    if (len) memcpy(buf, text, len);
    buf[len] = 0;
    rc = vf_parse_text(buf, len, name, &c, err, cap);
    free(buf);
    if (rc) return rc;
    out->op = c.op; out->n = c.n; out->f32 = c.f32;
    out->cfg = c.cfg;
    return 0;
}

static int vf_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static void vf_shape_str(char *buf, size_t cap, int ndim, const int *shape, const char *const *labels) {
    size_t len = 0;
    int d;
    len += (size_t)snprintf(buf, cap, "[");
    for (d = 0; d < ndim && len < cap; d++) {
        if (shape[d] < 0 && labels && labels[d]) len += (size_t)snprintf(buf + len, cap - len, d ? ",%s" : "%s", labels[d]);
        else len += (size_t)snprintf(buf + len, cap - len, d ? ",%d" : "%d", shape[d]);
    }
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

/* The memory a case may use (TOOL_VERIFY_MEMORY_MAX) and what it has been given so far. */
typedef struct vf_budget {
    size_t used, rbytes;   /* bytes counted so far; the computing precision's size (4 or 8) */
} vf_budget;

/* Count bytes more against the budget; 0 (with a message naming what) when it would exceed it. */
static int vf_spend(vf_budget *b, double bytes, const char *what, char *err, size_t cap) {
    if ((double)b->used + bytes > (double)TOOL_VERIFY_MEMORY_MAX) {
        snprintf(err, cap, "%s: the case needs %.4g bytes (8 B x (input + output elements) + %zu B x (input + output "
                 "elements + T (n^2 + n))), more than the verifier's limit of %zu bytes; nothing more was read",
                 what, (double)b->used + bytes, b->rbytes, (size_t)TOOL_VERIFY_MEMORY_MAX);
        return 0;
    }
    b->used += (size_t)bytes;
    return 1;
}

/* Read dir/name.npy into a, check its shape (entries < 0 match anything) and that every value
   is finite (and, in a float32 case (f32), within float32's range). Before reading, the file is
   counted against the budget: as double at most 2 x its size, plus its copy in the computing
   precision. An absent optional file leaves a->data NULL. 0 on success, else 2 with a message. */
static int vf_load(const char *dir, const char *name, int required, int ndim, const int *shape,
                   const char *const *labels, const char *why, mhc_npy *a, char *err, size_t cap, int f32,
                   vf_budget *bud) {
    char path[VF_PATH], want[128], got[128];
    mhc_ctx ctx;
    size_t i;
    int d, ok;
    struct stat st;
    memset(a, 0, sizeof *a);
    mhc_ctx_init(&ctx);
    if ((size_t)snprintf(path, sizeof path, "%s/%s.npy", dir, name) >= sizeof path) {
        snprintf(err, cap, "%s/%s.npy: path too long", dir, name);
        return 2;
    }
    if (!vf_exists(path)) {
        if (!required) return 0;
        snprintf(err, cap, "%s: missing (a required input)", path);
        return 2;
    }
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) &&
        !vf_spend(bud, (double)st.st_size * (2.0 + (double)bud->rbytes / 4.0), path, err, cap))
        return 2;
    if (mhc_npy_read(&ctx, path, a) != MHC_OK) {
        snprintf(err, cap, "%s: %s", path, mhc_ctx_message(&ctx));
        return 2;
    }
    ok = a->ndim == ndim;
    for (d = 0; ok && d < ndim; d++)
        if (shape[d] >= 0 ? a->shape[d] != shape[d] : a->shape[d] < 1) ok = 0;
    if (!ok) {
        vf_shape_str(want, sizeof want, ndim, shape, labels);
        vf_shape_str(got, sizeof got, a->ndim, a->shape, NULL);
        snprintf(err, cap, "%s: shape %s, expected %s%s%s", path, got, want, why ? " " : "", why ? why : "");
        mhc_npy_free(a);
        return 2;
    }
    for (i = 0; i < a->size; i++)
        if (!vf_finite(a->data[i])) {
            size_t rest = i;
            int idx[MHC_MAX_DIMS];
            for (d = a->ndim - 1; d >= 0; d--) { idx[d] = (int)(rest % (size_t)a->shape[d]); rest /= (size_t)a->shape[d]; }
            vf_shape_str(got, sizeof got, a->ndim, idx, NULL);
            snprintf(err, cap, "%s: element %s (flat index %zu) is %s; inputs must be finite", path, got, i,
                     vf_isnan(a->data[i]) ? "NaN" : a->data[i] > 0 ? "+Inf" : "-Inf");
            mhc_npy_free(a);
            return 2;
        }
    if (f32)   /* a finite double beyond float32's range would become Inf in the computation */
        for (i = 0; i < a->size; i++)
            if (a->data[i] > FLT_MAX || a->data[i] < -FLT_MAX) {
                size_t rest = i;
                int idx[MHC_MAX_DIMS];
                for (d = a->ndim - 1; d >= 0; d--) { idx[d] = (int)(rest % (size_t)a->shape[d]); rest /= (size_t)a->shape[d]; }
                vf_shape_str(got, sizeof got, a->ndim, idx, NULL);
                snprintf(err, cap, "%s: element %s (flat index %zu) is %.17g, beyond float32's range (|x| <= %.9g); "
                         "this case computes in float32 (dtype = float32), where it would become Inf", path, got, i,
                         a->data[i], (double)FLT_MAX);
                mhc_npy_free(a);
                return 2;
            }
    return 0;
}

int tool_mkdir_p(const char *path) {
    char buf[VF_PATH];
    size_t len = strlen(path), i;
    struct stat st;
    if (len == 0 || len >= sizeof buf) return -1;
    memcpy(buf, path, len + 1);
    for (i = 1; i <= len; i++) {
        if (buf[i] == '/' || buf[i] == 0) {
            char c = buf[i];
            buf[i] = 0;
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return -1;
            buf[i] = c;
        }
    }
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

/* The inputs, by name. */
enum { VI_X, VI_FN, VI_SCALE, VI_BASE, VI_NW, VI_FOUT, VI_DOUT, VI_DLI, VI_LOGITS, VI_N };
static const char *const vf_in_names[VI_N] = {"x", "fn", "scale", "base", "norm_weight", "f_out", "d_out",
                                              "d_layer_input", "logits"};
/* The outputs, by name (the order of tool_verify_io's output pointers). */
enum { VO_LI, VO_HPRE, VO_HPOST, VO_HRES, VO_OUT, VO_DX, VO_DFN, VO_DSCALE, VO_DBASE, VO_DNW, VO_DF, VO_DLOGITS, VO_N };
static const char *const vf_out_names[VO_N] = {"layer_input", "h_pre", "h_post", "h_res", "out", "d_x", "d_fn",
                                               "d_scale", "d_base", "d_norm_weight", "d_f_out", "d_logits"};

int tool_verify_case(const char *case_dir, const char *out_dir, char *err, size_t cap) {
    static const char *const lab_x[3] = {"T", NULL, "C"};
    static const char *const lab_t[3] = {"T", NULL, NULL};
    char path[VF_PATH], why[160];
    vf_case c;
    mhc_hc_spec s;
    mhc_ctx ctx;
    mhc_npy in[VI_N];
    double *outp[VO_N];
    int oshape[VO_N][3], ondim[VO_N];
    tool_verify_io io;
    int rc = 2, k, T = 0, C = 0, n, fs[2] = {0, 0}, ns = 0, nb = 0, nw = 0, sh[3];
    size_t nres = 0;
    vf_budget bud;
    double out_elems = 0;
    memset(in, 0, sizeof in);
    memset(outp, 0, sizeof outp);
    memset(ondim, 0, sizeof ondim);
    mhc_ctx_init(&ctx);
    if (!case_dir || !out_dir) { snprintf(err, cap, "no case or output directory"); return 2; }
    if ((size_t)snprintf(path, sizeof path, "%s/case.txt", case_dir) >= sizeof path) {
        snprintf(err, cap, "%s: path too long", case_dir);
        return 2;
    }
    if (vf_parse(path, &c, err, cap)) return 2;
    if (mhc_hc_resolve(&ctx, &c.cfg, c.n, &s) != MHC_OK) {
        snprintf(err, cap, "%s: %s", path, mhc_ctx_message(&ctx));
        return 2;
    }
    if (c.f32 && (s.pre_eps > FLT_MAX || s.post_mult > FLT_MAX)) {   /* they scale the gates stored in float32 */
        snprintf(err, cap, "%s: %s = %g is beyond float32's range (at most %.9g); this case computes in float32 (dtype "
                 "= float32)", path, s.pre_eps > FLT_MAX ? "pre_eps" : "post_mult",
                 s.pre_eps > FLT_MAX ? s.pre_eps : s.post_mult, (double)FLT_MAX);
        return 2;
    }
    bud.used = 0;
    bud.rbytes = c.f32 ? 4 : 8;
    n = c.n;
    /* ---- inputs ---- */
    if (c.op == TOOL_VERIFY_SINKHORN) {
        /* perm and kron take a flat row of logits per token: n! and sum_k a_k! */
        int perm = s.projection == MHC_PROJ_PERM || s.projection == MHC_PROJ_KRON;
        nres = (size_t)s.nres;
        sh[0] = -1; sh[1] = perm ? (int)nres : n; sh[2] = n;
        snprintf(why, sizeof why, "(n = %d, projection %s%s)", n, mhc_projection_name(s.projection),
                 s.projection == MHC_PROJ_PERM ? ": n! logits per token"
                 : s.projection == MHC_PROJ_KRON ? ": sum_k a_k! logits per token" : "");
        if (vf_load(case_dir, "logits", 1, perm ? 2 : 3, sh, lab_t, why, &in[VI_LOGITS], err, cap, c.f32, &bud)) goto done;
        T = in[VI_LOGITS].shape[0];
        sh[0] = T; sh[1] = n; sh[2] = n;
        if (vf_load(case_dir, "d_out", 1, 3, sh, NULL, NULL, &in[VI_DOUT], err, cap, c.f32, &bud)) goto done;
    } else {
        int head = c.op == TOOL_VERIFY_HEAD, params = head || s.variant != MHC_VARIANT_NONE;
        sh[0] = -1; sh[1] = n; sh[2] = -1;
        snprintf(why, sizeof why, "(n = %d from case.txt)", n);
        if (vf_load(case_dir, "x", 1, 3, sh, lab_x, why, &in[VI_X], err, cap, c.f32, &bud)) goto done;
        T = in[VI_X].shape[0];
        C = in[VI_X].shape[2];
        if (mhc_hc_param_shapes(&ctx, &s, C, head, fs, &ns, &nb, &nw) != MHC_OK) {
            snprintf(err, cap, "%s/x.npy: %s", case_dir, mhc_ctx_message(&ctx));
            goto done;
        }
        if (params) {
            if (head) snprintf(why, sizeof why, "(the head: n = %d rows, n*C = %d columns)", n, fs[1]);
            else if (s.variant == MHC_VARIANT_HC) snprintf(why, sizeof why, "(hc: n + 2 = %d rows, C = %d columns)", n + 2, C);
            else if (s.variant == MHC_VARIANT_LITE)
                snprintf(why, sizeof why, "(lite: 2n + n! = %d rows, n*C = %d columns for n = %d)", fs[0], fs[1], n);
            else if (s.variant == MHC_VARIANT_KROMHC)
                snprintf(why, sizeof why, "(kromhc: 2n + sum_k a_k! = %d rows, n*C = %d columns for n = %d)", fs[0], fs[1],
                         n);
            else snprintf(why, sizeof why, "(2n + n*n = %d rows, n*C = %d columns for n = %d)", fs[0], fs[1], n);
            if (vf_load(case_dir, "fn", 1, 2, fs, NULL, why, &in[VI_FN], err, cap, c.f32, &bud)) goto done;
            if (vf_load(case_dir, "scale", 1, 1, &ns, NULL, head ? "(the head has one gate scale)" : "(pre, post, res)",
                        &in[VI_SCALE], err, cap, c.f32, &bud)) goto done;
            snprintf(why, sizeof why, "(one per row of fn%s)", s.variant == MHC_VARIANT_HC && !head ? ": 2n + n*n for hc" : "");
            if (vf_load(case_dir, "base", 1, 1, &nb, NULL, why, &in[VI_BASE], err, cap, c.f32, &bud)) goto done;
            if (vf_load(case_dir, "norm_weight", 0, 1, &nw, NULL, NULL, &in[VI_NW], err, cap, c.f32, &bud)) goto done;
        }
        if (head) {
            sh[0] = T; sh[1] = C;
            if (vf_load(case_dir, "d_out", 1, 2, sh, NULL, "(the head's output is [T,C])", &in[VI_DOUT], err, cap, c.f32, &bud)) goto done;
        } else {
            sh[0] = T; sh[1] = C;
            if (vf_load(case_dir, "f_out", 0, 2, sh, NULL, NULL, &in[VI_FOUT], err, cap, c.f32, &bud)) goto done;
            if (vf_load(case_dir, "d_layer_input", 0, 2, sh, NULL, NULL, &in[VI_DLI], err, cap, c.f32, &bud)) goto done;
            sh[0] = T; sh[1] = n; sh[2] = C;
            if (vf_load(case_dir, "d_out", 0, 3, sh, NULL, NULL, &in[VI_DOUT], err, cap, c.f32, &bud)) goto done;
        }
    }
    /* ---- outputs ---- */
#define VF_OUT(k, d0, d1, d2, nd) (ondim[k] = (nd), oshape[k][0] = (d0), oshape[k][1] = (d1), oshape[k][2] = (d2))
    if (c.op == TOOL_VERIFY_SINKHORN) {
        VF_OUT(VO_OUT, T, n, n, 3);
        if (s.projection == MHC_PROJ_PERM || s.projection == MHC_PROJ_KRON) VF_OUT(VO_DLOGITS, T, (int)nres, 1, 2);
        else VF_OUT(VO_DLOGITS, T, n, n, 3);
    } else if (c.op == TOOL_VERIFY_HEAD) {
        VF_OUT(VO_OUT, T, C, 1, 2);
        VF_OUT(VO_HPRE, T, n, 1, 2);
    } else {
        VF_OUT(VO_LI, T, C, 1, 2);
        VF_OUT(VO_HPRE, T, n, 1, 2);
        VF_OUT(VO_HPOST, T, n, 1, 2);
        VF_OUT(VO_HRES, T, n, n, 3);
        VF_OUT(VO_OUT, T, n, C, 3);
        VF_OUT(VO_DF, T, C, 1, 2);
    }
    if (c.op != TOOL_VERIFY_SINKHORN) {
        VF_OUT(VO_DX, T, n, C, 3);
        if (in[VI_FN].data) {
            VF_OUT(VO_DFN, fs[0], fs[1], 1, 2);
            VF_OUT(VO_DSCALE, ns, 1, 1, 1);
            VF_OUT(VO_DBASE, nb, 1, 1, 1);
        }
        if (in[VI_NW].data) VF_OUT(VO_DNW, nw, 1, 1, 1);
    }
#undef VF_OUT
    /* the outputs (double) and the computation's copies of everything, counted before allocating */
    for (k = 0; k < VO_N; k++)
        if (ondim[k])
            out_elems += (double)oshape[k][0] * (ondim[k] > 1 ? oshape[k][1] : 1) * (ondim[k] > 2 ? oshape[k][2] : 1);
    if (!vf_spend(&bud, out_elems * (8.0 + (double)bud.rbytes) + (double)bud.rbytes * T * ((double)n * n + n), case_dir,
                  err, cap))
        goto done;
    for (k = 0; k < VO_N; k++)
        if (ondim[k]) {
            size_t sz = (size_t)oshape[k][0] * (size_t)(ondim[k] > 1 ? oshape[k][1] : 1) * (size_t)(ondim[k] > 2 ? oshape[k][2] : 1);
            outp[k] = (double *)calloc(sz ? sz : 1, sizeof(double));
            if (!outp[k]) { snprintf(err, cap, "%s: out of memory", case_dir); goto done; }
        }
    /* ---- run ---- */
    memset(&io, 0, sizeof io);
    io.op = c.op;
    io.cfg = c.cfg;
    io.n = n; io.T = T; io.C = C;
    io.x = in[VI_X].data; io.fn = in[VI_FN].data; io.scale = in[VI_SCALE].data; io.base = in[VI_BASE].data;
    io.norm_weight = in[VI_NW].data; io.f_out = in[VI_FOUT].data; io.d_out = in[VI_DOUT].data;
    io.d_layer_input = in[VI_DLI].data; io.logits = in[VI_LOGITS].data;
    io.layer_input = outp[VO_LI]; io.h_pre = outp[VO_HPRE]; io.h_post = outp[VO_HPOST]; io.h_res = outp[VO_HRES];
    io.out = outp[VO_OUT]; io.d_x = outp[VO_DX]; io.d_fn = outp[VO_DFN]; io.d_scale = outp[VO_DSCALE];
    io.d_base = outp[VO_DBASE]; io.d_norm_weight = outp[VO_DNW]; io.d_f_out = outp[VO_DF]; io.d_logits = outp[VO_DLOGITS];
    {
        char msg[512];
        if ((c.f32 ? tool_verify_run_f32(&io, msg, sizeof msg) : tool_verify_run_f64(&io, msg, sizeof msg)) != 0) {
            snprintf(err, cap, "%s: %s", case_dir, msg);
            goto done;
        }
    }
    /* ---- write ---- */
    if (tool_mkdir_p(out_dir) != 0) {
        snprintf(err, cap, "%s: cannot create the output directory (%s)", out_dir, strerror(errno));
        goto done;
    }
    for (k = 0; k < VO_N; k++) {
        if (!ondim[k]) continue;
        if ((size_t)snprintf(path, sizeof path, "%s/%s.npy", out_dir, vf_out_names[k]) >= sizeof path) {
            snprintf(err, cap, "%s: path too long", out_dir);
            goto done;
        }
        if (mhc_npy_write(&ctx, path, ondim[k], oshape[k], outp[k]) != MHC_OK) {
            snprintf(err, cap, "%s: %s", path, mhc_ctx_message(&ctx));
            goto done;
        }
    }
    {   /* what was written, for the caller to print */
        size_t len;
        int nout = 0;
        for (k = 0; k < VO_N; k++) nout += ondim[k] != 0;
        len = (size_t)snprintf(err, cap, "wrote %d outputs to %s:", nout, out_dir);
        for (k = 0; k < VO_N && len < cap; k++)
            if (ondim[k]) len += (size_t)snprintf(err + len, cap - len, " %s.npy", vf_out_names[k]);
        if (len < cap) snprintf(err + len, cap - len, "; check them with: mhc compare %s %s/expected", out_dir, case_dir);
    }
    rc = 0;
done:
    for (k = 0; k < VI_N; k++) mhc_npy_free(&in[k]);
    for (k = 0; k < VO_N; k++) free(outp[k]);
    (void)vf_in_names;
    return rc;
}

static void vf_usage(FILE *f) {
    fprintf(f,
            "usage: mhc verify CASE_DIR --out OUT_DIR\n"
            "  Runs the case in CASE_DIR (case.txt and input .npy files, see tests/vectors/README.md)\n"
            "  through mhc.h in the case's dtype and writes every output as OUT_DIR/<name>.npy (<f8).\n"
            "  Check them with: mhc compare OUT_DIR CASE_DIR/expected\n"
            "  Exit codes: 0 success, 2 bad case, I/O or usage error.\n");
}

int tool_verify_args(int argc, char **argv, const char **case_dir, const char **out_dir, char *err, size_t cap) {
    int i;
    *case_dir = *out_dir = NULL;
    if (cap) err[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        } else if (strcmp(a, "--out") == 0) {
            if (i + 1 >= argc) {
                snprintf(err, cap, "--out needs a directory");
                return 2;
            }
            *out_dir = argv[++i];
        } else if (strncmp(a, "--out=", 6) == 0) {
            *out_dir = a + 6;
        } else if (a[0] == '-' && a[1]) {
            snprintf(err, cap, "unknown option '%.200s'", a);
            return 2;
        } else if (!*case_dir) {
            *case_dir = a;
        } else {
            snprintf(err, cap, "more than one CASE_DIR ('%.200s' and '%.200s')", *case_dir, a);
            return 2;
        }
    }
    if (!*case_dir || !*out_dir || !**out_dir || !**case_dir) {
        snprintf(err, cap, "%s", !*case_dir || !**case_dir ? "no CASE_DIR given" : "no --out OUT_DIR given");
        return 2;
    }
    return 0;
}

int tool_cmd_verify(int argc, char **argv) {
    const char *case_dir = NULL, *out_dir = NULL;
    char err[1024];
    int rc = tool_verify_args(argc, argv, &case_dir, &out_dir, err, sizeof err);
    if (rc == 1) {
        vf_usage(stdout);
        return 0;
    }
    if (rc == 2) {
        fprintf(stderr, "verify: %s\n", err);
        vf_usage(stderr);
        return 2;
    }
    rc = tool_verify_case(case_dir, out_dir, err, sizeof err);
    if (rc != 0) fprintf(stderr, "verify: %s\n", err);
    else printf("verify: %s\n", err);
    return rc;
}
