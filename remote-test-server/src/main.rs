//! `hrana-test-server`: serves one SQLite file over Hrana HTTP (what the
//! `libsql` remote client speaks), behind a bearer token, with an added
//! per-request delay and faults a test can arm at run time. Built on the
//! `hrana-server` crate and rusqlite's bundled SQLite: it has no vector
//! functions, like any plain SQLite server. With `--upstream` it serves no
//! file but forwards every Hrana request to that server (libSQL's `sqld`),
//! with the same delay and faults: a fault-injecting proxy.
//!
//! ```sh
//! hrana-test-server memory.db --token secret            # prints http://127.0.0.1:PORT
//! curl -H 'Authorization: Bearer secret' -d '{"kind":"drop_after","matching":"\"COMMIT\""}' \
//!      http://127.0.0.1:PORT/control/faults
//! hrana-test-server --upstream http://127.0.0.1:8080 --token secret   # a proxy in front of sqld
//! ```

mod backend;
mod faults;
mod http;
mod proxy;

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use hrana_server::{HranaConfig, SessionManager};

/// Serves one SQLite file over Hrana HTTP for tests.
#[derive(Parser)]
#[command(name = "hrana-test-server", version)]
struct Args {
    /// The SQLite database file to serve (must exist); none with
    /// `--upstream`.
    #[arg(required_unless_present = "upstream", conflicts_with = "upstream")]
    db: Option<PathBuf>,

    /// Serve no file: forward each Hrana request (its path, body and
    /// `Authorization` header) to this server, e.g. `http://127.0.0.1:8080`,
    /// and relay its answer, faults and delay applied on the way. The
    /// upstream checks the clients' tokens; `--token` then guards only the
    /// control endpoints.
    #[arg(long, value_name = "URL")]
    upstream: Option<String>,

    /// Address to listen on; port 0 picks a free port. The address chosen
    /// is printed on stdout as the first line, as `http://HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,

    /// The bearer token clients (and the control endpoints) must send.
    #[arg(long, env = "HRANA_TEST_TOKEN", hide_env_values = true)]
    token: String,

    /// Delay added before every Hrana request is handled, in milliseconds
    /// (a round trip then takes at least this long).
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,

    /// A stream (and its open transaction) unused this long expires and is
    /// rolled back, in milliseconds (sqld uses 10 s).
    #[arg(long, default_value_t = 10_000)]
    stream_ttl_ms: u64,

    /// How long a statement waits for a lock held by another stream, in
    /// milliseconds.
    #[arg(long, default_value_t = 5_000)]
    busy_timeout_ms: u64,

    /// Print the start of every Hrana request on stderr (with the fault it
    /// met), to see what a client sends.
    #[arg(long)]
    log_requests: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = match (&args.upstream, &args.db) {
        (Some(url), _) => http::Target::Upstream {
            upstream: proxy::Upstream::new(url)?,
            token: args.token.clone(),
        },
        (None, Some(db)) => {
            anyhow::ensure!(db.is_file(), "no database file at {}", db.display());
            let config = HranaConfig {
                session_ttl: Duration::from_millis(args.stream_ttl_ms),
                // Large batches of bound rows are the point of the tool under test.
                max_sql_length: 64 << 20,
                max_batch_steps: 4096,
                max_pipeline_requests: 4096,
                ..HranaConfig::default()
            };
            http::Target::File(http::Local {
                backend: backend::FileBackend::new(
                    db.clone(),
                    args.token.clone(),
                    Duration::from_millis(args.busy_timeout_ms),
                ),
                sessions: SessionManager::new(&config),
                config,
            })
        }
        (None, None) => anyhow::bail!("give a database file or --upstream"),
    };
    let server = Arc::new(http::Server {
        target,
        faults: faults::Faults::default(),
        delay: Duration::from_millis(args.delay_ms),
        log_requests: args.log_requests,
        in_flight: Default::default(),
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "http://{addr}").context("writing the address")?;
    out.flush().context("writing the address")?;
    drop(out);

    // Expire abandoned streams (rolling their transactions back) even when
    // no request comes to trigger it, as sqld does; not while a request
    // runs, whose stream hrana-server would count as idle since it began.
    let sweeper = server.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if sweeper.in_flight.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                continue;
            }
            let s = sweeper.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let http::Target::File(local) = &s.target {
                    local.sessions.cleanup_expired();
                }
            })
            .await;
        }
    });

    tokio::select! {
        result = http::serve(listener, server) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}
