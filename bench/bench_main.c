/* bench/bench_main.c - the benchmark runner: prints the table header, runs every group of
 * bench/bench_groups.h, each printing its rows. `make bench` builds it with -O3 -march=native. */
#define _POSIX_C_SOURCE 199309L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bench.h"

double bench_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void bench_sleep(double s) {
    struct timespec t;
    t.tv_sec = (time_t)s;
    t.tv_nsec = (long)((s - (double)t.tv_sec) * 1e9);
    nanosleep(&t, NULL);
}

static int bench_cmp(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

int bench_threads(void) {
    const char *s = getenv("MHC_BENCH_THREADS");
    int n = s ? atoi(s) : 2;
    return n >= 1 ? n : 2;
}

int bench_selected(const char *name) {
    const char *f = getenv("MHC_BENCH_FILTER");
    return !f || strstr(name, f) != NULL;
}

void bench_row(const char *name, double ours, double peer, const char *note) {
    if (peer > 0) printf("| %-34s | %8.1f | %8.1f | %5.2f | %s\n", name, ours, peer, ours / peer, note);
    else printf("| %-34s | %8.1f | %8s | %5s | %s\n", name, ours, "-", "-", note);
    fflush(stdout);
}

#define BENCH_GROUP(name) void name(void);
#include "bench_groups.h"
#undef BENCH_GROUP

/* The 1-minute load average (-1 when unknown): other processes running make every rate noisy. */
static double bench_load(void) {
    double l = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (fscanf(f, "%lf", &l) != 1) l = -1;
        fclose(f);
    }
    return l;
}

/* The children of bench_train's peak-RSS rows (bench/bench_train.c) and bench_step's step rows. */
int bench_train_child(int argc, char **argv);
int bench_step_child(int argc, char **argv);

/* The CPU: its model name and the SIMD flags that pick kernels (from /proc/cpuinfo). */
static void bench_cpu(char *model, size_t nmodel, char *flags, size_t nflags) {
    static const char *const want[] = {"sse4_2", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512vl", "avx512_bf16",
                                       "amx_tile"};
    char line[4096];
    size_t k;
    FILE *f = fopen("/proc/cpuinfo", "r");
    snprintf(model, nmodel, "unknown");
    flags[0] = 0;
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        char *v = strchr(line, ':');
        if (!v) continue;
        v += 1 + (v[1] == ' ');
        v[strcspn(v, "\n")] = 0;
        if (strncmp(line, "model name", 10) == 0 && strcmp(model, "unknown") == 0) snprintf(model, nmodel, "%s", v);
        if (strncmp(line, "flags", 5) == 0 && !flags[0]) {
            for (k = 0; k < sizeof want / sizeof want[0]; k++) {
                const char *p = v;
                size_t len = strlen(want[k]);
                while ((p = strstr(p, want[k])) != NULL) {
                    if ((p == v || p[-1] == ' ') && (p[len] == ' ' || p[len] == 0)) break;
                    p += len;
                }
                if (p && strlen(flags) + len + 2 < nflags) { strcat(flags, flags[0] ? " " : ""); strcat(flags, want[k]); }
            }
            if (!flags[0]) snprintf(flags, nflags, "(none of the SIMD flags)");
        }
    }
    fclose(f);
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--child-rss") == 0) return bench_train_child(argc, argv);
    if (argc > 1 && strcmp(argv[1], "--child-step") == 0) return bench_step_child(argc, argv);
    const double load = bench_load();
    const char *wait = getenv("OMP_WAIT_POLICY");
    char model[256], flags[256];
    bench_cpu(model, sizeof model, flags, sizeof flags);
    printf("mhc.h benchmarks: rates measured side by side in one run, %d threads; ratio = ours / peer\n",
           bench_threads());
    printf("load average at start %.2f%s; OMP_WAIT_POLICY=%s\n", load,
           load > 0.5 ? " (the machine is busy: rates are noisy, and OpenMP's default spin-waiting suffers "
                        "more than OpenBLAS's yielding; OMP_WAIT_POLICY=passive helps there)" : "",
           wait ? wait : "(unset)");
    printf("CPU: %s; flags: %s\n\n", model, flags);
    printf("| %-34s | %8s | %8s | %5s | %s\n", "name", "ours", "peer", "ratio", "note");
    printf("|%s|%s|%s|%s|%s\n", "------------------------------------", "----------", "----------", "-------",
           "------");
#define BENCH_GROUP(name) name();
#include "bench_groups.h"
#undef BENCH_GROUP
    return 0;
}
