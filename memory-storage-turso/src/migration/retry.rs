//! Which database errors are worth another try, and the backoff between
//! tries: the plumbing lives in [`crate::db`]; this module keeps the
//! engine's paths to it.

pub use crate::db::{
    backoff, classify, classify_error, exhausted, is_unauthorized, lost_remote_stream,
    on_connection, recover, sqlite_code, with_retries, ErrorClass,
};
