#!/usr/bin/env bash
# CI smoke run of every walstate fuzz target (called from the repo root as fuzz/run-ci.sh).
#
# Builds the targets with the nightly toolchain and runs each for $FUZZ_SECONDS seconds
# (default 60) on a temporary COPY of its committed seed corpus, so CI never grows the
# repository's corpus. Fails if any target finds a crash, a hang or a leak; the failing
# input is left in fuzz/artifacts/<target>/ and printed with the command to replay it.
set -euo pipefail
cd "$(dirname "$0")/.."

FUZZ_SECONDS=${FUZZ_SECONDS:-60}
# target:max_len (bytes). recover and store_ops inputs are programs: longer ones reach
# deeper states; frame_decode inputs are a single frame or file, codec_decode and
# schema_decode inputs one encoded value.
TARGETS=(frame_decode:4096 codec_decode:4096 schema_decode:4096 recover:8192 store_ops:4096)

echo "== fuzz: toolchain"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz needs a nightly toolchain (rustup toolchain install nightly)" >&2
  exit 1
fi
rustup run nightly rustc --version
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: cargo install cargo-fuzz --locked"
  cargo install cargo-fuzz --locked
fi
cargo fuzz --version

echo "== fuzz: build (cargo +nightly fuzz build)"
build_start=$SECONDS
cargo +nightly fuzz build
echo "built in $((SECONDS - build_start))s"

work=$(mktemp -d "${TMPDIR:-/tmp}/walstate-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT

failed=()
summary=()
for entry in "${TARGETS[@]}"; do
  target=${entry%%:*}
  max_len=${entry##*:}
  corpus="$work/$target"
  mkdir -p "$corpus"
  cp -R "fuzz/corpus/$target/." "$corpus/"
  seeds=$(find "$corpus" -type f | wc -l)
  echo "== fuzz: $target for ${FUZZ_SECONDS}s (max_len $max_len, $seeds seeds copied to $corpus)"
  start=$SECONDS
  log="$work/$target.log"
  if cargo +nightly fuzz run "$target" "$corpus" -- \
      -max_total_time="$FUZZ_SECONDS" \
      -rss_limit_mb=2048 \
      -max_len="$max_len" \
      -timeout=60 \
      -print_final_stats=1 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
  fi
  elapsed=$((SECONDS - start))
  stats=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE)' "$log" | tail -n 1 | sed -E 's/^#([0-9]+)[[:space:]]+[A-Z]+[[:space:]]+/\1 runs, /' || true)
  summary+=("$(printf '%-13s %-7s %4ss  %s' "$target" "$status" "$elapsed" "$stats")")
  if [ "$status" = FAILED ]; then
    echo "---- $target found a problem; end of its log:"
    tail -n 80 "$log"
    echo "---- replay: cargo +nightly fuzz run $target fuzz/artifacts/$target/<file>"
    echo "---- minimize: cargo +nightly fuzz tmin $target fuzz/artifacts/$target/<file>"
    ls -1 "fuzz/artifacts/$target/" 2>/dev/null | sed "s|^|     fuzz/artifacts/$target/|" || true
  else
    grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed 's/^/   /' || true
  fi
done

echo "== fuzz: summary"
printf '%s\n' "${summary[@]}"
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: all targets passed"
