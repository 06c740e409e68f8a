//! `memory-cli`: the memory store's command line. `migrate-embeddings` is
//! the `migrate_embeddings` binary under another name: same spellings, same
//! library call, same output and exit statuses.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use migrate_embeddings_cli::{report_error, run_command};

use cli::{Cli, Command, MIGRATE};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    match &cli.command {
        Command::MigrateEmbeddings(m) => run_command(MIGRATE, &cli.global, m).await,
        Command::Completions { shell } => match std::io::stdout()
            .write_all(&cli::completion_script(*shell))
            .context("writing the completion script")
        {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => report_error(&err, cli.global.verbose),
        },
    }
}
