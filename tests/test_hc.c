/* tests/test_hc.c - the hyper-connection layer: config resolution, the Birkhoff projections,
 * the fused pre step, post, expand, head, HC and none variants, diagnostics, error paths.
 * References are naive double re-implementations written here (RMSNorm FIRST then matmul,
 * explicit row/column sums, permutations enumerated by counting), so they share no code with
 * mhc.h. Gradients are checked against central differences of the naive double reference (both
 * builds) and of the library's own forward (double build). */

/* ---- naive references (double) ---- */

#define HCT_MAXN 6
#define HCT_MAXP 720          /* 6! */

/* permutations of 0..n-1 in lexicographic order, by counting n-digit base-n numbers */
static int hct_perms(int n, int perms[][HCT_MAXN]) {
    int count = 0, total = 1, code, i, j, d[HCT_MAXN];
    for (i = 0; i < n; i++) total *= n;
    for (code = 0; code < total; code++) {
        int c = code, ok = 1;
        for (i = n - 1; i >= 0; i--) { d[i] = c % n; c /= n; }
        for (i = 0; i < n && ok; i++)
            for (j = i + 1; j < n; j++) if (d[i] == d[j]) { ok = 0; break; }
        if (!ok) continue;
        for (i = 0; i < n; i++) perms[count][i] = d[i];
        count++;
    }
    return count;
}

static void hct_rownorm(double M[HCT_MAXN][HCT_MAXN], int n, double eps) {
    int i, j;
    for (i = 0; i < n; i++) {
        double s = 0;
        for (j = 0; j < n; j++) s += M[i][j];
        for (j = 0; j < n; j++) M[i][j] = M[i][j] / (s + eps);
    }
}
static void hct_colnorm(double M[HCT_MAXN][HCT_MAXN], int n, double eps) {
    double s[HCT_MAXN];
    int i, j;
    for (j = 0; j < n; j++) { s[j] = 0; for (i = 0; i < n; i++) s[j] += M[i][j]; }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) M[i][j] = M[i][j] / (s[j] + eps);
}

/* the projection of one token's logits z (n*n, or n! for perm) -> out[n*n]; the log form is
   referenced by the exp form (same mathematics) */
static void hct_proj(mhc_projection proj, int n, int iters, double eps, const double *z, double *out) {
    static int perms[HCT_MAXP][HCT_MAXN];
    double M[HCT_MAXN][HCT_MAXN];
    int i, j, k;
    if (proj == MHC_PROJ_PERM) {
        int np = hct_perms(n, perms);
        double mx = z[0], s = 0, a[HCT_MAXP];
        for (k = 0; k < np; k++) if (z[k] > mx) mx = z[k];
        for (k = 0; k < np; k++) { a[k] = exp(z[k] - mx); s += a[k]; }
        for (i = 0; i < n * n; i++) out[i] = 0;
        for (k = 0; k < np; k++)
            for (i = 0; i < n; i++) out[i * n + perms[k][i]] += a[k] / s;
        return;
    }
    if (proj == MHC_PROJ_SOFTMAX) {
        for (i = 0; i < n; i++) {
            double mx = z[i * n], s = 0;
            for (j = 0; j < n; j++) if (z[i * n + j] > mx) mx = z[i * n + j];
            for (j = 0; j < n; j++) s += exp(z[i * n + j] - mx);
            for (j = 0; j < n; j++) M[i][j] = exp(z[i * n + j] - mx) / s + eps;
        }
        hct_colnorm(M, n, eps);
        for (k = 1; k < iters; k++) { hct_rownorm(M, n, eps); hct_colnorm(M, n, eps); }
    } else {
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) M[i][j] = exp(z[i * n + j]);
        for (k = 0; k < iters; k++) { hct_colnorm(M, n, eps); hct_rownorm(M, n, eps); }
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) out[i * n + j] = M[i][j];
}

