#!/bin/sh
# tests/test_train.sh MHC - `mhc train` and `mhc sample` end to end (run by `make test`; no Python):
# resume determinism, thread-count determinism, checkpoints refused when damaged or foreign, resume
# refusals and --extend, the data check, signals (SIGINT/SIGTERM at several moments, a second signal,
# real asynchronous signals), logs (every step once, whole rows), progress lines off a terminal, option
# semantics, sampling determinism, bad input.
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
    if [ "$got" -ne "$want" ]; then bad "'$*' exited $got, expected $want: $(head -c 400 "$t/err")"; return; fi
    if [ -n "$msg" ] && ! grep -q -- "$msg" "$t/err"; then bad "'$*': stderr lacks '$msg': $(head -c 400 "$t/err")"; return; fi
    ok
}
check() { if eval "$1"; then ok; else bad "$2"; fi; }   # check 'shell condition' 'what failed'
small="--layers 2 --dim 16 --heads 2 --seq 16 --batch 2 --quiet --eval-every 0"
losses() { cut -d, -f1,2 "$1"; }   # step and loss columns
steps_are() { [ "$(tail -n +2 "$1" | cut -d, -f1 | tr '\n' ' ')" = "$(seq 1 "$2" | tr '\n' ' ')" ]; }   # rows 1..N once
no_tmp() { [ -z "$(ls "$t" | grep '\.tmp\.')" ]; }

# resume determinism: 8 steps straight == 3 steps, save, resume, 5 more (bit for bit), for every residual
for res in mhc hc none kromhc ortho; do
    expect 0 "" "$mhc" train $small --residual $res --steps 8 --log "$t/straight.csv"
    expect 0 "" "$mhc" train $small --residual $res --steps 8 --stop-after 3 --save "$t/ck.bin" --log "$t/resumed.csv"
    expect 0 "" "$mhc" train --quiet --resume "$t/ck.bin" --save "$t/ck.bin" --log "$t/resumed.csv"
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
# ... and so are checkpoints whose configuration block is not this mhc train's: one written by the
# previous mhc train (a 40-byte binary block), one with a later version of the text
expect 1 "written by an older mhc train" "$mhc" train --resume tests/data/ckpt/old_format.ckpt
expect 1 "'mhc-train-config 2' (from a later mhc train?)" "$mhc" train --resume tests/data/ckpt/later_format.ckpt
expect 1 "cannot be sampled here" "$mhc" sample --resume tests/data/ckpt/old_format.ckpt

# NaN loss: stop with a message, keep the last good checkpoint (saved at step 2), which still resumes
rm -f "$t/nan.bin"
expect 1 "the loss is nan" "$mhc" train $small --steps 6 --eval-every 2 --save "$t/nan.bin" --fault-nan-step 3
expect 0 "resuming .* at step 2 of 6" "$mhc" train --resume "$t/nan.bin"

