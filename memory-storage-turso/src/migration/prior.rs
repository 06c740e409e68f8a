//! What the database held before the migration first wrote to it: the
//! names of every schema object, and the one `metadata` key outside the
//! migration's own prefix that it sets (`schema_version`). Recorded once,
//! before the first write; a full rollback removes exactly the objects
//! that are not in this record and puts `schema_version` back.

use std::collections::BTreeSet;

use libsql::{Connection, Value};
use serde::{Deserialize, Serialize};

use super::metadata;
use super::write::in_transaction;
use crate::error::{DbContext, Result};
use crate::schema::{
    object_exists, ScanBits, TargetTable, CHECKPOINT_TABLE, CONFLICTS_TABLE, DISPLACED_TABLE,
    INDEX_PROGRESS_TABLE, LEDGER_TABLE, LOCK_TABLE, METADATA_TABLE, QUARANTINE_TABLE,
};

/// Names of the schema objects that existed before the first run (JSON).
pub const PRIOR_OBJECTS: &str = "embeddings_migration.prior_objects";
/// `schema_version` before the first run (JSON: null when it was absent).
pub const PRIOR_SCHEMA_VERSION: &str = "embeddings_migration.prior_schema_version";

/// A `metadata` row as it was.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorValue {
    pub value: String,
    pub updated_at: Option<i64>,
}

/// The migration's own bookkeeping tables (the lock table apart: it is
/// dropped after the lock is released).
pub const OWN_TABLES: [&str; 6] = [
    CHECKPOINT_TABLE,
    QUARANTINE_TABLE,
    LEDGER_TABLE,
    INDEX_PROGRESS_TABLE,
    CONFLICTS_TABLE,
    DISPLACED_TABLE,
];

/// Every schema object name in the database (SQLite's own excluded).
pub async fn object_names(conn: &Connection) -> Result<BTreeSet<String>> {
    let ctx = || "listing the schema".to_string();
    let mut rows = conn
        .query(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'",
            (),
        )
        .await
        .db_context(ctx)?;
    let mut out = BTreeSet::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        out.insert(row.get::<String>(0).db_context(ctx)?);
    }
    Ok(out)
}

/// Every object name the migration may create.
pub fn own_object_names() -> BTreeSet<String> {
    let mut out: BTreeSet<String> = OWN_TABLES.iter().map(|s| s.to_string()).collect();
    out.insert(LOCK_TABLE.to_string());
    out.insert(crate::schema::CHANGES_TABLE.to_string());
    out.extend(crate::schema::TRIGGERS.iter().map(|s| s.to_string()));
    for t in TargetTable::ALL {
        out.insert(t.name().to_string());
        out.insert(format!("idx_{}_item", t.name()));
        if let Some(i) = t.vector_index_name() {
            out.insert(i.to_string());
        }
        for bits in ScanBits::ALL {
            if let Some(i) = t.scan_index_name(bits) {
                out.insert(i.to_string());
            }
        }
        if let Some(b) = t.indexing_table() {
            out.insert(b.to_string());
            for event in ["insert", "update", "delete"] {
                out.insert(format!("{b}_{event}"));
            }
        }
    }
    out
}

async fn schema_version_row(conn: &Connection) -> Result<Option<PriorValue>> {
    if !object_exists(conn, METADATA_TABLE).await? {
        return Ok(None);
    }
    let ctx = || format!("reading schema_version from {METADATA_TABLE}");
    let mut rows = conn
        .query(
            &format!("SELECT value, updated_at FROM {METADATA_TABLE} WHERE key = ?1"),
            [metadata::SCHEMA_VERSION],
        )
        .await
        .db_context(ctx)?;
    Ok(match rows.next().await.db_context(ctx)? {
        Some(row) => Some(PriorValue {
            value: row.get::<String>(0).db_context(ctx)?,
            updated_at: match row.get_value(1).db_context(ctx)? {
                Value::Integer(t) => Some(t),
                _ => None,
            },
        }),
        None => None,
    })
}

/// Records what exists, once, before the migration's first write. A
/// database a run of an older version already wrote to has no record:
/// its objects are recorded less those that version created.
pub async fn record(conn: &Connection) -> Result<()> {
    if metadata::get(conn, PRIOR_OBJECTS).await?.is_some() {
        return Ok(());
    }
    let mut names = object_names(conn).await?;
    let mut schema_version = schema_version_row(conn).await?;
    if object_exists(conn, CHECKPOINT_TABLE).await? {
        let left = left_by_older_version(conn, &names).await?;
        names.retain(|n| !left.contains(n));
        if metadata::get(conn, metadata::COMPLETED_AT).await?.is_some() {
            schema_version = None;
        }
    }
    let objects = serde_json::to_string(&names).unwrap_or_default();
    let version = serde_json::to_string(&schema_version).unwrap_or_default();
    in_transaction(conn, "recording the database as it was", async {
        metadata::set(conn, PRIOR_SCHEMA_VERSION, &version).await?;
        metadata::set(conn, PRIOR_OBJECTS, &objects).await
    })
    .await
}

/// Which of `names` (the objects there now) a run of an older version,
/// which kept no record, created: the migration's own names, but a target
/// table only if it recorded creating it, and the index build's working
/// table and triggers only while a build of their table is in progress
/// (the build makes them and its progress row in one transaction, and the
/// swap removes them with it). Anything else of those names is a user's.
pub async fn left_by_older_version(
    conn: &Connection,
    names: &BTreeSet<String>,
) -> Result<BTreeSet<String>> {
    let created = metadata::created_tables(conn).await?;
    let building = builds_in_progress(conn).await?;
    let own = own_object_names();
    Ok(names
        .iter()
        .filter(|n| own.contains(*n))
        .filter(|n| {
            TargetTable::ALL.iter().all(|t| {
                if t.name() == n.as_str() {
                    return created.iter().any(|c| c == *n);
                }
                // Made only by versions that keep the record.
                if ScanBits::ALL
                    .iter()
                    .any(|b| t.scan_index_name(*b) == Some(n.as_str()))
                {
                    return false;
                }
                match t.indexing_table() {
                    Some(b) if n.starts_with(b) => building.iter().any(|l| l == t.name()),
                    _ => true,
                }
            })
        })
        .cloned()
        .collect())
}

/// The tables whose resumable index build has a progress row.
async fn builds_in_progress(conn: &Connection) -> Result<Vec<String>> {
    if !object_exists(conn, INDEX_PROGRESS_TABLE).await? {
        return Ok(Vec::new());
    }
    let ctx = || format!("reading {INDEX_PROGRESS_TABLE}");
    let mut rows = conn
        .query(
            &format!("SELECT target_table FROM {INDEX_PROGRESS_TABLE}"),
            (),
        )
        .await
        .db_context(ctx)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.db_context(ctx)? {
        if let Ok(Value::Text(t)) = row.get_value(0) {
            out.push(t);
        }
    }
    Ok(out)
}

/// What existed before the first run, if recorded.
pub async fn objects(conn: &Connection) -> Result<Option<BTreeSet<String>>> {
    Ok(metadata::get(conn, PRIOR_OBJECTS)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok()))
}

/// `schema_version` before the first run (`None`: it was absent).
pub async fn schema_version(conn: &Connection) -> Result<Option<PriorValue>> {
    Ok(metadata::get(conn, PRIOR_SCHEMA_VERSION)
        .await?
        .and_then(|s| serde_json::from_str(&s).ok())
        .flatten())
}
