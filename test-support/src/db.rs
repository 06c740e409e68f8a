//! Real libSQL databases for tests: temp files, the crate's sample
//! generator, and small query helpers.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libsql::{Builder, Connection, Database, Value};
use memory_storage_turso::sample::{generate_legacy_database, SampleSpec, SampleSummary};

/// A temp-file database that lives as long as this value.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
    pub db: Database,
    pub conn: Connection,
}

impl TestDb {
    /// An empty database file.
    pub async fn empty() -> TestDb {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("memory.db");
        let db = Builder::new_local(&path).build().await.unwrap();
        let conn = db.connect().unwrap();
        TestDb {
            dir,
            path,
            db,
            conn,
        }
    }

    /// A legacy database generated from `spec`.
    pub async fn sample(spec: &SampleSpec) -> (TestDb, SampleSummary) {
        let t = TestDb::empty().await;
        let summary = generate_legacy_database(&t.conn, spec).await.unwrap();
        (t, summary)
    }

    pub fn url(&self) -> String {
        self.path.to_string_lossy().to_string()
    }
}

/// A small realistic mix with every bad kind.
pub fn small_spec(rows: usize, seed: u64) -> SampleSpec {
    let mut spec = SampleSpec::realistic(rows, seed);
    spec.bad_rows = 32;
    spec
}

/// One stored row: the eight columns as values.
pub type StoredRow = Vec<Value>;

/// Every row of `table` keyed by embedding_id text.
pub async fn read_table(
    conn: &Connection,
    table: &str,
    vector: bool,
) -> BTreeMap<String, StoredRow> {
    let vcol = if vector { "embedding_vector" } else { "NULL" };
    let mut rows = conn
        .query(
            &format!("SELECT embedding_id, item_id, item_type, embedding_data, {vcol}, dimension, model, created_at FROM {table}"),
            (),
        )
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    while let Some(row) = rows.next().await.unwrap() {
        let values: Vec<Value> = (0..8).map(|i| row.get_value(i).unwrap()).collect();
        let Value::Text(id) = &values[0] else {
            panic!("non-text id")
        };
        out.insert(id.clone(), values);
    }
    out
}

/// The file's bytes (with its -wal, if any).
pub fn file_bytes(path: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(path).unwrap();
    let wal = path.with_extension("db-wal");
    if let Ok(w) = std::fs::read(wal) {
        bytes.extend(w);
    }
    bytes
}

/// Ids of the bad rows a generator run planted.
pub fn bad_ids(summary: &SampleSummary) -> Vec<String> {
    summary.bad.iter().map(|(id, _)| id.clone()).collect()
}

/// `SELECT count(*)` of a table.
pub async fn count(conn: &Connection, table: &str) -> i64 {
    let mut rows = conn
        .query(&format!("SELECT count(*) FROM {table}"), ())
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

/// Another connection to the file at `path` (its own `Database`, as a second
/// process would have), waiting at most `busy` for a lock.
pub async fn connect(path: &Path, busy: std::time::Duration) -> (Database, Connection) {
    let db = Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    conn.busy_timeout(busy).unwrap();
    (db, conn)
}

/// The first column of the first row of `sql`, as an integer; `None` when
/// the query fails or returns nothing (a table that does not exist yet).
pub async fn scalar(conn: &Connection, sql: &str) -> Option<i64> {
    let mut rows = conn.query(sql, ()).await.ok()?;
    rows.next().await.ok()??.get::<i64>(0).ok()
}

/// The first column of the first row of `sql`, as text; `None` when the
/// query fails or returns nothing.
pub async fn scalar_text(conn: &Connection, sql: &str) -> Option<String> {
    let mut rows = conn.query(sql, ()).await.ok()?;
    rows.next().await.ok()??.get::<String>(0).ok()
}

/// Whether a table (or any schema object) named `name` exists.
pub async fn table_exists(conn: &Connection, name: &str) -> bool {
    let mut rows = conn
        .query("SELECT count(*) FROM sqlite_master WHERE name = ?1", [name])
        .await
        .unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap() > 0
}

/// A legacy database file at `path`: `rows` realistic rows from `seed`,
/// `bad` of them bad. Returns what the generator planted.
pub async fn sample_db(path: &Path, rows: usize, bad: usize, seed: u64) -> SampleSummary {
    let db = Builder::new_local(path).build().await.unwrap();
    let conn = db.connect().unwrap();
    let mut spec = SampleSpec::realistic(rows, seed);
    spec.bad_rows = bad;
    generate_legacy_database(&conn, &spec).await.unwrap()
}

/// A connection of its own to the file at `path`.
pub async fn open(path: &Path) -> Connection {
    Builder::new_local(path)
        .build()
        .await
        .unwrap()
        .connect()
        .unwrap()
}
