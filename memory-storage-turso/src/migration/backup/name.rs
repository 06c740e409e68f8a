//! The name of the backup table: `embeddings_backup`, or what
//! `--backup-table` names, accepted only as a plain identifier that is
//! none of the tool's own tables (SQL never sees raw input).

use std::fmt;

use crate::migration::error::{MigrateError, Result};
use crate::schema::{BACKUP_TABLE, LEGACY_TABLE, METADATA_TABLE};

/// The longest backup table name accepted.
pub const MAX_LEN: usize = 64;

/// Prefixes of names the tool (or SQLite) reserves.
const RESERVED_PREFIXES: [&str; 2] = ["embedding_migration_", "sqlite_"];

/// A backup table name that passed [`BackupTableName::parse`]: ASCII
/// letters, digits and `_`, not starting with a digit, at most
/// [`MAX_LEN`] characters, and none of the tool's own names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupTableName(String);

impl Default for BackupTableName {
    fn default() -> Self {
        BackupTableName(BACKUP_TABLE.to_string())
    }
}

impl BackupTableName {
    /// Checks `name`; the error says what is wrong with it.
    pub fn parse(name: &str) -> Result<BackupTableName> {
        let invalid = |reason| {
            Err(MigrateError::BackupTableNameInvalid {
                name: name.to_string(),
                reason,
            })
        };
        let Some(first) = name.chars().next() else {
            return invalid("the name is empty");
        };
        if name.len() > MAX_LEN {
            return invalid("the name is longer than 64 characters");
        }
        if first.is_ascii_digit() {
            return invalid("the name starts with a digit");
        }
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return invalid(
                "the name holds a character other than an ASCII letter, digit or underscore",
            );
        }
        // SQLite compares names without regard to ASCII case.
        let lower = name.to_ascii_lowercase();
        if RESERVED_PREFIXES.iter().any(|p| lower.starts_with(p)) {
            return invalid("names beginning with embedding_migration_ or sqlite_ are reserved");
        }
        let own = super::super::prior::own_object_names();
        if lower == LEGACY_TABLE || lower == METADATA_TABLE || own.contains(&lower) {
            return invalid("the migration itself uses that name");
        }
        Ok(BackupTableName(name.to_string()))
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as an SQL identifier (double-quoted).
    pub fn quoted(&self) -> String {
        format!("\"{}\"", self.0)
    }

    /// Whether `other` names the same table (SQLite ignores ASCII case).
    pub fn same_table(&self, other: &BackupTableName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl fmt::Display for BackupTableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(name: &str) -> &'static str {
        match BackupTableName::parse(name) {
            Err(MigrateError::BackupTableNameInvalid { reason, .. }) => reason,
            other => panic!("{name:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn plain_identifiers_are_accepted_as_given() {
        for name in [
            "my_backup",
            "_b",
            "B2",
            "embeddings_backup_2024",
            &"a".repeat(64),
        ] {
            let parsed = BackupTableName::parse(name).unwrap();
            assert_eq!(parsed.as_str(), name);
            assert_eq!(parsed.quoted(), format!("\"{name}\""));
        }
        assert_eq!(BackupTableName::default().as_str(), "embeddings_backup");
        assert!(BackupTableName::parse("embeddings_backup").is_ok());
    }

    #[test]
    fn anything_else_is_refused_with_its_reason() {
        assert!(reason("").contains("empty"));
        assert!(reason(&"a".repeat(65)).contains("longer"));
        assert!(reason("1backup").contains("digit"));
        for name in [
            "my-backup",
            "my backup",
            "b\"x",
            "b;DROP TABLE x",
            "bäckup",
            "b.x",
        ] {
            assert!(reason(name).contains("character"), "{name}");
        }
        for name in [
            "embeddings",
            "EMBEDDINGS",
            "embeddings_384",
            "Embeddings_Other",
            "metadata",
            "idx_embeddings_384_item",
        ] {
            assert!(reason(name).contains("uses that name"), "{name}");
        }
        for name in [
            "embedding_migration_backup",
            "EMBEDDING_MIGRATION_x",
            "sqlite_x",
        ] {
            assert!(reason(name).contains("reserved"), "{name}");
        }
    }

    #[test]
    fn names_differing_in_case_are_the_same_table() {
        let a = BackupTableName::parse("My_Backup").unwrap();
        let b = BackupTableName::parse("my_backup").unwrap();
        assert!(a.same_table(&b));
        assert!(!a.same_table(&BackupTableName::default()));
    }
}
