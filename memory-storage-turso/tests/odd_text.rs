//! Text that libSQL's own value conversion mishandles: embedded NUL bytes
//! (its conversion stops at the first one) and invalid UTF-8 (it panics).
//! The migration reads text as exact bytes, so the first migrates bit for
//! bit and the second is reported, never a crash.

use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::sample::{
    create_legacy_table, encode_json, insert_legacy_rows, LegacyRow,
};
use memory_storage_turso::Error;
use test_support::*;

fn row(id: &str) -> LegacyRow {
    LegacyRow {
        embedding_id: id.to_string(),
        item_id: format!("item-{id}"),
        item_type: "episode".into(),
        embedding_data: encode_json(&[0.5, -0.0, 1e-40]),
        embedding_vector: None,
        dimension: 3,
        model: "local".into(),
        created_at: 1_700_000_000,
    }
}

async fn scalar(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

fn execute() -> MigrationOptions {
    MigrationOptions {
        batch_size: 2,
        build_vector_index: false,
        ..Default::default()
    }
}

#[tokio::test]
async fn text_with_nul_bytes_migrates_bit_for_bit_and_bad_utf8_is_quarantined() {
    let t = TestDb::empty().await;
    create_legacy_table(&t.conn, true).await.unwrap();
    insert_legacy_rows(&t.conn, &[row("a"), row("b"), row("c"), row("d")], true)
        .await
        .unwrap();
    // A NUL inside item_id and inside the id itself; invalid UTF-8 in model.
    t.conn
        .execute("UPDATE embeddings SET item_id = CAST(x'6974656d007461696c' AS TEXT) WHERE embedding_id = 'a'", ())
        .await
        .unwrap();
    t.conn
        .execute("UPDATE embeddings SET embedding_id = CAST(x'6200627a' AS TEXT) WHERE embedding_id = 'b'", ())
        .await
        .unwrap();
    t.conn
        .execute(
            "UPDATE embeddings SET model = CAST(x'6d6f64ff' AS TEXT) WHERE embedding_id = 'c'",
            (),
        )
        .await
        .unwrap();

    let report = run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap();
    assert!(
        report.verification.as_ref().unwrap().passed,
        "{:?}",
        report.verification
    );
    assert_eq!(report.quarantined_count, 1);
    assert_eq!(report.quarantined[0].code, "invalid_utf8");
    assert!(report.quarantined[0].reason.contains("model"));
    // Every good row's text columns are byte-identical in the target.
    let same = scalar(
        &t.conn,
        "SELECT count(*) FROM embeddings e JOIN embeddings_other o ON o.embedding_id = e.embedding_id \
         WHERE hex(o.embedding_id) = hex(e.embedding_id) AND hex(o.item_id) = hex(e.item_id) \
         AND hex(o.model) = hex(e.model) AND typeof(o.item_id) = 'text'",
    )
    .await;
    assert_eq!(same, 3);
    assert_eq!(
        scalar(&t.conn, "SELECT length(CAST(item_id AS BLOB)) FROM embeddings_other WHERE item_id LIKE 'item%' AND embedding_id = 'a'").await,
        9,
        "the NUL and the bytes after it survived"
    );
    assert_eq!(scalar(&t.conn, "SELECT count(*) FROM embeddings").await, 4);
}

#[tokio::test]
async fn an_id_that_is_not_utf8_stops_the_run_with_a_sentence_not_a_panic() {
    let t = TestDb::empty().await;
    create_legacy_table(&t.conn, true).await.unwrap();
    insert_legacy_rows(&t.conn, &[row("a"), row("b"), row("m"), row("z")], true)
        .await
        .unwrap();
    t.conn
        .execute(
            "UPDATE embeddings SET embedding_id = CAST(x'6dff' AS TEXT) WHERE embedding_id = 'm'",
            (),
        )
        .await
        .unwrap();
    let err = run_migration(&t.conn, &execute(), &NoopObserver)
        .await
        .unwrap_err();
    assert!(
        matches!(err, MigrateError::Core(Error::UnreadableKey { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("not valid UTF-8"));
    // The batch before it was committed and is resumable.
    assert_eq!(
        scalar(&t.conn, "SELECT count(*) FROM embeddings_other").await,
        2
    );
    assert_eq!(scalar(&t.conn, "SELECT count(*) FROM embeddings").await, 4);
}
