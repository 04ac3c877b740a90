#!/usr/bin/env bash
# The build figures in docs/benchmarks.md ("Build: the crate split"): for each
# revision given (default: HEAD), in a fresh clone with an empty target/,
# the wall time of `cargo test --workspace --no-run`, the size of target/,
# and what `cargo build -p rotator` (the README's other command) compiles
# right after. Run with nothing else building; each revision takes ~12 min
# on the 2-core VM.  Usage: scripts/measure-build.sh [REV...]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Tests include the shared Vault contract samples from ../shared.
[ -d "$repo/../shared" ] && ln -s "$repo/../shared" "$work/shared"
for rev in "${@:-HEAD}"; do
    git clone -q "$repo" "$work/clone"
    git -C "$work/clone" checkout -q "$rev"
    (cd "$work/clone" && ./scripts/build-polyglot.sh >/dev/null)
    start=$(date +%s)
    (cd "$work/clone" && cargo test --workspace --no-run --locked >"$work/test.log" 2>&1)
    built=$(($(date +%s) - start))
    start=$(date +%s)
    (cd "$work/clone" && cargo build -p rotator --locked >"$work/run.log" 2>&1)
    after=$(($(date +%s) - start))
    echo "$rev: clean test build ${built} s, target/ $(du -sh "$work/clone/target" | cut -f1)," \
        "test executables $(grep -c Executable "$work/test.log");" \
        "then cargo build -p rotator ${after} s compiling $(grep -c Compiling "$work/run.log") crates;" \
        "load $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$work/clone"
done
