#!/bin/sh
# tests/test_train.sh MHC - `mhc train` end to end (run by `make test`; no Python):
# resume determinism, thread-count determinism, checkpoints refused when damaged, bad input.
mhc=${1:-build/mhc}
t=${TMPDIR:-/tmp}/mhc_test_train.$$
mkdir -p "$t"
fail=0; passed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL test_train: $*"; fail=$((fail + 1)); }
# expect CODE 'message substring' CMD... : exit code and a message on stderr
expect() {
    want=$1; msg=$2; shift 2
    "$@" >"$t/out" 2>"$t/err"; got=$?
    if [ "$got" -ne "$want" ]; then bad "'$*' exited $got, expected $want: $(head -c 300 "$t/err")"; return; fi
    if [ -n "$msg" ] && ! grep -q -- "$msg" "$t/err"; then bad "'$*': stderr lacks '$msg': $(head -c 300 "$t/err")"; return; fi
    ok
}
small="--layers 2 --dim 16 --heads 2 --seq 16 --batch 2 --quiet --eval-every 0"
losses() { cut -d, -f1,2 "$1"; }   # step and loss columns

# resume determinism: 8 steps straight == 3 steps, save, resume, 5 more (bit for bit), for hc and mhc
for res in mhc hc none; do
    expect 0 "" "$mhc" train $small --residual $res --steps 8 --log "$t/straight.csv"
    expect 0 "" "$mhc" train $small --residual $res --steps 8 --stop-after 3 --save "$t/ck.bin" --log "$t/resumed.csv"
    expect 0 "" "$mhc" train $small --residual $res --steps 8 --resume "$t/ck.bin" --log "$t/resumed.csv"
    if [ "$(losses "$t/straight.csv")" = "$(losses "$t/resumed.csv")" ]; then ok
    else bad "$res: resumed losses differ from the straight run"; diff "$t/straight.csv" "$t/resumed.csv" | head -5; fi
done
[ "$(wc -l < "$t/straight.csv")" -eq 9 ] && ok || bad "the log should have a header and 8 rows"
head -1 "$t/straight.csv" | grep -q '^step,loss,' && ok || bad "the log's first columns should be step,loss"

# the peers' presets and the convention knobs train, and resume bit for bit (the knobs live in
# the checkpoint: the resumed run is given none of them)
for pk in "--preset megatron" "--preset liger" "--preset lucidrains" "--preset mhc_cu" \
          "--norm-eps-mode outside --norm-scope stream --sinkhorn-eps-mode threshold --sinkhorn-order row_first --preset paper --exp-shift col_max"; do
    expect 0 "" "$mhc" train $small $pk --steps 6 --log "$t/k_straight.csv"
    expect 0 "" "$mhc" train $small $pk --steps 6 --stop-after 2 --save "$t/k.bin" --log "$t/k_resumed.csv"
    expect 0 "" "$mhc" train $small --steps 6 --resume "$t/k.bin" --log "$t/k_resumed.csv"
    if [ "$(losses "$t/k_straight.csv")" = "$(losses "$t/k_resumed.csv")" ]; then ok
    else bad "$pk: resumed losses differ from the straight run"; fi
done
# the knobs a checkpoint holds are the ones the resumed run uses (its first line says so)
loud=$(echo "$small" | sed 's/--quiet//')
expect 0 "" "$mhc" train $small --preset paper --norm-eps-mode outside --exp-shift row_max --sinkhorn-eps-mode zero \
    --steps 3 --stop-after 1 --save "$t/k2.bin"
expect 0 "norm_eps_mode outside, norm_scope flat, sinkhorn_eps_mode zero, sinkhorn_order col_first, exp_shift row_max" \
    "$mhc" train $loud --steps 3 --resume "$t/k2.bin"
expect 0 "preset megatron, n 4" "$mhc" train $loud --preset megatron --steps 1
expect 0 "norm_eps_mode outside, norm_scope flat, sinkhorn_eps_mode clamp, sinkhorn_order row_first, exp_shift row_max" \
    "$mhc" train $loud --preset megatron --steps 1
