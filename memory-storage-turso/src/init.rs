//! Schema initialization for applications: every missing table and index,
//! the schema version in `metadata`, and — when asked — the migration of a
//! legacy `embeddings` table, run once however many processes start at the
//! same time.
//!
//! ```no_run
//! use memory_storage_turso::init::{initialize_schema, SchemaOptions};
//!
//! # async fn run(conn: libsql::Connection) -> memory_storage_turso::migration::Result<()> {
//! let report = initialize_schema(
//!     &conn,
//!     &SchemaOptions { auto_migrate: true, ..Default::default() },
//! )
//! .await?;
//! println!("schema version {}, migration: {:?}", report.version, report.migration);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use libsql::Connection;

use crate::db::with_retries;
use crate::error::{DbContext, Error};
use crate::migration::lock::{current_holder, host_name, is_stale};
use crate::migration::{metadata, run_migration, MigrationOptions, MigrationReport, NoopObserver};
use crate::migration::{MigrateError, Result};
use crate::schema::{
    create_item_indexes, create_target_tables, create_vector_index_with, object_exists, ScanBits,
    TargetTable, VectorIndexOptions, SCHEMA_VERSION,
};
use crate::search_plan::TableSearch;
use crate::store::unmigrated_rows_exist;

/// Retries of each schema step after a busy or locked database (several
/// processes start at once).
const SCHEMA_RETRIES: u32 = 8;

/// What [`initialize_schema`] should do.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// Migrate a legacy `embeddings` table that holds unmigrated rows.
    /// Off: the tables are created and the store reads through to the
    /// legacy table (the transition) until a migration runs.
    pub auto_migrate: bool,
    /// Create the DiskANN index of every native table that lacks one (on a
    /// table that already holds many rows this takes a while).
    pub vector_indexes: bool,
    /// Options of those indexes.
    pub vector_index: VectorIndexOptions,
    /// Options of the automatic migration (its lock, batches, retries).
    pub migration: MigrationOptions,
    /// How long to wait for another process's migration before giving up.
    pub wait_for_migration: Duration,
    /// How often to look at the lock while waiting.
    pub poll_interval: Duration,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            auto_migrate: false,
            vector_indexes: true,
            vector_index: VectorIndexOptions::default(),
            migration: MigrationOptions::default(),
            wait_for_migration: Duration::from_secs(3600),
            poll_interval: Duration::from_millis(200),
        }
    }
}

/// What happened to the legacy table.
#[derive(Debug)]
pub enum AutoMigration {
    /// No legacy table, or every legacy row is migrated (or quarantined).
    NotNeeded,
    /// Unmigrated legacy rows exist and `auto_migrate` is off.
    Disabled,
    /// This call ran the migration. Quarantined rows and discrepancies are
    /// in the report (data, not errors): check `verification`.
    Ran(Box<MigrationReport>),
    /// Another process (or task) held the migration lock; this call waited
    /// until it finished and found nothing left to migrate.
    WaitedForOther { waited: Duration },
}

/// What [`initialize_schema`] did.
#[derive(Debug)]
pub struct SchemaReport {
    /// The version recorded before this call (`None`: none was).
    pub version_found: Option<i64>,
    /// The version the database is at now.
    pub version: i64,
    /// Tables and indexes this call created.
    pub created: Vec<String>,
    pub migration: AutoMigration,
}

/// The recorded schema version; a newer one than this code knows is an
/// error, before anything is written.
pub async fn schema_version(conn: &Connection) -> Result<Option<i64>> {
    let Some(text) = metadata::get(conn, metadata::SCHEMA_VERSION).await? else {
        return Ok(None);
    };
    let version = text
        .trim()
        .parse::<i64>()
        .map_err(|_| Error::SchemaVersionUnreadable {
            value: text.clone(),
        })?;
    if version > SCHEMA_VERSION {
        return Err(MigrateError::from(Error::SchemaTooNew {
            found: version,
            supported: SCHEMA_VERSION,
        }));
    }
    Ok(Some(version))
}

/// Creates every missing table and index, records the schema version and,
/// with `auto_migrate`, migrates unmigrated legacy rows through the
/// migration lock: when another process holds it, waits (polling) until it
/// is released and then checks again, so processes starting together
/// migrate once. Safe to call at every start: it changes nothing on a
/// database that is ready.
pub async fn initialize_schema(conn: &Connection, options: &SchemaOptions) -> Result<SchemaReport> {
    let version_found = schema_version(conn).await?;
    let migration = if unmigrated_rows_exist(conn).await? {
        if options.auto_migrate {
            migrate_once(conn, options).await?
        } else {
            AutoMigration::Disabled
        }
    } else {
        AutoMigration::NotNeeded
    };
    let created = create_missing(conn, options).await?;
    if version_found != Some(SCHEMA_VERSION) {
        let version = SCHEMA_VERSION.to_string();
        with_retries(SCHEMA_RETRIES, || {
            metadata::set(conn, metadata::SCHEMA_VERSION, &version)
        })
        .await?;
    }
    Ok(SchemaReport {
        version_found,
        version: SCHEMA_VERSION,
        created,
        migration,
    })
}

