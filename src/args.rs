//! The arguments of `migrate_embeddings`, shared with
//! `memory-cli migrate-embeddings`: both parse the same [`MigrateCommand`]
//! (its [`ConnectArgs`] and [`MigrateArgs`]) with [`GlobalArgs`], and call
//! the same [`crate::run_command`]. The command lines themselves are in
//! `command_line`.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use memory_storage_turso::migration::MigrationOptions;

mod command_line;

pub use command_line::{
    parse_from, parse_or_exit, with_status_help, Action, Cli, MigrateCommand, Task, BIN,
};

/// How results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Format {
    /// A summary for people.
    #[default]
    Human,
    /// The report as JSON, and nothing else, on stdout.
    Json,
}

/// What wins a conflict (see `--on-conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum OnConflict {
    /// Keep the row in the new table; the legacy row counts as settled.
    #[default]
    Target,
    /// Save the row in the new table, then write the legacy row.
    Legacy,
}

/// Environment variables naming the database, in order of precedence
/// (after `--db`): the current name first, then the store's older names.
pub const DB_ENV: [&str; 3] = ["TURSO_DATABASE_URL", "TURSO_DB_URL", "TURSO_URL"];
/// Environment variables holding the auth token, in order of precedence
/// (after `--auth-token`).
pub const TOKEN_ENV: [&str; 2] = ["TURSO_AUTH_TOKEN", "TURSO_TOKEN"];

const ENV_HELP: &str =
    "Environment: the database is --db, else TURSO_DATABASE_URL, else TURSO_DB_URL, \
else TURSO_URL; the token is --auth-token or --auth-token-file, else TURSO_AUTH_TOKEN, else \
TURSO_TOKEN.";

/// Flags every command understands, `status` included (global in
/// `memory-cli`).
#[derive(Debug, Clone, Args, Default)]
pub struct GlobalArgs {
    /// Output format on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Human)]
    pub format: Format,

    /// More log output (-v debug, -vv trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    /// Only errors and the final summary (no progress).
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Also write structured JSON log events (one per batch, one per
    /// quarantined row) to FILE, appending.
    #[arg(long, global = true, value_name = "FILE")]
    pub log_file: Option<PathBuf>,
}

/// Which database, and the token to open it: what `status` and every run
/// share (global, so they go before or after `status`).
#[derive(Debug, Clone, Args, Default)]
pub struct ConnectArgs {
    /// Database: a local libSQL file path, or libsql://, https://, http:// URL.
    #[arg(long, global = true, value_name = "PATH_OR_URL")]
    pub db: Option<String>,

    /// Auth token for a remote database (visible to other users in the
    /// process list: prefer --auth-token-file or TURSO_AUTH_TOKEN).
    #[arg(long, global = true, value_name = "TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,

    /// Read the auth token from FILE (surrounding whitespace ignored).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        conflicts_with = "auth_token"
    )]
    pub auth_token_file: Option<PathBuf>,
}

/// How to migrate: the flags of a run, which `status` and `--status` refuse
/// (by this struct's argument group, `MigrateArgs`).
#[derive(Debug, Clone, Args, Default)]
pub struct MigrateArgs {
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
    #[arg(long, value_name = "EMBEDDING_ID")]
    pub from_checkpoint: Option<String>,

    /// Copy `embeddings` to `embeddings_backup` (verified by count and
    /// checksum) before writing any target row. A table of that name the
    /// migration did not make is never replaced: the run stops first.
    #[arg(long)]
    pub backup: bool,

    /// The backup table of --backup and --drop-old-table, instead of
    /// `embeddings_backup` (ASCII letters, digits and underscores). Later
    /// runs and --rollback use the one recorded.
    #[arg(long, value_name = "NAME", value_parser = parse_backup_table)]
    pub backup_table: Option<String>,

    /// Also write a consistent copy of the whole (local) database to FILE
    /// before migrating; refuses to overwrite an existing file.
    #[arg(long, value_name = "FILE")]
    pub backup_file: Option<PathBuf>,

    /// After a verified migration, drop `embeddings` (a verified
    /// `embeddings_backup` is made first if missing). Destructive: asks for
    /// confirmation, or --yes.
    #[arg(long)]
    pub drop_old_table: bool,

