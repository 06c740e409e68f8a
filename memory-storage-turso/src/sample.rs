//! Sample *legacy* databases: the `embeddings` table as the old store wrote it.
//!
//! Used by the migration's `--demo`, by integration tests (as a builder of
//! precise fixtures) and by the benchmark. Everything here follows
//! `LEGACY-FORMATS.md`: every id format, plain and compressed payloads, the
//! optional `embedding_vector` column, and every kind of bad row. Generation is
//! deterministic (a seeded splitmix64, no `rand`) and streaming, so a million
//! rows need no more memory than one batch.
//!
//! The module is self-contained on purpose: it carries its own encoders, so a
//! fixture never depends on the decoder it is meant to test.

use std::collections::BTreeMap;
use std::io::Write;

use base64::Engine as _;
use libsql::Value;

/// One row of the legacy `embeddings` table, as a fixture.
#[derive(Debug, Clone, PartialEq)]
pub struct LegacyRow {
    /// Primary key, in one of the four id formats seen in the wild.
    pub embedding_id: String,
    /// The embedded item, usually a hyphenated UUID.
    pub item_id: String,
    /// `episode`, `pattern`, `embedding` or `unknown`.
    pub item_type: String,
    /// Plain JSON array or `__compressed__:{alg}:{size}\n{base64}` text.
    pub embedding_data: String,
    /// The legacy `F32_BLOB(384)` column; ignored when the table lacks it.
    pub embedding_vector: Option<Vec<u8>>,
    /// The `dimension` column as written (bad rows may lie here).
    pub dimension: i64,
    /// Model name, real or a placeholder such as `default`.
    pub model: String,
    /// Unix seconds.
    pub created_at: i64,
}

/// A compression algorithm of the legacy store's `embedding_data` payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A zstd frame (level 3).
    Zstd,
    /// An LZ4 block without size prefix (`lz4_flex::block::compress`).
    Lz4,
    /// A gzip stream.
    Gzip,
}

impl Compression {
    /// Every algorithm, in the order generated rows rotate through them.
    pub const ALL: [Compression; 3] = [Compression::Zstd, Compression::Lz4, Compression::Gzip];

    /// The name written in the payload header (`zstd`, `lz4`, `gzip`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Lz4 => "lz4",
            Compression::Gzip => "gzip",
        }
    }
}

/// Encodes a vector as the plain JSON the legacy store wrote (`serde_json` of `Vec<f32>`).
///
/// Non-finite values come out as `null`, exactly as `serde_json` writes them.
pub fn encode_json(v: &[f32]) -> String {
    // Serializing a slice of f32 into a String cannot fail: serde_json writes
    // non-finite floats as `null` instead of erroring.
    serde_json::to_string(v).unwrap_or_default()
}

/// Encodes a vector as a compressed payload: its little-endian f32 bytes, compressed with `alg`.
pub fn encode_compressed(alg: Compression, v: &[f32]) -> String {
    let raw = vector_bytes(v);
    encode_compressed_raw(alg.as_str(), raw.len(), &raw)
}

/// Writes `__compressed__:{alg_name}:{original_size}\n{base64}` around `raw` compressed with
/// `alg_name`, for crafting bad payloads.
///
/// The header is written as given, even when it lies; an unknown `alg_name`
/// compresses with zstd.
///
/// # Panics
///
/// Only if in-memory compression fails, which zstd and flate2 do not do when
/// writing into a `Vec`.
pub fn encode_compressed_raw(alg_name: &str, original_size: usize, raw: &[u8]) -> String {
    let compressed = match alg_name {
        "lz4" => lz4_flex::block::compress(raw),
        "gzip" => {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(raw)
                .and_then(|()| enc.finish())
                .expect("gzip into a Vec cannot fail")
        }
        _ => zstd::encode_all(raw, 3).expect("zstd into a Vec cannot fail"),
    };
    let b64 = base64::engine::general_purpose::STANDARD.encode(compressed);
    format!("__compressed__:{alg_name}:{original_size}\n{b64}")
}

/// The vector as libSQL stores an `F32_BLOB`: little-endian f32 values, no header.
pub fn vector_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// DDL of the legacy table with the `embedding_vector` column (the later generations).
const CREATE_LEGACY_WITH_VECTOR: &str = "CREATE TABLE IF NOT EXISTS embeddings (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    item_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    embedding_data TEXT NOT NULL,
    embedding_vector F32_BLOB(384),
    dimension INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
)";

/// DDL of the legacy table without the `embedding_vector` column (older files).
const CREATE_LEGACY_WITHOUT_VECTOR: &str = "CREATE TABLE IF NOT EXISTS embeddings (
    embedding_id TEXT PRIMARY KEY NOT NULL,
    item_id TEXT NOT NULL,
    item_type TEXT NOT NULL,
    embedding_data TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    model TEXT NOT NULL,
    created_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now'))
)";

/// The legacy item index.
const CREATE_LEGACY_ITEM_INDEX: &str =
    "CREATE INDEX IF NOT EXISTS idx_embeddings_item ON embeddings(item_id, item_type)";

const INSERT_LEGACY_WITH_VECTOR: &str = "INSERT INTO embeddings \
    (embedding_id, item_id, item_type, embedding_data, embedding_vector, dimension, model, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";

const INSERT_LEGACY_WITHOUT_VECTOR: &str = "INSERT INTO embeddings \
    (embedding_id, item_id, item_type, embedding_data, dimension, model, created_at) \
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/// Rows per transaction when inserting.
const INSERT_BATCH: usize = 1000;

