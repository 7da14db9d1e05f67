/* tools/verify.h - the pieces of `mhc verify` (tools/verify.c reads and checks a case and
 * writes the outputs; tools/verify_impl.c, compiled once in float and once in double, runs
 * the computation in the precision the case asks for). Include it after mhc.h. */
#ifndef TOOL_VERIFY_H
#define TOOL_VERIFY_H
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { TOOL_VERIFY_LAYER = 0, TOOL_VERIFY_SINKHORN = 1, TOOL_VERIFY_HEAD = 2 };

/* One case, in double whatever precision runs it. cfg is what the case asks for (mhc_hc_config:
   0 = the preset's value, MHC_ZERO = an actual 0); the run resolves it with mhc_hc_resolve. Absent
   optional inputs are NULL (f_out, d_out, d_layer_input: zeros; norm_weight: no weight).
   Outputs are caller-allocated with the sizes of tests/vectors/README.md:
     layer:    layer_input [T,C], h_pre [T,n], h_post [T,n], h_res [T,n,n], out [T,n,C], d_x,
               d_fn, d_scale, d_base, d_norm_weight (only with norm_weight), d_f_out [T,C];
     sinkhorn: out [T,n,n], d_logits [T,nres];
     head:     out [T,C], h_pre [T,n], d_x, d_fn, d_scale, d_base, d_norm_weight.
   Gradients are of L = sum(d_out * out) + sum(d_layer_input * layer_input) (layer) and
   L = sum(d_out * out) (sinkhorn, head). */
typedef struct tool_verify_io {
    int op;
    mhc_hc_config cfg;
    int n, T, C;
    const double *x, *fn, *scale, *base, *norm_weight, *f_out, *d_out, *d_layer_input, *logits;
    double *layer_input, *h_pre, *h_post, *h_res, *out;
    double *d_x, *d_fn, *d_scale, *d_base, *d_norm_weight, *d_f_out, *d_logits;
} tool_verify_io;

/* Run the case with mhc_real = float (f32) or double (f64). 0 on success; otherwise nonzero
   and a message in err. */
int tool_verify_run_f32(const tool_verify_io *io, char *err, size_t cap);
int tool_verify_run_f64(const tool_verify_io *io, char *err, size_t cap);

/* A parsed case.txt (format: tools/verify.c): op (TOOL_VERIFY_*), n, f32 (1: dtype float32),
   and the configuration (0 = the preset's value, MHC_ZERO = an actual 0; mhc_hc_resolve has not
   been applied yet). */
typedef struct tool_verify_case_txt {
    int op, n, f32;
    mhc_hc_config cfg;
} tool_verify_case_txt;

/* Parse the text of a case.txt held in memory: len bytes at text (need not be NUL-terminated;
   a NUL byte inside is refused), name names it in messages ("name:line: ..."; NULL: "case.txt").
   Returns 0, or 2 with a message in err (*out zeroed). Reads only inside [text, text + len): the
   fuzz target tests/fuzz/fuzz_case.c calls it on arbitrary bytes. */
int tool_verify_parse_case(const char *text, size_t len, const char *name, tool_verify_case_txt *out, char *err,
                          size_t cap);

/* `mhc verify CASE_DIR --out OUT_DIR` without the printing: reads CASE_DIR/case.txt and the
   inputs, checks them, runs, writes OUT_DIR/<output>.npy (creating OUT_DIR). Returns 0 with a line
   saying what was written in err ("wrote N outputs to OUT_DIR: a.npy b.npy ...; check them with:
   mhc compare ..."; `mhc verify` prints it), or 2 with a message naming the file and the problem. */
int tool_verify_case(const char *case_dir, const char *out_dir, char *err, size_t cap);

/* The command line of `mhc verify` (argv[0] = "verify"): 0 with *case_dir and *out_dir set
   (pointers into argv); 1 for --help; 2 with a message in err (a usage error). Touches no file:
   the fuzz target tests/fuzz/fuzz_args.c calls it on arbitrary arguments. */
int tool_verify_args(int argc, char **argv, const char **case_dir, const char **out_dir, char *err, size_t cap);

/* mkdir -p; 0 on success. */
int tool_mkdir_p(const char *path);

#ifdef __cplusplus
}
#endif
#endif
