//! Property: for random legacy tables, random rows already in the new
//! tables (same ids and new ids, older and newer), a random table of the
//! user's named `embeddings_backup`, and either conflict policy:
//! migrate → the application writes → re-run → rollback leaves the schema
//! and every row of every table that existed before exactly as a dump taken
//! before, except the application's later writes, which survive.

use std::collections::BTreeMap;

use libsql::Value;
use memory_storage_turso::migration::{
    run_migration, ConflictPolicy, MigrationOptions, NoopObserver,
};
use memory_storage_turso::sample::{encode_json, vector_bytes, SampleSpec};
use memory_storage_turso::schema::TargetTable;
use proptest::prelude::*;
use test_support::*;

/// A row already in a new table before the first run.
#[derive(Debug, Clone)]
enum Prior {
    /// The application's version of a legacy key, newer or older.
    Version { pick: usize, newer: bool },
    /// Exactly what the migration would write for a legacy key.
    Identical { pick: usize },
    /// A key the legacy table does not have.
    Own { n: usize },
}

/// A write of the application after the first run.
#[derive(Debug, Clone)]
enum Later {
    /// Writes over whatever row the new tables hold for a key.
    Update { pick: usize },
    /// Stores a new key.
    Insert { n: usize },
}

fn prior() -> impl Strategy<Value = Prior> {
    prop_oneof![
        3 => (any::<usize>(), any::<bool>()).prop_map(|(pick, newer)| Prior::Version { pick, newer }),
        1 => any::<usize>().prop_map(|pick| Prior::Identical { pick }),
        1 => (0usize..1000).prop_map(|n| Prior::Own { n }),
    ]
}

fn later() -> impl Strategy<Value = Later> {
    prop_oneof![
        3 => any::<usize>().prop_map(|pick| Later::Update { pick }),
        1 => (0usize..1000).prop_map(|n| Later::Insert { n }),
    ]
}

/// Rows of the new tables as a dump shows them: `(table, id)` → the line.
type Expected = BTreeMap<(String, String), String>;

fn line(row: &[Value]) -> String {
    row.iter()
        .map(|v| format!("{v:?}"))
        .collect::<Vec<_>>()
        .join(" | ")
}

fn id_of(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => panic!("non-text id {other:?}"),
    }
}

fn table_of(row: &StoredRow) -> Option<TargetTable> {
    match row[5] {
        Value::Integer(d) if d > 0 => Some(memory_storage_turso::schema::route(d as usize)),
        _ => None,
    }
}

/// A row for `id` in `table`, with values from `salt`.
fn row_for(id: &Value, table: TargetTable, salt: u64, created_at: i64) -> StoredRow {
    let dim = table.native_dimension().unwrap_or(7);
    let v: Vec<f32> = (0..dim)
        .map(|i| ((i as u64 * 31 + salt) % 997) as f32 / 997.0 - 0.5)
        .collect();
    vec![
        id.clone(),
        Value::Text(format!("item-{salt}")),
        Value::Text("note".into()),
        Value::Text(encode_json(&v)),
        Value::Blob(vector_bytes(&v)),
        Value::Integer(dim as i64),
        Value::Text(format!("app-{salt}")),
        Value::Integer(created_at),
    ]
}

async fn put(conn: &libsql::Connection, table: TargetTable, row: StoredRow) {
    conn.execute(table.create_table_sql(), ()).await.unwrap();
    conn.execute(
        &format!(
            "INSERT OR REPLACE INTO {} VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            table.name()
        ),
        row,
    )
    .await
    .unwrap();
}

