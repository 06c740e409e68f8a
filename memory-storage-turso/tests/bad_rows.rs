//! Every kind of bad row is reported with a reason, recorded in the
//! database, never written to a target, never removed from the source.

use std::collections::BTreeSet;

use memory_storage_turso::migration::{
    quarantined_rows, run_migration, MigrationOptions, NoopObserver,
};
use memory_storage_turso::sample::{encode_json, BadKind};
use test_support::*;

fn execute() -> MigrationOptions {
    MigrationOptions {
        batch_size: 50,
        build_vector_index: false,
        ..Default::default()
    }
}

fn expected_code(kind: BadKind) -> &'static str {
    match kind {
        BadKind::InvalidJson | BadKind::NanText => "invalid_json",
        BadKind::JsonNull | BadKind::Object => "not_an_array",
        BadKind::StringArray | BadKind::NestedArray => "non_numeric_element",
        BadKind::OutOfRange => "out_of_range",
        BadKind::Empty => "empty",
        BadKind::DimensionMismatch => "dimension_mismatch",
        BadKind::DimensionNotPositive => "invalid_dimension",
        BadKind::UnknownAlgorithm => "unknown_compression",
        BadKind::BadBase64 => "invalid_base64",
        BadKind::WrongOriginalSize => "size_mismatch",
        BadKind::NotMultipleOf4 => "not_multiple_of_4",
        BadKind::NanInPayload => "non_finite",
        BadKind::LegacyVectorMismatch => "legacy_vector_mismatch",
    }
}

#[tokio::test]
async fn every_bad_kind_is_quarantined_with_its_reason() {
    let (t, summary) = TestDb::sample(&small_spec(700, 17)).await;
    let kinds: BTreeSet<BadKind> = summary.bad.iter().map(|(_, k)| *k).collect();
    assert_eq!(
        kinds.len(),
        BadKind::ALL.len(),
        "the fixture plants every kind"
    );

    let report = run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap();
    assert!(report.verification.as_ref().unwrap().passed);
    assert!(
        !report.is_clean(),
        "quarantined rows make the run need attention"
    );
    let recorded = quarantined_rows(&t.conn).await.unwrap();
    assert_eq!(recorded.len(), summary.bad.len());
    for (id, kind) in &summary.bad {
        let in_report = report
            .quarantined
            .iter()
            .find(|q| &q.embedding_id == id)
            .unwrap();
        assert_eq!(
            in_report.code,
            expected_code(*kind),
            "{id}: {}",
            in_report.reason
        );
        let in_db = recorded.iter().find(|q| &q.embedding_id == id).unwrap();
        assert_eq!(in_db, in_report);
    }
    assert_eq!(count(&t.conn, "embeddings").await, 700);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}

#[tokio::test]
async fn a_fixed_bad_row_migrates_on_the_next_run_and_leaves_the_record() {
    let (t, summary) = TestDb::sample(&small_spec(300, 23)).await;
    run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap();
    let (id, _) = summary
        .bad
        .iter()
        .find(|(_, k)| *k == BadKind::DimensionMismatch)
        .unwrap();
    let v: Vec<f32> = vec![0.125; 384];
    t.conn
        .execute(
            "UPDATE embeddings SET embedding_data = ?1, dimension = 384, embedding_vector = NULL WHERE embedding_id = ?2",
            libsql::params![encode_json(&v), id.as_str()],
        )
        .await
        .unwrap();
    let report = run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap();
    assert_eq!(report.rows_written(), 1);
    assert_eq!(report.quarantined_count, summary.bad.len() as u64 - 1);
    let recorded = quarantined_rows(&t.conn).await.unwrap();
    assert!(!recorded.iter().any(|q| &q.embedding_id == id));
    let still_bad: Vec<String> = bad_ids(&summary).into_iter().filter(|b| b != id).collect();
    assert_migrated_exactly(&t.conn, &still_bad, true).await;
}
