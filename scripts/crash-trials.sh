#!/usr/bin/env bash
# Run N randomized crash trials (default 1000) against real `rotator run`
# processes, a real PostgreSQL and the dev server, and record the result in
# docs/reliability.md (between the `trials` markers).
#
#   ./scripts/crash-trials.sh          # 1,000 trials, about 5 minutes
#   ./scripts/crash-trials.sh 200      # what CI runs
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-1000}"
log="$(mktemp)"
# The PostgreSQL trials only (the RabbitMQ ones have their own count).
CRASH_TRIALS="$trials" cargo test -p rotator --test crash_recovery -- --exact randomized_crashes_never_lock_anyone_out \
    --nocapture 2>&1 | tee "$log"
result="$(grep -o '^crash trials: .*' "$log" | tail -1)"
rm -f "$log"
[ -n "$result" ] || { echo "no result line: the run failed" >&2; exit 1; }
line="- $(date -u +%Y-%m-%d): \`./scripts/crash-trials.sh $trials\` → **${result#crash trials: }**"
./scripts/record-result.py trials "$line"
echo "recorded: $line"
