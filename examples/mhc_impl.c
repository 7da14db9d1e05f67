/* examples/mhc_impl.c - the one translation unit of build/mhc that holds the mhc.h
 * implementation (compiled with -DMHC_DOUBLE like every object of build/mhc). */
#define MHC_IMPLEMENTATION
#include "mhc.h"
