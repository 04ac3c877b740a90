//! `--settings`: a job's settings from a file, inline JSON or inline TOML,
//! decided by one rule and never by trying each in turn, so an error can say
//! which form was read and where it went wrong:
//!
//! 1. a path that exists is a file (`.toml` is TOML, `.json` JSON, anything
//!    else JSON if it starts with `{`, else TOML), read with a size cap;
//! 2. otherwise text starting with `{` is inline JSON;
//! 3. otherwise text with a `=` is inline TOML;
//! 4. otherwise it is refused, naming the three forms.
//!
//! Settings are a JSON object (a TOML table); anything else is refused here,
//! before the plugin's schema sees it.

use std::io;
use std::path::Path;

use serde_json::Value;

/// The largest settings file read.
pub const MAX_SETTINGS_BYTES: u64 = 1 << 20;

/// How `--settings` was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Json,
    Toml,
}

impl Lang {
    fn name(self) -> &'static str {
        match self {
            Self::Json => "JSON",
            Self::Toml => "TOML",
        }
    }
}

/// Why `--settings` was refused. Settings are the user's own input and may
/// name secrets' paths but never hold values the harness would hide, so
/// messages quote positions, not contents.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("--settings: no file `{0}`, and not inline JSON ({{…}}) or TOML (key = value)")]
    Unrecognised(String),
    #[error("--settings: cannot read the file {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("--settings: the file {path} is larger than {MAX_SETTINGS_BYTES} bytes")]
    TooLarge { path: String },
    #[error("--settings: read {form} as {}: line {line}, column {column}: {message}", .lang.name())]
    Syntax { form: String, lang: Lang, line: usize, column: usize, message: String },
    #[error("--settings: {form} must hold a JSON object (TOML table) of settings, not {found}")]
    NotObject { form: String, found: &'static str },
}

/// The settings `arg` gives (see the module's rule), and how it was read.
pub fn read_settings(arg: &str) -> Result<Value, SettingsError> {
    let path = Path::new(arg);
    let (text, form, lang) = if !arg.is_empty() && path.exists() {
        let text = read_file(path)?;
        let lang = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Lang::Toml,
            Some("json") => Lang::Json,
            _ if text.trim_start().starts_with('{') => Lang::Json,
            _ => Lang::Toml,
        };
        (text, format!("the file {}", path.display()), lang)
    } else if arg.trim_start().starts_with('{') {
        (arg.to_owned(), "the inline text (it starts with `{`)".to_owned(), Lang::Json)
    } else if arg.contains('=') {
        (arg.to_owned(), "the inline text (it has `=` and names no file)".to_owned(), Lang::Toml)
    } else {
        return Err(SettingsError::Unrecognised(arg.to_owned()));
    };
    parse(&text, form, lang)
}

fn read_file(path: &Path) -> Result<String, SettingsError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let read = |source| SettingsError::Read { path: shown.clone(), source };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut text = String::new();
    file.take(MAX_SETTINGS_BYTES + 1).read_to_string(&mut text).map_err(read)?;
    if text.len() as u64 > MAX_SETTINGS_BYTES {
        return Err(SettingsError::TooLarge { path: shown });
    }
    Ok(text)
}

/// `text` as `lang`, which must be an object.
fn parse(text: &str, form: String, lang: Lang) -> Result<Value, SettingsError> {
    let value = match lang {
        Lang::Json => serde_json::from_str::<Value>(text).map_err(|e| {
            let at = format!(" at line {} column {}", e.line(), e.column());
            let message = e.to_string();
            let message = message.strip_suffix(&at).unwrap_or(&message).to_owned();
            SettingsError::Syntax { form: form.clone(), lang, line: e.line(), column: e.column(), message }
        })?,
        Lang::Toml => {
            let table = toml::from_str::<toml::Table>(text).map_err(|e| {
                let (line, column) = position(text, e.span().map_or(0, |s| s.start));
                SettingsError::Syntax { form: form.clone(), lang, line, column, message: e.message().trim().to_owned() }
            })?;
            serde_json::to_value(table).expect("a TOML table is a JSON object")
        }
    };
    let found = match &value {
        Value::Object(_) => return Ok(value),
        Value::Array(_) => "an array",
        Value::String(_) => "a string",
        Value::Number(_) => "a number",
        Value::Bool(_) => "a boolean",
        Value::Null => "null",
    };
    Err(SettingsError::NotObject { form, found })
}

