//! Which database errors are worth another try, and the backoff between
//! tries.

use std::time::Duration;

use crate::error::Error;

/// How a database error should be handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Busy, locked, a dropped connection: roll back, wait, try again.
    Transient,
    /// The database refused one row (a constraint, a value too big): that
    /// row is quarantined and the batch retried without it.
    RowRejected,
    /// Disk full, read-only, corrupt, schema changed: stop.
    Fatal,
}

// SQLite primary result codes.
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_TOOBIG: i32 = 18;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_MISMATCH: i32 = 20;

/// The SQLite primary result code inside a libSQL error, if any.
pub fn sqlite_code(e: &libsql::Error) -> Option<i32> {
    match e {
        libsql::Error::SqliteFailure(code, _) => Some(code & 0xff),
        libsql::Error::RemoteSqliteFailure(code, _, _) => Some(code & 0xff),
        _ => None,
    }
}

/// Classifies a libSQL error.
pub fn classify(e: &libsql::Error) -> ErrorClass {
    match sqlite_code(e) {
        Some(SQLITE_BUSY | SQLITE_LOCKED) => ErrorClass::Transient,
        Some(SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH) => ErrorClass::RowRejected,
        Some(_) => ErrorClass::Fatal,
        None => match e {
            libsql::Error::ConnectionFailed(_) | libsql::Error::Hrana(_) => {
                let text = e.to_string().to_lowercase();
                if text.contains("locked") || text.contains("busy") || is_network_text(&text) {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Fatal
                }
            }
            _ => {
                let text = e.to_string().to_lowercase();
                if text.contains("database is locked") || text.contains("sqlite_busy") {
                    ErrorClass::Transient
                } else {
                    ErrorClass::Fatal
                }
            }
        },
    }
}

fn is_network_text(text: &str) -> bool {
    [
        "connection",
        "timed out",
        "timeout",
        "broken pipe",
        "reset by peer",
        "stream",
        "503",
        "502",
        "unavailable",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// Classifies one of our errors (only database errors can be transient).
pub fn classify_error(e: &Error) -> ErrorClass {
    match e {
        Error::Database { source, .. } => classify(source),
        _ => ErrorClass::Fatal,
    }
}

/// The error to report once a transient error outlasted every retry.
pub fn exhausted(error: Error, attempts: u32) -> Error {
    match error {
        Error::Database { context, source } => Error::Busy {
            context,
            attempts,
            source,
        },
        other => other,
    }
}

/// Runs `step` until it succeeds, retrying transient errors (with
/// backoff) at most `max_retries` times. `step` must leave nothing half
/// done when it fails (one statement, or one transaction rolled back).
pub async fn with_retries<T, F, Fut>(max_retries: u32, mut step: F) -> Result<T, Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Error>>,
{
    let mut attempt = 0;
    loop {
        match step().await {
            Ok(v) => return Ok(v),
            Err(e) if classify_error(&e) == ErrorClass::Transient => {
                if attempt >= max_retries {
                    return Err(exhausted(e, attempt + 1));
                }
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

    #[test]
    fn busy_and_locked_are_transient_constraint_rejects_a_row_full_is_fatal() {
        let e = |code| libsql::Error::SqliteFailure(code, "x".into());
        assert_eq!(classify(&e(5)), ErrorClass::Transient);
        assert_eq!(classify(&e(6)), ErrorClass::Transient);
        assert_eq!(classify(&e(5 | (2 << 8))), ErrorClass::Transient); // SQLITE_BUSY_SNAPSHOT
        assert_eq!(classify(&e(19 | (5 << 8))), ErrorClass::RowRejected);
        assert_eq!(classify(&e(13)), ErrorClass::Fatal); // SQLITE_FULL
        assert_eq!(classify(&e(8)), ErrorClass::Fatal); // SQLITE_READONLY
        assert_eq!(
            classify(&libsql::Error::ConnectionFailed(
                "connection reset by peer".into()
            )),
            ErrorClass::Transient
        );
        assert_eq!(
            classify(&libsql::Error::RemoteSqliteFailure(
                5,
                5,
                "database is locked".into()
            )),
            ErrorClass::Transient
        );
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
