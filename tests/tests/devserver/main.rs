//! Integration tests of the dev server itself over real HTTP: auth methods,
//! the Vault contract samples, the database engine, faults, limits, load and
//! tokens. One binary per subject because each test binary links wasmtime,
//! cranelift and the dev server (issue 10).

mod contract_samples;
mod devserver_auth;
mod devserver_contract;
mod devserver_database;
mod devserver_faults;
mod devserver_limits;
mod devserver_load;
mod devserver_tokens;
