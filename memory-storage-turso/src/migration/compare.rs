//! What each key of a window needs: the comparison of a legacy row with the
//! target tables, shared by the plan, the copy and the verification.

use libsql::Value;

use super::report::{fingerprint_hex, Conflict, ConflictKind, Newer};
use super::scan::{LedgerEntry, Window};
use crate::decode::row::{same_value, EmbeddingRow, Key};
use crate::decode::BadRowReason;
use crate::schema::{route, TargetTable};

/// Whether this migration owns a target row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ownership {
    /// The ledger lists it in this table and its fingerprint still matches
    /// what the migration wrote: the migration may rewrite or remove it.
    Ours,
    /// The migration wrote it, but it changed since (the application wrote
    /// over it): never overwritten or deleted without `--on-conflict legacy`.
    Changed,
    /// The migration never wrote it (it was there before, or the
    /// application wrote it): never overwritten or deleted without
    /// `--on-conflict legacy`.
    Theirs,
}

/// A target row holding a key, and who owns it.
#[derive(Debug, Clone)]
pub struct Held {
    pub table: TargetTable,
    pub row: EmbeddingRow,
    pub owner: Ownership,
}

/// The verdict on one key of a window.
#[derive(Debug)]
pub enum Finding {
    /// A legacy row that decodes: where it must live and how it stands.
    Valid(ValidRow),
    /// A legacy row that cannot be migrated.
    Bad {
        row: EmbeddingRow,
        reason: BadRowReason,
        /// Target tables holding this migration's own copy of the key (an
        /// older version): removed by an execute run.
        ours_in: Vec<TargetTable>,
        /// Already in the quarantine record.
        quarantined: bool,
    },
    /// Target rows whose key has no legacy row.
    Orphan { key: Key, tables: Vec<Held> },
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
    /// Who owns the row in `table`, when there is one.
    pub in_place_owner: Option<Ownership>,
    /// Other target tables holding the migration's own copy of this key
    /// (must not: removed).
    pub misplaced: Vec<TargetTable>,
    /// Target rows holding this key that the migration does not own and
    /// that differ from the legacy row (or sit in another table): a
    /// conflict. Never overwritten or deleted unless `--on-conflict legacy`.
    pub foreign: Vec<Held>,
    /// The key is in the quarantine record (from an earlier bad version).
    pub quarantined: bool,
}

impl ValidRow {
    /// Whether the target tables already hold exactly this row, once.
    pub fn is_done(&self) -> bool {
        matches!(&self.in_place, Some(c) if c.is_empty())
            && self.misplaced.is_empty()
            && self.foreign.is_empty()
    }

    /// Whether a row the migration does not own stands in the way.
    pub fn is_conflict(&self) -> bool {
        !self.foreign.is_empty()
    }

    /// The conflicts this row meets, as the report lists them.
    pub fn conflicts(&self) -> Vec<Conflict> {
        let legacy_fingerprint = fingerprint_hex(self.fingerprint());
        self.foreign
            .iter()
            .map(|h| Conflict {
                embedding_id: self.row.key.to_string(),
                table: h.table.name().to_string(),
                kind: match h.owner {
                    Ownership::Changed => ConflictKind::ChangedSinceWritten,
                    _ => ConflictKind::NotWrittenByMigration,
                },
                newer: Newer::of(self.row.created_at_secs(), h.row.created_at_secs()),
                legacy_fingerprint: legacy_fingerprint.clone(),
                target_fingerprint: fingerprint_hex(h.row.fingerprint()),
                differs_in: if h.table == self.table {
                    differing_columns(&self.row, &self.vector, &h.row)
                        .into_iter()
                        .map(str::to_string)
                        .collect()
                } else {
                    Vec::new()
                },
            })
            .collect()
    }

    /// The fingerprint of the row as the migration writes it.
    pub fn fingerprint(&self) -> i64 {
        self.row.fingerprint_with_vector(&self.vector)
    }
}

