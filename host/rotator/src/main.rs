//! The `rotator` command: parse flags, set up logging, hand over to the
//! library. Each subcommand lives in `commands.rs`, but for `plugin cache`
//! (`cache.rs`), `plugin new` (`scaffold.rs`) and `plugin build`
//! (`plugin_build.rs`).

mod cache;
mod commands;
mod generate;
mod logging;
mod plugin_build;
mod scaffold;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

/// mimalloc instead of glibc's allocator: a rotation allocates and frees
/// thousands of small strings, maps and buffers on several threads (JSON in
/// and out of Vault, HTTP, the plugin's store). With glibc's malloc that was
/// about a quarter of the daemon's CPU; mimalloc's per-thread free lists cut
/// it enough to raise rotations per second by about half
/// (docs/benchmarks.md, "Rotations per second").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Rotates secrets in Vault with sandboxed WebAssembly rotators.
#[derive(Parser)]
#[command(name = "rotator", version, about)]
struct Cli {
    /// Log format: human or json.
    #[arg(long, global = true, default_value = "human", value_parser = ["human", "json"])]
    log_format: String,
    /// Log filter (e.g. `info`, `rotator=debug`); `RUST_LOG` also works.
    /// Default `info`; `off` for `plugin test`, whose report is its output.
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start a Vault-compatible dev server and the daemon pointed at it.
    Dev(commands::DevArgs),
    /// Run the daemon against a real Vault (VAULT_ADDR / VAULT_TOKEN honoured).
    Run {
        /// Without it, the Flask rotation service's environment is the
        /// config (ROTATION_JOBS_JSON, ROTATION_CONFIG_PATH, VAULT_AUTH_METHOD, …);
        /// exit 2 if it has errors.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Check a config: parse it, load every plugin, validate every job's
    /// settings, and say where each value came from (the file, or the Flask
    /// service's environment filling what the file leaves out).
    Check {
        /// Without it, the environment alone is checked, as `run` would read it.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Rotate one job now.
    Rotate {
        /// The job id.
        job: String,
        #[arg(long, short)]
        config: PathBuf,
        /// Show what would happen without doing it.
        #[arg(long)]
        dry_run: bool,
    },
    /// Work with plugin components.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions { shell: clap_complete::Shell },
    /// Print the man page, or write one page per command into --dir.
    Man {
        /// Write rotator.1, rotator-run.1, … here instead of printing rotator.1.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Show a plugin's name, version, sha256, world and settings schema.
    Inspect {
        /// A component file, or the name of a built-in plugin.
        plugin: String,
    },
    /// Run a plugin against an in-process dev server and check it keeps the
    /// protocol's rules: exit 0 if it conforms, 1 on any violation, 2 if it
    /// could not be tested.
    Test(commands::PluginTestArgs),
    /// Write a new plugin project (Rust, Python or JavaScript) that builds
    /// on its own, outside this repository.
    New(scaffold::NewArgs),
    /// Build the plugin project in DIR (default `.`) into a component and
    /// print its path, size and sha256.
    Build(plugin_build::BuildArgs),
    /// List or prune the plugin compilation cache.
    #[command(subcommand)]
    Cache(cache::CacheCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Check an audit log's chain (keyed with the config's audit_key) and,
    /// with --config, compare it with the anchors in Vault: exit 0 if intact,
    /// 1 naming the first tampered record or each anchor the file
    /// contradicts (truncated, rewritten, replaced), 2 if the file, the
    /// config, the key or the anchors cannot be read.
    Verify {
        /// The audit log (JSON lines).
        file: PathBuf,
        /// The daemon's config: its [daemon] audit_key keys the check, and
        /// its Vault holds the anchors (VAULT_ADDR / VAULT_TOKEN honoured).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A plugin test's report, completions and man pages are the output.
    let quiet = matches!(
        cli.command,
        Command::Plugin(PluginCommand::Test(_)) | Command::Completions { .. } | Command::Man { .. }
    );
    let level = cli.log_level.clone().unwrap_or_else(|| if quiet { "off" } else { "info" }.into());
    logging::init(&cli.log_format, &level);
    let result = match cli.command {
        Command::Dev(args) => commands::dev(args),
        Command::Run { config } => commands::run(config.as_deref()),
        Command::Check { config } => commands::check(config.as_deref()),
        Command::Rotate { job, config, dry_run } => commands::rotate(&config, &job, dry_run),
        Command::Plugin(PluginCommand::Inspect { plugin }) => commands::inspect(&plugin),
        Command::Plugin(PluginCommand::Test(args)) => commands::plugin_test(args),
        Command::Plugin(PluginCommand::Cache(command)) => cache::run(command),
        Command::Plugin(PluginCommand::New(args)) => scaffold::run(args),
        Command::Plugin(PluginCommand::Build(args)) => plugin_build::run(args),
        Command::Audit(AuditCommand::Verify { file, config }) => commands::audit_verify(&file, config.as_deref()),
        Command::Completions { shell } => generate::completions(Cli::command(), shell),
        Command::Man { dir } => generate::man(Cli::command(), dir.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
