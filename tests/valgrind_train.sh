#!/bin/sh
# tests/valgrind_train.sh MHC - `mhc train` under valgrind (run by `make valgrind-train` on a build
# without OpenMP, so libgomp's thread pool is not reported): short runs of every residual variant,
# save, resume and --extend, the resume refusals, the interrupt path, `mhc sample`, and the error
# paths (damaged checkpoint, NaN stop, bad input) must show
# 0 errors and 0 leaks of any kind; so must `mhc verify` and `mhc compare` on a good and a bad case. valgrind's own findings exit 99, so they are told apart from
# the program's exit codes, which are checked too.
mhc=${1:-build/noomp/mhc}
t=${TMPDIR:-/tmp}/mhc_valgrind_train.$$
mkdir -p "$t"
fail=0; passed=0
vg() {   # vg WANT_EXIT ARGS...
    want=$1; shift
    valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=99 \
        "$mhc" "$@" >"$t/out" 2>"$t/err"
    got=$?
    if [ "$got" -eq 99 ] || grep -q "^==[0-9]*==" "$t/err"; then
        echo "FAIL valgrind_train: valgrind reports errors or leaks for 'mhc $*':"; grep "^==" "$t/err" | head -40
        fail=$((fail + 1))
    elif [ "$got" -ne "$want" ]; then
        echo "FAIL valgrind_train: 'mhc $*' exited $got, expected $want: $(head -c 300 "$t/err")"
        fail=$((fail + 1))
    else
        passed=$((passed + 1))
    fi
}
tiny="--layers 1 --dim 8 --heads 2 --seq 8 --batch 2 --eval-batches 1 --quiet"
vg 0 train $tiny --steps 4 --eval-every 2 --save "$t/ck.bin" --log "$t/log.csv" --plot "$t/plot.svg"
vg 0 train --steps 6 --extend --resume "$t/ck.bin" --save "$t/ck.bin" --log "$t/log.csv" --plot "$t/plot.svg"
vg 0 train --resume "$t/ck.bin"                          # nothing to train
vg 2 train --resume "$t/ck.bin" --lr 0.5                 # contradicts the checkpoint
vg 2 train --resume "$t/ck.bin" --steps 9                # past the schedule without --extend
vg 0 sample --resume "$t/ck.bin" --prompt "The " --tokens 20 --top-k 5
vg 0 sample --resume "$t/ck.bin" --tokens 12 --temperature 0   # past the window (seq 8)
vg 1 sample --resume tests/data/ckpt/old_format.ckpt
seq 1 500 > "$t/data.txt"
vg 0 train $tiny --steps 4 --data "$t/data.txt" --save "$t/d.bin" --stop-after 2
vg 0 train --resume "$t/d.bin" --save "$t/d.bin"
# the interrupt path (a signal inside a step: save, close the log, exit 130); the second signal's
# _exit skips the cleanup on purpose, so it is not run here
vg 130 train $tiny --steps 4 --save "$t/i.bin" --log "$t/i.csv" --fault-signal 2:step
vg 0 train --resume "$t/i.bin" --log "$t/i.csv"
for res in hc none lite; do vg 0 train $tiny --steps 2 --residual $res; done
vg 0 train $tiny --steps 2 --preset paper
vg 0 train $tiny --layers 3 --steps 2 --recompute 2      # recomputation: slots, checkpoints, gradient ring
size=$(wc -c < "$t/ck.bin")
head -c $((size / 2)) "$t/ck.bin" > "$t/trunc.bin"
vg 1 train $tiny --steps 8 --resume "$t/trunc.bin"
vg 1 train $tiny --steps 4 --eval-every 2 --save "$t/nan.bin" --fault-nan-step 3
vg 1 train $tiny --data "$t/does_not_exist.txt"
vg 2 train --frobnicate
# the verifier and the comparison (the other readers of build/mhc), a good and a bad case
vg 0 verify tests/vectors/layer_paper_n4_f32 --out "$t/vout"
vg 0 compare "$t/vout" tests/vectors/layer_paper_n4_f32/expected
vg 0 verify tests/vectors/sinkhorn_lite_n3 --out "$t/vout2"
mkdir -p "$t/badcase"
printf 'op = layer\npreset = dsv4\nn = 3\ndtype = float64\nfoo = 1\n' > "$t/badcase/case.txt"
vg 2 verify "$t/badcase" --out "$t/vout3"
vg 1 compare "$t/vout2" tests/vectors/layer_paper_n4_f32/expected
rm -rf "$t"
echo "valgrind_train: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