async fn scenario(
    seed: u64,
    rows: usize,
    priors: Vec<Prior>,
    laters: Vec<Later>,
    user_backup: bool,
    policy: ConflictPolicy,
    batch: usize,
) {
    let mut spec = SampleSpec::realistic(rows, seed);
    spec.bad_rows = rows / 10;
    let (t, summary) = TestDb::sample(&spec).await;
    let bad = bad_ids(&summary);
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let good: Vec<(&String, &StoredRow)> = legacy
        .iter()
        .filter(|(id, r)| !bad.contains(*id) && table_of(r).is_some())
        .collect();
    for (n, p) in priors.iter().enumerate() {
        match p {
            Prior::Version { pick, newer } if !good.is_empty() => {
                let (_, row) = good[pick % good.len()];
                let table = table_of(row).unwrap();
                let Value::Integer(created) = row[7] else {
                    continue;
                };
                let at = if *newer { created + 500 } else { created - 500 };
                let mut mine = row_for(&row[0], table, seed + n as u64, at);
                if table == TargetTable::Other {
                    mine[5] = row[5].clone();
                    let dim = match row[5] {
                        Value::Integer(d) => d as usize,
                        _ => 0,
                    };
                    let v: Vec<f32> = (0..dim).map(|i| i as f32 + 0.25).collect();
                    mine[3] = Value::Text(encode_json(&v));
                    mine[4] = Value::Blob(vector_bytes(&v));
                }
                put(&t.conn, table, mine).await;
            }
            Prior::Identical { pick } if !good.is_empty() => {
                // The migration writes the decoded vector; only plain-JSON
                // legacy rows with a vector column are easy to mirror here.
                let (_, row) = good[pick % good.len()];
                if let (Value::Blob(_), Value::Text(data)) = (&row[4], &row[3]) {
                    if data.starts_with('[') {
                        put(&t.conn, table_of(row).unwrap(), row.clone()).await;
                    }
                }
            }
            Prior::Own { n } => {
                let id = Value::Text(format!("prior-own-{n}"));
                put(
                    &t.conn,
                    TargetTable::D384,
                    row_for(&id, TargetTable::D384, *n as u64, 1),
                )
                .await;
            }
            _ => {}
        }
    }
    if user_backup {
        t.conn
            .execute_batch(
                "CREATE TABLE embeddings_backup (note TEXT, at INTEGER);
                 INSERT INTO embeddings_backup VALUES ('the user''s own', 1), (NULL, 2);",
            )
            .await
            .unwrap();
    }
    let before = dump_database(&t.conn).await;
    let options = MigrationOptions {
        batch_size: batch,
        build_vector_index: false,
        on_conflict: policy,
        ..Default::default()
    };

    let first = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(
        first.verification.as_ref().unwrap().passed,
        "{:?}",
        first.verification
    );

    // The application's later writes, and what the new tables must hold
    // for them after everything.
    let mut expected: Expected = BTreeMap::new();
    for (n, l) in laters.iter().enumerate() {
        let salt = 10_000 + n as u64;
        match l {
            Later::Update { pick } if !good.is_empty() => {
                let (_, row) = good[pick % good.len()];
                let table = table_of(row).unwrap();
                if table == TargetTable::Other {
                    continue;
                }
                let mine = row_for(&row[0], table, salt, 1_900_000_000);
                expected.insert((table.name().into(), id_of(&row[0])), line(&mine));
                put(&t.conn, table, mine).await;
            }
            Later::Insert { n } => {
                let id = Value::Text(format!("later-own-{n}"));
                let mine = row_for(&id, TargetTable::D384, salt, 1_900_000_000);
                expected.insert(
                    ("embeddings_384".into(), format!("later-own-{n}")),
                    line(&mine),
                );
                put(&t.conn, TargetTable::D384, mine).await;
            }
            _ => {}
        }
    }

    let rerun = run_migration(&t.conn, &options, &NoopObserver)
        .await
        .unwrap();
    assert!(rerun.verification.as_ref().unwrap().passed);
    if policy == ConflictPolicy::Target {
        // Every later write is still there, untouched by the re-run.
        for ((table, id), row) in &expected {
            let now = read_table(&t.conn, table, true).await;
            assert_eq!(&line(&now[id]), row, "re-run: {table} {id}");
        }
    }

    run_migration(
        &t.conn,
        &MigrationOptions {
            rollback: true,
            ..Default::default()
        },
        &NoopObserver,
    )
    .await
    .unwrap();
    let after = dump_database(&t.conn).await;

    // What the dump must be: the one before, with the later writes.
    let mut want = before.clone();
    for ((table, id), row) in &expected {
        let entry = want.entry(table.clone()).or_insert_with(|| {
            let sql = after.get(table).map(|t| t.0.clone()).unwrap_or_default();
            (sql, Vec::new())
        });
        let prefix = format!("{:?} |", Value::Text(id.clone()));
        entry.1.retain(|r| !r.starts_with(&prefix));
        entry.1.push(row.clone());
        entry.1.sort();
    }
    assert_same_database(
        &want,
        &after,
        "after migrate, later writes, re-run, rollback",
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_application_keeps_everything_it_had_and_wrote(
        seed in 0u64..1_000_000,
        rows in 5usize..80,
        priors in proptest::collection::vec(prior(), 0..12),
        laters in proptest::collection::vec(later(), 0..8),
        user_backup in any::<bool>(),
        legacy_wins in any::<bool>(),
        batch in 1usize..30,
    ) {
        let policy = if legacy_wins { ConflictPolicy::Legacy } else { ConflictPolicy::Target };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(scenario(seed, rows, priors, laters, user_backup, policy, batch));
    }
}
