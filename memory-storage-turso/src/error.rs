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
    /// The options make no sense together.
    #[error("invalid options: {0}")]
    InvalidOptions(String),
    /// Vector indexes were asked for on a database without libSQL's vector
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
}

impl Error {
    /// Whether the server rolled back this statement's transaction because
    /// another writer waited for it (sqld's transaction timeout): nothing
    /// of the transaction was committed, and a retry (smaller) may pass.
    pub fn transaction_timed_out(&self) -> bool {
        match self {
            Error::Database { source, .. } => crate::db::codes::transaction_timed_out(source),
            _ => false,
        }
    }

    /// Whether the server refused the credentials (a wrong or expired
    /// token): retrying cannot help, the token must change.
    pub fn is_unauthorized(&self) -> bool {
        match self {
            Error::Open { source, .. } | Error::Database { source, .. } => {
                crate::db::codes::is_unauthorized(source)
            }
            _ => false,
        }
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
            match crate::db::codes::sqlite_code(&source) {
                Some(13) => Error::DiskFull { context, source },
                Some(8) => Error::ReadOnly { context, source },
                Some(17) => Error::SchemaChanged { context, source },
                Some(1) if is_schema_message(&source) => Error::SchemaChanged { context, source },
                _ => Error::Database { context, source },
            }
        })
    }
}