/// Creates the legacy table exactly as `LEGACY-FORMATS.md` shows (with `embedding_vector
/// F32_BLOB(384)` when `with_vector_column`, else without that column), plus `idx_embeddings_item`.
pub async fn create_legacy_table(
    conn: &libsql::Connection,
    with_vector_column: bool,
) -> Result<(), libsql::Error> {
    let ddl = if with_vector_column {
        CREATE_LEGACY_WITH_VECTOR
    } else {
        CREATE_LEGACY_WITHOUT_VECTOR
    };
    conn.execute(ddl, ()).await?;
    conn.execute(CREATE_LEGACY_ITEM_INDEX, ()).await?;
    Ok(())
}

/// One prepared `INSERT` reused across batches.
struct LegacyInserter {
    stmt: libsql::Statement,
    with_vector_column: bool,
}

impl LegacyInserter {
    async fn new(conn: &libsql::Connection, with_vector_column: bool) -> libsql::Result<Self> {
        let sql = if with_vector_column {
            INSERT_LEGACY_WITH_VECTOR
        } else {
            INSERT_LEGACY_WITHOUT_VECTOR
        };
        Ok(Self {
            stmt: conn.prepare(sql).await?,
            with_vector_column,
        })
    }

    fn params(&self, row: &LegacyRow) -> Vec<Value> {
        let mut p = Vec::with_capacity(8);
        p.push(Value::Text(row.embedding_id.clone()));
        p.push(Value::Text(row.item_id.clone()));
        p.push(Value::Text(row.item_type.clone()));
        p.push(Value::Text(row.embedding_data.clone()));
        if self.with_vector_column {
            p.push(match &row.embedding_vector {
                Some(bytes) => Value::Blob(bytes.clone()),
                None => Value::Null,
            });
        }
        p.push(Value::Integer(row.dimension));
        p.push(Value::Text(row.model.clone()));
        p.push(Value::Integer(row.created_at));
        p
    }

    /// Inserts `rows` in transactions of [`INSERT_BATCH`], rolling back the open one on error.
    async fn insert(&self, conn: &libsql::Connection, rows: &[LegacyRow]) -> libsql::Result<()> {
        for chunk in rows.chunks(INSERT_BATCH) {
            conn.execute("BEGIN", ()).await?;
            if let Err(e) = self.insert_chunk(chunk).await {
                self.stmt.reset();
                // The insert error is the one worth reporting.
                let _ = conn.execute("ROLLBACK", ()).await;
                return Err(e);
            }
            if let Err(e) = conn.execute("COMMIT", ()).await {
                let _ = conn.execute("ROLLBACK", ()).await;
                return Err(e);
            }
        }
        Ok(())
    }

    async fn insert_chunk(&self, chunk: &[LegacyRow]) -> libsql::Result<()> {
        for row in chunk {
            self.stmt.execute(self.params(row)).await?;
            // libsql's local statement does not reset itself after a step.
            self.stmt.reset();
        }
        Ok(())
    }
}

/// Inserts rows in transactions of 1000 with one reused prepared statement, every value bound as
/// its native type (the vector as a BLOB, never through text).
///
/// When the table has no vector column (`with_vector_column == false`), `embedding_vector` is
/// ignored. Call it outside any open transaction: it opens its own, and a failed batch is rolled
/// back (earlier batches stay committed).
pub async fn insert_legacy_rows(
    conn: &libsql::Connection,
    rows: &[LegacyRow],
    with_vector_column: bool,
) -> Result<(), libsql::Error> {
    LegacyInserter::new(conn, with_vector_column)
        .await?
        .insert(conn, rows)
        .await
}

/// What a generated sample database holds.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Total rows, bad ones included.
    pub rows: usize,
    /// Seed of the generator: the same spec always yields the same rows.
    pub seed: u64,
    /// How many bad rows, spread evenly through the rows and cycling through every [`BadKind`]
    /// (capped at `rows`).
    pub bad_rows: usize,
    /// Whether the table has the legacy `embedding_vector` column.
    pub with_vector_column: bool,
    /// `(dimension, weight)` of valid rows; entries with a zero weight or a dimension ≤ 0 are
    /// skipped, and a mix left empty means 384 only.
    pub dimension_mix: Vec<(i64, u32)>,
    /// Percent of valid rows whose payload is compressed (the algorithm rotates
    /// zstd / lz4 / gzip); only payloads whose JSON is at least 1024 bytes are compressed.
    pub compressed_percent: u32,
}

impl SampleSpec {
    /// The realistic mix: ~70% 384, 20% 1536, 5% 1024, 3% 3072, 2% 768 dimensions; 20% compressed;
    /// `bad_rows = max(rows / 2000, 15)` capped at `rows`; vector column present.
    pub fn realistic(rows: usize, seed: u64) -> Self {
        Self {
            rows,
            seed,
            bad_rows: (rows / 2000).max(15).min(rows),
            with_vector_column: true,
            dimension_mix: vec![(384, 70), (1536, 20), (1024, 5), (3072, 3), (768, 2)],
            compressed_percent: 20,
        }
    }
}

