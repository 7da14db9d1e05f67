/* One line per benchmark group (a function void name(void) in a bench/bench_*.c file). */
BENCH_GROUP(bench_matmul)
BENCH_GROUP(bench_train)
BENCH_GROUP(bench_step)
BENCH_GROUP(bench_sample)
