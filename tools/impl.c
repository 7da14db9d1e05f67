/* tools/impl.c - the one translation unit of build/mhc that holds the mhc.h implementation, in
 * float (the precision `mhc train` runs in). The verifier's computation has its own static float
 * and double copies (tools/verify_impl.c). */
#define MHC_IMPLEMENTATION
#include "mhc.h"