/// A kind of row that is not an embedding; a decoder must reject each for its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BadKind {
    /// JSON that does not parse: `[0.1, 0.2`.
    InvalidJson,
    /// JSON `null`.
    JsonNull,
    /// An array of strings: `["a","b"]`.
    StringArray,
    /// An array of arrays: `[[0.1],[0.2]]`.
    NestedArray,
    /// A JSON object: `{"v":[1]}`.
    Object,
    /// A number outside f32 range: `[1e39, 0.5]`.
    OutOfRange,
    /// `NaN` in the text: `[NaN, 1.0]`.
    NanText,
    /// An empty array `[]` (dimension 1).
    Empty,
    /// A valid 384 vector whose `dimension` column says 385.
    DimensionMismatch,
    /// A valid 384 vector whose `dimension` column is 0 or -4.
    DimensionNotPositive,
    /// A compressed payload with algorithm `brotli`.
    UnknownAlgorithm,
    /// A zstd header followed by text that is not base64.
    BadBase64,
    /// A real zstd payload of a 384 vector whose `original_size` is 4 too large.
    WrongOriginalSize,
    /// An lz4 payload of 10 raw bytes (size 10): not a whole number of f32.
    NotMultipleOf4,
    /// A gzip payload of a 384 vector that contains a NaN.
    NanInPayload,
    /// Valid 384 JSON with an `embedding_vector` that differs in one element
    /// (only when the table has the vector column).
    LegacyVectorMismatch,
}

impl BadKind {
    /// Every kind, in the order bad rows cycle through them.
    pub const ALL: [BadKind; 16] = [
        BadKind::InvalidJson,
        BadKind::JsonNull,
        BadKind::StringArray,
        BadKind::NestedArray,
        BadKind::Object,
        BadKind::OutOfRange,
        BadKind::NanText,
        BadKind::Empty,
        BadKind::DimensionMismatch,
        BadKind::DimensionNotPositive,
        BadKind::UnknownAlgorithm,
        BadKind::BadBase64,
        BadKind::WrongOriginalSize,
        BadKind::NotMultipleOf4,
        BadKind::NanInPayload,
        BadKind::LegacyVectorMismatch,
    ];

    /// The kinds a table can hold: all of them, minus [`BadKind::LegacyVectorMismatch`]
    /// when there is no vector column.
    fn available(with_vector_column: bool) -> &'static [BadKind] {
        if with_vector_column {
            &Self::ALL
        } else {
            &Self::ALL[..15]
        }
    }
}

/// Summary of what was generated, for tests and the demo to check against.
#[derive(Debug, Clone, Default)]
pub struct SampleSummary {
    /// Rows generated, bad ones included.
    pub total_rows: usize,
    /// Valid rows per dimension.
    pub valid_per_dimension: BTreeMap<i64, usize>,
    /// `(embedding_id, kind)` of every bad row, sorted by id.
    pub bad: Vec<(String, BadKind)>,
    /// Sum of `4 * dimension` over valid rows: the bytes the target tables will hold.
    pub bytes_of_vectors: u64,
}

impl SampleSummary {
    fn record(&mut self, row: &LegacyRow, bad: Option<BadKind>) {
        self.total_rows += 1;
        match bad {
            Some(kind) => self.bad.push((row.embedding_id.clone(), kind)),
            None => {
                *self.valid_per_dimension.entry(row.dimension).or_default() += 1;
                self.bytes_of_vectors += 4 * row.dimension.unsigned_abs();
            }
        }
    }

    fn finish(mut self) -> Self {
        self.bad.sort();
        self
    }
}

/// Deterministic rows for a spec, each with its [`BadKind`] when it is a bad row.
///
/// Streams: one row is built at a time, so a million rows cost no more memory than one.
pub fn generate_rows(spec: &SampleSpec) -> impl Iterator<Item = (LegacyRow, Option<BadKind>)> {
    RowGenerator::new(spec)
}

/// Summarizes what [`generate_rows`] yields for `spec`, without a database.
pub fn summarize(spec: &SampleSpec) -> SampleSummary {
    let mut summary = SampleSummary::default();
    for (row, bad) in generate_rows(spec) {
        summary.record(&row, bad);
    }
    summary.finish()
}

/// Creates the legacy table and fills it from [`generate_rows`], in batches of 1000 rows
/// (memory stays flat for a million rows).
pub async fn generate_legacy_database(
    conn: &libsql::Connection,
    spec: &SampleSpec,
) -> Result<SampleSummary, libsql::Error> {
    create_legacy_table(conn, spec.with_vector_column).await?;
    let inserter = LegacyInserter::new(conn, spec.with_vector_column).await?;
    let mut summary = SampleSummary::default();
    let mut batch = Vec::with_capacity(INSERT_BATCH);
    let mut rows = generate_rows(spec).peekable();
    while rows.peek().is_some() {
        batch.clear();
        for (row, bad) in rows.by_ref().take(INSERT_BATCH) {
            summary.record(&row, bad);
            batch.push(row);
        }
        inserter.insert(conn, &batch).await?;
    }
    Ok(summary.finish())
}

// ---------------------------------------------------------------------------
// Deterministic randomness

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finalizer: a bijection on u64 with good avalanche.
const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(mix64(seed))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the multiply-shift bias is negligible here.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// Uniform in `[-1, 1)`.
    fn signed_unit(&mut self) -> f32 {
        // 24 random bits: exact in f32.
        ((self.next_u64() >> 40) as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
    }
}

/// Streams of randomness kept apart from each other.
mod salt {
    pub const ROW: u64 = 0x524f_5753;
    pub const BAD_POS: u64 = 0x4241_4450;
    pub const UUID: u64 = 0x5555_4944;
    pub const HEX: u64 = 0x4845_5821;
}

