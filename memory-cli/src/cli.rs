//! The arguments of `memory-cli`. The migration's flags are the shared
//! [`GlobalArgs`] and [`MigrateArgs`] of `migrate_embeddings`, so both
//! binaries parse the same flags and call the same `command::run`.

use clap::{Args, CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use migrate_embeddings_cli::args::{env_help, GlobalArgs, MigrateArgs};

/// The memory store's command line.
#[derive(Debug, Parser)]
#[command(
    name = "memory-cli",
    version,
    propagate_version = true,
    subcommand_required = true,
    arg_required_else_help = true,
    after_help = top_help()
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// The commands of `memory-cli`.
// Parsed once per process: the size of the migration's arguments costs
// nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Move a legacy `embeddings` table into per-dimension tables
    /// (`embeddings_384`, `_1024`, `_1536`, `_3072`, `_other`), in
    /// checkpointed batches, verified bit for bit.
    #[command(after_help = migrate_help())]
    MigrateEmbeddings(MigrateEmbeddings),

    /// Print a shell completion script on stdout.
    #[command(after_help = completions_help())]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

/// `memory-cli migrate-embeddings`: the flags of `migrate_embeddings`, and
/// an optional `status`.
#[derive(Debug, Args)]
pub struct MigrateEmbeddings {
    #[command(flatten)]
    pub args: MigrateArgs,

    #[command(subcommand)]
    pub action: Option<MigrateAction>,
}

/// What `migrate-embeddings` can do besides running a migration.
#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Show where a migration stands (checkpoint, rows left, quarantined
    /// rows, lock holder) without changing anything.
    #[command(after_help = status_help())]
    Status,
}

const EXIT_RUN: &str = "Exit status: 0 done and clean; 3 done, but rows were quarantined or \
verification found discrepancies; 130 stopped by Ctrl-C (resumable); 2 bad usage; 1 failed.";

fn top_help() -> String {
    format!(
        "Examples:
  memory-cli migrate-embeddings --db memory.db --dry-run
  memory-cli migrate-embeddings --db memory.db --execute
  memory-cli migrate-embeddings status --db memory.db
  memory-cli completions bash > /etc/bash_completion.d/memory-cli

Global flags (--format, --dry-run, -v, -q, --log-file) go before or after the command.

{}

{EXIT_RUN}",
        env_help()
    )
}

fn migrate_help() -> String {
    format!(
        "Examples:
  memory-cli migrate-embeddings --db memory.db --dry-run
  memory-cli migrate-embeddings --db memory.db --execute --report-json report.json
  memory-cli --format json migrate-embeddings --db memory.db --execute > report.json
  memory-cli migrate-embeddings --db memory.db --verify
  memory-cli migrate-embeddings status --db memory.db
  memory-cli migrate-embeddings --db memory.db --execute --backup --drop-old-table
  memory-cli migrate-embeddings --db memory.db --rollback

Ctrl-C finishes the batch in flight, commits it and stops; --execute again resumes.

{}

{EXIT_RUN}",
        env_help()
    )
}

fn status_help() -> String {
    format!(
        "Examples:
  memory-cli migrate-embeddings status --db memory.db
  memory-cli --format json migrate-embeddings status --db memory.db

{}

Exit status: 0 status shown; 2 bad usage; 1 failed (e.g. no database there).",
        env_help()
    )
}

fn completions_help() -> &'static str {
    "Examples:
  memory-cli completions bash > ~/.local/share/bash-completion/completions/memory-cli
  memory-cli completions zsh > ~/.zfunc/_memory-cli
  memory-cli completions fish > ~/.config/fish/completions/memory-cli.fish

Exit status: 0 script written; 2 bad usage; 1 failed (stdout not writable)."
}

/// The completion script of `memory-cli` for `shell`.
pub fn completion_script(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "memory-cli", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn db_and_globals_work_on_either_side_of_status() {
        for args in [
            &[
                "m",
                "migrate-embeddings",
                "status",
                "--db",
                "x",
                "--format",
                "json",
            ][..],
            &[
                "m",
                "--format",
                "json",
                "migrate-embeddings",
                "--db",
                "x",
                "status",
            ][..],
        ] {
            let cli = parse(args);
            assert_eq!(
                cli.global.format,
                migrate_embeddings_cli::args::Format::Json
            );
            let Command::MigrateEmbeddings(m) = cli.command else {
                panic!("not migrate-embeddings")
            };
            assert_eq!(m.args.db.as_deref(), Some("x"));
            assert!(matches!(m.action, Some(MigrateAction::Status)));
        }
    }

    #[test]
    fn migrate_flags_are_the_shared_ones() {
        let cli = parse(&[
            "m",
            "migrate-embeddings",
            "--db",
            "x",
            "--execute",
            "-v",
            "--batch-size",
            "7",
        ]);
        assert_eq!(cli.global.verbose, 1);
        let Command::MigrateEmbeddings(m) = cli.command else {
            panic!("not migrate-embeddings")
        };
        assert!(m.action.is_none());
        assert_eq!(m.args.options(&cli.global).batch_size, 7);
        assert!(Cli::try_parse_from(["m", "migrate-embeddings", "status", "--execute"]).is_err());
    }
}
