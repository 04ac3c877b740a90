//! `rotator plugin new`: writes a standalone plugin project (Rust, Python or
//! JavaScript) from the files `build.rs` embeds: the WIT this rotator speaks,
//! the language's SDK or helper module, a working rotator with a unit test, a
//! settings file for `plugin test`, a README and a `.gitignore`. Nothing
//! written points into this repository, so a project builds the same on a
//! machine that only has the `rotator` binary.
//!
//! The project's name ends up in Cargo.toml, package.json, pyproject.toml,
//! Rust and JavaScript string literals and the default folder name, so it is
//! held to a conservative shape ([`check_name`]) instead of being escaped for
//! each of them.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/embedded.rs"));
}
pub use embedded::COMPONENTIZE_PY;

/// The longest name accepted: enough for any real name, short enough for
/// every registry and file system the name lands in.
pub const MAX_NAME: usize = 64;

/// Names the Rust crate (the name with `-` as `_`) cannot take.
const RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
    "rotator_plugin_sdk",
    "rotator_plugin",
    "app",
    "policy",
    "wit_world",
];

/// The language a project is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// Rust with the vendored `rotator-plugin-sdk`, built by cargo.
    Rust,
    /// Python with `rotator_plugin.py`, built by componentize-py.
    Python,
    /// JavaScript with `rotator-plugin.js`, built by componentize-js.
    Js,
}

impl Lang {
    fn dir(self) -> &'static str {
        match self {
            Lang::Rust => "rust",
            Lang::Python => "python",
            Lang::Js => "js",
        }
    }
}

/// What the generated rotator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Template {
    /// Sets one field of a KV secret to a random value (no capability needed).
    Kv,
    /// Changes a PostgreSQL role's password through the host's `sql` import.
    Sql,
    /// Changes a user's password through an HTTP API (RabbitMQ's management
    /// API) with an idempotent `PUT`.
    Http,
}

impl Template {
    fn dir(self) -> &'static str {
        match self {
            Template::Kv => "kv",
            Template::Sql => "sql",
            Template::Http => "http",
        }
    }

    /// The README's `plugin test` command for a project called `name`.
    fn test_command(self, name: &str) -> String {
        let test = format!("rotator plugin test {name}.wasm --settings settings.toml");
        match self {
            Template::Kv => test,
            Template::Sql => format!(
                "# PGUSER and PGPASSWORD: an admin of the database; app_user: a role it may ALTER\n\
                 {test} \\\n  --sql app=postgres://127.0.0.1:5432/postgres --sql-admin-env PGUSER:PGPASSWORD \\\n  \
                 --initial-secret '{{\"username\": \"app_user\", \"password\": \"<its current password>\"}}'"
            ),
            Template::Http => format!(
                "# admin.json: the API administrator's {{\"username\": …, \"password\": …}}\n\
                 {test} \\\n  --seed-secret secret/api/admin=admin.json \\\n  \
                 --initial-secret '{{\"username\": \"app_user\", \"password\": \"<its current password>\"}}'"
            ),
        }
    }

    /// The README's job settings (and grants) in rotator's config.
    fn job_settings(self) -> &'static str {
        match self {
            Template::Kv => r#"settings = { field = "password", length = 24 }"#,
            Template::Sql => concat!(
                "settings = { connection = \"app\", username = \"app_user\" }\n",
                "grants = [{ sql = \"app\" }]\n",
                "# and the connection, with the admin's credentials by reference:\n",
                "# [sql.connections.app]\n",
                "# url = \"postgres://db.internal:5432/app\"\n",
                "# credentials = { env = { username = \"PGUSER\", password = \"PGPASSWORD\" } }",
            ),
            Template::Http => concat!(
                "settings = { url = \"http://rabbitmq.internal:15672\", username = \"app_user\", ",
                "admin = { mount = \"secret\", path = \"api/admin\" } }\n\n",
                "[[jobs.grants]]\n",
                "path = \"secret/data/api/admin\"\n",
                "operations = [\"read\"]\n\n",
                "[[jobs.grants]]\n",
                "http = \"http://rabbitmq.internal:15672\"\n",
                "paths = [\"/api/users/\", \"/api/whoami\"]\n",
                "methods = [\"GET\", \"PUT\"]",
            ),
        }
    }
}

