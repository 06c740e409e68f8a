//! The safety copies: `embeddings_backup` (same schema, same rows, verified
//! by count and a checksum over every row) and, for a local file, a
//! consistent copy of the whole database (`VACUUM INTO`).

use std::path::Path;

use libsql::{Connection, Value};
use serde::Serialize;
use xxhash_rust::xxh3::Xxh3;

use super::metadata;
use super::row::Key;
use super::scan::{read_rows, Limits};
use crate::error::{DbContext, Error, Result};
use crate::schema::{table_columns, BACKUP_TABLE, LEGACY_TABLE};

/// Row count and order-sensitive checksum of a table's rows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableDigest {
    pub rows: u64,
    /// XXH3-128 over every column of every row, in key order, hex.
    pub checksum: String,
}

fn hash_value(h: &mut Xxh3, v: &Value) {
    match v {
        Value::Null => h.update(&[0]),
        Value::Integer(i) => {
            h.update(&[1]);
            h.update(&i.to_le_bytes());
        }
        Value::Real(r) => {
            h.update(&[2]);
            h.update(&r.to_bits().to_le_bytes());
        }
        Value::Text(s) => {
            h.update(&[3]);
            h.update(&(s.len() as u64).to_le_bytes());
            h.update(s.as_bytes());
        }
        Value::Blob(b) => {
            h.update(&[4]);
            h.update(&(b.len() as u64).to_le_bytes());
            h.update(b);
        }
    }
}

/// Adds one row (every column, type-tagged) to a digest.
pub fn hash_row(h: &mut Xxh3, r: &super::row::EmbeddingRow) {
    for v in [
        &r.key.0,
        &r.item_id,
        &r.item_type,
        &r.embedding_data,
        &r.embedding_vector,
        &r.dimension,
        &r.model,
        &r.created_at,
    ] {
        hash_value(h, v);
    }
}

/// Reads every row of a legacy-shaped table (`embeddings` or its backup)
/// in key order and digests it. Memory stays flat (keyset pages).
pub async fn digest(conn: &Connection, table: &'static str) -> Result<TableDigest> {
    let has_vector = table_columns(conn, table)
        .await?
        .iter()
        .any(|c| c == "embedding_vector");
    let vector_col = if has_vector {
        "embedding_vector"
    } else {
        "NULL"
    };
    let mut h = Xxh3::new();
    let mut rows = 0u64;
    let mut after: Option<Key> = None;
    let limits = Limits {
        rows: 1000,
        bytes: 16 << 20,
    };
    loop {
        let (page, cut) =
            read_rows(conn, table, vector_col, after.as_ref(), None, Some(limits)).await?;
        for r in &page {
            hash_row(&mut h, r);
        }
        rows += page.len() as u64;
        match (cut, page.last()) {
            (true, Some(last)) => after = Some(last.key.clone()),
            _ => break,
        }
    }
    Ok(TableDigest {
        rows,
        checksum: format!("{:032x}", h.digest128()),
    })
}

/// `CREATE TABLE <name> (…)` with the columns and constraints of the
/// legacy table as it was created.
fn create_like(legacy_sql: &str, name: &str) -> Option<String> {
    let open = legacy_sql.find('(')?;
    Some(format!("CREATE TABLE {name} {}", &legacy_sql[open..]))
}

/// The CREATE statements of the legacy table and its indexes.
pub async fn legacy_schema(conn: &Connection) -> Result<Vec<String>> {
    let ctx = || format!("reading the schema of {LEGACY_TABLE}");
    let mut rows = conn
        .query(
            "SELECT sql FROM sqlite_master WHERE tbl_name = ?1 AND type IN ('table', 'index') AND sql IS NOT NULL ORDER BY type DESC, rowid",
            [LEGACY_TABLE],
        )
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.push(row.get::<String>(0).db_context(ctx)?);
    }
    Ok(out)
}

/// What the backup step did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// `created`, `verified` (an earlier backup, still intact) or `refreshed`.
    pub status: String,
    pub digest: TableDigest,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
}

