//! Watching the daemon: the live feed (`GET /events`, server-sent events)
//! and Prometheus metrics (`GET /metrics`).
//!
//! The feed carries every rotation step (`event: rotation`, a
//! [`RotationEvent`](rotator_core::rotation::RotationEvent)) and every lease change
//! (`event: lease`): ids, steps, outcomes and timings, never values. A slow
//! reader that falls behind gets `event: lagged` with the number of events
//! it missed, rather than holding the daemon up. Streams end when the daemon
//! shuts down, so open dashboards never delay a shutdown.

use std::convert::Infallible;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::Stream;
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::ApiState;
use rotator_core::metrics::JobGauges;
use rotator_core::vault::leases::LeaseEvent;

pub(super) async fn events(State(state): State<Arc<ApiState>>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let feeds = (state.scheduler.subscribe(), state.leases.subscribe(), state.shutdown.clone());
    let stream = futures_util::stream::unfold(feeds, |(mut rotations, mut leases, mut stop)| async move {
        let event = tokio::select! {
            e = rotations.recv() => match e {
                Ok(e) => Event::default().event("rotation").json_data(&e).ok()?,
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
    Sse::new(stream).keep_alive(KeepAlive::default())
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
