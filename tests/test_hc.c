/* tests/test_hc.c - the hyper-connection layer: config resolution, the Birkhoff projections,
 * the fused pre step, post, expand, head, HC and none variants, diagnostics, error paths.
 * References are naive double re-implementations written here (RMSNorm FIRST then matmul,
 * explicit row/column sums, permutations enumerated by counting), so they share no code with
 * mhc.h. Gradients are checked against central differences of the naive double reference (both
 * builds) and of the library's own forward (double build). tests/test_hc_ref.c runs the layer
 * checks again on the library's plain references (hct_use_ref). */

/* ---- naive references (double) ---- */

#define HCT_MAXN 6
#define HCT_MAXP 720          /* 6! */
#define HCT_MAXC 128          /* the reference's per-token buffers hold C <= HCT_MAXC channels */

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

/* The division of a Sinkhorn step by a line's sum s under an eps mode (MHC_SPEC.md Sec. 8), and
   what the knob tests need to know of the branches taken: how many lines took the eps branch
   (hct_sk_active) and how close any sum came to eps (hct_sk_margin, relative; the finite
   differences are valid only well away from the switch). */
static int hct_sk_mode = MHC_SK_EPS_ADD, hct_sk_active;
static double hct_sk_margin = HUGE_VAL;
static double hct_div(double v, double s, double eps) {
    if (hct_sk_mode != MHC_SK_EPS_ADD && eps > 0) {
        double m = fabs(s - eps) / eps;
        if (m < hct_sk_margin) hct_sk_margin = m;
    }
    switch (hct_sk_mode) {
    case MHC_SK_EPS_CLAMP: if (s < eps) { hct_sk_active++; return v / eps; } return v / s;
    case MHC_SK_EPS_THRESHOLD: if (s <= eps) { hct_sk_active++; return v; } return v / s;
    case MHC_SK_EPS_ZERO: if (s <= eps) { hct_sk_active++; return 0.0; } return v / s;
    default: return v / (s + eps);
    }
}

static void hct_rownorm(double M[HCT_MAXN][HCT_MAXN], int n, double eps) {
    int i, j;
    for (i = 0; i < n; i++) {
        double s = 0;
        for (j = 0; j < n; j++) s += M[i][j];
        for (j = 0; j < n; j++) M[i][j] = hct_div(M[i][j], s, eps);
    }
}
static void hct_colnorm(double M[HCT_MAXN][HCT_MAXN], int n, double eps) {
    double s[HCT_MAXN];
    int i, j;
    for (j = 0; j < n; j++) { s[j] = 0; for (i = 0; i < n; i++) s[j] += M[i][j]; }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) M[i][j] = hct_div(M[i][j], s[j], eps);
}

static void hct_proj(mhc_projection proj, int n, int iters, double eps, const double *z, double *out);

/* The projection with the spec's Sinkhorn knobs, written as MHC_SPEC.md Sec. 8 reads: the exp
   start from z minus each row's or column's max; row_first as the col_first projection of the
   transposed (shifted) logits, transposed back; the eps mode in every division. */
static void hct_proj_knobs(const mhc_hc_spec *s, const double *z, double *out) {
    double zz[HCT_MAXN * HCT_MAXN], o[HCT_MAXN * HCT_MAXN];
    int n = s->n, i, j;
    if (s->projection == MHC_PROJ_PERM) { hct_proj(s->projection, n, s->iters, s->sinkhorn_eps, z, out); return; }
    for (i = 0; i < n * n; i++) zz[i] = z[i];
    if (s->projection != MHC_PROJ_SOFTMAX && s->exp_shift == MHC_EXP_SHIFT_ROW_MAX)
        for (i = 0; i < n; i++) {
            double mx = z[i * n];
            for (j = 1; j < n; j++) if (z[i * n + j] > mx) mx = z[i * n + j];
            for (j = 0; j < n; j++) zz[i * n + j] = z[i * n + j] - mx;
        }
    if (s->projection != MHC_PROJ_SOFTMAX && s->exp_shift == MHC_EXP_SHIFT_COL_MAX)
        for (j = 0; j < n; j++) {
            double mx = z[j];
            for (i = 1; i < n; i++) if (z[i * n + j] > mx) mx = z[i * n + j];
            for (i = 0; i < n; i++) zz[i * n + j] = z[i * n + j] - mx;
        }
    if (s->sinkhorn_order == MHC_SK_ROW_FIRST) {
        double t[HCT_MAXN * HCT_MAXN];
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) t[j * n + i] = zz[i * n + j];
        memcpy(zz, t, sizeof t);
    }
    hct_sk_mode = s->sinkhorn_eps_mode ? (int)s->sinkhorn_eps_mode : MHC_SK_EPS_ADD;
    hct_proj(s->projection, n, s->iters, s->sinkhorn_eps, zz, o);
    hct_sk_mode = MHC_SK_EPS_ADD;
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) out[i * n + j] = s->sinkhorn_order == MHC_SK_ROW_FIRST ? o[j * n + i] : o[i * n + j];
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

/* KromHC, naively: per factor the permutation mixture of its a! logits (hct_perms, softmax), then
   A = kron(U_1, kron(..)) built pairwise as numpy.kron does, kron(P, Q)[i q + k][j q + l] =
   P[i][j] Q[k][l]. factors[0..K), n = their product (<= 64). */
static void hct_kron(int K, const int *factors, const double *z, double *out) {
    static int perms[HCT_MAXP][HCT_MAXN];
    double acc[64 * 64], nxt[64 * 64], U[HCT_MAXN * HCT_MAXN];
    int p = 1, k, i, j, a, b, r, zo = 0;
    acc[0] = 1.0;
    for (k = 0; k < K; k++) {
        int q = factors[k], np = hct_perms(q, perms);
        double mx = z[zo], sum = 0.0;
        for (r = 0; r < np; r++) if (z[zo + r] > mx) mx = z[zo + r];
        for (r = 0; r < np; r++) sum += exp(z[zo + r] - mx);
        for (i = 0; i < q * q; i++) U[i] = 0.0;
        for (r = 0; r < np; r++)
            for (i = 0; i < q; i++) U[i * q + perms[r][i]] += exp(z[zo + r] - mx) / sum;
        zo += np;
        for (i = 0; i < p; i++)
            for (j = 0; j < p; j++)
                for (a = 0; a < q; a++)
                    for (b = 0; b < q; b++) nxt[(i * q + a) * (p * q) + j * q + b] = acc[i * p + j] * U[a * q + b];
        p *= q;
        for (i = 0; i < p * p; i++) acc[i] = nxt[i];
    }
    for (i = 0; i < p * p; i++) out[i] = acc[i];
}

/* Orthostochastic, naively: X = Z / (||Z||_F + 1e-7); K times X = 3 X + (-3.2 (X X^T) + 1.2 (X X^T)^2) X;
   H = X * X elementwise. n <= HCT_MAXN. */
static void hct_ortho(int n, int K, const double *z, double *out) {
    double X[HCT_MAXN][HCT_MAXN], A[HCT_MAXN][HCT_MAXN], A2[HCT_MAXN][HCT_MAXN], B[HCT_MAXN][HCT_MAXN], Y[HCT_MAXN][HCT_MAXN];
    double nrm = 0.0;
    int i, j, l, it;
    for (i = 0; i < n * n; i++) nrm += z[i] * z[i];
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) X[i][j] = z[i * n + j] / (sqrt(nrm) + 1e-7);
    for (it = 0; it < K; it++) {
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) { A[i][j] = 0.0; for (l = 0; l < n; l++) A[i][j] += X[i][l] * X[j][l]; }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) { A2[i][j] = 0.0; for (l = 0; l < n; l++) A2[i][j] += A[i][l] * A[l][j]; }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) B[i][j] = -3.2 * A[i][j] + 1.2 * A2[i][j];
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) { Y[i][j] = 3.0 * X[i][j]; for (l = 0; l < n; l++) Y[i][j] += B[i][l] * X[l][j]; }
        for (i = 0; i < n; i++)
            for (j = 0; j < n; j++) X[i][j] = Y[i][j];
    }
    for (i = 0; i < n; i++)
        for (j = 0; j < n; j++) out[i * n + j] = X[i][j] * X[i][j];
}

/* The projection of a spec's residual logits z [s->nres] -> comb [n*n] (before orientation). */
static void hct_proj_spec(const mhc_hc_spec *s, const double *z, double *comb) {
    if (s->projection == MHC_PROJ_KRON) hct_kron(s->kron_count, s->kron_factors, z, comb);
    else if (s->projection == MHC_PROJ_ORTHO) hct_ortho(s->n, s->ns_iters, z, comb);
    else hct_proj_knobs(s, z, comb);
}

static double hct_sig(double u) { return 1.0 / (1.0 + exp(-u)); }

/* the RMS divisor of a line with mean square ms: sqrt(ms + eps), or sqrt(ms) + eps (outside) */
static double hct_rms(double ms, const mhc_hc_spec *s) {
    return s->norm_eps_mode == MHC_NORM_EPS_OUTSIDE ? sqrt(ms) + s->norm_eps : sqrt(ms + s->norm_eps);
}