/// The 1-based line and column (in characters) of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    use serde_json::json;

    #[test]
    fn each_form_is_read_by_its_rule_and_errors_say_which_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let (toml_file, json_file, bare) =
            (dir.path().join("s.toml"), dir.path().join("s.json"), dir.path().join("has=sign"));
        std::fs::write(&toml_file, "field = \"password\"\nlength = 16\n").unwrap();
        std::fs::write(&json_file, r#"{"field": "password"}"#).unwrap();
        // A file whose name has `=` is still a file: existence decides first.
        std::fs::write(&bare, "{\"length\": 3}").unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        assert_eq!(read_settings(&s(&toml_file)).unwrap(), json!({"field": "password", "length": 16}));
        assert_eq!(read_settings(&s(&json_file)).unwrap(), json!({"field": "password"}));
        assert_eq!(read_settings(&s(&bare)).unwrap(), json!({"length": 3}));
        assert_eq!(read_settings(r#" {"a": [1, 2]}"#).unwrap(), json!({"a": [1, 2]}));
        assert_eq!(read_settings("a = 1\nb = 'x'").unwrap(), json!({"a": 1, "b": "x"}));

        let err = |arg: &str| read_settings(arg).unwrap_err().to_string();
        assert_eq!(
            err("{\"field\": "),
            "--settings: read the inline text (it starts with `{`) as JSON: line 1, column 10: EOF while parsing a value"
        );
        assert_eq!(
            err("a = 1\nfield = "),
            "--settings: read the inline text (it has `=` and names no file) as TOML: line 2, column 9: string values must be quoted, expected literal string"
        );
        assert!(err("password").starts_with("--settings: no file `password`, and not inline JSON"));
        assert!(err("").starts_with("--settings: no file ``"));
        std::fs::write(&json_file, "[1]").unwrap();
        assert_eq!(
            err(&s(&json_file)),
            format!(
                "--settings: the file {} must hold a JSON object (TOML table) of settings, not an array",
                json_file.display()
            )
        );
        assert!(err(&s(dir.path())).contains("cannot read the file"), "a directory is not a settings file");
        std::fs::write(&toml_file, vec![b'#'; MAX_SETTINGS_BYTES as usize + 1]).unwrap();
        assert!(err(&s(&toml_file)).contains("is larger than 1048576 bytes"));
    }

    /// A settings object: strings, integers, booleans and nested tables
    /// (what both JSON and TOML can say).
    fn settings() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i32>().prop_map(Value::from),
            any::<bool>().prop_map(Value::from),
            "[ -~\\n\\t'\"\\\\é=]{0,12}".prop_map(Value::from),
        ];
        let value = leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map("[a-z_]{1,6}", inner, 0..4).prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        prop::collection::btree_map("[a-z_][a-z0-9_-]{0,8}", value, 0..6)
            .prop_map(|m| Value::Object(m.into_iter().collect()))
    }

    /// Inline JSON and TOML of any settings read back as those settings;
    /// any other text neither panics nor is taken for a form it is not.
    fn forms_round_trip(seed: [u8; 32], cases: u32) {
        let config = Config { cases, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let result = runner.run(&(settings(), "[^/]{0,40}"), |(value, noise)| {
            prop_assert_eq!(read_settings(&value.to_string()).unwrap(), value.clone());
            let table: toml::Table = serde_json::from_value(value.clone()).unwrap();
            let text = toml::to_string(&table).unwrap();
            if text.contains('=') {
                prop_assert_eq!(read_settings(&text).unwrap(), value);
            }
            match read_settings(&noise) {
                Ok(v) => prop_assert!(v.is_object()),
                Err(SettingsError::Unrecognised(_)) => {
                    let json_or_toml = noise.trim_start().starts_with('{') || noise.contains('=');
                    prop_assert!(!json_or_toml, "{noise:?} refused")
                }
                Err(SettingsError::Syntax { lang, .. }) => {
                    prop_assert_eq!(lang == Lang::Json, noise.trim_start().starts_with('{'))
                }
                Err(e) => {
                    prop_assert!(matches!(e, SettingsError::NotObject { .. } | SettingsError::Read { .. }), "{e}")
                }
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("seed {seed:?}: {e}");
        }
    }

    #[test]
    fn inline_forms_round_trip_and_other_text_is_refused_by_name_fixed_seed() {
        forms_round_trip(*b"rotator plugin test settings!!!!", 2_000);
    }

    #[test]
    fn inline_forms_round_trip_and_other_text_is_refused_by_name_random_seed() {
        forms_round_trip(rand::random(), 2_000);
    }
}
