//! The WIT contract, one adapter module per supported version.
//!
//! Each released version of `rotator:plugin` is a frozen folder under
//! `wit/` (`wit/rotator-plugin@<version>/`, never edited once released;
//! `wit/PENDING_CHANGES.md` collects what the next one changes). For each
//! version the host supports, one module here holds its `bindgen!`, its
//! names and every conversion between its generated types and the host's
//! domain types. Generated types never leave that module: the loader, the
//! run and the capability modules speak domain types only and name no
//! version, so the logic lives once, in the domain, whatever version a
//! plugin targets. This module names the newest adapter for the rest of the
//! host; a second version adds its adapter beside it and a dispatch here.

mod v0_1_0;

pub use self::v0_1_0::{Answer, EXPORT, IMPORTS, Instance, Pre, VERSION, add_to_linker};

#[cfg(test)]
mod frozen;
