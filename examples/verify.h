/* examples/verify.h - the pieces of `mhc verify` (examples/verify.c reads and checks a case and
 * writes the outputs; examples/verify_impl.c, compiled once in float and once in double, runs
 * the computation in the precision the case asks for). */
#ifndef MHC_EXAMPLES_VERIFY_H
#define MHC_EXAMPLES_VERIFY_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MHC_VERIFY_LAYER = 0, MHC_VERIFY_SINKHORN = 1, MHC_VERIFY_HEAD = 2 };

/* One case, in double whatever precision runs it. The configuration fields mean what they mean
   in mhc_hc_config (enums as int; 0 = the preset's value, MHC_ZERO = an actual 0). Absent
   optional inputs are NULL (f_out, d_out, d_layer_input: zeros; norm_weight: no weight).
   Outputs are caller-allocated with the sizes of MHC_SPEC/tests/vectors/README.md:
     layer:    layer_input [T,C], h_pre [T,n], h_post [T,n], h_res [T,n,n], out [T,n,C], d_x,
               d_fn, d_scale, d_base, d_norm_weight (only with norm_weight), d_f_out [T,C];
     sinkhorn: out [T,n,n], d_logits [T,nres];
     head:     out [T,C], h_pre [T,n], d_x, d_fn, d_scale, d_base, d_norm_weight.
   Gradients are of L = sum(d_out * out) + sum(d_layer_input * layer_input) (layer) and
   L = sum(d_out * out) (sinkhorn, head). */
typedef struct mhc_verify_io {
    int op;
    int preset, variant, projection, orient, sinkhorn_iters;
    double sinkhorn_eps, norm_eps, pre_eps, post_mult;
    int n, T, C;
    const double *x, *fn, *scale, *base, *norm_weight, *f_out, *d_out, *d_layer_input, *logits;
    double *layer_input, *h_pre, *h_post, *h_res, *out;
    double *d_x, *d_fn, *d_scale, *d_base, *d_norm_weight, *d_f_out, *d_logits;
} mhc_verify_io;

/* Run the case with mhc_real = float (f32) or double (f64). 0 on success; otherwise nonzero
   and a message in err. */
int mhc_verify_run_f32(const mhc_verify_io *io, char *err, size_t cap);
int mhc_verify_run_f64(const mhc_verify_io *io, char *err, size_t cap);

/* A parsed case.txt (format: examples/verify.c): op (MHC_VERIFY_*), n, f32 (1: dtype float32),
   and the configuration as mhc_hc_config holds it (enums as int; 0 = the preset's value,
   MHC_ZERO = an actual 0; mhc_hc_resolve has not been applied yet). */
typedef struct mhc_verify_case_txt {
    int op, n, f32;
    int preset, variant, projection, orient, sinkhorn_iters;
    double sinkhorn_eps, norm_eps, pre_eps, post_mult;
} mhc_verify_case_txt;

/* Parse the text of a case.txt held in memory: len bytes at text (need not be NUL-terminated;
   a NUL byte inside is refused), name names it in messages ("name:line: ..."; NULL: "case.txt").
   Returns 0, or 2 with a message in err (*out zeroed). Reads only inside [text, text + len): the
   fuzz target tests/fuzz/fuzz_case.c calls it on arbitrary bytes. */
int mhc_verify_parse_case(const char *text, size_t len, const char *name, mhc_verify_case_txt *out, char *err,
                          size_t cap);

/* `mhc verify CASE_DIR --out OUT_DIR` without the printing: reads CASE_DIR/case.txt and the
   inputs, checks them, runs, writes OUT_DIR/<output>.npy (creating OUT_DIR). Returns 0, or 2
   with a message naming the file and the problem in err. */
int mhc_verify_case(const char *case_dir, const char *out_dir, char *err, size_t cap);

/* mkdir -p; 0 on success. */
int mhc_verify_mkdir(const char *path);

#ifdef __cplusplus
}
#endif
#endif
