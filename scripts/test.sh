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

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
