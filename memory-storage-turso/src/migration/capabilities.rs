//! What the server can do, probed before a run writes anything: a plain
//! SQLite server (or an old libSQL) has no vector functions, so the DiskANN
//! indexes cannot be built there.

use libsql::Connection;

use super::error::{MigrateError, Result};
use crate::error::DbContext;

/// Whether the database has libSQL's vector functions (`vector32`, and
/// with it `libsql_vector_idx`).
pub async fn has_vector_functions(conn: &Connection) -> crate::Result<bool> {
    match conn.query("SELECT vector32('[1]')", ()).await {
        Ok(mut rows) => match rows.next().await {
            Ok(_) => Ok(true),
            Err(e) if is_missing_function(&e) => Ok(false),
            Err(e) => Err(e).db_context(|| "probing for vector functions".to_string()),
        },
        Err(e) if is_missing_function(&e) => Ok(false),
        Err(e) => Err(e).db_context(|| "probing for vector functions".to_string()),
    }
}

fn is_missing_function(e: &libsql::Error) -> bool {
    e.to_string().contains("no such function")
}

/// Stops a run that would build vector indexes on a database without
/// vector functions, before anything is written.
pub async fn require_vector_functions(conn: &Connection, build_indexes: bool) -> Result<()> {
    if build_indexes && !has_vector_functions(conn).await? {
        return Err(MigrateError::NoVectorFunctions);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn libsql_has_vector_functions() {
        let t = test_support::TestDb::empty().await;
        let conn = t.conn.clone();
        assert!(has_vector_functions(&conn).await.unwrap());
        require_vector_functions(&conn, true).await.unwrap();
    }
}
