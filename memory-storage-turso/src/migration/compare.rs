//! What each key of a window needs: the comparison of a legacy row with the
//! target tables, shared by the plan, the copy and the verification.

use libsql::Value;

use super::row::{same_value, type_name, EmbeddingRow, Key};
use super::scan::Window;
use crate::decode::{validate_row, BadRowReason};
use crate::schema::{route, TargetTable};

/// The verdict on one key of a window.
#[derive(Debug)]
pub enum Finding {
    /// A legacy row that decodes: where it must live and how it stands.
    Valid(ValidRow),
    /// A legacy row that cannot be migrated.
    Bad {
        row: EmbeddingRow,
        reason: BadRowReason,
        /// Target tables that nonetheless hold this key (an older copy).
        in_targets: Vec<TargetTable>,
        /// Already in the quarantine record.
        quarantined: bool,
        /// The table this migration wrote the key to, per the ledger.
        ours: Option<TargetTable>,
    },
    /// Target rows whose key has no legacy row.
    Orphan {
        key: Key,
        tables: Vec<(TargetTable, EmbeddingRow)>,
        /// The table this migration wrote the key to (its legacy row was
        /// deleted since), per the ledger.
        ours: Option<TargetTable>,
    },
    /// Bookkeeping for a key that no table holds any more.
    Stale {
        key: Key,
        quarantined: bool,
        ledgered: bool,
    },
}

/// A legacy row that decodes, compared with the target tables.
#[derive(Debug)]
pub struct ValidRow {
    pub row: EmbeddingRow,
    pub table: TargetTable,
    /// The vector as little-endian f32 bytes, decoded from `embedding_data`.
    pub vector: Vec<u8>,
    /// `None`: absent from its table; `Some([])`: identical there;
    /// `Some(columns)`: present but these columns differ.
    pub in_place: Option<Vec<&'static str>>,
    /// Other target tables that also hold this key (must not).
    pub misplaced: Vec<TargetTable>,
    /// The key is in the quarantine record (from an earlier bad version).
    pub quarantined: bool,
}

impl ValidRow {
    /// Whether the target tables already hold exactly this row, once.
    pub fn is_done(&self) -> bool {
        matches!(&self.in_place, Some(c) if c.is_empty()) && self.misplaced.is_empty()
    }
}

/// Checks the types of a legacy row's columns, then decodes it.
pub fn check_legacy_row(row: &EmbeddingRow) -> Result<(TargetTable, Vec<u8>), BadRowReason> {
    if row.invalid_utf8 != 0 {
        let column = crate::schema::COLUMNS
            .iter()
            .enumerate()
            .find(|(i, _)| row.invalid_utf8 & (1 << i) != 0)
            .map_or("?", |(_, c)| *c);
        return Err(BadRowReason::InvalidUtf8 { column });
    }
    for (column, value) in [
        ("item_id", &row.item_id),
        ("item_type", &row.item_type),
        ("model", &row.model),
        ("created_at", &row.created_at),
    ] {
        if matches!(value, Value::Null) {
            return Err(BadRowReason::NullColumn { column });
        }
    }
    let data = match &row.embedding_data {
        Value::Text(s) => s.as_str(),
        other => {
            return Err(BadRowReason::NotText {
                column: "embedding_data",
                found: type_name(other),
            })
        }
    };
    let dimension = match &row.dimension {
        Value::Integer(d) => *d,
        Value::Text(s) => {
            return Err(BadRowReason::InvalidDimension {
                found: format!("text {s:?}"),
            })
        }
        other => {
            return Err(BadRowReason::InvalidDimension {
                found: type_name(other).to_string(),
            })
        }
    };
    let legacy_vector = match &row.embedding_vector {
        Value::Null => None,
        Value::Blob(b) => Some(b.as_slice()),
        other => {
            return Err(BadRowReason::LegacyVectorMismatch {
                detail: format!(
                    "embedding_vector holds {}, not vector bytes",
                    type_name(other)
                ),
            })
        }
    };
    let vector = validate_row(data, dimension, legacy_vector)?;
    let table = route(vector.len() / 4);
    Ok((table, vector))
}

