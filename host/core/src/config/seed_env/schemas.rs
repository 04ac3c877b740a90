//! The built-in plugins' settings schemas, for checking the environment's
//! jobs before anything contacts Vault (the daemon checks them again when
//! it loads its jobs, but only after its Vault token check).
//!
//! A runtime of one run slot is built on first use, and each built-in is
//! loaded at most once (through the compilation cache the daemon uses).

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use super::JobProblem;
use crate::plugin::{Plugin, Runtime, RuntimeOptions};

/// Loads built-ins on demand and checks settings against their schemas.
#[derive(Default)]
pub(super) struct BuiltinSchemas {
    runtime: OnceCell<Result<Arc<Runtime>, String>>,
    loaded: RefCell<HashMap<String, Result<Plugin, String>>>,
}

impl BuiltinSchemas {
    /// The problems of `settings` for built-in `plugin`, each at the
    /// settings key it is under (the service's job key of the same name).
    pub(super) fn check(&self, plugin: &str, settings: &Value) -> Vec<JobProblem> {
        let runtime = self.runtime.get_or_init(|| {
            Runtime::new(RuntimeOptions { max_concurrent_runs: 1, ..RuntimeOptions::default() })
                .map_err(|e| e.to_string())
        });
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => return vec![(None, format!("the plugin runtime: {e}"))],
        };
        let mut loaded = self.loaded.borrow_mut();
        let loaded = loaded
            .entry(plugin.to_owned())
            .or_insert_with(|| runtime.load_builtin(plugin, None).map_err(|e| e.to_string()));
        match loaded {
            Ok(p) => p
                .validate_settings(settings)
                .into_iter()
                .map(|p| {
                    let key = p.pointer.trim_start_matches('/').split('/').next().unwrap_or_default();
                    ((!key.is_empty()).then(|| key.to_owned()), p.message)
                })
                .collect(),
            Err(e) => vec![(None, e.clone())],
        }
    }
}
