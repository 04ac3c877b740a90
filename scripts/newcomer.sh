#!/usr/bin/env bash
# Time a newcomer's first rotator, per language, as docs/tutorial.md goes:
# in a fresh temp folder, `rotator plugin new` → `plugin build` →
# `plugin test`. Two runs per language:
#
#   cold: a new cargo target dir and an empty compilation cache
#         (ROTATOR_CACHE_DIR): the very first plugin, the first-build cost;
#   warm: a second project (another name) reusing both: the next plugin.
#
# Toolchains must be installed first: Rust with the wasm32-wasip2 target, and
# the venv and node_modules scripts/build-polyglot.sh installs (put on PATH
# here, as the tests do). Uses $ROTATOR, or target/debug/rotator (built if
# missing; its dependencies are optimised, so plugin compilation runs at
# release speed). Prints a Markdown table for docs/plugins.md.
#
#   ./scripts/newcomer.sh               # rust python js
#   ./scripts/newcomer.sh python js
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if [ -z "${ROTATOR:-}" ]; then
    cargo build --quiet -p rotator
    ROTATOR="${CARGO_TARGET_DIR:-$repo/target}/debug/rotator"
fi
./scripts/build-polyglot.sh >/dev/null 2>&1
export PATH="$repo/plugins/examples/.venv/bin:$repo/plugins/examples/js-kv/node_modules/.bin:$PATH"
export CARGO_NET_OFFLINE=true

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CARGO_TARGET_DIR="$work/cargo-target" ROTATOR_CACHE_DIR="$work/cache"

now() { date +%s.%N; }
# run NAME LANG: the three commands in $work/NAME; prints "new build test total".
run() {
    local name="$1" lang="$2" t0 t1 t2 t3
    t0=$(now)
    (cd "$work" && "$ROTATOR" plugin new "$name" --lang "$lang" >/dev/null)
    t1=$(now)
    (cd "$work/$name" && "$ROTATOR" plugin build >/dev/null 2>"$work/$name.build.log") \
        || { cat "$work/$name.build.log" >&2; exit 1; }
    t2=$(now)
    (cd "$work/$name" && "$ROTATOR" plugin test "$name.wasm" --settings settings.toml >"$work/$name.test.log" 2>&1) \
        || { cat "$work/$name.test.log" >&2; exit 1; }
    t3=$(now)
    awk -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" \
        'BEGIN { printf "%.1f s | %.1f s | %.1f s | **%.1f s**", b - a, c - b, d - c, d - a }'
}

echo "| language | run | new | build | test | total |"
echo "|---|---|---|---|---|---|"
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(rust python js)
for lang in "${langs[@]}"; do
    echo "| $lang | cold | $(run "first-$lang" "$lang") |"
    echo "| $lang | warm | $(run "second-$lang" "$lang") |"
done
