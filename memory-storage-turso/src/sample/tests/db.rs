//! The legacy table in real libSQL databases: its DDL, a generated database
//! row by row, and batched inserts that roll back.

use super::*;

/// A database file of its own (kept while the first value lives).
async fn fresh_db() -> (test_support::TestDb, libsql::Connection) {
    let t = test_support::TestDb::empty().await;
    let conn = t.conn.clone();
    (t, conn)
}

async fn columns(conn: &libsql::Connection) -> Vec<(String, String)> {
    let mut rows = conn
        .query("PRAGMA table_info(embeddings)", ())
        .await
        .unwrap();
    let mut out = Vec::new();
    while let Some(row) = rows.next().await.unwrap() {
        out.push((row.get::<String>(1).unwrap(), row.get::<String>(2).unwrap()));
    }
    out
}

async fn count(conn: &libsql::Connection, sql: &str) -> i64 {
    let mut rows = conn.query(sql, ()).await.unwrap();
    rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
}

#[tokio::test]
async fn creates_the_table_with_and_without_the_vector_column() {
    let (_db, conn) = fresh_db().await;
    create_legacy_table(&conn, true).await.unwrap();
    let cols = columns(&conn).await;
    let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "embedding_id",
            "item_id",
            "item_type",
            "embedding_data",
            "embedding_vector",
            "dimension",
            "model",
            "created_at"
        ]
    );
    assert_eq!(cols[4].1, "F32_BLOB(384)");
    let index = "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
                 AND name = 'idx_embeddings_item'";
    assert_eq!(count(&conn, index).await, 1);

    let (_db2, conn2) = fresh_db().await;
    create_legacy_table(&conn2, false).await.unwrap();
    let names: Vec<String> = columns(&conn2).await.into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 7);
    assert!(!names.iter().any(|n| n == "embedding_vector"));
    assert_eq!(count(&conn2, index).await, 1);
}

#[tokio::test]
async fn generated_database_holds_what_the_summary_says() {
    let dir = tempfile::tempdir().unwrap();
    let db = libsql::Builder::new_local(dir.path().join("legacy.db"))
        .build()
        .await
        .unwrap();
    let conn = db.connect().unwrap();
    let spec = small_spec(2500, true);
    let summary = generate_legacy_database(&conn, &spec).await.unwrap();
    assert_eq!(summary.total_rows, 2500);
    assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 2500);
    assert_eq!(summary.bad.len(), 32);
    assert!(summary.bad.windows(2).all(|w| w[0].0 < w[1].0));
    for (dim, n) in &summary.valid_per_dimension {
        let sql = format!("SELECT count(*) FROM embeddings WHERE dimension = {dim}");
        assert!(count(&conn, &sql).await >= *n as i64);
    }
    assert_eq!(summary.bad, summarize(&spec).bad);

    // Vectors went in as BLOBs of exactly 4 × n bytes, the rest as native types.
    let blobs = "SELECT count(*) FROM embeddings WHERE embedding_vector IS NOT NULL \
                 AND (typeof(embedding_vector) <> 'blob' \
                 OR length(embedding_vector) <> 4 * dimension)";
    assert_eq!(count(&conn, blobs).await, 0);
    let typed = "SELECT count(*) FROM embeddings WHERE typeof(dimension) <> 'integer' \
                 OR typeof(created_at) <> 'integer' OR typeof(embedding_data) <> 'text'";
    assert_eq!(count(&conn, typed).await, 0);

    // Row by row, the database holds exactly the generated rows.
    let mut rows = conn
        .query(
            "SELECT embedding_id, item_id, item_type, embedding_data, embedding_vector, \
             dimension, model, created_at FROM embeddings ORDER BY rowid",
            (),
        )
        .await
        .unwrap();
    for (expected, _) in generate_rows(&spec) {
        let row = rows.next().await.unwrap().unwrap();
        let stored = LegacyRow {
            embedding_id: row.get(0).unwrap(),
            item_id: row.get(1).unwrap(),
            item_type: row.get(2).unwrap(),
            embedding_data: row.get(3).unwrap(),
            embedding_vector: row.get(4).unwrap(),
            dimension: row.get(5).unwrap(),
            model: row.get(6).unwrap(),
            created_at: row.get(7).unwrap(),
        };
        assert_eq!(stored, expected);
    }
    assert!(rows.next().await.unwrap().is_none());
}

#[tokio::test]
async fn inserts_without_the_vector_column_and_rolls_back_a_failed_batch() {
    let (_db, conn) = fresh_db().await;
    create_legacy_table(&conn, false).await.unwrap();
    let mut rows: Vec<LegacyRow> = generate_rows(&small_spec(1500, true))
        .map(|(row, _)| row)
        .collect();
    insert_legacy_rows(&conn, &rows[..1200], false)
        .await
        .unwrap();
    assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 1200);

    // A duplicate key fails its batch, which is rolled back; earlier rows stay.
    rows[1400] = rows[0].clone();
    assert!(insert_legacy_rows(&conn, &rows[1200..], false)
        .await
        .is_err());
    assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 1200);
    assert!(conn.is_autocommit());
}
