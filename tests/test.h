/* tests/test.h - the test framework: a handful of macros and two counters.
 * Every check prints the failing expression with file and line; the runner (test_main.c)
 * prints "N passed, M failed" as its last line and exits non-zero if M > 0.
 * Test files are compiled twice, once per precision: TP(name) gives name_f32 or name_f64. */
#ifndef MHC_TEST_H
#define MHC_TEST_H
#include <stdio.h>
#include <math.h>
#include <string.h>

extern int test_passed, test_failed;
extern const char *test_current;

#ifdef MHC_DOUBLE
#define TP(name) name##_f64
#define TEST_PREC "f64"
#else
#define TP(name) name##_f32
#define TEST_PREC "f32"
#endif

#define TEST_FAIL_AT(...) do { test_failed++; \
    fprintf(stderr, "FAIL [%s/%s] %s:%d: ", TEST_PREC, test_current, __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } while (0)

/* CHECK(cond): a boolean check. */
#define CHECK(cond) do { if (cond) test_passed++; else TEST_FAIL_AT("%s", #cond); } while (0)
/* CHECK_MSG(cond, fmt, ...): a boolean check with a formatted message on failure. */
#define CHECK_MSG(cond, ...) do { if (cond) test_passed++; else TEST_FAIL_AT(__VA_ARGS__); } while (0)
/* CHECK_NEAR(a, b, tol): |a - b| <= tol (NaN fails). */
#define CHECK_NEAR(a, b, tol) do { double a_ = (double)(a), b_ = (double)(b); \
    if (fabs(a_ - b_) <= (tol)) test_passed++; \
    else TEST_FAIL_AT("%s = %.17g, %s = %.17g, |diff| %.3g > %.3g", #a, a_, #b, b_, fabs(a_ - b_), (double)(tol)); } while (0)
/* CHECK_LE(a, b): a <= b (NaN fails), e.g. an error against its tolerance. */
#define CHECK_LE(a, b) do { double a_ = (double)(a), b_ = (double)(b); \
    if (a_ <= b_) test_passed++; else TEST_FAIL_AT("%s = %.6g exceeds %s = %.6g", #a, a_, #b, b_); } while (0)
/* CHECK_RESULT(expr, code): expr returns the mhc_result code. */
#define CHECK_RESULT(expr, code) do { int r_ = (int)(expr); \
    if (r_ == (int)(code)) test_passed++; \
    else TEST_FAIL_AT("%s returned %d (%s), expected %s", #expr, r_, mhc_result_string((mhc_result)r_), #code); } while (0)
/* CHECK_OK(expr): expr returns MHC_OK. */
#define CHECK_OK(expr) CHECK_RESULT(expr, MHC_OK)
/* CHECK_STR_HAS(s, sub): the string s contains sub (error messages name the problem). */
#define CHECK_STR_HAS(s, sub) do { const char *s_ = (s); \
    if (s_ && strstr(s_, (sub))) test_passed++; \
    else TEST_FAIL_AT("message \"%s\" does not contain \"%s\"", s_ ? s_ : "(null)", (sub)); } while (0)

#define TEST_BEGIN(name) (test_current = (name))

#endif
