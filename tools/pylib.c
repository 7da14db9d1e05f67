/* tools/pylib.c - the C side of python/mhc.py: build/libmhc_f64.so (-DPYLIB_F64) and
 * build/libmhc_f32.so. It runs a case given as case.txt text plus in-memory arrays through the
 * same parser (tool_verify_parse_case) and computation (tool_verify_run_f64 / _f32) as
 * `mhc verify`, so the results are bit-identical to the CLI's, and compares like `mhc compare`
 * (tool_compare_dirs). Plain pointers only: ctypes calls it.
 *
 *   int mhc_py_run(const char *text, size_t len, const int *in_shape, const double *const *in,
 *                  double *const *out, int *out_shape, char *err, size_t cap)
 *     in_shape: PY_NIN x 4 ints (ndim, d0, d1, d2; ndim 0 = absent) for the inputs in the order
 *     x, fn, scale, base, norm_weight, f_out, d_out, d_layer_input, logits. It checks the case
 *     (knobs, dtype against this library's precision), every shape and value (finite; in float32
 *     within float32's range), fills out_shape (PY_NOUT x 4, ndim 0 = no such output) and, when
 *     out is not NULL, runs into out[k] (caller-allocated with those shapes). 0 on success, else
 *     2 with a message naming the problem in err.
 *   int mhc_py_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol,
 *                           char *report, size_t cap)
 *     tool_compare_dirs with its table written into report.
 *   int mhc_py_param_shapes(const char *text, size_t len, int C, int *shapes, char *err, size_t cap)
 *     The parameter shapes the case text (op layer or head; n, preset, knobs; the dtype is not
 *     checked) takes for C channels, as mhc_hc_param_shapes gives them: shapes[5] = fn rows,
 *     fn columns, scale, base, norm_weight (all 0: variant none, no parameters). 0 or 2 + err.
 *   int mhc_py_make_case(op, preset, n, T, C, f32, seed, min_power, force, out, err, cap)
 *     `mhc make-case` (tools/make_case.c): 0, 1 (written, some slip weak) or 2 with err.
 *   int mhc_py_precision(void): 64 or 32. */
#include <float.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mhc.h"
#include "tools/tool.h"
#include "tools/verify.h"

#ifdef PYLIB_F64
#define PY_RUN tool_verify_run_f64
#define PY_F32 0
#else
#define PY_RUN tool_verify_run_f32
#define PY_F32 1
#endif

#define PY_NIN 9
#define PY_NOUT 12
static const char *const py_in_names[PY_NIN] = {"x", "fn", "scale", "base", "norm_weight", "f_out", "d_out",
                                                "d_layer_input", "logits"};
enum { PI_X, PI_FN, PI_SCALE, PI_BASE, PI_NW, PI_FOUT, PI_DOUT, PI_DLI, PI_LOGITS };
enum { PO_LI, PO_HPRE, PO_HPOST, PO_HRES, PO_OUT, PO_DX, PO_DFN, PO_DSCALE, PO_DBASE, PO_DNW, PO_DF, PO_DLOGITS };

int mhc_py_precision(void);
int mhc_py_run(const char *text, size_t len, const int *in_shape, const double *const *in, double *const *out,
               int *out_shape, char *err, size_t cap);
int mhc_py_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol, char *report, size_t cap);
int mhc_py_param_shapes(const char *text, size_t len, int C, int *shapes, char *err, size_t cap);

int mhc_py_precision(void) { return PY_F32 ? 32 : 64; }

