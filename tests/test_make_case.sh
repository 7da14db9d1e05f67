#!/bin/sh
# tests/test_make_case.sh MHC - `mhc make-case` (run by `make test`): for every preset, n in
# {1, 2, 3, 4, 8} and the layer (float64; the sinkhorn op and the head of every preset for n = 4), the case is
# written with every slip that applies at >= 100 x the tolerance; the unchanged case passes
# `mhc verify` + `mhc compare`, and each slip of its power.txt, written into case.txt as the knob
# it names (or the norm weight removed), makes `mhc compare` fail with at least that err/tol's
# order: the table is checked through the CLI, not only in make_case.c. n = 1 lists the slips that
# cannot exist as n/a. A few float32 cases (those that reach the power, every one fair to float32, and one that cannot:
# the Sinkhorn eps rules are eps-sized, under float32's tolerance), and the error paths.
mhc=${1:-build/mhc}
tmp=${TMPDIR:-/tmp}/mhc_make_case.$$
rm -rf "$tmp"
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0
ok() { pass=$((pass + 1)); }
bad() { echo "FAIL test_make_case: $*"; fail=$((fail + 1)); }
sbad() { echo "FAIL test_make_case: $*"; echo x >>"$tmp/slips_bad"; }   # inside the pipe's subshell

# check_case DIR: the case verifies, and every slip listed as ok fails compare when applied
check_case() {
    d=$1
    if "$mhc" verify "$d" --out "$tmp/out" >/dev/null 2>"$tmp/err" && "$mhc" compare "$tmp/out" "$d/expected" >"$tmp/cmp"; then ok
    else bad "$d: the case itself does not verify: $(cat "$tmp/err") $(grep -v ' ok$' "$tmp/cmp" | head -3)"; return; fi
    grep -q "the case's power (power.txt): minimum" "$tmp/cmp" && ok || bad "$d: compare does not print the power line"
    grep -v '^#' "$d/power.txt" | grep -v '^minimum' | grep ' ok$' | while IFS= read -r line; do
        rm -rf "$tmp/slip" "$tmp/sout"
        cp -r "$d" "$tmp/slip"
        case "$line" in
        "norm_weight ignored"*) rm "$tmp/slip/norm_weight.npy" ;;
        *) key=${line%% *}; rest=${line#* }; to=${rest#*-> }; to=${to%% *}
           echo "$key = $to" >>"$tmp/slip/case.txt" ;;
        esac
        if ! "$mhc" verify "$tmp/slip" --out "$tmp/sout" >/dev/null 2>"$tmp/err"; then
            sbad "$d: slip '$line': verify refused: $(cat "$tmp/err")"; continue
        fi
        "$mhc" compare "$tmp/sout" "$d/expected" >"$tmp/scmp"
        # the tensors that fail for a value (not the missing d_norm_weight of the dropped weight)
        worst=$(grep ' FAIL\| NONFINITE' "$tmp/scmp" | grep -v '^d_norm_weight ' | awk '{print $5}' | sort -g | tail -1)
        if [ -z "$worst" ]; then sbad "$d: slip '$line' passes compare"; continue; fi
        if awk -v w="$worst" 'BEGIN { exit !(w == "inf" || w + 0 >= 100) }'; then echo pass >>"$tmp/slips_ok"
        else sbad "$d: slip '$line': compare's worst err/tol is only $worst"; fi
    done
}

for p in dsv4 tilekernels paper lite kromhc ortho megatron liger lucidrains mhc_cu; do
    for n in 1 2 3 4 8; do
        d="$tmp/${p}_$n"
        "$mhc" make-case --preset "$p" --n "$n" --out "$d" >"$tmp/log" 2>&1
        rc=$?
        if [ $rc -ne 0 ]; then bad "make-case --preset $p --n $n exited $rc: $(tail -3 "$tmp/log")"; continue; fi
        ok
        grep -q '^minimum ' "$d/power.txt" && ok || bad "$d/power.txt has no minimum line"
        if grep -q ' WEAK\| FAILED' "$d/power.txt"; then bad "$d/power.txt: $(grep ' WEAK\| FAILED' "$d/power.txt")"; fi
        if [ "$n" = 1 ]; then   # the slips that cannot exist for one stream say so
            if [ "$p" = lite ] || [ "$p" = kromhc ]; then want="norm_scope"; else want="norm_scope\|orient"; fi
            if grep "$want" "$d/power.txt" | grep -q 'n/a (n = 1'; then ok; else bad "$d: n = 1 does not mark $want n/a"; fi
        else
            if grep -q 'n/a (n = 1' "$d/power.txt"; then bad "$d: n = $n lists an n = 1 exception"; else ok; fi
        fi
        check_case "$d"
    done
