//! One function per subcommand. They turn library results into output and
//! exit codes; all logic lives in the library.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rotator_core::audit;
use rotator_core::config::{self, Config};
use rotator_core::plugin::{Access, Capability, Runtime, RuntimeOptions};
use rotator_daemon::api::{API_TOKEN_ENV, ApiToken};
use rotator_daemon::daemon::Daemon;
use rotator_daemon::setup::{self, VaultOverride};
use rotator_daemon::start::StartOptions;
use rotator_devserver::{DevServer, DevServerOptions, FaultRules};
use rotator_plugin_test::harness::{
    Harness, parse_grant, parse_plugin, parse_seed, parse_sql_connection, parse_step_timeout, read_initial_secret,
    read_settings,
};
use secrecy::{ExposeSecret, SecretString};

/// What a token in the dashboard link's fragment must escape: everything
/// but the characters URLs leave alone, so `&`, `#`, `+` and `%` survive.
const FRAGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The dev config, embedded so `rotator dev` works from any folder.
const DEV_CONFIG: &str = include_str!("../../../config/dev.toml");

#[derive(Args)]
pub struct DevArgs {
    /// Where the dev Vault server listens.
    #[arg(long, default_value = "127.0.0.1:8200")]
    vault_addr: SocketAddr,
    /// Where the daemon's API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    api_addr: SocketAddr,
    /// The dev server's root token.
    #[arg(long, default_value = "root")]
    root_token: String,
    /// Jobs to run; default `config/dev.toml` if present, else the built-in demo.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Run only the dev server, no daemon.
    #[arg(long)]
    server_only: bool,
    /// Fault injection: share (0 to 1) of requests the dev server disturbs.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Statuses a disturbed request is answered with (e.g. 500,503,429).
    #[arg(long, value_delimiter = ',', default_value = "500,503,429")]
    fault_statuses: Vec<u16>,
    /// Delay added before answering a disturbed request (e.g. 200ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    fault_delay: Option<std::time::Duration>,
    /// Only disturb paths starting with this (e.g. secret/).
    #[arg(long)]
    fault_path: Option<String>,
    /// The API's bearer token (at least 16 characters). Default: [daemon]
    /// api_token, else $ROTATOR_API_TOKEN, else a random one shown on the banner.
    #[arg(long)]
    api_token: Option<String>,
    /// Show secret values in API answers instead of "<redacted>".
    #[arg(long)]
    reveal_secrets: bool,
}

impl DevArgs {
    fn faults(&self) -> anyhow::Result<Option<FaultRules>> {
        if self.fault_rate <= 0.0 {
            return Ok(None);
        }
        if self.fault_rate > 1.0 {
            bail!("--fault-rate must be between 0 and 1");
        }
        Ok(Some(FaultRules {
            rate: self.fault_rate,
            statuses: self.fault_statuses.clone(),
            delay: self.fault_delay,
            path_prefix: self.fault_path.clone(),
            ..FaultRules::default()
        }))
    }
}

fn tokio() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn load_config(path: &Path) -> anyhow::Result<Config> {
    config::load(path).map_err(|e| anyhow!("{e}"))
}

/// Installs SIGINT and SIGTERM handlers at once (so a signal during
/// startup still means a clean stop) and resolves when either arrives.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).ok();
    let mut int = signal(SignalKind::interrupt()).ok();
    async move {
        tokio::select! {
            _ = recv(term.as_mut()) => {}
            _ = recv(int.as_mut()) => {}
        }
    }
}

