//! Identical vectors the DiskANN index may lose (libsql#2197): when two
//! rows of an indexed table hold the same vector and one is deleted (or
//! replaced), the others become unreachable through `vector_top_k`, though
//! they are still in the table. Before a row leaves an indexed table the
//! store finds its twins through the index (they are still reachable then)
//! and records their keys in `metadata`; every index search then ranks
//! those rows exactly and merges them in. A key leaves the list when its
//! row is deleted or replaced.

use std::collections::{BTreeMap, BTreeSet};

use libsql::{Connection, Value};

use crate::error::{DbContext, Result};
use crate::migration::metadata;
use crate::schema::TargetTable;

/// The `metadata` key of the list (JSON: table name → embedding ids).
pub const TWINS_KEY: &str = "embeddings_store.unindexed_twins";

/// Candidates first asked of the index for a row's twins; doubled while
/// every one of them is a twin, up to [`MAX_TWINS`].
const FIRST_FETCH: usize = 32;
const MAX_TWINS: usize = 4096;

type Listed = BTreeMap<String, BTreeSet<String>>;

async fn read_all(conn: &Connection) -> Result<Listed> {
    Ok(metadata::get(conn, TWINS_KEY)
        .await?
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default())
}

async fn write_all(conn: &Connection, listed: &Listed) -> Result<()> {
    if listed.values().all(BTreeSet::is_empty) {
        return metadata::remove(conn, TWINS_KEY).await;
    }
    metadata::set(
        conn,
        TWINS_KEY,
        &serde_json::to_string(listed).unwrap_or_default(),
    )
    .await
}

/// The listed keys of `table`.
pub(crate) async fn listed(conn: &Connection, table: TargetTable) -> Result<Vec<String>> {
    Ok(read_all(conn)
        .await?
        .remove(table.name())
        .map(|s| s.into_iter().collect())
        .unwrap_or_default())
}

/// The native tables that have their vector index, with its name.
async fn indexed(conn: &Connection) -> Result<BTreeMap<TargetTable, &'static str>> {
    let ctx = || "looking up the vector indexes".to_string();
    let mut out = BTreeMap::new();
    let mut rows = conn
        .query(
            "SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'",
            (),
        )
        .await
        .db_context(ctx)?;
    while let Some(row) = rows.next().await.db_context(ctx)? {
        let (name, on): (String, String) =
            (row.get(0).db_context(ctx)?, row.get(1).db_context(ctx)?);
        for t in TargetTable::ALL {
            if t.vector_index_name() == Some(name.as_str()) && t.name() == on {
                out.insert(t, t.vector_index_name().unwrap_or_default());
            }
        }
    }
    Ok(out)
}

/// The keys of `table`'s other rows holding exactly `vector`, found
/// through `index` (at most [`MAX_TWINS`]).
async fn twins_of(
    conn: &Connection,
    table: TargetTable,
    index: &str,
    vector: &[u8],
) -> Result<Vec<String>> {
    let ctx = || format!("looking up identical vectors in {table}");
    let sql = format!(
        "SELECT t.embedding_id, t.embedding_vector = ?1 \
         FROM vector_top_k('{index}', vector32(?1), ?2) AS v \
         JOIN {} AS t ON t.rowid = v.id",
        table.name()
    );
    let mut fetch = FIRST_FETCH;
    loop {
        let mut rows = conn
            .query(
                &sql,
                vec![Value::Blob(vector.to_vec()), Value::Integer(fetch as i64)],
            )
            .await
            .db_context(ctx)?;
        let (mut found, mut seen) = (Vec::new(), 0);
        while let Some(row) = rows.next().await.db_context(ctx)? {
            seen += 1;
            if row.get::<i64>(1).db_context(ctx)? == 1 {
                found.push(row.get::<String>(0).db_context(ctx)?);
            }
        }
        // Twins sit at distance zero, first: when all `fetch` were twins
        // there may be more.
        if found.len() < fetch || seen < fetch || fetch >= MAX_TWINS {
            return Ok(found);
        }
        fetch *= 2;
    }
}

/// The list, loaded once for a write's transaction.
pub(crate) struct Twins {
    listed: Listed,
    changed: bool,
    indexed: BTreeMap<TargetTable, &'static str>,
}

impl Twins {
    /// Call inside the write's transaction.
    pub(crate) async fn load(conn: &Connection) -> Result<Twins> {
        Ok(Twins {
            listed: read_all(conn).await?,
            changed: false,
            indexed: indexed(conn).await?,
        })
    }

    /// Before the rows `keys` leave `table` (deleted, moved or replaced):
    /// lists the twins of their vectors, which the index may lose with
    /// them, and unlists `keys`.
    pub(crate) async fn before_removing(
        &mut self,
        conn: &Connection,
        table: TargetTable,
        keys: &[&str],
    ) -> Result<()> {
        let list = self.listed.entry(table.name().to_string()).or_default();
        for k in keys {
            self.changed |= list.remove(*k);
        }
        let Some(index) = self.indexed.get(&table).copied() else {
            return Ok(());
        };
        let ctx = || format!("reading the vectors of rows leaving {table}");
        let leaving: BTreeSet<&str> = keys.iter().copied().collect();
        for chunk in keys.chunks(500) {
            let sql = format!(
                "SELECT embedding_vector FROM {} WHERE embedding_id IN ({}) \
                 AND embedding_vector IS NOT NULL",
                table.name(),
                vec!["?"; chunk.len()].join(", ")
            );
            let params: Vec<Value> = chunk.iter().map(|k| Value::Text(k.to_string())).collect();
            let mut rows = conn.query(&sql, params).await.db_context(ctx)?;
            let mut vectors = Vec::new();
            while let Some(row) = rows.next().await.db_context(ctx)? {
                if let Value::Blob(b) = row.get_value(0).db_context(ctx)? {
                    vectors.push(b);
                }
            }
            for v in vectors {
                for twin in twins_of(conn, table, index, &v).await? {
                    if !leaving.contains(twin.as_str()) {
                        self.changed |= list.insert(twin);
                    }
                }
            }
        }
        Ok(())
    }

    /// Records the list if it changed (inside the write's transaction).
    pub(crate) async fn save(mut self, conn: &Connection) -> Result<()> {
        if !self.changed {
            return Ok(());
        }
        self.listed.retain(|_, s| !s.is_empty());
        write_all(conn, &self.listed).await
    }
}
