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
        migrate_embeddings --db memory.db --verify\n  \
        migrate_embeddings --db memory.db --execute --backup --drop-old-table\n  \
        migrate_embeddings --db memory.db --rollback\n\n\
        Exit status: 0 done and clean; 3 done, but rows were quarantined or verification \
        found discrepancies; 2 bad usage; 1 failed."
)]
pub struct Cli {
    #[command(flatten)]
    pub migrate: MigrateArgs,

    /// Create a sample legacy database in a temporary directory and run
    /// dry run, execute and verify on it.
    #[arg(long, conflicts_with_all = ["dry_run", "execute", "verify", "rollback", "db"])]
    pub demo: bool,

    /// Rows in the --demo database.
    #[arg(long, default_value_t = 30_000, requires = "demo")]
    pub demo_rows: usize,
}

/// What to migrate and how.
#[derive(Debug, Clone, Args)]
#[command(group(ArgGroup::new("mode").args(["dry_run", "execute", "verify", "rollback"])))]
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

    /// Undo the migration: restore `embeddings` from `embeddings_backup` if
    /// it was dropped, and remove the rows this migration wrote from the
    /// target tables (rows written there by anything else are kept).
    #[arg(long)]
    pub rollback: bool,

    /// With --rollback: only remove the rows migrated after this checkpoint
    /// (an embedding_id) and move the checkpoint back to it.
    #[arg(long, value_name = "EMBEDDING_ID", conflicts_with_all = ["dry_run", "verify", "execute"])]
    pub from_checkpoint: Option<String>,

    /// Copy `embeddings` to `embeddings_backup` (verified by count and
    /// checksum) before writing any target row.
    #[arg(long)]
    pub backup: bool,

    /// Also write a consistent copy of the whole (local) database to FILE
    /// before migrating; refuses to overwrite an existing file.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["dry_run", "verify", "rollback"])]
    pub backup_file: Option<PathBuf>,

    /// After a verified migration, drop `embeddings` (a verified
    /// `embeddings_backup` is made first if missing). Destructive: asks for
    /// confirmation, or --yes.
    #[arg(long, conflicts_with_all = ["dry_run", "verify", "rollback"])]
    pub drop_old_table: bool,

    /// Let --drop-old-table proceed although some rows are quarantined (they
    /// live on in `embeddings_backup` and the quarantine record).
    #[arg(long)]
    pub allow_quarantined: bool,

    /// Answer yes to the confirmation of a destructive step (required when
    /// not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Retries of a batch after a transient error (busy, locked, dropped
    /// connection), with exponential backoff and jitter.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_retries: u32,

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
            backup: self.backup,
            backup_file: self.backup_file.clone(),
            drop_old_table: self.drop_old_table,
            allow_quarantined: self.allow_quarantined,
            rollback: self.rollback,
            from_checkpoint: self.from_checkpoint.clone(),
            max_retries: self.max_retries,
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
        assert!(Cli::try_parse_from(["m", "--db", "x", "--dry-run", "--drop-old-table"]).is_err());
        assert!(
            Cli::try_parse_from(["m", "--db", "x", "--verify", "--from-checkpoint", "a"]).is_err()
        );
        let cli = Cli::try_parse_from(["m", "--db", "x", "--rollback", "--from-checkpoint", "a"])
            .unwrap();
        assert!(cli.migrate.options().rollback);
        assert_eq!(cli.migrate.options().from_checkpoint.as_deref(), Some("a"));
    }
}
