//! Runs one migration command: calls the library, renders the report,
//! picks the exit status. Shared by `migrate_embeddings` and
//! `memory-cli migrate-embeddings`.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use memory_storage_turso::migration::{
    migrate_embeddings_reported, migration_status, FailedRun, FailureKind, MigrateError,
    MigrationReport,
};
use memory_storage_turso::text::shown;

use crate::args::{ConnectArgs, Format, GlobalArgs, MigrateArgs, Mode};
use crate::progress::observer_for;
use crate::render::{status_summary, summary_with, BadRows};
use crate::{EXIT_ATTENTION, EXIT_INTERRUPTED, EXIT_OK, EXIT_TERMINATED};

/// A mistake in how the command was called (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub &'static str);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for UsageError {}

/// The crates whose log lines are ours (the others log warnings only).
const OUR_CRATES: [&str; 4] = [
    "memory_storage_turso",
    "migrate_embeddings_cli",
    "migrate_embeddings",
    "memory_cli",
];

/// What stderr shows: with `-q` errors only (whatever `RUST_LOG` says);
/// otherwise info (warn under progress bars), `-v` debug, `-vv` trace, and
/// `RUST_LOG` overrides (`None`). Per-batch events wait for `-vv` and
/// quarantined rows are never shown there: they are for `--log-file`, and
/// the final summary lists the bad rows, once.
fn stderr_directives(global: &GlobalArgs, progress_bars: bool) -> Option<String> {
    if global.quiet {
        return Some("error".into());
    }
    let level = match global.verbose {
        0 if progress_bars => "warn",
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    if std::env::var_os("RUST_LOG").is_some() {
        return None;
    }
    let mut d = String::from("warn");
    for crate_name in OUR_CRATES {
        d.push_str(&format!(",{crate_name}={level}"));
    }
    if level != "trace" {
        d.push_str(",memory_storage_turso::batch=warn");
    }
    d.push_str(&format!(",{}=off", crate::progress::QUARANTINE_TARGET));
    Some(d)
}

/// Formats the fields of a stderr log line, each through [`shown`]: an id
/// or a value from the database in a message cannot drive the terminal or
/// forge a line. (The `--log-file` JSON keeps the exact values.)
fn escaped_fields() -> impl for<'w> tracing_subscriber::fmt::FormatFields<'w> + 'static {
    use tracing_subscriber::field::MakeExt;

    tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(w, "{}", shown(&text))
        } else {
            write!(w, "{}={}", field.name(), shown(&text))
        }
    })
    .delimited(" ")
}

/// Sets up logging: human lines on stderr (see [`stderr_directives`];
/// `-q` shows errors only), and with `--log-file` JSON events (every batch,
/// every quarantined row) appended to that file.
pub fn init_logging(global: &GlobalArgs, progress_bars: bool) -> anyhow::Result<()> {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::EnvFilter;

    let stderr_filter = match stderr_directives(global, progress_bars) {
        Some(d) => EnvFilter::new(d),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    let stderr_layer = tracing_subscriber::fmt::layer()
        .fmt_fields(escaped_fields())
        .with_writer(crate::bars::BarsAwareStderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .with_filter(stderr_filter);
    let file_layer = match &global.log_file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            let mut d = String::from("warn");
            for crate_name in OUR_CRATES {
                d.push_str(&format!(",{crate_name}=debug"));
            }
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::sync::Mutex::new(file))
                    .with_filter(EnvFilter::new(d)),
            )
        }
        None => None,
    };
    let _ = tracing_subscriber::registry()
        .with(stderr_layer)
        .with(file_layer)
        .try_init();
    Ok(())
}

