//! Shared fixtures: real libSQL databases (temp files) built with the
//! crate's sample generator, and an independent oracle for what every
//! migrated row must look like.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use base64::Engine;
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

pub const TARGETS: [&str; 5] = [
    "embeddings_384",
    "embeddings_1024",
    "embeddings_1536",
    "embeddings_3072",
    "embeddings_other",
];

/// The table a dimension belongs in (written out again here, on purpose,
/// so the tests do not trust the routing function they test).
pub fn expected_table(dim: usize) -> &'static str {
    match dim {
        384 => "embeddings_384",
        1024 => "embeddings_1024",
        1536 => "embeddings_1536",
        3072 => "embeddings_3072",
        _ => "embeddings_other",
    }
}

/// The vector bytes an `embedding_data` holds, decoded independently of the
/// library (serde_json for text written by serde_json; the compression crates
/// for payloads). `None` for anything that is not a clean vector.
pub fn oracle_vector(data: &str) -> Option<Vec<u8>> {
    let bytes = if let Some(rest) = data.strip_prefix("__compressed__:") {
        let (header, b64) = rest.split_once('\n')?;
        let (alg, size) = header.split_once(':')?;
        let size: usize = size.parse().ok()?;
        let raw = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
        let out = match alg {
            "zstd" => zstd::decode_all(raw.as_slice()).ok()?,
            "gzip" => {
                let mut v = Vec::new();
                flate2::read::GzDecoder::new(raw.as_slice())
                    .read_to_end(&mut v)
                    .ok()?;
                v
            }
            "lz4" => lz4_flex::block::decompress(&raw, size).ok()?,
            _ => return None,
        };
        if out.len() != size {
            return None;
        }
        out
    } else {
        let v: Vec<f32> = serde_json::from_str(data).ok()?;
        v.iter().flat_map(|f| f.to_le_bytes()).collect()
    };
    if bytes.is_empty() || bytes.len() % 4 != 0 {
        return None;
    }
    if bytes
        .chunks_exact(4)
        .any(|c| !f32::from_le_bytes([c[0], c[1], c[2], c[3]]).is_finite())
    {
        return None;
    }
    Some(bytes)
}

/// Proves the target tables hold every good legacy row exactly once, in the
/// right table, every column identical and the vector bit for bit, and none
/// of `bad_ids`. Returns the number of rows checked.
pub async fn assert_migrated_exactly(
    conn: &Connection,
    bad_ids: &[String],
    legacy_has_vector: bool,
) -> usize {
    let legacy = read_table(conn, "embeddings", legacy_has_vector).await;
    let mut targets = BTreeMap::new();
    for t in TARGETS {
        targets.insert(t, read_table(conn, t, true).await);
    }
    let mut checked = 0;
    for (id, row) in &legacy {
        let holders: Vec<&str> = TARGETS
            .iter()
            .copied()
            .filter(|t| targets[t].contains_key(id))
            .collect();
        if bad_ids.contains(id) {
            assert!(holders.is_empty(), "bad row {id} reached {holders:?}");
            continue;
        }
        assert_eq!(holders.len(), 1, "row {id} is in {holders:?}");
        let Value::Text(data) = &row[3] else {
            panic!("data of {id}")
        };
        let vector = oracle_vector(data).unwrap_or_else(|| panic!("oracle rejects good row {id}"));
        assert_eq!(
            holders[0],
            expected_table(vector.len() / 4),
            "table of {id}"
        );
        let target = &targets[holders[0]][id];
        for col in [0, 1, 2, 3, 5, 6, 7] {
            assert!(
                same(&row[col], &target[col]),
                "row {id} column {col}: {:?} vs {:?}",
                row[col],
                target[col]
            );
        }
        assert!(
            matches!(&target[4], Value::Blob(b) if *b == vector),
            "vector of {id} is not bit-exact"
        );
        checked += 1;
    }
    let total: usize = targets.values().map(|t| t.len()).sum();
    assert_eq!(total, checked, "target tables hold rows with no legacy row");
    checked
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        (Value::Null, Value::Null) => true,
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Blob(x), Value::Blob(y)) => x == y,
        _ => false,
    }
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

