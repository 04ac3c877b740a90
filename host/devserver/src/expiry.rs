//! The expiry task: revokes tokens and leases whose time is up.
//!
//! Requests already refuse an expired token, but Vault also *revokes* it
//! (and its children and leases) when it expires, and revokes expired
//! leases in the engine that issued them. This task does that, as a
//! deadline queue: it sleeps until the earliest expiry in the state, or
//! until [`super::State::wake`] says something new may expire sooner,
//! revokes what is due (running revocations with the lock released), and
//! goes back to sleep. A failed lease revocation is retried with backoff by
//! the lease table.

use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;

use super::Shared;
use super::leases::run_revocations;

/// The longest nap: nothing is lost by waking up needlessly.
const MAX_SLEEP: Duration = Duration::from_secs(3600);
/// The shortest nap, so a deadline at "now" cannot spin.
const MIN_SLEEP: Duration = Duration::from_millis(5);

/// Run until aborted (the server aborts it when it stops).
pub(crate) async fn run(shared: Arc<Shared>) {
    loop {
        let (pending, next) = {
            let mut state = shared.lock();
            let now = OffsetDateTime::now_utc();
            let mut pending = Vec::new();
            for id in state.tokens.expired(now) {
                pending.extend(state.revoke_token_tree(&id));
            }
            pending.extend(state.leases.begin_revoke_expired(now));
            let next = [state.tokens.next_expiry(), state.leases.next_deadline()].into_iter().flatten().min();
            (pending, next.map(|at| at - now))
        };
        if !pending.is_empty() {
            tracing::debug!(count = pending.len(), "vault dev server: revoking expired leases");
            run_revocations(Arc::clone(&shared), pending, false).await;
            continue;
        }
        let nap = match next {
            Some(left) => Duration::try_from(left).unwrap_or(Duration::ZERO).clamp(MIN_SLEEP, MAX_SLEEP),
            None => MAX_SLEEP,
        };
        tokio::select! {
            _ = tokio::time::sleep(nap) => {}
            _ = shared.wake.notified() => {}
        }
    }
}