/* NaN and its test by the bit pattern: -ffast-math folds sqrt(-1) and x != x */
static double hct_nan(void) {
    uint64_t u = 0x7ff8000000000000ull;
    double d;
    memcpy(&d, &u, sizeof d);
    return d;
}
static int hct_finite(double v) {
    uint64_t u;
    memcpy(&u, &v, sizeof u);
    return ((u >> 52) & 0x7ff) != 0x7ff;
}

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
        double hpre[HCT_MAXN], hpost[HCT_MAXN], A[HCT_MAXN * HCT_MAXN], comb[HCT_MAXN * HCT_MAXN], li[HCT_MAXC], out[HCT_MAXN * HCT_MAXC];
        if (!k->head && s->variant == MHC_VARIANT_NONE) {
            hpre[0] = hpost[0] = A[0] = 1;
        } else if (!k->head && s->variant == MHC_VARIANT_HC) {
            double xn[HCT_MAXN][HCT_MAXC], d[HCT_MAXN][HCT_MAXN + 2];
            for (i = 0; i < n; i++) {
                double ms = 0;
                for (c = 0; c < C; c++) ms += x[i * C + c] * x[i * C + c];
                ms /= C;
                for (c = 0; c < C; c++) xn[i][c] = x[i * C + c] / hct_rms(ms, s) * (k->use_nw ? k->nw[c] : 1.0);
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
            double ms = 0, xn[HCT_MAXN * HCT_MAXC], mix[2 * HCT_MAXN + HCT_MAXP];
            int rows = k->head ? n : s->m;
            if (s->norm_scope != MHC_NORM_SCOPE_STREAM) {
                for (j = 0; j < D; j++) ms += x[j] * x[j];
                ms /= D;
                for (j = 0; j < D; j++) xn[j] = x[j] / hct_rms(ms, s) * (k->use_nw ? k->nw[j] : 1.0);
            } else {                          /* each stream by its own RMS over C */
                for (i = 0; i < n; i++) {
                    ms = 0;
                    for (c = 0; c < C; c++) ms += x[i * C + c] * x[i * C + c];
                    ms /= C;
                    for (c = 0; c < C; c++) xn[i * C + c] = x[i * C + c] / hct_rms(ms, s) * (k->use_nw ? k->nw[i * C + c] : 1.0);
                }
            }
            for (q = 0; q < rows; q++) {
                mix[q] = 0;
                for (j = 0; j < D; j++) mix[q] += k->fn[q * D + j] * xn[j];
            }
            for (i = 0; i < n; i++) hpre[i] = hct_sig(mix[i] * k->scale[0] + k->base[i]) + s->pre_eps;
            if (!k->head) {
                double z[HCT_MAXP];
                for (i = 0; i < n; i++) hpost[i] = hct_sig(mix[n + i] * k->scale[1] + k->base[n + i]) * s->post_mult;
                for (q = 0; q < s->nres; q++) z[q] = mix[2 * n + q] * k->scale[2] + k->base[2 * n + q];
                hct_proj_spec(s, z, comb);
                for (i = 0; i < n; i++)
                    for (j = 0; j < n; j++)   /* comb_t, except for the mixtures built directly */
                        A[i * n + j] = (s->projection != MHC_PROJ_PERM && s->projection != MHC_PROJ_KRON &&
                                        s->orient == MHC_ORIENT_COMB_T) ? comb[j * n + i] : comb[i * n + j];
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

/* Added to the diagonal of an n x n residual block of base by hct_case_make and hct_pre_in_make
   (0 by default; tests/test_kron_ortho.c sets it for well-conditioned orthostochastic logits). */
static double TP(hct_res_diag);

static void hct_case_make(hct_case *k, const mhc_hc_spec *s, int T, int C, int head, int use_nw, uint64_t seed) {
    mhc_rng rng;
    int n = s->n, fs[2] = {0, 0}, D = n * C;
    size_t i;
    memset(k, 0, sizeof *k);
    if (C > HCT_MAXC || n > HCT_MAXN) {   /* (a test's own mistake: the reference would overflow) */
        fprintf(stderr, "hct_case_make: C = %d, n = %d exceed the reference's HCT_MAXC = %d, HCT_MAXN = %d\n", C, n,
                HCT_MAXC, HCT_MAXN);
        exit(1);
    }
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
    if (!head && k->nbase >= 2 * n + n * n)
        for (i = 0; i < (size_t)n; i++) k->base[2 * n + i * n + i] += TP(hct_res_diag);
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

/* Set by tests/test_hc_ref.c: the checks below then run the plain references (mhc_ref_hc_*)
   instead of the fast path (the same arguments, checks and results). */
static int TP(hct_use_ref);
#define HCT_PRE_FWD  (TP(hct_use_ref) ? mhc_ref_hc_pre_forward : mhc_hc_pre_forward)
#define HCT_PRE_BWD  (TP(hct_use_ref) ? mhc_ref_hc_pre_backward : mhc_hc_pre_backward)
#define HCT_HEAD_FWD (TP(hct_use_ref) ? mhc_ref_hc_head_forward : mhc_hc_head_forward)
#define HCT_HEAD_BWD (TP(hct_use_ref) ? mhc_ref_hc_head_backward : mhc_hc_head_backward)
#define HCT_POST_FWD (TP(hct_use_ref) ? mhc_ref_hc_post_forward : mhc_k_hc_post_forward)
#define HCT_POST_BWD (TP(hct_use_ref) ? mhc_ref_hc_post_backward : mhc_k_hc_post_backward)

/* An expected message "mhc_hc_...: ..." with the name of the function under test (mhc_ref_hc_...). */
static const char *hct_msg(const char *fast_msg) {
    static char b[256];
    if (!TP(hct_use_ref)) return fast_msg;
    snprintf(b, sizeof b, "mhc_ref_%s", fast_msg + 4);
    return b;
}

static mhc_result hct_lib_forward(mhc_ctx *ctx, const hct_case *k, hct_lib *l, double *loss) {
    int n = k->s.n, D = n * k->C;
    size_t t, i;
    double L = 0;
    mhc_result r;
    const mhc_real *nw = k->use_nw ? l->nw : NULL;
    if (k->head)
        r = HCT_HEAD_FWD(ctx, &k->s, l->li, l->hpre, l->x, l->fn, l->scale, l->base, nw, k->T, k->C);
    else
        r = HCT_PRE_FWD(ctx, &k->s, l->li, l->hpre, l->hpost, l->A, l->x, l->fn, l->scale, l->base, nw, k->T, k->C);
    if (r != MHC_OK) return r;
    if (!k->head) HCT_POST_FWD(l->out, l->x, l->A, l->hpost, k->use_f ? l->f : NULL, k->T, n, k->C);
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
        r = HCT_HEAD_BWD(ctx, &k->s, l->dx, l->dfn, l->dscale, l->dbase, l->dnw, wli, whpre, l->x, l->fn,
                         l->scale, l->base, nw, k->T, k->C);
    } else {
        HCT_POST_BWD(l->dx, dA, dhpost, l->df, wout, l->x, l->A, l->hpost, k->use_f ? l->f : NULL, k->T, n, k->C);
        r = HCT_PRE_BWD(ctx, &k->s, l->dx, l->dfn, l->dscale, l->dbase, l->dnw, wli, whpre, dhpost, dA, l->x, l->fn,
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

/* The error measure of the finite-difference checks: per element |g - fd| / max(|g|, |fd|, 1e-3),
   or, with hct_scaled set (the wide cases, whose elements sum many terms), |g - fd| divided by
   max(1e-3, max |fd| over the tensor), like the GPT's tests. */
static int TP(hct_scaled);
static double hct_fd_worst(const mhc_real *g, const double *fd, int count) {
    double worst = 0, m = 1e-3, r;
    int e;
    if (TP(hct_scaled))
        for (e = 0; e < count; e++) m = fmax(m, fabs(fd[e]));
    for (e = 0; e < count; e++) {
        r = TP(hct_scaled) ? fabs((double)g[e] - fd[e]) / m : hct_rel((double)g[e], fd[e], 1e-3);
        if (!(r <= worst)) worst = r;     /* NaN propagates */
    }
    return worst;
}

/* Central differences (Richardson-extrapolated) of the reference loss w.r.t. every element of
   array v (count elements), compared with the library gradient g. Returns the max rel error. */
static double hct_fd_ref(hct_case *k, double *v, int count, const mhc_real *g) {
    int e;
    double worst, h = 1e-4, *fd = hct_alloc((size_t)count);
    for (e = 0; e < count; e++) {
        double v0 = v[e], d1, d2;
        v[e] = v0 + h; d1 = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h; d1 -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 + h / 2; d2 = hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0 - h / 2; d2 -= hct_ref_loss(k, 0, 0, 0, 0, 0);
        v[e] = v0;
        fd[e] = (4.0 * (d2 / h) - d1 / (2 * h)) / 3.0;
    }
    worst = hct_fd_worst(g, fd, count);
    free(fd);
    return worst;
}

#ifdef MHC_DOUBLE
/* Central differences of the LIBRARY's forward loss w.r.t. lib array v (Richardson-extrapolated
   like hct_fd_ref: h = 1e-4 and h/2, truncation error O(h^4)). */
static double hct_fd_lib(mhc_ctx *ctx, hct_case *k, hct_lib *l, mhc_real *v, int count, const mhc_real *g) {
    int e;
    double worst, h = 1e-4, *fd = hct_alloc((size_t)count);
    for (e = 0; e < count; e++) {
        double v0 = v[e], a, b, c, d;
        v[e] = v0 + h; hct_lib_forward(ctx, k, l, &a);
        v[e] = v0 - h; hct_lib_forward(ctx, k, l, &b);
        v[e] = v0 + h / 2; hct_lib_forward(ctx, k, l, &c);
        v[e] = v0 - h / 2; hct_lib_forward(ctx, k, l, &d);
        v[e] = v0;
        fd[e] = (4.0 * ((c - d) / h) - (a - b) / (2 * h)) / 3.0;
    }
    worst = hct_fd_worst(g, fd, count);
    free(fd);
    return worst;
}
#endif

static double hct_maxdiff(const mhc_real *a, const double *b, size_t n) {
    size_t i;
    double m = 0;
    for (i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (!hct_finite(d)) return HUGE_VAL;
        if (d > m) m = d;
    }
    return m;
}

/* worst errors seen (printed at the end of the group) */
static double TP(hct_worst_fwd), TP(hct_worst_grad_ref), TP(hct_worst_grad_lib);

/* One full check of a configuration: forward vs the naive reference, gradients vs finite
   differences of the reference (and of the library forward in double). */
static void hct_check_case(const mhc_hc_spec *s, int T, int C, int head, int use_nw, uint64_t seed, const char *name) {
    static char label[192];   /* (static: test_current keeps pointing at it) */
    static unsigned calls;
    hct_case k;
    hct_lib l;
    mhc_ctx ctx;
    int n = s->n, D = n * C;
    /* Under valgrind (make valgrind) one case in three: each code path still runs there many
       times, and the finite differences of every case would take most of CI's time. */
    if (getenv("MHC_TEST_UNDER_VALGRIND") && calls++ % 3 != 0) return;
    double L, *li = hct_alloc((size_t)T * C), *hpre = hct_alloc((size_t)T * n), *hpost = hct_alloc((size_t)T * n);
    double *A = hct_alloc((size_t)T * n * n), *out = hct_alloc((size_t)T * D), e, tolf, tolg;
#ifdef MHC_DOUBLE
    tolf = 1e-12; tolg = 1e-6;
#else
    tolf = 2e-5; tolg = TP(hct_scaled) ? 1e-5 : 2e-3;
#endif
    snprintf(label, sizeof label, "%s%s", TP(hct_use_ref) ? "reference (mhc_ref_hc_*): " : "", name);
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
        /* C = 67: the kernels' vector blocks (64 channels for the stream mixes, 16 lanes for the dot
           products over C, the lane sums of squares over n*C) and their tails, against the naive
           reference and its finite differences (few tokens: every element is differenced; the
           grouped Sinkhorn's short groups are covered bit for bit below). Errors scaled by the
           tensor's largest gradient (hct_fd_worst); float tolerance 1e-5. */
        TP(hct_scaled) = 1;
        s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
        hct_check_case(&s, 2, 67, 0, 1, 80, "layer dsv4 n=4 C=67");
        hct_check_case(&s, 2, 67, 1, 0, 81, "head dsv4 n=4 C=67");
        s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 3);
        hct_check_case(&s, 3, 67, 0, 0, 82, "layer paper n=3 C=67");
        TP(hct_scaled) = 0;
    }
}


static void hct_test_config(void) {
    mhc_ctx ctx;
    mhc_hc_config cfg;
    mhc_hc_spec s;
    mhc_hc_preset pr = MHC_PRESET_COUNT;
    mhc_hc_variant va = MHC_VARIANT_COUNT;
    mhc_projection pj = MHC_PROJ_COUNT;
    mhc_orient orr = MHC_ORIENT_COUNT;
    int i;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("hc config: zeroed config is dsv4");
    CHECK_OK(mhc_hc_resolve(&ctx, NULL, 4, &s));
    CHECK(s.preset == MHC_PRESET_DSV4 && s.variant == MHC_VARIANT_MHC && s.projection == MHC_PROJ_SOFTMAX);
    CHECK(s.orient == MHC_ORIENT_COMB_T && s.iters == 20 && s.n == 4 && s.nres == 16 && s.m == 24);
    CHECK(s.norm_eps == 1e-6 && s.pre_eps == 1e-6 && s.post_mult == 2.0 && s.sinkhorn_eps == 1e-6);
    TEST_BEGIN("hc config: preset table");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_TILEKERNELS;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.post_mult == 1.0 && s.iters == 10 && s.projection == MHC_PROJ_SOFTMAX && s.orient == MHC_ORIENT_COMB_T);
    CHECK(s.norm_eps == 1e-6 && s.pre_eps == 1e-6 && s.sinkhorn_eps == 1e-6);
    cfg.preset = MHC_PRESET_PAPER;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.norm_eps == 1e-20 && s.pre_eps == 0.0 && s.post_mult == 2.0 && s.projection == MHC_PROJ_EXP);
    CHECK(s.iters == 20 && s.sinkhorn_eps == 0.0 && s.orient == MHC_ORIENT_H && s.variant == MHC_VARIANT_MHC);
    cfg.preset = MHC_PRESET_LITE;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_LITE && s.projection == MHC_PROJ_PERM && s.nres == 24 && s.m == 32);
    CHECK(s.norm_eps == 1e-20 && s.pre_eps == 0.0 && s.post_mult == 2.0);
    cfg.variant = MHC_VARIANT_MHC;                   /* mhc forced on the lite preset: exp start */
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_MHC && s.projection == MHC_PROJ_EXP && s.nres == 16);
    TEST_BEGIN("hc config: overrides and MHC_ZERO");
    memset(&cfg, 0, sizeof cfg);
    cfg.sinkhorn_iters = 7; cfg.sinkhorn_eps = 1e-3; cfg.post_mult = 1.5; cfg.orient = MHC_ORIENT_H;
    cfg.projection = MHC_PROJ_LOG; cfg.pre_eps = MHC_ZERO; cfg.norm_eps = MHC_ZERO;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.iters == 7 && s.sinkhorn_eps == 1e-3 && s.post_mult == 1.5 && s.orient == MHC_ORIENT_H);
    CHECK(s.projection == MHC_PROJ_LOG && s.pre_eps == 0.0 && s.norm_eps == 0.0 && s.m == 15);
    cfg.projection = MHC_PROJ_PERM;                  /* mhc + perm = lite */
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 3, &s));
    CHECK(s.variant == MHC_VARIANT_LITE && s.nres == 6 && s.m == 12);
    memset(&cfg, 0, sizeof cfg);
    cfg.variant = MHC_VARIANT_HC;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 4, &s));
    CHECK(s.variant == MHC_VARIANT_HC && s.m == 6 && s.nres == 0);
    CHECK(mhc_hc_fn_rows(&s, 0) == 6 && mhc_hc_fn_rows(&s, 1) == 4 && mhc_hc_fn_rows(NULL, 0) == 0);
    cfg.variant = MHC_VARIANT_NONE;
    CHECK_OK(mhc_hc_resolve(&ctx, &cfg, 1, &s));
    CHECK(s.variant == MHC_VARIANT_NONE && s.m == 0);
    TEST_BEGIN("hc config: errors");
    CHECK_RESULT(mhc_hc_resolve(&ctx, NULL, 4, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "out is NULL");
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 2, &s), MHC_ERR_VALUE);           /* none with n = 2 */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "needs n = 1, not n = 2");
    CHECK_RESULT(mhc_hc_resolve(&ctx, NULL, 0, &s), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 0 streams");
    CHECK_RESULT(mhc_hc_resolve(&ctx, NULL, 2000, &s), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 2000 streams is too many");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = MHC_PRESET_LITE;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 9, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 9 is too large (at most n = 8");
    cfg.variant = MHC_VARIANT_LITE; cfg.projection = MHC_PROJ_SOFTMAX;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant lite needs projection perm, not softmax");
    memset(&cfg, 0, sizeof cfg);
    cfg.sinkhorn_iters = -1;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "sinkhorn_iters = -1");
    cfg.sinkhorn_iters = 0; cfg.norm_eps = -0.5;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "norm_eps = -0.5 is negative");
    cfg.norm_eps = 0; cfg.post_mult = HUGE_VAL;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_NONFINITE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "post_mult = inf is not finite");
    cfg.post_mult = 0; cfg.sinkhorn_eps = hct_nan();
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_NONFINITE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "sinkhorn_eps");
    cfg.sinkhorn_eps = 0; cfg.pre_eps = -2;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "pre_eps = -2 is negative");
    memset(&cfg, 0, sizeof cfg);
    cfg.preset = (mhc_hc_preset)17;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "preset 17");
    cfg.preset = MHC_PRESET_DSV4; cfg.variant = (mhc_hc_variant)9;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant 9");
    cfg.variant = MHC_VARIANT_PRESET; cfg.projection = (mhc_projection)-1;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "projection -1");
    cfg.projection = MHC_PROJ_PRESET; cfg.orient = (mhc_orient)5;
    CHECK_RESULT(mhc_hc_resolve(&ctx, &cfg, 4, &s), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "orient 5");
    TEST_BEGIN("hc config: names");
    for (i = 0; i < MHC_PRESET_COUNT; i++) {
        CHECK_OK(mhc_hc_preset_parse(&ctx, mhc_hc_preset_name((mhc_hc_preset)i), &pr));
        CHECK(pr == (mhc_hc_preset)i);
    }
    for (i = 1; i < MHC_VARIANT_COUNT; i++) {
        CHECK_OK(mhc_hc_variant_parse(&ctx, mhc_hc_variant_name((mhc_hc_variant)i), &va));
        CHECK(va == (mhc_hc_variant)i);
    }
    for (i = 1; i < MHC_PROJ_COUNT; i++) {
        CHECK_OK(mhc_projection_parse(&ctx, mhc_projection_name((mhc_projection)i), &pj));
        CHECK(pj == (mhc_projection)i);
    }
    for (i = 1; i < MHC_ORIENT_COUNT; i++) {
        CHECK_OK(mhc_orient_parse(&ctx, mhc_orient_name((mhc_orient)i), &orr));
        CHECK(orr == (mhc_orient)i);
    }
    CHECK(strcmp(mhc_hc_preset_name((mhc_hc_preset)99), "?") == 0 && strcmp(mhc_orient_name((mhc_orient)99), "?") == 0);
    CHECK(strcmp(mhc_projection_name((mhc_projection)99), "?") == 0 && strcmp(mhc_hc_variant_name((mhc_hc_variant)99), "?") == 0);
    CHECK_RESULT(mhc_hc_preset_parse(&ctx, "dsv5", &pr), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown preset 'dsv5'");
    CHECK_RESULT(mhc_hc_variant_parse(&ctx, "preset", &va), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown variant 'preset'");
    CHECK_RESULT(mhc_projection_parse(&ctx, "sinkhorn", &pj), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown projection 'sinkhorn'");
    CHECK_RESULT(mhc_orient_parse(&ctx, "v", &orr), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "unknown orientation 'v'");
    CHECK_RESULT(mhc_hc_preset_parse(&ctx, NULL, &pr), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_preset_parse: NULL");
    CHECK_RESULT(mhc_hc_variant_parse(&ctx, "hc", NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_variant_parse: NULL");
    CHECK_RESULT(mhc_projection_parse(&ctx, NULL, &pj), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_projection_parse: NULL");
    CHECK_RESULT(mhc_orient_parse(&ctx, NULL, &orr), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_orient_parse: NULL");
    CHECK(mhc_perm_count(1) == 1 && mhc_perm_count(4) == 24 && mhc_perm_count(8) == 40320);
    CHECK(mhc_perm_count(0) == -1 && mhc_perm_count(13) == -1);
}

/* Standalone projections: forward vs the naive reference, backward vs finite differences of
   the reference, accumulation. */
static void hct_test_projections(void) {
    static const mhc_projection projs[4] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP, MHC_PROJ_LOG, MHC_PROJ_PERM};
    static const int iters_list[3] = {1, 3, 20};
    static const double eps_list[2] = {0.0, 1e-6};
    mhc_ctx ctx;
    mhc_rng rng;
    int p, n, ii, ei, T = 3;
    double worst_f = 0, worst_g = 0, tolf, tolg;
#ifdef MHC_DOUBLE
    tolf = 1e-13; tolg = 1e-6;
#else
    tolf = 1e-6; tolg = 2e-3;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 42);
    TEST_BEGIN("sinkhorn: forward vs naive, backward vs finite differences");
    for (p = 0; p < 4; p++)
        for (n = 1; n <= 5; n++)
            for (ii = 0; ii < 3; ii++)
                for (ei = 0; ei < 2; ei++) {
                    int nres = projs[p] == MHC_PROJ_PERM ? (int)mhc_perm_count(n) : n * n, t, k, iters = iters_list[ii];
                    double eps = eps_list[ei];
                    double *z = hct_alloc((size_t)T * nres), *w = hct_alloc((size_t)T * n * n), ref[HCT_MAXN * HCT_MAXN];
                    mhc_real *zr, *out = hct_real(NULL, (size_t)T * n * n), *dz = hct_real(NULL, (size_t)T * nres), *wr;
                    if (projs[p] == MHC_PROJ_PERM && (ii > 0 || ei > 0)) { free(z); free(w); free(out); free(dz); continue; }
                    for (k = 0; k < T * nres; k++) z[k] = 2.0 * mhc_rng_normal(&rng);
                    for (k = 0; k < T * n * n; k++) w[k] = mhc_rng_normal(&rng);
                    zr = hct_real(z, (size_t)T * nres);
                    wr = hct_real(w, (size_t)T * n * n);
                    CHECK_OK(mhc_sinkhorn_forward(&ctx, projs[p], n, iters, eps, out, zr, T));
                    for (t = 0; t < T; t++) {
                        double e;
                        hct_proj(projs[p], n, iters, eps, z + (size_t)t * nres, ref);
                        e = hct_maxdiff(out + (size_t)t * n * n, ref, (size_t)n * n);
                        if (e > worst_f) worst_f = e;
                        CHECK_MSG(e <= tolf, "%s n=%d iters=%d eps=%g: forward differs by %.3g", mhc_projection_name(projs[p]),
                                  n, iters, eps, e);
                    }
                    CHECK_OK(mhc_sinkhorn_backward(&ctx, projs[p], n, iters, eps, dz, wr, zr, T));
                    for (t = 0; t < T; t++)
                        for (k = 0; k < nres; k++) {
                            /* Richardson-extrapolated central difference of sum(w * proj(z)) */
                            double *zt = z + (size_t)t * nres, z0 = zt[k], h = 1e-4, d[4], fd, r;
                            int q, a;
                            for (q = 0; q < 4; q++) {
                                static const double off[4] = {1.0, -1.0, 0.5, -0.5};
                                zt[k] = z0 + off[q] * h;
                                hct_proj(projs[p], n, iters, eps, zt, ref);
                                d[q] = 0;
                                for (a = 0; a < n * n; a++) d[q] += w[(size_t)t * n * n + a] * ref[a];
                            }
                            zt[k] = z0;
                            fd = (4.0 * (d[2] - d[3]) / h - (d[0] - d[1]) / (2 * h)) / 3.0;
                            r = hct_rel((double)dz[(size_t)t * nres + k], fd, 1e-3);
                            if (r > worst_g) worst_g = r;
                            CHECK_MSG(r <= tolg, "%s n=%d iters=%d eps=%g: d_logits[%d,%d] = %.10g, finite differences %.10g",
                                      mhc_projection_name(projs[p]), n, iters, eps, t, k, (double)dz[(size_t)t * nres + k], fd);
                        }
                    /* the backward accumulates */
                    {
                        mhc_real *dz2 = hct_real(NULL, (size_t)T * nres);
                        double e = 0;
                        for (k = 0; k < T * nres; k++) dz2[k] = dz[k];
                        CHECK_OK(mhc_sinkhorn_backward(&ctx, projs[p], n, iters, eps, dz2, wr, zr, T));
                        for (k = 0; k < T * nres; k++) e = fmax(e, fabs((double)dz2[k] - 2.0 * (double)dz[k]));
                        CHECK_LE(e, 1e-5);
                        free(dz2);
                    }
                    free(z); free(w); free(zr); free(wr); free(out); free(dz);
                }
    printf("  [%s] sinkhorn: worst forward diff %.3g, worst d_logits rel err vs FD(reference) %.3g\n", TEST_PREC, worst_f, worst_g);
}

/* Which marginal is exact after a truncated iteration. */
static void hct_test_marginals(void) {
    mhc_ctx ctx;
    mhc_rng rng;
    int n = 4, T = 16, k;
    mhc_real z[16 * 24], out[16 * 16];
    double re, ce, tol0;
#ifdef MHC_DOUBLE
    tol0 = 1e-14;
#else
    tol0 = 1e-6;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 7);
    for (k = 0; k < T * 24; k++) z[k] = (mhc_real)(3.0 * mhc_rng_normal(&rng));
    TEST_BEGIN("sinkhorn marginals: softmax start ends on columns");
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, n, 1, 1e-6, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(ce, 1e-4);              /* 1 - colsum = eps / (c + eps), c the column's mass (>= ~0.03 here) */
    CHECK(re > 1e-2);                /* rows are not balanced after one iteration */
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, n, 1, 0.0, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(ce, tol0);
    TEST_BEGIN("sinkhorn marginals: exp and log start end on rows");
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 1, 0.0, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(re, tol0);
    CHECK(ce > 1e-2);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 2, 0.0, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(re, tol0);
    TEST_BEGIN("sinkhorn marginals: permutation mixture is exactly doubly stochastic");
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_PERM, n, 0, 0.0, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(re, tol0);
    CHECK_LE(ce, tol0);
    for (k = 0; k < T * 16; k++) CHECK(out[k] >= 0);
    TEST_BEGIN("sinkhorn marginals: 20 iterations nearly doubly stochastic");
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, n, 20, 1e-6, out, z, T));
    CHECK_OK(mhc_hc_ds_distance(&ctx, out, (size_t)T, n, &re, &ce));
    CHECK_LE(ce, 1e-4);
    CHECK_LE(re, 0.05);
    /* through the layer: the rows of A (h_res) are the exact marginal for dsv4 and paper */
    {
        static const mhc_hc_preset presets[3] = {MHC_PRESET_DSV4, MHC_PRESET_PAPER, MHC_PRESET_LITE};
        int p;
        TEST_BEGIN("h_res rows exact for dsv4, paper, lite");
        for (p = 0; p < 3; p++) {
            mhc_hc_spec s = hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
            hct_case kc;
            hct_lib l;
            double L;
            hct_case_make(&kc, &s, 8, 5, 0, 1, (uint64_t)(900 + p));
            for (k = 0; k < kc.nscale; k++) kc.scale[k] = 3.0;   /* strong mixing logits */
            hct_lib_make(&l, &kc);
            CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
            CHECK_OK(mhc_hc_ds_distance(&ctx, l.A, 8, 4, &re, &ce));
            CHECK_LE(re, (p == 0 ? 1e-5 : 0.0) + tol0);
            CHECK(p == 2 ? ce <= tol0 : ce > 1e-12);
            hct_lib_free(&l);
            hct_case_free(&kc);
        }
    }
}

/* exp vs log-domain agreement, and the log domain with huge logits. */
static void hct_test_logdomain(void) {
    mhc_ctx ctx;
    mhc_rng rng;
    int n = 4, T = 8, k, e;
    mhc_real z[8 * 16], zbig[8 * 16], a[8 * 16], b[8 * 16], w[8 * 16], ga[8 * 16], gb[8 * 16];
    double tol, worst = 0;
#ifdef MHC_DOUBLE
    tol = 1e-12;
#else
    tol = 2e-6;
#endif
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 11);
    for (k = 0; k < T * 16; k++) { z[k] = (mhc_real)(5.0 * mhc_rng_normal(&rng)); w[k] = (mhc_real)mhc_rng_normal(&rng); }
    TEST_BEGIN("sinkhorn: exp and log domain agree");
    for (e = 0; e < 2; e++) {
        double eps = e ? 1e-6 : 0.0;
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 20, eps, a, z, T));
        CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, eps, b, z, T));
        for (k = 0; k < T * 16; k++) worst = fmax(worst, fabs((double)a[k] - (double)b[k]));
        memset(ga, 0, sizeof ga); memset(gb, 0, sizeof gb);
        CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_EXP, n, 20, eps, ga, w, z, T));
        CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_LOG, n, 20, eps, gb, w, z, T));
        for (k = 0; k < T * 16; k++) worst = fmax(worst, fabs((double)ga[k] - (double)gb[k]) / fmax(1.0, fabs((double)ga[k])));
    }
    CHECK_LE(worst, tol);
    TEST_BEGIN("sinkhorn: log domain with huge logits");
    /* with eps = 0 the iteration is invariant to a constant shift of all logits */
    for (k = 0; k < T * 16; k++) zbig[k] = z[k] + (mhc_real)800.0;
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, n, 20, 0.0, a, zbig, T));
    {
        int bad = 0;
        for (k = 0; k < T * 16; k++) bad += !hct_finite((double)a[k]) || a[k] > 1e30;
        CHECK(bad > 0);     /* exp start overflows (inf / inf) */
    }
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, 0.0, a, zbig, T));
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, 0.0, b, z, T));
    worst = 0;
    for (k = 0; k < T * 16; k++) worst = fmax(worst, fabs((double)a[k] - (double)b[k]));