/// A flag set by Ctrl-C: the first asks the run to stop after the batch in
/// flight; a second one ends the process at once (the open transaction is
/// rolled back by the database, so nothing is lost), as SIGTERM does.
pub fn ctrl_c_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    let say = |text: &str| {
        crate::bars::shared_multi().suspend(|| eprintln!("\n{text}"));
    };
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if set.swap(true, Ordering::SeqCst) {
                say("Second Ctrl-C: stopping now; the batch in flight is rolled back.");
                stop_now(EXIT_INTERRUPTED);
            }
            say("Ctrl-C: finishing the batch in flight, then stopping (Ctrl-C again to stop at once)…");
        }
    });
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            if term.recv().await.is_some() {
                say("Terminated: stopping now; the batch in flight is rolled back.");
                stop_now(EXIT_TERMINATED);
            }
        }
    });
    flag
}

/// Ends the process at once with `code`, removing the index plan's
/// scratch databases first (nothing unwinds to drop them).
fn stop_now(code: u8) -> ! {
    memory_storage_turso::migration::remove_this_process_scratch();
    std::process::exit(i32::from(code))
}

/// The exit status a finished report calls for.
pub fn exit_status(report: &MigrationReport) -> u8 {
    if report.interrupted {
        EXIT_INTERRUPTED
    } else if report.is_clean() {
        EXIT_OK
    } else {
        EXIT_ATTENTION
    }
}

/// Runs the migration the arguments ask for, on the database `connect`
/// names, and prints its result.
pub async fn run(
    global: &GlobalArgs,
    connect: &ConnectArgs,
    args: &MigrateArgs,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u8> {
    let mode = args.mode().map_err(UsageError)?;
    let db = connect.database().ok_or(UsageError(
        "no database given: pass --db PATH_OR_URL or set TURSO_DATABASE_URL",
    ))?;
    if args.backup_file.is_some() && memory_storage_turso::connect::is_remote(&db) {
        // VACUUM INTO would write the file on the server's disk, if anywhere.
        return Err(UsageError(
            "--backup-file copies a local database file; for a remote database use --backup \
             (a verified copy of the table on the server) and the provider's own backups",
        )
        .into());
    }
    confirm_destructive(&location(&db), args, mode)?;
    let token = connect.token()?;
    let report = run_on(&db, &token, global, args, stop, BadRows::Listed).await?;
    Ok(exit_status(&report))
}

/// Shows where the migration in the database stands; changes nothing.
pub async fn status(global: &GlobalArgs, args: &ConnectArgs) -> anyhow::Result<u8> {
    let db = args.database().ok_or(UsageError(
        "no database given: pass --db PATH_OR_URL or set TURSO_DATABASE_URL",
    ))?;
    let shown = location(&db);
    let status = migration_status(&db, &args.token()?)
        .await
        .map_err(|e| explain(e.into()))
        .with_context(|| format!("reading the migration status of {shown}"))?;
    match global.format {
        Format::Human => emit(&status_summary(&status, &shown))?,
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(&status).context("serializing the status")?
        ))?,
    }
    Ok(EXIT_OK)
}

/// Asks before a destructive step: `--yes` answers; off a terminal it is
/// required.
fn confirm_destructive(db: &str, args: &MigrateArgs, mode: Mode) -> anyhow::Result<()> {
    let question = if args.drop_old_table && mode == Mode::Execute {
        format!(
            "After a verified migration, this DROPS the table `embeddings` from {db} \
             (every row stays in the verified `embeddings_backup`)."
        )
    } else if mode == Mode::Rollback {
        format!(
            "This removes the rows the migration wrote from the target tables of {db} \
             (and restores `embeddings` from `embeddings_backup` if it was dropped)."
        )
    } else {
        return Ok(());
    };
    if args.yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(UsageError(
            "this step is destructive and stdin is not a terminal: pass --yes to confirm it",
        )
        .into());
    }
    eprint!("{question}\nContinue? [y/N] ");
    let mut answer = String::new();
    std::io::stdin()
        .read_line(&mut answer)
        .context("reading the confirmation")?;
    if matches!(answer.trim().to_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(UsageError("not confirmed: nothing was done").into())
    }
}

