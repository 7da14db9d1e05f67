#!/bin/sh
# tests/test_consumers.sh [--cmake PREFIX] [--pkg-config PREFIX] [--source]
# Builds and runs tests/consumer/consumer.cpp as a project outside the tree (copied to a
# temporary directory): --cmake PREFIX with find_package(mhc) against an install in PREFIX,
# --pkg-config PREFIX with `pkg-config --cflags --libs mhc` (PKG_CONFIG_PATH=PREFIX/share/pkgconfig,
# in double: -DMHC_DOUBLE), --source with add_subdirectory and with FetchContent on this tree.
# Needs cmake / pkg-config and a C++ compiler; says "skipped" for each one that is missing.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
cxx=${CXX:-c++}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mhc_consumer.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
fail=0
n=0
run_cmake() {   # run_cmake NAME -DOPTION...
    name=$1; shift
    d="$tmp/$name"
    mkdir -p "$d"
    cp "$src/tests/consumer/cmake/CMakeLists.txt" "$src/tests/consumer/consumer.cpp" "$d/"
    echo "consumer $name: cmake -S $d -B $d/build $*"
    if cmake -S "$d" -B "$d/build" "$@" >"$d/log" 2>&1 && cmake --build "$d/build" -j2 >>"$d/log" 2>&1 &&
       "$d/build/consumer"; then
        n=$((n + 1))
    else
        cat "$d/log"; echo "FAIL test_consumers: $name"; fail=1
    fi
}
have() { command -v "$1" >/dev/null 2>&1; }
while [ $# -gt 0 ]; do
    case $1 in
    --cmake)
        if have cmake; then run_cmake find_package -DCMAKE_PREFIX_PATH="$2"
        else echo "consumer find_package: skipped (cmake not installed)"; fi
        shift 2;;
    --source)
        if have cmake; then
            run_cmake add_subdirectory -DMHC_CONSUME=add_subdirectory -DMHC_SOURCE_DIR="$src"
            run_cmake fetchcontent -DMHC_CONSUME=fetchcontent -DMHC_SOURCE_DIR="$src"
        else echo "consumer add_subdirectory, fetchcontent: skipped (cmake not installed)"; fi
        shift;;
    --pkg-config)
        if have pkg-config && have "$cxx"; then
            d="$tmp/pkg-config"; mkdir -p "$d"
            cp "$src/tests/consumer/consumer.cpp" "$d/"
            export PKG_CONFIG_PATH="$2/share/pkgconfig"
            flags=$(pkg-config --cflags --libs mhc) || { echo "FAIL test_consumers: pkg-config found no mhc in $PKG_CONFIG_PATH"; fail=1; shift 2; continue; }
            echo "consumer pkg-config: $cxx -O2 -DMHC_DOUBLE consumer.cpp $flags (mhc $(pkg-config --modversion mhc))"
            # shellcheck disable=SC2086
            if (cd "$d" && $cxx -O2 -DMHC_DOUBLE '-DCONSUMER_HOW="pkg-config"' consumer.cpp -o consumer $flags) &&
               "$d/consumer"; then n=$((n + 1)); else echo "FAIL test_consumers: pkg-config"; fail=1; fi
        else echo "consumer pkg-config: skipped (pkg-config or $cxx not installed)"; fi
        shift 2;;
    *) echo "test_consumers.sh: unknown argument '$1'"; exit 2;;
    esac
done
[ "$fail" = 0 ] || exit 1
echo "test_consumers: $n passed"
