//! The arguments of `memory-cli`. `migrate-embeddings` is the shared
//! [`MigrateCommand`] of `migrate_embeddings` (with [`GlobalArgs`]), so both
//! binaries accept the same spellings and call the same
//! `migrate_embeddings_cli::run_command`.

use clap::{CommandFactory, Parser, Subcommand};
use clap_complete::Shell;
use migrate_embeddings_cli::args::{
    env_help, parse_or_exit, with_status_help, GlobalArgs, MigrateCommand,
};

/// How `memory-cli migrate-embeddings` is spelled in the lines it prints.
pub const MIGRATE: &str = "memory-cli migrate-embeddings";

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
    MigrateEmbeddings(MigrateCommand),

    /// Print a shell completion script on stdout.
    #[command(after_help = completions_help())]
    Completions {
        /// The shell to complete for.
        #[arg(value_enum)]
        shell: Shell,
    },
}

impl Cli {
    /// The command line of `memory-cli`, the help of
    /// `migrate-embeddings status` included.
    pub fn definition() -> clap::Command {
        Cli::command().mut_subcommand("migrate-embeddings", |m| with_status_help(m, MIGRATE))
    }

    /// Parses the process's arguments; on bad usage prints the message and
    /// exits 2.
    pub fn parse_args() -> Cli {
        parse_or_exit(Cli::definition(), &["migrate-embeddings"])
    }
}

const EXIT_RUN: &str = "Exit status: 0 done and clean; 3 done, but rows were quarantined or \
verification found discrepancies; 130 stopped by Ctrl-C, 143 by SIGTERM (resumable); 2 bad usage; 1 failed. \
--demo exits 0 when only the rows it planted were quarantined.";

fn top_help() -> String {
    format!(
        "Examples:
  memory-cli migrate-embeddings --demo
  memory-cli migrate-embeddings --db memory.db --dry-run
  memory-cli migrate-embeddings --db memory.db --execute
  memory-cli migrate-embeddings status --db memory.db
  memory-cli completions bash > /etc/bash_completion.d/memory-cli

Global flags (--format, -v, -q, --log-file) go before or after the command.

{}

{EXIT_RUN}",
        env_help()
    )
}

fn migrate_help() -> String {
    format!(
        "Examples:
  memory-cli migrate-embeddings --demo
  memory-cli migrate-embeddings --db memory.db --dry-run
  memory-cli migrate-embeddings --db memory.db --execute --report-json report.json
  memory-cli --format json migrate-embeddings --db memory.db --execute > report.json
  memory-cli migrate-embeddings --db memory.db --verify
  memory-cli migrate-embeddings --db memory.db --status
  memory-cli migrate-embeddings status --db memory.db
  memory-cli migrate-embeddings --db memory.db --execute --backup --drop-old-table
  memory-cli migrate-embeddings --db memory.db --rollback

Ctrl-C finishes the batch in flight, commits it and stops; --execute again resumes.

{}

{EXIT_RUN}",
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
    clap_complete::generate(shell, &mut Cli::definition(), "memory-cli", &mut script);
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use migrate_embeddings_cli::args::{parse_from, Task};

    fn try_parse(args: &[&str]) -> Result<Cli, clap::Error> {
        parse_from(Cli::definition(), &["migrate-embeddings"], args)
    }

    fn parse(args: &[&str]) -> Cli {
        try_parse(args).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::definition().debug_assert();
    }

    #[test]
    fn status_demo_and_status_flag_are_spelled_as_in_migrate_embeddings() {
        for args in [
            &["m", "migrate-embeddings", "--status", "--db", "x"][..],
            &["m", "migrate-embeddings", "--db", "x", "status"][..],
        ] {
            let Command::MigrateEmbeddings(m) = parse(args).command else {
                panic!("not migrate-embeddings")
            };
            assert_eq!(m.task(), Task::Status, "{args:?}");
        }
        let Command::MigrateEmbeddings(m) =
            parse(&["m", "migrate-embeddings", "--demo", "--demo-rows", "9"]).command
        else {
            panic!("not migrate-embeddings")
        };
        assert_eq!(m.task(), Task::Demo { rows: 9 });
        for args in [
            &["m", "migrate-embeddings", "--status", "--verify"][..],
            &["m", "migrate-embeddings", "--execute", "status"][..],
            &["m", "migrate-embeddings", "status", "--dry-run"][..],
            &["m", "--dry-run", "migrate-embeddings", "status"][..],
        ] {
            assert!(try_parse(args).is_err(), "{args:?} parsed");
        }
    }

    #[test]
    fn every_example_in_every_help_parses() {
        let mut cmd = Cli::definition();
        cmd.build();
        let mut helps = vec![cmd.render_long_help().to_string()];
        for path in [
            &["migrate-embeddings"][..],
            &["migrate-embeddings", "status"][..],
            &["completions"][..],
        ] {
            let mut sub = &mut cmd;
            for name in path {
                sub = sub.find_subcommand_mut(name).unwrap();
            }
            helps.push(sub.render_long_help().to_string());
        }
        let mut examples = 0;
        for line in helps.iter().flat_map(|h| h.lines()) {
            let Some(rest) = line.strip_prefix("  memory-cli ") else {
                continue;
            };
            let words: Vec<&str> = std::iter::once("memory-cli")
                .chain(rest.split_whitespace().take_while(|w| *w != ">"))
                .collect();
            try_parse(&words).unwrap_or_else(|e| panic!("the example `{line}` fails: {e}"));
            examples += 1;
        }
        assert!(
            examples >= 18,
            "{examples} examples found:\n{}",
            helps.join("\n")
        );
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
            assert_eq!(m.connect.db.as_deref(), Some("x"));
            assert_eq!(m.task(), Task::Status);
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
        assert_eq!(m.task(), Task::Run);
        assert_eq!(m.migrate.options().batch_size, 7);
        assert!(try_parse(&["m", "migrate-embeddings", "status", "--execute"]).is_err());
    }
}
