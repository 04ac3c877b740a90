//! Every sample in `shared/contracts/vault/` (issue #3), table-driven:
//!
//! - the client side: a documented answer of an endpoint rotator reads is
//!   parsed with the client's own parsers ([`Client::Parse`]); endpoints
//!   the client reads with no pure parser are read by the real client
//!   against the replayed state ([`Client::Live`]);
//! - the server side: each sample's request is replayed on a fresh
//!   in-process dev server, after the state it assumes is set up (mounts,
//!   secrets, roles, tokens, leases, a real PostgreSQL), and the answer must
//!   have the documented status and the same JSON keys, recursively (values
//!   differ: ids, times). Every exception is a [`Rule`] with its reason.
//!
//! A sample without a row, or a row without a sample, fails the test, so a
//! new sample cannot be skipped silently; the only skips are samples that
//! cannot apply to this server, each with its reason.

mod auth;
mod bench;
mod client;
mod db;
mod errors;
mod kv;
mod sys;

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::Pin;

use rotator_tests::contract::{Rule, Sample, all_samples, key_differences};
use serde_json::Value;

use bench::{Answer, Bench, Shared};

/// A replay's answer, produced asynchronously.
pub type Fut<'a> = Pin<Box<dyn Future<Output = Answer> + 'a>>;

/// Box a replay's body.
pub fn fut<'a>(f: impl Future<Output = Answer> + 'a) -> Fut<'a> {
    Box::pin(f)
}

/// Set up what the sample assumes on `Bench`'s fresh server, then send the
/// sample's request and return the answer.
type Replay = for<'a> fn(&'a Bench<'a>, &'a Sample) -> Fut<'a>;

