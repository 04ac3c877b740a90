//! Loading: bytes → checked, compiled, described [`Plugin`].
//!
//! Order matters for the error a user sees: first "is this wasm at all", then
//! "is it a component", then the sha256 pin, then "is it our world" (checked
//! on the component's type, before linking, so the message can name exactly
//! which export is missing or which import we do not provide), then compile
//! (through the on-disk cache) and `describe`.
//!
//! Files are read through [`super::files`], which caps their size.

use std::borrow::Cow;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

use super::cache;
use super::files::MAX_PLUGIN_BYTES;
use super::wit::{self, VERSIONS};
use super::{Grants, LoadError, Plugin, PluginInfo, PluginInner, RunConfig, Runtime, Step};
use crate::builtin;

const WASM_MAGIC: &[u8] = b"\0asm";
/// The most fields a plugin may ask to read in clear in handle mode.
const MAX_VISIBLE_FIELDS: usize = 32;
/// Version field of a core module (a component has layer 1 here).
const CORE_VERSION: &[u8] = &[1, 0, 0, 0];

impl Runtime {
    /// Load a built-in plugin by name, optionally refusing it unless its
    /// sha256 matches `pin` (a job can pin a built-in as it pins a file, so
    /// an upgraded binary cannot change the job's plugin unnoticed).
    pub fn load_builtin(self: &Arc<Self>, name: &str, pin: Option<&str>) -> Result<Plugin, LoadError> {
        let (origin, wasm) = read_builtin(name)?;
        self.load(&origin, &wasm, pin)
    }

    /// Load a plugin from a file, optionally refusing it unless its sha256
    /// matches `pin`.
    pub fn load_file(self: &Arc<Self>, path: &Path, pin: Option<&str>) -> Result<Plugin, LoadError> {
        let (origin, bytes) = read_file(path)?;
        self.load(&origin, &bytes, pin)
    }

    /// Load a plugin from bytes; `origin` names it in errors.
    pub fn load(self: &Arc<Self>, origin: &str, bytes: &[u8], pin: Option<&str>) -> Result<Plugin, LoadError> {
        let origin = origin.to_owned();
        if !bytes.starts_with(WASM_MAGIC) || bytes.len() < 8 {
            return Err(LoadError::NotWasm { origin });
        }
        if &bytes[4..8] == CORE_VERSION {
            return Err(LoadError::CoreModule { origin });
        }
        let sha256 = hex::encode(Sha256::digest(bytes));
        if let Some(expected) = pin
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(LoadError::Sha256Mismatch { origin, expected: expected.to_owned(), actual: sha256 });
        }
        let component =
            self.compile(&sha256, bytes).map_err(|message| LoadError::Compile { origin: origin.clone(), message })?;
        let version = check_world(&self.engine, &component)
            .map_err(|detail| LoadError::WrongWorld { origin: origin.clone(), detail })?;
        let instance_pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::WrongWorld { origin: origin.clone(), detail: format!("{e:#}") })?;
        let pre = wit::Pre::new(version, instance_pre)
            .map_err(|e| LoadError::WrongWorld { origin: origin.clone(), detail: format!("{e:#}") })?;

        let imports = component.component_type().imports(&self.engine).map(|(n, _)| n.to_owned()).collect();
        let info = describe(&self.engine, &pre, &origin)?;
        let schema = jsonschema::validator_for(&info.settings_schema)
            .map_err(|e| LoadError::Schema { origin: origin.clone(), message: e.to_string() })?;
        Ok(Plugin(Arc::new(PluginInner {
            engine: self.engine.clone(),
            _ticker: self.ticker.clone(),
            pre,
            info,
            sha256,
            origin,
            schema,
            imports,
        })))
    }

    /// Compile through the on-disk cache, keyed by the component's sha256
    /// and the engine's compatibility hash (wasmtime version and settings).
    fn compile(&self, sha256: &str, bytes: &[u8]) -> Result<Component, String> {
        let Some(path) = self.cache_path(sha256) else {
            return Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"));
        };
        // A symlink is never followed: the compiled code would come from
        // outside the cache directory. Writing the entry replaces it.
        if cache::usable(&path) {
            // SAFETY: the file was written by `Component::serialize` of an
            // engine with the same compatibility hash, into a cache directory
            // that only this user writes (created 0700 below).
            match unsafe { Component::deserialize_file(&self.engine, &path) } {
                Ok(c) => {
                    cache::mark_used(&path);
                    return Ok(c);
                }
                Err(e) => {
                    tracing::debug!(path = %path.display(), error = %e, "discarding unusable cache entry");
                    let _ = std::fs::remove_file(&path);
                }
            }
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| format!("{e:#}"))?;
        if let Err(e) = store_cache(&path, &component) {
            tracing::debug!(path = %path.display(), error = %e, "could not write compilation cache");
            return Ok(component);
        }
        cache::enforce_bound(&path);
        Ok(component)
    }

    /// Whether a load of `bytes` would find them compiled in the cache
    /// (so a caller can say "compiling…" only when it will).
    pub fn is_compiled(&self, bytes: &[u8]) -> bool {
        self.cache_path(&hex::encode(Sha256::digest(bytes))).is_some_and(|p| cache::usable(&p))
    }

    /// The compilation cache's directory, if caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    fn cache_path(&self, sha256: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        let mut h = DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut h);
        Some(dir.join(format!("{sha256}-{:016x}.cwasm", h.finish())))
    }
}

