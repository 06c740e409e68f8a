//! Vectors holding legal but extreme f32 values (a component near f32::MAX,
//! all zeros, components whose squares underflow) cannot be ranked by cosine
//! search. They are data: migrated bit for bit, listed as unsearchable, and
//! never a reason for the search smoke test to fail the verification.

use std::collections::BTreeMap;

use libsql::Value;
use memory_storage_turso::decode::Unsearchable;
use memory_storage_turso::migration::report::MigrationReport;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::sample::{
    create_legacy_table, encode_json, insert_legacy_rows, vector_bytes, LegacyRow,
};
use test_support::*;

/// Normal 384-dim rows: few, so the degenerate rows are a large share of
/// the table and the smoke test's sample surely holds them.
const NORMAL_ROWS: usize = 9;

/// A deterministic vector with components in [-1, 1).
fn normal_vector(seed: u64, dim: usize) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..dim)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn row(id: &str, v: &[f32]) -> LegacyRow {
    LegacyRow {
        embedding_id: id.to_string(),
        item_id: format!("item-{id}"),
        item_type: "episode".into(),
        embedding_data: encode_json(v),
        embedding_vector: None,
        dimension: v.len() as i64,
        model: "local".into(),
        created_at: 1_750_000_000,
    }
}

/// The degenerate rows, their table and why search cannot rank them.
fn degenerate() -> Vec<(&'static str, Vec<f32>, &'static str, Unsearchable)> {
    let mut huge = normal_vector(99, 384);
    huge[17] = 3.0e38;
    vec![
        ("huge", huge, "embeddings_384", Unsearchable::Overflow),
        (
            "zero",
            vec![0.0; 384],
            "embeddings_384",
            Unsearchable::ZeroNorm,
        ),
        (
            "tiny",
            vec![1e-30; 384],
            "embeddings_384",
            Unsearchable::Underflow,
        ),
        // A table without a vector index: listed all the same.
        (
            "zero-768",
            vec![0.0; 768],
            "embeddings_other",
            Unsearchable::ZeroNorm,
        ),
    ]
}

/// A legacy database of normal rows and the degenerate ones; every row's
/// expected vector bytes by id.
async fn legacy_db() -> (TestDb, BTreeMap<String, Vec<u8>>) {
    let t = TestDb::empty().await;
    create_legacy_table(&t.conn, true).await.unwrap();
    let mut rows: Vec<LegacyRow> = (0..NORMAL_ROWS)
        .map(|i| row(&format!("normal-{i}"), &normal_vector(i as u64 + 1, 384)))
        .collect();
    rows.push(row("normal-768", &normal_vector(500, 768)));
    for (id, v, _, _) in degenerate() {
        rows.push(row(id, &v));
    }
    insert_legacy_rows(&t.conn, &rows, true).await.unwrap();
    let expected = degenerate()
        .into_iter()
        .map(|(id, v, _, _)| (id.to_string(), vector_bytes(&v)))
        .chain((0..NORMAL_ROWS).map(|i| {
            (
                format!("normal-{i}"),
                vector_bytes(&normal_vector(i as u64 + 1, 384)),
            )
        }))
        .chain([(
            "normal-768".to_string(),
            vector_bytes(&normal_vector(500, 768)),
        )])
        .collect();
    (t, expected)
}

fn total_rows() -> u64 {
    NORMAL_ROWS as u64 + 1 + degenerate().len() as u64
}

/// The report lists exactly the degenerate rows, each with its table and
/// reason.
fn assert_lists_degenerate(report: &MigrationReport) {
    assert_eq!(report.unsearchable_count, degenerate().len() as u64);
    let mut listed: Vec<(String, String, Unsearchable)> = report
        .unsearchable
        .iter()
        .map(|u| (u.embedding_id.clone(), u.table.clone(), u.reason))
        .collect();
    listed.sort_by(|a, b| a.0.cmp(&b.0));
    let mut expected: Vec<(String, String, Unsearchable)> = degenerate()
        .into_iter()
        .map(|(id, _, table, reason)| (id.to_string(), table.to_string(), reason))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(listed, expected);
}