static double hct_sig(double u) { return 1.0 / (1.0 + exp(-u)); }

/* A problem instance, all in double (the master copy). */
typedef struct hct_case {
    mhc_hc_spec s;
    int T, C, head, use_nw, use_f;
    int nfn, nscale, nbase, nnw;
    double *x, *fn, *scale, *base, *nw, *f;            /* inputs */
    double *wout, *wli, *whpre, *whpost, *wA;          /* loss weights */
} hct_case;

/* The reference loss: L = sum(wout*out) + sum(wli*li) + sum(whpre*hpre) + sum(whpost*hpost) + sum(wA*A)
   (head: L = sum(wli*out) + sum(whpre*h)). Optionally returns the outputs. */
static double hct_ref_loss(const hct_case *k, double *li_o, double *hpre_o, double *hpost_o, double *A_o, double *out_o) {
    const mhc_hc_spec *s = &k->s;
    int n = s->n, C = k->C, D = n * C, t, i, j, c, q;
    double L = 0;
    for (t = 0; t < k->T; t++) {
        const double *x = k->x + (size_t)t * D;
        double hpre[HCT_MAXN], hpost[HCT_MAXN], A[HCT_MAXN * HCT_MAXN], comb[HCT_MAXN * HCT_MAXN], li[64], out[HCT_MAXN * 64];
        if (!k->head && s->variant == MHC_VARIANT_NONE) {
            hpre[0] = hpost[0] = A[0] = 1;
        } else if (!k->head && s->variant == MHC_VARIANT_HC) {
            double xn[HCT_MAXN][64], d[HCT_MAXN][HCT_MAXN + 2];
            for (i = 0; i < n; i++) {
                double ms = 0;
                for (c = 0; c < C; c++) ms += x[i * C + c] * x[i * C + c];
                ms /= C;
                for (c = 0; c < C; c++) xn[i][c] = x[i * C + c] / sqrt(ms + s->norm_eps) * (k->use_nw ? k->nw[c] : 1.0);
                for (q = 0; q < n + 2; q++) {
                    d[i][q] = 0;
                    for (c = 0; c < C; c++) d[i][q] += k->fn[q * C + c] * xn[i][c];
                }
            }
            for (i = 0; i < n; i++) {
                hpre[i] = k->scale[0] * tanh(d[i][0]) + k->base[i];
                hpost[i] = k->scale[1] * tanh(d[i][1]) + k->base[n + i];
                for (j = 0; j < n; j++) A[i * n + j] = k->scale[2] * tanh(d[j][2 + i]) + k->base[2 * n + i * n + j];
            }
        } else {
            /* RMSNorm first, then the matmul */
            double ms = 0, xn[6 * 64], mix[2 * HCT_MAXN + HCT_MAXP];
            int rows = k->head ? n : s->m;
            for (j = 0; j < D; j++) ms += x[j] * x[j];
            ms /= D;
            for (j = 0; j < D; j++) xn[j] = x[j] / sqrt(ms + s->norm_eps) * (k->use_nw ? k->nw[j] : 1.0);
            for (q = 0; q < rows; q++) {
                mix[q] = 0;
                for (j = 0; j < D; j++) mix[q] += k->fn[q * D + j] * xn[j];
            }
            for (i = 0; i < n; i++) hpre[i] = hct_sig(mix[i] * k->scale[0] + k->base[i]) + s->pre_eps;
            if (!k->head) {
                double z[HCT_MAXP];
                for (i = 0; i < n; i++) hpost[i] = hct_sig(mix[n + i] * k->scale[1] + k->base[n + i]) * s->post_mult;
                for (q = 0; q < s->nres; q++) z[q] = mix[2 * n + q] * k->scale[2] + k->base[2 * n + q];
                hct_proj(s->projection, n, s->iters, s->sinkhorn_eps, z, comb);
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++)
                        A[i * n + j] = (s->projection != MHC_PROJ_PERM && s->orient == MHC_ORIENT_COMB_T) ? comb[j * n + i]
                                                                                                        : comb[i * n + j];
            }
        }
        for (c = 0; c < C; c++) {
            li[c] = 0;
            for (i = 0; i < n; i++) li[c] += hpre[i] * x[i * C + c];
            L += k->wli[t * C + c] * li[c];
            if (li_o) li_o[t * C + c] = li[c];
        }
        for (i = 0; i < n; i++) {
            L += k->whpre[t * n + i] * hpre[i];
            if (hpre_o) hpre_o[t * n + i] = hpre[i];
        }
        if (k->head) continue;
        for (i = 0; i < n; i++) {
            L += k->whpost[t * n + i] * hpost[i];
            if (hpost_o) hpost_o[t * n + i] = hpost[i];
            for (j = 0; j < n; j++) {
                L += k->wA[(t * n + i) * n + j] * A[i * n + j];
                if (A_o) A_o[(t * n + i) * n + j] = A[i * n + j];
            }
            for (c = 0; c < C; c++) {
                out[i * C + c] = k->use_f ? hpost[i] * k->f[t * C + c] : 0.0;
                for (j = 0; j < n; j++) out[i * C + c] += A[i * n + j] * x[j * C + c];
                L += k->wout[t * D + i * C + c] * out[i * C + c];
                if (out_o) out_o[t * D + i * C + c] = out[i * C + c];
            }
        }
    }
    return L;
}

