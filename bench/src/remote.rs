//! The migration over the network. Against libSQL's own server, `sqld`
//! (`SQLD_BIN`, or `../shared/bin/sqld` beside the workspace), behind
//! `hrana-test-server --upstream`, which adds a fixed delay to every
//! request so a round trip takes about that long; without sqld, against
//! `hrana-test-server` serving the file itself (no vector functions). At
//! each latency the same rows are migrated three ways: ours (a window read
//! and a batch written in one request each), ours one statement per
//! request (as the libSQL client sends them: what the tool did before),
//! and row at a time (one autocommitted `INSERT` per row). Against sqld the
//! vector-index phase is also timed over the network beside a local build
//! of the same rows.
//!
//! The servers are their own binaries (rusqlite's bundled SQLite must not
//! link beside libSQL).

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
    /// Hrana requests the whole run made, and the bytes of their bodies.
    pub requests: u64,
    pub sent_bytes: u64,
    /// The tool's verification phase.
    pub verify_seconds: f64,
    /// The same migration, one statement per request: its copy phase, its
    /// verification and its requests.
    pub one_by_one_copy_seconds: f64,
    pub one_by_one_verify_seconds: f64,
    pub one_by_one_requests: u64,
    pub one_by_one_sent_bytes: u64,
    /// Rows inserted one per request, and how long that took.
    pub floor_rows: u64,
    pub floor_seconds: f64,
}

impl RemoteRun {
    /// The tool's copy rate.
    pub fn ours_rows_per_s(&self) -> f64 {
        rate(self.rows, self.copy_seconds)
    }

