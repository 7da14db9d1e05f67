#!/bin/sh
# tests/fuzz/run.sh NAME BIN SEEDS_DIR WORK_DIR SECONDS [RUNS]   (SEEDS_DIR.dict, if present, is
# passed as the libFuzzer dictionary)
# Run one libFuzzer target for SECONDS seconds (or RUNS executions when RUNS is given) on a working
# corpus WORK_DIR/corpus seeded from SEEDS_DIR (the committed seeds are never written to). Fails on
# any crash, sanitizer report (ASan, UBSan, LeakSanitizer), timeout (10 s per input) or memory
# blow-up; the input that triggered it is left in WORK_DIR/artifacts/. Prints the execution count.
name=$1; bin=$2; seeds=$3; work=$4; secs=$5; runs=$6
mkdir -p "$work/corpus" "$work/artifacts"
dict=""
[ -f "$seeds.dict" ] && dict="-dict=$seeds.dict"
if [ -n "$runs" ]; then limit="-runs=$runs"; what="-runs=$runs"; else limit="-max_total_time=$secs"; what="${secs}s"; fi
ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1} \
UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
"$bin" $limit -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 $dict \
    -artifact_prefix="$work/artifacts/" "$work/corpus" "$seeds" > "$work/log" 2>&1
rc=$?
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log" | tail -1)
rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/log" | tail -1)
units=$(ls "$work/corpus" | wc -l)
if [ "$rc" -ne 0 ] || grep -q -E "ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:|deadly signal" "$work/log"; then
    tail -n 60 "$work/log"
    echo "FUZZ FAIL $name: exit $rc after ${execs:-?} executions; the input is in $work/artifacts/ (log: $work/log)"
    exit 1
fi
echo "fuzz $name: ${execs:-?} executions ($what, ${rate:-?}/s), working corpus $units inputs, no findings"