    /// Let --drop-old-table proceed although some rows are quarantined (they
    /// live on in `embeddings_backup` and the quarantine record).
    #[arg(long)]
    pub allow_quarantined: bool,

    /// Migrate although `embeddings` has columns the new tables do not
    /// have (their values are not carried over; --drop-old-table is still
    /// refused while they hold any).
    #[arg(long)]
    pub ignore_extra_columns: bool,

    /// Answer yes to the confirmation of a destructive step (required when
    /// not on a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,

    /// Retries of a batch after a transient error (busy, locked, dropped
    /// connection), with exponential backoff and jitter.
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub max_retries: u32,

    /// Remote databases: seconds the server may stay silent while an answer
    /// is awaited before the request counts as lost and is retried.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400), value_name = "SECS")]
    pub timeout: u64,

    /// Remote databases: send every statement as a request of its own (as
    /// the libSQL client does) instead of each window read and each batch
    /// transaction in one request. Many times slower over a long round
    /// trip; for a server that does not take Hrana batches.
    #[arg(long)]
    pub one_statement_per_request: bool,

    /// Rows per batch transaction.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), value_name = "N")]
    pub batch_size: u64,

    /// Skip building the DiskANN vector indexes (a later --execute builds
    /// what is missing).
    #[arg(long)]
    pub no_vector_index: bool,

    /// With --execute: the application may keep writing to `embeddings`.
    /// Triggers log every changed row, the run mirrors them into the new
    /// tables (bad rows to the quarantine record), and removes the triggers
    /// in the transaction of its final check; from then on the application
    /// must write to the new tables.
    #[arg(long)]
    pub online: bool,

    /// The recall@10 the index plan aims at: each native table gets the
    /// cheapest DiskANN setting measured to reach it on a sample of its
    /// own rows (or no index, where an exact search is fast enough).
    #[arg(long, default_value_t = 0.95, value_name = "SHARE", value_parser = parse_share)]
    pub target_recall: f64,

    /// The search latency the index plan aims at, in milliseconds.
    #[arg(long, default_value_t = 50.0, value_name = "MS")]
    pub max_query_ms: f64,

    /// Overrides the index plan for one table (repeatable):
    /// `embeddings_384=compress_neighbors=float8,max_neighbors=32`,
    /// `embeddings_1024=default` (libSQL's defaults),
    /// `embeddings_1536=scan` (a quantized scan index: an ordinary index of
    /// 8-bit vectors, scanned and re-ranked exactly), `embeddings_1536=scan1bit`
    /// (the same of 1-bit vectors: an eighth of the bytes to read, a coarser
    /// ranking) or `embeddings_3072=none` (no index: exact search).
    #[arg(long, value_name = "TABLE=OPTS", value_parser = parse_index_options)]
    pub index_options: Vec<(String, String)>,

    /// Build libSQL's default DiskANN index on every native table, without
    /// planning (the global --compress-neighbors, --max-neighbors and
    /// --search-l imply it).
    #[arg(long)]
    pub no_index_plan: bool,

    /// Leave the quantized scan index out of the index plan: DiskANN or
    /// exact search only. A scan's latency grows with the rows; a table
    /// that will grow far past its size now may want DiskANN, whose
    /// latency does not.
    #[arg(long)]
    pub no_scan_index: bool,

    /// Rows × dimensions of a table past which an online run builds its
    /// quantized scan index in batches beside it (each a transaction of
    /// about 2 s, as the DiskANN builds), rather than in one statement that
    /// holds the write lock while it sorts the whole table. Default: past
    /// 100000000 (about 2 s, 260,000 rows of 384 dimensions) on a local
    /// file; never over the network, where one statement sqld rolls back
    /// for a waiting writer is made again in batches.
    #[arg(long, value_name = "N")]
    pub scan_index_batches_above: Option<u64>,

    /// DiskANN `compress_neighbors` for every vector index (float1bit,
    /// float8, float16, floatb16, float32), instead of the plan: smaller
    /// and faster to build, at some cost in recall (see BENCHMARKS.md).
    #[arg(long, value_name = "TYPE", value_parser = parse_compression)]
    pub compress_neighbors: Option<memory_storage_turso::schema::NeighborCompression>,

