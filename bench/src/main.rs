//! `migrate-bench`: measures the embeddings migration beside libSQL doing the
//! same copy and the same index build itself, and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p migrate-bench -- --rows 100000 --scaling 10000,100000,1000000
//! ```

mod args;
mod disk;
mod floor;
mod index;
mod legacy;
mod machine;
mod ours;
mod plot;
mod recall;
mod reference;
mod remote;
mod report;
mod run;
mod search;

use std::process::ExitCode;

use clap::Parser;

use args::{Args, Command};

/// `migrate-bench recall`: the search benchmark alone, at a larger size.
async fn recall(
    args: &Args,
    rows: usize,
    dims: &[usize],
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let work = tempfile::Builder::new()
        .prefix("migrate-bench-recall-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("making a work folder in {}", args.dir.display()))?;
    search::recall_run(work.path(), rows, dims, args.seed, out).await
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Child { db }) => ours::child_main(db).await,
        Some(Command::Recall { rows, dims, out }) => recall(&args, *rows, dims, out).await,
        None => run::run(&args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("migrate-bench: {err:#}");
            ExitCode::FAILURE
        }
    }
}
