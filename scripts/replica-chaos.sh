#!/usr/bin/env bash
# Run the replica chaos suite N times (default 5), each CHAOS_SECONDS long
# (default 120): three `rotator run` replicas on one dev server with
# kv-random and PostgreSQL jobs, killed (SIGKILL), frozen past their lease
# (SIGSTOP) and cut off by Vault 503s. Every trial checks from Vault's
# history that each slot rotated at most once, no fenced write landed,
# PENDING was cleared and every PostgreSQL password logs in. The totals go
# into docs/reliability.md (between the `replica-trials` markers).
#
#   ./scripts/replica-chaos.sh            # 5 trials of 120 s, about 12 minutes
#   ./scripts/replica-chaos.sh 2 60       # what a quick check needs
set -euo pipefail
cd "$(dirname "$0")/.."
trials="${1:-5}"
seconds="${2:-120}"
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
started=$(date +%s)
for _ in $(seq "$trials"); do
    CHAOS_SECONDS="$seconds" cargo test -p rotator --test replicas -- --exact \
        replicas_rotate_each_slot_once_through_kills_pauses_and_vault_outages --nocapture 2>&1 | tee -a "$log" \
        | grep '^chaos:'
done
took=$(( $(date +%s) - started ))
line="$(python3 - "$log" "$trials" "$seconds" "$took" <<'PY'
import re, sys
log, trials, seconds, took = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
keys = ["kills", "pauses", "outages", "rotations", "merged", "fenced"]
total = dict.fromkeys(keys, 0)
runs = 0
pat = re.compile(r"^chaos: seed \d+: (\d+) kills, (\d+) pauses, (\d+) outages; (\d+) rotations of \d+ jobs, "
                 r"0 double, (\d+) slots merged by catch-up \(\d+ of them in outages\); (\d+) runs fenced")
for line in open(log):
    m = pat.match(line)
    if m:
        runs += 1
        for k, v in zip(keys, m.groups()):
            total[k] += int(v)
if runs != trials:
    sys.exit(f"only {runs} of {trials} trials passed")
print(f"{trials} trials × {seconds} s: {total['kills']} kills, {total['pauses']} pauses, {total['outages']} Vault outages; "
      f"{total['rotations']} rotations, **0 double, 0 fenced writes landed, 0 lockouts**; "
      f"{total['merged']} slots merged by catch-up; {total['fenced']} runs fenced; {took} s")
PY
)"
entry="- $(date -u +%Y-%m-%d): \`./scripts/replica-chaos.sh $trials $seconds\` → $line"
./scripts/record-result.py replica-trials "$entry"
echo "recorded: $entry"