/// The next signal on `s`; never, if its handler could not be installed.
async fn recv(s: Option<&mut tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

pub fn dev(args: DevArgs) -> anyhow::Result<ExitCode> {
    // The file, if there is one, is what SIGHUP and POST /reload read again.
    let file = match &args.config {
        Some(path) => Some(path.clone()),
        None => Some(PathBuf::from("config/dev.toml")).filter(|p| p.is_file()),
    };
    let config = match &file {
        Some(path) => load_config(path)?,
        None => config::parse("(built-in dev config)", DEV_CONFIG, Path::new(".")).map_err(|e| anyhow!("{e}"))?,
    };
    tokio()?.block_on(async move {
        let shutdown = shutdown_signal();
        let server = DevServer::start(DevServerOptions {
            addr: args.vault_addr,
            root_token: args.root_token.clone(),
            faults: args.faults()?,
        })
        .await
        .with_context(|| format!("starting the dev server on {}", args.vault_addr))?;
        println!("{}", server.banner());
        if args.server_only {
            shutdown.await;
            server.shutdown().await;
            return Ok(ExitCode::SUCCESS);
        }
        let over = VaultOverride { address: Some(server.url()), token: Some(SecretString::from(args.root_token)) };
        let (token, shown) = dev_api_token(&config, args.api_token)?;
        let reveal = args.reveal_secrets || config.daemon.reveal_secrets;
        let api_listener = tokio::net::TcpListener::bind(args.api_addr)
            .await
            .with_context(|| format!("binding the API to {}", args.api_addr))?;
        let options = StartOptions {
            vault: over,
            api_listener: Some(api_listener),
            api_token: Some(token),
            reveal_secrets: Some(reveal),
            config_path: file,
            ..StartOptions::default()
        };
        let daemon = Daemon::from_config(&config, options).await?;
        let api_addr = daemon.api_listener.local_addr()?;
        println!("rotator API:   http://{api_addr}/healthz");
        // Printed, never logged, as the dev root token is. The dashboard
        // link carries the token in its fragment, which the browser keeps
        // to itself: the page moves it to session storage.
        match shown {
            Some(token) => {
                println!("API token:     {}", token.expose_secret());
                println!("Use it:        export API_TOKEN={}", token.expose_secret());
                let fragment = percent_encoding::utf8_percent_encode(token.expose_secret(), FRAGMENT);
                println!("Dashboard:     http://{api_addr}/#token={fragment}");
            }
            None => {
                println!("API token:     from [daemon] api_token or ${API_TOKEN_ENV}");
                println!("Dashboard:     http://{api_addr}/");
            }
        }
        if reveal {
            println!("Secrets:       revealed in API answers");
        }
        println!("Jobs:          {}", daemon.jobs.iter().map(|j| j.config.id.as_str()).collect::<Vec<_>>().join(", "));
        // The first job's secret: what this config rotates, to watch its versions climb.
        if let Some(secret) = daemon.jobs.iter().find_map(|j| j.config.secret.as_ref().and_then(|s| s.kv())) {
            let (mount, path) = (secret.mount.trim_matches('/'), secret.path.trim_matches('/'));
            println!(
                "Watch a secret: curl -s -H 'X-Vault-Token: {}' {}/v1/{mount}/metadata/{path}",
                server.root_token(),
                server.url()
            );
        }
        daemon.run(shutdown).await?;
        server.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

/// The dev API's token: `--api-token`, else the configured one, else a
/// fresh random one. Returns the value to print when the user did not
/// configure it.
fn dev_api_token(config: &Config, flag: Option<String>) -> anyhow::Result<(ApiToken, Option<SecretString>)> {
    if let Some(value) = flag {
        let value = SecretString::from(value);
        return Ok((ApiToken::new(&value, "--api-token")?, Some(value)));
    }
    Ok(match ApiToken::from_config(config)? {
        Some(token) => (token, None),
        None => {
            let (token, value) = ApiToken::generate();
            (token, Some(value))
        }
    })
}

/// `rotator run`: the daemon on the config at `path` with the Flask
/// rotation service's environment filling what it leaves out, or on that
/// environment alone. Every problem of the file and of the environment
/// prints at once; exit 2 if the environment has any.
pub fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match path {
        Some(path) => {
            let parsed = config::load_partial(path);
            let merged = config::seed_env::with_file(parsed.config);
            match (parsed.problems.finish(), merged) {
                (Ok(()), Ok(merged)) => {
                    for line in &merged.overridden {
                        tracing::warn!("{line}");
                    }
                    merged.config
                }
                (Err(file), Ok(_)) => bail!("{file}"),
                (file, Err(env)) => {
                    if let Err(file) = file {
                        eprintln!("{file}");
                    }
                    eprintln!("{env}");
                    return Ok(ExitCode::from(2));
                }
            }
        }
        None => match config::seed_env::from_env(&std::env::current_dir()?) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("{e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    tokio()?.block_on(async move {
        let shutdown = shutdown_signal();
        // Never runs the API open, and never invents a token that would have
        // to be logged: without a configured token, this refuses to start.
        // Reloads read the file again; a config from the environment has none.
        let options = StartOptions { config_path: path.map(Path::to_path_buf), ..StartOptions::default() };
        let daemon = Daemon::from_config(&config, options).await?;
        match &daemon.vault {
            Some((vault, _)) => match vault.health().await {
                Ok(_) => tracing::info!(vault = vault.address(), "vault reachable"),
                Err(e) => tracing::warn!(error = %e, "vault health check failed; jobs will retry"),
            },
            None => tracing::info!(state = %daemon.state.describe(), "running without Vault"),
        }
        tracing::info!(api = %daemon.api_listener.local_addr()?, jobs = daemon.jobs.len(), "daemon started");
        daemon.run(shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// `rotator check`: the config at `path` (or none) with the environment
/// merged in as `run` would, every plugin loaded and every job's settings
/// checked; then where each value came from. Every problem of the file and
/// of the environment prints at once.
pub fn check(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    // Whatever parsed is checked against its plugins too, so one run
    // reports every problem in the file.
    let parsed = match path {
        Some(path) => config::load_partial(path),
        None => config::parse_partial("environment", "", &std::env::current_dir()?),
    };
    let name = parsed.config.source.name.clone();
    let (parsed, env) = match config::seed_env::with_file(parsed.config.clone()) {
        Ok(merged) => {
            let parsed = config::Parsed { config: merged.config, problems: parsed.problems };
            (parsed, Ok((merged.sources, merged.overridden)))
        }
        Err(e) => (parsed, Err(e)),
    };
    let runtime = setup::runtime(&parsed.config)?;
    match (setup::check(parsed, &runtime), env) {
        (Ok(jobs), Ok((sources, overridden))) => {
            println!("{name}: OK, {} job(s)", jobs.len());
            for j in &jobs {
                println!("  {} → {} (sha256 {})", j.config.id, j.plugin.label(), &j.plugin.sha256()[..16]);
            }
            println!("sources:");
            let width = sources.iter().map(|s| s.what.chars().count()).max().unwrap_or(0);
            for s in &sources {
                println!("  {:<width$}  {}", s.what, s.from);
            }
            if !overridden.is_empty() {
                println!("overridden:");
                overridden.iter().for_each(|line| println!("  {line}"));
            }
            Ok(ExitCode::SUCCESS)
        }
        (file, env) => {
            if let Err(e) = file {
                eprintln!("{e}");
            }
            if let Err(e) = env {
                eprintln!("{e}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn rotate(path: &Path, job_id: &str, dry_run: bool) -> anyhow::Result<ExitCode> {
    let config = load_config(path)?;
    let Some(job_config) = config.job(job_id) else {
        let ids: Vec<&str> = config.jobs.iter().map(|j| j.id.as_str()).collect();
        bail!("no job `{job_id}` in {} (jobs: {})", path.display(), ids.join(", "));
    };
    let single = Config { jobs: vec![job_config.clone()], ..config.clone() };
    tokio()?.block_on(async move {
        let vault = setup::vault_client(&single, VaultOverride::default())?;
        let runtime = setup::runtime(&single)?;
        let job = setup::load_jobs(&single, &runtime)?.remove(0);
        let store = setup::state_store(&single, vault.as_ref())?;
        if dry_run {
            let plan = job.plan(&store).await?;
            println!("job {} (plugin {}), dry run: nothing will change", plan.job, plan.plugin);
            if let Some(r) = &plan.resumes {
                println!("unfinished: {r}");
            }
            println!("plugin plan:");
            for a in &plan.plugin_actions {
                println!("  {:<8} {}", a.step.as_str(), a.summary);
            }
            println!("host steps:");
            for h in &plan.host_actions {
                println!("  {h}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        let report = job.rotate(&store, "cli").await?;
        if let Some(stage) = report.resumed_from {
            println!("resumed an unfinished rotation (it had completed `{}`)", stage.as_str());
        }
        let versions = match (report.previous_version, report.new_version) {
            (Some(a), Some(b)) => format!("version {a} → {b}"),
            (None, Some(b)) => format!("version {b} (new secret)"),
            _ => "no KV secret".into(),
        };
        println!("rotated {} with {}: {versions} (rotation {})", report.job, report.plugin, report.rotation_id);
        for s in &report.steps {
            println!("  {:<8} {:>8.3} ms", s.step.as_str(), s.duration.as_secs_f64() * 1e3);
        }
        Ok(ExitCode::SUCCESS)
    })
}

pub fn inspect(what: &str) -> anyhow::Result<ExitCode> {
    let runtime = Runtime::new(RuntimeOptions::default()).map_err(|e| anyhow!(e))?;
    let path = PathBuf::from(what);
    let plugin = if path.exists() { runtime.load_file(&path, None)? } else { runtime.load_builtin(what, None)? };
    let info = plugin.info();
    println!("name:         {}", info.name);
    println!("version:      {}", info.version);
    println!("description:  {}", info.description);
    println!("origin:       {}", plugin.origin());
    println!("sha256:       {}", plugin.sha256());
    // Both read from the component's own type, not from the WIT we expect.
    for (i, (name, functions)) in plugin.exports().iter().enumerate() {
        let label = if i == 0 { "exports:" } else { "" };
        if functions.is_empty() {
            println!("{label:<14}{name}");
        } else {
            println!("{label:<14}{name} ({})", functions.join(", "));
        }
    }
    println!("imports:      {}", plugin.imports().join(", "));
    if info.capabilities.is_empty() {
        println!("capabilities: none");
    } else {
        println!("capabilities:");
        for c in &info.capabilities {
            match c {
                Capability::Vault(g) => {
                    let ops: Vec<&str> = g.operations.iter().map(|o| o.as_str()).collect();
                    println!("  vault {} [{}]", g.path, ops.join(", "));
                }
                Capability::Sql(connection) => println!("  sql {connection}"),
                Capability::Http(g) => {
                    let any = |l: &[String]| if l.is_empty() { "any".to_owned() } else { l.join(", ") };
                    println!("  http {} paths [{}] methods [{}]", g.origin, any(&g.paths), any(&g.methods));
                }
            }
        }
    }
    match info.access {
        Access::Values => println!("secrets:      values"),
        Access::Handles => println!("secrets:      handles (reads in clear: {})", info.visible_fields.join(", ")),
    }
    // The fields its log lines and errors show unredacted (identifiers).
    match info.public_fields.names() {
        [] => println!("public:       none (every field redacted in its output)"),
        names => println!("public:       {}", names.join(", ")),
    }
    println!("wit:          rotator:plugin@{}", plugin.wit_version());
    println!("settings schema:\n{}", serde_json::to_string_pretty(&info.settings_schema)?);
    Ok(ExitCode::SUCCESS)
}

#[derive(Args)]
pub struct PluginTestArgs {
    /// A component file, or the name of a built-in plugin.
    plugin: String,
    /// The job's settings: a .json or .toml file, or inline JSON
    /// (`'{"field": "password"}'`) or TOML (`'field = "password"'`);
    /// default `{}`.
    #[arg(long, value_name = "FILE|JSON|TOML")]
    settings: Option<String>,
    /// Grant PATH:OPS, e.g. `secret/data/app/*:read,write`; repeatable.
    /// Default: exactly the capabilities the plugin declares.
    #[arg(long = "grant", value_name = "PATH:OPS")]
    grants: Vec<String>,
    /// A PostgreSQL the dev server's database engine manages (mount
    /// `database/`, connection and role `harness`). Vault takes over the
    /// user's password: use a throwaway user.
    #[arg(long, env = "ROTATOR_TEST_POSTGRES_URL", hide_env_values = true)]
    postgres_url: Option<String>,
    /// The job's secret as MOUNT/PATH on the dev server.
    #[arg(long, default_value = "secret/harness/app")]
    secret: String,
    /// The job's secret before the first rotation: inline JSON
    /// (`'{"username": "app", "password": "…"}'`) or a JSON file.
    #[arg(long, value_name = "FILE|JSON")]
    initial_secret: Option<String>,
    /// Another KV secret to write before the checks, one the plugin reads
    /// (an administrator's credential): `MOUNT/PATH=JSON` or
    /// `MOUNT/PATH=FILE`; repeatable.
    #[arg(long = "seed-secret", value_name = "MOUNT/PATH=JSON|FILE")]
    seed_secrets: Vec<String>,
    /// An SQL connection for the host's `sql` import, with no credentials
    /// in the URL: `NAME=postgres://host:port/db`. Needs --sql-admin-env.
    #[arg(long, value_name = "NAME=URL", requires = "sql_admin_env")]
    sql: Option<String>,
    /// The environment variables holding --sql's admin user and password
    /// (e.g. `PGUSER:PGPASSWORD`); a password never goes on the command line.
    #[arg(long, value_name = "USER_VAR:PASS_VAR", requires = "sql")]
    sql_admin_env: Option<String>,
    /// Each step's deadline (100ms to 10m, as a job's `limits.step_timeout`;
    /// default 10s). A short one makes a plugin that runs away fail fast.
    #[arg(long, value_name = "D", value_parser = parse_step_timeout)]
    step_timeout: Option<std::time::Duration>,
    /// Print the report as JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Exit 0 if the plugin conforms, 1 on any violation, 2 if it could not be
/// tested (bad arguments, unloadable plugin, settings against its schema).
pub fn plugin_test(args: PluginTestArgs) -> anyhow::Result<ExitCode> {
    let report = match run_harness(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot test {}: {e:#}", args.plugin);
            return Ok(ExitCode::from(2));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(if report.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn run_harness(args: &PluginTestArgs) -> anyhow::Result<rotator_plugin_test::harness::Report> {
    let settings = match &args.settings {
        Some(arg) => read_settings(arg)?,
        None => serde_json::json!({}),
    };
    let grants: Vec<_> =
        args.grants.iter().map(|g| parse_grant(g).map_err(|e| anyhow!("--grant: {e}"))).collect::<Result<_, _>>()?;
    let grants = if grants.is_empty() { None } else { Some(grants) };
    let (mount, path) = args.secret.split_once('/').ok_or_else(|| anyhow!("--secret must be MOUNT/PATH"))?;
    let mut harness = Harness::new(parse_plugin(&args.plugin), settings, grants).secret(mount, path).progress(true);
    if let Some(url) = &args.postgres_url {
        harness = harness.postgres_url(SecretString::from(url.clone()));
    }
    if let Some(arg) = &args.initial_secret {
        harness = harness.initial_secret(read_initial_secret(arg)?);
    }
    for arg in &args.seed_secrets {
        let (mount, path, data) = parse_seed(arg)?;
        harness = harness.seed_secret(mount, path, data);
    }
    if let (Some(spec), Some(admin_env)) = (&args.sql, &args.sql_admin_env) {
        harness = harness.sql_connection(parse_sql_connection(spec, admin_env)?);
    }
    if let Some(step_timeout) = args.step_timeout {
        harness = harness.limits(rotator_core::plugin::RunLimits { step_timeout, ..Default::default() });
    }
    Ok(tokio()?.block_on(harness.run())?)
}

/// `rotator audit verify FILE [--config F]`: exit 0 if the chain is intact
/// (and agrees with every anchor), 1 if tampered, 2 if something needed
/// cannot be read. The anchors are read before the file (see
/// `audit::read_anchors`).
pub fn audit_verify(path: &Path, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cannot = |e: &dyn std::fmt::Display| -> anyhow::Result<ExitCode> {
        eprintln!("error: {e}");
        Ok(ExitCode::from(2))
    };
    let (key, anchors) = match config.map(audit_context).transpose() {
        Ok(Some((key, anchors))) => (key, Some(anchors)),
        Ok(None) => (None, None),
        Err(e) => return cannot(&format_args!("{e:#}")),
    };
    let keyed = key.is_some();
    let checked = audit::verify_anchored(path, key, anchors.as_ref().unwrap_or(&audit::Anchors::default()));
    let audit::Anchored { summary, problems } = match checked {
        Ok(a) => a,
        Err(audit::VerifyError::Tampered(t)) => {
            println!("tampered: {t}");
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return cannot(&e),
    };
    for p in &problems {
        println!("{p}");
    }
    if !problems.is_empty() {
        println!(
            "tampered: the chain of {} records is intact, but {} anchor(s) in Vault disagree with the file",
            summary.records,
            problems.len()
        );
        return Ok(ExitCode::FAILURE);
    }
    println!("ok: {} records, chain intact", summary.records);
    if keyed {
        println!("chain: keyed (HMAC-SHA256 with [daemon] audit_key)");
    } else {
        println!("chain: unkeyed (sha256): anyone who can write the file could have rebuilt it");
    }
    if let Some(seq) = summary.last_seq {
        println!("last: seq {seq}, {} {}", if keyed { "mac" } else { "sha256" }, summary.last_hash);
    }
    match &anchors {
        None => println!("anchors: not checked (no --config): records cut off the end go unnoticed"),
        Some(a) => {
            let newest = match a.newest() {
                Some(n) => {
                    let after = summary.last_seq.unwrap_or(0).saturating_sub(n.anchor.seq);
                    format!(
                        "; the newest names seq {} (job {}), {after} record(s) after it not anchored yet",
                        n.anchor.seq, n.job
                    )
                }
                None => String::new(),
            };
            let listed = if a.listed { "" } else { " (the state prefix cannot be listed: only the config's jobs)" };
            println!("anchors: {} job(s) in the state records agree{newest}{listed}", a.anchors.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The key and the anchors the config at `path` gives access to.
fn audit_context(path: &Path) -> anyhow::Result<(Option<audit::AuditKey>, audit::Anchors)> {
    let config = load_config(path)?;
    let key = audit::AuditKey::from_config(&config)?;
    let jobs: Vec<String> = config.jobs.iter().map(|j| j.id.clone()).collect();
    let anchors = tokio()?.block_on(async {
        let vault = setup::vault_client(&config, VaultOverride::default())?;
        if let Some(vault) = &vault {
            // Logs in if the config names an auth method; checks the token otherwise.
            setup::identity(&config, vault).await?;
        }
        let store = setup::state_store(&config, vault.as_ref())?;
        audit::read_anchors(&store, &jobs).await.context("reading the audit anchors")
    })?;
    Ok((key, anchors))
}