    /// DiskANN `max_neighbors` for every vector index, instead of the plan.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_neighbors: Option<u32>,

    /// DiskANN `search_l` for the vector indexes: the candidate list of a
    /// search (libSQL's default 200). Smaller searches faster at some cost
    /// in recall (see BENCHMARKS.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=10000))]
    pub search_l: Option<u32>,

    /// What wins when a row of the new tables that this migration did not
    /// write (or that changed since it wrote it) holds an embedding_id of
    /// the legacy table with other values: `target` keeps that row (the
    /// application's newer write) and reports it; `legacy` saves it in
    /// `embedding_migration_displaced` and writes the legacy row (a
    /// `--rollback` puts the saved row back).
    #[arg(long, value_enum, default_value_t = OnConflict::Target, value_name = "SIDE")]
    pub on_conflict: OnConflict,

    /// Write the full report as JSON to FILE.
    #[arg(long, value_name = "FILE")]
    pub report_json: Option<PathBuf>,
}

/// What a command line asks the migration to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    DryRun,
    Execute,
    Verify,
    Rollback,
}

impl ConnectArgs {
    /// The database, from `--db` or the environment (see [`DB_ENV`]).
    pub fn database(&self) -> Option<String> {
        self.db.clone().or_else(|| {
            DB_ENV
                .iter()
                .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
        })
    }

    /// The auth token, from `--auth-token`, `--auth-token-file` or the
    /// environment (see [`TOKEN_ENV`]); empty for a local file. An error
    /// names the file, never what it holds.
    pub fn token(&self) -> anyhow::Result<String> {
        if let Some(token) = &self.auth_token {
            return Ok(token.clone());
        }
        if let Some(path) = &self.auth_token_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                anyhow::anyhow!("cannot read the auth token file {}: {e}", path.display())
            })?;
            let token = text.trim();
            anyhow::ensure!(
                !token.is_empty(),
                "the auth token file {} is empty",
                path.display()
            );
            return Ok(token.to_string());
        }
        Ok(TOKEN_ENV
            .iter()
            .find_map(|v| std::env::var(v).ok().filter(|s| !s.is_empty()))
            .unwrap_or_default())
    }
}

