//! `migrate-bench`: measures the embeddings migration beside libSQL doing the
//! same copy and the same index build itself, and writes `BENCHMARKS.md`.
//!
//! ```text
//! cargo run --release -p migrate-bench -- --rows 100000 --scaling 10000,100000,1000000
//! ```

mod args;
mod disk;
mod floor;
mod frontier;
mod index;
mod legacy;
mod machine;
mod ours;
mod plan_bench;
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

/// `migrate-bench index-plan`: the plan beside libSQL's defaults.
async fn index_plan(
    args: &Args,
    rows: usize,
    clusters: u32,
    out: &std::path::Path,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let work = tempfile::Builder::new()
        .prefix("migrate-bench-plan-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("making a work folder in {}", args.dir.display()))?;
    // Each table's result is written as it is measured: a run of an hour
    // or more that fails late keeps what it measured.
    let partial = |b: &plan_bench::PlanBench| {
        let _ = std::fs::write(out, plan_bench::markdown(b));
    };
    let json = out.with_extension("json");
    let report_written = |report: &memory_storage_turso::migration::MigrationReport| {
        std::fs::write(&json, serde_json::to_string_pretty(report)?)
            .with_context(|| format!("writing {}", json.display()))
    };
    let result = plan_bench::run(
        work.path(),
        rows,
        clusters,
        args.seed,
        &partial,
        &report_written,
    )
    .await?;
    let text = plan_bench::markdown(&result);
    print!("{text}");
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `migrate-bench generate`: a legacy database, and nothing else.
async fn generate(
    args: &Args,
    rows: usize,
    clusters: u32,
    file: &std::path::Path,
) -> anyhow::Result<()> {
    let g = legacy::generate_clustered(file, rows, clusters, args.seed).await?;
    println!(
        "{}: {} rows ({:?} per dimension), {:.1} GiB, written in {:.0} s",
        file.display(),
        g.rows,
        g.per_dimension,
        g.bytes as f64 / (1u64 << 30) as f64,
        g.seconds
    );
    Ok(())
}

/// `migrate-bench remote`: the network section alone.
async fn remote_only(args: &Args, out: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let work = tempfile::Builder::new()
        .prefix("migrate-bench-remote-")
        .tempdir_in(&args.dir)
        .with_context(|| format!("making a work folder in {}", args.dir.display()))?;
    let db = work.path().join("remote-legacy.db");
    legacy::generate(&db, args.remote_rows, args.seed).await?;
    let bench = remote::run(work.path(), &db, args.remote_rows, &args.latencies).await?;
    let text = bench.markdown();
    print!("{text}");
    std::fs::write(out, &text).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `migrate-bench frontier`: the index plan's frontier from JSON reports.
fn frontier(reports: &[String], out: &std::path::Path) -> anyhow::Result<()> {
    use anyhow::Context;
    let mut panels = Vec::new();
    for r in reports {
        let (name, file) = r.split_once('=').unwrap_or(("", r));
        let text = std::fs::read_to_string(file).with_context(|| format!("reading {file}"))?;
        let json: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{file} is not a JSON report"))?;
        panels.extend(frontier::panels(name, &json).with_context(|| file.to_string())?);
    }
    frontier::draw(&panels, out)?;
    println!("{}: {} panel(s)", out.display(), panels.len());
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let result = match &args.command {
        Some(Command::Child { db }) => ours::child_main(db).await,
        Some(Command::Recall { rows, dims, out }) => recall(&args, *rows, dims, out).await,
        Some(Command::Frontier { reports, out }) => frontier(reports, out),
        Some(Command::Remote { out }) => remote_only(&args, out).await,
        Some(Command::Generate {
            rows,
            clusters,
            file,
        }) => generate(&args, *rows, *clusters, file).await,
        Some(Command::IndexPlan {
            rows,
            clusters,
            out,
        }) => index_plan(&args, *rows, *clusters, out).await,
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
