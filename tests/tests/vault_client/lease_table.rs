//! The lease table on tokio's paused clock, with the scripted Vault of
//! `vault_renewal.rs`: in `Each` mode every credential of a path is renewed
//! and one Vault caps is kept, unrenewed, until its max TTL and then dropped;
//! the table never holds more than its cap, and a refused or failed fetch
//! costs no slot; in `Reuse` mode a path's live credential is handed out
//! again. A property test drives random fetches, revocations and time
//! against a model of the table.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, RngSeed, TestRunner};
use rotator_core::vault::leases::{LeaseError, LeaseManager, LeaseMode, NextAction, Renewed};

use super::vault_renewal::{Leases, dropped, run_leases};

fn steady(ttl: u64) -> Arc<Leases> {
    Leases::new(ttl, true, move |_, _| Ok(Renewed { lease_duration: Duration::from_secs(ttl), renewable: true }))
}

#[tokio::test(start_paused = true)]
async fn each_mode_renews_every_credential_and_drops_a_capped_one_at_its_max_ttl() {
    // max_ttl 900 s from the start: renewals are capped at what is left.
    let api = Leases::new(300, true, |_, t| {
        Ok(Renewed { lease_duration: Duration::from_secs((900.0 - t).clamp(0.0, 300.0) as u64), renewable: true })
    });
    let m = LeaseManager::new(api.clone(), 20).with_mode(LeaseMode::Each);
    let mut events = m.subscribe();
    let first = m.fetch("database/creds/app").await.unwrap();
    let second = m.fetch("database/creds/app").await.unwrap();
    assert_ne!(first.lease_id, second.lease_id);
    run_leases(&m, 800).await;
    let renewals = api.renewals.lock().unwrap().clone();
    for s in [&first, &second] {
        let of = renewals.iter().filter(|(id, _)| *id == s.lease_id).count();
        assert!(of >= 3, "{} renewed {of} times: {renewals:?}", s.lease_id);
    }
    // Capped: neither is replaced, both wait for their expiry.
    assert_eq!(*api.fetched.lock().unwrap(), 2, "no credential fetched behind the callers' backs");
    let listed = m.list();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|l| l.next_action == NextAction::Expire && !l.renewable), "{listed:?}");
    run_leases(&m, 200).await;
    assert!(m.list().is_empty(), "kept past the max TTL");
    let mut gone = dropped(&mut events);
    gone.sort();
    assert_eq!(gone.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(), [first.lease_id, second.lease_id]);
    assert!(gone.iter().all(|(_, why)| why.contains("max TTL")), "{gone:?}");
    assert!(api.revoked.lock().unwrap().is_empty(), "expired, not revoked");
}

