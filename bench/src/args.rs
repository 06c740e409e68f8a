//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Benchmarks the embeddings migration against libSQL's own `INSERT … SELECT`
/// and `CREATE INDEX`, on identical copies of one generated legacy database,
/// and writes the results as Markdown (plus a scaling plot).
#[derive(Debug, Parser)]
#[command(name = "migrate-bench", version)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Rows of the legacy database of the main comparison.
    #[arg(long, default_value_t = 100_000)]
    pub rows: usize,
    /// Where the databases are made (a temporary folder inside it, removed at the end).
    #[arg(long, default_value = "/tmp")]
    pub dir: PathBuf,
    /// Sizes of the scaling run, comma-separated (e.g. 10000,100000,1000000); none by default.
    #[arg(long, value_delimiter = ',')]
    pub scaling: Vec<usize>,
    /// 384-dimension rows of the vector-index comparison.
    #[arg(long, default_value_t = 2000)]
    pub index_rows: usize,
    /// Rows of the row-at-a-time floor.
    #[arg(long, default_value_t = 3000)]
    pub floor_rows: usize,
    /// Rows per dimension of the search benchmark (0: skip it). Building
    /// the DiskANN indexes is its cost: about 4 minutes at 1,000.
    #[arg(long, default_value_t = 1000)]
    pub search_rows: usize,
    /// Round-trip latencies of the remote benchmark, in ms (none: skip it).
    #[arg(long, value_delimiter = ',', default_values_t = [1u64, 20, 80])]
    pub latencies: Vec<u64>,
    /// Rows of the remote benchmark's database.
    #[arg(long, default_value_t = 3000)]
    pub remote_rows: usize,
    /// The Markdown report to write.
    #[arg(long, default_value = "BENCHMARKS.md")]
    pub out: PathBuf,
    /// The scaling plot to write (PNG), when --scaling is given.
    #[arg(long, default_value = "docs/scaling.png")]
    pub plot: PathBuf,
    /// Seed of the generated data and of the recall queries.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// Internal subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Runs our migration (copy + verify, no vector index) on DB and prints
    /// its report and peak memory as JSON: the parent measures it this way.
    #[command(hide = true)]
    Child {
        #[arg(long)]
        db: PathBuf,
    },
    /// Search recall and latency at a larger size than the main run can
    /// afford (DiskANN builds dominate: about 25 minutes at 10,000 rows of
    /// 384, 1536 and 3072 dimensions), written to its own report.
    Recall {
        /// Rows per dimension.
        #[arg(long, default_value_t = 10_000)]
        rows: usize,
        /// Dimensions, comma-separated.
        #[arg(long, value_delimiter = ',', default_values_t = [384usize, 1536, 3072])]
        dims: Vec<usize>,
        /// The report to write (rewritten after each dimension).
        #[arg(long, default_value = "docs/recall-10k.md")]
        out: PathBuf,
    },
    /// The index plan beside libSQL's default `CREATE INDEX` on the same
    /// rows, one run: build time, index bytes, recall@10 and latency per
    /// table, and the plan's predictions against what was measured.
    IndexPlan {
        /// Rows of the generated legacy database (the realistic mix).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Vectors around this many centres per dimension; 0: uniform on
        /// the sphere, as the realistic mix draws them.
        #[arg(long, default_value_t = 0)]
        clusters: u32,
        /// The Markdown to write.
        #[arg(long, default_value = "docs/index-plan-bench.md")]
        out: PathBuf,
    },
    /// Writes a legacy database of the benchmark's rows to FILE and stops:
    /// the starting point of a run of `migrate_embeddings` itself, as a
    /// user runs it (the 1,000,000-row run of docs/index-plan-bench.md).
    Generate {
        /// Rows of the legacy table (the realistic mix, no bad rows).
        #[arg(long, default_value_t = 100_000)]
        rows: usize,
        /// Vectors around this many centres per dimension; 0: uniform on
        /// the sphere.
        #[arg(long, default_value_t = 0)]
        clusters: u32,
        /// The database file to write (must not exist).
        file: PathBuf,
    },
    /// The network section alone: `--remote-rows` rows at each of
    /// `--latencies`, against sqld behind the latency proxy when it is
    /// found (`SQLD_BIN`, or ../shared/bin/sqld), written to its own file.
    Remote {
        /// The Markdown to write.
        #[arg(long, default_value = "docs/remote-bench.md")]
        out: PathBuf,
    },
    /// The index plan's frontier per table (build time and index size
    /// against recall@10 for every candidate, the pick marked) from JSON
    /// reports of `migrate_embeddings --dry-run --format json`.
    Frontier {
        /// Reports, each `NAME=FILE` (the name heads its panels).
        #[arg(required = true)]
        reports: Vec<String>,
        /// The PNG to write.
        #[arg(long, default_value = "docs/index-frontier.png")]
        out: PathBuf,
    },
}

impl Args {
    /// The command line that reproduces this run, as a user types it.
    pub fn command_line(&self) -> String {
        let mut cmd = format!(
            "cargo run --release -p migrate-bench -- --rows {}",
            self.rows
        );
        if !self.scaling.is_empty() {
            let sizes: Vec<String> = self.scaling.iter().map(|s| s.to_string()).collect();
            cmd.push_str(&format!(" --scaling {}", sizes.join(",")));
        }
        if self.index_rows != 2000 {
            cmd.push_str(&format!(" --index-rows {}", self.index_rows));
        }
        if self.floor_rows != 3000 {
            cmd.push_str(&format!(" --floor-rows {}", self.floor_rows));
        }
        if self.search_rows != 1000 {
            cmd.push_str(&format!(" --search-rows {}", self.search_rows));
        }
        if self.latencies != [1, 20, 80] {
            let l: Vec<String> = self.latencies.iter().map(|s| s.to_string()).collect();
            cmd.push_str(&format!(" --latencies {}", l.join(",")));
        }
        if self.remote_rows != 3000 {
            cmd.push_str(&format!(" --remote-rows {}", self.remote_rows));
        }
        if self.dir != std::path::Path::new("/tmp") {
            cmd.push_str(&format!(" --dir {}", self.dir.display()));
        }
        if self.seed != 1 {
            cmd.push_str(&format!(" --seed {}", self.seed));
        }
        if self.out != std::path::Path::new("BENCHMARKS.md") {
            cmd.push_str(&format!(" --out {}", self.out.display()));
        }
        if self.plot != std::path::Path::new("docs/scaling.png") {
            cmd.push_str(&format!(" --plot {}", self.plot.display()));
        }
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_round_trips_the_options_that_matter() {
        let args = Args::parse_from([
            "migrate-bench",
            "--rows",
            "3000",
            "--scaling",
            "2000,5000",
            "--index-rows",
            "300",
            "--dir",
            "/var/tmp",
        ]);
        assert_eq!(args.scaling, vec![2000, 5000]);
        assert_eq!(
            args.command_line(),
            "cargo run --release -p migrate-bench -- --rows 3000 --scaling 2000,5000 --index-rows 300 --dir /var/tmp"
        );
    }

    #[test]
    fn child_is_a_hidden_subcommand() {
        let args = Args::parse_from(["migrate-bench", "child", "--db", "/x.db"]);
        assert!(matches!(args.command, Some(Command::Child { .. })));
    }
}