done
for op in sinkhorn head; do
    for p in dsv4 tilekernels paper lite kromhc ortho megatron liger lucidrains mhc_cu; do
        d="$tmp/${op}_$p"
        if "$mhc" make-case --op $op --preset $p --n 4 --out "$d" >"$tmp/log" 2>&1; then ok; check_case "$d"
        else bad "make-case --op $op --preset $p --n 4: $(tail -2 "$tmp/log")"; fi
    done
done
# float32: the presets without a Sinkhorn eps reach the power at float32's tolerance ...
for p in lite kromhc ortho mhc_cu; do
    d="$tmp/f32_$p"
    if "$mhc" make-case --preset $p --n 4 --dtype float32 --out "$d" >"$tmp/log" 2>&1; then ok; check_case "$d"
    else bad "make-case --preset $p --n 4 --dtype float32: $(tail -2 "$tmp/log")"; fi
done
# ... and every float32 case, with the power or without, is fair: mhc.h's own float32 computation
# (mhc verify) passes it, and power.txt says by how much (at most 0.5 of the tolerance)
for p in dsv4 tilekernels paper megatron liger lucidrains; do
    for n in 2 8; do
        d="$tmp/f32_${p}_$n"
        "$mhc" make-case --preset $p --n $n --dtype float32 --out "$d" >"$tmp/log" 2>&1
        rc=$?
        if [ $rc -gt 1 ]; then bad "make-case --preset $p --n $n --dtype float32 exited $rc: $(tail -2 "$tmp/log")"; continue; fi
        if "$mhc" verify "$d" --out "$tmp/out" >/dev/null 2>&1 && "$mhc" compare "$tmp/out" "$d/expected" >/dev/null; then ok
        else bad "$d: mhc.h's own float32 result fails the float32 case"; fi
        f=$(sed -n 's/^# fair: .* at err\/tol \([0-9.e+-]*\) .*/\1/p' "$d/power.txt")
        if [ -n "$f" ] && awk -v f="$f" 'BEGIN { exit !(f <= 0.5) }'; then ok; else bad "$d: fair line '$f'"; fi
    done
done
# ... the softmax start's eps rules (eps-sized changes) cannot: exit 1, the case written, only those WEAK
"$mhc" make-case --preset dsv4 --n 4 --dtype float32 --out "$tmp/f32_dsv4" >"$tmp/log" 2>&1
rc=$?
[ $rc -eq 1 ] && ok || bad "dsv4 float32: exit $rc, expected 1"
grep -q "some slip stays under 100" "$tmp/log" && ok || bad "dsv4 float32: no message about the weak slips"
[ -f "$tmp/f32_dsv4/expected/h_res.npy" ] && ok || bad "dsv4 float32: the case was not written"
if grep ' WEAK' "$tmp/f32_dsv4/power.txt" | grep -qv '^sinkhorn_eps'; then
    bad "dsv4 float32: a slip other than a Sinkhorn eps rule is weak: $(grep ' WEAK' "$tmp/f32_dsv4/power.txt")"
