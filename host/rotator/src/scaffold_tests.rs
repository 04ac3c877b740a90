//! Unit tests of `plugin new`: the name check against any text (a fixed seed
//! and a random one), and what each language's project holds.

use std::path::Component;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};

use super::*;

/// The shape `check_name` promises, spelled out independently.
fn well_formed(name: &str) -> bool {
    let bytes = name.as_bytes();
    (1..=MAX_NAME).contains(&bytes.len())
        && bytes[0].is_ascii_lowercase()
        && !name.ends_with(['-', '_'])
        && bytes.iter().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-' || *b == b'_')
}

/// Whatever the text, an accepted name is well formed (so it is one plain
/// path component, never `..`, a separator or a dot file), and a
/// well-formed name is refused only for being reserved.
fn names_agree(seed: RngSeed) {
    let config = Config { cases: 4000, rng_seed: seed, ..Config::default() };
    let text = prop_oneof!["\\PC{0,80}", "[a-z][a-z0-9_-]{0,70}", "[a-z./\\\\-]{1,8}"];
    TestRunner::new(config)
        .run(&text, |name| {
            match check_name(&name) {
                Ok(()) => {
                    prop_assert!(well_formed(&name), "accepted {name:?}");
                    let mut parts = Path::new(&name).components();
                    prop_assert!(matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none());
                }
                Err(e) => prop_assert!(
                    !well_formed(&name) || RESERVED.contains(&name.replace('-', "_").as_str()),
                    "refused {name:?}: {e}"
                ),
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn names_are_held_to_their_shape_fixed_seed() {
    names_agree(RngSeed::Fixed(14));
}

#[test]
fn names_are_held_to_their_shape_random_seed() {
    names_agree(RngSeed::Random);
}

#[test]
fn hostile_names_say_why() {
    let why = |name: &str| check_name(name).unwrap_err().to_string();
    assert!(why("../x").contains("start with a lowercase letter"));
    assert!(why("a/b").contains("only lowercase letters"));
    assert!(why(&"a".repeat(MAX_NAME + 1)).contains("1 to 64 characters"));
    assert!(why("fn").contains("Rust keyword"));
    assert!(why("my-plugin-").contains("must not end"));
    check_name(&"a".repeat(MAX_NAME)).unwrap();
    // A huge name is cut short in the message.
    assert!(why(&"A".repeat(10_000)).len() < 200);
}

fn project(lang: Lang) -> Vec<(PathBuf, String)> {
    files("my-plugin", lang, Template::Kv).unwrap()
}

/// Every language has every template.
const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];
const TEMPLATES: [Template; 3] = [Template::Kv, Template::Sql, Template::Http];

#[test]
fn the_sql_template_declares_its_connection_and_says_how_to_test_it() {
    let rust = files("my-plugin", Lang::Rust, Template::Sql).unwrap();
    let text = |file: &str| &rust.iter().find(|(p, _)| p == Path::new(file)).unwrap().1;
    assert!(text("src/lib.rs").contains("Capability::Sql(\"*\".into())"));
    assert!(text("src/policy.rs").contains("pub fn random_value"));
    assert!(text("settings.toml").contains("connection = \"app\""));
    let readme = text("README.md");
    assert!(
        readme.contains("--sql app=postgres://") && readme.contains("--sql-admin-env PGUSER:PGPASSWORD"),
        "{readme}"
    );
    assert!(readme.contains("grants = [{ sql = \"app\" }]"), "{readme}");
}

#[test]
fn every_project_is_standalone() {
    for (lang, template) in LANGS.into_iter().flat_map(|l| TEMPLATES.map(|t| (l, t))) {
        let files = files("my-plugin", lang, template).unwrap();
        for (path, text) in &files {
            assert!(path.components().all(|c| matches!(c, Component::Normal(_))), "{}", path.display());
            for leak in ["../../", "workspace = true", "{{"] {
                assert!(!text.contains(leak), "{lang:?} {} contains {leak}", path.display());
            }
        }
        let names: Vec<String> = files.iter().map(|(p, _)| p.display().to_string()).collect();
        for expected in ["README.md", "settings.toml", ".gitignore", "wit/world.wit", "wit/rotator.wit"] {
            assert!(names.contains(&expected.to_owned()), "{lang:?} lacks {expected}: {names:?}");
        }
    }
}

#[test]
fn each_language_gets_its_sdk_entry_point_and_unit_test() {
    let has = |lang, file: &str| project(lang).iter().any(|(p, _)| p == Path::new(file));
    let rust = [
        "Cargo.toml",
        "Cargo.lock",
        "rust-toolchain.toml",
        "rustfmt.toml",
        "sdk/Cargo.toml",
        "sdk/src/lib.rs",
        "src/lib.rs",
    ];
    for file in rust {
        assert!(has(Lang::Rust, file), "{file}");
    }
    for file in ["pyproject.toml", "app.py", "rotator_plugin.py", "test_policy.py"] {
        assert!(has(Lang::Python, file), "{file}");
    }
    for file in ["package.json", "plugin.js", "rotator-plugin.js", "policy.test.js"] {
        assert!(has(Lang::Js, file), "{file}");
    }
    assert!(!has(Lang::Python, "sdk/src/lib.rs"));
    let rust = project(Lang::Rust);
    let text = |file: &str| &rust.iter().find(|(p, _)| p == Path::new(file)).unwrap().1;
    assert!(text("sdk/src/lib.rs").contains("path: \"../wit\""));
    assert!(text("Cargo.toml").contains("crate-type = [\"cdylib\"]"));
    assert!(text("rust-toolchain.toml").contains("wasm32-wasip2"));
    assert!(text("Cargo.lock").contains("name = \"my-plugin\""));
}

/// The scaffold's pins are the plugins workspace's: same wit-bindgen
/// requirement, and every locked crate at a version `plugins/Cargo.lock`
/// has, so a machine that built rotator's plugins builds a scaffold offline.
#[test]
fn the_rust_pins_match_the_plugins_workspace() {
    let workspace = include_str!("../../../plugins/Cargo.toml");
    let lock = include_str!("../../../plugins/Cargo.lock");
    let rust = project(Lang::Rust);
    let text = |file: &str| rust.iter().find(|(p, _)| p == Path::new(file)).unwrap().1.clone();
    let pin = workspace.lines().find(|l| l.starts_with("wit-bindgen =")).unwrap();
    assert!(text("sdk/Cargo.toml").contains(pin), "{pin}");
    let scaffold_lock = text("Cargo.lock");
    let entries = |lock: &str| -> Vec<String> {
        lock.split("[[package]]").skip(1).map(|p| p.lines().take(3).collect::<Vec<_>>().join("\n")).collect()
    };
    let known = entries(lock);
    for entry in entries(&scaffold_lock) {
        if entry.contains("my-plugin") || entry.contains("rotator-plugin-sdk") {
            continue;
        }
        assert!(known.contains(&entry), "{entry} is not in plugins/Cargo.lock");
    }
}

#[test]
fn write_refuses_a_folder_with_anything_in_it() {
    let tmp = tempfile::tempdir().unwrap();
    let files = project(Lang::Js);
    std::fs::write(tmp.path().join(".keep"), "").unwrap();
    assert!(matches!(write(tmp.path(), &files), Err(ScaffoldError::NotEmpty(_))));
    let fresh = tmp.path().join("a/b");
    write(&fresh, &files).unwrap();
    assert_eq!(
        std::fs::read_to_string(fresh.join("plugin.js")).unwrap(),
        files.iter().find(|(p, _)| p == Path::new("plugin.js")).unwrap().1
    );
    assert!(matches!(write(&fresh, &files), Err(ScaffoldError::NotEmpty(_))));
}
