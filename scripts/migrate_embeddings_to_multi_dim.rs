//! `migrate_embeddings`: moves a legacy `embeddings` table into the
//! per-dimension tables. A thin shell over `memory_storage_turso::migration`.

use std::process::ExitCode;

use clap::Parser;
use migrate_embeddings_cli::args::Cli;
use migrate_embeddings_cli::{command, demo, progress, report_error};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(err) = command::init_logging(&cli.global, progress::bars_wanted(&cli.global)) {
        return report_error(&err, cli.global.verbose);
    }
    let stop = command::ctrl_c_flag();
    let result = if cli.demo {
        demo::run(cli.demo_rows, &cli.global, &cli.migrate, stop).await
    } else if cli.status {
        command::status(&cli.global, &cli.migrate).await
    } else {
        command::run(&cli.global, &cli.migrate, stop).await
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => report_error(&err, cli.global.verbose),
    }
}