else ok; fi
# the same seed gives the same bytes
"$mhc" make-case --preset dsv4 --n 4 --out "$tmp/again" >/dev/null 2>&1
if cmp -s "$tmp/dsv4_4/expected/h_res.npy" "$tmp/again/expected/h_res.npy" && cmp -s "$tmp/dsv4_4/x.npy" "$tmp/again/x.npy"
then ok; else bad "make-case is not reproducible for one seed"; fi
"$mhc" make-case --preset dsv4 --n 4 --seed 7 --out "$tmp/seed7" >/dev/null 2>&1
if cmp -s "$tmp/dsv4_4/x.npy" "$tmp/seed7/x.npy"; then bad "--seed does not change the inputs"; else ok; fi
# errors: exit 2 with a message naming the problem, nothing written
err() {   # err WANT_TEXT ARGS...
    want=$1; shift
    "$mhc" make-case "$@" >"$tmp/eout" 2>&1
    rc=$?
    if [ $rc -eq 2 ] && grep -q -- "$want" "$tmp/eout"; then ok
    else bad "make-case $*: exit $rc, output '$(head -2 "$tmp/eout")', expected 2 and '$want'"; fi
}
err "missing --preset" --n 4 --out "$tmp/e1"
err "missing --n" --preset dsv4 --out "$tmp/e1"
err "missing --out" --preset dsv4 --n 4
err "unknown preset" --preset nosuch --n 4 --out "$tmp/e1"
err "n = 9" --preset lite --n 9 --out "$tmp/e1"
err "expected an integer in 1..64" --preset dsv4 --n 0 --out "$tmp/e1"
err "expected an integer in 1..4096" --preset dsv4 --n 4 --T 0 --out "$tmp/e1"
err "expected layer, sinkhorn or head" --op nosuch --preset dsv4 --n 4 --out "$tmp/e1"
err "expected float64 or float32" --dtype float16 --preset dsv4 --n 4 --out "$tmp/e1"
err "unknown option" --preset dsv4 --n 4 --out "$tmp/e1" --frob 1
err "not empty" --preset dsv4 --n 4 --out "$tmp/dsv4_4"
: >"$tmp/afile"
err "not a directory" --preset dsv4 --n 4 --out "$tmp/afile"
err "limit of 1 GiB" --preset lite --n 8 --T 4096 --C 4096 --out "$tmp/e1"
err "flops per draw" --preset dsv4 --n 64 --T 512 --C 16 --out "$tmp/e1"
[ -e "$tmp/e1" ] && bad "a refused make-case created its --out directory" || ok
"$mhc" make-case --preset dsv4 --n 4 --out "$tmp/dsv4_4" --force >/dev/null 2>&1 && ok || bad "--force does not overwrite"
# --force replaces a layer case by a sinkhorn case: no stale input or expected tensor, other files kept
: >"$tmp/dsv4_4/notes.md"
"$mhc" make-case --op sinkhorn --preset dsv4 --n 4 --out "$tmp/dsv4_4" --force >/dev/null 2>&1 && ok || bad "--force sinkhorn"
[ -e "$tmp/dsv4_4/x.npy" ] || [ -e "$tmp/dsv4_4/expected/h_res.npy" ] && bad "--force left the layer case's files" || ok
[ -e "$tmp/dsv4_4/notes.md" ] && ok || bad "--force removed a file that is not the case's"
check_case "$tmp/dsv4_4"
# ... but a symbolic link at a case file's name is refused (writing would go through it), nothing removed
ln -s "$tmp/afile" "$tmp/dsv4_4/case.txt.lnk" && mv "$tmp/dsv4_4/case.txt.lnk" "$tmp/dsv4_4/power.txt"
err "is a symbolic link" --preset dsv4 --n 4 --out "$tmp/dsv4_4" --force
[ -e "$tmp/dsv4_4/logits.npy" ] && ok || bad "a refused --force removed files"
[ -s "$tmp/afile" ] && bad "--force wrote through a symbolic link" || ok
mkdir -p "$tmp/lnk" "$tmp/elsewhere" && ln -s "$tmp/elsewhere" "$tmp/lnk/expected"
err "is not a directory (a symbolic link)" --preset dsv4 --n 2 --out "$tmp/lnk" --force
[ -z "$(ls "$tmp/elsewhere")" ] && ok || bad "--force wrote through an expected/ link"
"$mhc" make-case --help | grep -q "usage: mhc make-case" && ok || bad "make-case --help"

slips=$( [ -f "$tmp/slips_ok" ] && wc -l <"$tmp/slips_ok" || echo 0)
pass=$((pass + slips))
[ -f "$tmp/slips_bad" ] && fail=$((fail + $(wc -l <"$tmp/slips_bad")))
echo "test_make_case: $pass passed, $fail failed ($slips slips applied through case.txt, each failing compare by >= 100 x)"
[ "$fail" -eq 0 ]