#ifdef MHC_DOUBLE
    CHECK_LE(worst, 1e-11);
#else
    CHECK_LE(worst, 1e-3);     /* float logits near 800 carry only ~5e-5 absolute precision */
#endif
    {
        double re, ce;
        CHECK_OK(mhc_hc_ds_distance(&ctx, a, (size_t)T, n, &re, &ce));
        CHECK_LE(re, 1e-6);          /* rows exact; columns not converged after 20 iterations */
    }
    /* huge spread and huge negative logits, with eps > 0: finite results and gradients */
    for (k = 0; k < T * 16; k++) zbig[k] = z[k] * (mhc_real)200.0 - (mhc_real)(k % 3 == 0 ? 5000.0 : 0.0);
    CHECK_OK(mhc_sinkhorn_forward(&ctx, MHC_PROJ_LOG, n, 20, 1e-6, a, zbig, T));
    memset(ga, 0, sizeof ga);
    CHECK_OK(mhc_sinkhorn_backward(&ctx, MHC_PROJ_LOG, n, 20, 1e-6, ga, w, zbig, T));
    {
        int bad = 0;
        for (k = 0; k < T * 16; k++)
            bad += !hct_finite((double)a[k]) || !hct_finite((double)ga[k]) || fabs((double)a[k]) > 1.0 + 1e-6;
        CHECK(bad == 0);
    }
}

