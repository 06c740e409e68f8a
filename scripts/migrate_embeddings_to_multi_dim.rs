//! `migrate_embeddings`: moves a legacy `embeddings` table into the
//! per-dimension tables. A thin shell over `memory_storage_turso::migration`.

use std::process::ExitCode;

use clap::Parser;
use migrate_embeddings_cli::args::Cli;
use migrate_embeddings_cli::{command, demo, EXIT_FAILED, EXIT_USAGE};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    command::init_logging(cli.migrate.verbose, cli.migrate.quiet);
    let result = if cli.demo {
        demo::run(cli.demo_rows, &cli.migrate).await
    } else {
        command::run(&cli.migrate).await
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if cli.migrate.verbose > 0 {
                eprintln!("error: {err}");
                for cause in err.chain().skip(1) {
                    eprintln!("  caused by: {cause}");
                }
            } else {
                eprintln!("error: {err:#}");
            }
            let usage = err.downcast_ref::<command::UsageError>().is_some()
                || matches!(
                    err.downcast_ref::<memory_storage_turso::Error>(),
                    Some(memory_storage_turso::Error::InvalidOptions(_))
                );
            ExitCode::from(if usage { EXIT_USAGE } else { EXIT_FAILED })
        }
    }
}
