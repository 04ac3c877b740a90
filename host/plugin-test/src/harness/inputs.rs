//! What a plugin that reaches a real system needs from the harness, given on
//! the command line: a named SQL connection (`--sql NAME=URL`) whose admin
//! credentials come from two environment variables (`--sql-admin-env
//! USER_VAR:PASS_VAR`), the job's secret before the first rotation
//! (`--initial-secret`, inline JSON or a file), and other KV secrets the
//! plugin reads, such as an administrator's credential (`--seed-secret
//! MOUNT/PATH=JSON|FILE`).
//!
//! A password never goes on the command line: a URL holding a user or a
//! password is refused, as `[sql.connections.<name>]` in a config refuses
//! it, and the admin credentials are named by variable only. Neither the URL
//! nor the initial secret is quoted in an error (either may hold a password
//! by mistake, and the secret always does).

use std::io::Read as _;
use std::path::Path;

use rotator_core::plugin::connections::{SqlConnection, SqlCredentials};
use rotator_core::secret::SecretJson;

/// The largest `--initial-secret` file read.
pub const MAX_SECRET_BYTES: u64 = 64 * 1024;

/// Why a `--sql`, `--sql-admin-env`, `--initial-secret` or `--seed-secret`
/// was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InputError {
    #[error("--sql must be NAME=postgres://host:port/database")]
    NotNameUrl,
    #[error("--sql: the connection name must be 1-64 of a-z, 0-9, `-` and `_`, starting with a letter or digit")]
    BadName,
    #[error("--sql {name}: {why}")]
    BadUrl { name: String, why: &'static str },
    #[error("--sql-admin-env must be USER_VAR:PASS_VAR (the names of two environment variables)")]
    NotVarPair,
    #[error("--sql-admin-env: environment variable {0} is not set")]
    Unset(String),
    /// `flag` is `--initial-secret` or `--seed-secret`.
    #[error("{flag}: {why}")]
    Secret { flag: &'static str, why: String },
    #[error("--seed-secret must be MOUNT/PATH=JSON or MOUNT/PATH=FILE")]
    NotSeed,
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn valid_var(var: &str) -> bool {
    (1..=128).contains(&var.len())
        && !var.starts_with(|c: char| c.is_ascii_digit())
        && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The connection `spec` (`NAME=URL`) names, connecting with the admin
/// credentials in the variables `admin_env` (`USER_VAR:PASS_VAR`) names.
/// Both variables must be set now; their values are read again when the
/// host connects, as the daemon does.
pub fn parse_sql_connection(spec: &str, admin_env: &str) -> Result<SqlConnection, InputError> {
    let (name, url) = spec.split_once('=').ok_or(InputError::NotNameUrl)?;
    if !valid_name(name) {
        return Err(InputError::BadName);
    }
    let bad = |why| InputError::BadUrl { name: name.to_owned(), why };
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(bad("the URL must start with postgres:// or postgresql://"));
    }
    let (username, password) = admin_env.split_once(':').ok_or(InputError::NotVarPair)?;
    if !valid_var(username) || !valid_var(password) {
        return Err(InputError::NotVarPair);
    }
    let connection = SqlConnection {
        name: name.to_owned(),
        url: url.to_owned(),
        credentials: SqlCredentials::Env { username: username.to_owned(), password: password.to_owned() },
    };
    // The host parses the URL with tokio-postgres (an unparsable one
    // becomes the default config, which names no host).
    let config = connection.pg_config();
    if config.get_user().is_some() || config.get_password().is_some() {
        return Err(bad("the URL must not hold credentials; name them with --sql-admin-env USER_VAR:PASS_VAR"));
    }
    if config.get_hosts().is_empty() {
        return Err(bad("the URL cannot be parsed or names no host"));
    }
    for var in [username, password] {
        if std::env::var_os(var).is_none_or(|v| v.is_empty()) {
            return Err(InputError::Unset(var.to_owned()));
        }
    }
    Ok(connection)
}

/// The job's secret before the first rotation: inline JSON if `arg` starts
/// with `{`, else the JSON file it names (at most [`MAX_SECRET_BYTES`]). It
/// must be a JSON object.
pub fn read_initial_secret(arg: &str) -> Result<SecretJson, InputError> {
    read_secret(arg, "--initial-secret")
}

fn read_secret(arg: &str, flag: &'static str) -> Result<SecretJson, InputError> {
    let err = |why: String| InputError::Secret { flag, why };
    let text = if arg.trim_start().starts_with('{') {
        arg.to_owned()
    } else if !Path::new(arg).is_file() {
        // Not quoted: it may be a secret that lost its braces.
        return Err(err("names no file, and is not inline JSON (which starts with `{`)".into()));
    } else {
        let path = Path::new(arg);
        let file =
            std::fs::File::open(path).map_err(|e| err(format!("cannot read the file {}: {e}", path.display())))?;
        let mut text = String::new();
        file.take(MAX_SECRET_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(|e| err(format!("cannot read the file {}: {e}", path.display())))?;
        if text.len() as u64 > MAX_SECRET_BYTES {
            return Err(err(format!("the file {} is larger than {MAX_SECRET_BYTES} bytes", path.display())));
        }
        text
    };
    // The error names a position, never the content.
    SecretJson::parse(text).map_err(|e| err(e.to_string()))
}

/// A `--seed-secret MOUNT/PATH=JSON|FILE`: where to write which secret
/// (read as [`read_initial_secret`] reads its argument).
pub fn parse_seed(arg: &str) -> Result<(String, String, SecretJson), InputError> {
    let (at, data) = arg.split_once('=').ok_or(InputError::NotSeed)?;
    let (mount, path) = at.split_once('/').ok_or(InputError::NotSeed)?;
    if mount.is_empty() || path.is_empty() || at.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InputError::NotSeed);
    }
    Ok((mount.to_owned(), path.to_owned(), read_secret(data, "--seed-secret")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

    /// Two variables every test runner sets (only their names are used).
    fn vars() -> &'static str {
        "PATH:HOME"
    }

    #[test]
    fn a_connection_names_its_variables_and_never_credentials() {
        let c = parse_sql_connection("app=postgres://127.0.0.1:5432/postgres", vars()).unwrap();
        assert_eq!(c.name, "app");
        assert_eq!(c.credentials, SqlCredentials::Env { username: "PATH".into(), password: "HOME".into() });

        for (spec, says) in [
            ("app", "NAME=postgres"),
            ("App=postgres://h/db", "connection name"),
            ("app=mysql://h/db", "must start with postgres://"),
            ("app=postgres://u:hunter2@h/db", "must not hold credentials"),
            ("app=postgres://u@h/db", "must not hold credentials"),
            ("app=postgres:///db", "names no host"),
        ] {
            let e = parse_sql_connection(spec, vars()).unwrap_err().to_string();
            assert!(e.contains(says), "{spec}: {e}");
            assert!(!e.contains("hunter2"), "{e}");
        }
        for pair in ["PATH", "PATH:", ":HOME", "PA TH:HOME", "1A:HOME"] {
            assert_eq!(parse_sql_connection("app=postgres://h/db", pair).unwrap_err(), InputError::NotVarPair);
        }
        let unset = "ROTATOR_TEST_SURELY_UNSET_VARIABLE";
        let e = parse_sql_connection("app=postgres://h/db", &format!("PATH:{unset}")).unwrap_err();
        assert_eq!(e, InputError::Unset(unset.into()));
    }

    #[test]
    fn an_initial_secret_is_an_object_inline_or_in_a_bounded_file() {
        let s = read_initial_secret(r#"{"username": "app", "password": "hunter22"}"#).unwrap();
        assert_eq!(s.fields()["username"], "app");
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("secret.json");
        std::fs::write(&file, r#"{"password": "from-file"}"#).unwrap();
        assert_eq!(read_initial_secret(file.to_str().unwrap()).unwrap().fields()["password"], "from-file");
        std::fs::write(&file, " ".repeat(MAX_SECRET_BYTES as usize + 1)).unwrap();
        assert!(read_initial_secret(file.to_str().unwrap()).unwrap_err().to_string().contains("larger than"));
        let missing = tmp.path().join("missing.json");
        assert!(read_initial_secret(missing.to_str().unwrap()).unwrap_err().to_string().contains("names no file"));
        assert!(read_initial_secret("[1]").is_err());
        let (mount, path, data) = parse_seed(r#"secret/api/admin={"username": "admin"}"#).unwrap();
        assert_eq!(
            (mount.as_str(), path.as_str(), data.fields()["username"].as_str()),
            ("secret", "api/admin", Some("admin"))
        );
        let e = parse_seed("secret/api/admin=missing.json").unwrap_err().to_string();
        assert!(e.starts_with("--seed-secret: names no file"), "{e}");
        for bad in ["secret/api", "secret={}", "/p={}", "s p/x={}"] {
            assert_eq!(parse_seed(bad).unwrap_err(), InputError::NotSeed, "{bad}");
        }
    }

    /// Whatever is wrong with an inline secret or a URL holding a password,
    /// the error quotes neither.
    fn never_quoted(seed: [u8; 32], cases: u32) {
        let config = Config { cases, failure_persistence: None, ..Config::default() };
        let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed));
        let result = runner.run(&("[a-zA-Z0-9]{12,24}", 0..5usize, 1..65535u16), |(secret, shape, port)| {
            let text = match shape {
                0 => format!("{{\"password\": {secret}}}"),
                1 => format!("{{\"password\": \"{secret}\""),
                2 => format!("[\"{secret}\"]"),
                3 => format!("\"password\": \"{secret}\""),
                _ => format!("{{{secret}"),
            };
            let e = read_initial_secret(&text).unwrap_err().to_string();
            prop_assert!(!e.contains(&secret), "{}", e);
            let spec = format!("app=postgres://admin:{secret}@127.0.0.1:{port}/db");
            let e = parse_sql_connection(&spec, vars()).unwrap_err().to_string();
            prop_assert!(e.contains("must not hold credentials") && !e.contains(&secret), "{}", e);
            Ok(())
        });
        if let Err(e) = result {
            panic!("seed {seed:?}: {e}");
        }
    }

    #[test]
    fn secrets_are_never_quoted_fixed_seed() {
        never_quoted(*b"rotator plugin test sql secret!!", 1_000);
    }

    #[test]
    fn secrets_are_never_quoted_random_seed() {
        never_quoted(rand::random(), 1_000);
    }
}