static double *hct_alloc(size_t n) { return (double *)calloc(n ? n : 1, sizeof(double)); }

static void hct_case_make(hct_case *k, const mhc_hc_spec *s, int T, int C, int head, int use_nw, uint64_t seed) {
    mhc_rng rng;
    int n = s->n, fs[2] = {0, 0}, D = n * C;
    size_t i;
    memset(k, 0, sizeof *k);
    k->s = *s; k->T = T; k->C = C; k->head = head; k->use_nw = use_nw; k->use_f = !head;
    mhc_hc_param_shapes(NULL, s, C, head, fs, &k->nscale, &k->nbase, &k->nnw);
    k->nfn = fs[0] * fs[1];
    mhc_rng_seed(&rng, seed);
    k->x = hct_alloc((size_t)T * D); k->fn = hct_alloc(k->nfn); k->scale = hct_alloc(k->nscale);
    k->base = hct_alloc(k->nbase); k->nw = hct_alloc(k->nnw); k->f = hct_alloc((size_t)T * C);
    k->wout = hct_alloc((size_t)T * D); k->wli = hct_alloc((size_t)T * C); k->whpre = hct_alloc((size_t)T * n);
    k->whpost = hct_alloc((size_t)T * n); k->wA = hct_alloc((size_t)T * n * n);
    for (i = 0; i < (size_t)T * D; i++) k->x[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)k->nfn; i++) k->fn[i] = 0.5 * mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)k->nscale; i++) k->scale[i] = 0.5 + mhc_rng_uniform(&rng);
    for (i = 0; i < (size_t)k->nbase; i++) k->base[i] = 0.5 * mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)k->nnw; i++) k->nw[i] = 0.5 + mhc_rng_uniform(&rng);
    for (i = 0; i < (size_t)T * C; i++) k->f[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)T * D; i++) k->wout[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)T * C; i++) k->wli[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)T * n; i++) k->whpre[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)T * n; i++) k->whpost[i] = mhc_rng_normal(&rng);
    for (i = 0; i < (size_t)T * n * n; i++) k->wA[i] = mhc_rng_normal(&rng);
}

static void hct_case_free(hct_case *k) {
    free(k->x); free(k->fn); free(k->scale); free(k->base); free(k->nw); free(k->f);
    free(k->wout); free(k->wli); free(k->whpre); free(k->whpost); free(k->wA);
}

