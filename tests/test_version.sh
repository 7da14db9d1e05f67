#!/bin/sh
# tests/test_version.sh MHC [PC_FILE] - one version everywhere (run by `make test`):
# mhc.h's MHC_VERSION_MAJOR/MINOR/PATCH and MHC_VERSION_STRING, `mhc version`, CHANGELOG.md's
# newest release, the generated mhc.pc (PC_FILE, e.g. build/mhc.pc from the Makefile) and, when
# cmake is installed, the CMake package version file (MHC_CMAKE_VERSION_FILE, or one made by a
# configure-only cmake run in a temporary directory) and the .pc file CMake generates.
mhc=${1:-build/mhc}
pc=${2:-}
fail=0
failed() { echo "FAIL test_version: $*"; fail=1; }
num() { sed -n "s/^#define $1 \\([0-9][0-9]*\\)\$/\\1/p" mhc.h; }
ver=$(sed -n 's/^#define MHC_VERSION_STRING "\([^"]*\)"$/\1/p' mhc.h)
[ -n "$ver" ] || { echo "FAIL test_version: no MHC_VERSION_STRING in mhc.h"; exit 1; }
parts="$(num MHC_VERSION_MAJOR).$(num MHC_VERSION_MINOR).$(num MHC_VERSION_PATCH)"
[ "$parts" = "$ver" ] || failed "mhc.h: MAJOR.MINOR.PATCH is $parts, MHC_VERSION_STRING is $ver"
checked="mhc.h"

got=$("$mhc" version | sed -n 's/^mhc \([^ ]*\) .*/\1/p')
[ "$got" = "$ver" ] || failed "'$mhc version' says '$got', mhc.h says $ver"
checked="$checked, mhc version"

rel=$(sed -n 's/^## \[\([0-9][0-9.]*\)\].*/\1/p' CHANGELOG.md | head -n 1)
[ "$rel" = "$ver" ] || failed "CHANGELOG.md's newest release is '$rel', mhc.h says $ver"
grep -q '^## \[Unreleased\]' CHANGELOG.md || failed "CHANGELOG.md has no '## [Unreleased]' section"
checked="$checked, CHANGELOG.md"

pyver=$(sed -n 's/^__version__ = "\([^"]*\)"$/\1/p' python/mhc.py)
[ "$pyver" = "$ver" ] || failed "python/mhc.py's __version__ is '$pyver', mhc.h says $ver"
checked="$checked, python/mhc.py"

pcver() { sed -n 's/^Version: *//p' "$1"; }
if [ -n "$pc" ]; then
    [ "$(pcver "$pc")" = "$ver" ] || failed "$pc says Version: '$(pcver "$pc")', mhc.h says $ver"
    checked="$checked, $pc"
fi

skipped=""
vf=${MHC_CMAKE_VERSION_FILE:-}
tmp=""
if [ -z "$vf" ]; then
    if command -v cmake >/dev/null 2>&1; then
        tmp=$(mktemp -d "${TMPDIR:-/tmp}/mhc_version.XXXXXX")
        if cmake -S . -B "$tmp" -DMHC_BUILD_TOOL=OFF -DMHC_BUILD_TESTS=OFF -DMHC_BUILD_EXAMPLES=OFF \
                 >"$tmp/configure.log" 2>&1; then
            vf="$tmp/mhcConfigVersion.cmake"
            [ "$(pcver "$tmp/mhc.pc")" = "$ver" ] ||
                failed "CMake's mhc.pc says Version: '$(pcver "$tmp/mhc.pc")', mhc.h says $ver"
            checked="$checked, CMake's mhc.pc"
        else
            cat "$tmp/configure.log"; failed "cmake could not configure the project"
        fi
    else
        skipped=" (skipped the CMake version file: cmake not installed)"
    fi
fi
if [ -n "$vf" ]; then
    cv=$(sed -n 's/^set(PACKAGE_VERSION "\([^"]*\)")$/\1/p' "$vf")
    [ "$cv" = "$ver" ] || failed "$vf says PACKAGE_VERSION '$cv', mhc.h says $ver"
    checked="$checked, CMake version file"
fi
[ -n "$tmp" ] && rm -rf "$tmp"
[ "$fail" = 0 ] || exit 1
echo "test_version: $ver in $checked$skipped"