impl MigrateArgs {
    /// The one mode asked for, or a usage message.
    pub fn mode(&self) -> Result<Mode, &'static str> {
        let modes = [
            (self.dry_run, Mode::DryRun),
            (self.execute, Mode::Execute),
            (self.verify, Mode::Verify),
            (self.rollback, Mode::Rollback),
        ];
        let mut chosen = modes.iter().filter(|(on, _)| *on).map(|(_, m)| *m);
        match (chosen.next(), chosen.next()) {
            (Some(m), None) => Ok(m),
            (None, _) => Err("say what to do: --dry-run, --execute, --verify or --rollback \
                 (or --status to see where a migration stands, or --demo to try it all on a sample)"),
            (Some(_), Some(_)) => Err("choose one of --dry-run, --execute, --verify and --rollback"),
        }
    }

    /// The library options these arguments ask for.
    pub fn options(&self) -> MigrationOptions {
        MigrationOptions {
            dry_run: self.dry_run,
            verify_only: self.verify,
            batch_size: self.batch_size as usize,
            build_vector_index: !self.no_vector_index,
            backup: self.backup,
            backup_table: self.backup_table.clone(),
            backup_file: self.backup_file.clone(),
            ignore_extra_columns: self.ignore_extra_columns,
            drop_old_table: self.drop_old_table,
            allow_quarantined: self.allow_quarantined,
            rollback: self.rollback,
            from_checkpoint: self.from_checkpoint.clone(),
            max_retries: self.max_retries,
            online: self.online,
            request_timeout: std::time::Duration::from_secs(self.timeout),
            statement_per_request: self.one_statement_per_request,
            on_conflict: match self.on_conflict {
                OnConflict::Target => memory_storage_turso::migration::ConflictPolicy::Target,
                OnConflict::Legacy => memory_storage_turso::migration::ConflictPolicy::Legacy,
            },
            vector_index: memory_storage_turso::schema::VectorIndexOptions {
                compress_neighbors: self.compress_neighbors,
                max_neighbors: self.max_neighbors,
                search_l: self.search_l,
            },
            index: self.index_planning(),
            ..Default::default()
        }
    }

    /// The index plan's targets and overrides: planned unless options were
    /// fixed for every table.
    fn index_planning(&self) -> memory_storage_turso::migration::IndexPlanning {
        use memory_storage_turso::migration::{Forced, IndexMode, IndexPlanning};
        use memory_storage_turso::schema::{ScanBits, TargetTable, VectorIndexOptions};
        let fixed = self.no_index_plan
            || self.compress_neighbors.is_some()
            || self.max_neighbors.is_some()
            || self.search_l.is_some();
        let mut forced = std::collections::BTreeMap::new();
        for (table, opts) in &self.index_options {
            let Some(t) = TargetTable::ALL.into_iter().find(|t| t.name() == table) else {
                continue; // checked by the parser
            };
            let choice = if opts == "none" {
                Forced::Exact
            } else if let Some(bits) = ScanBits::from_options(opts) {
                Forced::Scan(bits)
            } else {
                Forced::Options(VectorIndexOptions::parse(opts).unwrap_or_default())
            };
            forced.insert(t, choice);
        }
        IndexPlanning {
            mode: if fixed {
                IndexMode::Fixed
            } else {
                IndexMode::Planned
            },
            target_recall: self.target_recall,
            max_query_ms: self.max_query_ms,
            sample_rows: None,
            scan_index: !self.no_scan_index,
            forced,
            // Measured by the run, on the database it opens.
            cold_read_rate: None,
            scan_batches_above: self.scan_index_batches_above,
        }
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    s.parse::<f64>()
        .ok()
        .filter(|x| (0.0..=1.0).contains(x))
        .ok_or_else(|| format!("{s:?} is not a share between 0 and 1"))
}

fn parse_index_options(s: &str) -> Result<(String, String), String> {
    use memory_storage_turso::schema::{TargetTable, VectorIndexOptions};
    let (table, opts) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not TABLE=OPTS"))?;
    let t = TargetTable::ALL
        .into_iter()
        .find(|t| t.name() == table && t.is_native())
        .ok_or_else(|| {
            format!("{table:?} is not a table with a vector index (embeddings_384, embeddings_1024, embeddings_1536, embeddings_3072)")
        })?;
    if opts != "none" && memory_storage_turso::schema::ScanBits::from_options(opts).is_none() {
        VectorIndexOptions::parse(opts)?;
    }
    Ok((t.name().to_string(), opts.to_string()))
}

fn parse_backup_table(s: &str) -> Result<String, String> {
    memory_storage_turso::migration::BackupTableName::parse(s)
        .map(|name| name.as_str().to_string())
        .map_err(|e| e.to_string())
}

fn parse_compression(s: &str) -> Result<memory_storage_turso::schema::NeighborCompression, String> {
    memory_storage_turso::schema::NeighborCompression::parse(s)
        .ok_or_else(|| "expected one of float1bit, float8, float16, floatb16, float32".to_string())
}

