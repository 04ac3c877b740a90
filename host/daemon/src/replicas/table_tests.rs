//! The table's rules over arbitrary sequences of heartbeats, deaths and
//! joins: no shard is ever taken from a live owner, epochs only grow, and a
//! quiet cluster converges to an even split with every shard owned.

use proptest::prelude::*;

use super::*;

/// A table after `me` alone beat into an empty record.
fn alone(me: &str) -> Table {
    plan(&Table::default(), me, None, &[], |_| false).table
}

#[test]
fn a_lone_replica_owns_every_shard() {
    let t = alone("a");
    assert_eq!(t.owned_by("a").len(), usize::from(SHARDS));
    assert_eq!(t.epoch, u64::from(SHARDS));
}

#[test]
fn a_joiner_gets_shards_only_after_the_owner_releases_them() {
    let t = alone("a");
    let joined = plan(&t, "b", None, &[], |_| false);
    assert!(joined.gained.is_empty(), "b took shards a still owns: {:?}", joined.gained);
    let released = plan(&joined.table, "a", None, &[], |_| false);
    assert_eq!(released.released.len(), usize::from(SHARDS) / 2);
    let claimed = plan(&released.table, "b", None, &[], |_| false);
    assert_eq!(claimed.gained.len(), usize::from(SHARDS) / 2);
    assert!(claimed.gained.iter().all(|(_, e)| *e > u64::from(SHARDS)), "new epochs: {:?}", claimed.gained);
}

#[test]
fn a_busy_shard_is_released_last() {
    let t = plan(&alone("a"), "b", None, &[], |_| false).table;
    let p = plan(&t, "a", None, &[], |s| s == 63);
    assert!(!p.released.contains(&63), "{:?}", p.released);
}

#[test]
fn a_dead_members_shards_are_taken_over_with_new_epochs() {
    let t = plan(&alone("a"), "b", None, &[], |_| false).table;
    let p = plan(&t, "b", None, &["a".to_owned()], |_| false);
    assert_eq!(p.removed, vec!["a".to_owned()]);
    assert_eq!(p.taken_over, u64::from(SHARDS));
    assert_eq!(p.table.owned_by("b").len(), usize::from(SHARDS));
    assert_eq!(p.table.members.get("b").unwrap().takeovers, u64::from(SHARDS));
}

#[test]
fn liveness_is_judged_by_the_local_clock_and_forgotten_after_a_failed_read() {
    let t = plan(&alone("a"), "b", None, &[], |_| false).table;
    let ttl = Duration::from_secs(3);
    let mut o = Observed::default();
    let start = Instant::now();
    assert!(o.dead(&t, "b", start, ttl).is_empty());
    assert_eq!(o.dead(&t, "b", start + ttl, ttl), vec!["a".to_owned()]);
    o.forget();
    assert!(o.dead(&t, "b", start + ttl * 2, ttl).is_empty(), "a read failure restarts the clocks");
    let moved = plan(&t, "a", None, &[], |_| false).table;
    assert!(o.dead(&moved, "b", start + ttl * 4, ttl).is_empty(), "a beat that moved is alive");
}

#[test]
fn shards_are_spread_evenly_by_job_id() {
    let mut counts = [0u32; SHARDS as usize];
    for i in 0..64_000 {
        counts[usize::from(shard_of(&format!("job-{i}")))] += 1;
    }
    let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
    assert!(*min > 850 && *max < 1150, "uneven: {min}..{max}");
    assert_eq!(shard_of("orders-db"), shard_of("orders-db"));
}

#[derive(Debug, Clone)]
enum Event {
    /// Replica i beats (if alive).
    Beat(usize),
    /// Replica i is judged dead by replica j at j's next beat.
    Dies(usize, usize),
    /// A new replica starts.
    Join,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        8 => (0usize..6).prop_map(Event::Beat),
        1 => (0usize..6, 0usize..6).prop_map(|(i, j)| Event::Dies(i, j)),
        1 => Just(Event::Join),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]
    #[test]
    fn no_shard_leaves_a_live_owner_and_epochs_only_grow(events in proptest::collection::vec(event(), 1..120)) {
        let mut t = Table::default();
        let mut replicas: Vec<(String, bool)> = vec![("r0".into(), true), ("r1".into(), true)];
        let mut judged: Vec<Vec<String>> = vec![Vec::new(); 64];
        for e in events {
            match e {
                Event::Join => {
                    let id = format!("r{}", replicas.len());
                    replicas.push((id, true));
                }
                Event::Dies(i, j) => {
                    if i < replicas.len() && j < replicas.len() && i != j {
                        replicas[i].1 = false;
                        let id = replicas[i].0.clone();
                        judged[j].push(id);
                    }
                }
                Event::Beat(i) => {
                    if i >= replicas.len() || !replicas[i].1 {
                        continue;
                    }
                    let me = replicas[i].0.clone();
                    let dead = std::mem::take(&mut judged[i]);
                    let p = plan(&t, &me, None, &dead, |_| false);
                    prop_assert!(p.table.epoch >= t.epoch);
                    for (s, (before, after)) in t.shards.iter().zip(&p.table.shards).enumerate() {
                        if before.owner != after.owner {
                            if let Some(old) = &before.owner {
                                // Only a dead member's shard, or mine given up.
                                prop_assert!(
                                    old == &me || !p.table.members.contains_key(old),
                                    "shard {} taken from live {} by {}", s, old, me
                                );
                            }
                            if after.owner.is_some() {
                                prop_assert!(after.epoch > before.epoch, "shard {}: epoch {} -> {}", s, before.epoch, after.epoch);
                            }
                        } else {
                            prop_assert_eq!(before.epoch, after.epoch);
                        }
                    }
                    t = p.table;
                }
            }
        }
        // Quiet now: the live replicas beat in turn (removing the dead ones
        // they judge), and the split converges.
        let live: Vec<String> = replicas.iter().filter(|r| r.1).map(|r| r.0.clone()).collect();
        if live.is_empty() {
            return Ok(());
        }
        let dead: Vec<String> = replicas.iter().filter(|r| !r.1).map(|r| r.0.clone()).collect();
        for _ in 0..3 {
            for me in &live {
                t = plan(&t, me, None, &dead, |_| false).table;
            }
        }
        prop_assert_eq!(t.members.len(), live.len());
        prop_assert!(t.shards.iter().all(|s| s.owner.as_ref().is_some_and(|o| live.contains(o))), "unowned or dead-owned shards left");
        for me in &live {
            prop_assert_eq!(t.owned_by(me).len(), t.fair_share(me), "{} is off its share", me);
        }
    }
}
