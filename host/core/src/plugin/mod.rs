//! The plugin runtime: one wasmtime [`Engine`], many plugins, a fresh store
//! per rotation run.
//!
//! Data flow: [`Runtime::load`] turns component bytes into a [`Plugin`]
//! (sha256 identity, world check, compiled once into an `InstancePre`, asked
//! to `describe` itself). [`Plugin::start`] makes a [`Run`]: a new `Store`
//! with its own memory cap, deadline, grants and WASI context that grants
//! nothing (no files, sockets, env or stdio). The run calls the protocol
//! steps; traps, deadlines and memory caps come back as typed [`StepError`]s
//! and the daemon carries on. Async callers (the rotation, the dry run, the
//! conformance harness) drive a run through a [`Session`], which hops each
//! step to the blocking pool and hands back its timing and host calls.

pub mod cache;
pub mod connections;
mod error;
mod files;
pub mod generate;
pub mod grants;
pub mod handles;
mod imports;
pub mod limits;
mod load;
mod run;
mod session;
mod wit;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use serde_json::Value;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

pub use error::{Failure, LoadError, StepError};
pub use files::{MAX_PLUGIN_BYTES, find_in_dirs};
pub use grants::{Capability, Grants, HttpGrant, Operation, SqlGrant, SqlOperation, VaultGrant};
pub use handles::SecretAccess;
pub use imports::http::HttpBridge;
/// The shared client plugin HTTP requests go through (benchmarks and tests
/// compare against it; its resolver refuses forbidden addresses).
pub use imports::http::{CONNECT_TIMEOUT, GuardedResolver, ResolveError, classify, client, screen};
pub(crate) use imports::sessions_of;
pub use imports::{CallOutcome, HostCall, SqlValue, SubstituteError, VaultBridge, substitute_parameters};
pub use limits::{OutputLimits, RunLimits};
pub use load::{read_builtin, read_file};
pub use run::{Run, RunConfig};
pub use session::{Lost, Session, StartError, StepOutcome};
pub use wit::EXPORT;
/// The newest `rotator:plugin` WIT version this host speaks.
pub use wit::VERSION as WIT_VERSION;
/// Every WIT version this host loads, newest first.
pub use wit::{VERSIONS as WIT_VERSIONS, Version as WitVersion};

use imports::HostState;
use limits::{EpochTicker, MemoryLimiter};

use crate::secret::SecretJson;

/// The largest memory cap a job may ask for; also the pool's slot size.
pub const MAX_MEMORY: usize = 1 << 30;

/// Bytes of each pooled linear memory kept resident between runs.
const KEEP_RESIDENT: usize = 2 << 20;

/// The steps of the protocol, plus `describe` and `plan`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Step {
    Describe,
    Plan,
    Create,
    Set,
    Test,
    Finish,
    Rollback,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Describe => "describe",
            Self::Plan => "plan",
            Self::Create => "create",
            Self::Set => "set",
            Self::Test => "test",
            Self::Finish => "finish",
            Self::Rollback => "rollback",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a plugin says about itself.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub version: String,
    pub description: String,
    pub settings_schema: Value,
    /// What the plugin asks to be granted.
    pub capabilities: Vec<Capability>,
    /// How the plugin wants to be shown secrets (its jobs' default).
    pub access: Access,
    /// In handle mode, the fields it needs in clear (its jobs' default).
    pub visible_fields: Vec<String>,
    /// Fields of its secrets that are identifiers, shown unredacted (its
    /// jobs' default; from the settings schema's `x-rotator-public-fields`).
    pub public_fields: crate::secret::PublicFields,
}

/// How a plugin wants to be shown secrets: the default of its jobs'
/// `secret_access`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    Values,
    Handles,
}

/// What `describe` returned, before the loader checks its sizes and
/// parses its schema.
#[derive(Debug, Clone)]
pub struct Description {
    pub name: String,
    pub version: String,
    pub description: String,
    /// JSON Schema text of the job's settings.
    pub settings_schema: String,
    pub capabilities: Vec<Capability>,
    pub access: Access,
    pub visible_fields: Vec<String>,
}

/// The current secret, as the host read it.
#[derive(Debug, Clone)]
pub struct CurrentSecret {
    pub data: SecretJson,
    pub version: Option<u64>,
}

/// What every step is told.
#[derive(Debug, Clone)]
pub struct StepContext {
    pub job_id: String,
    pub rotation_id: String,
    pub settings: Value,
    pub current: Option<CurrentSecret>,
    pub attempt: u32,
}

/// One action from `plan`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedAction {
    pub step: Step,
    pub summary: String,
}

/// How to size the runtime.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// How many plugin runs may be alive at once (pool slots).
    pub max_concurrent_runs: u32,
    /// Where compiled plugins are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self { max_concurrent_runs: 64, cache_dir: default_cache_dir() }
    }
}

/// `$ROTATOR_CACHE_DIR`, else `$XDG_CACHE_HOME/rotator`, else `~/.cache/rotator`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ROTATOR_CACHE_DIR") {
        return Some(PathBuf::from(dir));
    }
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("rotator"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache").join("rotator"))
}

/// Why the plugin runtime could not be built (a host problem, not a
/// plugin's).
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create wasm engine: {0}")]
    Engine(wasmtime::Error),
    #[error("linking WASI: {0}")]
    LinkWasi(wasmtime::Error),
    #[error("linking rotator imports: {0}")]
    LinkImports(wasmtime::Error),
}

