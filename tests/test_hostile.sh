#!/bin/sh
# tests/test_hostile.sh MHC - hostile files and paths given to build/mhc (issue 15; run by `make test`,
# no Python): save targets that are devices, FIFOs, symbolic links, read-only or missing directories,
# long names; readers given /dev/zero, FIFOs and links to them; a tiny case that asks for gigabytes;
# the NaN stop's message. Every refusal must come before the training it would have cost, with a
# message naming the file, and must leave the target as it was.
mhc=${1:-build/mhc}
t=${TMPDIR:-/tmp}/mhc_test_hostile.$$
rm -rf "$t"; mkdir -p "$t"
fail=0; passed=0
ok() { passed=$((passed + 1)); }
bad() { echo "FAIL test_hostile: $*"; fail=$((fail + 1)); }
# expect CODE 'message substring' CMD... : exit code (within 60 s: a FIFO must not hang) and a message on stderr
expect() {
    want=$1; msg=$2; shift 2
    timeout 60 "$@" >"$t/out" 2>"$t/err"; got=$?
    if [ "$got" -ne "$want" ]; then bad "'$*' exited $got, expected $want: $(head -c 300 "$t/err")"; return; fi
    if [ -n "$msg" ] && ! grep -q -- "$msg" "$t/err"; then bad "'$*': stderr lacks '$msg': $(head -c 300 "$t/err")"; return; fi
    ok
}
check() { if eval "$2"; then ok; else bad "$1"; fi; }
small="--layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --quiet --eval-every 0 --steps 2"

# ---- class 1: save targets, checked before step 1 (the --log file is opened after the check: its
#      absence shows that no training began) ----
if [ -c /dev/null ]; then
    expect 1 "'/dev/null' is a character device, not a regular file" "$mhc" train $small --save /dev/null --log "$t/l1.csv"
    check "/dev/null is still a character device" "[ -c /dev/null ]"
    check "no training before the refusal (/dev/null)" "[ ! -e '$t/l1.csv' ]"
fi
mkfifo "$t/fifo"
expect 1 "is a FIFO (named pipe), not a regular file" "$mhc" train $small --save "$t/fifo" --log "$t/l2.csv"
check "the FIFO is still a FIFO" "[ -p '$t/fifo' ]"
check "no training before the refusal (FIFO)" "[ ! -e '$t/l2.csv' ]"
mkdir "$t/adir"
expect 1 "is a directory, not a regular file" "$mhc" train $small --save "$t/adir"
expect 1 "its directory '$t/missing' does not exist; nothing was written" "$mhc" train $small --save "$t/missing/x.ckpt" --log "$t/l3.csv"
check "no training before the refusal (missing directory)" "[ ! -e '$t/l3.csv' ]"
expect 1 "--plot: mhc_checkpoint_check_target: cannot save '$t/missing/x.svg'" "$mhc" train $small --plot "$t/missing/x.svg" --log "$t/l4.csv"
check "no training before the refusal (--plot)" "[ ! -e '$t/l4.csv' ]"
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$t/ro"; chmod 500 "$t/ro"
    expect 1 "creating a file in its directory fails" "$mhc" train $small --save "$t/ro/x.ckpt"
    chmod 700 "$t/ro"
fi
# a symbolic link is followed: the link stays a link and its target receives every save, so a resume
# through either name continues from the newest state
expect 0 "" "$mhc" train $small --save "$t/real.ckpt"
ln -s real.ckpt "$t/link.ckpt"
chmod 600 "$t/real.ckpt"
expect 0 "" "$mhc" train $small --steps 4 --extend --resume "$t/link.ckpt" --save "$t/link.ckpt"
check "the link is still a link" "[ -L '$t/link.ckpt' ]"
expect 0 "resuming '$t/real.ckpt' at step 4 of 5" "$mhc" train --layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --eval-every 0 \
    --steps 5 --extend --resume "$t/real.ckpt"