/// A seed for stream `salt` of `seed`, element `i`.
fn seed_for(seed: u64, salt: u64, i: u64) -> u64 {
    mix64(seed ^ mix64(salt)).wrapping_add(i.wrapping_mul(GOLDEN))
}

/// A v4-shaped hyphenated lowercase UUID whose 64 "unique" bits are `unique`, the rest random.
fn uuid_string(unique: u64, rng: &mut Rng) -> String {
    let r = rng.next_u64();
    let mut b = [0u8; 16];
    b[..6].copy_from_slice(&unique.to_be_bytes()[..6]);
    b[6] = 0x40 | (r as u8 & 0x0f);
    b[7] = (r >> 8) as u8;
    b[8] = 0x80 | ((r >> 16) as u8 & 0x3f);
    b[9] = (r >> 24) as u8;
    b[10..12].copy_from_slice(&unique.to_be_bytes()[6..]);
    b[12..].copy_from_slice(&((r >> 32) as u32).to_be_bytes());
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(36);
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push(HEX[usize::from(byte >> 4)] as char);
        s.push(HEX[usize::from(byte & 0x0f)] as char);
    }
    s
}

// ---------------------------------------------------------------------------
// Row content

const ITEM_TYPES: [&str; 4] = ["episode", "pattern", "embedding", "unknown"];
const PLACEHOLDER_MODELS: [&str; 3] = ["default", "unknown", "local"];
/// 2023-01-01T00:00:00Z and 2026-01-01T00:00:00Z.
const CREATED_FROM: i64 = 1_672_531_200;
const CREATED_UNTIL: i64 = 1_767_225_600;
/// Payloads shorter than this were never compressed by the legacy store.
const COMPRESS_MIN_BYTES: usize = 1024;
/// Values that must survive the migration bit for bit.
fn special_values() -> [f32; 5] {
    [
        -0.0,
        f32::from_bits(1), // the smallest subnormal
        f32::MAX,
        -f32::MAX,
        f32::MIN_POSITIVE,
    ]
}

/// Real model names for a dimension.
fn models_for(dimension: i64) -> &'static [&'static str] {
    match dimension {
        384 => &["all-MiniLM-L6-v2", "bge-small-en-v1.5", "all-MiniLM-L12-v2"],
        768 => &["nomic-embed-text", "all-mpnet-base-v2"],
        1024 => &["mxbai-embed-large", "bge-large-en-v1.5"],
        1536 => &["text-embedding-3-small", "text-embedding-ada-002"],
        3072 => &["text-embedding-3-large"],
        _ => &PLACEHOLDER_MODELS,
    }
}

/// A random unit-length vector.
fn unit_vector(rng: &mut Rng, dimension: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..dimension).map(|_| rng.signed_unit()).collect();
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
    v
}

/// The row generator behind [`generate_rows`].
struct RowGenerator {
    rows: usize,
    seed: u64,
    bad_rows: usize,
    with_vector_column: bool,
    /// `(dimension, cumulative weight)`.
    mix: Vec<(i64, u64)>,
    total_weight: u64,
    compressed_percent: u32,
    /// Index of the next row.
    next: usize,
    /// Ordinal of the next bad row and the row index it sits at.
    bad_ordinal: usize,
    next_bad_at: Option<usize>,
    /// Compressed rows so far: rotates the algorithm.
    compressed: usize,
}

impl RowGenerator {
    fn new(spec: &SampleSpec) -> Self {
        let mut mix = Vec::new();
        let mut total_weight = 0u64;
        for &(dim, weight) in &spec.dimension_mix {
            if weight > 0 && dim > 0 {
                total_weight += u64::from(weight);
                mix.push((dim, total_weight));
            }
        }
        if mix.is_empty() {
            mix.push((384, 1));
            total_weight = 1;
        }
        let mut gen = Self {
            rows: spec.rows,
            seed: spec.seed,
            bad_rows: spec.bad_rows.min(spec.rows),
            with_vector_column: spec.with_vector_column,
            mix,
            total_weight,
            compressed_percent: spec.compressed_percent.min(100),
            next: 0,
            bad_ordinal: 0,
            next_bad_at: None,
            compressed: 0,
        };
        gen.next_bad_at = gen.bad_position(0);
        gen
    }

    /// Bad row `k` sits at a random place in the `k`-th of `bad_rows` equal strata of the rows.
    fn bad_position(&self, k: usize) -> Option<usize> {
        if k >= self.bad_rows {
            return None;
        }
        let (n, b) = (self.rows as u128, self.bad_rows as u128);
        let start = (k as u128 * n / b) as u64;
        let end = ((k as u128 + 1) * n / b) as u64;
        let mut rng = Rng::new(seed_for(self.seed, salt::BAD_POS, k as u64));
        Some((start + rng.below(end - start)) as usize)
    }

    fn pick_dimension(&self, rng: &mut Rng) -> i64 {
        let x = rng.below(self.total_weight);
        self.mix
            .iter()
            .find(|&&(_, cumulative)| x < cumulative)
            .map_or(384, |&(dim, _)| dim)
    }

