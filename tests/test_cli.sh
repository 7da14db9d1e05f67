#!/bin/sh
# tests/test_cli.sh MHC - exit codes of the command-line tool (run by `make test`).
# Uses the committed golden vectors as data; needs no Python.
mhc=${1:-build/mhc}
fail=0
check() {   # check EXPECTED_CODE DESCRIPTION CMD...
    want=$1; what=$2; shift 2
    "$@" >/dev/null 2>&1
    got=$?
    if [ "$got" -ne "$want" ]; then echo "FAIL test_cli: $what: '$*' exited $got, expected $want"; fail=1; fi
}
v=tests/vectors
check 0 "version" "$mhc" version
check 0 "help" "$mhc" help
# the matmul kernel: picked at run time, MHC_ISA=portable forces the portable one
case "$(MHC_ISA=portable "$mhc" version)" in *"matmul kernel: portable"*) ;;
  *) echo "FAIL test_cli: 'MHC_ISA=portable mhc version' does not say 'matmul kernel: portable'"; fail=1 ;; esac
# the OpenMP wait policy (mhc.h, OPENMP WAIT POLICY): passive unless the environment names one,
# read by the OpenMP runtime itself (OMP_DISPLAY_ENV), the user's other OpenMP variables kept
if "$mhc" version | grep -q "OpenMP wait policy"; then
    ver=$(env -u OMP_WAIT_POLICY OMP_NUM_THREADS=1 OMP_DISPLAY_ENV=true "$mhc" version 2>&1)
    case "$ver" in *"wait policy: passive (mhc's default"*) ;;
      *) echo "FAIL test_cli: with OMP_WAIT_POLICY unset, 'mhc version' does not say the policy is passive"; fail=1 ;; esac
    echo "$ver" | grep -q "OMP_WAIT_POLICY *= *'PASSIVE'" ||
        { echo "FAIL test_cli: with OMP_WAIT_POLICY unset, the OpenMP runtime did not read passive"; fail=1; }
    echo "$ver" | grep -q "OMP_NUM_THREADS *= *'1'" ||
        { echo "FAIL test_cli: OMP_NUM_THREADS=1 did not reach the OpenMP runtime"; fail=1; }
    ver=$(OMP_WAIT_POLICY=active OMP_DISPLAY_ENV=true "$mhc" version 2>&1)
    case "$ver" in *"wait policy: OMP_WAIT_POLICY=active (from the environment)"*) ;;
      *) echo "FAIL test_cli: 'OMP_WAIT_POLICY=active mhc version' does not report the user's policy"; fail=1 ;; esac
    echo "$ver" | grep -q "OMP_WAIT_POLICY *= *'ACTIVE'" ||
        { echo "FAIL test_cli: OMP_WAIT_POLICY=active did not reach the OpenMP runtime"; fail=1; }
    case "$(env -u OMP_WAIT_POLICY MHC_ISA=portable "$mhc" version)" in *"matmul kernel: portable"*) ;;
      *) echo "FAIL test_cli: with OMP_WAIT_POLICY unset, the program's environment lost MHC_ISA"; fail=1 ;; esac
fi
check 0 "compare --help" "$mhc" compare --help
check 2 "no command" "$mhc"
check 2 "unknown command" "$mhc" frobnicate
check 2 "compare without dirs" "$mhc" compare
check 2 "compare bad rtol" "$mhc" compare $v/layer_dsv4_n4/expected $v/layer_dsv4_n4/expected --rtol x
check 2 "compare unknown option" "$mhc" compare $v/layer_dsv4_n4/expected $v/layer_dsv4_n4/expected --frob
check 2 "compare missing expected dir" "$mhc" compare $v/layer_dsv4_n4/expected /nonexistent_mhc_dir
check 0 "compare a case with itself" "$mhc" compare $v/layer_dsv4_n4/expected $v/layer_dsv4_n4/expected
check 0 "compare, options" "$mhc" compare --rtol=0 --atol 0 $v/layer_dsv4_n4/expected $v/layer_dsv4_n4/expected
check 1 "compare two different cases" "$mhc" compare $v/layer_tilekernels_n4/expected $v/layer_dsv4_n4/expected
check 1 "compare against inputs" "$mhc" compare $v/layer_dsv4_n4 $v/layer_dsv4_n4/expected
# every committed vector file parses (inputs and expected, each directory against itself)
cases=0
for d in $v/*/; do
    [ -f "$d/case.txt" ] || continue
    check 0 "inputs of $d" "$mhc" compare "$d" "$d"
    check 0 "expected of $d" "$mhc" compare "$d/expected" "$d/expected"
    cases=$((cases + 1))
done
[ $cases -gt 0 ] || { echo "FAIL test_cli: no vector cases under $v"; fail=1; }
# verify: usage errors, then every golden vector through the library (verify, then compare)
out=$(dirname "$mhc")/test_tmp/vectors
rm -rf "$out"
check 0 "verify --help" "$mhc" verify --help
check 2 "verify without arguments" "$mhc" verify
check 2 "verify without --out" "$mhc" verify $v/layer_dsv4_n4
check 2 "verify --out without a directory" "$mhc" verify $v/layer_dsv4_n4 --out
check 2 "verify unknown option" "$mhc" verify $v/layer_dsv4_n4 --out "$out/x" --frob
check 2 "verify two case directories" "$mhc" verify $v/layer_dsv4_n4 $v/layer_dsv4_n2 --out "$out/x"
check 2 "verify a missing case" "$mhc" verify /nonexistent_mhc_case --out "$out/x"
check 0 "verify --out=DIR" "$mhc" verify $v/layer_dsv4_n4 --out="$out/x"
# it says what it wrote (stdout): every output file, and the command that checks them
said=$("$mhc" verify $v/layer_dsv4_n4 --out "$out/x" 2>/dev/null)
nfiles=$(ls "$out/x"/*.npy 2>/dev/null | wc -l)
case "$said" in
    "verify: wrote $nfiles outputs to $out/x: "*"layer_input.npy"*"; check them with: mhc compare $out/x $v/layer_dsv4_n4/expected") ;;
    *) echo "FAIL test_cli: verify should say what it wrote ($nfiles files), said: '$said'"; fail=1;;
esac
golden=0
for d in $v/*/; do
    [ -f "$d/case.txt" ] || continue
    c=$(basename "$d")
    check 0 "verify $c" "$mhc" verify "$d" --out "$out/$c"
    check 0 "golden vector $c (verify output vs expected)" "$mhc" compare "$out/$c" "$d/expected"
    golden=$((golden + 1))
done
if [ $fail -eq 0 ]; then
    echo "test_cli: $((22 + 2 * cases + 2 * golden)) passed ($cases vector cases parse, $golden golden vectors match)"
fi
exit $fail
