/* bench/bench.h - the benchmark runner's helpers. Every benchmark group prints rows of one table:
 *     name | ours | peer | ratio | note
 * "ours" and "peer" are rates (higher is better) measured side by side in the same run; ratio is
 * ours / peer. (bench/bench_train.c's rows are times in ms or memory in MiB instead: lower is better
 * there, as their notes say.) A group is a function listed in bench/bench_groups.h and defined in a bench_*.c file
 * included by bench/bench_all.c. */
#ifndef MHC_BENCH_H
#define MHC_BENCH_H

/* Wall-clock seconds (monotonic). */
double bench_now(void);
/* Sleep for s seconds (lets another library's spinning worker threads go to sleep). */
void bench_sleep(double s);
/* The median of n values (reorders v). */
double bench_median(double *v, int n);
/* The thread count every benchmark uses: MHC_BENCH_THREADS, default 2. */
int bench_threads(void);
/* Whether a row runs: every row unless MHC_BENCH_FILTER is set, then the rows whose name contains it. */
int bench_selected(const char *name);
/* One table row; peer <= 0 prints "-" and no ratio. */
void bench_row(const char *name, double ours, double peer, const char *note);

#endif
