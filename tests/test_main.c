/* tests/test_main.c - the one test runner. Each test group is compiled in float (f32) and in
 * double (f64); both are linked here. Last line: "N passed, M failed"; exit 1 on any failure. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "test.h"

int test_passed = 0, test_failed = 0;
const char *test_current = "";

#define TEST_GROUP(name) void name##_f32(void); void name##_f64(void);
#include "test_groups.h"
#undef TEST_GROUP

/* MHC_TEST_TIMES=1: each group's CPU seconds on stderr (to see what a valgrind run spends). */
static void test_time(const char *name, clock_t t0) {
    if (getenv("MHC_TEST_TIMES"))
        fprintf(stderr, "time %-24s %.2f s\n", name, (double)(clock() - t0) / CLOCKS_PER_SEC);
}

int main(void) {
    clock_t t0;
#define TEST_GROUP(name) t0 = clock(); name##_f32(); name##_f64(); test_time(#name, t0);
#include "test_groups.h"
#undef TEST_GROUP
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