/// The columns of `target` that differ from `legacy` (vector compared with
/// the decoded bytes).
pub fn differing_columns(
    legacy: &EmbeddingRow,
    vector: &[u8],
    target: &EmbeddingRow,
) -> Vec<&'static str> {
    let mut diff = Vec::new();
    let pairs: [(&'static str, &Value, &Value); 6] = [
        ("item_id", &legacy.item_id, &target.item_id),
        ("item_type", &legacy.item_type, &target.item_type),
        (
            "embedding_data",
            &legacy.embedding_data,
            &target.embedding_data,
        ),
        ("dimension", &legacy.dimension, &target.dimension),
        ("model", &legacy.model, &target.model),
        ("created_at", &legacy.created_at, &target.created_at),
    ];
    for (name, a, b) in pairs {
        if !same_value(a, b) {
            diff.push(name);
        }
    }
    if !matches!(&target.embedding_vector, Value::Blob(b) if b.as_slice() == vector) {
        diff.push("embedding_vector");
    }
    // Exact key bytes too (a text id and a blob id never share a slot, but
    // be explicit about it).
    if !same_value(&legacy.key.0, &target.key.0) {
        diff.push("embedding_id");
    }
    diff
}

/// Walks a window in key order and judges every key.
pub fn judge(window: Window) -> Vec<Finding> {
    let Window {
        legacy,
        targets,
        quarantined,
        ledger,
        ..
    } = window;
    let mut legacy = legacy.into_iter().peekable();
    let mut targets: Vec<(
        TargetTable,
        std::iter::Peekable<std::vec::IntoIter<EmbeddingRow>>,
    )> = targets
        .into_iter()
        .map(|(t, rows)| (t, rows.into_iter().peekable()))
        .collect();
    let mut quarantined = quarantined.into_iter().peekable();
    let mut ledger = ledger.into_iter().peekable();
    let mut out = Vec::new();
    loop {
        // The smallest key at the head of any stream.
        let mut next: Option<Key> = legacy.peek().map(|r| r.key.clone());
        for (_, rows) in targets.iter_mut() {
            if let Some(r) = rows.peek() {
                if next.as_ref().is_none_or(|k| &r.key < k) {
                    next = Some(r.key.clone());
                }
            }
        }
        if let Some(q) = quarantined.peek() {
            if next.as_ref().is_none_or(|k| q < k) {
                next = Some(q.clone());
            }
        }
        if let Some((l, _)) = ledger.peek() {
            if next.as_ref().is_none_or(|k| l < k) {
                next = Some(l.clone());
            }
        }
        let Some(key) = next else { break };
        let legacy_row = legacy.next_if(|r| r.key == key);
        let mut present = Vec::new();
        for (table, rows) in targets.iter_mut() {
            if let Some(r) = rows.next_if(|r| r.key == key) {
                present.push((*table, r));
            }
        }
        let is_quarantined = quarantined.next_if(|q| *q == key).is_some();
        let ledgered = ledger.next_if(|(l, _)| *l == key);
        let ours = ledgered
            .as_ref()
            .and_then(|(_, t)| TargetTable::from_name(t));
        out.push(match legacy_row {
            Some(row) => judge_legacy(row, present, is_quarantined, ours),
            None if present.is_empty() => Finding::Stale {
                key,
                quarantined: is_quarantined,
                ledgered: ledgered.is_some(),
            },
            None => Finding::Orphan {
                key,
                tables: present,
                ours,
            },
        });
    }
    out
}