#ifdef _OPENMP
/* The same bits for 1 and 2 threads (chunks change, per-token work and reduction order do not). */
static void hct_test_threads(void) {
    static const mhc_hc_preset presets[2] = {MHC_PRESET_DSV4, MHC_PRESET_LITE};
    int p, nt0 = omp_get_max_threads();
    TEST_BEGIN("hc: bitwise identical for 1 and 2 threads");
    for (p = 0; p < 3; p++) {
        mhc_hc_spec s = p < 2 ? hct_spec(presets[p], MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4)
                              : hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, 4);
        hct_case kc;
        hct_lib l1, l2;
        double L1, L2;
        mhc_ctx ctx;
        size_t T = 200, C = 40, D = 4 * C;
        int nt;
        mhc_ctx_init(&ctx);
        hct_case_make(&kc, &s, (int)T, (int)C, 0, 1, 55);
        hct_lib_make(&l1, &kc);
        hct_lib_make(&l2, &kc);
        omp_set_num_threads(1);
        CHECK_OK(hct_lib_forward(&ctx, &kc, &l1, &L1));
        CHECK_OK(hct_lib_backward(&ctx, &kc, &l1));
        for (nt = 2; nt <= 3; nt++) {     /* 3 threads on 2 cores too: more, uneven chunks */
            omp_set_num_threads(nt);
            CHECK_OK(hct_lib_forward(&ctx, &kc, &l2, &L2));
            CHECK_OK(hct_lib_backward(&ctx, &kc, &l2));
            CHECK(memcmp(l1.li, l2.li, T * C * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.A, l2.A, T * 16 * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.out, l2.out, T * D * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dx, l2.dx, T * D * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dfn, l2.dfn, (size_t)kc.nfn * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dbase, l2.dbase, (size_t)kc.nbase * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dscale, l2.dscale, (size_t)kc.nscale * sizeof(mhc_real)) == 0);
            CHECK(memcmp(l1.dnw, l2.dnw, (size_t)kc.nnw * sizeof(mhc_real)) == 0);
        }
        hct_lib_free(&l1); hct_lib_free(&l2);
        hct_case_free(&kc);
    }
    omp_set_num_threads(nt0);
}
#endif

