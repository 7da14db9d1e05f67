#!/bin/sh
# Regenerates tests/vectors/gpt_<residual>/: the C model's initial weights and a batch
# (build/mhc gpt-export), then the PyTorch float64 reference results (gpt_reference.py).
# Needs Debian's python3-torch and python3-numpy (/usr/bin/python3). `make test` reads the results.
set -e
cd "$(dirname "$0")/../.."
make build/mhc
for v in none hc mhc lite kromhc ortho; do
  d=tests/vectors/gpt_$v
  rm -rf "$d"; mkdir -p "$d/params"
  ./build/mhc gpt-export "$d" --residual "$v" --layers 2 --dim 16 --heads 2 --seq 8 --batch 2 --seed 7 --lr 1e-2
done
/usr/bin/python3 tests/reference/gpt_reference.py tests/vectors/gpt_none tests/vectors/gpt_hc tests/vectors/gpt_mhc tests/vectors/gpt_lite \
  tests/vectors/gpt_kromhc tests/vectors/gpt_ortho
