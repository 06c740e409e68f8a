//! The command lines of both binaries: [`Cli`] for `migrate_embeddings`,
//! and the [`MigrateCommand`] it shares with `memory-cli migrate-embeddings`
//! — a run's flags, `--status` or `status`, `--demo`, spelled the same in
//! both — with the parsing both use ([`parse_or_exit`]).

use clap::{Args, Parser, Subcommand};

use super::{ConnectArgs, GlobalArgs, MigrateArgs, ENV_HELP};

/// `migrate_embeddings`: moves a legacy `embeddings` table into
/// per-dimension tables (`embeddings_384`, `_1024`, `_1536`, `_3072`,
/// `_other`), in checkpointed batches, verified bit for bit. Nothing is ever
/// deleted from the legacy table unless you ask for it.
#[derive(Debug, Parser)]
#[command(
    name = "migrate_embeddings",
    version,
    after_help = const_format_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(flatten)]
    pub command: MigrateCommand,
}

impl Cli {
    /// The command line of `migrate_embeddings`, its `status --help`
    /// included.
    pub fn definition() -> clap::Command {
        with_status_help(<Cli as clap::CommandFactory>::command(), BIN)
    }

    /// Parses the process's arguments (see [`parse_or_exit`]).
    pub fn parse_args() -> Cli {
        parse_or_exit(Cli::definition(), &[])
    }
}

/// Parses the process's arguments with `cmd`, the command line of a binary
/// whose [`MigrateCommand`] sits under the subcommands `path` (none for
/// `migrate_embeddings`, `migrate-embeddings` for `memory-cli`). On bad
/// usage prints the message and exits 2, as clap does. Beyond clap's own
/// checks, `status` and `--status` refuse the flags of a run and `--demo`.
pub fn parse_or_exit<T: clap::FromArgMatches>(cmd: clap::Command, path: &[&str]) -> T {
    parse_from(cmd, path, std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// [`parse_or_exit`] on `args` (the binary's name first), returning the
/// error (`--help` and `--version` are errors of their own kinds, as in
/// clap).
pub fn parse_from<T, I, S>(mut cmd: clap::Command, path: &[&str], args: I) -> Result<T, clap::Error>
where
    T: clap::FromArgMatches,
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString> + Clone,
{
    let matches = cmd.try_get_matches_from_mut(args)?;
    status_alone(&mut cmd, &matches, path)?;
    T::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))
}

/// An error if the [`MigrateCommand`] under `path` asks for the status
/// (`status` or `--status`) and also gives a flag of a run (one of the
/// group `MigrateArgs`) or `--demo`.
fn status_alone(
    cmd: &mut clap::Command,
    matches: &clap::ArgMatches,
    path: &[&str],
) -> Result<(), clap::Error> {
    if let Some((first, rest)) = path.split_first() {
        return match (
            cmd.find_subcommand_mut(first),
            matches.subcommand_matches(first),
        ) {
            (Some(sub), Some(m)) => status_alone(sub, m, rest),
            _ => Ok(()),
        };
    }
    let status = if matches.subcommand_name() == Some("status") {
        "the subcommand 'status'"
    } else if matches.get_flag("status") {
        "the argument '--status'"
    } else {
        return Ok(());
    };
    let refused: Vec<clap::Id> = cmd
        .get_groups()
        .filter(|g| g.get_id() == "MigrateArgs")
        .flat_map(|g| g.get_args().cloned())
        .chain(["demo", "demo_rows"].map(clap::Id::from))
        .collect();
    let given = cmd
        .get_arguments()
        .filter(|a| refused.contains(a.get_id()))
        .find(|a| {
            matches.value_source(a.get_id().as_str())
                == Some(clap::parser::ValueSource::CommandLine)
        })
        .map(|a| a.get_long().unwrap_or(a.get_id().as_str()).to_string());
    match given {
        Some(flag) => Err(cmd.error(
            clap::error::ErrorKind::ArgumentConflict,
            format!("{status} cannot be used with '--{flag}'"),
        )),
        None => Ok(()),
    }
}

/// How `migrate_embeddings` is spelled in the lines it prints.
pub const BIN: &str = "migrate_embeddings";

/// What `--demo` refuses beside it: it picks its database and its steps.
const NOT_WITH_DEMO: [&str; 6] = [
    "status",
    "dry_run",
    "execute",
    "verify",
    "rollback",
    "ConnectArgs",
];

/// Everything after `migrate_embeddings`, and after `memory-cli
/// migrate-embeddings`: the same spellings in both — a run's flags,
/// `--status` or `status`, `--demo`.
#[derive(Debug, Clone, Args)]
pub struct MigrateCommand {
    #[command(flatten)]
    pub connect: ConnectArgs,

    #[command(flatten)]
    pub migrate: MigrateArgs,

    /// Show where a migration stands (checkpoint, rows left, quarantined
    /// rows, lock holder) without changing anything; the same as `status`.
    #[arg(long)]
    pub status: bool,

    /// Create a sample legacy database in a temporary directory and run
    /// dry run, execute and verify on it. Exits 0 when only the bad rows it
    /// planted were quarantined.
    #[arg(long, conflicts_with_all = NOT_WITH_DEMO)]
    pub demo: bool,

    /// Rows in the --demo database.
    // The conflicts too: clap does not require `--demo` beside a flag that
    // conflicts with it.
    #[arg(
        long,
        default_value_t = 30_000,
        requires = "demo",
        conflicts_with_all = NOT_WITH_DEMO,
        value_name = "N"
    )]
    pub demo_rows: usize,

    #[command(subcommand)]
    pub action: Option<Action>,
}

