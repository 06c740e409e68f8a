//! Typed errors of the library. Bad rows are not errors: they are data in
//! the migration report.

use std::path::PathBuf;

/// Everything that can stop a library call. Each message says what
/// happened and, where there is one, what to do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A database statement failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Database {
        context: String,
        #[source]
        source: libsql::Error,
    },
    /// The local database file does not exist (nothing was created).
    #[error("no database file at {}: check the path (nothing was created)", path.display())]
    DatabaseNotFound { path: PathBuf },
    /// The file exists but is not a SQLite/libSQL database.
    #[error("{} is not a libSQL/SQLite database: {source}", path.display())]
    NotADatabase {
        path: PathBuf,
        #[source]
        source: libsql::Error,
    },
    /// The database could not be opened.
    #[error("cannot open the database {location}: {source}")]
    Open {
        location: String,
        #[source]
        source: libsql::Error,
    },
    /// There is no legacy `embeddings` table to migrate.
    #[error("the database has no `embeddings` table: there is nothing to migrate (was it already migrated and dropped?)")]
    MissingLegacyTable,
    /// The legacy table was dropped by a completed migration.
    #[error("the `embeddings` table was dropped by a completed migration (at Unix time {at}): there is nothing left to migrate; `--rollback --yes` restores it from `embeddings_backup`")]
    LegacyDropped { at: i64 },
    /// The legacy table lacks columns the migration needs.
    #[error("the `embeddings` table lacks the column(s) {}: it is not a memory-storage-turso embeddings table", missing.join(", "))]
    LegacyTableShape { missing: Vec<String> },
    /// A target table exists with a different shape; it is never altered.
    #[error("the existing table {table} lacks the column(s) {}; the migration never alters an existing table: rename or fix it, then run again", missing.join(", "))]
    IncompatibleTargetTable { table: String, missing: Vec<String> },
    /// The options make no sense together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Vector indexes were asked for on a database without libSQL's vector
    /// functions (a plain SQLite server, an old libSQL).
    #[error("this database has no vector functions (vector32, libsql_vector_idx), so the DiskANN indexes cannot be built; nothing was written: run again with --no-vector-index to migrate without them")]
    NoVectorFunctions,
    /// The disk (or the database's size limit) is full.
    #[error("the disk is full (or the database reached its size limit) while {context}; the batch in flight was rolled back and the checkpoint is intact: free space, then run --execute again to resume")]
    DiskFull {
        context: String,
        #[source]
        source: libsql::Error,
    },
    /// The database cannot be written.
    #[error("the database is read-only (file permissions, a read-only mount or a read-only token) while {context}; nothing was changed by the failed step: make it writable, then run again")]
    ReadOnly {
        context: String,
        #[source]
        source: libsql::Error,
    },
    /// A table or column the run relies on disappeared or changed while it
    /// ran.
    #[error("the database schema changed under the migration while {context} ({source}); the batch in flight was rolled back and the checkpoint is intact: restore the table, then run --execute again")]
    SchemaChanged {
        context: String,
        #[source]
        source: libsql::Error,
    },
    /// The database stayed busy through every retry.
    #[error("the database stayed locked by another writer through {attempts} attempts while {context}; the checkpoint is intact: run again when the other writer is done (or raise --max-retries)")]
    Busy {
        context: String,
        attempts: u32,
        #[source]
        source: libsql::Error,
    },
    /// Another live migration holds the lock.
    #[error("another migration is running on this database: {holder}; wait for it to finish (a lock whose process is gone is taken over automatically)")]
    LockHeld {
        holder: crate::migration::lock::LockHolder,
    },
    /// The lock was taken over by another process during this run.
    #[error("this run lost the migration lock{}; it stopped after its last committed batch", holder.as_ref().map(|h| format!(" to {h}")).unwrap_or_default())]
    LockLost {
        holder: Option<crate::migration::lock::LockHolder>,
    },
    /// A backup's rows do not match what they must.
    #[error("the backup does not match: expected {} rows with checksum {}, found {} rows with checksum {}; nothing was dropped or restored", expected.rows, expected.checksum, found.rows, found.checksum)]
    BackupMismatch {
        expected: crate::migration::backup::TableDigest,
        found: crate::migration::backup::TableDigest,
    },
    /// There is no backup whose integrity can be proven.
    #[error("no verified `embeddings_backup` exists (or its recorded checksum is missing), so the legacy table cannot be restored by the tool; see the README's manual rollback")]
    BackupUnverifiable,
    /// `--backup-file` names an existing file.
    #[error("{} exists already: the backup file is never overwritten, choose a new path", path.display())]
    BackupFileExists { path: PathBuf },
    /// The legacy table changed between verification and drop.
    #[error("the `embeddings` table changed after this run verified it (an application is writing to it); it was not dropped: run --execute --drop-old-table again once writes have stopped")]
    ChangedSinceVerification,
    /// The database refused one row; the run quarantines it and retries the
    /// batch without it (this error never leaves the library).
    #[error("the database refused embedding {embedding_id} in {table}: {source}")]
    RowRejected {
        embedding_id: String,
        key: Box<crate::decode::row::Key>,
        table: String,
        #[source]
        source: libsql::Error,
    },
    /// An `embedding_id` is text that is not valid UTF-8: it cannot be
    /// paged past safely, so the run stops before it.
    #[error("{table} has an embedding_id that is not valid UTF-8 ({lossy:?}); the run stopped before it with every earlier batch committed: fix or remove that row, then run again")]
    UnreadableKey { table: String, lossy: String },
    /// The drop was refused.
    #[error("the `embeddings` table was not dropped: {0}")]
    DropRefused(String),
    /// The database records a schema version newer than this code knows.
    #[error("the database is at schema version {found}, newer than version {supported} that this build knows: upgrade memory-storage-turso before opening it (nothing was changed)")]
    SchemaTooNew { found: i64, supported: i64 },
    /// The recorded schema version is not a number.
    #[error("the metadata key `schema_version` holds {value:?}, not a version number: fix it by hand (nothing was changed)")]
    SchemaVersionUnreadable { value: String },
    /// The store was opened on a database without the per-dimension tables.
    #[error("the database lacks the table(s) {}: call initialize_schema first", missing.join(", "))]
    SchemaNotInitialized { missing: Vec<String> },
    /// An embedding handed to the store cannot be stored.
    #[error("embedding {embedding_id} cannot be stored: {reason}")]
    InvalidEmbedding {
        embedding_id: String,
        reason: String,
    },
    /// A search query cannot be run.
    #[error("invalid search query: {0}")]
    InvalidQuery(String),
    /// A stored row cannot be read back as an embedding.
    #[error("embedding {embedding_id} in {table} cannot be read: {reason}")]
    UndecodableEmbedding {
        table: String,
        embedding_id: String,
        #[source]
        reason: crate::decode::BadRowReason,
    },
    /// A stored row's column holds a value of the wrong type.
    #[error("embedding {embedding_id} in {table} cannot be read: its {column} column holds {found}, not an integer")]
    UnreadableColumn {
        table: String,
        embedding_id: String,
        column: &'static str,
        found: String,
    },
    /// Another process's migration did not finish in time.
    #[error("waited {waited_secs} s for another process's migration ({}) to finish; it is still running: start again later, or raise SchemaOptions::wait_for_migration", holder.as_ref().map(|h| h.to_string()).unwrap_or_else(|| "holder unknown".into()))]
    MigrationWaitTimedOut {
        holder: Option<crate::migration::lock::LockHolder>,
        waited_secs: u64,
    },
    /// The backup table's name exists and is not a backup this migration
    /// made and can still verify: it is never replaced or appended to.
    #[error("a table (or other schema object) named `{table}` exists already and is not a backup this migration made and verified, so --backup (or --drop-old-table, which makes one) would overwrite it; nothing was written: choose a new table with --backup-table NAME, or rename `{table}` yourself")]
    BackupTableExists { table: String },
    /// `--backup-table` names a table the tool cannot use.
    #[error("--backup-table {name:?} cannot be used: {reason}; choose a name of ASCII letters, digits and underscores (not starting with a digit, at most 64 characters) that is none of the tool's own tables")]
    BackupTableNameInvalid { name: String, reason: &'static str },
    /// The legacy table has columns the target tables do not: their values
    /// would not be carried over.
    #[error("the `embeddings` table has column(s) the new tables do not have, whose values would not be carried over: {}; nothing was written: copy what you need out of them, or run again with --ignore-extra-columns to migrate without them", crate::migration::report::ExtraColumn::list(columns))]
    ExtraLegacyColumns {
        columns: Vec<crate::migration::report::ExtraColumn>,
    },
}

impl Error {
    /// Whether this is a refusal: a safety rule stopped the run before an
    /// unsafe step (nothing was lost; the report says what to do).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Error::DropRefused(_)
                | Error::ChangedSinceVerification
                | Error::BackupFileExists { .. }
                | Error::IncompatibleTargetTable { .. }
                | Error::LockHeld { .. }
                | Error::BackupTableExists { .. }
                | Error::ExtraLegacyColumns { .. }
        )
    }
}

/// Result with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn is_schema_message(e: &libsql::Error) -> bool {
    let text = e.to_string();
    text.contains("no such table")
        || text.contains("no such column")
        || text.contains("has no column")
}

/// Adds "what we were doing" to a libSQL error.
pub(crate) trait DbContext<T> {
    fn db_context(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> DbContext<T> for std::result::Result<T, libsql::Error> {
    fn db_context(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|source| {
            let context = context();
            match crate::db::sqlite_code(&source) {
                Some(13) => Error::DiskFull { context, source },
                Some(8) => Error::ReadOnly { context, source },
                Some(17) => Error::SchemaChanged { context, source },
                Some(1) if is_schema_message(&source) => Error::SchemaChanged { context, source },
                _ => Error::Database { context, source },
            }
        })
    }
}
