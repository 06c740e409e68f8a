//! SQLite's result codes, read from local and remote (Hrana) errors alike,
//! and which class of handling each calls for.

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
const SQLITE_ERROR: i32 = 1;
const SQLITE_PERM: i32 = 3;
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_INTERRUPT: i32 = 9;
const SQLITE_IOERR: i32 = 10;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_FULL: i32 = 13;
const SQLITE_SCHEMA: i32 = 17;
const SQLITE_TOOBIG: i32 = 18;
const SQLITE_CONSTRAINT: i32 = 19;
const SQLITE_MISMATCH: i32 = 20;
const SQLITE_AUTH: i32 = 23;
const SQLITE_NOTADB: i32 = 26;

/// The SQLite primary result code inside a libSQL error, if any. A remote
/// server reports SQL errors as text (`SQLITE_CONSTRAINT_PRIMARYKEY` from
/// sqld, or only SQLite's own message from simpler servers): the code is
/// read back from that text, so remote errors are handled as local ones.
pub fn sqlite_code(e: &libsql::Error) -> Option<i32> {
    match e {
        libsql::Error::SqliteFailure(code, _) => Some(code & 0xff),
        libsql::Error::RemoteSqliteFailure(code, _, _) => Some(code & 0xff),
        libsql::Error::Hrana(_) => match remote_failure(&e.to_string()) {
            RemoteFailure::Sql(text) => code_from_text(&text),
            _ => None,
        },
        _ => None,
    }
}

/// What went wrong with a request to a remote server, read from the
/// libSQL client's error text (its error types are private).
#[derive(Debug, Clone, PartialEq, Eq)]
enum RemoteFailure {
    /// The server ran the statement and SQLite refused it; the stream is
    /// intact. Holds the server's code and message.
    Sql(String),
    /// The request or its answer was lost (connection dropped or refused,
    /// a timeout, a 5xx, a truncated answer, a stream the server no longer
    /// knows): whether it ran is unknown, and the stream is unusable.
    Lost,
    /// The server refused the credentials (401/403).
    Refused,
    /// Anything else (a 4xx on a request we sent wrong, say).
    Other,
}

fn remote_failure(text: &str) -> RemoteFailure {
    let lower = text.to_lowercase();
    if lower.contains("stream error:") || lower.contains("error at step") {
        return RemoteFailure::Sql(text.to_string());
    }
    if let Some(status) = http_status(&lower) {
        return match status {
            401 | 403 => RemoteFailure::Refused,
            // The stream expired or its baton is stale: an answer was lost.
            400 if lower.contains("stream") || lower.contains("baton") => RemoteFailure::Lost,
            408 | 429 | 500..=599 => RemoteFailure::Lost,
            _ => RemoteFailure::Other,
        };
    }
    if [
        "http error:",
        "json error:",
        "unexpected response",
        "stream closed",
        "ended prematurely",
        "connection",
        "timed out",
        "timeout",
        "broken pipe",
        "reset by peer",
        "unavailable",
    ]
    .iter()
    .any(|w| lower.contains(w))
    {
        return RemoteFailure::Lost;
    }
    RemoteFailure::Other
}

/// The status of an `api error: status=NNN …`.
fn http_status(lower: &str) -> Option<u16> {
    let rest = &lower[lower.find("status=")? + "status=".len()..];
    rest.get(..3)?.parse().ok()
}

