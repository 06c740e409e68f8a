//! The safety copies: the backup table (`embeddings_backup` or the one
//! `--backup-table` names; same schema, same rows, verified by count and a
//! checksum over every row) and, for a local file, a consistent copy of the
//! whole database (`VACUUM INTO`). A table of the backup's name that the
//! migration did not make is never replaced or appended to ([`owner`]).

mod name;
pub mod owner;

pub use name::BackupTableName;
pub use owner::{check_backup_table, recorded_name, resolve_name, BackupState};

use std::path::Path;

use libsql::{Connection, Value};
use xxhash_rust::xxh3::Xxh3;

use super::error::{MigrateError, Result};
use super::metadata;
pub use super::report::{BackupReport, BackupStatus, TableDigest};
use super::scan::{read_rows, Limits};
use crate::decode::row::Key;
use crate::error::DbContext;
use crate::schema::{table_columns, LEGACY_TABLE};

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
pub fn hash_row(h: &mut Xxh3, r: &crate::decode::row::EmbeddingRow) {
    for v in r.values() {
        hash_value(h, v);
    }
}

/// Reads every row of a legacy-shaped table (`embeddings` or
/// `embeddings_backup`) in key order and digests it. Memory stays flat
/// (keyset pages).
pub async fn digest(conn: &Connection, table: &'static str) -> Result<TableDigest> {
    digest_of(conn, table, table).await
}

/// [`digest`] of a backup table.
pub async fn digest_backup(conn: &Connection, table: &BackupTableName) -> Result<TableDigest> {
    digest_of(conn, table.as_str(), &table.quoted()).await
}

/// `name` is the table's bare name (a constant or a checked backup name),
/// `sql` how statements refer to it.
async fn digest_of(conn: &Connection, name: &str, sql: &str) -> Result<TableDigest> {
    let has_vector = table_columns(conn, name)
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
            read_rows(conn, sql, vector_col, after.as_ref(), None, Some(limits)).await?;
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
/// legacy table as it was created (`name` as SQL refers to it).
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

/// Makes (or re-makes) the backup table `name` inside the caller's write
/// transaction and proves it equal to the legacy table. `state` is what
/// [`check_backup_table`] found in that same transaction: only the
/// migration's own backup is replaced, and a missing one is created with a
/// plain `CREATE TABLE`, which fails rather than touch a table that
/// appeared since. Records its name, digest and the legacy schema in
/// `metadata`.
pub async fn make_backup_table(
    conn: &Connection,
    name: &BackupTableName,
    state: &BackupState,
) -> Result<TableDigest> {
    let quoted = name.quoted();
    let ctx = || format!("copying {LEGACY_TABLE} to {name}");
    let schema = legacy_schema(conn).await?;
    let table_sql = schema
        .first()
        .and_then(|sql| create_like(sql, &quoted))
        .ok_or(MigrateError::MissingLegacyTable)?;
    if let BackupState::Own(_) = state {
        conn.execute(&format!("DROP TABLE {quoted}"), ())
            .await
            .db_context(ctx)?;
    }
    conn.execute(&table_sql, ()).await.db_context(ctx)?;
    conn.execute(
        &format!("INSERT INTO {quoted} SELECT * FROM {LEGACY_TABLE}"),
        (),
    )
    .await
    .db_context(ctx)?;
    let original = digest(conn, LEGACY_TABLE).await?;
    let copy = digest_backup(conn, name).await?;
    if original != copy {
        return Err(MigrateError::BackupMismatch {
            expected: original,
            found: copy,
        });
    }
    metadata::set(conn, metadata::BACKUP_TABLE_NAME, name.as_str()).await?;
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

/// Proves the backup table `name` still holds what was recorded when it
/// was made.
pub async fn verify_backup_table(conn: &Connection, name: &BackupTableName) -> Result<TableDigest> {
    let Some(expected) = recorded_digest(conn).await? else {
        return Err(MigrateError::BackupUnverifiable);
    };
    if !crate::schema::object_exists(conn, name.as_str()).await? {
        return Err(MigrateError::BackupUnverifiable);
    }
    let found = digest_backup(conn, name).await?;
    if found != expected {
        return Err(MigrateError::BackupMismatch { expected, found });
    }
    Ok(found)
}

/// Writes a consistent copy of the whole local database to `path`
/// (`VACUUM INTO`), refusing to overwrite anything.
pub async fn backup_file(conn: &Connection, path: &Path) -> Result<()> {
    if path.exists() {
        return Err(MigrateError::BackupFileExists {
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
            create_like(sql, "\"embeddings_backup\"").unwrap(),
            "CREATE TABLE \"embeddings_backup\" (\n    embedding_id TEXT PRIMARY KEY NOT NULL,\n    x INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))\n)"
        );
        assert_eq!(
            create_like("CREATE TABLE \"embeddings\"(a)", "b").unwrap(),
            "CREATE TABLE b (a)"
        );
    }
}