# ---- resume says what it does ----
expect 0 "" "$mhc" train $small --steps 6 --warmup 2 --save "$t/r.bin" --log "$t/r.csv"
for opt in "--lr 0.01" "--dim 32" "--layers 3" "--heads 4" "--seq 8" "--batch 3" "--n 2" "--residual hc" \
           "--preset paper" "--schedule step" "--warmup 1" "--weight-decay 0.2" "--grad-clip 0.5" "--seed 7"; do
    name=${opt%% *}; val=${opt#* }
    expect 2 "$name $val contradicts the checkpoint" "$mhc" train --resume "$t/r.bin" $opt
done
expect 2 "whose run has --seed 1337; leave --seed out to continue that run" "$mhc" train --resume "$t/r.bin" --seed 7
expect 0 "nothing to train: .* step 6 of 6 (the run is finished)" "$mhc" train --resume "$t/r.bin" --lr 3e-3 --dim 16
check '! grep -q nan "$t/err"' "resuming a finished run must not print nan"
expect 2 "goes past the schedule .* add --extend" "$mhc" train --resume "$t/r.bin" --steps 12
expect 2 "would shorten the schedule .* --stop-after 4" "$mhc" train --resume "$t/r.bin" --steps 4
expect 2 "needs --resume" "$mhc" train $small --steps 12 --extend
expect 2 "needs --steps S" "$mhc" train --resume "$t/r.bin" --extend
expect 2 "needs --steps larger" "$mhc" train --resume "$t/r.bin" --steps 6 --extend
# --extend: the schedule is re-derived for the new total: the learning rate of every later step is
# the one of a run planned for 12 steps from the start (same warmup), and > 0 (a finished cosine is at 0)
expect 0 "" "$mhc" train $small --steps 12 --warmup 2 --log "$t/r12.csv"
expect 0 "step 7 trains at lr" "$mhc" train --resume "$t/r.bin" --steps 12 --extend --log "$t/r.csv" --save "$t/r.bin"
check '[ "$(sed -n 8,13p "$t/r.csv" | cut -d, -f4)" = "$(sed -n 8,13p "$t/r12.csv" | cut -d, -f4)" ]' \
      "after --extend the lr column differs from the 12-step schedule's"
check 'sed -n 8p "$t/r.csv" | cut -d, -f4 | awk "{ exit !(\$1 > 0) }"' "the first step after --extend trains at lr 0"
lr7=$(sed -n 's/.*step 7 trains at lr \([^ ]*\) .*/\1/p' "$t/err")
check '[ -n "$lr7" ] && [ "$lr7" = "$(sed -n 8p "$t/r12.csv" | cut -d, -f4)" ]' "the printed next lr ($lr7) is not the schedule's"
check 'steps_are "$t/r.csv" 12' "the extended log should hold steps 1..12 once"
expect 0 "nothing to train" "$mhc" train --resume "$t/r.bin" --steps 12   # the checkpoint records the new total

# the data: the checkpoint records the file (path, size, hash); a resume reads it again and checks the bytes
seq 1 3000 > "$t/data.txt"
expect 0 "" "$mhc" train $small --data "$t/data.txt" --steps 6 --log "$t/d_straight.csv"
expect 0 "" "$mhc" train $small --data "$t/data.txt" --steps 6 --stop-after 2 --save "$t/d.bin" --log "$t/d.csv"
cp "$t/data.txt" "$t/moved.txt"
expect 0 "" "$mhc" train --quiet --resume "$t/d.bin" --data "$t/moved.txt" --stop-after 4 --save "$t/d.bin" --log "$t/d.csv"
expect 0 "" "$mhc" train --quiet --resume "$t/d.bin" --save "$t/d.bin" --log "$t/d.csv"   # no --data: the recorded file
check '[ "$(losses "$t/d_straight.csv")" = "$(losses "$t/d.csv")" ]' "a resumed run on --data differs from the straight run"
# (the checkpoint now records moved.txt, the file the last run read)
printf 'x' >> "$t/data.txt"
expect 2 "is not the data of the checkpoint" "$mhc" train --resume "$t/d.bin" --data "$t/data.txt" --steps 8 --extend
printf 'y' >> "$t/moved.txt"
expect 1 "has changed since it was saved" "$mhc" train --resume "$t/d.bin" --steps 8 --extend
rm -f "$t/moved.txt"
expect 1 "cannot read the checkpoint's data file" "$mhc" train --resume "$t/d.bin" --steps 8 --extend
expect 2 "trained on the generated corpus" "$mhc" train --resume "$t/r.bin" --data "$t/data.txt"

# ---- signals ----
# SIGINT inside a step, inside the evaluation, just before a periodic save, while writing a log row:
# the step finishes, the checkpoint is saved, exit 130; the checkpoint resumes bit for bit, and the
# log then has every step exactly once, in whole rows; no temporary file is left
sig="--layers 2 --dim 16 --heads 2 --seq 16 --batch 2 --quiet --eval-every 3 --steps 12 --save-every 4"
expect 0 "" "$mhc" train $sig --log "$t/s_straight.csv"
for where in step eval save log; do
    k=6; [ $where = save ] && k=8
    rm -f "$t/s.bin" "$t/s.csv"
    expect 130 "interrupted at step $k: saved to $t/s.bin; resume with: mhc train --resume $t/s.bin" \
        "$mhc" train $sig --save "$t/s.bin" --log "$t/s.csv" --fault-signal $k:$where
    check 'steps_are "$t/s.csv" $k' "SIGINT ($where): the log should hold steps 1..$k once"
    expect 0 "" "$mhc" train --quiet --resume "$t/s.bin" --save "$t/s.bin" --log "$t/s.csv"
    check '[ "$(cut -d, -f1-3 "$t/s.csv")" = "$(cut -d, -f1-3 "$t/s_straight.csv")" ]' \
          "SIGINT ($where) at step $k, then resume: the log differs from the straight run"
    check no_tmp "SIGINT ($where): a temporary file is left"
done
# SIGTERM: the same, exit 143
rm -f "$t/s.bin" "$t/s.csv"
expect 143 "interrupted at step 5" "$mhc" train $sig --save "$t/s.bin" --log "$t/s.csv" --fault-signal 5:step:term
expect 0 "" "$mhc" train --quiet --resume "$t/s.bin" --save "$t/s.bin" --log "$t/s.csv"
check '[ "$(cut -d, -f1-3 "$t/s.csv")" = "$(cut -d, -f1-3 "$t/s_straight.csv")" ]' "SIGTERM, then resume: the log differs"
# without --save: the message says nothing was saved
expect 130 "interrupted at step 2 (not saved: no --save was given)" "$mhc" train $sig --fault-signal 2:step
# a second SIGINT exits at once: no save at that step, the previous checkpoint (step 8) whole, no partial row
rm -f "$t/s.bin" "$t/s.csv"
expect 130 "" "$mhc" train $sig --save "$t/s.bin" --log "$t/s.csv" --fault-signal 10:twice
check '! grep -q "interrupted at" "$t/err"' "a second SIGINT must exit at once (no save, no message)"
check 'steps_are "$t/s.csv" 9' "after a second SIGINT at step 10 the log should hold steps 1..9"
expect 0 "resuming .* at step 8 of 12" "$mhc" train --resume "$t/s.bin" --save "$t/s.bin" --log "$t/s.csv"
check '[ "$(cut -d, -f1-3 "$t/s.csv")" = "$(cut -d, -f1-3 "$t/s_straight.csv")" ]' "second SIGINT, then resume: the log differs"
check no_tmp "a second SIGINT left a temporary file"
# real asynchronous signals from outside, at whatever moment they land (a checkpoint every step)
long="--layers 2 --dim 16 --heads 2 --seq 16 --batch 2 --quiet --eval-every 0 --steps 100000 --save-every 1"
rows() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }
wait_rows() { i=0; while [ "$(rows "$1")" -lt "$2" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done; }
for s in INT TERM; do
    rm -f "$t/a.bin" "$t/a.csv"
    "$mhc" train $long --save "$t/a.bin" --log "$t/a.csv" 2>"$t/a.err" &
    pid=$!
    wait_rows "$t/a.csv" 4
    kill -$s $pid
    wait $pid; got=$?
    want=130; [ $s = TERM ] && want=143
    check '[ $got -eq $want ]' "kill -$s: exit $got, expected $want ($(head -c 200 "$t/a.err"))"
    k=$(sed -n 's/.*interrupted at step \([0-9]*\):.*/\1/p' "$t/a.err")
    check '[ -n "$k" ] && steps_are "$t/a.csv" "$k"' "kill -$s: the log should hold steps 1..$k once"
    expect 0 "" "$mhc" train --quiet --resume "$t/a.bin" --stop-after $((k + 2)) --save "$t/a.bin" --log "$t/a.csv"
    expect 0 "" "$mhc" train $long --stop-after $((k + 2)) --log "$t/a_straight.csv"
    check '[ "$(cut -d, -f1-3 "$t/a.csv")" = "$(cut -d, -f1-3 "$t/a_straight.csv")" ]' "kill -$s at step $k, resume: the log differs"
    check no_tmp "kill -$s left a temporary file"
done
# two quick SIGINTs from outside: exit 130 at once; whatever checkpoint is there is whole, no temporary file
rm -f "$t/a.bin" "$t/a.csv"
"$mhc" train $long --save "$t/a.bin" --log "$t/a.csv" 2>"$t/a.err" &
pid=$!
wait_rows "$t/a.csv" 4
kill -INT $pid; kill -INT $pid
wait $pid; got=$?
check '[ $got -eq 130 ]' "two SIGINTs: exit $got, expected 130"
expect 0 "" "$mhc" sample --resume "$t/a.bin" --tokens 4
check no_tmp "two SIGINTs left a temporary file"
check '[ "$(tail -c 1 "$t/a.csv" | od -An -c | tr -d " ")" = "\\n" ]' "two SIGINTs left a partial log row"

# ---- logs and progress ----
# a new log always gets its header (also when a resumed run logs to a new file); an existing file that is
# not a log of mhc train is refused on resume
expect 0 "is new; steps 1..12 are not in it" "$mhc" train --resume "$t/s.bin" --steps 16 --extend --log "$t/new.csv" --quiet
check 'head -1 "$t/new.csv" | grep -q "^step,loss,val_loss,lr,"' "a new log of a resumed run lacks its header"
check '[ "$(tail -n +2 "$t/new.csv" | cut -d, -f1 | tr "\n" " ")" = "$(seq 13 16 | tr "\n" " ")" ]' "the new log's rows"
echo "not a log" > "$t/other.csv"
expect 1 "is not the header of an mhc train log" "$mhc" train --resume "$t/s.bin" --steps 20 --extend --log "$t/other.csv"
# a partial last row (a crash in the middle of a write) and rows past the checkpoint are cut on resume
expect 0 "" "$mhc" train $sig --stop-after 4 --save "$t/p.bin" --log "$t/p.csv"
expect 0 "" "$mhc" train $sig --stop-after 6 --log "$t/p6.csv"
tail -n 2 "$t/p6.csv" >> "$t/p.csv"; printf '7,4.5,,0.00' >> "$t/p.csv"     # rows 5, 6 and a partial 7
expect 0 "kept the rows up to step 4" "$mhc" train --resume "$t/p.bin" --log "$t/p.csv"
check 'steps_are "$t/p.csv" 12' "after the resume the log should hold steps 1..12 once"
check '[ "$(cut -d, -f1-3 "$t/p.csv")" = "$(cut -d, -f1-3 "$t/s_straight.csv")" ]' "the cut and resumed log differs"
# off a terminal: one plain line every --print-every steps (default about 20 per run), no carriage returns
plain="--layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --eval-every 0 --steps 40"
expect 0 "" "$mhc" train $plain
check '[ "$(grep -c "^train step [0-9]*/40  loss" "$t/err")" -eq 20 ]' "40 steps should print 20 progress lines ($(grep -c step "$t/err"))"
check '! grep -q "$(printf "\r")" "$t/err"' "progress lines off a terminal must not use carriage returns"
expect 0 "" "$mhc" train $plain --print-every 10
check '[ "$(grep -c "^train step" "$t/err")" -eq 4 ]' "--print-every 10 over 40 steps should print 4 lines"
expect 0 "" "$mhc" train $plain --print-every 0
check '[ "$(grep -c "^train step" "$t/err")" -eq 0 ]' "--print-every 0 should print no progress lines"
expect 0 "" "$mhc" train $plain --eval-every 10
check '[ "$(grep -c "^train step [0-9]*/40  loss [0-9.]*  val [0-9]" "$t/err")" -eq 4 ]' "the evaluations should print their lines"
expect 0 "" "$mhc" train $plain --quiet
check '[ ! -s "$t/err" ]' "--quiet should print nothing"

# ---- option values mean what they say ----
expect 0 "note: --lr 0: the parameters do not change" "$mhc" train $small --steps 4 --lr 0 --log "$t/lr0.csv"
check '[ "$(tail -n +2 "$t/lr0.csv" | cut -d, -f4 | sort -u)" = "0" ]' "--lr 0 should train at lr 0"
expect 0 "no validation (--eval-every 0)" "$mhc" train --layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --eval-every 0 --steps 2
check '! grep -qi nan "$t/err"' "--eval-every 0 must not print nan"
expect 0 "" "$mhc" train --help
check 'grep -q "usage: mhc train" "$t/out" && grep -q "save-every" "$t/out"' "train --help should print the usage on stdout"
expect 0 "" "$mhc" demo --help
check 'grep -q "usage: mhc demo" "$t/out"' "demo --help should print the demo's usage"
expect 2 "is not a demo option" "$mhc" demo --resume "$t/r.bin"
expect 0 "" "$mhc" sample --help
check 'grep -q "usage: mhc sample" "$t/out"' "sample --help should print its usage"

# ---- sampling ----
# threads: a model large enough for the kernels to run in parallel, a 40-byte prompt, past its window (seq 64)
expect 0 "" "$mhc" train $medium --steps 2 --save "$t/big.bin"
p40="The quiet farmer sees the old river. The "
expect 0 "" "$mhc" sample --resume "$t/big.bin" --prompt "$p40" --tokens 150 --seed 3 --threads 1
cp "$t/out" "$t/sample_t1"
expect 0 "" "$mhc" sample --resume "$t/big.bin" --prompt "$p40" --tokens 150 --seed 3 --threads 2
check 'cmp -s "$t/out" "$t/sample_t1"' "sample: --threads 1 and 2 give different text"
expect 0 "" "$mhc" train $small --steps 30 --save "$t/m.bin"
expect 0 "" "$mhc" sample --resume "$t/m.bin" --prompt "The " --tokens 60 --seed 3
cp "$t/out" "$t/sample1"
expect 0 "" "$mhc" sample --resume "$t/m.bin" --prompt "The " --tokens 60 --seed 3 --threads 2
check 'cmp -s "$t/out" "$t/sample1"' "sample: the same seed gives different text"
check 'head -c 4 "$t/sample1" | grep -q "^The "' "sample: the text should start with the prompt"
expect 0 "" "$mhc" sample --resume "$t/m.bin" --prompt "The " --tokens 60 --seed 4
check '! cmp -s "$t/out" "$t/sample1"' "sample: seeds 3 and 4 give the same text"
# past the window (seq 16): 100 tokens, the same on 1 and 2 threads; temperature 0 ignores the seed
expect 0 "" "$mhc" sample --resume "$t/m.bin" --tokens 100 --temperature 0 --seed 1 --threads 1
cp "$t/out" "$t/sample0"
expect 0 "" "$mhc" sample --resume "$t/m.bin" --tokens 100 --temperature 0 --seed 2 --threads 2
check 'cmp -s "$t/out" "$t/sample0"' "sample: greedy text depends on the seed or the threads"
expect 0 "" "$mhc" sample --resume "$t/m.bin" --tokens 100 --top-k 1 --seed 5
check 'cmp -s "$t/out" "$t/sample0"' "sample: --top-k 1 should be the greedy text"
expect 2 "--resume CKPT is required" "$mhc" sample --tokens 5
expect 2 "--prompt is empty" "$mhc" sample --resume "$t/m.bin" --prompt ""
expect 2 "not a valid value" "$mhc" sample --resume "$t/m.bin" --temperature -1
expect 2 "unknown option" "$mhc" sample --resume "$t/m.bin" --frob
expect 1 "truncated" "$mhc" sample --resume "$t/trunc.bin"

# bad input
: > "$t/empty.txt"
printf 'abc' > "$t/tiny.txt"
expect 1 "is empty" "$mhc" train $small --data "$t/empty.txt"
expect 1 "No such file" "$mhc" train $small --data "$t/missing.txt"
expect 1 "seq+1" "$mhc" train $small --data "$t/tiny.txt"
expect 1 "do not divide dim" "$mhc" train $small --heads 3
expect 2 "not an integer" "$mhc" train $small --n 0
expect 2 "not an integer" "$mhc" train $small --seed -1
expect 2 "expected K:step" "$mhc" train $small --fault-signal 3:nowhere
# the residual's rules are the library's: none with 4 streams is refused (not silently made n = 1);
# the tool's defaults only fill options not given (lite: the lite preset unless --preset says otherwise)
expect 1 "variant none is the plain residual and needs n = 1" "$mhc" train $small --residual none --n 4
one="--layers 1 --dim 16 --heads 2 --seq 16 --batch 2 --eval-every 0 --steps 1"
expect 0 "residual lite, preset lite, n 4" "$mhc" train $one --residual lite
expect 0 "residual lite, preset dsv4, n 4" "$mhc" train $one --residual lite --preset dsv4
expect 0 "residual none, preset dsv4, n 1" "$mhc" train $one --residual none
expect 0 "residual kromhc, preset kromhc, n 4" "$mhc" train $one --residual kromhc
expect 0 "residual ortho, preset ortho, n 4" "$mhc" train $one --residual ortho
expect 0 "residual kromhc, preset kromhc, n 6" "$mhc" train $one --residual kromhc --n 6
expect 0 "distance from doubly stochastic" "$mhc" train $one --residual ortho
expect 1 "kron_factors: the default factors of n = 9" "$mhc" train $one --residual kromhc --n 9
expect 2 "unknown option" "$mhc" train --frobnicate
expect 2 "residual" "$mhc" train --residual sideways
expect 2 "needs a value" "$mhc" train --steps

rm -rf "$t"
echo "test_train: $passed passed, $fail failed"
[ "$fail" -eq 0 ]
