//! `migrate_embeddings`: moves a legacy `embeddings` table into the
//! per-dimension tables. A thin shell over `memory_storage_turso::migration`.

use std::process::ExitCode;

use migrate_embeddings_cli::args::{Cli, BIN};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse_args();
    migrate_embeddings_cli::run_command(BIN, &cli.global, &cli.command).await
}
