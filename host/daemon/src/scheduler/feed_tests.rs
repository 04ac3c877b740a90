//! The backlog's bounds, order and completeness, as properties over random
//! event streams; and a watcher's backlog plus live events being every
//! event exactly once while others publish.

use super::*;
use proptest::prelude::*;
use proptest::test_runner::{Config as Cases, RngSeed, TestRunner};

fn event(n: usize, error_len: usize, paths: usize) -> RotationEvent {
    RotationEvent {
        job: format!("job-{}", n % 7),
        plugin: "kv-random@0.1.0".into(),
        plugin_sha256: "ab".repeat(32),
        rotation_id: format!("r-{n}"),
        actor: "scheduler".into(),
        step: "set",
        outcome: if error_len > 0 { "failed" } else { "ok" },
        duration: None,
        vault_paths: (0..paths).map(|i| format!("secret/data/app/{i}")).collect(),
        error: (error_len > 0).then(|| "e".repeat(error_len)),
        kind: None,
        denied_calls: 0,
    }
}

/// Sizes of events: mostly small, some with long errors or many paths,
/// a few alone larger than the whole backlog.
fn sizes() -> impl Strategy<Value = Vec<(usize, usize)>> {
    let one = prop_oneof![
        8 => (Just(0usize), 0..4usize),
        3 => (1..70_000usize, 0..40usize),
        1 => (0..16usize, 1_000..8_000usize),
        1 => (BACKLOG_BYTES - 200..BACKLOG_BYTES + 200, 0..2usize),
    ];
    prop::collection::vec(one, 0..450)
}

fn run_backlog_property(rng_seed: RngSeed, cases: u32) {
    let config = Cases { cases, rng_seed, failure_persistence: None, ..Cases::default() };
    TestRunner::new(config)
        .run(&sizes(), |sizes| {
            let mut backlog = Backlog::default();
            // (seq, weight) of every event that fits the backlog alone.
            let mut fits = Vec::new();
            let total = sizes.len();
            for (n, (error_len, paths)) in sizes.into_iter().enumerate() {
                let e = Arc::new(FeedEvent {
                    seq: n as u64 + 1,
                    at: OffsetDateTime::UNIX_EPOCH,
                    event: event(n, error_len, paths),
                });
                if e.weight() <= BACKLOG_BYTES {
                    fits.push((e.seq, e.weight()));
                }
                backlog.push(e);
                let (count, bytes) = backlog.size();
                prop_assert!(count <= BACKLOG_EVENTS && bytes <= BACKLOG_BYTES, "{} events, {} bytes", count, bytes);
                if n % 16 != 15 && n + 1 != total {
                    continue;
                }
                let kept = backlog.since(None, usize::MAX);
                prop_assert_eq!(kept.iter().map(|e| e.weight()).sum::<usize>(), bytes);
                // The kept events are the newest ones that fit, in order:
                // every publishable event newer than the oldest kept one is
                // kept, and the next older one would break a bound.
                let tail = &fits[fits.len() - kept.len()..];
                prop_assert!(kept.iter().zip(tail).all(|(a, b)| a.seq == b.0));
                if let Some(&(_, older)) = fits.len().checked_sub(kept.len() + 1).map(|i| &fits[i]) {
                    prop_assert!(count + 1 > BACKLOG_EVENTS || bytes + older > BACKLOG_BYTES);
                }
            }
            // `since` is the kept events after a number, newest `limit` of them.
            let kept = backlog.since(None, usize::MAX);
            if let Some(mid) = kept.get(kept.len() / 2) {
                let after = backlog.since(Some(mid.seq), 10);
                let expected: Vec<u64> = kept.iter().map(|e| e.seq).filter(|&s| s > mid.seq).collect();
                let expected = &expected[expected.len().saturating_sub(10)..];
                prop_assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), expected);
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn property_the_backlog_keeps_the_newest_events_that_fit_both_bounds() {
    run_backlog_property(RngSeed::Fixed(0xfeed_0200), 128);
}

#[test]
fn property_the_backlog_keeps_the_newest_events_that_fit_both_bounds_random_seed() {
    run_backlog_property(RngSeed::Random, 48);
}

#[test]
fn a_watcher_gets_every_event_once_from_backlog_and_live_while_others_publish() {
    let feed = Arc::new(Feed::default());
    for n in 0..50 {
        feed.publish(event(n, 0, 1));
    }
    let publisher = {
        let feed = feed.clone();
        std::thread::spawn(move || (50..550).for_each(|n| feed.publish(event(n, 0, 1))))
    };
    let (backlog, mut live) = feed.subscribe(None, BACKLOG_EVENTS);
    publisher.join().unwrap();
    let mut seen: Vec<u64> = backlog.iter().map(|e| e.seq).collect();
    while let Ok(e) = live.try_recv() {
        seen.push(e.seq);
    }
    let first = seen[0];
    assert!(seen.len() >= 500, "{} events", seen.len());
    assert_eq!(seen, (first..first + seen.len() as u64).collect::<Vec<_>>(), "a gap or an overlap");
    // The newest event published is the last one seen.
    let (newest, _) = feed.subscribe(None, 1);
    assert_eq!(newest[0].seq, *seen.last().unwrap());
    // A watcher that reconnects with the last number it saw gets only what came after.
    feed.publish(event(550, 0, 0));
    let (missed, _) = feed.subscribe(Some(newest[0].seq), BACKLOG_EVENTS);
    assert_eq!(missed.iter().map(|e| e.event.rotation_id.as_str()).collect::<Vec<_>>(), ["r-550"]);
}

#[test]
fn numbers_start_at_the_start_time_so_a_restarted_daemon_continues_above_the_last() {
    let earlier = Feed::default();
    earlier.publish(event(0, 0, 0));
    let (before, _) = earlier.subscribe(None, 1);
    std::thread::sleep(std::time::Duration::from_millis(2));
    let later = Feed::default();
    later.publish(event(1, 0, 0));
    let (after, _) = later.subscribe(Some(before[0].seq), 10);
    assert_eq!(after.len(), 1, "the new daemon's event is newer than the old one's");
}

#[test]
fn a_feed_event_is_the_rotation_event_with_its_number_and_time() {
    let e = FeedEvent { seq: 7, at: OffsetDateTime::UNIX_EPOCH, event: event(3, 5, 1) };
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["seq"], 7);
    assert_eq!(json["at"], "1970-01-01T00:00:00Z");
    assert_eq!(
        (json["job"].as_str(), json["step"].as_str(), json["error"].as_str()),
        (Some("job-3"), Some("set"), Some("eeeee"))
    );
    assert_eq!(json["vault_paths"], serde_json::json!(["secret/data/app/0"]));
}
