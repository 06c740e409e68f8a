//! Whether SQL that `sqlite_master` holds is the SQL the migration wrote.
//!
//! What the database keeps is not always the text sent: SQLite drops
//! `IF NOT EXISTS` and, when a table is renamed, writes its new name back
//! quoted into its indexes' SQL; and the `libsql` client, over the
//! network, parses each statement and sends it written out again (a space
//! before each parenthesis, a `;` at the end). So an index the migration
//! made through that client read back as a user's object. The forms are
//! compared with whitespace, identifier quotes, `;` and the case of
//! keywords and names set aside, string literals (the DiskANN options)
//! exactly.

/// `sql` without what [`same`] sets aside.
fn shape(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut in_literal = false;
    for c in sql.chars() {
        if in_literal {
            out.push(c);
            // A doubled quote inside a literal closes and reopens it.
            in_literal = c != '\'';
            continue;
        }
        match c {
            '\'' => {
                in_literal = true;
                out.push(c);
            }
            '"' | '`' | ';' => {}
            c if c.is_whitespace() => {}
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// Whether `stored` (as `sqlite_master` holds it) is `ours` as the
/// database or the client may have written it back.
pub(crate) fn same(stored: &str, ours: &str) -> bool {
    shape(stored) == shape(ours)
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn the_forms_the_client_and_sqlite_write_back_are_the_same_sql() {
        let ours =
            "CREATE INDEX idx_embeddings_384_scan ON embeddings_384(vector8(embedding_vector))";
        for stored in [
            ours,
            "CREATE INDEX idx_embeddings_384_scan ON embeddings_384 (vector8 (embedding_vector));",
            "CREATE INDEX idx_embeddings_384_scan ON \"embeddings_384\"(vector8(embedding_vector))",
            "create index IDX_embeddings_384_scan on `embeddings_384` ( vector8 ( embedding_vector ) )",
        ] {
            assert!(same(stored, ours), "{stored}");
        }
    }

    #[test]
    fn other_sql_or_other_literals_are_not() {
        let ours = "CREATE INDEX i ON t(libsql_vector_idx(v, 'compress_neighbors=float8'))";
        for stored in [
            "CREATE INDEX i ON t(libsql_vector_idx(v, 'compress_neighbors=float1bit'))",
            "CREATE INDEX i ON t(libsql_vector_idx(v, 'compress_neighbors = float8'))",
            "CREATE INDEX i ON t(libsql_vector_idx(v, 'COMPRESS_NEIGHBORS=FLOAT8'))",
            "CREATE INDEX i ON t(libsql_vector_idx(v))",
            "CREATE INDEX i ON u(libsql_vector_idx(v, 'compress_neighbors=float8'))",
            "CREATE INDEX i ON t(v)",
        ] {
            assert!(!same(stored, ours), "{stored}");
        }
        assert!(same(
            "CREATE INDEX i ON t (libsql_vector_idx (v, 'compress_neighbors=float8'));",
            ours
        ));
        // A quote doubled inside a literal keeps the literal open.
        assert!(!same("SELECT 'it''s  x'", "SELECT 'it''s x'"));
    }
}
