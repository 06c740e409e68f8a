//! `memory-cli`: the memory store's command line. `migrate-embeddings` is
//! the `migrate_embeddings` binary under another name: same flags, same
//! library call, same output and exit statuses.

mod cli;

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use migrate_embeddings_cli::{command, progress, report_error, EXIT_OK};

use cli::{Cli, Command, MigrateAction};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = command::init_logging(&cli.global, progress::bars_wanted(&cli.global)) {
        return report_error(&err, cli.global.verbose);
    }
    let stop = command::ctrl_c_flag();
    let result = match &cli.command {
        Command::MigrateEmbeddings(m) => match m.action {
            Some(MigrateAction::Status) => command::status(&cli.global, &m.args).await,
            None => command::run(&cli.global, &m.args, stop).await,
        },
        Command::Completions { shell } => std::io::stdout()
            .write_all(&cli::completion_script(*shell))
            .context("writing the completion script")
            .map(|()| EXIT_OK),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => report_error(&err, cli.global.verbose),
    }
}