check "the mode 600 is kept across saves" "[ \"\$(ls -l '$t/real.ckpt' | cut -c1-10)\" = '-rw-------' ]"
# a hard link is refused (the other name would keep the old checkpoint)
ln "$t/real.ckpt" "$t/hard.ckpt"
expect 1 "has 2 hard links" "$mhc" train $small --save "$t/real.ckpt"
rm -f "$t/hard.ckpt"
# a 250-byte name: the temporary name is shortened to fit NAME_MAX
long=$(printf '%0250d' 0)
expect 0 "" "$mhc" train $small --save "$t/$long"
check "the 250-byte checkpoint exists" "[ -f '$t/$long' ]"
check "no temporary file is left in the directory" "[ -z \"\$(ls '$t' | grep '\\.tmp\\.')\" ]"

# ---- class 2: readers refuse what has no size to trust, at once ----
expect 1 "'/dev/zero' is a character device, not a regular file" "$mhc" train $small --resume /dev/zero
expect 1 "'/dev/zero' is a character device, not a regular file" "$mhc" train $small --data /dev/zero
expect 1 "is a FIFO (named pipe), not a regular file" "$mhc" train $small --resume "$t/fifo"
expect 1 "is a FIFO (named pipe), not a regular file" "$mhc" train $small --data "$t/fifo"
mkdir "$t/case"
printf 'op = sinkhorn\npreset = dsv4\nn = 2\ndtype = float64\n' > "$t/case/case.txt"
ln -s /dev/zero "$t/case/logits.npy"
expect 2 "logits.npy: mhc_npy_read: '$t/case/logits.npy' is a character device" "$mhc" verify "$t/case" --out "$t/case_out"
rm -f "$t/case/case.txt"; mkfifo "$t/case/case.txt"
expect 2 "case.txt: cannot read the case file" "$mhc" verify "$t/case" --out "$t/case_out"
rm -rf "$t/case"

# ---- class 3: a 26 KB case asking for gigabytes of Sinkhorn iterates is refused before allocating ----
mkdir "$t/sk"
printf 'op = sinkhorn\npreset = dsv4\nn = 40\ndtype = float64\nsinkhorn_iters = 100000\n' > "$t/sk/case.txt"
hdr="{'descr': '<f8', 'fortran_order': False, 'shape': (1, 40, 40), }"
pad=$((64 - (10 + ${#hdr} + 1) % 64))
for f in logits d_out; do
    { printf '\223NUMPY\001\000\166\000'; printf '%s%*s\n' "$hdr" $pad ''; head -c 12800 /dev/zero; } > "$t/sk/$f.npy"
done
check "the sinkhorn case is a valid 118-byte header (.npy)" "[ \$(wc -c < '$t/sk/logits.npy') -eq 12928 ]"
expect 2 "needs 2.62[0-9]*e+09 bytes of scratch, more than the limit of 1073741824 bytes" "$mhc" verify "$t/sk" --out "$t/sk_out"
expect 2 "(S + 4) n^2 + S n + 8 doubles per token" "$mhc" verify "$t/sk" --out "$t/sk_out"

# ---- class 3: options that ask for more memory than a run may take are refused before allocating
#      (under a 3 GB address-space limit: an attempt to allocate would fail with another message) ----
expect 1 "would need up to 90.6 GB (gpt_memory_bytes in gpt/gpt.h" sh -c "ulimit -v 3000000; exec $mhc train --quiet --dim 4096 --heads 64 --layers 16"
expect 1 "more than the limit of 34.4 GB (TRAIN_MEMORY_MAX); nothing was allocated" sh -c "ulimit -v 3000000; exec $mhc train --quiet --seq 16384 --batch 65536"
expect 1 "nothing was allocated" sh -c "ulimit -v 3000000; exec $mhc train --quiet --seq 16384 --batch 512 --dim 16"

# ---- class 7: the NaN stop says what is kept ----
expect 1 "stopping (no --save was given, so no checkpoint is kept)" "$mhc" train $small --fault-nan-step 1
expect 1 "stopping (the last good checkpoint, '$t/nan.ckpt', is kept)" "$mhc" train $small --save "$t/nan.ckpt" --fault-nan-step 2

rm -rf "$t"
echo "test_hostile: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
