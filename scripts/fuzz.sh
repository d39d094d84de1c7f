#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (default 60 s each) with cargo-fuzz, keeps each
# target's corpus between runs (fuzz/corpus/<target>), runs every target even when one fails,
# reports all, and exits 1 at the end if any failed. Figures go to fuzz/logs/summary.txt
# (what docs/security.md quotes).
# The machine's toolchain is stable: RUSTC_BOOTSTRAP=1 lets cargo-fuzz pass its -Z flags, and
# the sanitizer is off (coverage-guided fuzzing for panics and logic assertions, not ASan; the
# crate forbids unsafe code). The bodies live in src/fuzzing.rs and also run in `cargo test`.
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
shift || true
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(form dn forwarded identity config assertion crl upstream_answer authz jwt)
export RUSTC_BOOTSTRAP=1
cargo fuzz build --sanitizer none
mkdir -p fuzz/logs
summary=fuzz/logs/summary.txt
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
echo "# scripts/fuzz.sh $seconds on $commit, $(date -u +%Y-%m-%dT%H:%MZ)" >"$summary"
failed=()
for t in "${targets[@]}"; do
  mkdir -p "fuzz/corpus/$t"
  # Saved regressions seed the corpus, so each run starts from every input that ever failed.
  [ -d "fuzz/regressions/$t" ] && cp -n fuzz/regressions/"$t"/* "fuzz/corpus/$t/" 2>/dev/null || true
  log="fuzz/logs/$t.log"
  echo "== $t ($seconds s)"
  if cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    result=ok
  else
    result=FAILED
    failed+=("$t")
    grep -E "panicked|ERROR|SUMMARY|error" "$log" | head -20 >&2 || true
    echo "FAILED: $t (see $log and fuzz/artifacts/$t)" >&2
  fi
  runs=$(grep -oE "^stat::number_of_executed_units: *[0-9]+" "$log" | grep -oE "[0-9]+$" || echo "?")
  corpus=$(ls "fuzz/corpus/$t" | wc -l)
  printf '%-16s %-6s %6s s %12s runs %7s corpus\n' "$t" "$result" "$seconds" "$runs" "$corpus" | tee -a "$summary"
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "failed targets: ${failed[*]}" | tee -a "$summary" >&2
  exit 1
fi