/// The help line about the environment (for other front ends).
pub fn env_help() -> &'static str {
    ENV_HELP
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[test]
    fn exactly_one_mode() {
        let cli = Cli::try_parse_from(["m", "--db", "x", "--dry-run", "--execute"]).unwrap();
        assert!(cli.command.migrate.mode().is_err());
        let cli = Cli::try_parse_from(["m", "--db", "x"]).unwrap();
        assert!(cli.command.migrate.mode().is_err());
        let cli = Cli::try_parse_from(["m", "--db", "x", "--verify", "--batch-size", "7"]).unwrap();
        assert_eq!(cli.command.migrate.mode(), Ok(Mode::Verify));
        let o = cli.command.migrate.options();
        assert!(o.verify_only && !o.dry_run);
        assert_eq!(o.batch_size, 7);
        assert!(Cli::try_parse_from(["m", "--db", "x", "--execute", "--batch-size", "0"]).is_err());
        let cli = Cli::try_parse_from(["m", "--db", "x", "--rollback", "--from-checkpoint", "a"])
            .unwrap();
        assert!(cli.command.migrate.options().rollback);
        assert_eq!(
            cli.command.migrate.options().from_checkpoint.as_deref(),
            Some("a")
        );
        let cli = Cli::try_parse_from([
            "m",
            "--db",
            "x",
            "--execute",
            "--compress-neighbors",
            "float8",
            "--max-neighbors",
            "16",
        ])
        .unwrap();
        let o = cli.command.migrate.options().vector_index;
        assert_eq!(o.compress_neighbors.map(|c| c.as_str()), Some("float8"));
        assert_eq!(o.max_neighbors, Some(16));
        assert!(Cli::try_parse_from(["m", "--compress-neighbors", "float9"]).is_err());
        let cli = Cli::try_parse_from(["m", "--format", "json", "--dry-run"]).unwrap();
        assert_eq!(cli.global.format, Format::Json);
    }

    #[test]
    fn index_options_name_a_scan_index_of_either_quantization() {
        use memory_storage_turso::migration::Forced;
        use memory_storage_turso::schema::{ScanBits, TargetTable};
        let cli = Cli::try_parse_from([
            "m",
            "--execute",
            "--index-options",
            "embeddings_384=scan",
            "--index-options",
            "embeddings_1536=scan1bit",
            "--index-options",
            "embeddings_3072=none",
        ])
        .unwrap();
        let forced = cli.command.migrate.options().index.forced;
        assert_eq!(
            forced.get(&TargetTable::D384),
            Some(&Forced::Scan(ScanBits::Float8))
        );
        assert_eq!(
            forced.get(&TargetTable::D1536),
            Some(&Forced::Scan(ScanBits::Float1Bit))
        );
        assert_eq!(forced.get(&TargetTable::D3072), Some(&Forced::Exact));
        for bad in ["embeddings_384=scan2bit", "embeddings_other=scan1bit"] {
            assert!(
                Cli::try_parse_from(["m", "--execute", "--index-options", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn backup_table_and_extra_columns_reach_the_options() {
        let cli = Cli::try_parse_from([
            "m",
            "--execute",
            "--backup",
            "--backup-table",
            "my_backup",
            "--ignore-extra-columns",
        ])
        .unwrap();
        let o = cli.command.migrate.options();
        assert_eq!(o.backup_table.as_deref(), Some("my_backup"));
        assert!(o.ignore_extra_columns);
        let o = Cli::try_parse_from(["m", "--execute"]).unwrap();
        let o = o.command.migrate.options();
        assert_eq!(o.backup_table, None);
        assert!(!o.ignore_extra_columns);
        for bad in ["1x", "embeddings_384", "a-b", "metadata"] {
            assert!(
                Cli::try_parse_from(["m", "--backup", "--backup-table", bad]).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_token_comes_from_the_flag_or_a_file_and_a_bad_file_is_named_not_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "  file-token\n").unwrap();
        let f = file.to_str().unwrap();
        let cli = Cli::try_parse_from(["m", "--auth-token-file", f]).unwrap();
        assert_eq!(cli.command.connect.token().unwrap(), "file-token");
        let cli = Cli::try_parse_from(["m", "--auth-token", "flag-token"]).unwrap();
        assert_eq!(cli.command.connect.token().unwrap(), "flag-token");
        assert!(Cli::try_parse_from(["m", "--auth-token", "a", "--auth-token-file", f]).is_err());
        std::fs::write(&file, "\n").unwrap();
        let cli = Cli::try_parse_from(["m", "--auth-token-file", f]).unwrap();
        assert!(cli
            .command
            .connect
            .token()
            .unwrap_err()
            .to_string()
            .contains("is empty"));
        let missing = dir.path().join("missing");
        let cli =
            Cli::try_parse_from(["m", "--auth-token-file", missing.to_str().unwrap()]).unwrap();
        let err = cli.command.connect.token().unwrap_err().to_string();
        assert!(err.contains("missing"), "{err}");
    }
}
