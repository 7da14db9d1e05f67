// tests/cuda_emu.cc - mhc_cuda.cu on a CPU emulation of the CUDA runtime (`make test-cuda-emu`):
// tests/cuda_emulate.h stands in for cuda_runtime.h, cuBLAS and kernel launches, then the CUDA
// unit itself is compiled by the host C++ compiler. Linked with tests/test_cuda.c, which compares
// every device kernel and a few GPT training steps with the CPU. The library does not know about
// the emulation: this test includes it, not the other way round.
#define MHC_CUDA_EMULATE
#include "tests/cuda_emulate.h"
#include "mhc_cuda.cu"
