#!/usr/bin/env bash
# `walstate apply` against a plain loop that appends each line and fdatasyncs it (what a
# script does without walstate): durable lines per second, both in the same run, on the
# same file system, several alternated rounds.
#
#   bash benches/cli/apply.sh [LINES] [ROUNDS] [DIR]     # defaults: 100000 3 $TMPDIR
set -euo pipefail
cd "$(dirname "$0")/../.."
LINES=${1:-100000}
ROUNDS=${2:-3}
BASE=${3:-${TMPDIR:-/tmp}}
cargo build --release --quiet --bin walstate
BIN=${CARGO_TARGET_DIR:-target}/release/walstate
WORK=$(mktemp -d "$BASE/walstate-apply-bench.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
python3 - "$LINES" > "$WORK/lines.jsonl" <<'PY'
import sys
for i in range(int(sys.argv[1])):
    print('{"op":"put","key":"key/%08d","value":"value-%d-%s"}' % (i, i, "x" * (i % 40)))
PY
plain_loop() {
  python3 - "$WORK/lines.jsonl" "$WORK/plain.log" <<'PY'
import os, sys, time
fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
start = time.monotonic()
n = 0
with open(sys.argv[1], "rb") as lines:
    for line in lines:
        os.write(fd, line)
        os.fdatasync(fd)
        n += 1
print(n / (time.monotonic() - start))
PY
}
walstate_apply() {
  rm -rf "$WORK/store"
  local start end
  start=$(date +%s.%N)
  "$BIN" apply "$WORK/store" < "$WORK/lines.jsonl" > "$WORK/acks.jsonl" 2>/dev/null
  end=$(date +%s.%N)
  test "$(wc -l < "$WORK/acks.jsonl")" -eq "$LINES"
  python3 -c "print($LINES / ($end - $start))"
}
echo "lines: $LINES, file system of $BASE: $(df -T "$BASE" | awk 'NR==2 {print $2}')"
echo "round  walstate-apply-lines/s  plain-loop-lines/s  ratio"
for round in $(seq "$ROUNDS"); do
  rm -f "$WORK/plain.log"
  apply=$(walstate_apply)
  plain=$(plain_loop)
  python3 -c "print('%5d  %22.0f  %18.0f  %5.1fx' % ($round, $apply, $plain, $apply / $plain))"
done
