//! One row of any embedding table, and its key ordered exactly as SQLite
//! orders `embedding_id`.

use std::cmp::Ordering;

use libsql::Value;

/// The eight columns of every embedding table, in the order rows are read
/// and written.
pub const COLUMNS: [&str; 8] = [
    "embedding_id",
    "item_id",
    "item_type",
    "embedding_data",
    "embedding_vector",
    "dimension",
    "model",
    "created_at",
];

/// An `embedding_id` as stored (usually text), ordered like SQLite's BINARY
/// collation: NULL < numbers < text (bytewise) < blob (bytewise).
#[derive(Debug, Clone)]
pub struct Key(pub Value);

fn class(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Integer(_) | Value::Real(_) => 1,
        Value::Text(_) => 2,
        Value::Blob(_) => 3,
    }
}

fn as_f64(v: &Value) -> f64 {
    match v {
        Value::Integer(i) => *i as f64,
        Value::Real(r) => *r,
        _ => 0.0,
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (&self.0, &other.0);
        class(a).cmp(&class(b)).then_with(|| match (a, b) {
            (Value::Text(x), Value::Text(y)) => x.as_bytes().cmp(y.as_bytes()),
            (Value::Blob(x), Value::Blob(y)) => x.cmp(y),
            (Value::Integer(x), Value::Integer(y)) => x.cmp(y),
            (Value::Null, Value::Null) => Ordering::Equal,
            _ => as_f64(a).total_cmp(&as_f64(b)),
        })
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Key {}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            Value::Text(s) => f.write_str(s),
            Value::Integer(i) => write!(f, "{i}"),
            Value::Real(r) => write!(f, "{r}"),
            Value::Null => f.write_str("NULL"),
            Value::Blob(b) => {
                f.write_str("x'")?;
                for byte in b {
                    write!(f, "{byte:02x}")?;
                }
                f.write_str("'")
            }
        }
    }
}

/// The eight columns, read so that text arrives as its exact bytes (libSQL's
/// own text conversion stops at a NUL byte and panics on invalid UTF-8),
/// followed by a mask of which columns held text.
pub(crate) fn select_columns(vector_col: &str) -> String {
    let cols = [
        "embedding_id",
        "item_id",
        "item_type",
        "embedding_data",
        vector_col,
        "dimension",
        "model",
        "created_at",
    ];
    let values: Vec<String> = cols
        .iter()
        .map(|c| format!("CASE WHEN typeof({c}) = 'text' THEN CAST({c} AS BLOB) ELSE {c} END"))
        .collect();
    let mask: Vec<String> = cols
        .iter()
        .enumerate()
        .map(|(i, c)| format!("((typeof({c}) = 'text') << {i})"))
        .collect();
    format!("{}, ({})", values.join(", "), mask.join(" | "))
}

/// The eight columns of an embedding row, values exactly as stored. A legacy
/// table without an `embedding_vector` column reads it as NULL.
#[derive(Debug, Clone)]
pub struct EmbeddingRow {
    pub key: Key,
    pub item_id: Value,
    pub item_type: Value,
    pub embedding_data: Value,
    pub embedding_vector: Value,
    pub dimension: Value,
    pub model: Value,
    pub created_at: Value,
    /// Columns (bit i = column i) that hold text which is not valid UTF-8;
    /// such a value is kept as its bytes in a `Value::Blob`.
    pub invalid_utf8: u8,
}

impl EmbeddingRow {
    /// Reads a row selected with [`select_columns`], in
    /// [`COLUMNS`] order.
    pub(crate) fn from_row(row: &libsql::Row) -> Result<Self, libsql::Error> {
        let mask = row.get::<i64>(8)?;
        Self::from_getter(mask, |i| row.get_value(i))
    }