static void hct_test_expand_diag(void) {
    mhc_ctx ctx;
    mhc_real e[6] = {1, 2, 3, 4, 5, 6}, x[18], de[6] = {0}, dx[18];
    int k;
    mhc_ctx_init(&ctx);
    TEST_BEGIN("expand");
    mhc_k_hc_expand_forward(x, e, 2, 3, 3);
    for (k = 0; k < 18; k++) CHECK(x[k] == e[(k / 9) * 3 + k % 3]);
    for (k = 0; k < 18; k++) dx[k] = (mhc_real)k;
    mhc_k_hc_expand_backward(de, dx, 2, 3, 3);
    mhc_k_hc_expand_backward(de, dx, 2, 3, 3);       /* accumulates */
    CHECK(de[0] == 2 * (0 + 3 + 6) && de[2] == 2 * (2 + 5 + 8) && de[4] == 2 * (10 + 13 + 16));
    TEST_BEGIN("amax gain");
    {
        /* token 0: A1 = [[1,2],[0,1]], A2 = [[1,0],[3,1]] -> P = A2 A1 = [[1,2],[3,7]]: fwd 10, bwd 9;
           token 1: A1 = I, A2 = [[0,-1],[1,0]] -> |rows| 1, |cols| 1 */
        mhc_real A1[8] = {1, 2, 0, 1, 1, 0, 0, 1}, A2[8] = {1, 0, 3, 1, 0, -1, 1, 0};
        const mhc_real *As[2];
        mhc_gain_stats g;
        As[0] = A1; As[1] = A2;
        CHECK_OK(mhc_hc_amax_gain(&ctx, As, 2, 2, 2, &g));
        CHECK_NEAR(g.fwd_max, 10, 1e-12); CHECK_NEAR(g.fwd_mean, 5.5, 1e-12);
        CHECK_NEAR(g.bwd_max, 9, 1e-12); CHECK_NEAR(g.bwd_mean, 5, 1e-12);
        As[0] = A2; As[1] = A1;           /* order matters: P = A1 A2 = [[7,2],[3,1]]: fwd 9, bwd 10 */
        CHECK_OK(mhc_hc_amax_gain(&ctx, As, 2, 2, 2, &g));
        CHECK_NEAR(g.fwd_max, 9, 1e-12); CHECK_NEAR(g.bwd_max, 10, 1e-12);
        CHECK_RESULT(mhc_hc_amax_gain(&ctx, NULL, 2, 2, 2, &g), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "A or out is NULL");
        CHECK_RESULT(mhc_hc_amax_gain(&ctx, As, 0, 2, 2, &g), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "L = 0");
        As[1] = NULL;
        CHECK_RESULT(mhc_hc_amax_gain(&ctx, As, 2, 2, 2, &g), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "A[1] is NULL");
    }
    {
        /* 24 paper-preset layers: rows exact and entries >= 0, so the forward gain stays 1 */
        mhc_hc_spec s = hct_spec(MHC_PRESET_PAPER, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
        mhc_real *As[24];
        const mhc_real *Ac[24];
        mhc_gain_stats g;
        hct_case kc;
        hct_lib l;
        double L;
        int li;
        for (li = 0; li < 24; li++) {
            hct_case_make(&kc, &s, 6, 4, 0, 0, (uint64_t)(300 + li));
            hct_lib_make(&l, &kc);
            CHECK_OK(hct_lib_forward(&ctx, &kc, &l, &L));
            As[li] = l.A; Ac[li] = l.A; l.A = NULL;
            hct_lib_free(&l);
            hct_case_free(&kc);
        }
        CHECK_OK(mhc_hc_amax_gain(&ctx, Ac, 24, 6, 4, &g));
        CHECK_NEAR(g.fwd_max, 1.0, 1e-5);
        CHECK(g.bwd_max >= 1.0 && g.bwd_max < 2.0);
        for (li = 0; li < 24; li++) free(As[li]);
    }
    TEST_BEGIN("ds distance");
    {
        mhc_real M[8] = {0.5, 0.5, 0.5, 0.5, 0.7, 0.2, 0.1, 0.7};   /* 2: rows .9/.8, cols .8/.9 */
        double re, ce;
        CHECK_OK(mhc_hc_ds_distance(&ctx, M, 1, 2, &re, &ce));
        CHECK(re == 0 && ce == 0);
        CHECK_OK(mhc_hc_ds_distance(&ctx, M, 2, 2, &re, &ce));
        CHECK_NEAR(re, 0.2, 1e-6); CHECK_NEAR(ce, 0.2, 1e-6);
        M[0] = (mhc_real)hct_nan();
        CHECK_OK(mhc_hc_ds_distance(&ctx, M, 2, 2, &re, &ce));
        CHECK(re == HUGE_VAL && ce == HUGE_VAL);
        CHECK_RESULT(mhc_hc_ds_distance(&ctx, NULL, 2, 2, &re, &ce), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_hc_ds_distance: NULL");
        CHECK_RESULT(mhc_hc_ds_distance(&ctx, M, 0, 2, &re, &ce), MHC_ERR_SIZE);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "count = 0");
    }
}

static void hct_test_params(void) {
    mhc_ctx ctx;
    mhc_params ps;
    mhc_rng rng;
    mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 4);
    mhc_hc_spec shc = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_HC, MHC_PROJ_PRESET, 4);
    mhc_hc_spec snone = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_NONE, MHC_PROJ_PRESET, 1);
    int ids[4], idh[4], idc[4], idn[4], fs[2], ns, nb, nw, i;
    mhc_hc_params w, wh, wc;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, 3);
    TEST_BEGIN("hc params: shapes");
    CHECK_OK(mhc_hc_param_shapes(&ctx, &s, 8, 0, fs, &ns, &nb, &nw));
    CHECK(fs[0] == 24 && fs[1] == 32 && ns == 3 && nb == 24 && nw == 32);
    CHECK_OK(mhc_hc_param_shapes(&ctx, &s, 8, 1, fs, &ns, &nb, &nw));
    CHECK(fs[0] == 4 && fs[1] == 32 && ns == 1 && nb == 4 && nw == 32);
    CHECK_OK(mhc_hc_param_shapes(&ctx, &shc, 8, 0, fs, &ns, &nb, &nw));
    CHECK(fs[0] == 6 && fs[1] == 8 && ns == 3 && nb == 24 && nw == 8);
    CHECK_OK(mhc_hc_param_shapes(&ctx, &snone, 8, 0, fs, &ns, &nb, &nw));
    CHECK(fs[0] == 0 && ns == 0 && nb == 0 && nw == 0);
    CHECK_RESULT(mhc_hc_param_shapes(&ctx, &s, 0, 0, fs, &ns, &nb, &nw), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "C = 0");
    CHECK_RESULT(mhc_hc_param_shapes(&ctx, &s, 1 << 30, 0, fs, &ns, &nb, &nw), MHC_ERR_OVERFLOW);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n*C = 4*1073741824 overflows");
    CHECK_RESULT(mhc_hc_param_shapes(&ctx, &s, 8, 0, NULL, &ns, &nb, &nw), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "NULL output");
    TEST_BEGIN("hc params: declare, get, init");
    CHECK_OK(mhc_params_init(&ctx, &ps));
    CHECK_OK(mhc_hc_params_declare(&ps, &s, 8, 0, 1, "l0", ids));
    CHECK_OK(mhc_hc_params_declare(&ps, &s, 8, 1, 0, "head", idh));
    CHECK_OK(mhc_hc_params_declare(&ps, &shc, 8, 0, 0, "hc3", idc));
    CHECK_OK(mhc_hc_params_declare(&ps, &snone, 8, 0, 1, "none", idn));
    CHECK(idn[0] == -1 && idn[3] == -1 && idh[3] == -1 && ids[3] >= 0);
    CHECK(mhc_params_find(&ps, "l0.fn") == ids[0] && mhc_params_find(&ps, "l0.norm_weight") == ids[3]);
    CHECK_RESULT(mhc_hc_params_get(&ps, ids, &w), MHC_ERR_STATE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "not allocated");
    CHECK_RESULT(mhc_hc_params_declare(&ps, &s, 8, 0, 1, "l0", ids), MHC_ERR_VALUE);   /* duplicate names */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "l0.fn");
    CHECK_RESULT(mhc_hc_params_declare(&ps, &s, 8, 0, 1, "a_prefix_that_is_much_too_long_for_names", ids), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "longer than 30");
    CHECK_RESULT(mhc_hc_params_declare(&ps, &s, 8, 0, 1, NULL, ids), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ids or prefix is NULL");
    CHECK_OK(mhc_hc_params_declare(&ps, &s, 8, 0, 1, "l1", ids));   /* ids were clobbered: redeclare a layer */
    CHECK_OK(mhc_params_alloc(&ps));
    CHECK_OK(mhc_hc_params_get(&ps, ids, &w));
    CHECK_OK(mhc_hc_params_get(&ps, idh, &wh));
    CHECK_OK(mhc_hc_params_get(&ps, idc, &wc));
    CHECK(w.fn->shape[0] == 24 && w.fn->shape[1] == 32 && w.norm_weight && w.norm_weight->size == 32 && !wh.norm_weight);
    CHECK_RESULT(mhc_hc_params_get(&ps, ids, NULL), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "ids or out is NULL");
    CHECK_OK(mhc_hc_params_init(&ctx, &s, 0, 0, &w, &rng, 0.02));
    CHECK(w.scale->data[0] == (mhc_real)0.01 && w.base->data[5] == 0 && w.norm_weight->data[31] == 1);
    {
        double ss = 0;
        for (i = 0; i < (int)w.fn->size; i++) ss += (double)w.fn->data[i] * w.fn->data[i];
        CHECK(sqrt(ss / w.fn->size) > 0.015 && sqrt(ss / w.fn->size) < 0.025);
    }
    CHECK_OK(mhc_hc_params_init(&ctx, &s, 1, 0, &wh, &rng, 0.02));
    CHECK_OK(mhc_hc_params_init(&ctx, &shc, 0, 6, &wc, &rng, 0.0));
    CHECK(wc.base->data[2] == 1 && wc.base->data[0] == 0 && wc.base->data[4] == 1 && wc.base->data[7] == 1);
    CHECK(wc.base->data[8] == 1 && wc.base->data[9] == 0 && wc.base->data[8 + 15] == 1 && wc.fn->data[3] == 0);
    CHECK_RESULT(mhc_hc_params_init(&ctx, &shc, 0, 0, &wh, &rng, 0.02), MHC_ERR_SHAPE);   /* head tensors for a layer */
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "do not match n = 4");
    CHECK_RESULT(mhc_hc_params_init(&ctx, &s, 0, 0, &w, &rng, -1.0), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "fn_std = -1");
    CHECK_RESULT(mhc_hc_params_init(&ctx, &s, 0, 0, NULL, &rng, 0.02), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "w or rng is NULL");
    {
        mhc_hc_params bad = w;
        bad.base = NULL;
        CHECK_RESULT(mhc_hc_params_init(&ctx, &s, 0, 0, &bad, &rng, 0.02), MHC_ERR_NULL);
        CHECK_STR_HAS(mhc_ctx_message(&ctx), "fn, scale and base tensors");
    }
    CHECK_OK(mhc_hc_params_init(&ctx, &snone, 0, 0, &w, &rng, 0.02));     /* none: nothing to do */
    mhc_params_free(&ps);
}