/// How rotator's client uses the endpoint.
enum Client {
    /// It parses the answer with this (pure) function.
    Parse(fn(&Value) -> Result<(), String>),
    /// It reads the answer inside the named method, with no pure parser;
    /// the replay calls that method on the replayed state.
    Live(&'static str),
    /// A failure any call may meet: it becomes a typed `VaultError`.
    Error,
    /// It reads only the status (the named caller).
    Status(&'static str),
    /// rotator never calls it.
    Unused,
}

/// What the dev server must do.
enum Server {
    Replay(Replay, &'static [Rule]),
    /// The sample cannot apply to the dev server, for this reason.
    Skip(&'static str),
}

struct Case {
    id: &'static str,
    client: Client,
    server: Server,
}

const fn case(id: &'static str, client: Client, server: Server) -> Case {
    Case { id, client, server }
}

use Client::{Error, Live, Parse, Status, Unused};
use Rule::{DataOnly, Extra, Map, Missing, Opaque};
use Server::{Replay as R, Skip};

/// Fields of Vault's `auth` block that a sample elides; token.json's create
/// sample shows them all.
const AUTH: Rule = Extra(
    "auth",
    &["accessor", "policies", "token_policies", "metadata", "entity_id", "token_type", "orphan", "num_uses"],
    "the full auth block Vault sends with every token (token.json's create sample); this sample elides part of it",
);
/// Vault 1.10+ (and OpenBao, forked from 1.14) send `mfa_requirement`.
const MFA: Rule = Extra(
    "auth",
    &["mfa_requirement"],
    "Vault 1.10+ sends mfa_requirement (null without login MFA); the doc samples predate it",
);
const TOKEN_TYPE: Rule =
    Extra("data", &["type"], "Vault 1.0+ reports the token type (service/batch); the OpenBao sample omits it");
const HEALTH_CE: Rule = Extra(
    "",
    &["performance_standby", "enterprise", "echo_duration_ms", "clock_skew_ms"],
    "the dev server answers as Vault CE 1.16 (its sample, sys.json's last, has these)",
);
const MOUNTS_TOP: Rule = Extra(
    "",
    &["cubbyhole/", "identity/", "secret/", "sys/", "plugin_version", "running_plugin_version", "running_sha256"],
    "sys/mounts answers copy every data key to the top level (injectDataIntoTopRoutes, contracts README)",
);
const LAST_ROTATION: Rule = Extra(
    "data",
    &["last_vault_rotation"],
    "servers emit last_vault_rotation (the static-creds sample's note: OpenBao's source, and Vault's sample)",
);

#[rustfmt::skip]
const CASES: &[Case] = &[
    case("approle.json POST /v1/auth/approle/login 200 openbao", Parse(client::login), R(auth::approle_login, &[AUTH, MFA])),
    case("approle.json GET /v1/auth/approle/role/:role_name/role-id 200 openbao", Unused, R(auth::approle_role_call, &[])),
    case("approle.json POST /v1/auth/approle/role/:role_name/secret-id 200 openbao", Unused, R(auth::approle_role_call, &[])),

    case("database.json POST /v1/database/config/:name 204 openbao", Status("harness::postgres::mount_database"), R(db::config, &[])),
    case("database.json GET /v1/database/config/:name 200 openbao", Status("plugin database-root, step test"), R(db::config, &[])),
    case("database.json POST /v1/database/rotate-root/:name 204 openbao", Status("plugin database-root, step set"), R(db::rotate_root, &[])),
    case("database.json POST /v1/database/roles/:name 204 openbao", Status("harness::postgres::mount_database"), R(db::roles, &[])),
    case("database.json GET /v1/database/roles/:name 200 openbao", Unused, R(db::roles, &[])),
    case("database.json GET /v1/database/creds/:name 200 openbao", Parse(client::dynamic), R(db::creds, &[])),
    case("database.json POST /v1/database/static-roles/:name 204 openbao", Unused, R(db::static_roles, &[])),
    case("database.json GET /v1/database/static-roles/:name 200 openbao", Unused, R(db::static_roles, &[LAST_ROTATION,
        Extra("data", &["skip_import_rotation"], "Vault 1.16 reports skip_import_rotation (sys.json's Vault schedule sample shows it)")])),
    case("database.json GET /v1/database/static-creds/:name 200 openbao", Unused, R(db::static_creds, &[LAST_ROTATION,
        Missing("data", &["last_openbao_rotation"], "a doc bug, says the sample's note: servers emit last_vault_rotation")])),
    case("database.json POST /v1/database/rotate-role/:name 204 openbao", Unused, R(db::rotate_role, &[])),
    case("database.json POST /v1/database/static-roles/:name 204 vault", Unused, R(db::static_roles, &[])),
    case("database.json GET /v1/database/static-roles/:name 200 vault", Unused, R(db::static_roles, &[LAST_ROTATION])),
    case("database.json GET /v1/database/static-creds/:name 200 vault #1", Unused, R(db::static_creds, &[])),
    case("database.json GET /v1/database/static-creds/:name 200 vault #2", Unused, R(db::static_creds, &[])),

    case(r#"errors.json * * 400 openbao "message""#, Error, R(errors::generic, &[])),
    case("errors.json LIST * 404 vault", Live("VaultClient::kv_list: a 404 is an empty list"), R(errors::empty_list, &[])),
    case("errors.json * * 200 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 204 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 400 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 403 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 404 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 405 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 429 openbao #1", Unused, Skip("a standby's default sys/health code: the dev server is always the active node (the rate-limit 429 is replayed below)")),
    case("errors.json * * 500 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 502 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 503 openbao", Unused, R(errors::generic, &[])),
    case("errors.json * * 412 vault", Unused, Skip("Vault Enterprise's eventual-consistency code; the dev server is Vault CE")),
    case("errors.json * * 472 vault", Unused, Skip("a DR replication secondary's sys/health code; the dev server has no replication")),
    case("errors.json * * 473 vault", Unused, Skip("a performance standby's sys/health code (Enterprise); the dev server is one active CE node")),
    case("errors.json * * 501 vault", Unused, Skip("an uninitialized server's code; the dev server starts initialized, as `vault server -dev` does")),
    case(r#"errors.json POST /v1/:secret-mount-path/data/:path 400 openbao "check-and-set parameter did not match the current version""#, Error, R(errors::kv2, &[])),
    case(r#"errors.json POST /v1/:secret-mount-path/data/:path 400 openbao "check-and-set parameter required for this call""#, Error, R(errors::kv2, &[])),
    case("errors.json GET /v1/:secret-mount-path/data/:path 404 openbao #1", Error, R(errors::kv2, &[])),
    case("errors.json GET /v1/:secret-mount-path/data/:path 404 openbao #2", Live("VaultClient::kv_read: a deleted version is no secret"), R(errors::kv2, &[])),
    case(r#"errors.json POST /v1/sys/leases/renew 400 openbao "lease is not renewable""#, Error, Skip("no dev-server engine issues non-renewable leases (database credentials are renewable, as in Vault); devserver/leases/tests.rs checks the message")),
    case(r#"errors.json POST /v1/sys/leases/renew 400 openbao "lease not found""#, Error, R(db::lease_error, &[])),
    case(r#"errors.json POST /v1/sys/leases/renew 400 openbao "lease expired""#, Error, Skip("only between a lease's expiry and the expiry task's revocation: a replay would race the wall clock")),
    case("errors.json POST /v1/sys/leases/renew 200 openbao", Live("LeaseManager: a capped renewal"), R(db::lease_error, &[])),
    case(r#"errors.json POST /v1/sys/leases/lookup 400 openbao "invalid lease""#, Error, R(db::lease_error, &[])),
    case(r#"errors.json POST /v1/sys/leases/renew 400 openbao "tokens cannot be renewed through this endpoint""#, Error, R(db::lease_error, &[])),
    case(r#"errors.json POST /v1/auth/token/renew-self 400 openbao "lease is not renewable""#, Error, R(errors::renew_root, &[])),
    case(r#"errors.json * * 403 openbao "1 error occurred:\n\t* permission denied\n\n""#, Error, R(errors::core_error, &[])),
    case(r#"errors.json * * 503 openbao "Vault is sealed""#, Error, R(errors::core_error, &[])),
    case("errors.json * * 429 openbao #2", Unused, R(errors::core_error, &[])),

    case("headers.json X-Vault-Token request", Unused, R(sys::header, &[])),
    case("headers.json Authorization request", Unused, R(sys::header, &[])),
    case("headers.json X-Vault-Namespace request", Unused, R(sys::header, &[])),
    case("headers.json X-Vault-Request request", Unused, R(sys::header, &[])),
    case("headers.json X-Vault-Wrap-TTL request", Unused, R(sys::header, &[])),
    case("headers.json X-Vault-Wrap-Format request", Unused, Skip("no documented values or behaviour: it only appears in the default CORS allowed-headers list")),
    case("headers.json X-Vault-MFA request", Unused, R(sys::header, &[])),
    case("headers.json Content-Type request", Unused, R(sys::header, &[])),
    case("headers.json Content-Type response", Unused, R(sys::header, &[])),
    case("headers.json Cache-Control response", Unused, R(sys::header, &[])),
    case("headers.json X-Vault-Index / X-Vault-Inconsistent both", Unused, Skip("Vault Enterprise's eventual-consistency headers; the dev server is one CE node")),

    case("jwt.json POST /v1/auth/jwt/login 200 openbao", Parse(client::login), R(auth::jwt_login, &[AUTH, MFA, Opaque("auth.metadata")])),
    case("kubernetes.json POST /v1/auth/kubernetes/login 200 openbao", Parse(client::login), R(auth::kubernetes_login, &[AUTH, MFA])),

    case("kv1.json GET /v1/secret/:path 200 openbao", Parse(client::kv1_read), R(kv::kv1_read, &[Opaque("data")])),
    case("kv1.json LIST /v1/secret/:path 200 openbao", Live("VaultClient::kv_list"), R(kv::kv1_list, &[])),
    case("kv1.json POST /v1/secret/:path 204 openbao", Live("VaultClient::kv_write"), R(kv::kv1_write, &[])),
    case("kv1.json DELETE /v1/secret/:path 204 openbao", Unused, R(kv::kv1_delete, &[])),

    case("kv2.json POST /v1/:secret-mount-path/config 204 openbao", Unused, R(kv::kv2_config_write, &[])),
    case("kv2.json GET /v1/:secret-mount-path/config 200 openbao", Unused, R(kv::kv2_config_read, &[])),
    case("kv2.json GET /v1/:secret-mount-path/data/:path 200 openbao", Parse(client::kv2_read), R(kv::kv2_read, &[Opaque("data.data"), Opaque("data.metadata.custom_metadata")])),
    case("kv2.json POST /v1/:secret-mount-path/data/:path 200 openbao", Parse(client::kv2_write), R(kv::kv2_write, &[Opaque("data.custom_metadata")])),
    case("kv2.json PATCH /v1/:secret-mount-path/data/:path 200 openbao", Unused, R(kv::kv2_patch, &[Opaque("data.custom_metadata")])),
    // The docs show only the data object of the subkeys answer.
    case("kv2.json GET /v1/:secret-mount-path/subkeys/:path 200 openbao", Unused, R(kv::kv2_subkeys, &[DataOnly])),
    case("kv2.json DELETE /v1/:secret-mount-path/data/:path 204 openbao", Unused, R(kv::kv2_on_existing, &[])),
    case("kv2.json POST /v1/:secret-mount-path/delete/:path 204 openbao", Unused, R(kv::kv2_versions_call, &[])),
    case("kv2.json POST /v1/:secret-mount-path/undelete/:path 204 openbao", Unused, R(kv::kv2_versions_call, &[])),
    case("kv2.json PUT /v1/:secret-mount-path/destroy/:path 204 openbao", Unused, R(kv::kv2_versions_call, &[])),
    case("kv2.json LIST /v1/:secret-mount-path/metadata/:path 200 openbao", Live("VaultClient::kv_list"), R(kv::kv2_list, &[])),
    case("kv2.json GET /v1/:secret-mount-path/metadata/:path 200 openbao", Live("VaultClient::kv_metadata"), R(kv::kv2_metadata_read, &[Map("data.versions"), Opaque("data.custom_metadata")])),
    case("kv2.json POST /v1/:secret-mount-path/metadata/:path 204 openbao", Live("VaultClient::kv_write_metadata"), R(kv::kv2_on_existing, &[])),
    case("kv2.json PATCH /v1/:secret-mount-path/metadata/:path 204 openbao", Unused, R(kv::kv2_on_existing, &[])),
    case("kv2.json DELETE /v1/:secret-mount-path/metadata/:path 204 openbao", Unused, R(kv::kv2_on_existing, &[])),

    case("leases.json POST /v1/sys/leases/lookup 200 openbao", Unused, R(db::leases, &[])),
    case("leases.json LIST /v1/sys/leases/lookup/:prefix 200 openbao", Unused, R(db::leases, &[])),
    case("leases.json POST /v1/sys/leases/renew 200 openbao", Parse(client::lease_renewed), R(db::leases, &[])),
    case("leases.json POST /v1/sys/leases/revoke 204 openbao", Live("LeaseApi::revoke"), R(db::leases, &[])),
    case("leases.json POST /v1/sys/leases/revoke-prefix/:prefix 204 openbao", Unused, R(db::leases, &[])),
    case("leases.json POST /v1/sys/leases/revoke-force/:prefix 204 openbao", Unused, R(db::leases, &[])),

    case("sys.json GET /v1/sys/health 200 openbao #1", Status("VaultClient::health, the API's readyz"), R(sys::unauthenticated, &[HEALTH_CE])),
    case("sys.json GET /v1/sys/health 200 openbao #2", Status("VaultClient::health, the API's readyz"), R(sys::unauthenticated, &[HEALTH_CE])),
    case("sys.json HEAD /v1/sys/health 200 openbao", Unused, R(sys::unauthenticated, &[])),
    case("sys.json GET /v1/sys/seal-status 200 openbao #1", Unused, Skip("a sealed server's answer: the dev server is never sealed (the unsealed sample is replayed)")),
    case("sys.json GET /v1/sys/seal-status 200 openbao #2", Unused, R(sys::unauthenticated, &[
        Extra("", &["build_date"], "Vault 1.10+ reports build_date; OpenBao's sample omits it")])),
    case("sys.json GET /v1/sys/mounts 200 openbao", Unused, R(sys::mounts, &[MOUNTS_TOP])),
    case("sys.json POST /v1/sys/mounts/:path 204 openbao", Status("harness::postgres::mount_database"), R(sys::mount_call, &[])),
    case("sys.json DELETE /v1/sys/mounts/:path 204 openbao", Unused, R(sys::mount_call, &[])),
    case("sys.json GET /v1/sys/mounts/:path 200 openbao", Unused, R(sys::mount_call, &[MOUNTS_TOP])),
    case("sys.json GET /v1/sys/mounts/:path/tune 200 openbao", Unused, R(sys::tune, &[
        Extra("", &["description", "options"], "Vault's tune read also reports the description and a mount's options (kv's version); the sample's mount had none")])),
    case("sys.json POST /v1/sys/mounts/:path/tune 204 openbao", Unused, R(sys::tune, &[])),
    case("sys.json POST /v1/sys/wrapping/unwrap 200 openbao", Unused, R(sys::wrapping, &[Opaque("data")])),
    case("sys.json POST /v1/sys/wrapping/wrap 200 openbao", Unused, R(sys::wrapping, &[
        Extra("wrap_info", &["accessor"], "wrap_info carries the wrapping token's accessor (headers.json's X-Vault-Wrap-TTL note)")])),
    case("sys.json GET /v1/sys/health 200 vault", Status("VaultClient::health, the API's readyz"), R(sys::unauthenticated, &[])),

    case("token.json POST /v1/auth/token/create 200 openbao", Parse(client::login), R(auth::token_call, &[MFA, Opaque("auth.metadata")])),
    case("token.json POST /v1/auth/token/lookup 200 openbao", Unused, R(auth::token_call, &[TOKEN_TYPE, Opaque("data.meta")])),
    case("token.json GET /v1/auth/token/lookup-self 200 openbao", Parse(client::lookup_self), R(auth::token_call, &[TOKEN_TYPE, Opaque("data.meta")])),
    case("token.json POST /v1/auth/token/lookup-accessor 200 openbao", Unused, R(auth::token_call, &[TOKEN_TYPE, Opaque("data.meta")])),
    case("token.json POST /v1/auth/token/renew 200 openbao", Unused, R(auth::token_call, &[AUTH, MFA, Opaque("auth.metadata")])),
    case("token.json POST /v1/auth/token/renew-self 200 openbao", Parse(client::renew_self), R(auth::token_call, &[AUTH, MFA, Opaque("auth.metadata")])),
    case("token.json POST /v1/auth/token/renew-accessor 200 openbao", Unused, R(auth::token_call, &[AUTH, MFA, Opaque("auth.metadata")])),
    case("token.json POST /v1/auth/token/revoke 204 openbao", Unused, R(auth::token_call, &[])),
    case("token.json POST /v1/auth/token/revoke-self 204 openbao", Unused, R(auth::token_call, &[])),
];

fn case_for(id: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.id == id)
}

#[test]
fn every_sample_has_a_row_and_every_row_a_sample() {
    let samples = all_samples();
    let ids: BTreeSet<&str> = samples.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids.len(), samples.len(), "sample ids are unique");
    let unmapped: Vec<&str> = ids.iter().copied().filter(|id| case_for(id).is_none()).collect();
    assert!(unmapped.is_empty(), "samples with no row in CASES (add one, or a reasoned Skip): {unmapped:#?}");
    let stale: Vec<&str> = CASES.iter().map(|c| c.id).filter(|id| !ids.contains(id)).collect();
    assert!(stale.is_empty(), "rows for samples that no longer exist: {stale:#?}");
    let rows: BTreeSet<&str> = CASES.iter().map(|c| c.id).collect();
    assert_eq!(rows.len(), CASES.len(), "one row per sample");
    for case in CASES {
        let named = match (&case.client, &case.server) {
            (Live(why) | Status(why), _) if why.is_empty() => false,
            (_, Skip(why)) => !why.is_empty(),
            _ => true,
        };
        assert!(named, "{}: every skip has a reason, every client use names its caller", case.id);
        if let Skip(why) = &case.server {
            eprintln!("skipped {}: {why}", case.id);
        }
    }
}

#[test]
fn the_client_parses_every_answer_it_reads() {
    let mut failures = Vec::new();
    let mut parsed = 0;
    for sample in all_samples() {
        let Some(case) = case_for(&sample.id) else { continue };
        let result = match case.client {
            Parse(parse) => parse(sample.response()),
            Error if !sample.response().is_null() => client::error(sample.status(), sample.response()),
            Error | Live(_) | Status(_) | Unused => continue,
        };
        parsed += 1;
        if let Err(e) = result {
            failures.push(format!("{}: {e}", sample.id));
        }
    }
    assert!(failures.is_empty(), "the client cannot read these samples:\n{}", failures.join("\n"));
    assert!(parsed >= 20, "only {parsed} samples parsed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_server_answers_every_sample_as_documented() {
    let shared = Shared::default();
    let mut failures = Vec::new();
    let mut replayed = 0;
    for (n, sample) in all_samples().into_iter().enumerate() {
        let Some(case) = case_for(&sample.id) else { continue };
        let Server::Replay(replay, rules) = &case.server else { continue };
        let bench = Bench::new(&shared, n).await;
        let answer = replay(&bench, &sample).await;
        let mut problems = bench.take_problems();
        problems.extend(judge(&sample, &answer, rules));
        bench.server.shutdown().await;
        replayed += 1;
        failures.extend(problems.into_iter().map(|p| format!("{}: {p}", sample.id)));
    }
    assert!(failures.is_empty(), "{} differences from the samples:\n{}", failures.len(), failures.join("\n"));
    assert!(replayed >= 90, "only {replayed} samples replayed");
}

/// The documented status and keys (headers.json samples have neither:
/// their replays check the header).
fn judge(sample: &Sample, answer: &Answer, rules: &[Rule]) -> Vec<String> {
    if sample.file == "headers.json" {
        return Vec::new();
    }
    let mut out = Vec::new();
    let warned = answer.body["warnings"].as_array().is_some_and(|w| !w.is_empty());
    // errors.json: a success without a body may be a 200 carrying warnings.
    let status_ok = answer.status == sample.status() || (sample.status() == 204 && answer.status == 200 && warned);
    if !status_ok {
        out.push(format!("status {} (documented {}): {}", answer.status, sample.status(), answer.body));
        return out;
    }
    match (sample.response(), answer.status) {
        (Value::Null, 204) => {
            if !answer.body.is_null() {
                out.push(format!("a 204 with a body: {}", answer.body));
            }
        }
        (Value::Null, _) => {}
        (documented, _) => out.extend(key_differences(documented, &answer.body, rules)),
    }
    out
}