static mhc_real *hct_real(const double *a, size_t n) {
    mhc_real *r = (mhc_real *)calloc(n ? n : 1, sizeof(mhc_real));
    size_t i;
    if (a)
        for (i = 0; i < n; i++) r[i] = (mhc_real)a[i];
    return r;
}

/* The library's forward of the case (outputs in mhc_real) and its loss in double. */
typedef struct hct_lib {
    mhc_real *x, *fn, *scale, *base, *nw, *f;
    mhc_real *li, *hpre, *hpost, *A, *out;
    mhc_real *dx, *dfn, *dscale, *dbase, *dnw, *df;
} hct_lib;

static void hct_lib_make(hct_lib *l, const hct_case *k) {
    int n = k->s.n, D = n * k->C;
    size_t T = (size_t)k->T;
    memset(l, 0, sizeof *l);
    l->x = hct_real(k->x, T * D); l->fn = hct_real(k->fn, k->nfn); l->scale = hct_real(k->scale, k->nscale);
    l->base = hct_real(k->base, k->nbase); l->nw = hct_real(k->nw, k->nnw); l->f = hct_real(k->f, T * k->C);
    l->li = hct_real(NULL, T * k->C); l->hpre = hct_real(NULL, T * n); l->hpost = hct_real(NULL, T * n);
    l->A = hct_real(NULL, T * n * n); l->out = hct_real(NULL, T * D);
    l->dx = hct_real(NULL, T * D); l->dfn = hct_real(NULL, k->nfn); l->dscale = hct_real(NULL, k->nscale);
    l->dbase = hct_real(NULL, k->nbase); l->dnw = hct_real(NULL, k->nnw); l->df = hct_real(NULL, T * k->C);
}

static void hct_lib_free(hct_lib *l) {
    free(l->x); free(l->fn); free(l->scale); free(l->base); free(l->nw); free(l->f);
    free(l->li); free(l->hpre); free(l->hpost); free(l->A); free(l->out);
    free(l->dx); free(l->dfn); free(l->dscale); free(l->dbase); free(l->dnw); free(l->df);
}

static mhc_result hct_lib_forward(mhc_ctx *ctx, const hct_case *k, hct_lib *l, double *loss) {
    int n = k->s.n, D = n * k->C;
    size_t t, i;
    double L = 0;
    mhc_result r;
    const mhc_real *nw = k->use_nw ? l->nw : NULL;
    if (k->head) r = mhc_hc_head_forward(ctx, &k->s, l->li, l->hpre, l->x, l->fn, l->scale, l->base, nw, k->T, k->C);
    else r = mhc_hc_pre_forward(ctx, &k->s, l->li, l->hpre, l->hpost, l->A, l->x, l->fn, l->scale, l->base, nw, k->T, k->C);
    if (r != MHC_OK) return r;
    if (!k->head) mhc_k_hc_post_forward(l->out, l->x, l->A, l->hpost, k->use_f ? l->f : NULL, k->T, n, k->C);
    for (t = 0; t < (size_t)k->T; t++) {
        for (i = 0; i < (size_t)k->C; i++) L += k->wli[t * k->C + i] * (double)l->li[t * k->C + i];
        for (i = 0; i < (size_t)n; i++) L += k->whpre[t * n + i] * (double)l->hpre[t * n + i];
        if (k->head) continue;
        for (i = 0; i < (size_t)n; i++) L += k->whpost[t * n + i] * (double)l->hpost[t * n + i];
        for (i = 0; i < (size_t)n * n; i++) L += k->wA[t * n * n + i] * (double)l->A[t * n * n + i];
        for (i = 0; i < (size_t)D; i++) L += k->wout[t * D + i] * (double)l->out[t * D + i];
    }
    *loss = L;
    return MHC_OK;
}

