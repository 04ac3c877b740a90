//! Builds the built-in plugins (and only those) from `../../plugins` to
//! `wasm32-wasip2` components and copies them into `OUT_DIR`, where
//! `src/builtin.rs` embeds them: `rotator` works alone after `cargo install`.
//! Test fixtures are built by `tests/artifacts`, never here.

use std::path::PathBuf;

/// Built-in plugins: (package, component file stem).
const BUILTINS: &[(&str, &str)] = &[
    ("kv-random", "kv_random"),
    ("database-root", "database_root"),
    ("postgres-password", "postgres_password"),
    ("rabbitmq-password", "rabbitmq_password"),
    ("aws-iam-access-key", "aws_iam_access_key"),
];

fn main() {
    let repo = rotator_guest_build::Repo::find();
    for (package, _) in BUILTINS {
        rotator_guest_build::watch(&repo.plugins.join(package));
    }
    rotator_guest_build::watch(&repo.plugins.join("sdk"));
    for file in ["Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", repo.plugins.join(file).display());
    }
    rotator_guest_build::watch(&repo.wit);

    let packages: Vec<&str> = BUILTINS.iter().map(|(p, _)| *p).collect();
    let built = repo.build(&packages);
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap());
    for (_, stem) in BUILTINS {
        let from = built.join(format!("{stem}.wasm"));
        std::fs::copy(&from, out.join(format!("{stem}.wasm")))
            .unwrap_or_else(|e| panic!("copying {}: {e}", from.display()));
    }
}
