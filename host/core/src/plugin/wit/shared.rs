//! What every version's adapter does the same way, written once: the
//! `log` and `sql` imports (unchanged since 0.1.0 but for the package
//! version) and the conversions of the types every version shares. Each
//! adapter's `bindgen!` makes its own Rust types for them, so the code is a
//! macro expanded inside each adapter, over that adapter's `generated`
//! module.

/// Implement `log::Host`, `sql::Host` and `types::Host` for [`Gate`] over
/// one version's generated bindings, plus that version's `capability_common`,
/// `operation`, `step` and `failure` conversions.
///
/// [`Gate`]: crate::plugin::imports::Gate
macro_rules! shared_imports {
    () => {
        impl types::Host for Gate<'_> {}

        impl log::Host for Gate<'_> {
            fn write(&mut self, level: log::Level, message: String) {
                let level = match level {
                    log::Level::Debug => LogLevel::Debug,
                    log::Level::Info => LogLevel::Info,
                    log::Level::Warn => LogLevel::Warn,
                    log::Level::Error => LogLevel::Error,
                };
                self.log(level, message);
            }
        }

        impl sql::Host for Gate<'_> {
            fn execute(
                &mut self,
                connection: String,
                statement: String,
                params: Vec<sql::SqlValue>,
            ) -> Result<u64, sql::SqlError> {
                let params = params.into_iter().map(sql_value_in).collect();
                self.sql("sql.execute").and_then(|h| h.sql_execute(connection, statement, params)).map_err(sql_error)
            }

            fn query(
                &mut self,
                connection: String,
                statement: String,
                params: Vec<sql::SqlValue>,
            ) -> Result<Vec<Vec<sql::SqlValue>>, sql::SqlError> {
                let params = params.into_iter().map(sql_value_in).collect();
                let rows = self.sql("sql.query").and_then(|h| h.sql_query(connection, statement, params));
                rows.map(|rows| rows.into_iter().map(|row| row.into_iter().map(sql_value_out).collect()).collect())
                    .map_err(sql_error)
            }

            fn try_login(
                &mut self,
                connection: String,
                username: String,
                password: String,
            ) -> Result<bool, sql::SqlError> {
                self.sql("sql.try-login")
                    .and_then(|h| h.sql_try_login(connection, username, password))
                    .map_err(sql_error)
            }
        }

        fn sql_value_in(v: sql::SqlValue) -> SqlValue {
            match v {
                sql::SqlValue::Null => SqlValue::Null,
                sql::SqlValue::Boolean(b) => SqlValue::Boolean(b),
                sql::SqlValue::Int(n) => SqlValue::Int(n),
                sql::SqlValue::Float(f) => SqlValue::Float(f),
                sql::SqlValue::Text(s) => SqlValue::Text(s),
            }
        }

        fn sql_value_out(v: SqlValue) -> sql::SqlValue {
            match v {
                SqlValue::Null => sql::SqlValue::Null,
                SqlValue::Boolean(b) => sql::SqlValue::Boolean(b),
                SqlValue::Int(n) => sql::SqlValue::Int(n),
                SqlValue::Float(f) => sql::SqlValue::Float(f),
                SqlValue::Text(s) => sql::SqlValue::Text(s),
            }
        }

        fn sql_error(e: SqlError) -> sql::SqlError {
            match e {
                SqlError::Denied(m) => sql::SqlError::Denied(m),
                SqlError::UnknownConnection(m) => sql::SqlError::UnknownConnection(m),
                SqlError::Failed(m) => sql::SqlError::Failed(m),
                SqlError::Unavailable(m) => sql::SqlError::Unavailable(m),
            }
        }

        fn vault_error(e: VaultError) -> vault::VaultError {
            match e {
                VaultError::Denied(m) => vault::VaultError::Denied(m),
                VaultError::Status { code, errors } => vault::VaultError::Status(vault::VaultStatus { code, errors }),
                VaultError::CasMismatch(m) => vault::VaultError::CasMismatch(m),
                VaultError::Unavailable(m) => vault::VaultError::Unavailable(m),
            }
        }

        fn operation(op: types::Operation) -> Operation {
            match op {
                types::Operation::Read => Operation::Read,
                types::Operation::Write => Operation::Write,
                types::Operation::Delete => Operation::Delete,
                types::Operation::List => Operation::List,
            }
        }

        fn step(s: types::Step) -> Step {
            match s {
                types::Step::Create => Step::Create,
                types::Step::Set => Step::Set,
                types::Step::Test => Step::Test,
                types::Step::Finish => Step::Finish,
                types::Step::Rollback => Step::Rollback,
            }
        }

        /// The plugin's error, its message as the plugin wrote it (the run
        /// redacts).
        fn failure(e: types::RotateError) -> Failure {
            match e {
                types::RotateError::InvalidConfig(m) => Failure::InvalidConfig(m),
                types::RotateError::Transient(m) => Failure::Transient(m),
                types::RotateError::Permanent(m) => Failure::Permanent(m),
            }
        }

        /// A plan's actions, as the plugin wrote them.
        fn actions(actions: Vec<types::Action>) -> Vec<PlannedAction> {
            actions.into_iter().map(|a| PlannedAction { step: step(a.step), summary: a.summary }).collect()
        }

        /// A component of this version, linked and ready to instantiate.
        pub struct Pre(generated::PluginPre<RunState>);

        impl Pre {
            /// Check the linked component against this version's world.
            pub fn new(pre: InstancePre<RunState>) -> wasmtime::Result<Self> {
                generated::PluginPre::new(pre).map(Self)
            }

            pub fn component(&self) -> &Component {
                self.0.instance_pre().component()
            }

            pub fn instantiate(&self, store: &mut Store<RunState>) -> wasmtime::Result<Instance> {
                Ok(Instance { plugin: self.0.instantiate(store)?, context: None })
            }
        }

        /// Add this version's imports to the linker, each behind the run's
        /// host-call budget.
        pub fn add_to_linker(linker: &mut Linker<RunState>) -> wasmtime::Result<()> {
            generated::Plugin::add_to_linker::<RunState, Gated>(linker, |s| Gate(&mut s.host))
        }

        #[cfg(test)]
        mod names {
            use super::*;

            #[test]
            fn the_names_carry_this_adapters_version() {
                for name in std::iter::once(&EXPORT).chain(IMPORTS) {
                    assert!(name.starts_with("rotator:plugin/"), "{name}");
                    assert_eq!(name.rsplit_once('@').map(|(_, v)| v), Some(VERSION), "{name}");
                }
            }
        }
    };
}

pub(super) use shared_imports;
