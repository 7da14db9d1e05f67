/* Compile-only check: the header with its implementation builds warning-free in C99 and C++,
 * with MHC_STATIC and MHC_DOUBLE (see the check-compile target). */
#define MHC_IMPLEMENTATION
#include "mhc.h"
int mhc_compile_check(void);
int mhc_compile_check(void) { return mhc_version()[0] != 0; }
