#!/usr/bin/env bash
# The build figures behind two choices (docs/benchmarks.md, plugins/Cargo.toml):
#  1. the guest release profile: the plugins workspace built clean with the
#     profile in plugins/Cargo.toml, then with the former one (opt-level 3,
#     fat LTO, one codegen unit); time and total bytes of the components;
#  2. the host's AWS client: two throwaway crates making one signed Secrets
#     Manager call, one with reqwest + aws-sigv4 (what the host uses), one
#     with aws-config + aws-sdk-secretsmanager, each built clean.
# Run with nothing else building; about 10 minutes on the 2-core VM.
# Usage: scripts/measure-build-choices.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

guests() {
    local label="$1" target="$work/guests-$1" start
    start=$(date +%s)
    cargo build -q --release --target wasm32-wasip2 --workspace --manifest-path "$work/plugins/Cargo.toml" \
        --target-dir "$target"
    echo "guests, $label profile: $(($(date +%s) - start)) s," \
        "$(cat "$target"/wasm32-wasip2/release/*.wasm | wc -c) bytes of components; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
cp -r "$repo/plugins" "$work/plugins"
ln -s "$repo/wit" "$work/wit"
rm -rf "$work/plugins/target"
guests current
python3 - "$work/plugins/Cargo.toml" <<'PY'
import re, sys
p = sys.argv[1]
t = open(p).read()
t = re.sub(r'(\[profile\.release\]\n)(?:#.*\n)*opt-level = "s"\nlto = false\ncodegen-units = 16',
           r'\1opt-level = 3\nlto = true\ncodegen-units = 1', t)
open(p, "w").write(t)
PY
guests former

crate() {
    local name="$1" deps="$2" main="$3"
    mkdir -p "$work/$name/src"
    printf '[package]\nname = "%s"\nversion = "0.1.0"\nedition = "2024"\n[dependencies]\n%s\n' "$name" "$deps" \
        >"$work/$name/Cargo.toml"
    printf '%s\n' "$main" >"$work/$name/src/main.rs"
    local start
    start=$(date +%s)
    (cd "$work/$name" && cargo build --target-dir "$work/target-$name" >"$work/$name.log" 2>&1)
    echo "$name: $(($(date +%s) - start)) s, $(grep -c Compiling "$work/$name.log") crates compiled; load $(cut -d' ' -f1-3 /proc/loadavg)"
}
crate sigv4 'aws-sigv4 = { version = "1.6", default-features = false, features = ["sign-http", "http1"] }
aws-credential-types = { version = "1.3", default-features = false }
reqwest = { version = "0.13", default-features = false, features = ["json", "rustls-no-provider", "http2"] }
rustls = { version = "0.23", default-features = false, features = ["ring", "std"] }
serde_json = "1"
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }' '
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
#[tokio::main]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let identity = aws_credential_types::Credentials::new("a", "b", None, None, "m").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder().identity(&identity).region("eu-west-1")
        .name("secretsmanager").time(std::time::SystemTime::now()).settings(SigningSettings::default()).build().unwrap().into();
    let body = serde_json::json!({"SecretId": "x"}).to_string();
    let url = "https://secretsmanager.eu-west-1.amazonaws.com/";
    let req = SignableRequest::new("POST", url, std::iter::empty(), SignableBody::Bytes(body.as_bytes())).unwrap();
    let (instructions, _) = sign(req, &params).unwrap().into_parts();
    let mut r = reqwest::Client::new().post(url).body(body);
    for h in instructions.into_parts().0 { r = r.header(h.name(), h.value()); }
    println!("{}", r.send().await.is_ok());
}'
crate sdk 'aws-config = { version = "1", features = ["behavior-version-latest"] }
aws-sdk-secretsmanager = "1"
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }' '
#[tokio::main]
async fn main() {
    let config = aws_config::load_from_env().await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let out = sm.get_secret_value().secret_id("x").version_stage("AWSCURRENT").send().await;
    println!("{}", out.is_ok());
}'