/// The primary code of a remote SQL error: from an `SQLITE_*` code name
/// if the server sent one, else from SQLite's standard message.
fn code_from_text(text: &str) -> Option<i32> {
    const NAMES: [(&str, i32); 15] = [
        ("SQLITE_BUSY", SQLITE_BUSY),
        ("SQLITE_LOCKED", SQLITE_LOCKED),
        ("SQLITE_READONLY", SQLITE_READONLY),
        ("SQLITE_INTERRUPT", SQLITE_INTERRUPT),
        ("SQLITE_IOERR", SQLITE_IOERR),
        ("SQLITE_CORRUPT", SQLITE_CORRUPT),
        ("SQLITE_FULL", SQLITE_FULL),
        ("SQLITE_SCHEMA", SQLITE_SCHEMA),
        ("SQLITE_TOOBIG", SQLITE_TOOBIG),
        ("SQLITE_CONSTRAINT", SQLITE_CONSTRAINT),
        ("SQLITE_MISMATCH", SQLITE_MISMATCH),
        ("SQLITE_AUTH", SQLITE_AUTH),
        ("SQLITE_NOTADB", SQLITE_NOTADB),
        ("SQLITE_PERM", SQLITE_PERM),
        ("SQLITE_ERROR", SQLITE_ERROR),
    ];
    if let Some((_, code)) = NAMES.iter().find(|(name, _)| text.contains(name)) {
        return Some(*code);
    }
    const MESSAGES: [(&str, i32); 10] = [
        ("database is locked", SQLITE_BUSY),
        ("database table is locked", SQLITE_LOCKED),
        ("constraint failed", SQLITE_CONSTRAINT),
        ("string or blob too big", SQLITE_TOOBIG),
        ("datatype mismatch", SQLITE_MISMATCH),
        ("database or disk is full", SQLITE_FULL),
        ("attempt to write a readonly database", SQLITE_READONLY),
        ("disk i/o error", SQLITE_IOERR),
        ("database disk image is malformed", SQLITE_CORRUPT),
        ("interrupted", SQLITE_INTERRUPT),
    ];
    let lower = text.to_lowercase();
    MESSAGES
        .iter()
        .find(|(m, _)| lower.contains(m))
        .map(|(_, code)| *code)
        // Any other SQL error the server ran into: a generic one.
        .or(Some(SQLITE_ERROR))
}

/// sqld's code for a statement of a transaction it rolled back because
/// another writer waited for it longer than its limit (about 5 s). sqld
/// keeps the stream and runs the *next* statements in autocommit.
const TRANSACTION_TIMEOUT: &str = "TRANSACTION_TIMEOUT";

/// A remote server's Hrana error code in `e` (`code: "…"` of its stream
/// error), when it is `code`.
fn has_remote_code(e: &libsql::Error, code: &str) -> bool {
    matches!(e, libsql::Error::Hrana(_))
        && remote_failure(&e.to_string()) != RemoteFailure::Other
        && e.to_string().contains(&format!("code: \"{code}\""))
}

/// Whether sqld rolled back the transaction this statement was part of
/// (another writer waited too long). Nothing of the transaction is
/// committed; the stream must be abandoned, since sqld would run the next
/// statements sent on it outside any transaction. Retrying (smaller) is
/// the way on.
pub fn transaction_timed_out(e: &libsql::Error) -> bool {
    has_remote_code(e, TRANSACTION_TIMEOUT)
}

/// Whether a remote server interrupted the statement. sqld interrupts
/// what its connection runs when an earlier request on the same stream
/// is cancelled (the `libsql` client drops a query's HTTP answer at its
/// last row, and sqld cancels that request, late at times), never for
/// anything the statement did. SQLite rolls back the transaction of an
/// interrupted write, so the stream must be abandoned, as after
/// [`transaction_timed_out`]; trying again is the way on.
fn interrupted_remotely(e: &libsql::Error) -> bool {
    matches!(e, libsql::Error::Hrana(_)) && sqlite_code(e) == Some(SQLITE_INTERRUPT)
}