/// The shared engine, linker and epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<RunState>,
    cache_dir: Option<PathBuf>,
    pooling: bool,
    /// Shared with every loaded plugin: a run keeps its plugin, so its step
    /// deadlines keep firing even if the runtime is dropped mid-step.
    ticker: Arc<EpochTicker>,
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime").field("pooling", &self.pooling).field("cache_dir", &self.cache_dir).finish()
    }
}

impl Runtime {
    /// Build the engine: the pooling allocator if the machine allows its
    /// address-space reservation, else on-demand allocation.
    pub fn new(options: RuntimeOptions) -> Result<Arc<Self>, RuntimeError> {
        let (engine, pooling) = match Engine::new(&engine_config(Some(options.max_concurrent_runs))) {
            Ok(e) => (e, true),
            Err(err) => {
                tracing::warn!(error = %err, "pooling allocator unavailable; using on-demand allocation");
                let e = Engine::new(&engine_config(None)).map_err(RuntimeError::Engine)?;
                (e, false)
            }
        };
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(RuntimeError::LinkWasi)?;
        // Every import goes through the per-step host-call budget.
        wit::add_to_linker(&mut linker).map_err(RuntimeError::LinkImports)?;
        let ticker = Arc::new(EpochTicker::start(&engine));
        Ok(Arc::new(Self { engine, linker, cache_dir: options.cache_dir, pooling, ticker }))
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether instances come from the pooling allocator.
    pub fn is_pooling(&self) -> bool {
        self.pooling
    }
}

fn engine_config(pool_slots: Option<u32>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    config.cranelift_opt_level(OptLevel::Speed);
    if let Some(n) = pool_slots {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(n)
            // A componentize-py component alone holds more than eight core
            // instances; the count costs no memory (slots are memories and
            // tables), so allow plenty per run.
            .total_core_instances(n * 32)
            .total_memories(n * 2)
            .total_tables(n * 4)
            .max_memory_size(MAX_MEMORY)
            // Reset a freed slot's dirty pages with memset instead of
            // madvise, so the next run does not page-fault them back in
            // (the scan needs Linux 6.7+; older kernels keep the low pages).
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(64 << 10)
            .pagemap_scan(wasmtime::Enabled::Auto);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

/// Everything one store holds: WASI (granting nothing), resource limits, a
/// bounded stderr buffer (read only to report a panic message), host state.
pub struct RunState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
    stderr: MemoryOutputPipe,
    host: HostState,
    /// When the current step (or instantiation) must stop.
    deadline: Instant,
}

/// How much of a plugin's stderr is kept to explain a trap.
const STDERR_CAPACITY: usize = 8 * 1024;

impl RunState {
    fn new(host: HostState, memory: usize) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        // Defaults deny files, env, args and network; stdout is discarded.
        let wasi = WasiCtx::builder().stderr(stderr.clone()).build();
        let limiter = MemoryLimiter { limit: memory, hit: false };
        Self { wasi, table: ResourceTable::new(), limiter, stderr, host, deadline: Instant::now() }
    }
}

impl WasiView for RunState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// A loaded plugin. Cheap to clone; shared by every job that uses it.
#[derive(Clone)]
pub struct Plugin(Arc<PluginInner>);

struct PluginInner {
    engine: Engine,
    /// Keeps the epoch advancing while any run of this plugin is alive.
    _ticker: Arc<EpochTicker>,
    pre: wit::Pre,
    info: PluginInfo,
    sha256: String,
    origin: String,
    schema: jsonschema::Validator,
    /// The component's import names (our interfaces and WASI).
    imports: Vec<String>,
}

impl fmt::Debug for Plugin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Plugin({} from {})", self.label(), self.0.origin)
    }
}

/// One problem with a job's settings, by JSON pointer into them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsProblem {
    /// e.g. `/length`; empty for the settings table itself.
    pub pointer: String,
    pub message: String,
}

impl Plugin {
    pub fn info(&self) -> &PluginInfo {
        &self.0.info
    }

    /// Hex sha256 of the component bytes: the plugin's identity.
    pub fn sha256(&self) -> &str {
        &self.0.sha256
    }

    /// `builtin:<name>` or the file it was loaded from.
    pub fn origin(&self) -> &str {
        &self.0.origin
    }

    /// What the component imports, by interface name.
    pub fn imports(&self) -> &[String] {
        &self.0.imports
    }

    /// The `rotator:plugin` WIT version the component targets.
    pub fn wit_version(&self) -> &'static str {
        self.0.pre.version()
    }

    /// `name@version`.
    pub fn label(&self) -> String {
        format!("{}@{}", self.0.info.name, self.0.info.version)
    }

    /// Check settings against the plugin's JSON Schema. Messages describe
    /// the schema rule, not the value, so they are safe to print.
    pub fn validate_settings(&self, settings: &Value) -> Vec<SettingsProblem> {
        self.0
            .schema
            .iter_errors(settings)
            .map(|e| SettingsProblem { pointer: e.instance_path().to_string(), message: describe_schema_error(&e) })
            .collect()
    }
}

fn describe_schema_error(e: &jsonschema::ValidationError<'_>) -> String {
    // jsonschema's Display quotes the offending value, which for a settings
    // table is fine (settings never hold secrets; secrets are references).
    e.to_string()
}