static int py_finite(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

static void py_shape_str(char *buf, size_t cap, const int *s) {   /* s: ndim, dims (-1: "T"/"C"/any) */
    size_t len = (size_t)snprintf(buf, cap, "[");
    int d;
    for (d = 0; d < s[0] && len < cap; d++)
        len += (size_t)snprintf(buf + len, cap - len, d ? ",%d" : "%d", s[1 + d]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static size_t py_count(const int *s) {
    size_t c = 1;
    int d;
    for (d = 0; d < s[0]; d++) c *= (size_t)s[1 + d];
    return c;
}

/* Check input k against the expected shape want (ndim, dims; a dim < 0 matches anything >= 1). */
static int py_check(const int *in_shape, int k, int required, int nd, int d0, int d1, int d2, const char *why,
                    char *err, size_t cap) {
    const int *g = in_shape + 4 * k;
    int want[4], d, ok;
    char gs[96], ws[96];
    if (g[0] == 0) {
        if (!required) return 0;
        snprintf(err, cap, "%s: missing (a required input)", py_in_names[k]);
        return 2;
    }
    want[0] = nd; want[1] = d0; want[2] = d1; want[3] = d2;
    ok = g[0] == nd;
    for (d = 0; ok && d < nd; d++) ok = want[1 + d] >= 0 ? g[1 + d] == want[1 + d] : g[1 + d] >= 1;
    if (!ok) {
        py_shape_str(gs, sizeof gs, g);
        py_shape_str(ws, sizeof ws, want);
        snprintf(err, cap, "%s: shape %s, expected %s (-1: any size >= 1)%s%s", py_in_names[k], gs, ws, why ? " " : "",
                 why ? why : "");
        return 2;
    }
    return 0;
}

#define PY_SET(k, nd, a, b, c) (out_shape[4 * (k)] = (nd), out_shape[4 * (k) + 1] = (a), out_shape[4 * (k) + 2] = (b), \
                                out_shape[4 * (k) + 3] = (c))

int mhc_py_run(const char *text, size_t len, const int *in_shape, const double *const *in, double *const *out,
               int *out_shape, char *err, size_t cap) {
    tool_verify_case_txt c;
    mhc_hc_spec s;
    mhc_ctx ctx;
    tool_verify_io io;
    char why[160], msg[512];
    int k, n, T = 0, C = 0, fs[2] = {0, 0}, ns = 0, nb = 0, nw = 0;
    if (!err || cap < 1) return 2;
    err[0] = 0;
    if (!text || !in_shape || !in || !out_shape) { snprintf(err, cap, "NULL argument"); return 2; }
    if (tool_verify_parse_case(text, len, "case", &c, err, cap)) return 2;
    mhc_ctx_init(&ctx);
    if (mhc_hc_resolve(&ctx, &c.cfg, c.n, &s) != MHC_OK) { snprintf(err, cap, "%s", mhc_ctx_message(&ctx)); return 2; }
    if (c.f32 != PY_F32) {
        snprintf(err, cap, "dtype %s given to libmhc_%s.so (load libmhc_%s.so for it)", c.f32 ? "float32" : "float64",
                 PY_F32 ? "f32" : "f64", c.f32 ? "f32" : "f64");
        return 2;
    }
    if (c.f32 && (s.pre_eps > FLT_MAX || s.post_mult > FLT_MAX)) {
        snprintf(err, cap, "%s = %g is beyond float32's range (dtype = float32)", s.pre_eps > FLT_MAX ? "pre_eps" : "post_mult",
                 s.pre_eps > FLT_MAX ? s.pre_eps : s.post_mult);
        return 2;
    }
    n = c.n;
    memset(out_shape, 0, PY_NOUT * 4 * sizeof *out_shape);
    for (k = 0; k < PY_NIN; k++) {   /* inputs the op does not take */
        int used = c.op == TOOL_VERIFY_SINKHORN ? (k == PI_LOGITS || k == PI_DOUT)
                 : c.op == TOOL_VERIFY_HEAD ? (k != PI_LOGITS && k != PI_FOUT && k != PI_DLI) : k != PI_LOGITS;
        if (in_shape[4 * k] && !used) {
            snprintf(err, cap, "%s: not an input of op %s", py_in_names[k],
                     c.op == TOOL_VERIFY_SINKHORN ? "sinkhorn" : c.op == TOOL_VERIFY_HEAD ? "head" : "layer");
            return 2;
        }
        if (in_shape[4 * k] < 0 || in_shape[4 * k] > 3) { snprintf(err, cap, "%s: %d dimensions", py_in_names[k], in_shape[4 * k]); return 2; }
    }
    if (c.op == TOOL_VERIFY_SINKHORN) {
        int perm = s.projection == MHC_PROJ_PERM || s.projection == MHC_PROJ_KRON;
        snprintf(why, sizeof why, "(n = %d, projection %s)", n, mhc_projection_name(s.projection));
        if (perm ? py_check(in_shape, PI_LOGITS, 1, 2, -1, s.nres, 0, why, err, cap)
                 : py_check(in_shape, PI_LOGITS, 1, 3, -1, n, n, why, err, cap)) return 2;
        T = in_shape[4 * PI_LOGITS + 1];
        if (py_check(in_shape, PI_DOUT, 0, 3, T, n, n, "(like out: [T,n,n])", err, cap)) return 2;
        PY_SET(PO_OUT, 3, T, n, n);
        if (perm) PY_SET(PO_DLOGITS, 2, T, s.nres, 1); else PY_SET(PO_DLOGITS, 3, T, n, n);
    } else {
        int head = c.op == TOOL_VERIFY_HEAD, params = head || s.variant != MHC_VARIANT_NONE;
        snprintf(why, sizeof why, "([T,n,C] with n = %d)", n);
        if (py_check(in_shape, PI_X, 1, 3, -1, n, -1, why, err, cap)) return 2;
        T = in_shape[4 * PI_X + 1];
        C = in_shape[4 * PI_X + 3];
        if (mhc_hc_param_shapes(&ctx, &s, C, head, fs, &ns, &nb, &nw) != MHC_OK) {
            snprintf(err, cap, "x: %s", mhc_ctx_message(&ctx));
            return 2;
        }
        if (params) {
            snprintf(why, sizeof why, "(%d rows, n*C = %d columns for n = %d, C = %d)", fs[0], fs[1], n, C);
            if (py_check(in_shape, PI_FN, 1, 2, fs[0], fs[1], 0, why, err, cap)) return 2;
            if (py_check(in_shape, PI_SCALE, 1, 1, ns, 0, 0, head ? "(the head has one gate scale)" : "(pre, post, res)",
                         err, cap)) return 2;
            if (py_check(in_shape, PI_BASE, 1, 1, nb, 0, 0, "(one per row of fn)", err, cap)) return 2;
            if (py_check(in_shape, PI_NW, 0, 1, nw, 0, 0, NULL, err, cap)) return 2;
        } else {
            for (k = PI_FN; k <= PI_NW; k++)
                if (in_shape[4 * k]) { snprintf(err, cap, "%s: variant none has no parameters", py_in_names[k]); return 2; }
        }
        if (head) {
            if (py_check(in_shape, PI_DOUT, 0, 2, T, C, 0, "(the head's output is [T,C])", err, cap)) return 2;
            PY_SET(PO_OUT, 2, T, C, 1);
            PY_SET(PO_HPRE, 2, T, n, 1);
        } else {
            if (py_check(in_shape, PI_FOUT, 0, 2, T, C, 0, "([T,C])", err, cap) ||
                py_check(in_shape, PI_DLI, 0, 2, T, C, 0, "([T,C], like layer_input)", err, cap) ||
                py_check(in_shape, PI_DOUT, 0, 3, T, n, C, "([T,n,C], like out)", err, cap)) return 2;
            PY_SET(PO_LI, 2, T, C, 1); PY_SET(PO_HPRE, 2, T, n, 1); PY_SET(PO_HPOST, 2, T, n, 1);
            PY_SET(PO_HRES, 3, T, n, n); PY_SET(PO_OUT, 3, T, n, C); PY_SET(PO_DF, 2, T, C, 1);
        }
        PY_SET(PO_DX, 3, T, n, C);
        if (params) { PY_SET(PO_DFN, 2, fs[0], fs[1], 1); PY_SET(PO_DSCALE, 1, ns, 1, 1); PY_SET(PO_DBASE, 1, nb, 1, 1); }
        if (params && in_shape[4 * PI_NW]) PY_SET(PO_DNW, 1, nw, 1, 1);
    }
    for (k = 0; k < PY_NIN; k++) {   /* values */
        size_t i, cnt;
        if (!in_shape[4 * k]) continue;
        if (!in[k]) { snprintf(err, cap, "%s: no data", py_in_names[k]); return 2; }
        cnt = py_count(in_shape + 4 * k);
        for (i = 0; i < cnt; i++) {
            double v = in[k][i];
            if (!py_finite(v)) {
                snprintf(err, cap, "%s: element %zu (flat index) is %s; inputs must be finite", py_in_names[k], i,
                         v != v ? "NaN" : v > 0 ? "+Inf" : "-Inf");
                return 2;
            }
            if (PY_F32 && (v > FLT_MAX || v < -FLT_MAX)) {
                snprintf(err, cap, "%s: element %zu (flat index) is %.17g, beyond float32's range (dtype = float32)",
                         py_in_names[k], i, v);
                return 2;
            }
        }
    }
    if (!out) return 0;
    for (k = 0; k < PY_NOUT; k++)
        if (out_shape[4 * k] && !out[k]) { snprintf(err, cap, "output %d: no buffer", k); return 2; }
    memset(&io, 0, sizeof io);
    io.op = c.op; io.cfg = c.cfg; io.n = n; io.T = T; io.C = C;
#define PY_IN(k) (in_shape[4 * (k)] ? in[k] : NULL)
#define PY_OUT(k) (out_shape[4 * (k)] ? out[k] : NULL)
    io.x = PY_IN(PI_X); io.fn = PY_IN(PI_FN); io.scale = PY_IN(PI_SCALE); io.base = PY_IN(PI_BASE);
    io.norm_weight = PY_IN(PI_NW); io.f_out = PY_IN(PI_FOUT); io.d_out = PY_IN(PI_DOUT);
    io.d_layer_input = PY_IN(PI_DLI); io.logits = PY_IN(PI_LOGITS);
    io.layer_input = PY_OUT(PO_LI); io.h_pre = PY_OUT(PO_HPRE); io.h_post = PY_OUT(PO_HPOST); io.h_res = PY_OUT(PO_HRES);
    io.out = PY_OUT(PO_OUT); io.d_x = PY_OUT(PO_DX); io.d_fn = PY_OUT(PO_DFN); io.d_scale = PY_OUT(PO_DSCALE);
    io.d_base = PY_OUT(PO_DBASE); io.d_norm_weight = PY_OUT(PO_DNW); io.d_f_out = PY_OUT(PO_DF);
    io.d_logits = PY_OUT(PO_DLOGITS);
    if (PY_RUN(&io, msg, sizeof msg) != 0) { snprintf(err, cap, "%s", msg); return 2; }
    return 0;
}

int mhc_py_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol, char *report, size_t cap) {
    char *buf = NULL;
    size_t blen = 0;
    int r;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) { if (cap) snprintf(report, cap, "open_memstream failed"); return -1; }
    r = tool_compare_dirs(out_dir, exp_dir, rtol, atol, f);
    fclose(f);
    if (cap) snprintf(report, cap, "%s", buf ? buf : "");
    free(buf);
    return r;
}

