#!/usr/bin/env bash
# Build the example plugins written in Python and JavaScript:
#
#   plugins/examples/python-kv    → plugins/examples/out/python-kv.wasm    (componentize-py)
#   plugins/examples/python-http  → plugins/examples/out/python-http.wasm  (componentize-py)
#   plugins/examples/js-kv        → plugins/examples/out/js-kv.wasm        (componentize-js)
#   plugins/examples/js-http      → plugins/examples/out/js-http.wasm      (componentize-js)
#
# Installs the tools first if they are missing or their pins changed: a venv in
# plugins/examples/.venv from python-kv/requirements.txt, and js-kv/node_modules
# from js-kv/package-lock.json (all gitignored, like out/); the other example of
# each language uses the same tools. A component is rebuilt only when its
# source, its pins or the WIT folder are newer than it, so a second run does
# nothing and takes well under a second. tests/tests/plugins/polyglot.rs and
# polyglot_http.rs run this script.
#
#   ./scripts/build-polyglot.sh            # build what is out of date
#   ./scripts/build-polyglot.sh --force    # rebuild every component
set -euo pipefail
cd "$(dirname "$0")/.."

examples=plugins/examples
# The frozen WIT version the examples target (see wit/PENDING_CHANGES.md).
wit="wit/rotator-plugin@0.2.0"
out="$examples/out"
venv="$examples/.venv"
# The tools of each language are pinned in one example's folder.
py_tools="$examples/python-kv"
js_tools="$examples/js-kv"
force=false
[ "${1:-}" = "--force" ] && force=true

for tool in python3 node npm; do
    if ! command -v "$tool" >/dev/null; then
        echo "build-polyglot: $tool is missing (Python 3.11+ with venv, Node.js 20+ with npm are needed)" >&2
        exit 1
    fi
done

mkdir -p "$out"
# Two test processes (or a test and a person) may build at once: one at a time.
exec 9>"$out/.lock"
flock 9

# A stamp holds the sha256 of the file that pins a tool set; a mismatch means
# the pins changed (or the tools were never installed) and they are installed again.
stamp_ok() { [ -f "$2" ] && [ "$(sha256sum <"$1")" = "$(cat "$2")" ]; }
write_stamp() { sha256sum <"$1" >"$2"; }

# True when $1 is missing or older than any of the other paths (files or folders).
stale() {
    local target="$1"
    shift
    $force && return 0
    [ -f "$target" ] || return 0
    [ -n "$(find "$@" -newer "$target" -print -quit)" ]
}

# Build into a temp file and rename, so a failed build never leaves a partial component.
finish() {
    local tmp="$1" target="$2" started="$3"
    mv "$tmp" "$target"
    echo "build-polyglot: built $target ($(stat -c %s "$target") bytes, $(($(date +%s) - started)) s)" >&2
}

# --- Python: componentize-py in a venv --------------------------------------
if ! stamp_ok "$py_tools/requirements.txt" "$venv/.stamp" || [ ! -x "$venv/bin/componentize-py" ]; then
    echo "build-polyglot: installing componentize-py into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$py_tools/requirements.txt"
    write_stamp "$py_tools/requirements.txt" "$venv/.stamp"
fi
# build_python NAME: plugins/examples/NAME/app.py → out/NAME.wasm.
build_python() {
    local name="$1" dir="$examples/$1" started
    stale "$out/$name.wasm" "$dir/app.py" "$wit" "$venv/.stamp" || return 0
    started=$(date +%s)
    # componentize-py generates the bindings itself (module `wit_world`) while
    # it builds; `app` is the module holding the `Rotator` class.
    "$venv/bin/componentize-py" --quiet -d "$wit" -w plugin \
        componentize --python-path "$dir" app -o "$out/$name.wasm.tmp"
    finish "$out/$name.wasm.tmp" "$out/$name.wasm" "$started"
}
build_python python-kv
build_python python-http

# --- JavaScript: componentize-js from the example's package-lock ------------
if ! stamp_ok "$js_tools/package-lock.json" "$js_tools/node_modules/.rotator-stamp" \
    || [ ! -x "$js_tools/node_modules/.bin/componentize-js" ]; then
    echo "build-polyglot: installing componentize-js into $js_tools/node_modules" >&2
    # Not `npm ci`: the registry reachable here serves no optional packages
    # for other platforms (rolldown's darwin bindings, …), so the lock lacks
    # them and `npm ci` refuses it as out of sync. `install --no-save` installs
    # exactly the locked versions and leaves the lock as it is.
    (cd "$js_tools" && npm install --no-save --no-audit --no-fund --loglevel=error)
    write_stamp "$js_tools/package-lock.json" "$js_tools/node_modules/.rotator-stamp"
fi
# build_js NAME: plugins/examples/NAME/plugin.js → out/NAME.wasm.
build_js() {
    local name="$1" dir="$examples/$1" started
    stale "$out/$name.wasm" "$dir/plugin.js" "$js_tools/package-lock.json" "$wit" || return 0
    started=$(date +%s)
    # http and fetch-event would import wasi:http, which rotator does not
    # provide: a plugin reaches the network only through the host's imports.
    "$js_tools/node_modules/.bin/componentize-js" "$dir/plugin.js" --wit "$wit" --world-name plugin \
        --disable http fetch-event -o "$out/$name.wasm.tmp"
    finish "$out/$name.wasm.tmp" "$out/$name.wasm" "$started"
}
build_js js-kv
build_js js-http
