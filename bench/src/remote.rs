//! The migration over the network: `hrana-test-server` serves a copy of the
//! legacy database over Hrana HTTP with an added delay per request (so a
//! round trip takes about that long), and the tool migrates it through the
//! libSQL remote client, beside the row-at-a-time approach (one autocommit
//! `INSERT` per row) over the same kind of connection.
//!
//! The server is its own binary (rusqlite's bundled SQLite must not link
//! beside libSQL); it has no vector functions, so the indexes are not built
//! and the row-at-a-time inserts bind the vector as bytes, as the tool does.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use libsql::Value;
use memory_storage_turso::connect::{open, Access};
use memory_storage_turso::decode::decode_embedding_data;
use memory_storage_turso::migration::{run_migration, MigrationOptions, NoopObserver};
use memory_storage_turso::schema::{create_target_tables, route};

/// Rows the row-at-a-time approach inserts at each latency: enough for a
/// steady rate, few enough to stay quick at 80 ms a round trip.
fn floor_rows(latency_ms: u64) -> usize {
    match latency_ms {
        0..=5 => 400,
        6..=40 => 200,
        _ => 100,
    }
}

/// One latency's measurements.
#[derive(Debug, Clone)]
pub struct RemoteRun {
    /// Delay the server adds to every request (≈ the round-trip time).
    pub latency_ms: u64,
    /// Legacy rows migrated by the tool (all of the database's).
    pub rows: u64,
    /// The tool's copy phase, and the whole run (copy and verification).
    pub copy_seconds: f64,
    pub total_seconds: f64,
    /// Hrana requests the whole run made.
    pub requests: u64,
    /// Rows inserted one per request, and how long that took.
    pub floor_rows: u64,
    pub floor_seconds: f64,
}

impl RemoteRun {
    /// The tool's copy rate.
    pub fn ours_rows_per_s(&self) -> f64 {
        rate(self.rows, self.copy_seconds)
    }

    /// The row-at-a-time rate.
    pub fn floor_rows_per_s(&self) -> f64 {
        rate(self.floor_rows, self.floor_seconds)
    }
}

fn rate(rows: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        rows as f64 / seconds
    } else {
        0.0
    }
}

/// The remote benchmark: one run per latency.
#[derive(Debug, Clone, Default)]
pub struct RemoteBench {
    /// Rows in the legacy database (good and bad).
    pub rows: usize,
    pub runs: Vec<RemoteRun>,
}

impl RemoteBench {
    /// A Markdown section: per latency, our rows/s, the row-at-a-time
    /// rows/s, and the ratio.
    pub fn markdown(&self) -> String {
        let mut s = String::from("## Over the network\n\n");
        s.push_str(&format!(
            "The same migration of a {}-row legacy database through libSQL's remote client, \
             against `hrana-test-server` (Hrana over HTTP on SQLite, no vector functions, so \
             `--no-vector-index`) adding a fixed delay to every request, so one round trip \
             takes about that long. Ours: batches of 1000 rows, each a handful of requests \
             inside one transaction (copy phase; the whole run includes the verification \
             reads). Row at a time: one autocommitted `INSERT` per row, the vector bound as \
             bytes, on the first rows of the same database.\n\n",
            self.rows
        ));
        s.push_str(
            "| round trip | ours (rows/s) | row at a time (rows/s) | ratio | whole run | requests per 1000 rows |\n",
        );
        s.push_str("|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.runs {
            let ratio = if r.floor_rows_per_s() > 0.0 {
                format!("{:.0}×", r.ours_rows_per_s() / r.floor_rows_per_s())
            } else {
                "–".into()
            };
            s.push_str(&format!(
                "| {} ms | {:.0} | {:.1} | {} | {:.1} s | {:.0} |\n",
                r.latency_ms,
                r.ours_rows_per_s(),
                r.floor_rows_per_s(),
                ratio,
                r.total_seconds,
                if r.rows > 0 {
                    r.requests as f64 * 1000.0 / r.rows as f64
                } else {
                    0.0
                },
            ));
        }
        s
    }
}