/// Every target row holds its expected vector, bit for bit.
async fn assert_vectors_exact(t: &TestDb, expected: &BTreeMap<String, Vec<u8>>) {
    let mut found = 0;
    for table in TARGETS {
        for (id, stored) in read_table(&t.conn, table, true).await {
            let want = &expected[&id];
            assert!(
                matches!(&stored[4], Value::Blob(b) if b == want),
                "vector of {id} in {table} is not bit-exact"
            );
            found += 1;
        }
    }
    assert_eq!(found, expected.len(), "every row is in a target table");
}

/// The 384 table's smoke test: every sampled row found, none of the
/// degenerate ones sampled.
fn assert_smoke_test_passed(report: &MigrationReport) {
    let check = report
        .search_checks
        .iter()
        .find(|c| c.table == "embeddings_384")
        .expect("the 384 table has its index and was searched");
    assert_eq!(check.sampled, NORMAL_ROWS as u64, "{check:?}");
    assert!(check.all_found(), "{check:?}");
    for (id, _, _, _) in degenerate() {
        assert!(!check.missed.contains(&id.to_string()), "{check:?}");
    }
}

#[tokio::test]
async fn dry_run_lists_the_unsearchable_rows() {
    let (t, _) = legacy_db().await;
    let dry = MigrationOptions {
        dry_run: true,
        ..Default::default()
    };
    let report = run_migration(&t.conn, &dry, &NoopObserver).await.unwrap();
    assert_eq!(report.quarantined_count, 0, "{:?}", report.quarantined);
    assert_eq!(report.planned.as_ref().unwrap()["embeddings_384"], 12);
    assert_lists_degenerate(&report);
    let json = serde_json::to_value(&report).unwrap();
    let reasons: Vec<&str> = json["unsearchable"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["reason"].as_str().unwrap())
        .collect();
    assert!(reasons.contains(&"overflow") && reasons.contains(&"underflow"));
    assert!(reasons.contains(&"zero_norm"));

    // The list respects `listed_limit`; the count stays exact.
    let limited = MigrationOptions {
        listed_limit: 2,
        ..dry
    };
    let report = run_migration(&t.conn, &limited, &NoopObserver)
        .await
        .unwrap();
    assert_eq!(report.unsearchable.len(), 2);
    assert_eq!(report.unsearchable_count, degenerate().len() as u64);
}

#[tokio::test]
async fn degenerate_vectors_migrate_bit_for_bit_and_verification_passes() {
    let (t, expected) = legacy_db().await;
    let report = run_migration(&t.conn, &MigrationOptions::default(), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(report.rows_written(), total_rows());
    let v = report.verification.as_ref().unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert!(report.is_clean());
    assert_smoke_test_passed(&report);
    assert_lists_degenerate(&report);
    assert_vectors_exact(&t, &expected).await;
    assert_eq!(
        assert_migrated_exactly(&t.conn, &[], true).await as u64,
        total_rows()
    );

    // A verification on its own agrees, and says the same.
    let verify = MigrationOptions {
        verify_only: true,
        ..Default::default()
    };
    let report = run_migration(&t.conn, &verify, &NoopObserver)
        .await
        .unwrap();
    let v = report.verification.as_ref().unwrap();
    assert!(v.passed, "{:?}", v.discrepancies);
    assert_smoke_test_passed(&report);
    assert_lists_degenerate(&report);
}

#[tokio::test]
async fn the_legacy_table_can_be_dropped() {
    let (t, expected) = legacy_db().await;
    let options = MigrationOptions {
        drop_old_table: true,
        backup: true,
        ..Default::default()
    };
    let report = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(report.failure.is_none(), "{:?}", report.failure);
    assert!(report.verification.as_ref().unwrap().passed);
    assert_smoke_test_passed(&report);
    let dropped = report
        .dropped_legacy
        .as_ref()
        .expect("the legacy table was dropped");
    assert_eq!(dropped.backup.rows, total_rows());
    assert_eq!(
        count(&t.conn, "embeddings_backup").await as u64,
        total_rows()
    );
    assert_vectors_exact(&t, &expected).await;
}
