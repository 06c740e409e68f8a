//! The database behind the server: one SQLite file, a bearer token, and a
//! small pool of connections to the file.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hrana_server::{ConnectionInfo, HranaBackend, HranaError};

/// The one database this server serves.
const DATABASE_ID: &str = "main";

/// Serves one SQLite file to the holder of one token.
pub struct FileBackend {
    path: PathBuf,
    token: String,
    busy_timeout: Duration,
    /// Every connection opened so far; one is free when nothing but this
    /// pool holds it (its stream was closed or expired).
    pool: Mutex<Vec<Arc<Mutex<rusqlite::Connection>>>>,
}

impl FileBackend {
    pub fn new(path: PathBuf, token: String, busy_timeout: Duration) -> Self {
        FileBackend {
            path,
            token,
            busy_timeout,
            pool: Mutex::new(Vec::new()),
        }
    }

    /// Whether `token` is the server's token (compared in constant time).
    pub fn token_matches(&self, token: &str) -> bool {
        let (a, b) = (self.token.as_bytes(), token.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }

    fn open(&self) -> Result<rusqlite::Connection, HranaError> {
        let conn = rusqlite::Connection::open_with_flags(
            &self.path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| internal(format!("cannot open the database: {e}")))?;
        conn.busy_timeout(self.busy_timeout)
            .map_err(|e| internal(format!("cannot set the busy timeout: {e}")))?;
        Ok(conn)
    }
}

fn internal(message: String) -> HranaError {
    HranaError {
        message,
        code: "INTERNAL".to_string(),
    }
}

impl HranaBackend for FileBackend {
    fn authenticate(&self, token: &str) -> Result<String, HranaError> {
        if self.token_matches(token) {
            Ok(DATABASE_ID.to_string())
        } else {
            Err(HranaError {
                message: "invalid token".to_string(),
                code: "UNAUTHORIZED".to_string(),
            })
        }
    }

    fn connection(&self, _database_id: &str) -> Result<ConnectionInfo, HranaError> {
        let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
        let free = pool.iter().find(|c| {
            Arc::strong_count(c) == 1
                && c.try_lock()
                    .map(|conn| conn.is_autocommit())
                    .unwrap_or(false)
        });
        let conn = match free {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(Mutex::new(self.open()?));
                pool.push(c.clone());
                c
            }
        };
        Ok(ConnectionInfo {
            conn,
            query_timer: None,
        })
    }

    fn is_writable(&self, _database_id: &str) -> bool {
        true
    }
}