fn judge_legacy(
    row: EmbeddingRow,
    present: Vec<(TargetTable, EmbeddingRow)>,
    quarantined: bool,
    ours: Option<TargetTable>,
) -> Finding {
    match check_legacy_row(&row) {
        Err(reason) => Finding::Bad {
            row,
            reason,
            in_targets: present.into_iter().map(|(t, _)| t).collect(),
            quarantined,
            ours,
        },
        Ok((table, vector)) => {
            let mut in_place = None;
            let mut misplaced = Vec::new();
            for (t, target) in &present {
                if *t == table {
                    in_place = Some(differing_columns(&row, &vector, target));
                } else {
                    misplaced.push(*t);
                }
            }
            Finding::Valid(ValidRow {
                row,
                table,
                vector,
                in_place,
                misplaced,
                quarantined,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::vector_to_le_bytes;

    fn legacy(id: &str, v: &[f32]) -> EmbeddingRow {
        EmbeddingRow {
            key: Key(Value::Text(id.into())),
            item_id: Value::Text(format!("item-{id}")),
            item_type: Value::Text("episode".into()),
            embedding_data: Value::Text(serde_json::to_string(v).unwrap()),
            embedding_vector: Value::Null,
            dimension: Value::Integer(v.len() as i64),
            model: Value::Text("m".into()),
            created_at: Value::Integer(1_700_000_000),
            invalid_utf8: 0,
        }
    }

    fn migrated(row: &EmbeddingRow, v: &[f32]) -> EmbeddingRow {
        let mut t = row.clone();
        t.embedding_vector = Value::Blob(vector_to_le_bytes(v));
        t
    }

    #[test]
    fn merge_classifies_every_key_once() {
        let v384 = vec![0.5f32; 384];
        let v3 = vec![1.0f32, -0.0, 2.5];
        let a = legacy("a", &v384); // done
        let b = legacy("b", &v3); // missing
        let mut c = legacy("c", &v3); // differs in model
        let d = legacy("d", &v384); // misplaced into other too
        c.model = Value::Text("new-model".into());
        let mut bad = legacy("e", &v3);
        bad.dimension = Value::Integer(4);
        let window = Window {
            legacy: vec![a.clone(), b, c.clone(), d.clone(), bad],
            targets: vec![
                (
                    TargetTable::D384,
                    vec![migrated(&a, &v384), migrated(&d, &v384)],
                ),
                (
                    TargetTable::Other,
                    vec![
                        migrated(&legacy("c", &v3), &v3),
                        migrated(&legacy("d", &v3), &v3),
                        migrated(&legacy("z", &v3), &v3),
                    ],
                ),
            ],
            quarantined: vec![Key(Value::Text("e".into())), Key(Value::Text("y".into()))],
            ledger: vec![(Key(Value::Text("z".into())), "embeddings_other".into())],
            upper: None,
        };
        let findings = judge(window);
        assert_eq!(findings.len(), 7);
        match &findings[0] {
            Finding::Valid(v) => assert!(v.is_done()),
            f => panic!("{f:?}"),
        }
        match &findings[1] {
            Finding::Valid(v) => {
                assert_eq!(v.table, TargetTable::Other);
                assert!(v.in_place.is_none());
                assert_eq!(v.vector, vector_to_le_bytes(&v3));
            }
            f => panic!("{f:?}"),
        }
        match &findings[2] {
            Finding::Valid(v) => assert_eq!(v.in_place.as_deref(), Some(&["model"][..])),
            f => panic!("{f:?}"),
        }
        match &findings[3] {
            Finding::Valid(v) => {
                assert_eq!(v.in_place.as_deref(), Some(&[][..]));
                assert_eq!(v.misplaced, vec![TargetTable::Other]);
                assert!(!v.is_done());
            }
            f => panic!("{f:?}"),
        }
        match &findings[4] {
            Finding::Bad {
                reason,
                quarantined,
                in_targets,
                ..
            } => {
                assert!(matches!(reason, BadRowReason::DimensionMismatch { .. }));
                assert!(quarantined);
                assert!(in_targets.is_empty());
            }
            f => panic!("{f:?}"),
        }
        assert!(
            matches!(&findings[5], Finding::Stale { key, quarantined: true, ledgered: false } if key.to_string() == "y")
        );
        assert!(
            matches!(&findings[6], Finding::Orphan { key, ours: Some(TargetTable::Other), .. } if key.to_string() == "z")
        );
    }

    #[test]
    fn a_changed_vector_bit_is_a_difference() {
        let v = vec![1.0f32, 2.0, 3.0];
        let row = legacy("k", &v);
        let mut target = migrated(&row, &v);
        if let Value::Blob(b) = &mut target.embedding_vector {
            b[0] ^= 1;
        }
        let (_, vector) = check_legacy_row(&row).unwrap();
        assert_eq!(
            differing_columns(&row, &vector, &target),
            vec!["embedding_vector"]
        );
    }

    #[test]
    fn column_types_are_checked_before_decoding() {
        let mut row = legacy("k", &[1.0]);
        row.embedding_data = Value::Blob(b"[1.0]".to_vec());
        assert!(matches!(
            check_legacy_row(&row),
            Err(BadRowReason::NotText {
                column: "embedding_data",
                ..
            })
        ));
        let mut row = legacy("k", &[1.0]);
        row.dimension = Value::Text("one".into());
        assert!(matches!(
            check_legacy_row(&row),
            Err(BadRowReason::InvalidDimension { .. })
        ));
        let mut row = legacy("k", &[1.0]);
        row.created_at = Value::Null;
        assert!(matches!(
            check_legacy_row(&row),
            Err(BadRowReason::NullColumn {
                column: "created_at"
            })
        ));
    }
}
