//! Sample configs are kept under test: the shipped ones must pass `check`
//! (parse + plugin load + settings schema), and each invalid sample must
//! produce exactly the errors in its `.expected` file, all at once, each with
//! file, line and column: parse errors and schema errors in one report.

use std::path::{Path, PathBuf};

use rotator_core::config;
use rotator_core::plugin::{Runtime, RuntimeOptions};
use rotator_daemon::setup;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Parse and load like `rotator check` does; the errors as printed.
fn check(path: &Path) -> Result<usize, String> {
    let text = std::fs::read_to_string(path).unwrap();
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let parsed = config::parse_partial(&name, &text, path.parent().unwrap());
    let runtime = setup::runtime(&parsed.config).unwrap();
    setup::check(parsed, &runtime).map(|jobs| jobs.len()).map_err(|e| e.to_string())
}

#[test]
fn shipped_configs_pass_check() {
    for name in ["dev.toml", "example.toml"] {
        let jobs = check(&repo().join("config").join(name)).unwrap_or_else(|e| panic!("{name}:\n{e}"));
        assert!(jobs >= 1, "{name} has no jobs");
    }
}

#[test]
fn invalid_samples_report_exactly_the_expected_errors() {
    let dir = repo().join("tests/config/invalid");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let expected_path = path.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        let actual = match check(&path) {
            Ok(n) => panic!("{} passed with {n} jobs but should fail", path.display()),
            Err(e) => e,
        };
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&expected_path, format!("{actual}\n")).unwrap();
        } else {
            assert_eq!(actual.trim_end(), expected.trim_end(), "{}", path.display());
        }
        // `sql-credentials.toml` writes this password inline.
        assert!(!actual.contains("hunter22"), "{}: an error repeats a credential", path.display());
        for line in actual.lines() {
            let mut parts = line.splitn(4, ':');
            let (file, line_no, col) = (parts.next(), parts.next(), parts.next());
            assert!(file.is_some_and(|f| f.ends_with(".toml")), "{line}");
            assert!(line_no.and_then(|l| l.parse::<usize>().ok()).is_some(), "no line number: {line}");
            assert!(col.and_then(|c| c.parse::<usize>().ok()).is_some(), "no column: {line}");
        }
        seen += 1;
    }
    assert!(seen >= 3, "expected at least 3 invalid samples, found {seen}");
}

/// A job may pin a built-in plugin's sha256 as it pins a file's: a mismatch
/// is refused with the same error, naming job, plugin and both hashes. Not an
/// invalid sample: its expected text would hold kv-random's hash, which
/// changes with every build of the plugin.
#[test]
fn a_sha256_pin_holds_for_built_in_plugins_too() {
    let runtime = Runtime::new(RuntimeOptions { cache_dir: None, ..RuntimeOptions::default() }).unwrap();
    let actual = runtime.load_builtin("kv-random", None).unwrap().sha256().to_owned();
    let wrong = "0".repeat(64);
    let job = |pin: &str| {
        format!(
            "[[jobs]]\nid = \"pinned\"\nplugin = \"kv-random\"\nsha256 = \"{pin}\"\ninterval = \"1h\"\n\
             settings = {{ field = \"password\" }}\n"
        )
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pinned.toml");

    std::fs::write(&path, job(&wrong)).unwrap();
    let err = check(&path).unwrap_err();
    let expected = format!(
        "pinned.toml:3:10: error: job `pinned`: builtin:kv-random: sha256 is {actual}, but the job pins {wrong}"
    );
    assert_eq!(err.trim_end(), expected);

    std::fs::write(&path, job(&actual.to_uppercase())).unwrap();
    assert_eq!(check(&path), Ok(1), "the matching pin (in any case) is accepted");
}
