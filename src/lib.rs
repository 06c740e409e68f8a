//! The command-line front end of the migration: argument parsing, progress
//! lines and report rendering. Every decision about data is made by the
//! `memory-storage-turso` library; this crate only asks and shows.

pub mod args;
pub mod bars;
pub mod command;
pub mod demo;
pub mod progress;
pub mod render;

/// Exit status: done and clean.
pub const EXIT_OK: u8 = 0;
/// Exit status: the run failed (one sentence on stderr says why).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: done, but rows were quarantined or verification found
/// discrepancies.
pub const EXIT_ATTENTION: u8 = 3;
/// Exit status: stopped by Ctrl-C after a committed batch (resumable).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit status: stopped at once by SIGTERM (resumable: the transaction in
/// flight is rolled back).
pub const EXIT_TERMINATED: u8 = 143;

/// Runs what a command line of `migrate_embeddings` or of `memory-cli
/// migrate-embeddings` asks for — a run, the status or the demo — and gives
/// the process its exit status. `invoked_as` spells the binary in the lines
/// the demo shows.
pub async fn run_command(
    invoked_as: &str,
    global: &args::GlobalArgs,
    cmd: &args::MigrateCommand,
) -> std::process::ExitCode {
    if let Err(err) = command::init_logging(global, progress::bars_wanted(global)) {
        return report_error(&err, global.verbose);
    }
    let stop = command::ctrl_c_flag();
    let result = match cmd.task() {
        args::Task::Run => command::run(global, &cmd.connect, &cmd.migrate, stop).await,
        args::Task::Status => command::status(global, &cmd.connect).await,
        args::Task::Demo { rows } => demo::run(invoked_as, rows, global, &cmd.migrate, stop).await,
    };
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(err) => report_error(&err, global.verbose),
    }
}

/// Prints a failed command's error on stderr — one sentence with its causes,
/// each cause on its own line with `-v` — and picks its exit status (2 for
/// bad usage, 1 otherwise).
pub fn report_error(err: &anyhow::Error, verbose: u8) -> std::process::ExitCode {
    if verbose > 0 {
        eprintln!("error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
    } else {
        eprintln!("error: {err:#}");
    }
    let invalid = |e: &memory_storage_turso::Error| {
        matches!(e, memory_storage_turso::Error::InvalidOptions(_))
    };
    let usage = err.downcast_ref::<command::UsageError>().is_some()
        || err
            .downcast_ref::<memory_storage_turso::Error>()
            .is_some_and(invalid)
        || err
            .downcast_ref::<memory_storage_turso::migration::MigrateError>()
            .and_then(|e| e.core())
            .is_some_and(invalid);
    std::process::ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILED })
}