    fn build(&mut self, i: usize, bad: Option<BadKind>) -> LegacyRow {
        let n = i as u64;
        let mut rng = Rng::new(seed_for(self.seed, salt::ROW, n));
        // Unique 64-bit values: a keyed bijection of distinct counters.
        let uuid_key = mix64(self.seed ^ salt::UUID);
        let unique = |counter: u64| mix64(counter.wrapping_add(uuid_key));

        let item_type = ITEM_TYPES[i % 4];
        let item_id = uuid_string(unique(2 * n + 1), &mut rng);
        let embedding_id = match (i + i / 4) % 4 {
            0 => uuid_string(unique(2 * n), &mut rng),
            1 => format!("{item_type}_{item_id}"),
            2 => format!("{:x}", mix64(n.wrapping_add(mix64(self.seed ^ salt::HEX)))),
            _ => item_id.clone(),
        };
        let created_at = CREATED_FROM + rng.below((CREATED_UNTIL - CREATED_FROM) as u64) as i64;

        let (embedding_data, embedding_vector, dimension) = match bad {
            None => self.valid_content(&mut rng),
            Some(kind) => self.bad_content(kind, &mut rng),
        };

        let model = if rng.below(10) == 0 {
            PLACEHOLDER_MODELS[rng.below(3) as usize]
        } else {
            let models = models_for(dimension);
            models[rng.below(models.len() as u64) as usize]
        };

        LegacyRow {
            embedding_id,
            item_id,
            item_type: item_type.to_owned(),
            embedding_data,
            embedding_vector,
            dimension,
            model: model.to_owned(),
            created_at,
        }
    }

    /// `(embedding_data, embedding_vector, dimension)` of a valid row.
    fn valid_content(&mut self, rng: &mut Rng) -> (String, Option<Vec<u8>>, i64) {
        let dimension = self.pick_dimension(rng);
        let len = usize::try_from(dimension).unwrap_or(0).max(1);
        let mut v = unit_vector(rng, len);
        if rng.below(50) == 0 {
            for special in special_values() {
                v[rng.below(len as u64) as usize] = special;
            }
        }
        let json = encode_json(&v);
        let data = if json.len() >= COMPRESS_MIN_BYTES && rng.percent(self.compressed_percent) {
            let alg = Compression::ALL[self.compressed % 3];
            self.compressed += 1;
            encode_compressed(alg, &v)
        } else {
            json
        };
        let vector_percent = if dimension == 384 { 50 } else { 5 };
        let vector =
            (self.with_vector_column && rng.percent(vector_percent)).then(|| vector_bytes(&v));
        (data, vector, dimension)
    }