/// A wanted object beyond the tables and their item indexes.
#[derive(Debug, Clone, Copy)]
enum Index {
    /// The table's DiskANN index.
    Vector(TargetTable),
    /// The table's quantized scan index.
    Scan(TargetTable, ScanBits),
}

/// Every schema object [`initialize_schema`] makes sure of. A table the
/// recorded search plan searches exactly or through its scan index gets no
/// DiskANN index: the migration's plan found it not worth its cost (on
/// 100,000 rows, an hour and 12× the rows' bytes), and the store would
/// not search through it. A table planned for a scan index gets that.
fn wanted(
    options: &SchemaOptions,
    plan: &BTreeMap<TargetTable, TableSearch>,
) -> Vec<(String, Option<Index>)> {
    let mut names = Vec::new();
    for t in TargetTable::ALL {
        names.push((t.name().to_string(), None));
        names.push((format!("idx_{}_item", t.name()), None));
        if !options.vector_indexes {
            continue;
        }
        let index = match plan.get(&t) {
            Some(TableSearch::Exact) => None,
            Some(TableSearch::Scan { bits, .. }) => {
                t.scan_index_name(*bits).map(|i| (i, Index::Scan(t, *bits)))
            }
            _ => t.vector_index_name().map(|i| (i, Index::Vector(t))),
        };
        if let Some((name, index)) = index {
            names.push((name.to_string(), Some(index)));
        }
    }
    names
}

async fn create_missing(conn: &Connection, options: &SchemaOptions) -> Result<Vec<String>> {
    let plan = with_retries(SCHEMA_RETRIES, || crate::search_plan::read(conn)).await?;
    let mut missing = Vec::new();
    // An object of the scan index's name that is not it is a user's: it
    // is "there", and left alone (the store then searches exactly).
    for (name, index) in wanted(options, &plan) {
        if !object_exists(conn, &name).await? {
            missing.push((name, index));
        }
    }
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    with_retries(SCHEMA_RETRIES, || create_target_tables(conn)).await?;
    with_retries(SCHEMA_RETRIES, || create_item_indexes(conn)).await?;
    for index in missing.iter().filter_map(|(_, i)| *i) {
        with_retries(SCHEMA_RETRIES, || async {
            match index {
                Index::Vector(table) => {
                    create_vector_index_with(conn, table, &options.vector_index).await
                }
                Index::Scan(table, bits) => create_scan_index(conn, table, bits).await,
            }
        })
        .await?;
    }
    Ok(missing.into_iter().map(|(name, _)| name).collect())
}

/// Creates `table`'s scan index where its name is still free (another
/// process starting at the same time may have made it).
async fn create_scan_index(
    conn: &Connection,
    table: TargetTable,
    bits: ScanBits,
) -> crate::Result<()> {
    if crate::scan_index::state(conn, table, bits).await? != crate::scan_index::ScanIndex::Missing {
        return Ok(());
    }
    let Some(sql) = table.scan_index_sql(bits) else {
        return Ok(());
    };
    conn.execute(&sql, ())
        .await
        .db_context(|| format!("creating the scan index of {table}"))?;
    Ok(())
}

/// Runs the migration, or waits for the process that runs it.
async fn migrate_once(conn: &Connection, options: &SchemaOptions) -> Result<AutoMigration> {
    let began = Instant::now();
    let mut waited = false;
    loop {
        if waited && !unmigrated_rows_exist(conn).await? {
            return Ok(AutoMigration::WaitedForOther {
                waited: began.elapsed(),
            });
        }
        match run_migration(conn, &options.migration, &NoopObserver).await {
            Ok(report) => return Ok(AutoMigration::Ran(Box::new(report))),
            Err(MigrateError::LockHeld { holder }) => {
                waited = true;
                wait_for_release(conn, options, began, holder).await?;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Polls the lock until it is free (or stale, so the next attempt takes it
/// over), or the wait runs out.
async fn wait_for_release(
    conn: &Connection,
    options: &SchemaOptions,
    began: Instant,
    mut holder: crate::migration::report::LockHolder,
) -> Result<()> {
    let host = host_name();
    loop {
        if began.elapsed() >= options.wait_for_migration {
            return Err(MigrateError::MigrationWaitTimedOut {
                holder: Some(holder),
                waited_secs: began.elapsed().as_secs(),
            });
        }
        tokio::time::sleep(options.poll_interval).await;
        match with_retries(SCHEMA_RETRIES, || current_holder(conn)).await? {
            None => return Ok(()),
            Some(h) if is_stale(&h, &host) => return Ok(()),
            Some(h) => holder = h,
        }
    }
}