    /// The copy rate one statement per request.
    pub fn one_by_one_rows_per_s(&self) -> f64 {
        rate(self.rows, self.one_by_one_copy_seconds)
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
    /// The server measured against.
    pub server: String,
    pub runs: Vec<RemoteRun>,
    /// The vector-index phase over the network and locally (sqld only).
    pub index: Option<IndexRun>,
}

/// The vector-index phase of the same rows, with the same options, built
/// over the network and in a local file.
#[derive(Debug, Clone)]
pub struct IndexRun {
    pub latency_ms: u64,
    pub options: String,
    pub rows: u64,
    pub remote_seconds: f64,
    pub local_seconds: f64,
}

impl RemoteBench {
    /// A Markdown section: per latency, our rows/s, the row-at-a-time
    /// rows/s, and the ratio.
    pub fn markdown(&self) -> String {
        let mut s = String::from("## Over the network\n\n");
        s.push_str(&format!(
            "The same migration of a {}-row legacy database (`--no-vector-index`) against {}, \
             with a fixed delay added to every request, so one round trip takes about that \
             long. Ours: each window read and each batch transaction is one Hrana request \
             (`connect/pipeline.rs`). One statement per request: the same run with \
             `--one-statement-per-request`, as the libSQL client sends statements (what the \
             tool did before). Rates are of the copy phase; the verification reads every \
             row back from both tables and compares it; the requests and the bytes sent \
             (their bodies) are the whole run's. \
             Row at a time: one autocommitted `INSERT` per row, the vector bound \
             as bytes, on the first rows of the same database.\n\n",
            self.rows, self.server
        ));
        s.push_str(
            "| round trip | ours (rows/s) | one statement per request (rows/s) | ratio | \
             row at a time (rows/s) | copy: ours / one by one | \
             verification: ours / one by one | requests per 1000 rows: ours / one by one | \
             MB sent per 1000 rows: ours / one by one |\n",
        );
        s.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let per_1000 = |requests: u64, rows: u64| {
            if rows > 0 {
                requests as f64 * 1000.0 / rows as f64
            } else {
                0.0
            }
        };
        for r in &self.runs {
            let ratio = if r.one_by_one_rows_per_s() > 0.0 {
                format!("{:.1}×", r.ours_rows_per_s() / r.one_by_one_rows_per_s())
            } else {
                "–".into()
            };
            s.push_str(&format!(
                "| {} ms | {:.0} | {:.0} | {} | {:.1} | {:.1} s / {:.1} s | {:.1} s / {:.1} s | \
                 {:.0} / {:.0} | {:.1} / {:.1} |\n",
                r.latency_ms,
                r.ours_rows_per_s(),
                r.one_by_one_rows_per_s(),
                ratio,
                r.floor_rows_per_s(),
                r.copy_seconds,
                r.one_by_one_copy_seconds,
                r.verify_seconds,
                r.one_by_one_verify_seconds,
                per_1000(r.requests, r.rows),
                per_1000(r.one_by_one_requests, r.rows),
                per_1000(r.sent_bytes, r.rows) / 1e6,
                per_1000(r.one_by_one_sent_bytes, r.rows) / 1e6,
            ));
        }
        if let Some(i) = &self.index {
            s.push_str(&format!(
                "\nThe vector-index phase of the same {} rows (`{}` on every native table): \
                 {:.1} s over the network at {} ms a round trip, {:.1} s in a local file.\n",
                i.rows, i.options, i.remote_seconds, i.latency_ms, i.local_seconds
            ));
        }
        s
    }
}

/// For each latency: serves a fresh copy of `legacy_source` with that
/// delay and migrates it (no vector indexes) ours and one statement per
/// request, then times the row-at-a-time approach on another copy; against
/// sqld, times the index phase at the latency nearest 20 ms beside a local
/// build. `rows` is the size of `legacy_source`.
pub async fn run(
    work: &Path,
    legacy_source: &Path,
    rows: usize,
    latencies_ms: &[u64],
) -> Result<RemoteBench> {
    let servers = Servers {
        proxy: server_binary()?,
        sqld: sqld_binary(),
        work: work.to_path_buf(),
    };
    let mut bench = RemoteBench {
        rows,
        server: match &servers.sqld {
            Some(_) => {
                "libSQL's server `sqld` behind `hrana-test-server --upstream` (the delay)".into()
            }
            None => "`hrana-test-server` (Hrana over HTTP on SQLite, no vector functions; \
                     set `SQLD_BIN` to measure against sqld)"
                .into(),
        },
        runs: Vec::new(),
        index: None,
    };
    let copy_only = MigrationOptions {
        build_vector_index: false,
        ..Default::default()
    };
    for &latency in latencies_ms {
        let mut run = RemoteRun {
            latency_ms: latency,
            rows: 0,
            copy_seconds: 0.0,
            total_seconds: 0.0,
            requests: 0,
            sent_bytes: 0,
            verify_seconds: 0.0,
            one_by_one_copy_seconds: 0.0,
            one_by_one_verify_seconds: 0.0,
            one_by_one_requests: 0,
            one_by_one_sent_bytes: 0,
            floor_rows: 0,
            floor_seconds: 0.0,
        };
        for one_by_one in [false, true] {
            let served = servers.serve(legacy_source, latency)?;
            let m = migrate(&served, &copy_only, !one_by_one).await?;
            if one_by_one {
                run.one_by_one_copy_seconds = m.copy_seconds;
                run.one_by_one_verify_seconds = m.verify_seconds;
                run.one_by_one_requests = m.requests;
                run.one_by_one_sent_bytes = m.sent_bytes;
            } else {
                run.rows = m.rows;
                run.copy_seconds = m.copy_seconds;
                run.verify_seconds = m.verify_seconds;
                run.total_seconds = m.total_seconds;
                run.requests = m.requests;
                run.sent_bytes = m.sent_bytes;
            }
        }
        {
            let served = servers.serve(legacy_source, latency)?;
            let (n, seconds) = row_at_a_time(&served, floor_rows(latency)).await?;
            run.floor_rows = n;
            run.floor_seconds = seconds;
        }
        eprintln!(
            "remote {latency} ms: ours {:.0} rows/s, one statement per request {:.0} rows/s, \
             row at a time {:.1} rows/s",
            run.ours_rows_per_s(),
            run.one_by_one_rows_per_s(),
            run.floor_rows_per_s()
        );
        bench.runs.push(run);
    }
    let index_latency = latencies_ms.iter().copied().min_by_key(|l| l.abs_diff(20));
    if let (Some(_), Some(latency)) = (&servers.sqld, index_latency) {
        bench.index = Some(index_phase(&servers, legacy_source, latency).await?);
    }
    Ok(bench)
}

/// One migration's measures.
struct Measured {
    rows: u64,
    copy_seconds: f64,
    verify_seconds: f64,
    total_seconds: f64,
    requests: u64,
    sent_bytes: u64,
    index_seconds: f64,
}

/// Migrates what `served` serves with `options`, through the pipeline or
/// one statement per request, and checks that it verified.
async fn migrate(served: &Served, options: &MigrationOptions, pipelined: bool) -> Result<Measured> {
    let db = open(&served.url, &served.token, Access::ReadWrite)
        .await
        .context("connecting to the server")?;
    let options = MigrationOptions {
        remote: db.pipeline.clone().filter(|_| pipelined),
        ..options.clone()
    };
    let before = served.counters()?;
    let began = Instant::now();
    let report = run_migration(&db.conn, &options, &NoopObserver)
        .await
        .context("migrating over HTTP")?;
    let total_seconds = began.elapsed().as_secs_f64();
    let after = served.counters()?;
    let phase = |name: &str| report.phases.iter().find(|p| p.phase == name);
    if !report.verification.as_ref().is_some_and(|v| v.passed) {
        bail!("the migration over HTTP did not verify");
    }
    Ok(Measured {
        rows: report.source_rows,
        copy_seconds: phase("copy").map_or(total_seconds, |p| p.seconds),
        verify_seconds: phase("verify").map_or(0.0, |p| p.seconds),
        total_seconds,
        requests: after.requests.saturating_sub(before.requests),
        sent_bytes: after.request_bytes.saturating_sub(before.request_bytes),
        index_seconds: report.vector_indexes.iter().map(|i| i.seconds).sum(),
    })
}

/// The index phase with fixed options over the network at `latency`, and
/// in a local copy of the same rows.
async fn index_phase(servers: &Servers, legacy_source: &Path, latency: u64) -> Result<IndexRun> {
    use memory_storage_turso::schema::{NeighborCompression, VectorIndexOptions};
    let vector_index = VectorIndexOptions {
        compress_neighbors: Some(NeighborCompression::Float8),
        max_neighbors: Some(32),
        search_l: None,
    };
    let options = MigrationOptions {
        vector_index,
        ..Default::default()
    };
    let served = servers.serve(legacy_source, latency)?;
    let remote = migrate(&served, &options, true).await?;
    drop(served);
    let local_db = servers.work.join("index-local.db");
    let _ = std::fs::remove_file(&local_db);
    std::fs::copy(legacy_source, &local_db).context("copying the legacy database")?;
    let db = open(local_db.to_str().unwrap_or_default(), "", Access::ReadWrite)
        .await
        .context("opening the local copy")?;
    let report = run_migration(&db.conn, &options, &NoopObserver)
        .await
        .context("migrating the local copy")?;
    drop(db);
    let _ = std::fs::remove_file(&local_db);
    eprintln!(
        "remote index phase at {latency} ms: {:.1} s; local {:.1} s",
        remote.index_seconds,
        report.vector_indexes.iter().map(|i| i.seconds).sum::<f64>()
    );
    Ok(IndexRun {
        latency_ms: latency,
        options: vector_index.options_string(),
        rows: remote.rows,
        remote_seconds: remote.index_seconds,
        local_seconds: report.vector_indexes.iter().map(|i| i.seconds).sum(),
    })
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

/// `SQLD_BIN`, or `../shared/bin/sqld` beside the workspace, if it is there.
fn sqld_binary() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("SQLD_BIN").map(PathBuf::from) {
        return bin.is_file().then_some(bin);
    }
    let shared = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/bin/sqld");
    shared.is_file().then_some(shared)
}

/// What serves a database: the test server alone, or sqld behind it.
struct Servers {
    proxy: PathBuf,
    sqld: Option<PathBuf>,
    work: PathBuf,
}

impl Servers {
    /// Serves a fresh copy of `legacy` with `delay_ms` added per request.
    fn serve(&self, legacy: &Path, delay_ms: u64) -> Result<Served> {
        let token = format!(
            "bench-{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        );
        let dir = self.work.join("served");
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("dbs/default");
        std::fs::create_dir_all(&data).context("making the served database's folder")?;
        std::fs::copy(legacy, data.join("data")).context("copying the legacy database")?;
        let Some(sqld) = &self.sqld else {
            let (child, url, addr) = start_proxy(
                Command::new(&self.proxy).arg(data.join("data")),
                delay_ms,
                &token,
            )?;
            return Ok(Served {
                child,
                sqld: None,
                url,
                addr,
                token,
            });
        };
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .context("finding a free port")?
            .port();
        let mut server = Command::new(sqld)
            .arg("--db-path")
            .arg(&dir)
            .args(["--http-listen-addr", &format!("127.0.0.1:{port}")])
            .arg("--no-welcome")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("starting {}", sqld.display()))?;
        let began = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if began.elapsed() > Duration::from_secs(30) {
                let _ = server.kill();
                let _ = server.wait();
                bail!("sqld did not answer within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let upstream = format!("http://127.0.0.1:{port}");
        let (child, url, addr) = match start_proxy(
            Command::new(&self.proxy).args(["--upstream", &upstream]),
            delay_ms,
            &token,
        ) {
            Ok(started) => started,
            Err(e) => {
                let _ = server.kill();
                let _ = server.wait();
                return Err(e);
            }
        };
        Ok(Served {
            child,
            sqld: Some(server),
            url,
            addr,
            token,
        })
    }
}

/// Starts `hrana-test-server` (`command`, its target given) with the delay
/// and the token; returns it, its URL and its address.
fn start_proxy(
    command: &mut Command,
    delay_ms: u64,
    token: &str,
) -> Result<(Child, String, String)> {
    let mut child = command
        .args(["--delay-ms", &delay_ms.to_string()])
        .env("HRANA_TEST_TOKEN", token)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("starting hrana-test-server")?;
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
    Ok((child, url, addr))
}

/// A running server (and sqld behind it); killed when dropped.
struct Served {
    child: Child,
    sqld: Option<Child>,
    url: String,
    addr: String,
    token: String,
}

impl Served {
    /// Hrana requests the server has received, and their bytes.
    fn counters(&self) -> Result<Counters> {
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
        let counter = |name: &str| {
            stats[name]
                .as_u64()
                .ok_or_else(|| anyhow!("the server's counters lack {name}"))
        };
        Ok(Counters {
            requests: counter("requests")?,
            request_bytes: counter("request_bytes")?,
        })
    }
}

/// The proxy's counters.
struct Counters {
    requests: u64,
    request_bytes: u64,
}

impl Drop for Served {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.child).chain(self.sqld.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
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
            server: "sqld".into(),
            runs: vec![RemoteRun {
                latency_ms: 20,
                rows: 2000,
                copy_seconds: 2.0,
                total_seconds: 3.0,
                requests: 100,
                sent_bytes: 9_000_000,
                verify_seconds: 1.0,
                one_by_one_copy_seconds: 10.0,
                one_by_one_verify_seconds: 4.0,
                one_by_one_requests: 400,
                one_by_one_sent_bytes: 30_000_000,
                floor_rows: 100,
                floor_seconds: 2.0,
            }],
            index: None,
        };
        let md = bench.markdown();
        assert!(
            md.contains(
                "| 20 ms | 1000 | 200 | 5.0× | 50.0 | 2.0 s / 10.0 s | 1.0 s / 4.0 s | 50 / 200 | 4.5 / 15.0 |"
            ),
            "{md}"
        );
    }
}
