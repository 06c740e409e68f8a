//! The arguments of `migrate_embeddings` (shared with any other front end
//! that offers the same command).

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser};
use memory_storage_turso::migration::MigrationOptions;

/// Moves a legacy `embeddings` table into per-dimension tables
/// (`embeddings_384`, `_1024`, `_1536`, `_3072`, `_other`), in checkpointed
/// batches, verified bit for bit. Nothing is ever deleted from the legacy
/// table.
#[derive(Debug, Parser)]
#[command(
    name = "migrate_embeddings",
    version,
    after_help = "Examples:\n  \
        migrate_embeddings --demo\n  \
        migrate_embeddings --db memory.db --dry-run\n  \
        migrate_embeddings --db memory.db --execute --report-json report.json\n  \
        migrate_embeddings --db memory.db --verify\n\n\
        Exit status: 0 done and clean; 3 done, but rows were quarantined or verification \
        found discrepancies; 2 bad usage; 1 failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub migrate: MigrateArgs,

    /// Create a sample legacy database in a temporary directory and run
    /// dry run, execute and verify on it.
    #[arg(long, conflicts_with_all = ["dry_run", "execute", "verify", "db"])]
    pub demo: bool,

    /// Rows in the --demo database.
    #[arg(long, default_value_t = 30_000, requires = "demo")]
    pub demo_rows: usize,
}

/// What to migrate and how.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("mode").args(["dry_run", "execute", "verify"])))]
pub struct MigrateArgs {
    /// Database: a local libSQL file path, or libsql://, https://, http:// URL.
    #[arg(long, env = "TURSO_DATABASE_URL", value_name = "PATH_OR_URL")]
    pub db: Option<String>,

    /// Auth token for a remote database.
    #[arg(
        long,
        env = "TURSO_AUTH_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub auth_token: Option<String>,

    /// Read everything and report what would happen; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Copy, build vector indexes, verify. Resumes from the checkpoint.
    #[arg(long)]
    pub execute: bool,

    /// Compare every migrated row with its source; write nothing.
    #[arg(long)]
    pub verify: bool,

    /// Rows per batch transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), value_name = "N")]
    pub batch_size: u64,

    /// Skip building the DiskANN vector indexes (a later --execute builds
    /// what is missing).
    #[arg(long)]
    pub no_vector_index: bool,

    /// Write the full report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,

    /// More log output (-v, -vv).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors and the final summary.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

impl MigrateArgs {
    /// The library options these arguments ask for.
    pub fn options(&self) -> MigrationOptions {
        MigrationOptions {
            dry_run: self.dry_run,
            verify_only: self.verify,
            batch_size: self.batch_size as usize,
            build_vector_index: !self.no_vector_index,
            ..Default::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn modes_exclude_each_other() {
        assert!(Cli::try_parse_from(["m", "--db", "x", "--dry-run", "--execute"]).is_err());
        assert!(Cli::try_parse_from(["m", "--demo", "--execute"]).is_err());
        let cli = Cli::try_parse_from(["m", "--db", "x", "--verify", "--batch-size", "7"]).unwrap();
        let o = cli.migrate.options();
        assert!(o.verify_only && !o.dry_run);
        assert_eq!(o.batch_size, 7);
        assert!(Cli::try_parse_from(["m", "--db", "x", "--execute", "--batch-size", "0"]).is_err());
    }
}
