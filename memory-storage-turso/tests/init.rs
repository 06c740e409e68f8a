//! Schema initialization against real libSQL files: everything missing is
//! created once, the version is recorded and a newer one refused, and ten
//! applications starting together on a legacy database migrate it once —
//! as ten tasks with their own connections, and as ten real processes.

use std::time::{Duration, Instant};

use memory_storage_turso::init::{initialize_schema, AutoMigration, SchemaOptions, SchemaReport};
use memory_storage_turso::migration::MigrateError;
use memory_storage_turso::migration::MigrationLock;
use memory_storage_turso::migration::MigrationOptions;
use memory_storage_turso::schema::{object_exists, ScanBits};
use memory_storage_turso::store::{unmigrated_rows_exist, EmbeddingStore, Source};
use memory_storage_turso::Error;
use test_support::*;

const OBJECTS: [&str; 14] = [
    "embeddings_384",
    "embeddings_1024",
    "embeddings_1536",
    "embeddings_3072",
    "embeddings_other",
    "idx_embeddings_384_item",
    "idx_embeddings_1024_item",
    "idx_embeddings_1536_item",
    "idx_embeddings_3072_item",
    "idx_embeddings_other_item",
    "idx_embeddings_384_vector",
    "idx_embeddings_1024_vector",
    "idx_embeddings_1536_vector",
    "idx_embeddings_3072_vector",
];

/// Auto-migration without vector indexes, so the tests stay fast.
fn auto() -> SchemaOptions {
    SchemaOptions {
        auto_migrate: true,
        vector_indexes: false,
        migration: MigrationOptions {
            batch_size: 100,
            build_vector_index: false,
            ..Default::default()
        },
        poll_interval: Duration::from_millis(50),
        ..Default::default()
    }
}

#[tokio::test]
async fn everything_missing_is_created_once_and_the_version_recorded() {
    let t = TestDb::empty().await;
    let first = initialize_schema(&t.conn, &SchemaOptions::default())
        .await
        .unwrap();
    let mut created = first.created.clone();
    created.sort();
    let mut want: Vec<String> = OBJECTS.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(created, want);
    assert_eq!(first.version_found, None);
    assert_eq!(first.version, 2);
    assert!(matches!(first.migration, AutoMigration::NotNeeded));
    for name in OBJECTS {
        assert!(object_exists(&t.conn, name).await.unwrap(), "{name}");
    }
    assert_eq!(schema_version(&t.conn).await, Some("2".into()));

    let schema_before = schema_sql(&t).await;
    let second = initialize_schema(&t.conn, &auto()).await.unwrap();
    assert!(second.created.is_empty(), "{:?}", second.created);
    assert_eq!(second.version_found, Some(2));
    assert!(matches!(second.migration, AutoMigration::NotNeeded));
    assert_eq!(schema_sql(&t).await, schema_before);
    // The store opens on it.
    EmbeddingStore::open(t.conn.clone()).await.unwrap();
}

#[tokio::test]
async fn the_recorded_search_plan_decides_which_index_a_table_gets() {
    use memory_storage_turso::schema::TargetTable;
    use memory_storage_turso::search_plan::{self, TableSearch};
    let t = TestDb::empty().await;
    let without_indexes = SchemaOptions {
        vector_indexes: false,
        ..SchemaOptions::default()
    };
    initialize_schema(&t.conn, &without_indexes).await.unwrap();
    // What a migration's plan recorded: 384 searched exactly, 1024 through
    // its scan index, the others through DiskANN.
    let mut plan = std::collections::BTreeMap::new();
    plan.insert(TargetTable::D384, TableSearch::Exact);
    plan.insert(
        TargetTable::D1024,
        TableSearch::Scan {
            overfetch: 4,
            bits: ScanBits::Float8,
            planned_recall: Some(0.97),
            measured_recall: None,
        },
    );
    search_plan::write(&t.conn, &plan).await.unwrap();

    let next = initialize_schema(&t.conn, &SchemaOptions::default())
        .await
        .unwrap();
    let mut created = next.created.clone();
    created.sort();
    assert_eq!(
        created,
        [
            "idx_embeddings_1024_scan",
            "idx_embeddings_1536_vector",
            "idx_embeddings_3072_vector"
        ]
    );
    for absent in ["idx_embeddings_384_vector", "idx_embeddings_1024_vector"] {
        assert!(!object_exists(&t.conn, absent).await.unwrap(), "{absent}");
    }
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert_eq!(
        store.search_method(1024).await.unwrap(),
        memory_storage_turso::store::SearchMethod::ScanIndex("idx_embeddings_1024_scan")
    );
    // Nothing more the next time.
    let again = initialize_schema(&t.conn, &SchemaOptions::default())
        .await
        .unwrap();
    assert!(again.created.is_empty(), "{:?}", again.created);
}