#[tokio::test(start_paused = true)]
async fn a_full_table_refuses_before_asking_vault_and_a_failed_fetch_costs_no_slot() {
    let api = steady(3600);
    let m = LeaseManager::new(api.clone(), 20).with_mode(LeaseMode::Each).with_max_leases(2);
    let kept = m.fetch("database/creds/a").await.unwrap();
    *api.fetch_fails.lock().unwrap() = Some(500);
    for _ in 0..5 {
        assert!(matches!(m.fetch("database/creds/a").await, Err(LeaseError::Vault(_))));
    }
    *api.fetch_fails.lock().unwrap() = None;
    m.fetch("database/creds/b").await.unwrap();
    let full = m.fetch("database/creds/c").await.unwrap_err();
    assert!(matches!(full, LeaseError::Full { limit: 2 }), "{full}");
    assert!(full.to_string().contains("max_tracked_leases"), "{full}");
    assert_eq!(*api.fetched.lock().unwrap(), 2, "the refused request reached Vault");
    m.revoke(&kept.lease_id).await.unwrap();
    m.fetch("database/creds/c").await.unwrap();
    assert_eq!(m.list().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn reuse_mode_hands_out_the_live_credential_while_a_tenth_of_its_ttl_is_left() {
    // Not renewable: the live credential is replaced at 85–90 % of 1000 s.
    let api = Leases::new(1000, false, |_, _| panic!("never renewed"));
    let m = LeaseManager::new(api.clone(), 20).with_mode(LeaseMode::Reuse);
    let first = m.fetch("database/creds/app").await.unwrap();
    tokio::time::advance(Duration::from_secs(500)).await;
    let again = m.fetch("database/creds/app").await.unwrap();
    assert_eq!((again.lease_id.as_str(), again.data.expose()), (first.lease_id.as_str(), first.data.expose()));
    assert_eq!(again.lease_duration, Duration::from_secs(500), "with the TTL it has left");
    assert_eq!(*api.fetched.lock().unwrap(), 1);
    // Without the renewal loop nothing replaces it; once less than a tenth
    // is left, a request gets a fresh one and the old one stays tracked.
    tokio::time::advance(Duration::from_secs(450)).await;
    let fresh = m.fetch("database/creds/app").await.unwrap();
    assert_ne!(fresh.lease_id, first.lease_id);
    assert_eq!(m.list().len(), 2);
    assert_eq!(m.current("database/creds/app").unwrap().lease_id, fresh.lease_id);
}

/// One step of the property below.
#[derive(Debug, Clone)]
enum Op {
    Fetch(u8),
    Revoke(usize),
    Wait(u16),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        4 => (0u8..4).prop_map(Op::Fetch),
        2 => any::<usize>().prop_map(Op::Revoke),
        1 => (1u16..2000).prop_map(Op::Wait),
    ];
    prop::collection::vec(op, 1..40)
}

/// Random fetches, revocations and waits against a model: the table never
/// holds more than its cap, is refused exactly when full, in reuse mode a
/// path's credential is handed out again while valid, and every tracked
/// lease is one that was handed out and neither revoked nor past its max TTL.
fn run_table_property(rng_seed: RngSeed, cases: u32) {
    let config = Cases { cases, rng_seed, failure_persistence: None, ..Cases::default() };
    TestRunner::new(config)
        .run(&(ops(), 1usize..6, any::<bool>()), |(ops, cap, reuse)| {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                // 600 s leases, max TTL 1800 s after the start.
                let api = Leases::new(600, true, |_, t| {
                    let left = (1800.0 - t).clamp(0.0, 600.0) as u64;
                    Ok(Renewed { lease_duration: Duration::from_secs(left), renewable: true })
                });
                let mode = if reuse { LeaseMode::Reuse } else { LeaseMode::Each };
                let m = LeaseManager::new(api.clone(), 1000).with_mode(mode).with_max_leases(cap);
                let (stop, rx) = tokio::sync::watch::channel(false);
                let task = tokio::spawn({
                    let m = m.clone();
                    async move { m.run(rx).await }
                });
                // Model: handed-out lease ids still valid, and the live one per path.
                let mut handed: BTreeMap<String, String> = BTreeMap::new();
                for op in ops {
                    match op {
                        Op::Fetch(p) => {
                            let path = format!("database/creds/r{p}");
                            let before = m.list();
                            let live = reuse.then(|| m.current(&path)).flatten();
                            match m.fetch(&path).await {
                                Ok(s) => {
                                    if let Some(live) = live.filter(|l| {
                                        before.iter().any(|b| {
                                            b.lease_id == l.lease_id
                                                && b.budget(tokio::time::Instant::now()) > Duration::from_secs(60)
                                        })
                                    }) {
                                        prop_assert_eq!(
                                            &s.lease_id,
                                            &live.lease_id,
                                            "reuse mode minted a second credential"
                                        );
                                    }
                                    handed.insert(s.lease_id, path);
                                }
                                Err(LeaseError::Full { limit }) => {
                                    prop_assert_eq!(limit, cap);
                                    prop_assert_eq!(before.len(), cap, "refused below the cap");
                                }
                                Err(e) => prop_assert!(false, "{}", e),
                            }
                        }
                        Op::Revoke(i) => {
                            let listed = m.list();
                            if !listed.is_empty() {
                                let id = listed[i % listed.len()].lease_id.clone();
                                m.revoke(&id).await.unwrap();
                                prop_assert!(!m.tracks(&id));
                            }
                        }
                        Op::Wait(s) => tokio::time::sleep(Duration::from_secs(s.into())).await,
                    }
                    let listed = m.list();
                    prop_assert!(listed.len() <= cap, "{} leases tracked, cap {}", listed.len(), cap);
                    for l in &listed {
                        prop_assert!(handed.contains_key(&l.lease_id) || reuse, "never handed out: {}", l.lease_id);
                        prop_assert!(
                            l.budget(tokio::time::Instant::now()) > Duration::ZERO
                                || l.next_action_at <= tokio::time::Instant::now()
                        );
                    }
                }
                stop.send(true).unwrap();
                task.await.unwrap();
                Ok(())
            })
        })
        .unwrap();
}

#[test]
fn property_the_lease_table_stays_within_its_cap() {
    run_table_property(RngSeed::Fixed(0x1ea5e_7ab1e), 400);
}

#[test]
fn property_the_lease_table_random_seed() {
    run_table_property(RngSeed::Random, 100);
}