/// The subcommands of a [`MigrateCommand`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Subcommand)]
pub enum Action {
    /// Show where a migration stands (checkpoint, rows left, quarantined
    /// rows, lock holder) without changing anything; the same as `--status`.
    Status,
}

/// What a [`MigrateCommand`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A run: dry run, execute, verify or rollback (see [`Mode`]).
    Run,
    /// `--status` or `status`.
    Status,
    /// `--demo`, on a sample of this many rows.
    Demo { rows: usize },
}

impl MigrateCommand {
    /// The one thing this command line asks for (clap has refused mixes).
    pub fn task(&self) -> Task {
        if self.demo {
            Task::Demo {
                rows: self.demo_rows,
            }
        } else if self.status || self.action == Some(Action::Status) {
            Task::Status
        } else {
            Task::Run
        }
    }
}

/// Gives the `status` subcommand of `cmd` its help examples, spelled the way
/// the binary is called (`invoked_as`: `migrate_embeddings` or
/// `memory-cli migrate-embeddings`).
pub fn with_status_help(cmd: clap::Command, invoked_as: &str) -> clap::Command {
    cmd.mut_subcommand("status", |status| {
        status.after_help(status_help(invoked_as))
    })
}

fn status_help(invoked_as: &str) -> String {
    format!(
        "Examples:
  {invoked_as} status --db memory.db
  {invoked_as} --status --db memory.db
  {invoked_as} status --db memory.db --format json

{ENV_HELP}

Exit status: 0 status shown; 2 bad usage; 1 failed (e.g. no database there)."
    )
}

const fn const_format_help() -> &'static str {
    "Examples:
  migrate_embeddings --demo
  migrate_embeddings --db memory.db --dry-run
  migrate_embeddings --db memory.db --execute --report-json report.json
  migrate_embeddings --db memory.db --execute --format json > report.json
  migrate_embeddings --db memory.db --verify
  migrate_embeddings --db memory.db --status
  migrate_embeddings status --db memory.db
  migrate_embeddings --db memory.db --execute --backup --drop-old-table
  migrate_embeddings --db memory.db --rollback

Ctrl-C finishes the batch in flight, commits it and stops; --execute again resumes.

Environment: the database is --db, else TURSO_DATABASE_URL, else TURSO_DB_URL, else TURSO_URL;
the token is --auth-token or --auth-token-file, else TURSO_AUTH_TOKEN, else TURSO_TOKEN.

Exit status: 0 done and clean; 3 done, but rows were quarantined or verification found
discrepancies; 130 stopped by Ctrl-C, 143 by SIGTERM (resumable); 2 bad usage; 1 failed. --demo exits 0
when only the rows it planted were quarantined."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_definition_is_consistent() {
        Cli::definition().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(Cli::definition(), &[], args)
    }

    #[test]
    fn status_and_dash_dash_status_are_one_task_and_refuse_run_flags() {
        for args in [
            &["m", "--status", "--db", "x"][..],
            &["m", "--db", "x", "--status"][..],
            &["m", "status", "--db", "x"][..],
            &["m", "--db", "x", "status", "--format", "json", "-q"][..],
        ] {
            let cli = parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
            assert_eq!(cli.command.task(), Task::Status, "{args:?}");
            assert_eq!(cli.command.connect.db.as_deref(), Some("x"), "{args:?}");
        }
        for args in [
            &["m", "--status", "--execute"][..],
            &["m", "--dry-run", "--status"][..],
            &["m", "--status", "--batch-size", "5"][..],
            &["m", "--execute", "status"][..],
            &["m", "--batch-size", "5", "status"][..],
            &["m", "--demo", "status"][..],
            &["m", "status", "--dry-run"][..],
            &["m", "status", "--execute"][..],
        ] {
            let err = parse(args)
                .err()
                .unwrap_or_else(|| panic!("{args:?} parsed"));
            assert!(
                matches!(
                    err.kind(),
                    clap::error::ErrorKind::ArgumentConflict
                        | clap::error::ErrorKind::UnknownArgument
                ),
                "{args:?}: {err}"
            );
        }
    }

    #[test]
    fn the_demo_takes_no_database_and_its_rows_need_it() {
        let cli = parse(&["m", "--demo", "--demo-rows", "7", "--batch-size", "9"]).unwrap();
        assert_eq!(cli.command.task(), Task::Demo { rows: 7 });
        assert_eq!(
            parse(&["m", "--demo"]).unwrap().command.task(),
            Task::Demo { rows: 30_000 }
        );
        assert_eq!(
            parse(&["m", "--execute"]).unwrap().command.task(),
            Task::Run
        );
        for args in [
            &["m", "--demo", "--db", "x"][..],
            &["m", "--demo", "--execute"][..],
            &["m", "--demo", "--status"][..],
            &["m", "--demo-rows", "7", "--dry-run"][..],
        ] {
            assert!(parse(args).is_err(), "{args:?} parsed");
        }
    }

    #[test]
    fn every_example_in_the_help_parses() {
        let mut cmd = Cli::definition();
        cmd.build();
        let status = cmd
            .find_subcommand_mut("status")
            .unwrap()
            .render_long_help();
        let helps = [cmd.render_long_help().to_string(), status.to_string()];
        let mut examples = 0;
        for line in helps.iter().flat_map(|h| h.lines()) {
            let Some(rest) = line.strip_prefix("  migrate_embeddings ") else {
                continue;
            };
            let words: Vec<&str> = std::iter::once("migrate_embeddings")
                .chain(rest.split_whitespace().take_while(|w| *w != ">"))
                .collect();
            parse(&words).unwrap_or_else(|e| panic!("the example `{line}` fails: {e}"));
            examples += 1;
        }
        assert!(
            examples >= 12,
            "{examples} examples found:\n{}",
            helps.join("\n")
        );
    }
}
