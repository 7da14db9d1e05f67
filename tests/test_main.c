/* tests/test_main.c - the one test runner. Each test group is compiled in float (f32) and in
 * double (f64); both are linked here. Last line: "N passed, M failed"; exit 1 on any failure. */
#include <stdio.h>
#include "test.h"

int test_passed = 0, test_failed = 0;
const char *test_current = "";

#define TEST_GROUP(name) void name##_f32(void); void name##_f64(void);
#include "test_groups.h"
#undef TEST_GROUP

int main(void) {
#define TEST_GROUP(name) name##_f32(); name##_f64();
#include "test_groups.h"
#undef TEST_GROUP
    printf("%d passed, %d failed\n", test_passed, test_failed);
    return test_failed ? 1 : 0;
}
