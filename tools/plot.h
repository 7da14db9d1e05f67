/* tools/plot.h - training curves as a self-contained SVG (no dependencies): loss against
 * step on the left, the Amax forward gain (log scale) on the right, one colour per run. */
#ifndef TOOL_PLOT_H
#define TOOL_PLOT_H
#include <stdio.h>
#include <stdlib.h>
#include <math.h>

typedef struct plot_series {
    int count, cap;
    double *step, *loss, *val, *gain_fwd, *gain_bwd;   /* val is NaN where not evaluated */
} plot_series;

static void plot_series_free(plot_series *s) {
    free(s->step); free(s->loss); free(s->val); free(s->gain_fwd); free(s->gain_bwd);
    s->step = s->loss = s->val = s->gain_fwd = s->gain_bwd = NULL;
    s->count = s->cap = 0;
}

/* Appends a point; on allocation failure the point is dropped (the plot is best effort). */
static void plot_series_add(plot_series *s, int step, double loss, double val, double gf, double gb) {
    if (s->count == s->cap) {
        int cap = s->cap ? 2 * s->cap : 256;
        double *a = (double *)realloc(s->step, (size_t)cap * sizeof(double));
        if (a) s->step = a;
        a = (double *)realloc(s->loss, (size_t)cap * sizeof(double)); if (a) s->loss = a;
        a = (double *)realloc(s->val, (size_t)cap * sizeof(double)); if (a) s->val = a;
        a = (double *)realloc(s->gain_fwd, (size_t)cap * sizeof(double)); if (a) s->gain_fwd = a;
        a = (double *)realloc(s->gain_bwd, (size_t)cap * sizeof(double)); if (a) s->gain_bwd = a;
        if (!s->step || !s->loss || !s->val || !s->gain_fwd || !s->gain_bwd || a == NULL) return;
        s->cap = cap;
    }
    s->step[s->count] = step;
    s->loss[s->count] = loss;
    s->val[s->count] = val;
    s->gain_fwd[s->count] = gf;
    s->gain_bwd[s->count] = gb;
    s->count++;
}

static const char *plot__colors[6] = {"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"};

/* One panel: x in [x0, x1], y in [y0, y1] (log10 when logy), drawn at (px, py) size (w, h). */
static void plot__panel(FILE *f, const plot_series *s, int ns, int which, int logy, double px, double py, double w,
                        double h, const char *title, const char *const *labels) {
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    int i, k, t;
    for (i = 0; i < ns; i++)
        for (k = 0; k < s[i].count; k++) {
            double y = which == 0 ? s[i].loss[k] : s[i].gain_fwd[k];
            if (!isfinite(y) || (logy && y <= 0)) continue;
            if (logy) y = log10(y);
            if (s[i].step[k] < x0) x0 = s[i].step[k];
            if (s[i].step[k] > x1) x1 = s[i].step[k];
            if (y < y0) y0 = y;
            if (y > y1) y1 = y;
        }
    if (x0 > x1) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 == x0) x1 = x0 + 1;
    if (logy) { y0 = floor(y0 * 2) / 2; y1 = ceil(y1 * 2) / 2; if (y1 - y0 < 0.5) y1 = y0 + 0.5; }
    else { double pad = (y1 - y0) * 0.05 + 1e-9; y0 -= pad; y1 += pad; }
    fprintf(f, "<rect x='%.1f' y='%.1f' width='%.1f' height='%.1f' fill='white' stroke='#444'/>\n", px, py, w, h);
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='14'>%s</text>\n", px + w / 2, py - 8, title);
    for (t = 0; t <= 4; t++) {   /* y ticks */
        double v = y0 + (y1 - y0) * t / 4, yy = py + h - h * t / 4;
        fprintf(f, "<line x1='%.1f' y1='%.1f' x2='%.1f' y2='%.1f' stroke='#ddd'/>\n", px, yy, px + w, yy);
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='end' font-size='11'>%.3g</text>\n", px - 4, yy + 4,
                logy ? pow(10, v) : v);
    }
    for (t = 0; t <= 4; t++) {   /* x ticks */
        double v = x0 + (x1 - x0) * t / 4, xx = px + w * t / 4;
        fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='11'>%.0f</text>\n", xx, py + h + 15, v);
    }
    fprintf(f, "<text x='%.1f' y='%.1f' text-anchor='middle' font-size='12'>step</text>\n", px + w / 2, py + h + 32);
    for (i = 0; i < ns; i++) {
        int first = 1;
        fprintf(f, "<polyline fill='none' stroke='%s' stroke-width='1.5' points='", plot__colors[i % 6]);
        for (k = 0; k < s[i].count; k++) {
            double y = which == 0 ? s[i].loss[k] : s[i].gain_fwd[k];
            if (!isfinite(y) || (logy && y <= 0)) continue;
            if (logy) y = log10(y);
            fprintf(f, "%s%.1f,%.1f", first ? "" : " ", px + w * (s[i].step[k] - x0) / (x1 - x0),
                    py + h - h * (y - y0) / (y1 - y0));
            first = 0;
        }
        fprintf(f, "'/>\n");
        if (which == 0)   /* validation points */
            for (k = 0; k < s[i].count; k++)
                if (isfinite(s[i].val[k]))
                    fprintf(f, "<circle cx='%.1f' cy='%.1f' r='4' fill='white' stroke='%s' stroke-width='2'/>\n", px + w * (s[i].step[k] - x0) / (x1 - x0),
                            py + h - h * (s[i].val[k] - y0) / (y1 - y0), plot__colors[i % 6]);
        /* legend: bottom-left for the loss (curves fall to the right), top-left for the gain */
        fprintf(f, "<text x='%.1f' y='%.1f' font-size='12' fill='%s'>%s</text>\n", px + 12,
                which == 0 ? py + h - 12 - 16 * (ns - 1 - i) : py + 18 + 16 * i, plot__colors[i % 6], labels[i]);
    }
}

/* Writes the SVG; returns 0 on success. names: one label per series (NULL: "run i"). */
static int plot_write_svg_labeled(const char *path, const char *title, const plot_series *s, int ns,
                                  const char *const *names) {
    FILE *f = fopen(path, "w");
    const char *defaults[6] = {"none", "hc", "mhc", "run 4", "run 5", "run 6"};
    int ok;
    if (!f) return 1;
    if (!names) names = defaults;
    fprintf(f, "<svg xmlns='http://www.w3.org/2000/svg' width='960' height='420' font-family='sans-serif'>\n");
    fprintf(f, "<rect width='100%%' height='100%%' fill='#fafafa'/>\n");
    fprintf(f, "<text x='480' y='24' text-anchor='middle' font-size='16'>%s</text>\n", title);
    plot__panel(f, s, ns, 0, 0, 70, 60, 380, 300, "training loss (dots: validation)", names);
    plot__panel(f, s, ns, 1, 1, 550, 60, 380, 300, "Amax forward gain of the composite map (log)", names);
    fprintf(f, "</svg>\n");
    ok = !ferror(f);
    if (fclose(f) != 0) ok = 0;
    return ok ? 0 : 1;
}

static int plot_write_svg(const char *path, const char *title, const plot_series *s, int ns) {
    const char *one[1];
    one[0] = title;
    return plot_write_svg_labeled(path, title, s, ns, ns == 1 ? one : NULL);
}
#endif
