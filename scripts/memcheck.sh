#!/usr/bin/env bash
# Memory checking of the runtime's kernels, buffer pool and tiler (CI: called by the lead's
# pipeline). Runs a subset of the spikerc-runtime test binaries (small shapes) under valgrind
# memcheck (--error-exitcode=1: any invalid read/write, use of uninitialised memory or
# definite leak fails), then, where a nightly toolchain is installed, the same subset built
# with AddressSanitizer.
#
# valgrind does not implement AVX-512: on a CPU that has it the runtime would pick AVX-512
# kernels and valgrind would stop at the first such instruction. The runs therefore set
# SPIKERC_SIMD=avx2, which the runtime's detection honours (it can only lower the level), so
# the AVX2 and baseline kernels are what is checked here; the AVX-512 kernels are covered by
# the ASan run (native execution) and the ordinary tests.
#
# Environment: MEMCHECK_ASAN=1 adds the ASan run (nightly; a long build); MEMCHECK_TIMEOUT (seconds per binary,
# default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

TIMEOUT="${MEMCHECK_TIMEOUT:-300}"
# The subset: unit tests of the kernels/pool/cells/tiler helpers, the border and tiling
# tests, and a few property cases per property.
UNIT_FILTERS=(disjoint buffers store_planes spike_kernels ops::)
export PROPTEST_CASES="${PROPTEST_CASES:-4}"
export SPIKERC_SIMD=avx2
export RAYON_NUM_THREADS=2

command -v valgrind >/dev/null || { echo "memcheck: valgrind is not installed" >&2; exit 1; }
if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then
    echo "memcheck: CPU has AVX-512, which valgrind lacks: kernels capped at AVX2 (SPIKERC_SIMD=avx2)"
fi

# Test executables of spikerc-runtime by target name, from cargo's JSON messages;
# arguments: the toolchain ("" or +nightly), then extra cargo arguments.
executables() {
    local tc=$1
    shift
    cargo ${tc:+"$tc"} test -p spikerc-runtime --no-run --message-format=json "$@" |
        python3 -c '
import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["profile"]["test"]:
        print(m["target"]["name"], m["executable"])
'
}

# run_subset LAUNCHER... : runs the chosen tests of each binary under LAUNCHER.
run_subset() {
    local -n bins=$1
    shift
    local lib="${bins[spikerc_runtime]}" borders="${bins[borders]}" props="${bins[properties]}"
    for f in "${UNIT_FILTERS[@]}"; do
        timeout "$TIMEOUT" "$@" "$lib" --test-threads=2 "$f"
    done
    timeout "$TIMEOUT" "$@" "$borders" --test-threads=2
    timeout "$TIMEOUT" "$@" "$props" --test-threads=2
}

declare -A VG
while read -r name exe; do VG[$name]=$exe; done < <(executables "")
for t in spikerc_runtime borders properties; do
    [[ -n "${VG[$t]:-}" ]] || { echo "memcheck: no test binary for $t" >&2; exit 1; }
done

start=$(date +%s)
run_subset VG valgrind --tool=memcheck --error-exitcode=1 --quiet \
    --leak-check=full --errors-for-leak-kinds=definite --show-leak-kinds=definite \
    --fair-sched=yes
echo "memcheck: valgrind clean in $(( $(date +%s) - start )) s"

if [[ "${MEMCHECK_ASAN:-0}" == 0 ]]; then
    echo "memcheck: ASan run skipped (set MEMCHECK_ASAN=1 for it; nightly only)"
elif ! cargo +nightly --version >/dev/null 2>&1; then
    echo "memcheck: no nightly toolchain, AddressSanitizer run skipped"
else
    # Native execution: the detected level (AVX-512 where present) is what ASan checks.
    unset SPIKERC_SIMD
    host=$(rustc -vV | sed -n 's/^host: //p')
    start=$(date +%s)
    declare -A AS
    while read -r name exe; do AS[$name]=$exe; done < <(
        RUSTFLAGS="-Zsanitizer=address" CARGO_TARGET_DIR=target/asan executables +nightly --target "$host")
    for t in spikerc_runtime borders properties; do
        [[ -n "${AS[$t]:-}" ]] || { echo "memcheck: ASan build produced no $t binary" >&2; exit 1; }
    done
    export ASAN_OPTIONS="detect_leaks=0"
    run_subset AS env
    echo "memcheck: AddressSanitizer clean in $(( $(date +%s) - start )) s (build included)"
fi
