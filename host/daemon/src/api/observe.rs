//! Watching the daemon: the live feed (`GET /events`, server-sent events)
//! and Prometheus metrics (`GET /metrics`).
//!
//! The feed carries every rotation step (`event: rotation`, a
//! [`FeedEvent`]: the [`RotationEvent`](rotator_core::rotation::RotationEvent)
//! with its number `seq`, also the frame's `id`, and its time `at`) and
//! every lease change (`event: lease`): ids, steps, outcomes and timings,
//! never values. With `?recent=N` (at most [`BACKLOG_EVENTS`]) the stream
//! starts with up to N of the most recent rotation events the daemon kept
//! (the scheduler's bounded [`feed`](crate::scheduler::feed)), so a page
//! opened now shows the recent past, followed by `event: backlog` whose
//! data is how many there were (where the live events begin); with a
//! `Last-Event-ID` header only those after that number, so a watcher that
//! reconnects gets exactly what it missed. A slow reader that falls behind gets `event: lagged` with the
//! number of events it missed, rather than holding the daemon up. Streams
//! end when the daemon shuts down, so open dashboards never delay a shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::error::QueryParams;
use super::{ApiError, ApiState};
use crate::scheduler::feed::{BACKLOG_EVENTS, FeedEvent};
use rotator_core::metrics::JobGauges;
use rotator_core::vault::leases::LeaseEvent;

/// `GET /events?recent=N`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventsQuery {
    /// How many recent rotation events to send first (default none).
    #[serde(default)]
    recent: usize,
}

pub(super) async fn events(
    State(state): State<Arc<ApiState>>,
    QueryParams(query): QueryParams<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    if query.recent > BACKLOG_EVENTS {
        return Err(ApiError::bad_request(format!("recent: at most {BACKLOG_EVENTS}")));
    }
    let after = match headers.get("last-event-id") {
        None => None,
        Some(v) => Some(
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| ApiError::bad_request("Last-Event-ID: not an event number from this feed"))?,
        ),
    };
    let (backlog, rotations) = state.scheduler.feed().subscribe(after, query.recent);
    // Asked for the recent past: it ends with a marker saying how much it was.
    let end = (query.recent > 0).then(|| Event::default().event("backlog").data(backlog.len().to_string()));
    let backlog = futures_util::stream::iter(backlog)
        .filter_map(|e| async move { rotation(&e) })
        .chain(futures_util::stream::iter(end))
        .map(Ok);
    let feeds = (rotations, state.leases.subscribe(), state.shutdown.clone());
    let live = futures_util::stream::unfold(feeds, |(mut rotations, mut leases, mut stop)| async move {
        let event = tokio::select! {
            e = rotations.recv() => match e {
                Ok(e) => rotation(&e)?,
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            },
            e = leases.recv() => match e {
                Ok(e) => Event::default().event("lease").json_data(lease_json(&e)).ok()?,
                Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
                Err(RecvError::Closed) => return None,
            },
            _ = stop.wait_for(|s| *s) => return None,
        };
        Some((Ok(event), (rotations, leases, stop)))
    });
    Ok(Sse::new(backlog.chain(live)).keep_alive(KeepAlive::default()))
}

/// A rotation event as a frame, numbered so a reader can resume after it.
fn rotation(e: &FeedEvent) -> Option<Event> {
    Event::default().event("rotation").id(e.seq.to_string()).json_data(e).ok()
}

/// A lease event as the feed shows it.
fn lease_json(e: &LeaseEvent) -> Value {
    match e {
        LeaseEvent::Tracked { path, lease_id, ttl } => {
            json!({"kind": "tracked", "path": path, "lease_id": lease_id, "ttl_seconds": ttl.as_secs()})
        }
        LeaseEvent::Renewed { path, lease_id, ttl, capped } => json!({
            "kind": "renewed", "path": path, "lease_id": lease_id, "ttl_seconds": ttl.as_secs(), "capped": capped
        }),
        LeaseEvent::Refetched { path, old_lease_id, new_lease_id, ttl } => json!({
            "kind": "refetched", "path": path, "lease_id": new_lease_id, "old_lease_id": old_lease_id,
            "ttl_seconds": ttl.as_secs()
        }),
        LeaseEvent::Dropped { path, lease_id, reason } => {
            json!({"kind": "dropped", "path": path, "lease_id": lease_id, "reason": reason})
        }
        LeaseEvent::Revoked { path, lease_id } => json!({"kind": "revoked", "path": path, "lease_id": lease_id}),
    }
}

pub(super) async fn metrics(State(state): State<Arc<ApiState>>) -> Response {
    // Gauges are read at scrape time; counters are kept as things happen.
    let m = &state.metrics;
    let jobs = state.jobs.views();
    m.set_jobs(jobs.iter().map(|job| JobGauges {
        id: &job.id,
        needs_attention: job.needs_attention,
        last_success: job.last_rotation,
    }));
    m.set_leases(state.leases.list().len());
    let now = tokio::time::Instant::now();
    if let Some(budget) = state.token.read().unwrap_or_else(|p| p.into_inner()).budget(now) {
        m.set_token_ttl(budget);
    }
    ([(header::CONTENT_TYPE, rotator_core::metrics::CONTENT_TYPE)], m.render()).into_response()
}