/// Makes (or re-makes) `embeddings_backup` inside the caller's write
/// transaction and proves it equal to the legacy table. Records its digest
/// and the legacy schema in `metadata`.
pub async fn make_backup_table(conn: &Connection) -> Result<TableDigest> {
    let ctx = || format!("copying {LEGACY_TABLE} to {BACKUP_TABLE}");
    let schema = legacy_schema(conn).await?;
    let table_sql = schema
        .first()
        .and_then(|sql| create_like(sql, BACKUP_TABLE))
        .ok_or(Error::MissingLegacyTable)?;
    conn.execute(&format!("DROP TABLE IF EXISTS {BACKUP_TABLE}"), ())
        .await
        .db_context(ctx)?;
    conn.execute(&table_sql, ()).await.db_context(ctx)?;
    conn.execute(
        &format!("INSERT INTO {BACKUP_TABLE} SELECT * FROM {LEGACY_TABLE}"),
        (),
    )
    .await
    .db_context(ctx)?;
    let original = digest(conn, LEGACY_TABLE).await?;
    let copy = digest(conn, BACKUP_TABLE).await?;
    if original != copy {
        return Err(Error::BackupMismatch {
            expected: original,
            found: copy,
        });
    }
    metadata::set(conn, metadata::BACKUP_ROWS, &copy.rows.to_string()).await?;
    metadata::set(conn, metadata::BACKUP_CHECKSUM, &copy.checksum).await?;
    metadata::set(
        conn,
        metadata::LEGACY_SCHEMA,
        &serde_json::to_string(&schema).unwrap_or_default(),
    )
    .await?;
    Ok(copy)
}

/// The digest recorded when the backup was made, if any.
pub async fn recorded_digest(conn: &Connection) -> Result<Option<TableDigest>> {
    let rows = metadata::get(conn, metadata::BACKUP_ROWS).await?;
    let checksum = metadata::get(conn, metadata::BACKUP_CHECKSUM).await?;
    Ok(match (rows.and_then(|r| r.parse().ok()), checksum) {
        (Some(rows), Some(checksum)) => Some(TableDigest { rows, checksum }),
        _ => None,
    })
}

/// Proves `embeddings_backup` still holds what was recorded when it was made.
pub async fn verify_backup_table(conn: &Connection) -> Result<TableDigest> {
    let Some(expected) = recorded_digest(conn).await? else {
        return Err(Error::BackupUnverifiable);
    };
    if !crate::schema::object_exists(conn, BACKUP_TABLE).await? {
        return Err(Error::BackupUnverifiable);
    }
    let found = digest(conn, BACKUP_TABLE).await?;
    if found != expected {
        return Err(Error::BackupMismatch { expected, found });
    }
    Ok(found)
}

/// Writes a consistent copy of the whole local database to `path`
/// (`VACUUM INTO`), refusing to overwrite anything.
pub async fn backup_file(conn: &Connection, path: &Path) -> Result<()> {
    if path.exists() {
        return Err(Error::BackupFileExists {
            path: path.to_path_buf(),
        });
    }
    let target = path.to_string_lossy().to_string();
    conn.execute("VACUUM INTO ?1", [target.as_str()])
        .await
        .db_context(|| format!("writing the database copy to {target}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backup_table_copies_the_legacy_columns_and_constraints() {
        let sql = "CREATE TABLE IF NOT EXISTS embeddings (\n    embedding_id TEXT PRIMARY KEY NOT NULL,\n    x INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))\n)";
        assert_eq!(
            create_like(sql, "embeddings_backup").unwrap(),
            "CREATE TABLE embeddings_backup (\n    embedding_id TEXT PRIMARY KEY NOT NULL,\n    x INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))\n)"
        );
        assert_eq!(
            create_like("CREATE TABLE \"embeddings\"(a)", "b").unwrap(),
            "CREATE TABLE b (a)"
        );
    }
}