/// Checks the types of a legacy row's columns, decodes it, and routes it.
pub fn check_legacy_row(row: &EmbeddingRow) -> Result<(TargetTable, Vec<u8>), BadRowReason> {
    let vector = crate::decode::check_legacy_row(row)?;
    Ok((route(vector.len() / 4), vector))
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

/// Who owns `row`, held in `table`, given the ledger's entry for its key.
fn owner(table: TargetTable, row: &EmbeddingRow, ledger: Option<&LedgerEntry>) -> Ownership {
    match ledger {
        Some(e) if e.table == table.name() => match e.fingerprint {
            Some(f) if f != row.fingerprint() => Ownership::Changed,
            _ => Ownership::Ours,
        },
        _ => Ownership::Theirs,
    }
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
        if let Some(l) = ledger.peek() {
            if next.as_ref().is_none_or(|k| &l.key < k) {
                next = Some(l.key.clone());
            }
        }
        let Some(key) = next else { break };
        let legacy_row = legacy.next_if(|r| r.key == key);
        let mut sharing = 0u64;
        while legacy.next_if(|r| r.key == key).is_some() {
            sharing += 1;
        }
        let ledgered = ledger.next_if(|l| l.key == key);
        let mut present = Vec::new();
        for (table, rows) in targets.iter_mut() {
            if let Some(r) = rows.next_if(|r| r.key == key) {
                present.push((*table, r));
            }
        }
        let ledgered = ledgered.as_ref();
        let held = |present: Vec<(TargetTable, EmbeddingRow)>| -> Vec<Held> {
            present
                .into_iter()
                .map(|(table, row)| Held {
                    owner: owner(table, &row, ledgered),
                    table,
                    row,
                })
                .collect()
        };
        let is_quarantined = quarantined.next_if(|q| *q == key).is_some();
        out.push(match legacy_row {
            Some(row) if sharing > 0 => bad(
                row,
                BadRowReason::DuplicateKey { rows: sharing + 1 },
                held(present),
                is_quarantined,
            ),
            Some(row) => match check_legacy_row(&row) {
                Err(reason) => bad(row, reason, held(present), is_quarantined),
                Ok((table, vector)) => {
                    judge_valid(row, table, vector, present, ledgered, is_quarantined)
                }
            },
            None if present.is_empty() => Finding::Stale {
                key,
                quarantined: is_quarantined,
                ledgered: ledgered.is_some(),
            },
            None => Finding::Orphan {
                key,
                tables: held(present),
            },
        });
    }
    out
}

fn bad(row: EmbeddingRow, reason: BadRowReason, present: Vec<Held>, quarantined: bool) -> Finding {
    // A copy that is not the migration's is kept: only its own are named.
    let ours_in = present
        .into_iter()
        .filter(|h| h.owner == Ownership::Ours)
        .map(|h| h.table)
        .collect();
    Finding::Bad {
        row,
        reason,
        ours_in,
        quarantined,
    }
}

/// Judges a legacy row that decodes against the target rows holding its
/// key. Whose a target row is costs a hash of it: only asked where it
/// matters, not for the copy identical to the legacy row (the common case
/// of a verification), which is settled whoever wrote it.
fn judge_valid(
    row: EmbeddingRow,
    table: TargetTable,
    vector: Vec<u8>,
    present: Vec<(TargetTable, EmbeddingRow)>,
    ledgered: Option<&LedgerEntry>,
    quarantined: bool,
) -> Finding {
    let mut in_place = None;
    let mut in_place_owner = None;
    let mut misplaced = Vec::new();
    let mut foreign = Vec::new();
    for (held_in, held_row) in present {
        if held_in == table {
            let diff = differing_columns(&row, &vector, &held_row);
            let owner = if diff.is_empty() {
                match ledgered {
                    Some(e) if e.table == table.name() => Ownership::Ours,
                    _ => Ownership::Theirs,
                }
            } else {
                owner(held_in, &held_row, ledgered)
            };
            in_place_owner = Some(owner);
            if !diff.is_empty() && owner != Ownership::Ours {
                foreign.push(Held {
                    table: held_in,
                    row: held_row,
                    owner,
                });
            }
            in_place = Some(diff);
        } else {
            let owner = owner(held_in, &held_row, ledgered);
            if owner == Ownership::Ours {
                misplaced.push(held_in);
            } else {
                foreign.push(Held {
                    table: held_in,
                    row: held_row,
                    owner,
                });
            }
        }
    }
    Finding::Valid(ValidRow {
        row,
        table,
        vector,
        in_place,
        in_place_owner,
        misplaced,
        foreign,
        quarantined,
    })
}