/// Proves every row the target tables hold is its legacy row, in the right
/// table, every column identical and the vector bit for bit (rows not yet
/// migrated are allowed). Returns the number of target rows.
pub async fn assert_targets_exact(conn: &Connection, legacy_has_vector: bool) -> usize {
    let legacy = read_table(conn, "embeddings", legacy_has_vector).await;
    let mut held = 0;
    for t in TARGETS {
        for (id, target) in read_table(conn, t, true).await {
            let row = legacy
                .get(&id)
                .unwrap_or_else(|| panic!("{t} holds {id}, which has no legacy row"));
            let Value::Text(data) = &row[3] else {
                panic!("data of {id}")
            };
            let vector = oracle_vector(data).unwrap_or_else(|| panic!("bad row {id} is in {t}"));
            assert_eq!(t, expected_table(vector.len() / 4), "table of {id}");
            for col in [0, 1, 2, 3, 5, 6, 7] {
                assert!(
                    same(&row[col], &target[col]),
                    "row {id} column {col}: {:?} vs {:?}",
                    row[col],
                    target[col]
                );
            }
            assert!(
                matches!(&target[4], Value::Blob(b) if *b == vector),
                "vector of {id} in {t} is not bit-exact"
            );
            held += 1;
        }
    }
    held
}

/// Every table of the database (SQLite's own excluded): its `CREATE`
/// statement and every row, each value tagged with its SQL type, rows in
/// a canonical order. Two dumps are equal when the schema and every value
/// of every table are.
pub async fn dump_database(conn: &Connection) -> BTreeMap<String, (String, Vec<String>)> {
    let mut tables = Vec::new();
    let mut rows = conn
        .query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            (),
        )
        .await
        .unwrap();
    while let Some(row) = rows.next().await.unwrap() {
        tables.push((row.get::<String>(0).unwrap(), row.get::<String>(1).unwrap()));
    }
    let mut out = BTreeMap::new();
    for (name, sql) in tables {
        let mut rows = conn
            .query(&format!("SELECT * FROM \"{name}\""), ())
            .await
            .unwrap();
        let n = rows.column_count();
        let mut dumped = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            let values: Vec<String> = (0..n)
                .map(|i| format!("{:?}", row.get_value(i).unwrap()))
                .collect();
            dumped.push(values.join(" | "));
        }
        dumped.sort();
        out.insert(name, (sql, dumped));
    }
    out
}

/// The names of every index and trigger of the database.
pub async fn schema_objects(conn: &Connection) -> Vec<String> {
    let mut rows = conn
        .query(
            "SELECT type || ' ' || name || ' ON ' || tbl_name || ': ' || coalesce(sql, '') FROM sqlite_master WHERE type IN ('index', 'trigger') ORDER BY name",
            (),
        )
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        out.push(row.get::<String>(0).unwrap());
    }
    out
}

/// Asserts two [`dump_database`] results are equal, naming the first table
/// and row that differ (shortened) instead of printing both dumps.
pub fn assert_same_database(
    expected: &BTreeMap<String, (String, Vec<String>)>,
    found: &BTreeMap<String, (String, Vec<String>)>,
    what: &str,
) {
    let short = |s: &str| s.chars().take(160).collect::<String>();
    let names = |d: &BTreeMap<String, (String, Vec<String>)>| d.keys().cloned().collect::<Vec<_>>();
    assert_eq!(names(found), names(expected), "{what}: the tables differ");
    for (table, (sql, rows)) in expected {
        let (found_sql, found_rows) = &found[table];
        assert_eq!(found_sql, sql, "{what}: the schema of {table} differs");
        assert_eq!(
            found_rows.len(),
            rows.len(),
            "{what}: {table} holds another number of rows"
        );
        for (a, b) in rows.iter().zip(found_rows) {
            assert!(
                a == b,
                "{what}: a row of {table} differs:\n  expected {}\n  found    {}",
                short(a),
                short(b)
            );
        }
    }
}