/* Error paths of the raw-array pre/head functions (with hct_use_ref: of the references, which
   share the checks). */
static void hct_test_pre_errors(void) {
    mhc_ctx ctx;
    mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_PRESET, MHC_PROJ_PRESET, 2), bad;
    mhc_real x[16] = {0}, fn[8 * 8] = {0}, sc[3] = {1, 1, 1}, b[8] = {0}, li[8];
    mhc_ctx_init(&ctx);
    TEST_BEGIN("pre/head errors");
    CHECK_RESULT(HCT_PRE_FWD(&ctx, NULL, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), hct_msg("mhc_hc_pre_forward: spec is NULL"));
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &s, li, 0, 0, 0, NULL, fn, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "x is NULL");
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &s, NULL, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "layer_input is NULL");
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &s, li, 0, 0, 0, x, NULL, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "fn, scale and base are required (fn NULL, scale given, base given)");
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &s, li, 0, 0, 0, x, fn, sc, b, 0, 0, 2), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "T = 0, C = 2");
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &s, li, 0, 0, 0, x, fn, sc, b, 0, 1 << 30, 1 << 30), MHC_ERR_OVERFLOW);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "overflows");
    CHECK_RESULT(HCT_PRE_BWD(&ctx, &s, 0, 0, 0, 0, 0, 0, 0, 0, 0, NULL, fn, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), hct_msg("mhc_hc_pre_backward: x is NULL"));
    CHECK_RESULT(HCT_HEAD_FWD(&ctx, &s, NULL, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), hct_msg("mhc_hc_head_forward: out is NULL"));
    CHECK_RESULT(HCT_HEAD_BWD(&ctx, &s, 0, 0, 0, 0, 0, 0, 0, x, fn, NULL, b, 0, 2, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), hct_msg("mhc_hc_head_backward: fn, scale and base are required"));
    TEST_BEGIN("hand-built spec errors");
    bad = s; bad.n = 0;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.n = 0");
    bad = s; bad.variant = MHC_VARIANT_NONE;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant none needs n = 1, not 2");
    bad = s; bad.variant = MHC_VARIANT_HC;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.m = 8, expected n + 2 = 4 for hc");
    bad = s; bad.projection = MHC_PROJ_PERM;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "variant mhc does not go with projection perm");
    bad = s; bad.variant = MHC_VARIANT_LITE; bad.projection = MHC_PROJ_PERM; bad.n = 9;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "supports n <= 8, not 9");
    bad = s; bad.nres = 5;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.nres = 5 / spec.m = 8 do not match n = 2");
    bad = s; bad.iters = 0;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.iters = 0");
    bad = s; bad.orient = MHC_ORIENT_PRESET;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.orient = 0");
    bad = s; bad.norm_eps = -1;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "epsilons and post_mult must be finite");
    bad = s; bad.variant = (mhc_hc_variant)42;
    CHECK_RESULT(HCT_PRE_FWD(&ctx, &bad, li, 0, 0, 0, x, fn, sc, b, 0, 2, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "spec.variant = 42");
}