/* The library's backward of the whole chain (gradients zeroed first). */
static mhc_result hct_lib_backward(mhc_ctx *ctx, const hct_case *k, hct_lib *l) {
    int n = k->s.n, D = n * k->C;
    size_t T = (size_t)k->T, i;
    mhc_real *wout = hct_real(k->wout, T * D), *wli = hct_real(k->wli, T * k->C), *whpre = hct_real(k->whpre, T * n);
    mhc_real *dhpost = hct_real(k->whpost, T * n), *dA = hct_real(k->wA, T * n * n);
    const mhc_real *nw = k->use_nw ? l->nw : NULL;
    mhc_result r;
    for (i = 0; i < T * D; i++) l->dx[i] = 0;
    for (i = 0; i < (size_t)k->nfn; i++) l->dfn[i] = 0;
    for (i = 0; i < (size_t)k->nscale; i++) l->dscale[i] = 0;
    for (i = 0; i < (size_t)k->nbase; i++) l->dbase[i] = 0;
    for (i = 0; i < (size_t)k->nnw; i++) l->dnw[i] = 0;
    for (i = 0; i < T * k->C; i++) l->df[i] = 0;
    if (k->head) {
        r = mhc_hc_head_backward(ctx, &k->s, l->dx, l->dfn, l->dscale, l->dbase, l->dnw, wli, whpre, l->x, l->fn,
                                 l->scale, l->base, nw, k->T, k->C);
    } else {
        mhc_k_hc_post_backward(l->dx, dA, dhpost, l->df, wout, l->x, l->A, l->hpost, k->use_f ? l->f : NULL, k->T, n, k->C);
        r = mhc_hc_pre_backward(ctx, &k->s, l->dx, l->dfn, l->dscale, l->dbase, l->dnw, wli, whpre, dhpost, dA, l->x, l->fn,
                                l->scale, l->base, nw, k->T, k->C);
    }
    free(wout); free(wli); free(whpre); free(dhpost); free(dA);
    return r;
}

/* relative error with a floor on the magnitude */
static double hct_rel(double a, double b, double floor) {
    double m = fabs(a) > fabs(b) ? fabs(a) : fabs(b);
    if (m < floor) m = floor;
    return fabs(a - b) / m;
}

/* Central differences (Richardson-extrapolated) of the reference loss w.r.t. every element of
   array v (count elements), compared with the library gradient g. Returns the max rel error. */
static double hct_fd_ref(hct_case *k, double *v, int count, const mhc_real *g) {
    int e;
    double worst = 0, h = 1e-4;
    for (e = 0; e < count; e++) {
        double v0 = v[e], d1, d2, fd;
        v[e] = v0 + h; d1 = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h; d1 -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 + h / 2; d2 = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h / 2; d2 -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0;
        fd = (4.0 * (d2 / h) - d1 / (2 * h)) / 3.0;
        {
            double r = hct_rel((double)g[e], fd, 1e-3);
            if (r > worst) worst = r;
        }
    }
    return worst;
}

#ifdef MHC_DOUBLE
/* Central differences of the LIBRARY's forward loss w.r.t. lib array v (Richardson-extrapolated
   like hct_fd_ref: h = 1e-4 and h/2, truncation error O(h^4)). */
static double hct_fd_lib(mhc_ctx *ctx, hct_case *k, hct_lib *l, mhc_real *v, int count, const mhc_real *g) {
    int e;
    double worst = 0, h = 1e-4;
    for (e = 0; e < count; e++) {
        double v0 = v[e], a, b, c, d, fd, r;
        v[e] = v0 + h; hct_lib_forward(ctx, k, l, &a);
        v[e] = v0 - h; hct_lib_forward(ctx, k, l, &b);
        v[e] = v0 + h / 2; hct_lib_forward(ctx, k, l, &c);
        v[e] = v0 - h / 2; hct_lib_forward(ctx, k, l, &d);
        v[e] = v0;
        fd = (4.0 * ((c - d) / h) - (a - b) / (2 * h)) / 3.0;
        r = hct_rel((double)g[e], fd, 1e-3);
        if (r > worst) worst = r;
    }
    return worst;
}
#endif

