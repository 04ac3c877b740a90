#!/usr/bin/env bash
# Rotations per second through the API and the scheduler, beside a Python
# peer (hvac) in the same run: docs/benchmarks.md, "Rotations per second
# against a Python peer (issue 15)". A release build; hvac goes into a
# throwaway virtual environment, removed at the end.
#
#   ./scripts/bench-rotations.sh                          # 2,000 rotations per run, 2,000 scheduled jobs
#   ./scripts/bench-rotations.sh --rotations 500 --jobs 500
set -euo pipefail
cd "$(dirname "$0")/.."
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet hvac
PEER_PYTHON="$tmp/venv/bin/python" cargo bench -p rotator-tests --bench api_rotations -- "$@"