expect 2 "unknown norm_eps_mode 'between'" "$mhc" train $small --norm-eps-mode between
expect 2 "unknown norm_scope" "$mhc" train $small --norm-scope token
expect 2 "unknown sinkhorn_eps_mode" "$mhc" train $small --sinkhorn-eps-mode max
expect 2 "unknown sinkhorn_order" "$mhc" train $small --sinkhorn-order rows
expect 2 "needs a value" "$mhc" train $small --exp-shift
expect 1 "exp_shift = row_max applies to the exp and log starts" "$mhc" train $small --exp-shift row_max --steps 1

# threads: 1 and 2 give the same losses bit for bit
medium="--layers 2 --dim 64 --heads 4 --seq 64 --batch 4 --quiet --eval-every 2"   # large enough to run in parallel
expect 0 "" "$mhc" train $medium --steps 3 --threads 1 --log "$t/th1.csv"
expect 0 "" "$mhc" train $medium --steps 3 --threads 2 --log "$t/th2.csv"
[ "$(cut -d, -f1-3 "$t/th1.csv")" = "$(cut -d, -f1-3 "$t/th2.csv")" ] && ok || bad "losses differ between --threads 1 and 2"

# recomputation (--recompute): the same losses bit for bit, for every block length
for res in mhc lite hc; do
    expect 0 "" "$mhc" train $small --layers 3 --residual $res --steps 3 --log "$t/rc0.csv"
    for k in 1 2 auto; do
        expect 0 "" "$mhc" train $small --layers 3 --residual $res --steps 3 --recompute $k --log "$t/rck.csv"
        [ "$(cut -d, -f1-3 "$t/rc0.csv")" = "$(cut -d, -f1-3 "$t/rck.csv")" ] && ok || bad "$res: --recompute $k changes the losses"
    done
done
expect 2 "not an integer" "$mhc" train $small --recompute sometimes

# damaged checkpoints are refused with a clear message
expect 0 "" "$mhc" train $small --steps 2 --save "$t/good.bin"
size=$(wc -c < "$t/good.bin")
head -c $((size / 2)) "$t/good.bin" > "$t/trunc.bin"
expect 1 "truncated" "$mhc" train $small --steps 4 --resume "$t/trunc.bin"
cp "$t/good.bin" "$t/corrupt.bin"
printf '\377' | dd of="$t/corrupt.bin" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
expect 1 "checksum" "$mhc" train $small --steps 4 --resume "$t/corrupt.bin"
expect 1 "" "$mhc" train $small --steps 4 --resume "$t/does_not_exist.bin"

# NaN loss: stop with a message, keep the last good checkpoint (saved at step 2), which still resumes
rm -f "$t/nan.bin"
expect 1 "the loss is nan" "$mhc" train $small --steps 6 --eval-every 2 --save "$t/nan.bin" --fault-nan-step 3
expect 0 "" "$mhc" train $small --steps 4 --eval-every 2 --resume "$t/nan.bin"

# bad input
: > "$t/empty.txt"
printf 'abc' > "$t/tiny.txt"
expect 1 "is empty" "$mhc" train $small --data "$t/empty.txt"
expect 1 "No such file" "$mhc" train $small --data "$t/missing.txt"
expect 1 "seq+1" "$mhc" train $small --data "$t/tiny.txt"
expect 1 "do not divide dim" "$mhc" train $small --heads 3
expect 2 "not an integer" "$mhc" train $small --n 0
# the residual's rules are the library's: none with 4 streams is refused (not silently made n = 1);
# the tool's defaults only fill options not given (lite: the lite preset unless --preset says otherwise)
expect 1 "variant none is the plain residual and needs n = 1" "$mhc" train $small --residual none --n 4
one="--layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --eval-every 0 --steps 1"
expect 0 "residual lite, preset lite, n 4" "$mhc" train $one --residual lite
expect 0 "residual lite, preset dsv4, n 4" "$mhc" train $one --residual lite --preset dsv4
expect 0 "residual none, preset dsv4, n 1" "$mhc" train $one --residual none
expect 2 "unknown option" "$mhc" train --frobnicate
expect 2 "residual" "$mhc" train --residual sideways
expect 2 "needs a value" "$mhc" train --steps

rm -rf "$t"
echo "test_train: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
