//! Retries with backoff, and the renewal of a lost remote stream: an
//! explicit step of the retry, never a side effect of classifying an error.

use std::future::Future;
use std::time::Duration;

use libsql::Connection;

use super::codes::{classify, lost_remote_stream, ErrorClass};
use crate::error::Error;

tokio::task_local! {
    /// The connection of the migration running in this task.
    static RUN_CONNECTION: Connection;
}

/// Runs `body` (a migration on `conn`) so that its retries can recover a
/// remote connection: after a lost request, [`recover`] gives `conn` a
/// fresh Hrana stream. (The libSQL client keeps sending the
/// stream's old baton after a lost answer, which the server refuses for
/// good; the abandoned stream's open transaction is rolled back by the
/// server when it expires, and the retry waits for its lock.)
pub async fn on_connection<F: Future>(conn: &Connection, body: F) -> F::Output {
    RUN_CONNECTION.scope(conn.clone(), body).await
}

/// Gives the running migration's connection a fresh stream (the next
/// request opens one). No request is in flight on it when a failure is
/// being classified, so the client's stream lock is free and the reset
/// completes at its first poll; if it were not, nothing is done and the
/// next retry tries again.
fn renew_stream() {
    let _ = RUN_CONNECTION.try_with(|conn| {
        let mut reset = std::pin::pin!(conn.reset());
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        let done = reset.as_mut().poll(&mut cx).is_ready();
        tracing::debug!(done, "the remote stream was lost: starting a new one");
    });
}

/// Gives a remote connection a fresh stream after a pass that went
/// through the migration's own Hrana pipeline (`connect::pipeline`): the
/// connection sat idle meanwhile, and sqld expires a stream idle for 10 s,
/// so its next request would be refused — at the end of a run, in steps
/// no retry covers. The new stream is opened by that next request (no
/// extra round trip). No transaction may be open on `conn`; a local
/// connection is left as it is.
pub async fn renew_idle_stream(conn: &Connection) {
    conn.reset().await;
}

/// An error a retry loop can judge: whether another try may succeed, the
/// step that makes it possible, and the error to report once tries run out.
pub trait Transient: Sized + std::fmt::Display {
    /// How this failure should be handled.
    fn class(&self) -> ErrorClass;
    /// The step before retrying: when the failure lost a remote stream,
    /// the connection given to [`on_connection`] gets a fresh one, so the
    /// retry can succeed. Every retry loop calls it.
    fn recover(&self);
    /// The error to report once a transient failure outlasted every retry.
    fn exhausted(self, attempts: u32) -> Self;
}

impl Transient for Error {
    /// Only database errors can be transient.
    fn class(&self) -> ErrorClass {
        match self {
            Error::Database { source, .. } => classify(source),
            _ => ErrorClass::Fatal,
        }
    }

    fn recover(&self) {
        if let Error::Database { source, .. } = self {
            if lost_remote_stream(source) {
                renew_stream();
            }
        }
    }

    fn exhausted(self, attempts: u32) -> Self {
        match self {
            Error::Database { context, source } => Error::Busy {
                context,
                attempts,
                source,
            },
            other => other,
        }
    }
}

/// Runs `step` until it succeeds, retrying transient errors (with
/// backoff) at most `max_retries` times. `step` must leave nothing half
/// done when it fails (one statement, or one transaction rolled back).
pub async fn with_retries<T, E, F, Fut>(max_retries: u32, mut step: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if e.class() == ErrorClass::Transient => {
                if attempt >= max_retries {
                    return Err(e.exhausted(attempt + 1));
                }
                e.recover();
                attempt += 1;
                let wait = backoff(attempt);
                tracing::warn!(
                    "{e}; retrying in {} ms (attempt {attempt} of {max_retries})",
                    wait.as_millis()
                );
                tokio::time::sleep(wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Exponential backoff with jitter: 50 ms × 2^attempt, capped at 5 s, then
/// a random 50–100% of that (so two waiting writers do not collide again).
pub fn backoff(attempt: u32) -> Duration {
    let base_ms = (50u64 << attempt.min(7)).min(5_000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos() as u64);
    let mut x = nanos ^ (u64::from(std::process::id()) << 17) ^ u64::from(attempt);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    let jitter = 500 + x % 501; // per mille
    Duration::from_millis(base_ms * jitter / 1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hrana(text: &str) -> libsql::Error {
        libsql::Error::Hrana(text.to_string().into())
    }

    #[tokio::test]
    async fn a_lost_stream_renews_the_run_connection_and_nothing_else() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        let lost = Error::Database {
            context: "x".into(),
            source: hrana("http error: `connection closed before message completed`"),
        };
        // Outside a run there is no connection to renew: still transient.
        assert_eq!(lost.class(), ErrorClass::Transient);
        lost.recover();
        on_connection(&conn, async { lost.recover() }).await;
        conn.query("SELECT 1", ()).await.unwrap();
    }

    #[test]
    fn backoff_grows_and_stays_bounded() {
        for attempt in 0..20 {
            let d = backoff(attempt);
            let base = (50u64 << attempt.min(7)).min(5_000);
            assert!(d.as_millis() as u64 >= base / 2, "{attempt}: {d:?}");
            assert!(d.as_millis() as u64 <= base, "{attempt}: {d:?}");
        }
        assert!(backoff(6) > backoff(0));
    }
}