    /// `(embedding_data, embedding_vector, dimension)` of a bad row of `kind`.
    fn bad_content(&self, kind: BadKind, rng: &mut Rng) -> (String, Option<Vec<u8>>, i64) {
        let text = |s: &str| (s.to_owned(), None, 2);
        match kind {
            BadKind::InvalidJson => text("[0.1, 0.2"),
            BadKind::JsonNull => ("null".to_owned(), None, 384),
            BadKind::StringArray => text(r#"["a","b"]"#),
            BadKind::NestedArray => text("[[0.1],[0.2]]"),
            BadKind::Object => (r#"{"v":[1]}"#.to_owned(), None, 1),
            BadKind::OutOfRange => text("[1e39, 0.5]"),
            BadKind::NanText => text("[NaN, 1.0]"),
            BadKind::Empty => ("[]".to_owned(), None, 1),
            BadKind::DimensionMismatch => (encode_json(&unit_vector(rng, 384)), None, 385),
            BadKind::DimensionNotPositive => {
                // Alternate between the two lies: 0, then -4.
                let nth = self.bad_ordinal / BadKind::available(self.with_vector_column).len();
                let dimension = [0, -4][nth % 2];
                (encode_json(&unit_vector(rng, 384)), None, dimension)
            }
            BadKind::UnknownAlgorithm => {
                let raw = vector_bytes(&unit_vector(rng, 384));
                (encode_compressed_raw("brotli", raw.len(), &raw), None, 384)
            }
            BadKind::BadBase64 => (
                "__compressed__:zstd:1536\n!!!not base64".to_owned(),
                None,
                384,
            ),
            BadKind::WrongOriginalSize => {
                let raw = vector_bytes(&unit_vector(rng, 384));
                (
                    encode_compressed_raw("zstd", raw.len() + 4, &raw),
                    None,
                    384,
                )
            }
            BadKind::NotMultipleOf4 => {
                let mut raw = vector_bytes(&[0.25, -0.5]);
                raw.extend_from_slice(&[0x3f, 0x00]);
                (encode_compressed_raw("lz4", raw.len(), &raw), None, 2)
            }
            BadKind::NanInPayload => {
                let mut v = unit_vector(rng, 384);
                v[rng.below(384) as usize] = f32::NAN;
                (encode_compressed(Compression::Gzip, &v), None, 384)
            }
            BadKind::LegacyVectorMismatch => {
                let v = unit_vector(rng, 384);
                let mut changed = v.clone();
                changed[rng.below(384) as usize] += 0.25;
                (encode_json(&v), Some(vector_bytes(&changed)), 384)
            }
        }
    }
}

impl Iterator for RowGenerator {
    type Item = (LegacyRow, Option<BadKind>);

    fn next(&mut self) -> Option<Self::Item> {
        let i = self.next;
        if i >= self.rows {
            return None;
        }
        self.next += 1;
        let bad = if self.next_bad_at == Some(i) {
            let kinds = BadKind::available(self.with_vector_column);
            Some(kinds[self.bad_ordinal % kinds.len()])
        } else {
            None
        };
        let row = self.build(i, bad);
        if bad.is_some() {
            self.bad_ordinal += 1;
            self.next_bad_at = self.bad_position(self.bad_ordinal);
        }
        Some((row, bad))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.rows - self.next;
        (left, Some(left))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{BTreeSet, HashSet};
    use std::io::Read;

    async fn memory_db() -> (libsql::Database, libsql::Connection) {
        let db = libsql::Builder::new_local(":memory:")
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        (db, conn)
    }

    fn small_spec(rows: usize, with_vector_column: bool) -> SampleSpec {
        SampleSpec {
            rows,
            seed: 7,
            bad_rows: 32,
            with_vector_column,
            dimension_mix: vec![(384, 3), (1536, 1), (8, 1)],
            compressed_percent: 50,
        }
    }

    /// Decodes a compressed payload: `(algorithm, original_size, decompressed bytes)`.
    fn decompress(data: &str) -> (String, usize, Vec<u8>) {
        let rest = data.strip_prefix("__compressed__:").unwrap();
        let (header, b64) = rest.split_once('\n').unwrap();
        let (alg, size) = header.split_once(':').unwrap();
        let size: usize = size.parse().unwrap();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let raw = match alg {
            "zstd" => zstd::decode_all(&bytes[..]).unwrap(),
            "lz4" => lz4_flex::block::decompress(&bytes, size).unwrap(),
            "gzip" => {
                let mut out = Vec::new();
                flate2::read::GzDecoder::new(&bytes[..])
                    .read_to_end(&mut out)
                    .unwrap();
                out
            }
            other => panic!("unexpected algorithm {other}"),
        };
        (alg.to_owned(), size, raw)
    }

    fn json_bits(data: &str) -> Vec<u32> {
        let v: Vec<f32> = serde_json::from_str(data).unwrap();
        v.iter().map(|x| x.to_bits()).collect()
    }

    fn blob_bits(bytes: &[u8]) -> Vec<u32> {
        bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    #[test]
    fn same_spec_same_rows() {
        let spec = SampleSpec::realistic(3000, 42);
        let a: Vec<_> = generate_rows(&spec).collect();
        let b: Vec<_> = generate_rows(&spec).collect();
        assert_eq!(a.len(), 3000);
        assert_eq!(a, b);
        let other: Vec<_> = generate_rows(&SampleSpec::realistic(3000, 43)).collect();
        assert_ne!(a, other);
    }

    #[test]
    fn ids_are_unique_and_every_format_appears() {
        let spec = SampleSpec::realistic(20_000, 1);
        let mut ids = HashSet::new();
        let (mut uuid, mut prefixed, mut hex, mut same_as_item) = (0, 0, 0, 0);
        for (row, _) in generate_rows(&spec) {
            let id = &row.embedding_id;
            if *id == row.item_id {
                same_as_item += 1;
            } else if id.starts_with(&format!("{}_", row.item_type)) {
                prefixed += 1;
            } else if id.len() == 36 && id.matches('-').count() == 4 {
                assert_eq!(&id[14..15], "4", "v4-shaped: {id}");
                uuid += 1;
            } else {
                assert!(u64::from_str_radix(id, 16).is_ok(), "hex id: {id}");
                assert!(!id.starts_with('0'), "unpadded: {id}");
                hex += 1;
            }
            assert!(ids.insert(row.embedding_id), "duplicate id");
        }
        for n in [uuid, prefixed, hex, same_as_item] {
            assert_eq!(n, 5000);
        }
    }

    #[test]
    fn realistic_mix_matches_the_weights() {
        let spec = SampleSpec::realistic(20_000, 3);
        let summary = summarize(&spec);
        assert_eq!(summary.total_rows, 20_000);
        assert_eq!(summary.bad.len(), 15);
        let valid: usize = summary.valid_per_dimension.values().sum();
        assert_eq!(valid, 20_000 - 15);
        for (dim, weight) in &spec.dimension_mix {
            let share = summary.valid_per_dimension[dim] as f64 / valid as f64 * 100.0;
            assert!(
                (share - f64::from(*weight)).abs() < 2.0,
                "dimension {dim}: {share:.1}% vs {weight}%"
            );
        }
        let expected_bytes: u64 = summary
            .valid_per_dimension
            .iter()
            .map(|(d, n)| 4 * *d as u64 * *n as u64)
            .sum();
        assert_eq!(summary.bytes_of_vectors, expected_bytes);

        let mut compressed = 0usize;
        let mut vectors_384 = (0usize, 0usize);
        let mut vectors_other = (0usize, 0usize);
        let mut models = BTreeSet::new();
        let mut types = BTreeSet::new();
        for (row, bad) in generate_rows(&spec).filter(|(_, bad)| bad.is_none()) {
            assert!(bad.is_none());
            compressed += usize::from(row.embedding_data.starts_with("__compressed__:"));
            let counter = if row.dimension == 384 {
                &mut vectors_384
            } else {
                &mut vectors_other
            };
            counter.0 += 1;
            counter.1 += usize::from(row.embedding_vector.is_some());
            assert!((CREATED_FROM..CREATED_UNTIL).contains(&row.created_at));
            models.insert(row.model);
            types.insert(row.item_type);
        }
        let pct = |(n, of): (usize, usize)| n as f64 / of as f64 * 100.0;
        assert!((pct((compressed, valid)) - 20.0).abs() < 2.0);
        assert!((pct((vectors_384.1, vectors_384.0)) - 50.0).abs() < 3.0);
        assert!((pct((vectors_other.1, vectors_other.0)) - 5.0).abs() < 2.0);
        assert!(models.contains("text-embedding-3-small") && models.contains("default"));
        assert_eq!(types.len(), 4);
    }

    #[test]
    fn every_bad_kind_appears_and_is_spread() {
        let spec = SampleSpec {
            bad_rows: 16,
            ..SampleSpec::realistic(1600, 9)
        };
        let rows: Vec<_> = generate_rows(&spec).collect();
        let positions: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].1.is_some()).collect();
        let kinds: BTreeSet<BadKind> = rows.iter().filter_map(|(_, bad)| *bad).collect();
        assert_eq!(kinds, BadKind::ALL.into_iter().collect());
        // One bad row in each 100-row stratum.
        for (k, pos) in positions.iter().enumerate() {
            assert_eq!(pos / 100, k);
        }
        for (row, bad) in &rows {
            let Some(kind) = bad else { continue };
            match kind {
                BadKind::DimensionMismatch => assert_eq!(row.dimension, 385),
                BadKind::DimensionNotPositive => assert!(row.dimension <= 0),
                BadKind::LegacyVectorMismatch => {
                    let json = json_bits(&row.embedding_data);
                    let blob = blob_bits(row.embedding_vector.as_ref().unwrap());
                    let differing = json.iter().zip(&blob).filter(|(a, b)| a != b).count();
                    assert_eq!(differing, 1);
                }
                BadKind::WrongOriginalSize => {
                    let (_, size, raw) = decompress(&row.embedding_data);
                    assert_eq!(size, raw.len() + 4);
                }
                BadKind::NotMultipleOf4 => {
                    let (_, size, raw) = decompress(&row.embedding_data);
                    assert_eq!((size, raw.len()), (10, 10));
                }
                BadKind::NanInPayload => {
                    let (_, _, raw) = decompress(&row.embedding_data);
                    assert!(blob_bits(&raw).iter().any(|b| f32::from_bits(*b).is_nan()));
                }
                BadKind::UnknownAlgorithm => {
                    assert!(row
                        .embedding_data
                        .starts_with("__compressed__:brotli:1536\n"));
                }
                _ => {}
            }
            if *kind != BadKind::LegacyVectorMismatch {
                assert!(row.embedding_vector.is_none());
            }
        }
    }

    #[test]
    fn no_vector_column_substitutes_the_mismatch_kind() {
        let spec = small_spec(2000, false);
        let summary = summarize(&spec);
        assert_eq!(summary.bad.len(), 32);
        let kinds: BTreeSet<BadKind> = summary.bad.iter().map(|(_, k)| *k).collect();
        assert_eq!(kinds.len(), 15);
        assert!(!kinds.contains(&BadKind::LegacyVectorMismatch));
        assert!(generate_rows(&spec).all(|(row, _)| row.embedding_vector.is_none()));
    }

    #[test]
    fn bad_rows_are_capped_at_rows() {
        assert_eq!(SampleSpec::realistic(10, 0).bad_rows, 10);
        let spec = SampleSpec {
            bad_rows: 50,
            ..SampleSpec::realistic(10, 0)
        };
        assert!(generate_rows(&spec).all(|(_, bad)| bad.is_some()));
        assert_eq!(generate_rows(&SampleSpec::realistic(0, 0)).count(), 0);
    }

    #[test]
    fn plain_json_decodes_bit_exactly() {
        let special = [
            0.1f32,
            -0.0,
            f32::from_bits(1),
            f32::MAX,
            -f32::MAX,
            f32::MIN_POSITIVE,
            1.0 / 3.0,
        ];
        assert_eq!(
            json_bits(&encode_json(&special)),
            blob_bits(&vector_bytes(&special))
        );

        // Generated rows: the JSON agrees bit for bit with the legacy blob written beside it,
        // special values included.
        let spec = SampleSpec {
            compressed_percent: 0,
            bad_rows: 0,
            ..SampleSpec::realistic(3000, 5)
        };
        let (mut checked, mut with_specials) = (0, 0);
        for (row, _) in generate_rows(&spec) {
            let bits = json_bits(&row.embedding_data);
            assert_eq!(bits.len() as i64, row.dimension);
            if let Some(blob) = &row.embedding_vector {
                assert_eq!(bits, blob_bits(blob));
                checked += 1;
            }
            with_specials += usize::from(bits.contains(&1));
        }
        assert!(checked > 500, "{checked}");
        assert!(with_specials > 20, "{with_specials}");
    }

    #[test]
    fn compressed_rows_decompress_to_the_vector_bytes() {
        let v: Vec<f32> = (0..384).map(|i| i as f32 / 384.0 - 0.5).collect();
        for alg in Compression::ALL {
            let (name, size, raw) = decompress(&encode_compressed(alg, &v));
            assert_eq!((name.as_str(), size), (alg.as_str(), 1536));
            assert_eq!(raw, vector_bytes(&v));
        }

        let spec = SampleSpec {
            compressed_percent: 100,
            bad_rows: 0,
            ..SampleSpec::realistic(600, 11)
        };
        let mut algs = BTreeSet::new();
        let mut checked = 0;
        for (row, _) in generate_rows(&spec) {
            let (alg, size, raw) = decompress(&row.embedding_data);
            assert_eq!(size, raw.len());
            assert_eq!(size as i64, 4 * row.dimension);
            if let Some(blob) = &row.embedding_vector {
                assert_eq!(&raw, blob);
                checked += 1;
            }
            algs.insert(alg);
        }
        assert_eq!(algs.len(), 3);
        assert!(checked > 100, "{checked}");
    }

    #[test]
    fn small_payloads_stay_plain() {
        let spec = SampleSpec {
            dimension_mix: vec![(8, 1)],
            compressed_percent: 100,
            bad_rows: 0,
            ..SampleSpec::realistic(100, 2)
        };
        assert!(generate_rows(&spec).all(|(row, _)| row.embedding_data.starts_with('[')));
    }

    async fn columns(conn: &libsql::Connection) -> Vec<(String, String)> {
        let mut rows = conn
            .query("PRAGMA table_info(embeddings)", ())
            .await
            .unwrap();
        let mut out = Vec::new();
        while let Some(row) = rows.next().await.unwrap() {
            out.push((row.get::<String>(1).unwrap(), row.get::<String>(2).unwrap()));
        }
        out
    }

    async fn count(conn: &libsql::Connection, sql: &str) -> i64 {
        let mut rows = conn.query(sql, ()).await.unwrap();
        rows.next().await.unwrap().unwrap().get::<i64>(0).unwrap()
    }

    #[tokio::test]
    async fn creates_the_table_with_and_without_the_vector_column() {
        let (_db, conn) = memory_db().await;
        create_legacy_table(&conn, true).await.unwrap();
        let cols = columns(&conn).await;
        let names: Vec<&str> = cols.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "embedding_id",
                "item_id",
                "item_type",
                "embedding_data",
                "embedding_vector",
                "dimension",
                "model",
                "created_at"
            ]
        );
        assert_eq!(cols[4].1, "F32_BLOB(384)");
        let index = "SELECT count(*) FROM sqlite_master WHERE type = 'index' \
                     AND name = 'idx_embeddings_item'";
        assert_eq!(count(&conn, index).await, 1);

        let (_db2, conn2) = memory_db().await;
        create_legacy_table(&conn2, false).await.unwrap();
        let names: Vec<String> = columns(&conn2).await.into_iter().map(|(n, _)| n).collect();
        assert_eq!(names.len(), 7);
        assert!(!names.iter().any(|n| n == "embedding_vector"));
        assert_eq!(count(&conn2, index).await, 1);
    }