static double hct_maxdiff(const mhc_real *a, const double *b, size_t n) {
    size_t i;
    double m = 0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= m)) m = d;
    }
    return m;
}

/* worst errors seen (printed at the end of the group) */
static double TP(hct_worst_fwd), TP(hct_worst_grad_ref), TP(hct_worst_grad_lib);

/* One full check of a configuration: forward vs the naive reference, gradients vs finite
   differences of the reference (and of the library forward in double). */
static void hct_check_case(const mhc_hc_spec *s, int T, int C, int head, int use_nw, uint64_t seed, const char *label) {
    hct_case k;
    hct_lib l;
    mhc_ctx ctx;
    int n = s->n, D = n * C;
    double L, *li = hct_alloc((size_t)T * C), *hpre = hct_alloc((size_t)T * n), *hpost = hct_alloc((size_t)T * n);
    double *A = hct_alloc((size_t)T * n * n), *out = hct_alloc((size_t)T * D), e, tolf, tolg;
#ifdef MHC_DOUBLE
    tolf = 1e-12; tolg = 1e-6;
#else
    tolf = 2e-5; tolg = 2e-3;
#endif
    mhc_ctx_init(&ctx);
    TEST_BEGIN(label);
    hct_case_make(&k, s, T, C, head, use_nw, seed);
    hct_lib_make(&l, &k);
    hct_ref_loss(&k, li, hpre, hpost, A, out);
    CHECK_OK(hct_lib_forward(&ctx, &k, &l, &L));
    e = hct_maxdiff(l.li, li, (size_t)T * C);
    e = fmax(e, hct_maxdiff(l.hpre, hpre, (size_t)T * n));
    if (!head) {
        e = fmax(e, hct_maxdiff(l.hpost, hpost, (size_t)T * n));
        e = fmax(e, hct_maxdiff(l.A, A, (size_t)T * n * n));
        e = fmax(e, hct_maxdiff(l.out, out, (size_t)T * D));
    }
    CHECK_MSG(e <= tolf, "%s: forward differs from the naive reference by %.3g (tol %.3g)", label, e, tolf);
    if (e > TP(hct_worst_fwd)) TP(hct_worst_fwd) = e;
    CHECK_OK(hct_lib_backward(&ctx, &k, &l));
    {
        double g[7];
        int q;
        g[0] = hct_fd_ref(&k, k.x, T * D, l.dx);
        g[1] = hct_fd_ref(&k, k.fn, k.nfn, l.dfn);
        g[2] = hct_fd_ref(&k, k.scale, k.nscale, l.dscale);
        g[3] = hct_fd_ref(&k, k.base, k.nbase, l.dbase);
        g[4] = use_nw ? hct_fd_ref(&k, k.nw, k.nnw, l.dnw) : 0.0;
        g[5] = k.use_f ? hct_fd_ref(&k, k.f, T * C, l.df) : 0.0;
        g[6] = 0;
        for (q = 0; q < 6; q++) {
            CHECK_MSG(g[q] <= tolg, "%s: gradient %d vs finite differences of the reference: rel err %.3g (tol %.3g)",
                      label, q, g[q], tolg);
            if (g[q] > TP(hct_worst_grad_ref)) TP(hct_worst_grad_ref) = g[q];
        }
    }
#ifdef MHC_DOUBLE
    {
        double g[6];
        int q;
        g[0] = hct_fd_lib(&ctx, &k, &l, l.x, T * D, l.dx);
        g[1] = hct_fd_lib(&ctx, &k, &l, l.fn, k.nfn, l.dfn);
        g[2] = hct_fd_lib(&ctx, &k, &l, l.scale, k.nscale, l.dscale);
        g[3] = hct_fd_lib(&ctx, &k, &l, l.base, k.nbase, l.dbase);
        g[4] = use_nw ? hct_fd_lib(&ctx, &k, &l, l.nw, k.nnw, l.dnw) : 0.0;
        g[5] = k.use_f ? hct_fd_lib(&ctx, &k, &l, l.f, T * C, l.df) : 0.0;
        for (q = 0; q < 6; q++) {
            CHECK_MSG(g[q] <= 1e-6, "%s: gradient %d vs finite differences of the library forward: rel err %.3g",
                      label, q, g[q]);
            if (g[q] > TP(hct_worst_grad_lib)) TP(hct_worst_grad_lib) = g[q];
        }
    }
#endif
    hct_lib_free(&l);
    hct_case_free(&k);
    free(li); free(hpre); free(hpost); free(A); free(out);
}