    /// [`EmbeddingRow::from_row`] for the nine values of a row as a list
    /// (a remote batch's answer).
    pub(crate) fn from_values(mut values: Vec<Value>) -> Result<Self, libsql::Error> {
        let mask = match values.get(8) {
            Some(Value::Integer(m)) => *m,
            _ => return Err(libsql::Error::InvalidColumnIndex),
        };
        Self::from_getter(mask, |i| {
            values
                .get_mut(i as usize)
                .map(|v| std::mem::replace(v, Value::Null))
                .ok_or(libsql::Error::InvalidColumnIndex)
        })
    }

    fn from_getter(
        mask: i64,
        mut value: impl FnMut(i32) -> Result<Value, libsql::Error>,
    ) -> Result<Self, libsql::Error> {
        let mut invalid_utf8 = 0u8;
        let mut get = |i: i32| -> Result<Value, libsql::Error> {
            let v = value(i)?;
            if mask & (1 << i) == 0 {
                return Ok(v);
            }
            Ok(match v {
                Value::Blob(bytes) => match String::from_utf8(bytes) {
                    Ok(text) => Value::Text(text),
                    Err(e) => {
                        invalid_utf8 |= 1 << i;
                        Value::Blob(e.into_bytes())
                    }
                },
                other => other,
            })
        };
        Ok(EmbeddingRow {
            key: Key(get(0)?),
            item_id: get(1)?,
            item_type: get(2)?,
            embedding_data: get(3)?,
            embedding_vector: get(4)?,
            dimension: get(5)?,
            model: get(6)?,
            created_at: get(7)?,
            invalid_utf8,
        })
    }

    /// The eight values, in [`COLUMNS`] order.
    pub fn values(&self) -> [&Value; 8] {
        [
            &self.key.0,
            &self.item_id,
            &self.item_type,
            &self.embedding_data,
            &self.embedding_vector,
            &self.dimension,
            &self.model,
            &self.created_at,
        ]
    }

    /// Approximate bytes held, to bound the memory of a page.
    pub fn size(&self) -> usize {
        self.values().iter().map(|v| value_size(v)).sum::<usize>() + 64
    }
}

/// The bytes a fingerprint is taken over: per value a type tag, then the
/// integer or the real's bits, or the length and a one-shot XXH3-64 of a
/// text's or blob's bytes (one pass over the big values, no copies).
struct Digest {
    buf: [u8; 8 * 17],
    len: usize,
}

impl Digest {
    fn new() -> Self {
        Digest {
            buf: [0; 8 * 17],
            len: 0,
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
    }

    fn blob(&mut self, tag: u8, b: &[u8]) {
        self.put(&[tag]);
        self.put(&(b.len() as u64).to_le_bytes());
        self.put(&xxhash_rust::xxh3::xxh3_64(b).to_le_bytes());
    }

    fn value(&mut self, v: &Value) {
        match v {
            Value::Null => self.put(&[0]),
            Value::Integer(i) => {
                self.put(&[1]);
                self.put(&i.to_le_bytes());
            }
            Value::Real(r) => {
                self.put(&[2]);
                self.put(&r.to_bits().to_le_bytes());
            }
            Value::Text(s) => self.blob(3, s.as_bytes()),
            Value::Blob(b) => self.blob(4, b),
        }
    }

    fn finish(&self) -> i64 {
        xxhash_rust::xxh3::xxh3_64(&self.buf[..self.len]) as i64
    }
}

/// The fingerprint of a target row: XXH3-64 over its eight values in
/// [`COLUMNS`] order, type-tagged. The ledger keeps the
/// fingerprint of every row as the migration wrote it, so a later run can
/// tell its own row from one the application changed since.
pub fn fingerprint(values: [&Value; 8]) -> i64 {
    let mut d = Digest::new();
    for v in values {
        d.value(v);
    }
    d.finish()
}

impl EmbeddingRow {
    /// This row's [`fingerprint`], its vector as stored.
    pub fn fingerprint(&self) -> i64 {
        fingerprint(self.values())
    }