/// A library error, with what to do when a server refused the token.
fn explain(e: MigrateError) -> anyhow::Error {
    let refused = e
        .core()
        .is_some_and(memory_storage_turso::Error::is_unauthorized);
    let e = anyhow::Error::from(e);
    if refused {
        e.context(
            "the server refused the auth token: check --auth-token, --auth-token-file or TURSO_AUTH_TOKEN",
        )
    } else {
        e
    }
}

/// Writes to stdout; a reader that went away (`| head`) is not an error
/// worth a panic: the run's work is committed either way.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other.context("writing to stdout"),
    }
}

/// The database as messages show it: no secret inside a URL, no control
/// character.
fn location(db: &str) -> String {
    shown(&memory_storage_turso::connect::shown_location(db)).into_owned()
}

/// Runs on `db` (opened with `token`, empty for a local file) and prints
/// the result on stdout (the summary, or only the JSON report with
/// `--format json`), and writes `--report-json` — on
/// success, on a refusal and on a failure alike (the report's `failure`
/// says why; the error is returned to be printed on stderr). A refused
/// run's summary is printed too, so the operator sees what it listed.
/// Used by `run` and the demo (`bad_rows`: whether the summary lists the
/// quarantined rows).
pub async fn run_on(
    db: &str,
    token: &str,
    global: &GlobalArgs,
    args: &MigrateArgs,
    stop: Arc<AtomicBool>,
    bad_rows: BadRows,
) -> anyhow::Result<MigrationReport> {
    let options = args.options();
    // Shown in messages: a secret inside the URL never is.
    let shown = location(db);
    let observer = observer_for(global, &shown, stop);
    let what = match args.mode() {
        Ok(Mode::DryRun) => "dry run",
        Ok(Mode::Verify) => "verification",
        Ok(Mode::Rollback) => "rollback",
        _ => "migration",
    };
    let result = migrate_embeddings_reported(db, token, &options, observer.as_ref()).await;
    observer.finish();
    let (report, error) = match result {
        Ok(report) => (report, None),
        Err(failed) => {
            let FailedRun { report, error } = *failed;
            (report, Some(error))
        }
    };
    let written = write_report(&report, global, args, &shown, bad_rows);
    match error {
        None => written.map(|()| report),
        Some(error) => {
            if let Err(e) = written {
                // The run's error is the one to act on; this one is said too.
                tracing::error!("{e:#}");
            }
            Err(explain(error)).with_context(|| format!("the {what} of {shown} failed"))
        }
    }
}

/// Whether a run's human summary is worth printing: always for a run that
/// ended, for a refused one once it had read the legacy table (a refusal
/// before that has nothing to show but zeros), never for a failed one
/// (its numbers stop mid-way; the error says what happened).
fn summary_wanted(report: &MigrationReport) -> bool {
    match report.failure.as_ref().map(|f| f.kind) {
        None => true,
        Some(FailureKind::Failed) => false,
        Some(FailureKind::Refused) => {
            report.source_rows > 0
                || report.quarantined_count > 0
                || !report.extra_columns.is_empty()
                || report.verification.is_some()
                || report.rollback.is_some()
        }
    }
}

/// Prints a run's report on stdout (the summary, see [`summary_wanted`],
/// or the JSON) and writes it to `--report-json`.
fn write_report(
    report: &MigrationReport,
    global: &GlobalArgs,
    args: &MigrateArgs,
    location: &str,
    bad_rows: BadRows,
) -> anyhow::Result<()> {
    match global.format {
        Format::Human if !summary_wanted(report) => {}
        Format::Human => emit(&summary_with(report, location, bad_rows))?,
        Format::Json => emit(&format!(
            "{}\n",
            serde_json::to_string_pretty(report).context("serializing the report")?
        ))?,
    }
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(report).context("serializing the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(())
}