/// Classifies a libSQL error.
pub fn classify(e: &libsql::Error) -> ErrorClass {
    if transaction_timed_out(e) || interrupted_remotely(e) {
        return ErrorClass::Transient;
    }
    match sqlite_code(e) {
        Some(SQLITE_BUSY | SQLITE_LOCKED) => ErrorClass::Transient,
        Some(SQLITE_TOOBIG | SQLITE_CONSTRAINT | SQLITE_MISMATCH) => ErrorClass::RowRejected,
        Some(_) => ErrorClass::Fatal,
        None => match e {
            libsql::Error::Hrana(_) => match remote_failure(&e.to_string()) {
                RemoteFailure::Lost => ErrorClass::Transient,
                _ => ErrorClass::Fatal,
            },
            libsql::Error::ConnectionFailed(_) => {
                let text = e.to_string().to_lowercase();
                if text.contains("locked")
                    || text.contains("busy")
                    || remote_failure(&text) == RemoteFailure::Lost
                {
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

/// Whether `e` says the remote server refused the auth token.
pub fn is_unauthorized(e: &libsql::Error) -> bool {
    matches!(e, libsql::Error::Hrana(_)) && remote_failure(&e.to_string()) == RemoteFailure::Refused
}

/// Whether `e` lost a request to a remote server (its answer, or the
/// stream it ran on), or left its stream unsafe to go on with (a
/// transaction the server timed out): the connection needs a fresh stream.
pub fn lost_remote_stream(e: &libsql::Error) -> bool {
    let lost = matches!(
        e,
        libsql::Error::Hrana(_) | libsql::Error::ConnectionFailed(_)
    ) && remote_failure(&e.to_string()) == RemoteFailure::Lost;
    lost || transaction_timed_out(e) || interrupted_remotely(e)
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

    fn hrana(text: &str) -> libsql::Error {
        libsql::Error::Hrana(text.to_string().into())
    }

    #[test]
    fn remote_errors_are_classified_like_local_ones() {
        // SQL errors the server ran into: sqld's codes, or only SQLite's message.
        let sql = |code: &str, message: &str| {
            hrana(&format!(
                "stream error: `Error {{ message: \"{message}\", code: \"{code}\" }}`"
            ))
        };
        let e = sql(
            "SQLITE_CONSTRAINT_PRIMARYKEY",
            "UNIQUE constraint failed: t.id",
        );
        assert_eq!(sqlite_code(&e), Some(SQLITE_CONSTRAINT));
        assert_eq!(classify(&e), ErrorClass::RowRejected);
        let e = sql("CONSTRAINT_VIOLATION", "NOT NULL constraint failed: t.x");
        assert_eq!(classify(&e), ErrorClass::RowRejected);
        assert_eq!(
            classify(&sql("UNKNOWN", "database is locked")),
            ErrorClass::Transient
        );
        assert_eq!(classify(&sql("SQLITE_BUSY", "busy")), ErrorClass::Transient);
        assert_eq!(
            sqlite_code(&sql("SQLITE_FULL", "database or disk is full")),
            Some(13)
        );
        assert_eq!(
            sqlite_code(&sql("UNKNOWN", "attempt to write a readonly database")),
            Some(8)
        );
        let e = sql("SQL_PARSE_ERROR", "no such function: libsql_vector_idx");
        assert_eq!(sqlite_code(&e), Some(SQLITE_ERROR));
        assert_eq!(
            classify(&e),
            ErrorClass::Fatal,
            "not retried as if the stream were lost"
        );
        assert!(!lost_remote_stream(&e));

        // Lost requests and streams: retried, on a fresh stream.
        for text in [
            "http error: `connection closed before message completed`",
            "http error: `error trying to connect: tcp connect error: Connection refused (os error 111)`",
            "api error: `status=500 Internal Server Error, body={}`",
            "api error: `status=503 Service Unavailable, body=`",
            "api error: `status=400 Bad Request, body={\"error\":\"The stream has expired due to inactivity\"}`",
            "json error: `EOF while parsing a value at line 1 column 0`",
            "cursor error: `cursor stream ended prematurely`",
        ] {
            let e = hrana(text);
            assert_eq!(classify(&e), ErrorClass::Transient, "{text}");
            assert!(lost_remote_stream(&e), "{text}");
            assert_eq!(sqlite_code(&e), None, "{text}");
        }
        // sqld's transaction timeout: retried on a fresh stream (the old
        // one would run what follows outside any transaction).
        let e = sql("TRANSACTION_TIMEOUT", "Transaction timed out");
        assert_eq!(classify(&e), ErrorClass::Transient);
        assert!(transaction_timed_out(&e) && lost_remote_stream(&e));
        assert!(!transaction_timed_out(&sql(
            "SQLITE_ERROR",
            "no such column: TRANSACTION_TIMEOUT"
        )));
        // sqld interrupted the statement (an earlier request on the stream
        // was cancelled): retried on a fresh stream, the transaction being
        // rolled back. A local interrupt is no one's but the caller's.
        let e = sql("SQLITE_INTERRUPT", "interrupted");
        assert_eq!(classify(&e), ErrorClass::Transient);
        assert!(lost_remote_stream(&e));
        let local = libsql::Error::SqliteFailure(SQLITE_INTERRUPT, "interrupted".into());
        assert_eq!(classify(&local), ErrorClass::Fatal);
        assert!(!lost_remote_stream(&local));
        assert_eq!(
            classify(&sql("RESPONSE_TOO_LARGE", "Response is too large")),
            ErrorClass::Fatal
        );

        // A refused token is final, and said so.
        let e = hrana("api error: `status=401 Unauthorized, body={}`");
        assert_eq!(classify(&e), ErrorClass::Fatal);
        assert!(is_unauthorized(&e));
        assert_eq!(
            classify(&hrana("api error: `status=404 Not Found, body=`")),
            ErrorClass::Fatal
        );
    }
}
