//! A run stopped between batches resumes from its checkpoint: nothing
//! twice, nothing skipped.

use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use test_support::*;

/// Asks the run to stop once `after` copy progress events were seen.
#[tokio::test]
async fn an_interrupted_copy_resumes_from_the_checkpoint() {
    let (t, summary) = TestDb::sample(&small_spec(1000, 31)).await;
    let options = MigrationOptions {
        batch_size: 100,
        build_vector_index: false,
        ..Default::default()
    };
    let stop = StopAfter::batches(3);
    let first = run_migration(&t.conn, &options, &stop).await.unwrap();
    assert!(first.interrupted);
    assert!(!first.is_clean());
    assert!(
        first.verification.is_none(),
        "no verification after an interrupted copy"
    );
    let written_first = first.rows_written();
    assert!(written_first > 0 && written_first <= 300, "{written_first}");

    let second = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(second.resumed_from.is_some());
    assert_eq!(
        written_first + second.rows_written(),
        1000 - summary.bad.len() as u64,
        "every good row written exactly once across the two runs"
    );
    assert!(second.verification.unwrap().passed);
    assert_migrated_exactly(&t.conn, &bad_ids(&summary), true).await;
}