    #[tokio::test]
    async fn generated_database_holds_what_the_summary_says() {
        let dir = tempfile::tempdir().unwrap();
        let db = libsql::Builder::new_local(dir.path().join("legacy.db"))
            .build()
            .await
            .unwrap();
        let conn = db.connect().unwrap();
        let spec = small_spec(2500, true);
        let summary = generate_legacy_database(&conn, &spec).await.unwrap();
        assert_eq!(summary.total_rows, 2500);
        assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 2500);
        assert_eq!(summary.bad.len(), 32);
        assert!(summary.bad.windows(2).all(|w| w[0].0 < w[1].0));
        for (dim, n) in &summary.valid_per_dimension {
            let sql = format!("SELECT count(*) FROM embeddings WHERE dimension = {dim}");
            assert!(count(&conn, &sql).await >= *n as i64);
        }
        assert_eq!(summary.bad, summarize(&spec).bad);

        // Vectors went in as BLOBs of exactly 4 × n bytes, the rest as native types.
        let blobs = "SELECT count(*) FROM embeddings WHERE embedding_vector IS NOT NULL \
                     AND (typeof(embedding_vector) <> 'blob' \
                     OR length(embedding_vector) <> 4 * dimension)";
        assert_eq!(count(&conn, blobs).await, 0);
        let typed = "SELECT count(*) FROM embeddings WHERE typeof(dimension) <> 'integer' \
                     OR typeof(created_at) <> 'integer' OR typeof(embedding_data) <> 'text'";
        assert_eq!(count(&conn, typed).await, 0);

