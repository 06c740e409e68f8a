//! Runs one `migrate_embeddings` command: calls the library, renders the
//! report, picks the exit status.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::Context;
use memory_storage_turso::migration::{migrate_embeddings_observed, MigrationReport};

use crate::args::MigrateArgs;
use crate::progress::LogProgress;
use crate::render::summary;
use crate::{EXIT_ATTENTION, EXIT_OK};

/// A mistake in how the command was called (exit status 2).
#[derive(Debug)]
pub struct UsageError(pub &'static str);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for UsageError {}

/// Sets up logging on stderr: info by default, `-v` debug, `-vv` trace,
/// `-q` errors only. `RUST_LOG` overrides.
pub fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(format!(
            "warn,memory_storage_turso={level},migrate_embeddings_cli={level},migrate_embeddings={level}"
        ))
    });
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// The exit status a finished report calls for.
pub fn exit_status(report: &MigrationReport) -> u8 {
    if report.is_clean() {
        EXIT_OK
    } else {
        EXIT_ATTENTION
    }
}

/// Runs the migration the arguments ask for and prints its summary.
pub async fn run(args: &MigrateArgs) -> anyhow::Result<u8> {
    if !(args.dry_run || args.execute || args.verify || args.rollback) {
        return Err(UsageError(
            "say what to do: --dry-run, --execute, --verify or --rollback (or --demo to try it on a sample)",
        )
        .into());
    }
    let Some(db) = args.db.as_deref() else {
        return Err(UsageError(
            "no database given: pass --db PATH_OR_URL or set TURSO_DATABASE_URL",
        )
        .into());
    };
    confirm_destructive(db, args)?;
    let report = run_on(db, args).await?;
    Ok(exit_status(&report))
}

/// Asks before a destructive step: `--yes` answers; off a terminal it is
/// required.
fn confirm_destructive(db: &str, args: &MigrateArgs) -> anyhow::Result<()> {
    let question = if args.drop_old_table {
        format!(
            "After a verified migration, this DROPS the table `embeddings` from {db} \
             (every row stays in the verified `embeddings_backup`)."
        )
    } else if args.rollback {
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

/// Runs on `db` and prints the summary (stdout) — used by `run` and the demo.
pub async fn run_on(db: &str, args: &MigrateArgs) -> anyhow::Result<MigrationReport> {
    let options = args.options();
    let progress = LogProgress::new(Duration::from_secs(2));
    let token = args.auth_token.clone().unwrap_or_default();
    let what = if args.dry_run {
        "dry run"
    } else if args.verify {
        "verification"
    } else if args.rollback {
        "rollback"
    } else {
        "migration"
    };
    let report = migrate_embeddings_observed(db, &token, &options, &progress)
        .await
        .with_context(|| format!("the {what} of {db} failed"))?;
    print!("{}", summary(&report, db));
    if let Some(path) = &args.report_json {
        let json = serde_json::to_string_pretty(&report).context("serializing the report")?;
        std::fs::write(path, json + "\n")
            .with_context(|| format!("writing the report to {}", path.display()))?;
    }
    Ok(report)
}
