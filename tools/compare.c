/* tools/compare.c - `mhc compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A]`.
 *
 * For every EXPECTED_DIR/<name>.npy (sorted by name) it reads OUT_DIR/<name>.npy and prints one
 * row: name, shape, max abs error, max rel error, the worst error as a fraction of its
 * tolerance, and a status. Files in OUT_DIR that EXPECTED_DIR lacks are ignored.
 *
 * The rule (per tensor; e = expected, o = output, both read as double):
 *     element k fails  <=>  |o_k - e_k| > atol * max(1, max_j |e_j|) + rtol * |e_k|
 *                           or o_k or e_k is NaN or infinite.
 * The absolute term is scaled by the tensor's largest expected magnitude because the
 * rounding error of an entry that is small by cancellation (a gradient sum of O(s) terms that
 * nearly cancel) is of the order eps * s, not eps * |e_k|; the floor of 1 keeps an all-zero or
 * all-tiny tensor from demanding bit equality. "max rel err" is max |o - e| / |e| over the
 * elements with e != 0 (shown for information; the rule above decides).
 * A tensor mismatches when an element fails, its output file is missing or not a valid .npy,
 * or the shapes differ (ndim and every dimension).
 *
 * Defaults: rtol 1e-10, atol 1e-12 (float64 cases); when EXPECTED_DIR/../case.txt says
 * `dtype = float32`, rtol 1e-4, atol 1e-6. --rtol / --atol override either.
 * Exit code: 0 all tensors match, 1 some mismatch, 2 usage error or unusable EXPECTED_DIR. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "mhc.h"
#include "tools/tool.h"

/* Finite by the bit pattern (exponent not all ones), so -ffast-math cannot fold the test away. */
static int cmp_finite(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

static int cmp_strcmp(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void cmp_free_names(char **names, int count) {
    int i;
    for (i = 0; i < count; i++) free(names[i]);
    free(names);
}

/* The sorted names of the *.npy entries of dir; NULL + *count = -1 on error. */
static char **cmp_list(const char *dir, int *count, FILE *report) {
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    int n = 0, cap = 0;
    *count = -1;
    if (!d) {
        if (report) fprintf(report, "compare: cannot open the directory '%s': %s\n", dir, strerror(errno));
        return NULL;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len <= 4 || strcmp(e->d_name + len - 4, ".npy") != 0) continue;
        if (n == cap) {
            char **nn = (char **)realloc(names, (size_t)(cap = cap ? 2 * cap : 32) * sizeof *names);
            if (!nn) goto nomem;
            names = nn;
        }
        if (!(names[n] = (char *)malloc(len + 1))) goto nomem;
        memcpy(names[n++], e->d_name, len + 1);
    }
    closedir(d);
    if (n) qsort(names, (size_t)n, sizeof *names, cmp_strcmp);
    *count = n;
    return names;
nomem:
    closedir(d);
    cmp_free_names(names, n);
    if (report) fprintf(report, "compare: out of memory listing '%s'\n", dir);
    return NULL;
}

static void cmp_shape(char *buf, size_t cap, const mhc_npy *a) {
    size_t len = (size_t)snprintf(buf, cap, "[");
    int i;
    for (i = 0; i < a->ndim && len < cap; i++) len += (size_t)snprintf(buf + len, cap - len, i ? ",%d" : "%d", a->shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
}

static int cmp_same_shape(const mhc_npy *a, const mhc_npy *b) {
    int i;
    if (a->ndim != b->ndim) return 0;
    for (i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void tool_compare_tensor(const double *out, const double *exp, size_t count, double rtol, double atol,
                         tool_compare_stats *st) {
    double scale = 0, tol_abs;
    size_t k;
    memset(st, 0, sizeof *st);
    for (k = 0; k < count; k++)
        if (cmp_finite(exp[k]) && fabs(exp[k]) > scale) scale = fabs(exp[k]);
    tol_abs = atol * (scale > 1 ? scale : 1);
    for (k = 0; k < count; k++) {
        double ev = exp[k], ov = out[k], d = fabs(ov - ev), tol = tol_abs + rtol * fabs(ev), ratio;
        if (!cmp_finite(ev) || !cmp_finite(ov)) {
            st->nonfinite++;
            continue;
        }
        if (d > st->max_abs) st->max_abs = d;
        if (ev != 0 && d / fabs(ev) > st->max_rel) st->max_rel = d / fabs(ev);
        ratio = tol > 0 ? d / tol : d > 0 ? HUGE_VAL : 0;
        if (ratio > st->worst) st->worst = ratio;
        if (d > tol) st->fails++;
    }
}

/* A case made by `mhc make-case` has EXPECTED_DIR/../power.txt: print its "minimum" line, the
   weakest convention slip these inputs expose (in multiples of the default tolerance). */
static void cmp_power_line(const char *exp_dir, FILE *report) {
    char path[4096];
    void *buf;
    size_t len;
    const char *line;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    if ((size_t)snprintf(path, sizeof path, "%s/../power.txt", exp_dir) >= sizeof path) return;
    if (mhc_read_file_max(&ctx, path, (size_t)1 << 20, &buf, &len) != MHC_OK) return;
    for (line = (const char *)buf; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, "minimum ", 8) == 0) {
            int w = (int)(strchr(line, '\n') ? strchr(line, '\n') - line : (ptrdiff_t)strlen(line));
            fprintf(report, "compare: the case's power (power.txt): %.*s; every convention slip listed there moves some "
                            "tensor by at least that many tolerances (at its dtype's defaults)\n", w > 300 ? 300 : w, line);
            break;
        }
    free(buf);
}

int tool_compare_dirs(const char *out_dir, const char *exp_dir, double rtol, double atol, FILE *report) {
    char **names;
    int count, i, mismatches = 0;
    if (!out_dir || !exp_dir) {
        if (report) fprintf(report, "compare: %s is NULL\n", !out_dir ? "out_dir" : "exp_dir");
        return -1;
    }
    if (!cmp_finite(rtol) || rtol < 0 || !cmp_finite(atol) || atol < 0) {
        if (report) fprintf(report, "compare: tolerances must be finite and >= 0 (rtol %g, atol %g)\n", rtol, atol);
        return -1;
    }
    names = cmp_list(exp_dir, &count, report);
    if (!names && count < 0) return -1;
    if (count == 0) {
        if (report) fprintf(report, "compare: '%s' holds no .npy files\n", exp_dir);
        free(names);
        return -1;
    }
    if (report) {
        DIR *od = opendir(out_dir);   /* say once why every output will be missing */
        if (od) closedir(od);
        else fprintf(report, "compare: cannot open the output directory '%s' (%s): every tensor is missing\n", out_dir,
                     strerror(errno));
        fprintf(report, "%-20s %-14s %12s %12s %10s  %s\n", "tensor", "shape", "max_abs_err", "max_rel_err",
                "err/tol", "status");
    }
    for (i = 0; i < count; i++) {
        mhc_ctx ctx;
        mhc_npy e, o;
        char path[4096], shape[64], status[512];
        double max_abs = 0, max_rel = 0, worst = 0;
        size_t fails = 0, nonfinite = 0;
        mhc_result r;
        int namelen = (int)strlen(names[i]) - 4;
        mhc_ctx_init(&ctx);
        if ((size_t)snprintf(path, sizeof path, "%s/%s", strlen(out_dir) > strlen(exp_dir) ? out_dir : exp_dir,
                             names[i]) >= sizeof path) {
            if (report) fprintf(report, "compare: the path of '%s' in '%.200s' is longer than %zu bytes\n", names[i],
                                strlen(out_dir) > strlen(exp_dir) ? out_dir : exp_dir, sizeof path - 1);
            cmp_free_names(names, count);
            return -1;
        }
        snprintf(path, sizeof path, "%s/%s", exp_dir, names[i]);
        if (mhc_npy_read(&ctx, path, &e) != MHC_OK) {
            if (report) fprintf(report, "compare: expected tensor: %s\n", mhc_ctx_message(&ctx));
            cmp_free_names(names, count);
            return -1;
        }
        cmp_shape(shape, sizeof shape, &e);
        snprintf(path, sizeof path, "%s/%s", out_dir, names[i]);
        r = mhc_npy_read(&ctx, path, &o);
        if (r == MHC_ERR_IO) {
            snprintf(status, sizeof status, "MISSING (%.480s)", path);
        } else if (r != MHC_OK) {
            snprintf(status, sizeof status, "BADFILE (%.480s)", mhc_ctx_message(&ctx));
        } else if (!cmp_same_shape(&e, &o)) {
            char oshape[64];
            cmp_shape(oshape, sizeof oshape, &o);
            snprintf(status, sizeof status, "SHAPE (output is %s)", oshape);
        } else {
            tool_compare_stats st;
            tool_compare_tensor(o.data, e.data, e.size, rtol, atol, &st);
            max_abs = st.max_abs; max_rel = st.max_rel; worst = st.worst; fails = st.fails; nonfinite = st.nonfinite;
            if (nonfinite)
                snprintf(status, sizeof status, "NONFINITE (%zu of %zu elements are NaN or Inf)", nonfinite, e.size);
            else if (fails)
                snprintf(status, sizeof status, "FAIL (%zu of %zu elements)", fails, e.size);
            else
                snprintf(status, sizeof status, "ok");
        }
        if (strcmp(status, "ok") != 0) mismatches++;
        if (report) {
            if (r == MHC_OK && cmp_same_shape(&e, &o))
                fprintf(report, "%-20.*s %-14s %12.3e %12.3e %10.3g  %s\n", namelen, names[i], shape, max_abs, max_rel,
                        worst, status);
            else
                fprintf(report, "%-20.*s %-14s %12s %12s %10s  %s\n", namelen, names[i], shape, "-", "-", "-", status);
        }
        mhc_npy_free(&e);
        mhc_npy_free(&o);
    }
    if (report)
        fprintf(report, "compare: %d tensors, %d mismatched (element fails if |out-exp| > atol*max(1,max|exp|) + "
                        "rtol*|exp|; rtol %g, atol %g)\n", count, mismatches, rtol, atol);
    if (report) cmp_power_line(exp_dir, report);
    cmp_free_names(names, count);
    return mismatches;
}

static void cmp_usage(FILE *f) {
    fprintf(f,
            "usage: mhc compare OUT_DIR EXPECTED_DIR [--rtol R] [--atol A]\n"
            "  Compares every EXPECTED_DIR/<name>.npy with OUT_DIR/<name>.npy. An element fails when\n"
            "      |out - exp| > atol * max(1, max|exp| over the tensor) + rtol * |exp|\n"
            "  or either value is NaN/Inf; a missing output file or a shape mismatch also fails.\n"
            "  Defaults: rtol %g, atol %g; rtol %g, atol %g when EXPECTED_DIR/../case.txt has\n"
            "  'dtype = float32'. Exit code 0: all match, 1: mismatch, 2: usage or I/O error.\n",
            TOOL_COMPARE_RTOL_F64, TOOL_COMPARE_ATOL_F64, TOOL_COMPARE_RTOL_F32, TOOL_COMPARE_ATOL_F32);
}

/* Does EXPECTED_DIR/../case.txt have a line "dtype = float32"? */
static int cmp_case_is_f32(const char *exp_dir) {
    char path[4096];
    void *buf;
    size_t len;
    const char *line;
    int f32 = 0;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    snprintf(path, sizeof path, "%s/../case.txt", exp_dir);
    if (mhc_read_file_max(&ctx, path, (size_t)1 << 20, &buf, &len) != MHC_OK) return 0;   /* as verify: 1 MiB */
    for (line = (const char *)buf; line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        char key[32], value[32];
        if (sscanf(line, " %31[a-z_] = %31s", key, value) == 2 && strcmp(key, "dtype") == 0)
            f32 = strcmp(value, "float32") == 0;
    }
    free(buf);
    return f32;
}

static int cmp_number(const char *opt, const char *s, double *v, char *err, size_t cap) {
    char *end;
    if (!s) {
        snprintf(err, cap, "%s needs a value", opt);
        return 0;
    }
    *v = strtod(s, &end);
    if (end == s || *end || !cmp_finite(*v) || *v < 0) {
        snprintf(err, cap, "%s '%.200s' is not a finite number >= 0", opt, s);
        return 0;
    }
    return 1;
}

int tool_compare_args(int argc, char **argv, const char **out_dir, const char **exp_dir, double *rtol, double *atol,
                      char *err, size_t cap) {
    int i, ndirs = 0;
    *out_dir = *exp_dir = NULL;
    *rtol = *atol = -1;
    if (cap) err[0] = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            return 1;
        } else if (strcmp(a, "--rtol") == 0 || strcmp(a, "--atol") == 0) {
            if (!cmp_number(a, i + 1 < argc ? argv[i + 1] : NULL, a[2] == 'r' ? rtol : atol, err, cap)) return 2;
            i++;
        } else if (strncmp(a, "--rtol=", 7) == 0 || strncmp(a, "--atol=", 7) == 0) {
            char opt[7];
            memcpy(opt, a, 6);
            opt[6] = 0;
            if (!cmp_number(opt, a + 7, a[2] == 'r' ? rtol : atol, err, cap)) return 2;
        } else if (a[0] == '-' && a[1]) {
            snprintf(err, cap, "unknown option '%.200s'", a);
            return 2;
        } else if (ndirs < 2) {
            if (ndirs++ == 0) *out_dir = a;
            else *exp_dir = a;
        } else {
            snprintf(err, cap, "unexpected argument '%.200s' (OUT_DIR and EXPECTED_DIR are '%.200s' and '%.200s')", a,
                     *out_dir, *exp_dir);
            return 2;
        }
    }
    if (ndirs != 2) {
        snprintf(err, cap, "expected OUT_DIR and EXPECTED_DIR, got %s", ndirs ? "only OUT_DIR" : "neither");
        return 2;
    }
    return 0;
}

int tool_cmd_compare(int argc, char **argv) {
    const char *out_dir, *exp_dir;
    double rtol, atol;
    char err[1024];
    int f32, result, rc = tool_compare_args(argc, argv, &out_dir, &exp_dir, &rtol, &atol, err, sizeof err);
    if (rc == 1) {
        cmp_usage(stdout);
        return 0;
    }
    if (rc == 2) {
        fprintf(stderr, "compare: %s\n", err);
        cmp_usage(stderr);
        return 2;
    }
    f32 = cmp_case_is_f32(exp_dir);
    if (rtol < 0) rtol = f32 ? TOOL_COMPARE_RTOL_F32 : TOOL_COMPARE_RTOL_F64;
    if (atol < 0) atol = f32 ? TOOL_COMPARE_ATOL_F32 : TOOL_COMPARE_ATOL_F64;
    result = tool_compare_dirs(out_dir, exp_dir, rtol, atol, stdout);
    return result < 0 ? 2 : result > 0 ? 1 : 0;
}
