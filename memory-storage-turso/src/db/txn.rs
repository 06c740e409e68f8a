//! One write transaction around a piece of work.

use libsql::Connection;

use crate::error::{DbContext, Error};

/// Runs `body` inside `BEGIN IMMEDIATE` … `COMMIT`, rolling back when it
/// fails.
pub async fn in_transaction<T, E: From<Error>>(
    conn: &Connection,
    what: &'static str,
    body: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    conn.execute("BEGIN IMMEDIATE", ())
        .await
        .db_context(|| what.to_string())?;
    match body.await {
        Ok(v) => {
            conn.execute("COMMIT", ())
                .await
                .db_context(|| what.to_string())?;
            Ok(v)
        }
        Err(e) => {
            let _ = conn.execute("ROLLBACK", ()).await;
            Err(e)
        }
    }
}
