//! The WIT contract, one adapter module per supported version.
//!
//! Each released version of `rotator:plugin` is a frozen folder under
//! `wit/` (`wit/rotator-plugin@<version>/`, never edited once released;
//! `wit/PENDING_CHANGES.md` collects what the next one changes). For each
//! version the host supports, one module here holds its `bindgen!`, its
//! names and every conversion between its generated types and the host's
//! domain types ([`shared`] writes once what they do alike). Generated
//! types never leave those modules: the loader, the run and the capability
//! modules speak domain types only, so the logic lives once, in the domain,
//! whatever version a plugin targets.
//!
//! This module is the dispatch: one linker carries every version's imports
//! (their names differ by version, so they never clash), and a loaded
//! component is wrapped in the [`Pre`] of the version it exports.

mod shared;
mod v0_1_0;
mod v0_2_0;

use wasmtime::Store;
use wasmtime::component::{Component, InstancePre, Linker};

use super::generate::NewSecret;
use super::{Description, Failure, PlannedAction, RunState, Step, StepContext};
use crate::secret::SecretJson;

/// The newest version: what the SDK and the examples build against.
pub const VERSION: &str = v0_2_0::VERSION;

/// The newest version's export.
pub const EXPORT: &str = v0_2_0::EXPORT;

/// One supported version: its number, the interface its plugins export and
/// the host interfaces they may import.
pub struct Version {
    pub version: &'static str,
    pub export: &'static str,
    pub imports: &'static [&'static str],
}

/// Every version this host loads, newest first.
pub const VERSIONS: &[Version] = &[
    Version { version: v0_2_0::VERSION, export: v0_2_0::EXPORT, imports: v0_2_0::IMPORTS },
    Version { version: v0_1_0::VERSION, export: v0_1_0::EXPORT, imports: v0_1_0::IMPORTS },
];

/// What a call returns: a trap as the outer error, the plugin's own error
/// as a [`Failure`].
pub type Answer<R> = wasmtime::Result<Result<R, Failure>>;

/// Add every version's imports to the linker.
pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
    v0_1_0::add_to_linker(linker)?;
    v0_2_0::add_to_linker(linker)
}

/// A linked component of one version.
pub enum Pre {
    V0_1(v0_1_0::Pre),
    V0_2(v0_2_0::Pre),
}

/// A live instance of one version.
pub enum Instance {
    V0_1(v0_1_0::Instance),
    V0_2(v0_2_0::Instance),
}

impl Pre {
    /// Wrap a linked component in the adapter of `version` (one of
    /// [`VERSIONS`], as the loader found the component exports).
    pub fn new(version: &str, pre: InstancePre<RunState>) -> wasmtime::Result<Self> {
        match version {
            v0_1_0::VERSION => v0_1_0::Pre::new(pre).map(Self::V0_1),
            _ => v0_2_0::Pre::new(pre).map(Self::V0_2),
        }
    }

    /// The WIT version the component targets.
    pub fn version(&self) -> &'static str {
        match self {
            Self::V0_1(_) => v0_1_0::VERSION,
            Self::V0_2(_) => v0_2_0::VERSION,
        }
    }

    pub fn component(&self) -> &Component {
        match self {
            Self::V0_1(p) => p.component(),
            Self::V0_2(p) => p.component(),
        }
    }

    pub fn instantiate(&self, store: &mut Store<RunState>) -> wasmtime::Result<Instance> {
        Ok(match self {
            Self::V0_1(p) => Instance::V0_1(p.instantiate(store)?),
            Self::V0_2(p) => Instance::V0_2(p.instantiate(store)?),
        })
    }
}

impl Instance {
    pub fn describe(&self, store: &mut Store<RunState>) -> wasmtime::Result<Description> {
        match self {
            Self::V0_1(i) => i.describe(store),
            Self::V0_2(i) => i.describe(store),
        }
    }

    pub fn plan(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<Vec<PlannedAction>> {
        match self {
            Self::V0_1(i) => i.plan(store, ctx),
            Self::V0_2(i) => i.plan(store, ctx),
        }
    }

    pub fn create(&mut self, store: &mut Store<RunState>, ctx: &StepContext) -> Answer<NewSecret> {
        match self {
            Self::V0_1(i) => i.create(store, ctx),
            Self::V0_2(i) => i.create(store, ctx),
        }
    }

    pub fn pending_step(
        &mut self,
        store: &mut Store<RunState>,
        step: Step,
        ctx: &StepContext,
        pending: &SecretJson,
    ) -> Answer<()> {
        match self {
            Self::V0_1(i) => i.pending_step(store, step, ctx, pending),
            Self::V0_2(i) => i.pending_step(store, step, ctx, pending),
        }
    }
}

#[cfg(test)]
mod frozen;
