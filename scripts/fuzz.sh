#!/usr/bin/env bash
# Bounded libFuzzer runs of every fuzz target (fuzz/fuzz_targets) where a nightly toolchain
# is installed; says so in one line where it is not. The stable replay of the same harness
# (corpora + generated mutations) runs in `cargo test` regardless (tests/fuzz_replay.rs).
# FUZZ_SECONDS per target (default 15). Built without a sanitizer (release + debug assertions)
# to bound CI time; the unsafe kernels get AddressSanitizer in scripts/memcheck.sh when asked
# (MEMCHECK_ASAN=1) and valgrind always. cargo-fuzz is installed into target/tools when absent.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
secs="${FUZZ_SECONDS:-15}"
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  echo "fuzz.sh: no nightly toolchain on this machine: libFuzzer runs skipped (the stable replay in cargo test still ran every decoder)"
  exit 0
fi
tools="$root/target/tools"
if ! [ -x "$tools/bin/cargo-fuzz" ]; then
  echo "fuzz.sh: installing cargo-fuzz into $tools" >&2
  cargo install --quiet --locked --root "$tools" cargo-fuzz
fi
export PATH="$tools/bin:$PATH"
cd "$root/fuzz"
export CARGO_TARGET_DIR="$root/target/fuzz"
targets=$(sed -n 's/^name = "\(.*\)"/\1/p' Cargo.toml | grep -v '^spikerc-fuzz$')
cargo +nightly fuzz build --sanitizer none
for t in $targets; do
  work="$CARGO_TARGET_DIR/corpus-$t"
  rm -rf "$work"; mkdir -p "$work"
  cp corpus/"$t"/* "$work"/
  echo "fuzz.sh: $t for ${secs}s" >&2
  cargo +nightly fuzz run --sanitizer none "$t" "$work" -- -max_total_time="$secs" -rss_limit_mb=4096 -malloc_limit_mb=4096 -print_final_stats=0 2>&1 | tail -n 3
done
echo "fuzz.sh: every target ran ${secs}s without a crash"