/* Error paths of the raw-array layer and projection functions. */
static void hct_test_errors(void) {
    mhc_ctx ctx;
    mhc_real x[16] = {0}, o[64];
    mhc_ctx_init(&ctx);
    TEST_BEGIN("sinkhorn errors");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, 2, 3, 0, NULL, x, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn_forward: an array argument is NULL");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, 2, 3, 0, o, x, 0), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "T = 0 tokens");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_EXP, 0, 3, 0, o, x, 2), MHC_ERR_SIZE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 0");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_PRESET, 2, 3, 0, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "projection 0 is not softmax, exp, log, perm, kron or ortho");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_PERM, 9, 3, 0, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "n = 9 is too large");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 2, 0, 0, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "iters = 0");
    CHECK_RESULT(mhc_sinkhorn_forward(&ctx, MHC_PROJ_SOFTMAX, 2, 3, -1e-6, o, x, 2), MHC_ERR_VALUE);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "eps = -1e-06");
    CHECK_RESULT(mhc_sinkhorn_backward(&ctx, MHC_PROJ_SOFTMAX, 2, 3, 0, o, NULL, x, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn_backward: d_out is NULL");
    CHECK_RESULT(mhc_sinkhorn_backward(&ctx, MHC_PROJ_SOFTMAX, 2, 3, 0, o, x, NULL, 2), MHC_ERR_NULL);
    CHECK_STR_HAS(mhc_ctx_message(&ctx), "mhc_sinkhorn_backward: an array argument is NULL");
    hct_test_pre_errors();
}

/* libgomp keeps its thread pool alive until exit, and valgrind reports the pool threads' TLS as
   "possibly lost". OpenMP 5.0's omp_pause_resource_all releases the pool (libgomp has it since
   GCC 10, while still defining _OPENMP as 4.5). */
/* ---- the grouped Sinkhorn path (mhc__proj_fwd_g/bwd_g, MHC__SKG tokens at a time) against the
   per-token one (mhc__sk_group_off = 1): the same bits, for groups that are full, short and padded ---- */

static double *hct_dup(const mhc_real *a, size_t len) {   /* a snapshot as doubles, for memcmp */
    double *d = (double *)malloc((len ? len : 1) * sizeof(double));
    size_t k;
    for (k = 0; k < len; k++) d[k] = (double)a[k];
    return d;
}

/* The inputs of a pre or head call, random from a seed: x [T,n,C] ~ N(0, 1); fn [rows][cols] ~
   N(0, 2/sqrt(cols)) (logits of order 2); norm_weight [cols] ~ N(1, 0.3); scale [3] ~ N(1, 0.3);
   base [nbase] ~ N(0, 1); the incoming gradients gli [T,C], ghp, ghq [T,n], ghr [T,n,n] ~ N(0, 1). */
typedef struct hct_pre_in {
    mhc_real *x, *fn, *nw, scale[3], *base, *gli, *ghp, *ghq, *ghr;
} hct_pre_in;

static void hct_pre_in_make(hct_pre_in *a, int T, int n, int C, size_t rows, size_t cols, size_t nbase, uint64_t seed) {
    size_t nx = (size_t)T * n * C, nn = (size_t)n * n, k;
    mhc_rng rng;
    mhc_rng_seed(&rng, seed);
    a->x = hct_real(NULL, nx); a->fn = hct_real(NULL, rows * cols); a->nw = hct_real(NULL, cols);
    a->base = hct_real(NULL, nbase); a->gli = hct_real(NULL, (size_t)T * C); a->ghp = hct_real(NULL, (size_t)T * n);
    a->ghq = hct_real(NULL, (size_t)T * n); a->ghr = hct_real(NULL, (size_t)T * nn);
    mhc_rng_fill_normal(&rng, a->x, nx, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, a->fn, rows * cols, 0.0, 2.0 / sqrt((double)cols));
    mhc_rng_fill_normal(&rng, a->nw, cols, 1.0, 0.3);
    mhc_rng_fill_normal(&rng, a->scale, 3, 1.0, 0.3);
    mhc_rng_fill_normal(&rng, a->base, nbase, 0.0, 1.0);
    if (nbase >= (size_t)(2 * n) + nn)
        for (k = 0; k < (size_t)n; k++) a->base[2 * (size_t)n + k * n + k] += (mhc_real)TP(hct_res_diag);
    mhc_rng_fill_normal(&rng, a->gli, (size_t)T * C, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, a->ghp, (size_t)T * n, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, a->ghq, (size_t)T * n, 0.0, 1.0);
    mhc_rng_fill_normal(&rng, a->ghr, (size_t)T * nn, 0.0, 1.0);
}

static void hct_pre_in_free(hct_pre_in *a) {
    free(a->x); free(a->fn); free(a->nw); free(a->base); free(a->gli); free(a->ghp); free(a->ghq); free(a->ghr);
}

/* One layer configuration: pre forward and backward, grouped and per token; 1 when all bits match. */
static int hct_group_case(const mhc_hc_spec *s, int T, int C, int with_nw, uint64_t seed) {
    int n = s->n, m = s->m, D = n * C, run, same = 1;
    size_t nn = (size_t)n * n, nx = (size_t)T * D, nfn = (size_t)m * D, k;
    hct_pre_in in;
    mhc_real *x, *fn, *nw, *scale, *base, *gli, *ghp, *ghq, *ghr;
    mhc_real *li = (mhc_real *)malloc((size_t)T * C * sizeof(mhc_real)), *hpre = (mhc_real *)malloc((size_t)T * n * sizeof(mhc_real));
    mhc_real *hpost = (mhc_real *)malloc((size_t)T * n * sizeof(mhc_real)), *hres = (mhc_real *)malloc((size_t)T * nn * sizeof(mhc_real));
    mhc_real *dx = (mhc_real *)malloc(nx * sizeof(mhc_real)), *dfn = (mhc_real *)malloc(nfn * sizeof(mhc_real));
    mhc_real dscale[3], *dbase = (mhc_real *)malloc((size_t)m * sizeof(mhc_real)), *dnw = (mhc_real *)malloc((size_t)D * sizeof(mhc_real));
    double *ref[9] = {0};
    size_t len[9];
    mhc_ctx ctx;
    mhc_ctx_init(&ctx);
    hct_pre_in_make(&in, T, n, C, (size_t)m, (size_t)D, (size_t)m, seed);
    x = in.x; fn = in.fn; nw = in.nw; scale = in.scale; base = in.base;
    gli = in.gli; ghp = in.ghp; ghq = in.ghq; ghr = in.ghr;
    len[0] = (size_t)T * C; len[1] = (size_t)T * n; len[2] = (size_t)T * n; len[3] = (size_t)T * nn;
    len[4] = nx; len[5] = nfn; len[6] = 3; len[7] = (size_t)m; len[8] = (size_t)D;
    for (run = 0; run < 2; run++) {   /* run 0: per token (the reference), run 1: grouped */
        mhc_real *outs[9];
        int o;
        outs[0] = li; outs[1] = hpre; outs[2] = hpost; outs[3] = hres;
        outs[4] = dx; outs[5] = dfn; outs[6] = dscale; outs[7] = dbase; outs[8] = dnw;
        mhc__sk_group_off = run == 0;
        for (k = 0; k < nx; k++) dx[k] = (mhc_real)0.5;       /* the backward accumulates */
        for (k = 0; k < nfn; k++) dfn[k] = (mhc_real)0.25;
        for (k = 0; k < 3; k++) dscale[k] = 0;
        for (k = 0; k < (size_t)m; k++) dbase[k] = 0;
        for (k = 0; k < (size_t)D; k++) dnw[k] = 0;
        if (mhc_hc_pre_forward(&ctx, s, li, hpre, hpost, hres, x, fn, scale, base, with_nw ? nw : NULL, T, C) != MHC_OK ||
            mhc_hc_pre_backward(&ctx, s, dx, dfn, dscale, dbase, with_nw ? dnw : NULL, gli, ghp, ghq, ghr, x, fn,
                                scale, base, with_nw ? nw : NULL, T, C) != MHC_OK) {
            same = 0;
            break;
        }
        for (o = 0; o < 9; o++) {
            if (run == 0) ref[o] = hct_dup(outs[o], len[o]);
            else {
                double *d = hct_dup(outs[o], len[o]);
                if (memcmp(d, ref[o], len[o] * sizeof(double)) != 0) same = 0;
                free(d);
            }
        }
    }
    mhc__sk_group_off = 0;
    for (k = 0; k < 9; k++) free(ref[k]);
    hct_pre_in_free(&in);
    free(li); free(hpre); free(hpost); free(hres); free(dx); free(dfn); free(dbase); free(dnw);
    return same;
}

/* The standalone projection (mhc_sinkhorn_forward/backward), grouped and per token; 1 when all bits match.
   Some logits are very negative (exp underflows to 0: with eps = 0, 0/0 in that token). */
static int hct_group_sinkhorn(mhc_projection proj, int n, int iters, double eps, int T, uint64_t seed) {
    size_t nn = (size_t)n * n, N = (size_t)T * nn, k;
    mhc_real *z = (mhc_real *)malloc(N * sizeof(mhc_real)), *dout = (mhc_real *)malloc(N * sizeof(mhc_real));
    mhc_real *out[2], *dz[2];
    mhc_ctx ctx;
    mhc_rng rng;
    int run, same;
    mhc_ctx_init(&ctx);
    mhc_rng_seed(&rng, seed);
    mhc_rng_fill_normal(&rng, z, N, 0.0, 3.0);
    mhc_rng_fill_normal(&rng, dout, N, 0.0, 1.0);
    for (k = 0; k < N; k += 7) if ((k / 7) % 5 == 0) z[k] = (mhc_real)-800.0;
    for (run = 0; run < 2; run++) {
        out[run] = (mhc_real *)malloc(N * sizeof(mhc_real));
        dz[run] = (mhc_real *)malloc(N * sizeof(mhc_real));
        for (k = 0; k < N; k++) dz[run][k] = (mhc_real)0.125;
        mhc__sk_group_off = run == 0;
        if (mhc_sinkhorn_forward(&ctx, proj, n, iters, eps, out[run], z, T) != MHC_OK ||
            mhc_sinkhorn_backward(&ctx, proj, n, iters, eps, dz[run], dout, z, T) != MHC_OK)
            memset(out[run], run, N * sizeof(mhc_real));  /* a failure cannot match */
    }
    mhc__sk_group_off = 0;
    same = memcmp(out[0], out[1], N * sizeof(mhc_real)) == 0 && memcmp(dz[0], dz[1], N * sizeof(mhc_real)) == 0;
    for (run = 0; run < 2; run++) { free(out[run]); free(dz[run]); }
    free(z); free(dout);
    return same;
}

static void hct_test_sk_group(void) {
    static const int Ts[] = {1, 7, 8, 9, 33}, ns[] = {1, 2, 3, 4, 8}, its[] = {1, 20};
    static const double epss[] = {0.0, 1e-6};
    static const mhc_projection projs[] = {MHC_PROJ_SOFTMAX, MHC_PROJ_EXP};
    static const mhc_orient ors[] = {MHC_ORIENT_H, MHC_ORIENT_COMB_T};
    int ti, ni, pi, oi, ii, ei, cnt = 0;
    TEST_BEGIN("hc: grouped Sinkhorn bitwise identical to the per-token path");
    CHECK(mhc__proj_group(MHC_PROJ_SOFTMAX, 4) == MHC__SKG && mhc__proj_group(MHC_PROJ_EXP, 8) == MHC__SKG);
    CHECK(mhc__proj_group(MHC_PROJ_LOG, 4) == 1 && mhc__proj_group(MHC_PROJ_SOFTMAX, MHC__SKG_MAXN + 1) == 1);
    for (ti = 0; ti < 5; ti++)
        for (ni = 0; ni < 5; ni++)
            for (pi = 0; pi < 2; pi++)
                for (ii = 0; ii < 2; ii++)
                    for (ei = 0; ei < 2; ei++) {
                        mhc_hc_spec s = hct_spec(MHC_PRESET_DSV4, MHC_VARIANT_MHC, projs[pi], ns[ni]);
                        s.iters = its[ii];
                        s.sinkhorn_eps = epss[ei];
                        for (oi = 0; oi < 2; oi++) {
                            s.orient = ors[oi];
                            cnt++;
                            CHECK_MSG(hct_group_case(&s, Ts[ti], 3, cnt & 1, (uint64_t)(1000 + cnt)),
                                      "pre: T %d n %d %s orient %d iters %d eps %g differ", Ts[ti], ns[ni],
                                      mhc_projection_name(projs[pi]), (int)ors[oi], its[ii], epss[ei]);
                        }
                        CHECK_MSG(hct_group_sinkhorn(projs[pi], ns[ni], its[ii], epss[ei], Ts[ti], (uint64_t)(5000 + cnt)),
                                  "sinkhorn: T %d n %d %s iters %d eps %g differ", Ts[ti], ns[ni],
                                  mhc_projection_name(projs[pi]), its[ii], epss[ei]);
                    }
}

static void hct_omp_release(void) {
#if defined(_OPENMP) && (_OPENMP >= 201811 || (defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 10))
    omp_pause_resource_all(omp_pause_hard);
#endif
}

void TP(test_hc)(void); void TP(test_hc)(void) {
    TP(hct_worst_fwd) = TP(hct_worst_grad_ref) = TP(hct_worst_grad_lib) = 0;
    hct_test_config();
    hct_test_projections();
    hct_test_marginals();
    hct_test_logdomain();
#ifdef _OPENMP
    hct_test_threads();
#endif
    hct_test_expand_diag();
    hct_test_params();
    hct_test_errors();
    hct_test_layer_grads();
    hct_test_sk_group();
    hct_omp_release();
    printf("  [%s] hc: worst forward diff %.3g, worst grad rel err vs FD(reference) %.3g, vs FD(library) %.3g\n",
           TEST_PREC, TP(hct_worst_fwd), TP(hct_worst_grad_ref), TP(hct_worst_grad_lib));
}