static mhc_hc_spec hct_spec(mhc_hc_preset preset, mhc_hc_variant v, mhc_projection proj, int n) {
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = preset; cfg.variant = v; cfg.projection = proj;
    if (mhc_hc_resolve(&ctx, &cfg, n, &s) != MHC_OK) {
        fprintf(stderr, "hct_spec: %s\n", mhc_ctx_message(&ctx));
        memset(&s, 0, sizeof s);
    }
    return s;
}

static void hct_test_layer_grads(void) {
    static const mhc_hc_preset presets[4] = {MHC_PRESET_DSV4, MHC_PRESET_TILEKERNELS, MHC_PRESET_PAPER, MHC_PRESET_LITE};
    char label[128];
    int p, n, seed;
    for (n = 1; n <= 4; n++)
        for (seed = 1; seed <= 2; seed++) {
            int C = n == 1 ? 4 : 3;
            for (p = 0; p < 4; p++) {
                mhc_hc_spec s = hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "layer %s n=%d seed=%d", mhc_hc_preset_name(presets[p]), n, seed);
                hct_check_case(&s, 3, C, 0, seed == 1, (uint64_t)(100 * n + 10 * p + seed), label);
            }
            {   /* the other projections and orientations on the dsv4/paper knobs */
                mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_LOG, n);
                snprintf(label, sizeof label, "layer dsv4+log n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 0, seed == 2, (uint64_t)(1000 + 10 * n + seed), label);
                s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_SOFTMAX, n);
                snprintf(label, sizeof label, "layer paper+softmax n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 0, seed == 2, (uint64_t)(2000 + 10 * n + seed), label);
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_EXP, n);
                s.orient = MHC_ORIENT_H;
                snprintf(label, sizeof label, "layer dsv4+exp(eps)+h n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 0, seed == 1, (uint64_t)(3000 + 10 * n + seed), label);
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "layer hc n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 0, seed == 1, (uint64_t)(4000 + 10 * n + seed), label);
                s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "head dsv4 n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 1, seed == 1, (uint64_t)(5000 + 10 * n + seed), label);
                s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, n);
                snprintf(label, sizeof label, "head paper n=%d seed=%d", n, seed);
                hct_check_case(&s, 3, C, 1, seed == 2, (uint64_t)(6000 + 10 * n + seed), label);
            }
        }
    {
        mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
        hct_check_case(&s, 3, 5, 0, 0, 77, "layer none n=1");
        s = hct_spec(MHC_PRESET_LITE, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 5);   /* 120 permutations */
        hct_check_case(&s, 2, 2, 0, 1, 78, "layer lite n=5");
        s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 6);
        hct_check_case(&s, 2, 2, 0, 0, 79, "layer paper n=6");
    }
}

void TP(test_hc)(void); void TP(test_hc)(void) {
    TP(hct_worst_fwd) = TP(hct_worst_grad_ref) = TP(hct_worst_grad_lib) = 0;
    hct_test_layer_grads();
    printf("  [%s] hc: worst forward diff %.3g, worst grad rel err vs FD(reference) %.3g, vs FD(library) %.3g\n",
           TEST_PREC, TP(hct_worst_fwd), TP(hct_worst_grad_ref), TP(hct_worst_grad_lib));
}
