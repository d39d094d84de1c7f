#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz.
# The machine's toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and
# the sanitizer is off (coverage-guided fuzzing for panics and logic assertions, not ASan; the
# crate forbids unsafe code).
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(form dn forwarded identity config assertion)
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none
mkdir -p fuzz/logs
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  log="fuzz/logs/$t.log"
  echo "== $t ($seconds s)"
  if ! cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    grep -E "panicked|ERROR|SUMMARY|error" "$log" | head -20 >&2 || true
    echo "FAILED: $t (see $log and fuzz/artifacts/$t)" >&2
    exit 1
  fi
  grep -E "^Done [0-9]+ runs|^stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+ +DONE +cov" "$log" || true
  echo "corpus: $(ls "fuzz/corpus/$t" | wc -l) inputs"
done