/// A target row with no legacy row that this migration did not write, held
/// by one table whose dimension it has: a row the application wrote to the
/// new tables (the store does during the transition). It is not the
/// migration's to judge: counted, never a discrepancy, never touched.
pub(crate) fn is_application_row(tables: &[Held]) -> bool {
    matches!(tables, [h] if h.owner != Ownership::Ours
        && matches!(h.row.dimension, libsql::Value::Integer(d) if h.table.holds(d)))
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

    fn entry(id: &str, table: &str, fingerprint: Option<i64>) -> LedgerEntry {
        LedgerEntry {
            key: Key(Value::Text(id.into())),
            table: table.into(),
            fingerprint,
        }
    }

    /// The ledger's fingerprint tells the migration's own row from one the
    /// application wrote over, and a row it never wrote is never its own.
    #[test]
    fn ownership_follows_the_ledger_fingerprint() {
        let v = vec![1.0f32, 2.0, 3.0];
        let a = legacy("a", &v);
        let written = migrated(&a, &v);
        let fp = written.fingerprint();
        let mut changed = written.clone();
        changed.model = Value::Text("app-model".into());
        let window = |target: EmbeddingRow, ledger: Vec<LedgerEntry>| Window {
            legacy: vec![a.clone()],
            targets: vec![(TargetTable::Other, vec![target])],
            ledger,
            ..Default::default()
        };
        let verdict = |w| match judge(w).pop() {
            Some(Finding::Valid(v)) => v,
            f => panic!("{f:?}"),
        };
        // Ours, unchanged, identical: done.
        let v1 = verdict(window(
            written.clone(),
            vec![entry("a", "embeddings_other", Some(fp))],
        ));
        assert!(v1.is_done() && v1.in_place_owner == Some(Ownership::Ours));
        // Ours once, changed by the application since: a conflict.
        let v2 = verdict(window(
            changed.clone(),
            vec![entry("a", "embeddings_other", Some(fp))],
        ));
        assert!(v2.is_conflict() && v2.in_place_owner == Some(Ownership::Changed));
        // Never written by the migration and different: a conflict.
        let v3 = verdict(window(changed.clone(), vec![]));
        assert!(v3.is_conflict() && v3.in_place_owner == Some(Ownership::Theirs));
        // Never written by the migration but identical: settled, not ours.
        let v4 = verdict(window(written.clone(), vec![]));
        assert!(v4.is_done() && v4.in_place_owner == Some(Ownership::Theirs));
        // Ours (the fingerprint matches what is there) but stale: repaired.
        let v5 = verdict(window(
            changed.clone(),
            vec![entry("a", "embeddings_other", Some(changed.fingerprint()))],
        ));
        assert!(!v5.is_conflict() && !v5.is_done());
        assert_eq!(v1.fingerprint(), fp);
    }

    #[test]
    fn rows_sharing_a_key_are_bad_and_written_nowhere() {
        let v = vec![1.0f32, 2.0, 3.0];
        let window = Window {
            legacy: vec![legacy("a", &v), legacy("a", &[1.0; 384]), legacy("b", &v)],
            ..Default::default()
        };
        let findings = judge(window);
        assert_eq!(findings.len(), 2);
        assert!(matches!(
            &findings[0],
            Finding::Bad {
                reason: BadRowReason::DuplicateKey { rows: 2 },
                ..
            }
        ));
        assert!(matches!(&findings[1], Finding::Valid(_)));
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
            ledger: vec![
                entry("d", "embeddings_other", None),
                entry("z", "embeddings_other", None),
            ],
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
                ours_in,
                ..
            } => {
                assert!(matches!(reason, BadRowReason::DimensionMismatch { .. }));
                assert!(quarantined);
                assert!(ours_in.is_empty());
            }
            f => panic!("{f:?}"),
        }
        assert!(
            matches!(&findings[5], Finding::Stale { key, quarantined: true, ledgered: false } if key.to_string() == "y")
        );
        assert!(
            matches!(&findings[6], Finding::Orphan { key, tables } if key.to_string() == "z" && tables[0].owner == Ownership::Ours)
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
