//! Integration tests of the Vault client against the dev server: KV, the
//! identities it logs in with, token renewal, dynamic credentials, retries,
//! and the documented answers it parses. One binary per subject because each
//! test binary links wasmtime, cranelift and the dev server (issue 10).

mod client_contract;
mod lease_table;
mod vault_dynamic;
mod vault_identity;
mod vault_kv;
mod vault_renewal;
mod vault_retries;
