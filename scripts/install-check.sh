#!/usr/bin/env bash
# `cargo install` gives a rotator that works without this checkout: install
# it into a temp dir (sharing target/, so it links what the tests built),
# then, from another temp dir, run `rotator dev` on free loopback ports and
# wait for its built-in demo job to write secret/demo/app through the
# embedded kv-random plugin.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
pid=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    rm -rf "$work"
}
trap cleanup EXIT

cargo install --quiet --locked --debug --path host/rotator --root "$work/root" --target-dir target
ports=$(python3 -c 'import socket
s=[socket.socket() for _ in range(2)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(*[x.getsockname()[1] for x in s])')
read -r vault_port api_port <<<"$ports"

mkdir "$work/elsewhere"
# `exec`, so $! is rotator itself and the cleanup stops it (it was the
# subshell's pid, and rotator outlived the check).
(cd "$work/elsewhere" && exec env -u VAULT_ADDR -u VAULT_TOKEN ROTATOR_API_TOKEN=install-check-token-0123456789 \
    "$work/root/bin/rotator" dev --vault-addr "127.0.0.1:$vault_port" --api-addr "127.0.0.1:$api_port" \
    >"$work/dev.log" 2>&1) &
pid=$!

for _ in $(seq 1 120); do
    if curl -fsS -H 'X-Vault-Token: root' "http://127.0.0.1:$vault_port/v1/secret/data/demo/app" >/dev/null 2>&1 &&
        curl -fsS "http://127.0.0.1:$api_port/readyz" >/dev/null 2>&1; then
        echo "install-check: the installed rotator ran dev from $work/elsewhere and rotated secret/demo/app"
        exit 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then break; fi
    sleep 0.5
done
echo "install-check: the installed rotator did not rotate within 60 s; its output:" >&2
cat "$work/dev.log" >&2
exit 1
