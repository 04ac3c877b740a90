//! Panics in the daemon's tasks: caught where the task is awaited, logged
//! with the job it served, counted in `rotator_task_panics_total`, and, by
//! that same counter, turning `/readyz` unready for good.
//!
//! Why catch them at all: a panic unwinding out of a rotation skips the code
//! that releases the job, so the job would stay "rotating" (every manual
//! rotation refused) while `/healthz` still says ok; a panic in a renewal
//! loop would end renewals without a word. A panic is a bug in rotator, not
//! bad input, so the daemon keeps serving every other job, but it stops
//! claiming to be ready so that an orchestrator, or a person, notices.
//!
//! [`catch`] wraps one future (a rotation, an API handler); [`task`] wraps a
//! whole background loop. Both run the future in place, so the caller
//! decides what "released" means (the scheduler clears the job's running
//! flag and books a failure).

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

use futures_util::FutureExt;

use crate::metrics::Metrics;

/// At most this much of a panic's message reaches the log.
const MAX_MESSAGE: usize = 512;

/// A task panicked; its message is in the daemon's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the {task} task panicked (a bug in rotator; its message is in the daemon's log)")]
pub struct Panicked {
    /// Which kind of task: `rotation`, `api`, `token-renewal`, …
    pub task: &'static str,
}

/// Run `fut` to its end; if it panics, record the panic (for `job`, if it
/// served one) and return [`Panicked`] instead of unwinding further.
///
/// Unwind safety is asserted, not proven: the state a panicking future may
/// leave half-changed sits behind mutexes that every user reads through
/// poisoning (`unwrap_or_else(|p| p.into_inner())`), and the caller resets
/// what the task owned (the scheduler re-reads the job's record).
pub async fn catch<F: Future>(
    metrics: &Metrics,
    task: &'static str,
    job: Option<&str>,
    fut: F,
) -> Result<F::Output, Panicked> {
    match AssertUnwindSafe(fut).catch_unwind().await {
        Ok(out) => Ok(out),
        Err(payload) => Err(record(metrics, task, job, &*payload)),
    }
}

/// A background loop that ends (rather than unwinds) if it panics, with the
/// panic recorded. The loop is not restarted: its state is unknown, and the
/// daemon reports itself unready instead.
pub async fn task<F: Future<Output = ()>>(metrics: Metrics, name: &'static str, fut: F) {
    let _ = catch(&metrics, name, None, fut).await;
}

/// Log and count a panic whose payload was caught elsewhere (e.g. from a
/// `JoinError`).
pub fn record(metrics: &Metrics, task: &'static str, job: Option<&str>, payload: &(dyn Any + Send)) -> Panicked {
    metrics.task_panic(task);
    let message = message(payload);
    tracing::error!(task, job, panic = %message, "a daemon task panicked; the daemon now reports itself not ready");
    Panicked { task }
}

/// The panic's message (`panic!("…")` gives a `&str` or a `String`), cut to
/// [`MAX_MESSAGE`] bytes on a character boundary.
fn message(payload: &(dyn Any + Send)) -> String {
    let text = match (payload.downcast_ref::<&str>(), payload.downcast_ref::<String>()) {
        (Some(s), _) => s,
        (None, Some(s)) => s.as_str(),
        (None, None) => "(a panic without a message)",
    };
    if text.len() <= MAX_MESSAGE {
        return text.to_owned();
    }
    let end = (0..=MAX_MESSAGE).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
    format!("{}…[truncated {} bytes]", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The injectable panic point: a future that panics when polled, the
    /// way a bug deep inside a rotation would.
    async fn bug(message: String) -> u32 {
        tokio::task::yield_now().await;
        panic!("{message}");
    }

    #[tokio::test]
    async fn a_panicking_task_is_caught_counted_and_named() {
        let metrics = Metrics::new();
        assert_eq!(catch(&metrics, "rotation", Some("job-a"), async { 7 }).await, Ok(7));
        assert_eq!(metrics.task_panics(), 0);

        let caught = catch(&metrics, "rotation", Some("job-a"), bug("overflow adding duration".into())).await;
        assert_eq!(caught, Err(Panicked { task: "rotation" }));
        task(metrics.clone(), "token-renewal", async {
            bug("renewal bug".into()).await;
        })
        .await;
        assert_eq!(metrics.task_panics(), 2);
        let text = metrics.render();
        assert!(text.contains("rotator_task_panics_total{task=\"rotation\"} 1\n"), "{text}");
        assert!(text.contains("rotator_task_panics_total{task=\"token-renewal\"} 1\n"), "{text}");
    }

    #[test]
    fn messages_are_bounded_on_a_character_boundary() {
        assert_eq!(message(&"short"), "short");
        assert_eq!(message(&String::from("owned")), "owned");
        assert_eq!(message(&42_u8), "(a panic without a message)");
        let long = "é".repeat(MAX_MESSAGE);
        let cut = message(&long);
        assert!(cut.ends_with(&format!("…[truncated {} bytes]", MAX_MESSAGE)), "{cut}");
        assert!(cut.len() < MAX_MESSAGE + 40);
    }
}