        // Row by row, the database holds exactly the generated rows.
        let mut rows = conn
            .query(
                "SELECT embedding_id, item_id, item_type, embedding_data, embedding_vector, \
                 dimension, model, created_at FROM embeddings ORDER BY rowid",
                (),
            )
            .await
            .unwrap();
        for (expected, _) in generate_rows(&spec) {
            let row = rows.next().await.unwrap().unwrap();
            let stored = LegacyRow {
                embedding_id: row.get(0).unwrap(),
                item_id: row.get(1).unwrap(),
                item_type: row.get(2).unwrap(),
                embedding_data: row.get(3).unwrap(),
                embedding_vector: row.get(4).unwrap(),
                dimension: row.get(5).unwrap(),
                model: row.get(6).unwrap(),
                created_at: row.get(7).unwrap(),
            };
            assert_eq!(stored, expected);
        }
        assert!(rows.next().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn inserts_without_the_vector_column_and_rolls_back_a_failed_batch() {
        let (_db, conn) = memory_db().await;
        create_legacy_table(&conn, false).await.unwrap();
        let mut rows: Vec<LegacyRow> = generate_rows(&small_spec(1500, true))
            .map(|(row, _)| row)
            .collect();
        insert_legacy_rows(&conn, &rows[..1200], false)
            .await
            .unwrap();
        assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 1200);

        // A duplicate key fails its batch, which is rolled back; earlier rows stay.
        rows[1400] = rows[0].clone();
        assert!(insert_legacy_rows(&conn, &rows[1200..], false)
            .await
            .is_err());
        assert_eq!(count(&conn, "SELECT count(*) FROM embeddings").await, 1200);
        assert!(conn.is_autocommit());
    }
}
