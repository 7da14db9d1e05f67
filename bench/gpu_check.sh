#!/usr/bin/env bash
# bench/gpu_check.sh - the one script a GPU machine runs (well under 5 minutes):
#   1. make cuda (mhc_cuda.cu with nvcc, warnings as errors; build/test_cuda, build/bench_cuda)
#   2. build/test_cuda: every device kernel against the CPU, then GPT training steps device vs CPU
#   3. build/bench_cuda: GPT training on the GPU, residual (n=1) vs mHC (n=4): tokens/s and the
#      mHC overhead ratio
# Exit status: non-zero when the build or the tests fail. Usage: sh bench/gpu_check.sh [bench args]
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC')  $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
ARCH=""
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ARCH="-arch=native"; fi
echo "== make cuda CUDA_ARCH=$ARCH"
time make -j4 cuda CUDA_ARCH="$ARCH"
echo "== build/test_cuda"
time ./build/test_cuda
echo "== build/bench_cuda ${*:-30 256 4 256 8}"
time ./build/bench_cuda "$@"