async fn schema_sql(t: &TestDb) -> Vec<String> {
    let mut rows = t
        .conn
        .query(
            "SELECT name || ':' || coalesce(sql, '') FROM sqlite_master ORDER BY name",
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

#[tokio::test]
async fn a_newer_schema_version_is_refused_before_anything_is_written() {
    let t = TestDb::empty().await;
    set_schema_version(&t.conn, "3").await;
    let before = schema_sql(&t).await;
    let err = initialize_schema(&t.conn, &auto()).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::Core(Error::SchemaTooNew {
                found: 3,
                supported: 2
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade"), "{err}");
    assert_eq!(schema_sql(&t).await, before, "the refused call wrote");

    set_schema_version(&t.conn, "two").await;
    let err = initialize_schema(&t.conn, &auto()).await.unwrap_err();
    assert!(
        matches!(
            err,
            MigrateError::Core(Error::SchemaVersionUnreadable { .. })
        ),
        "{err:?}"
    );

    // An older version is upgraded.
    set_schema_version(&t.conn, "1").await;
    let report = initialize_schema(&t.conn, &auto()).await.unwrap();
    assert_eq!(report.version_found, Some(1));
    assert_eq!(schema_version(&t.conn).await, Some("2".into()));
}

#[tokio::test]
async fn without_auto_migrate_the_legacy_rows_stay_and_reads_fall_back() {
    let (t, _) = TestDb::sample(&small_spec(120, 8)).await;
    let report = initialize_schema(&t.conn, &SchemaOptions::default())
        .await
        .unwrap();
    assert!(matches!(report.migration, AutoMigration::Disabled));
    assert!(unmigrated_rows_exist(&t.conn).await.unwrap());
    for table in TARGETS {
        assert_eq!(count(&t.conn, table).await, 0, "{table}");
    }
    let store = EmbeddingStore::open(t.conn.clone()).await.unwrap();
    assert!(store.in_transition().await.unwrap());
    let legacy = read_table(&t.conn, "embeddings", true).await;
    let (id, _) = legacy
        .iter()
        .find(|(_, r)| matches!(&r[3], libsql::Value::Text(d) if oracle_vector(d).is_some()))
        .unwrap();
    assert_eq!(
        store.get_by_id(id).await.unwrap().unwrap().source,
        Source::Legacy
    );
}

#[tokio::test]
async fn a_live_migration_is_waited_for_and_the_wait_is_bounded() {
    let (t, _) = TestDb::sample(&small_spec(60, 9)).await;
    let (_db, other) = connect(&t.path, Duration::from_secs(5)).await;
    let lock = MigrationLock::acquire(&other).await.unwrap();
    let options = SchemaOptions {
        wait_for_migration: Duration::from_millis(300),
        ..auto()
    };
    let began = Instant::now();
    let err = initialize_schema(&t.conn, &options).await.unwrap_err();
    assert!(
        matches!(&err, MigrateError::MigrationWaitTimedOut { holder: Some(h), .. } if h.pid == lock.pid),
        "{err:?}"
    );
    assert!(began.elapsed() >= Duration::from_millis(300));
    assert!(unmigrated_rows_exist(&t.conn).await.unwrap());
    // Released: the next start migrates.
    lock.release(&other).await.unwrap();
    let report = initialize_schema(&t.conn, &auto()).await.unwrap();
    assert!(matches!(report.migration, AutoMigration::Ran(_)));
    assert!(!unmigrated_rows_exist(&t.conn).await.unwrap());
}

/// What one application start did: `ran` with the rows it copied,
/// `waited`, or `none` (nothing left when it looked).
fn outcome(report: &SchemaReport) -> (&'static str, u64) {
    match &report.migration {
        AutoMigration::Ran(r) => ("ran", r.rows_written()),
        AutoMigration::WaitedForOther { .. } => ("waited", 0),
        AutoMigration::NotNeeded => ("none", 0),
        AutoMigration::Disabled => ("disabled", 0),
    }
}

/// Exactly one start copied rows, all of them; every other one waited for
/// it or found nothing to do (a start that ran only after the copy was
/// complete writes nothing). Then the tables hold every good row once.
async fn assert_migrated_once(
    t: &TestDb,
    outcomes: &[(String, u64)],
    good_rows: u64,
    bad: &[String],
) {
    eprintln!("outcomes: {outcomes:?}");
    let copiers: Vec<&(String, u64)> = outcomes.iter().filter(|(_, n)| *n > 0).collect();
    assert_eq!(copiers.len(), 1, "{outcomes:?}");
    assert_eq!(copiers[0], &("ran".to_string(), good_rows), "{outcomes:?}");
    assert!(
        outcomes.iter().any(|(k, _)| k == "waited"),
        "nobody waited: {outcomes:?}"
    );
    assert!(outcomes.iter().all(|(k, _)| k != "disabled"));
    assert_migrated_exactly(&t.conn, bad, true).await;
    assert_eq!(count(&t.conn, "embedding_migration_lock").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_tasks_starting_at_once_migrate_once() {
    let (t, summary) = TestDb::sample(&small_spec(400, 12)).await;
    let good = (summary.total_rows - summary.bad.len()) as u64;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let path = t.path.clone();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            // Its own Database and connection, as another process has.
            let (_db, conn) = connect(&path, Duration::from_secs(5)).await;
            barrier.wait().await;
            let report = initialize_schema(&conn, &auto()).await.unwrap();
            // Whoever ran it, the migration is done when the call returns.
            assert!(!unmigrated_rows_exist(&conn).await.unwrap());
            let (kind, rows) = outcome(&report);
            (kind.to_string(), rows)
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    assert_migrated_once(&t, &outcomes, good, &bad_ids(&summary)).await;
}

/// The child side of the process test: runs only when spawned by it.
#[tokio::test]
#[ignore = "spawned by ten_processes_starting_at_once_migrate_once"]
async fn init_child() {
    let Ok(path) = std::env::var("INIT_CHILD_DB") else {
        return;
    };
    let start: u128 = std::env::var("INIT_CHILD_START").unwrap().parse().unwrap();
    let (_db, conn) = connect(std::path::Path::new(&path), Duration::from_secs(5)).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    if start > now {
        tokio::time::sleep(Duration::from_millis((start - now) as u64)).await;
    }
    let report = initialize_schema(&conn, &auto()).await.unwrap();
    // Whoever ran it, the migration is done when the call returns.
    assert!(!unmigrated_rows_exist(&conn).await.unwrap());
    let (kind, rows) = outcome(&report);
    println!("OUTCOME {kind} {rows} pid {}", std::process::id());
}

#[tokio::test]
async fn ten_processes_starting_at_once_migrate_once() {
    let (t, summary) = TestDb::sample(&small_spec(400, 13)).await;
    let good = (summary.total_rows - summary.bad.len()) as u64;
    let exe = std::env::current_exe().unwrap();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        + 1500;
    let children: Vec<std::process::Child> = (0..10)
        .map(|_| {
            std::process::Command::new(&exe)
                .args([
                    "--exact",
                    "init_child",
                    "--ignored",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env("INIT_CHILD_DB", &t.path)
                .env("INIT_CHILD_START", start.to_string())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut outcomes = Vec::new();
    let mut pids = std::collections::BTreeSet::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = stdout
            .lines()
            .find_map(|l| l.split_once("OUTCOME ").map(|(_, rest)| rest))
            .unwrap_or_else(|| panic!("no outcome in: {stdout}"));
        let parts: Vec<&str> = line.split_whitespace().collect();
        outcomes.push((parts[0].to_string(), parts[1].parse::<u64>().unwrap()));
        pids.insert(parts[3].to_string());
    }
    assert_eq!(pids.len(), 10, "ten distinct processes");
    assert_migrated_once(&t, &outcomes, good, &bad_ids(&summary)).await;
}

/// The recorded `schema_version`, read with plain SQL.
async fn schema_version(conn: &libsql::Connection) -> Option<String> {
    scalar_text(
        conn,
        "SELECT value FROM metadata WHERE key = 'schema_version'",
    )
    .await
}

/// Records `schema_version` = `version` as another build would have.
async fn set_schema_version(conn: &libsql::Connection, version: &str) {
    conn.execute(memory_storage_turso::schema::METADATA_TABLE_SQL, ())
        .await
        .unwrap();
    conn.execute(
        "INSERT OR REPLACE INTO metadata (key, value) VALUES ('schema_version', ?1)",
        [version],
    )
    .await
    .unwrap();
}
