//! The row generator: deterministic, streaming rows of every id format, payload
//! and bad kind, as [`SampleSpec`] asks.

use super::rng::{mix64, salt, seed_for, uuid_string, Rng};
use super::{
    encode_compressed, encode_compressed_raw, encode_json, vector_bytes, BadKind, Compression,
    LegacyRow, SampleSpec, SampleSummary,
};

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

const ITEM_TYPES: [&str; 4] = ["episode", "pattern", "embedding", "unknown"];
const PLACEHOLDER_MODELS: [&str; 3] = ["default", "unknown", "local"];
/// 2023-01-01T00:00:00Z and 2026-01-01T00:00:00Z.
pub(super) const CREATED_FROM: i64 = 1_672_531_200;
pub(super) const CREATED_UNTIL: i64 = 1_767_225_600;
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
    normalized((0..dimension).map(|_| rng.signed_unit()).collect())
}

fn normalized(mut v: Vec<f32>) -> Vec<f32> {
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

/// Length of the noise added to a centre, relative to the centre's.
const CLUSTER_NOISE: f32 = 0.6;

/// A valid vector of `dimension`: uniform on the sphere, or around one of
/// `clusters` centres (the same centres for every row of a seed).
fn valid_vector(rng: &mut Rng, seed: u64, clusters: u32, dimension: usize) -> Vec<f32> {
    let noise = unit_vector(rng, dimension);
    if clusters == 0 {
        return noise;
    }
    let which = rng.below(u64::from(clusters));
    let centre_seed = seed_for(seed, salt::CENTRE, (dimension as u64) << 32 | which);
    let centre = unit_vector(&mut Rng::new(centre_seed), dimension);
    let v: Vec<f32> = centre
        .iter()
        .zip(&noise)
        .map(|(c, n)| c + CLUSTER_NOISE * n)
        .collect();
    normalized(v)
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
    clusters: u32,
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
            clusters: spec.clusters,
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
        let mut v = valid_vector(rng, self.seed, self.clusters, len);
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