/// `rotator plugin new`'s arguments.
#[derive(clap::Args)]
pub struct NewArgs {
    /// The plugin's name: lowercase letters, digits, `-` and `_`, starting
    /// with a letter, at most 64 characters.
    name: String,
    /// The language to write it in.
    #[arg(long, value_enum)]
    lang: Lang,
    /// What the generated rotator does.
    #[arg(long, value_enum, default_value = "kv")]
    template: Template,
    /// Where to write the project (default `./NAME`). Must not exist, or be empty.
    #[arg(long, value_name = "D")]
    dir: Option<PathBuf>,
}

/// Why no project was written. A name or folder that is refused leaves
/// nothing; a write that fails part way leaves the files written so far in
/// a folder that was empty before, so removing it loses nothing.
#[derive(Debug)]
pub enum ScaffoldError {
    /// The name does not have the shape [`check_name`] asks for.
    BadName { name: String, why: String },
    /// The target exists and is not an empty folder.
    NotEmpty(PathBuf),
    /// Writing failed.
    Io { path: PathBuf, source: std::io::Error },
    /// The template is not written in the language (yet).
    NoTemplate { lang: Lang, template: Template },
}

impl fmt::Display for ScaffoldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScaffoldError::BadName { name, why } => write!(f, "`{}` cannot name a plugin: {why}", name.escape_debug()),
            ScaffoldError::NotEmpty(dir) => {
                write!(
                    f,
                    "{} exists and is not an empty folder; nothing was written (pick another --dir)",
                    dir.display()
                )
            }
            ScaffoldError::Io { path, source } => write!(f, "cannot write {}: {source}", path.display()),
            ScaffoldError::NoTemplate { lang, template } => write!(
                f,
                "template {} is not written in {} yet; nothing was written (--lang rust has every template)",
                template.dir(),
                lang.dir()
            ),
        }
    }
}

impl std::error::Error for ScaffoldError {}

/// Accept `name` only if it is 1 to [`MAX_NAME`] characters of lowercase
/// ASCII letters, digits, `-` and `_`, starts with a letter, does not end
/// with `-` or `_`, and is not a Rust keyword or a module the project
/// already has. That shape is a valid Cargo, npm and Python package name
/// and a plain file name (no separators, no `..`, no dot files).
pub fn check_name(name: &str) -> Result<(), ScaffoldError> {
    let bad =
        |why: &str| Err(ScaffoldError::BadName { name: name.chars().take(MAX_NAME + 1).collect(), why: why.into() });
    if name.is_empty() || name.len() > MAX_NAME {
        return bad(&format!("it must be 1 to {MAX_NAME} characters long"));
    }
    if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        return bad("it must start with a lowercase letter");
    }
    if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_') {
        return bad("only lowercase letters, digits, `-` and `_` are allowed");
    }
    if name.ends_with(['-', '_']) {
        return bad("it must not end with `-` or `_`");
    }
    if RESERVED.contains(&name.replace('-', "_").as_str()) {
        return bad("it is a Rust keyword or a name the project already uses");
    }
    Ok(())
}

