//! The one independent check of a migration: every legacy row decoded
//! without the library (serde_json and the compression crates), and
//! compared with the target tables column by column, the vector bit for
//! bit.

use std::collections::BTreeMap;
use std::io::Read;

use base64::Engine;
use libsql::{Connection, Value};

use crate::db::read_table;

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
    assert_migrated_exactly_from(conn, "embeddings", bad_ids, legacy_has_vector).await
}

/// [`assert_migrated_exactly`] against the legacy rows in `legacy` (the
/// backup table, once the legacy table was dropped).
pub async fn assert_migrated_exactly_from(
    conn: &Connection,
    legacy: &str,
    bad_ids: &[String],
    legacy_has_vector: bool,
) -> usize {
    let legacy = read_table(conn, legacy, legacy_has_vector).await;
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
        assert_row_copied(id, holders[0], row, &targets[holders[0]][id], &vector);
        checked += 1;
    }
    let total: usize = targets.values().map(|t| t.len()).sum();
    assert_eq!(total, checked, "target tables hold rows with no legacy row");
    checked
}

/// `target` (a row of `table`) is the legacy `row`: every column equal,
/// the vector bit for bit.
fn assert_row_copied(id: &str, table: &str, row: &[Value], target: &[Value], vector: &[u8]) {
    for col in [0, 1, 2, 3, 5, 6, 7] {
        assert!(
            same(&row[col], &target[col]),
            "row {id} column {col}: {:?} vs {:?}",
            row[col],
            target[col]
        );
    }
    assert!(
        matches!(&target[4], Value::Blob(b) if b == vector),
        "vector of {id} in {table} is not bit-exact"
    );
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
            assert_row_copied(&id, t, row, &target, &vector);
            held += 1;
        }
    }
    held
}
