//! A deadline queue: keys with a due time, and one consumer that sleeps
//! until the earliest is due (after mini-redis's purge task).
//!
//! The consumer sleeps until the earliest deadline and is woken early when an
//! earlier one is inserted, so thousands of jobs cost one timer, not one
//! sleeping task each. Each key is in the queue at most once: scheduling it
//! again moves it.

use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use std::sync::Mutex;

use tokio::sync::Notify;
use tokio::time::Instant;

/// Keys waiting for their deadlines.
pub struct DeadlineQueue<K> {
    state: Mutex<State<K>>,
    wake: Notify,
}

struct State<K> {
    /// Ordered by deadline; the sequence number keeps equal deadlines in
    /// insertion order.
    by_time: BTreeSet<(Instant, u64, K)>,
    by_key: HashMap<K, (Instant, u64)>,
    seq: u64,
}

impl<K: Clone + Eq + Hash + Ord> Default for DeadlineQueue<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Clone + Eq + Hash + Ord> DeadlineQueue<K> {
    pub fn new() -> Self {
        let state = State { by_time: BTreeSet::new(), by_key: HashMap::new(), seq: 0 };
        Self { state: Mutex::new(state), wake: Notify::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State<K>> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make `key` due at `at`, replacing its previous deadline.
    pub fn schedule(&self, key: K, at: Instant) {
        let earliest = {
            let mut s = self.lock();
            if let Some((old, seq)) = s.by_key.remove(&key) {
                s.by_time.remove(&(old, seq, key.clone()));
            }
            s.seq += 1;
            let seq = s.seq;
            s.by_time.insert((at, seq, key.clone()));
            s.by_key.insert(key, (at, seq));
            s.by_time.first().is_some_and(|(first, n, _)| *first == at && *n == seq)
        };
        // Only a new earliest deadline changes how long the consumer sleeps.
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Take `key` out of the queue. Returns whether it was there.
    pub fn cancel(&self, key: &K) -> bool {
        let mut s = self.lock();
        match s.by_key.remove(key) {
            Some((at, seq)) => s.by_time.remove(&(at, seq, key.clone())),
            None => false,
        }
    }

    /// When `key` is due, if it is queued.
    pub fn deadline(&self, key: &K) -> Option<Instant> {
        self.lock().by_key.get(key).map(|(at, _)| *at)
    }

    pub fn len(&self) -> usize {
        self.lock().by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Pop the earliest key if it is due at `now`.
    fn pop_due(&self, now: Instant) -> Result<(K, Instant), Option<Instant>> {
        let mut s = self.lock();
        match s.by_time.first() {
            Some((at, _, _)) if *at <= now => {
                let (at, _, key) = s.by_time.pop_first().expect("first exists");
                s.by_key.remove(&key);
                Ok((key, at))
            }
            Some((at, _, _)) => Err(Some(*at)),
            None => Err(None),
        }
    }

    /// Wait for the earliest key to be due, remove it and return it with its
    /// deadline. One consumer at a time.
    pub async fn next(&self) -> (K, Instant) {
        loop {
            // Registered before looking, so an insert between the look and
            // the sleep still wakes us.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.pop_due(Instant::now()) {
                Ok(due) => return due,
                Err(Some(at)) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = woken => {}
                    }
                }
                Err(None) => woken.await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn keys_come_out_in_deadline_order_at_their_time() {
        let q = DeadlineQueue::new();
        let t0 = Instant::now();
        q.schedule("c", t0 + Duration::from_secs(30));
        q.schedule("a", t0 + Duration::from_secs(10));
        q.schedule("b", t0 + Duration::from_secs(20));
        for (key, secs) in [("a", 10), ("b", 20), ("c", 30)] {
            let (k, at) = q.next().await;
            assert_eq!((k, at), (key, t0 + Duration::from_secs(secs)));
            assert_eq!(Instant::now(), at, "popped exactly when due");
        }
        assert!(q.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn an_earlier_insert_wakes_the_sleeping_consumer() {
        let q = Arc::new(DeadlineQueue::new());
        let t0 = Instant::now();
        q.schedule("late", t0 + Duration::from_secs(3600));
        let consumer = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::time::sleep(Duration::from_secs(5)).await;
        q.schedule("early", t0 + Duration::from_secs(10));
        let (key, _) = consumer.await.unwrap();
        assert_eq!(key, "early");
        assert_eq!(Instant::now(), t0 + Duration::from_secs(10));
    }

    #[tokio::test(start_paused = true)]
    async fn rescheduling_moves_a_key_and_cancel_removes_it() {
        let q = DeadlineQueue::new();
        let t0 = Instant::now();
        q.schedule("a", t0 + Duration::from_secs(10));
        q.schedule("b", t0 + Duration::from_secs(20));
        q.schedule("a", t0 + Duration::from_secs(30));
        assert_eq!(q.len(), 2);
        assert_eq!(q.deadline(&"a"), Some(t0 + Duration::from_secs(30)));
        assert!(q.cancel(&"b"));
        assert!(!q.cancel(&"b"));
        assert_eq!(q.next().await, ("a", t0 + Duration::from_secs(30)));
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_queue_waits_for_the_first_insert() {
        let q = Arc::new(DeadlineQueue::new());
        let consumer = {
            let q = q.clone();
            tokio::spawn(async move { q.next().await })
        };
        tokio::time::sleep(Duration::from_secs(100)).await;
        assert!(!consumer.is_finished());
        q.schedule(1u32, Instant::now());
        assert_eq!(consumer.await.unwrap().0, 1);
    }
}