    /// The [`fingerprint`] of this row written with the blob `vector` in
    /// its vector column (how the copy writes a legacy row).
    pub fn fingerprint_with_vector(&self, vector: &[u8]) -> i64 {
        let mut d = Digest::new();
        for v in [
            &self.key.0,
            &self.item_id,
            &self.item_type,
            &self.embedding_data,
        ] {
            d.value(v);
        }
        d.blob(4, vector);
        for v in [&self.dimension, &self.model, &self.created_at] {
            d.value(v);
        }
        d.finish()
    }

    /// `created_at` as an integer, when it is one.
    pub fn created_at_secs(&self) -> Option<i64> {
        match self.created_at {
            Value::Integer(t) => Some(t),
            _ => None,
        }
    }
}

/// Bytes a value takes as stored.
pub fn value_size(v: &Value) -> usize {
    match v {
        Value::Null => 1,
        Value::Integer(_) | Value::Real(_) => 8,
        Value::Text(s) => s.len(),
        Value::Blob(b) => b.len(),
    }
}

/// Bit-for-bit equality of two stored values (same type, same bytes; reals
/// compared by their bits, so -0.0 differs from 0.0).
pub fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Null, Value::Null) => true,
        (Value::Integer(x), Value::Integer(y)) => x == y,
        (Value::Real(x), Value::Real(y)) => x.to_bits() == y.to_bits(),
        (Value::Text(x), Value::Text(y)) => x == y,
        (Value::Blob(x), Value::Blob(y)) => x == y,
        _ => false,
    }
}

/// The SQL type name of a value, for messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "a blob",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Key {
        Key(Value::Text(s.into()))
    }

    #[test]
    fn text_keys_order_bytewise_like_sqlite_binary() {
        let mut keys = [text("b"), text("B"), text("a"), text("é"), text("")];
        keys.sort();
        let got: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
        assert_eq!(got, ["", "B", "a", "b", "é"]);
    }

    #[test]
    fn classes_order_null_numbers_text_blob() {
        let mut keys = [
            Key(Value::Blob(vec![0])),
            text("0"),
            Key(Value::Integer(5)),
            Key(Value::Null),
            Key(Value::Real(1.5)),
        ];
        keys.sort();
        assert!(matches!(keys[0].0, Value::Null));
        assert!(matches!(keys[1].0, Value::Real(_)));
        assert!(matches!(keys[2].0, Value::Integer(5)));
        assert!(matches!(keys[3].0, Value::Text(_)));
        assert!(matches!(keys[4].0, Value::Blob(_)));
    }

    #[test]
    fn a_row_written_with_its_vector_has_the_fingerprint_it_reads_back_with() {
        let mut row = EmbeddingRow {
            key: text("k"),
            item_id: Value::Text("i".into()),
            item_type: Value::Text("t".into()),
            embedding_data: Value::Text("[1.0]".into()),
            embedding_vector: Value::Null,
            dimension: Value::Integer(1),
            model: Value::Text("m".into()),
            created_at: Value::Integer(7),
            invalid_utf8: 0,
        };
        let written = row.fingerprint_with_vector(&1.0f32.to_le_bytes());
        row.embedding_vector = Value::Blob(1.0f32.to_le_bytes().to_vec());
        assert_eq!(row.fingerprint(), written);
        row.model = Value::Text("n".into());
        assert_ne!(row.fingerprint(), written);
        row.model = Value::Text("m".into());
        row.created_at = Value::Text("7".into());
        assert_ne!(row.fingerprint(), written, "a type change is a change");
    }

    #[test]
    fn same_value_is_bitwise() {
        assert!(same_value(&Value::Real(0.0), &Value::Real(0.0)));
        assert!(!same_value(&Value::Real(0.0), &Value::Real(-0.0)));
        assert!(!same_value(&Value::Integer(1), &Value::Real(1.0)));
        assert!(!same_value(&Value::Text("1".into()), &Value::Integer(1)));
        assert!(same_value(
            &Value::Blob(vec![1, 2]),
            &Value::Blob(vec![1, 2])
        ));
    }
}