/// For each latency: serves a fresh copy of `legacy_source` with that
/// delay, migrates it (no vector indexes), then times the row-at-a-time
/// approach on another copy. `rows` is the size of `legacy_source`.
pub async fn run(
    work: &Path,
    legacy_source: &Path,
    rows: usize,
    latencies_ms: &[u64],
) -> Result<RemoteBench> {
    let server = server_binary()?;
    let mut bench = RemoteBench {
        rows,
        runs: Vec::new(),
    };
    for &latency in latencies_ms {
        let ours_db = work.join(format!("remote-{latency}ms.db"));
        let floor_db = work.join(format!("remote-floor-{latency}ms.db"));
        for copy in [&ours_db, &floor_db] {
            let _ = std::fs::remove_file(copy);
            std::fs::copy(legacy_source, copy)
                .with_context(|| format!("copying the legacy database to {}", copy.display()))?;
        }
        let mut run = RemoteRun {
            latency_ms: latency,
            rows: 0,
            copy_seconds: 0.0,
            total_seconds: 0.0,
            requests: 0,
            floor_rows: 0,
            floor_seconds: 0.0,
        };
        {
            let served = Served::start(&server, &ours_db, latency)?;
            let db = open(&served.url, &served.token, Access::ReadWrite)
                .await
                .context("connecting to the test server")?;
            let before = served.requests()?;
            let options = MigrationOptions {
                build_vector_index: false,
                ..Default::default()
            };
            let began = Instant::now();
            let report = run_migration(&db.conn, &options, &NoopObserver)
                .await
                .with_context(|| format!("migrating over HTTP at {latency} ms"))?;
            run.total_seconds = began.elapsed().as_secs_f64();
            run.requests = served.requests()?.saturating_sub(before);
            run.rows = report.source_rows;
            run.copy_seconds = report
                .phases
                .iter()
                .find(|p| p.phase == "copy")
                .map_or(run.total_seconds, |p| p.seconds);
            if !report.verification.as_ref().is_some_and(|v| v.passed) {
                bail!("the migration over HTTP at {latency} ms did not verify");
            }
        }
        {
            let served = Served::start(&server, &floor_db, latency)?;
            let (n, seconds) = row_at_a_time(&served, floor_rows(latency)).await?;
            run.floor_rows = n;
            run.floor_seconds = seconds;
        }
        for copy in [&ours_db, &floor_db] {
            let _ = std::fs::remove_file(copy);
        }
        eprintln!(
            "remote {latency} ms: ours {:.0} rows/s, row at a time {:.1} rows/s",
            run.ours_rows_per_s(),
            run.floor_rows_per_s()
        );
        bench.runs.push(run);
    }
    Ok(bench)
}

/// One `INSERT OR REPLACE` per row, autocommitted, over the remote
/// connection; the rows are read first (not timed).
async fn row_at_a_time(served: &Served, limit: usize) -> Result<(u64, f64)> {
    let db = open(&served.url, &served.token, Access::ReadWrite)
        .await
        .context("connecting to the test server")?;
    let conn = &db.conn;
    create_target_tables(conn)
        .await
        .context("creating the target tables for the row-at-a-time run")?;
    let mut legacy = Vec::new();
    let mut rows = conn
        .query(
            "SELECT embedding_id, item_id, item_type, embedding_data, dimension, model, created_at \
             FROM embeddings ORDER BY embedding_id LIMIT ?1",
            [limit as i64],
        )
        .await
        .context("reading the legacy rows")?;
    while let Some(row) = rows.next().await.context("reading a legacy row")? {
        let values = (0..7)
            .map(|i| row.get_value(i))
            .collect::<libsql::Result<Vec<Value>>>()
            .context("reading a legacy row's columns")?;
        legacy.push(values);
    }
    drop(rows);
    let began = Instant::now();
    let mut inserted = 0;
    for values in legacy {
        let Value::Text(data) = &values[3] else {
            continue;
        };
        let Ok(vector) = decode_embedding_data(data) else {
            continue;
        };
        let table = route(vector.len() / 4);
        let [id, item, kind, data, dimension, model, created] =
            <[Value; 7]>::try_from(values).map_err(|_| anyhow!("seven columns expected"))?;
        let params = vec![
            id,
            item,
            kind,
            data,
            Value::Blob(vector),
            dimension,
            model,
            created,
        ];
        conn.execute(
            &format!(
                "INSERT OR REPLACE INTO {table} (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
            ),
            params,
        )
        .await
        .with_context(|| format!("row-at-a-time insert into {table}"))?;
        inserted += 1;
    }
    Ok((inserted, began.elapsed().as_secs_f64()))
}

