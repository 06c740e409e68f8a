//! Opening the user's database: a local libSQL file, or a remote Turso /
//! libSQL server (`libsql://`, `https://`, `http://`).

mod deadline;
pub mod pipeline;
mod protobuf;

use std::path::PathBuf;
use std::time::Duration;

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
    /// A remote database's own Hrana pipeline (one request per window or
    /// batch: [`pipeline`]).
    pub pipeline: Option<pipeline::Pipeline>,
}

/// Whether `url` names a remote server rather than a local file.
pub fn is_remote(url: &str) -> bool {
    ["libsql://", "https://", "http://", "wss://", "ws://"]
        .iter()
        .any(|p| url.starts_with(p))
}

/// `url` as it may be shown: a password in it, and the values of its query
/// string (where a token can hide, `?authToken=…`), are replaced by `***`.
pub fn shown_location(url: &str) -> String {
    if !is_remote(url) {
        return url.to_string();
    }
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let mut shown = match base.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = match rest.find('/') {
                Some(i) => rest.split_at(i),
                None => (rest, ""),
            };
            let authority = match authority.rsplit_once('@') {
                Some((user, host)) => {
                    let user = user.split(':').next().unwrap_or_default();
                    format!("{user}:***@{host}")
                }
                None => authority.to_string(),
            };
            format!("{scheme}://{authority}{path}")
        }
        None => base.to_string(),
    };
    if let Some(query) = query {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _)) => format!("{k}=***"),
                None => p.to_string(),
            })
            .collect();
        shown.push('?');
        shown.push_str(&params.join("&"));
    }
    shown
}

/// Opens `url` (a path, or a remote URL with `auth_token`). A local path
/// must exist and be a database: nothing is ever created here. The token
/// never appears in an error (nor does a secret in the URL).
pub async fn open(url: &str, auth_token: &str, access: Access) -> Result<Db> {
    open_with_timeout(url, auth_token, access, DEFAULT_TIMEOUT).await
}

/// How long a remote server may stay silent while an answer is awaited
/// before the request counts as lost (and is retried).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);

/// [`open`], with the remote request timeout given.
pub async fn open_with_timeout(
    url: &str,
    auth_token: &str,
    access: Access,
    timeout: Duration,
) -> Result<Db> {
    if is_remote(url) {
        let location = shown_location(url);
        let failed = |source| Error::Open {
            location: location.clone(),
            source,
        };
        let connector = deadline::connector(timeout)
            .map_err(libsql::Error::InvalidTlsConfiguration)
            .map_err(failed)?;
        let database = Builder::new_remote(url.to_string(), auth_token.to_string())
            .connector(connector)
            .build()
            .await
            .map_err(failed)?;
        let conn = database.connect().map_err(failed)?;
        probe_with_retries(&conn).await.map_err(failed)?;
        let pipeline = pipeline::Pipeline::new(url, auth_token, timeout)
            .map_err(libsql::Error::InvalidTlsConfiguration)
            .map_err(failed)?;
        return Ok(Db {
            database,
            conn,
            location,
            local: None,
            pipeline: Some(pipeline),
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
        pipeline: None,
    })
}

/// Tries a remote server this many more times when it cannot be reached
/// (it may be restarting), with the migration's backoff: about 1.5 s in all.
const OPEN_RETRIES: u32 = 5;

/// [`probe`] on a remote connection, retried while the server is out of
/// reach; a refused token or any SQL error is final.
async fn probe_with_retries(conn: &Connection) -> std::result::Result<(), libsql::Error> {
    use crate::db::{backoff, classify, ErrorClass};
    let mut attempt = 0;
    loop {
        match probe(conn).await {
            Err(e) if attempt < OPEN_RETRIES && classify(&e) == ErrorClass::Transient => {
                attempt += 1;
                // A fresh stream: the lost request's may be unusable.
                conn.reset().await;
                tokio::time::sleep(backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

/// Reads the schema once: fails early on a file that is not a database (or
/// a server that refuses the token).
async fn probe(conn: &Connection) -> std::result::Result<(), libsql::Error> {
    let mut rows = conn.query("SELECT count(*) FROM sqlite_master", ()).await?;
    rows.next().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_in_a_url_are_never_shown() {
        assert_eq!(shown_location("memory.db"), "memory.db");
        assert_eq!(
            shown_location("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            shown_location("libsql://db-org.turso.io?authToken=s3cr3t&tls=1"),
            "libsql://db-org.turso.io?authToken=***&tls=***"
        );
        assert_eq!(
            shown_location("https://user:s3cr3t@host:443/path"),
            "https://user:***@host:443/path"
        );
        for url in [
            "libsql://h?authToken=s3cr3t",
            "https://u:s3cr3t@h/x?jwt=s3cr3t",
        ] {
            assert!(!shown_location(url).contains("s3cr3t"), "{url}");
        }
    }
}
