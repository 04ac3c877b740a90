#!/usr/bin/env bash
# Every check and test, on a fresh machine: installs what is missing, then
# formatting, lints and the whole test suite. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v cargo >/dev/null; then
    echo "cargo is missing: install Rust with rustup (https://rustup.rs), then run this again" >&2
    exit 1
fi
# rust-toolchain.toml pins the toolchain and names the guest target, but
# rustup adds targets only when it installs a toolchain; make sure of both.
rustup toolchain install >/dev/null 2>&1 || true
rustup target add wasm32-wasip2 >/dev/null

# Auth tests sign JWTs with the openssl CLI.
if ! command -v openssl >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
fi

# Tests run a throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir)
# and a throwaway RabbitMQ node (Debian's scripts under /usr/lib/rabbitmq),
# and the dashboard's browser test drives a headless chromium.
missing=()
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null; then
    missing+=(postgresql)
fi
if [ ! -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    missing+=(rabbitmq-server)
fi
if ! command -v chromium >/dev/null; then
    missing+=(chromium)
fi
# The packaging tests check the systemd unit with systemd-analyze, and the
# install check polls the installed binary with curl.
if ! command -v systemd-analyze >/dev/null; then
    missing+=(systemd)
fi
if ! command -v curl >/dev/null; then
    missing+=(curl)
fi
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        echo "missing: ${missing[*]}: install them (e.g. sudo apt-get install ${missing[*]})" >&2
        exit 1
    fi
fi

# The AWS tests run moto's server mode (IAM, STS, Secrets Manager) on a
# loopback port with request authentication on (tests/src/moto.rs).
if ! command -v moto_server >/dev/null; then
    python3 -m pip install --quiet 'moto[server]'
fi

# Two workspaces: the host (the root) and the guests (plugins/, built to
# wasm32-wasip2 by host/core/build.rs). Cheap checks first, then the tests.
# The guests' clippy uses the build script's target and target dir; it checks
# the debug profile while the build script builds release, so neither
# overwrites the other's artifacts.
plugins=(--manifest-path plugins/Cargo.toml --target-dir plugins/target)
# The Python and JavaScript example plugins, built with componentize-py and
# componentize-js from PyPI and npm (tests/tests/plugins/polyglot.rs runs
# them): mostly downloads and single-threaded tools, so they build while
# the lints run.
./scripts/build-polyglot.sh &
polyglot=$!
trap 'kill "$polyglot" 2>/dev/null || true' EXIT
cargo fmt --all --check
cargo fmt --manifest-path plugins/Cargo.toml --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy "${plugins[@]}" --workspace --all-targets --locked --target wasm32-wasip2 -- -D warnings
wait "$polyglot"
trap - EXIT
cargo test --workspace --locked
# `cargo install` gives a rotator that runs `dev` away from this checkout.
./scripts/install-check.sh
# The SDK's unit tests run natively: off wasm, its WIT imports compile to
# stubs; so do those of the plugins whose parsing is tested apart from the host.
cargo test "${plugins[@]}" --locked -p rotator-plugin-sdk -p aws-iam-access-key
