//! Typed plugin errors. Every error names the plugin; step errors also name
//! the job and the step, so an operator reading one line knows what failed.
//! Messages that came from a plugin are redacted and cut to the job's cap
//! before they get here; no variant holds a secret value.

use std::time::Duration;

use super::Step;

/// Loading a plugin failed. `origin` is the file path or `builtin:<name>`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{origin}: cannot read: {message}")]
    Read { origin: String, message: String },
    #[error("{origin}: not a WebAssembly file")]
    NotWasm { origin: String },
    #[error(
        "{origin}: a core WebAssembly module, not a component; build it for wasm32-wasip2 \
         (or wrap it with `wasm-tools component new`)"
    )]
    CoreModule { origin: String },
    #[error("{origin}: sha256 is {actual}, but the job pins {expected}")]
    Sha256Mismatch { origin: String, expected: String, actual: String },
    #[error("{origin}: not a rotator plugin: {detail}")]
    WrongWorld { origin: String, detail: String },
    #[error("{origin}: cannot compile: {message}")]
    Compile { origin: String, message: String },
    #[error("{origin}: describe() failed: {message}")]
    Describe { origin: String, message: String },
    #[error("{origin}: its settings schema is invalid: {message}")]
    Schema { origin: String, message: String },
    #[error("unknown built-in plugin `{name}` (built-ins: {known})")]
    UnknownBuiltin { name: String, known: String },
    /// Directories, devices, FIFOs and the like are refused before opening.
    #[error("{origin}: not a regular file")]
    NotAFile { origin: String },
    #[error("{origin}: larger than the {limit}-byte limit for plugin files")]
    TooLarge { origin: String, limit: u64 },
    /// One message whether the file is missing, outside every plugin
    /// directory, not a regular file or unreadable: the answer must not
    /// tell a caller which files exist.
    #[error(
        "plugin `{name}` is neither a built-in nor a readable file in the daemon's plugin directories \
         ([daemon] plugin_dirs)"
    )]
    NotInPluginDirs { name: String },
}

/// How a step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The plugin said the job's settings are wrong.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The plugin reported a temporary failure; worth a retry.
    #[error("transient failure: {0}")]
    Transient(String),
    /// The plugin reported a failure that a retry will not fix.
    #[error("permanent failure: {0}")]
    Permanent(String),
    /// The plugin trapped (a panic, an `unreachable`, a bad memory access).
    #[error("plugin trapped: {0}")]
    Trap(String),
    /// The step ran past its deadline and was stopped.
    #[error("step ran past its deadline of {} and was stopped", humantime::format_duration(*.0))]
    Deadline(Duration),
    /// The plugin tried to grow its memory past the job's cap.
    #[error("plugin hit its memory limit of {} MiB and was stopped", .0 >> 20)]
    MemoryLimit(usize),
    /// The plugin could not be instantiated.
    #[error("could not instantiate: {0}")]
    Instantiate(String),
    /// The plugin returned something the host cannot use.
    #[error("bad output: {0}")]
    BadOutput(String),
    /// `create` returned a secret larger than the job allows. The value was
    /// dropped unseen; only its size is reported.
    #[error("the new secret is {size} bytes, over the job's limit of {limit} bytes; refused")]
    SecretTooLarge { size: usize, limit: usize },
    /// The step made more host calls than the job allows; the calls over
    /// the cap were refused.
    #[error("plugin made more than {limit} host calls in one step; {refused} call(s) over the limit were refused")]
    HostCallLimit { limit: usize, refused: usize },
}

impl Failure {
    /// Worth retrying in a later attempt.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient(_) | Self::Instantiate(_))
    }

    /// Short machine name for metrics and audit records.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidConfig(_) => "invalid-config",
            Self::Transient(_) => "transient",
            Self::Permanent(_) => "permanent",
            Self::Trap(_) => "trap",
            Self::Deadline(_) => "deadline",
            Self::MemoryLimit(_) => "memory-limit",
            Self::Instantiate(_) => "instantiate",
            Self::BadOutput(_) => "bad-output",
            Self::SecretTooLarge { .. } => "secret-too-large",
            Self::HostCallLimit { .. } => "host-call-limit",
        }
    }
}

/// A step of a job's plugin failed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("job `{job}`: plugin {plugin}: {step}: {failure}")]
pub struct StepError {
    pub job: String,
    /// `name@version`.
    pub plugin: String,
    pub step: Step,
    pub failure: Failure,
}
