//! Opening the user's database: a local libSQL file, or a remote Turso /
//! libSQL server (`libsql://`, `https://`, `http://`).

use std::path::PathBuf;

use libsql::{Builder, Connection, Database, OpenFlags};

use crate::error::{Error, Result};

/// How the run will use the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads only (dry run, verify): a local file is opened read-only, so it
    /// stays byte-identical.
    ReadOnly,
    /// Reads and writes; a local file must already exist.
    ReadWrite,
}

/// An open database and one connection to it.
pub struct Db {
    /// Kept alive as long as the connection.
    pub database: Database,
    pub conn: Connection,
    /// Where it is, for messages (never includes a token).
    pub location: String,
    /// Whether it is a local file.
    pub local: Option<PathBuf>,
}

/// Whether `url` names a remote server rather than a local file.
pub fn is_remote(url: &str) -> bool {
    ["libsql://", "https://", "http://", "wss://", "ws://"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// Opens `url` (a path, or a remote URL with `auth_token`). A local path
/// must exist and be a database: nothing is ever created here.
pub async fn open(url: &str, auth_token: &str, access: Access) -> Result<Db> {
    if is_remote(url) {
        let database = Builder::new_remote(url.to_string(), auth_token.to_string())
            .build()
            .await
            .map_err(|source| Error::Open {
                location: url.to_string(),
                source,
            })?;
        let conn = database.connect().map_err(|source| Error::Open {
            location: url.to_string(),
            source,
        })?;
        probe(&conn).await.map_err(|source| Error::Open {
            location: url.to_string(),
            source,
        })?;
        return Ok(Db {
            database,
            conn,
            location: url.to_string(),
            local: None,
        });
    }
    let path = PathBuf::from(url.strip_prefix("file:").unwrap_or(url));
    if !path.is_file() {
        return Err(Error::DatabaseNotFound { path });
    }
    let flags = match access {
        Access::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        Access::ReadWrite => OpenFlags::SQLITE_OPEN_READ_WRITE,
    };
    let database = Builder::new_local(&path)
        .flags(flags)
        .build()
        .await
        .map_err(|source| Error::Open {
            location: path.display().to_string(),
            source,
        })?;
    let conn = database.connect().map_err(|source| Error::Open {
        location: path.display().to_string(),
        source,
    })?;
    let _ = conn.busy_timeout(std::time::Duration::from_secs(5));
    probe(&conn).await.map_err(|source| match &source {
        libsql::Error::SqliteFailure(code, _) if *code & 0xff == 26 => Error::NotADatabase {
            path: path.clone(),
            source,
        },
        _ => Error::Open {
            location: path.display().to_string(),
            source,
        },
    })?;
    Ok(Db {
        database,
        conn,
        location: path.display().to_string(),
        local: Some(path),
    })
}

/// Reads the schema once: fails early on a file that is not a database.
async fn probe(conn: &Connection) -> std::result::Result<(), libsql::Error> {
    let mut rows = conn.query("SELECT count(*) FROM sqlite_master", ()).await?;
    rows.next().await?;
    Ok(())
}