/// The `hrana-test-server` binary beside this one, built if missing.
fn server_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("finding this executable")?;
    let mut dir = exe
        .parent()
        .ok_or_else(|| anyhow!("this executable has no directory"))?;
    // A test executable lives in target/<profile>/deps.
    if dir.file_name().is_some_and(|n| n == "deps") {
        dir = dir.parent().unwrap_or(dir);
    }
    let bin = dir.join("hrana-test-server");
    if !bin.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "remote-test-server"]);
        if dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build
            .status()
            .context("running cargo build -p remote-test-server")?;
        if !status.success() || !bin.is_file() {
            bail!(
                "{} is missing and could not be built (cargo build -p remote-test-server)",
                bin.display()
            );
        }
    }
    Ok(bin)
}

/// A running test server; killed when dropped.
struct Served {
    child: Child,
    url: String,
    addr: String,
    token: String,
}

impl Served {
    fn start(bin: &Path, db: &Path, delay_ms: u64) -> Result<Served> {
        let token = format!(
            "bench-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let mut child = Command::new(bin)
            .arg(db)
            .args(["--delay-ms", &delay_ms.to_string()])
            .env("HRANA_TEST_TOKEN", &token)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut line = String::new();
        BufReader::new(
            child
                .stdout
                .take()
                .ok_or_else(|| anyhow!("no server stdout"))?,
        )
        .read_line(&mut line)
        .context("reading the server's address")?;
        let url = line.trim().to_string();
        let Some(addr) = url.strip_prefix("http://").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the test server printed {line:?}, not its address");
        };
        Ok(Served {
            child,
            url,
            addr,
            token,
        })
    }

    /// Hrana requests the server has received.
    fn requests(&self) -> Result<u64> {
        let mut stream =
            std::net::TcpStream::connect(&self.addr).context("connecting to the test server")?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .context("setting a timeout")?;
        write!(
            stream,
            "GET /control/stats HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.addr, self.token
        )
        .context("asking the server for its counters")?;
        let mut response = String::new();
        stream
            .read_to_string(&mut response)
            .context("reading the server's counters")?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b)
            .unwrap_or_default();
        let stats: serde_json::Value =
            serde_json::from_str(body).context("the server's counters are not JSON")?;
        stats["requests"]
            .as_u64()
            .ok_or_else(|| anyhow!("the server's counters lack requests"))
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The measurement itself (about a minute):
    /// `cargo test --release -p migrate-bench remote::tests::measure -- --ignored --nocapture`
    /// (`REMOTE_BENCH_ROWS`, default 3000).
    #[tokio::test(flavor = "multi_thread")]
    #[ignore = "a measurement, not a check; run it on purpose"]
    async fn measure() {
        let rows = std::env::var("REMOTE_BENCH_ROWS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(3000);
        let dir = tempfile::tempdir().unwrap();
        let legacy = dir.path().join("legacy.db");
        {
            let db = libsql::Builder::new_local(&legacy).build().await.unwrap();
            let conn = db.connect().unwrap();
            let spec = memory_storage_turso::sample::SampleSpec::realistic(rows, 7);
            memory_storage_turso::sample::generate_legacy_database(&conn, &spec)
                .await
                .unwrap();
        }
        let bench = run(dir.path(), &legacy, rows, &[1, 20, 80]).await.unwrap();
        println!("{}", bench.markdown());
    }

    #[test]
    fn the_section_has_one_row_per_latency_with_the_ratio() {
        let bench = RemoteBench {
            rows: 2000,
            runs: vec![RemoteRun {
                latency_ms: 20,
                rows: 2000,
                copy_seconds: 2.0,
                total_seconds: 3.0,
                requests: 100,
                floor_rows: 100,
                floor_seconds: 2.0,
            }],
        };
        let md = bench.markdown();
        assert!(
            md.contains("| 20 ms | 1000 | 50.0 | 20× | 3.0 s | 50 |"),
            "{md}"
        );
    }
}