/// A built-in plugin's bytes, with the origin errors call it by
/// (`builtin:<name>`). [`Runtime::load`] of them is `load_builtin`.
pub fn read_builtin(name: &str) -> Result<(String, Cow<'static, [u8]>), LoadError> {
    let b = builtin::find(name).ok_or_else(|| LoadError::UnknownBuiltin {
        name: name.to_owned(),
        known: builtin::BUILTINS.iter().map(|b| b.name).collect::<Vec<_>>().join(", "),
    })?;
    Ok((format!("builtin:{name}"), Cow::Borrowed(b.wasm)))
}

/// A plugin file's bytes (read with the size cap), with the origin errors
/// call it by. [`Runtime::load`] of them is `load_file`.
pub fn read_file(path: &Path) -> Result<(String, Cow<'static, [u8]>), LoadError> {
    let origin = path.display().to_string();
    let bytes = super::files::read_capped(path, MAX_PLUGIN_BYTES, &origin)?;
    Ok((origin, Cow::Owned(bytes)))
}

fn store_cache(path: &Path, component: &Component) -> std::io::Result<()> {
    let dir = path.parent().expect("cache files live in a directory");
    create_private_dir(dir)?;
    let bytes = component.serialize().map_err(std::io::Error::other)?;
    // Write then rename, so a concurrent reader never sees half a file.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

impl Plugin {
    /// What the component really exports, read from its own type (not from
    /// our WIT): each export's name with, for an interface, the names of the
    /// functions in it.
    pub fn exports(&self) -> Vec<(String, Vec<String>)> {
        let engine = &self.0.engine;
        let ty = self.0.pre.component().component_type();
        ty.exports(engine)
            .map(|(name, item)| {
                let functions = match item.ty {
                    ComponentItem::ComponentInstance(instance) => instance
                        .exports(engine)
                        .filter(|(_, e)| matches!(e.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(f, _)| f.to_owned())
                        .collect(),
                    _ => Vec::new(),
                };
                (name.to_owned(), functions)
            })
            .collect()
    }
}

/// Check the component's exports and imports against one of our versions'
/// worlds, naming exactly what is wrong; the version it targets if right.
fn check_world(engine: &wasmtime::Engine, component: &Component) -> Result<&'static str, String> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(engine).map(|(n, _)| n.to_owned()).collect();
    let supported = || VERSIONS.iter().map(|v| format!("`{}`", v.export)).collect::<Vec<_>>().join(" or ");
    let Some(version) = VERSIONS.iter().find(|v| exports.iter().any(|e| e == v.export)) else {
        let other_version = exports.iter().find(|e| e.starts_with("rotator:plugin/rotator@"));
        return Err(match other_version {
            Some(found) => {
                let known = VERSIONS.iter().map(|v| v.version).collect::<Vec<_>>().join(", ");
                format!(
                    "it exports `{found}`, a WIT version this rotator does not know (it supports {known}: {})",
                    supported()
                )
            }
            None if exports.is_empty() => format!("it exports nothing; a plugin must export {}", supported()),
            None => format!("it does not export {} (it exports: {})", supported(), exports.join(", ")),
        });
    };
    if !matches!(ty.get_export(engine, version.export).map(|e| e.ty), Some(ComponentItem::ComponentInstance(_))) {
        return Err(format!("`{}` is exported but is not an interface", version.export));
    }
    let unknown: Vec<String> = ty
        .imports(engine)
        .map(|(n, _)| n.to_owned())
        .filter(|n| !(n.starts_with("wasi:") || version.imports.contains(&n.as_str())))
        .collect();
    if !unknown.is_empty() {
        return Err(format!(
            "it imports {}, which rotator does not provide to a `{}` plugin (such plugins may import {} and WASI)",
            unknown.iter().map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
            version.version,
            version.imports.join(", ")
        ));
    }
    Ok(version.version)
}

/// Instantiate once with no grants and ask the plugin who it is.
fn describe(engine: &wasmtime::Engine, pre: &wit::Pre, origin: &str) -> Result<PluginInfo, LoadError> {
    let err = |message: String| LoadError::Describe { origin: origin.to_owned(), message };
    let config = RunConfig { grants: Arc::new(Grants::default()), ..RunConfig::default() };
    let mut store = super::run::new_store(engine, "(describe)", origin, &config);
    let instance = pre.instantiate(&mut store).map_err(|e| err(format!("{e:#}")))?;
    let info = super::run::with_deadline(&mut store, &config.limits, |s| instance.describe(s))
        .map_err(|e| err(super::run::classify_trap(e, &mut store, &config.limits, Step::Describe).to_string()))?;
    let sizes = (info.name.len(), info.version.len(), info.description.len(), info.settings_schema.len());
    if let Some(why) = super::limits::DESCRIBE_CAPS.problem(sizes.0, sizes.1, sizes.2, sizes.3, info.capabilities.len())
    {
        return Err(err(why));
    }
    if info.visible_fields.len() > MAX_VISIBLE_FIELDS || info.visible_fields.iter().any(|f| f.len() > 256) {
        return Err(err(format!("at most {MAX_VISIBLE_FIELDS} visible fields of up to 256 bytes each")));
    }
    let settings_schema = serde_json::from_str(&info.settings_schema)
        .map_err(|e| LoadError::Schema { origin: origin.to_owned(), message: format!("not JSON: {e}") })?;
    let public_fields = crate::secret::PublicFields::from_schema(&settings_schema)
        .map_err(|e| LoadError::Schema { origin: origin.to_owned(), message: e.to_string() })?;
    Ok(PluginInfo {
        name: info.name,
        version: info.version,
        description: info.description,
        settings_schema,
        capabilities: info.capabilities,
        access: info.access,
        visible_fields: info.visible_fields,
        public_fields,
    })
}