/* mhc make-case (tools/make_case.c) for python/mhc.py's make_case: op "layer" | "sinkhorn" |
   "head"; the return value is tool_make_case's (0 the case has the power, 1 written but some slip
   weak, 2 not written) with its closing line in err. */
int mhc_py_make_case(const char *op, const char *preset, int n, int T, int C, int f32, unsigned long long seed,
                     double min_power, int force, const char *out, char *err, size_t cap);
int mhc_py_make_case(const char *op, const char *preset, int n, int T, int C, int f32, unsigned long long seed,
                     double min_power, int force, const char *out, char *err, size_t cap) {
    tool_make_case_opts o;   /* tool_make_case checks every field */
    memset(&o, 0, sizeof o);
    if ((o.op = tool_make_case_op(op)) < 0) {
        snprintf(err, cap, "op '%.100s': expected layer, sinkhorn or head", op ? op : "(null)");
        return 2;
    }
    o.preset = preset; o.out = out; o.n = n; o.T = T; o.C = C; o.f32 = f32 != 0; o.force = force != 0;
    o.seed = seed; o.min_power = min_power;
    return tool_make_case(&o, NULL, err, cap);
}

int mhc_py_param_shapes(const char *text, size_t len, int C, int *shapes, char *err, size_t cap) {
    tool_verify_case_txt c;
    mhc_hc_spec s;
    mhc_ctx ctx;
    int fs[2] = {0, 0}, ns = 0, nb = 0, nw = 0;
    if (!err || cap < 1) return 2;
    err[0] = 0;
    if (!text || !shapes) { snprintf(err, cap, "NULL argument"); return 2; }
    if (tool_verify_parse_case(text, len, "case", &c, err, cap)) return 2;
    if (c.op == TOOL_VERIFY_SINKHORN) { snprintf(err, cap, "op sinkhorn has no parameters (op layer or head)"); return 2; }
    mhc_ctx_init(&ctx);
    if (mhc_hc_resolve(&ctx, &c.cfg, c.n, &s) != MHC_OK ||
        mhc_hc_param_shapes(&ctx, &s, C, c.op == TOOL_VERIFY_HEAD, fs, &ns, &nb, &nw) != MHC_OK) {
        snprintf(err, cap, "%s", mhc_ctx_message(&ctx));
        return 2;
    }
    shapes[0] = fs[0]; shapes[1] = fs[1]; shapes[2] = ns; shapes[3] = nb; shapes[4] = nw;
    return 0;
}