/// The files of a new project, relative to its folder, with their contents.
pub fn files(name: &str, lang: Lang, template: Template) -> Result<Vec<(PathBuf, String)>, ScaffoldError> {
    check_name(name)?;
    let render = |text: &str| {
        text.replace("{{name}}", name)
            .replace("{{crate}}", &name.replace('-', "_"))
            .replace("{{wit_version}}", embedded::WIT_VERSION)
            .replace("{{toolchain}}", embedded::TOOLCHAIN)
            .replace("{{componentize_py}}", embedded::COMPONENTIZE_PY)
            .replace("{{componentize_js}}", embedded::COMPONENTIZE_JS)
            .replace("{{jco}}", embedded::JCO)
            .replace("{{test_command}}", &template.test_command(name))
            .replace("{{job_settings}}", template.job_settings())
    };
    let own = format!("templates/{}-{}/", lang.dir(), template.dir());
    if !embedded::FILES.iter().any(|(path, _)| path.starts_with(&own)) {
        return Err(ScaffoldError::NoTemplate { lang, template });
    }
    let sources = [
        format!("templates/{}/", lang.dir()),
        format!("templates/{}-{}/", lang.dir(), template.dir()),
        format!("templates/{}/", template.dir()),
    ];
    let mut out = Vec::new();
    for (path, text) in embedded::FILES {
        if let Some(rest) = path.strip_prefix("wit/") {
            out.push((Path::new("wit").join(rest), (*text).to_owned()));
        } else if let Some(rest) = path.strip_prefix("sdk/src/") {
            if lang == Lang::Rust {
                out.push((Path::new("sdk/src").join(rest), vendored_sdk(rest, text)));
            }
        } else if let Some(rest) = sources.iter().find_map(|prefix| path.strip_prefix(prefix.as_str())) {
            // Dot files are stored without their dot, so they do not act
            // on this repository (a stored `.gitignore` would).
            let rest = if rest == "gitignore" { ".gitignore" } else { rest };
            out.push((PathBuf::from(rest), render(text)));
        }
    }
    Ok(out)
}

/// The SDK's `generate!` names the WIT folder of this checkout; a project
/// keeps it in `./wit`, beside `./sdk`.
fn vendored_sdk(file: &str, text: &str) -> String {
    if file == "lib.rs" {
        let from = format!("\"{}\"", embedded::SDK_WIT_PATH);
        assert!(text.contains(&from), "build.rs found the SDK's WIT path in lib.rs");
        text.replace(&from, "\"../wit\"")
    } else {
        text.to_owned()
    }
}

/// Write `files` into `dir`, which must be missing or an empty folder. Every
/// file is created new, so nothing that appeared meanwhile is overwritten.
pub fn write(dir: &Path, files: &[(PathBuf, String)]) -> Result<(), ScaffoldError> {
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| ScaffoldError::Io { path, source }
    };
    match fs::read_dir(dir).map(|mut entries| entries.next().is_none()) {
        Ok(true) => {}
        Ok(false) => return Err(ScaffoldError::NotEmpty(dir.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => fs::create_dir_all(dir).map_err(io(dir))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => return Err(ScaffoldError::NotEmpty(dir.to_owned())),
        Err(e) => return Err(io(dir)(e)),
    }
    for (rel, text) in files {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut file = fs::OpenOptions::new().write(true).create_new(true).open(&path).map_err(io(&path))?;
        file.write_all(text.as_bytes()).map_err(io(&path))?;
    }
    Ok(())
}

/// `rotator plugin new`: write the project and say what to run next.
pub fn run(args: NewArgs) -> anyhow::Result<ExitCode> {
    let files = files(&args.name, args.lang, args.template)?;
    let dir = args.dir.unwrap_or_else(|| PathBuf::from(&args.name));
    write(&dir, &files)?;
    let shown = dir.display();
    let (lang, template) = (args.lang.dir(), args.template.dir());
    println!(
        "wrote {} files for {} ({lang}, template {template}, rotator:plugin@{}) into {shown}",
        files.len(),
        args.name,
        embedded::WIT_VERSION
    );
    println!("next:");
    println!("  cd {shown}");
    println!("  rotator plugin build");
    for line in args.template.test_command(&args.name).lines() {
        println!("  {line}");
    }
    println!("the project's README.md says more");
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
#[path = "scaffold_tests.rs"]
mod tests;
