//! Unit tests of the sample generator: determinism, the mix it promises, and
//! payloads that decode to exactly the vectors written beside them.

use std::collections::{BTreeSet, HashSet};
use std::io::Read;

use base64::Engine as _;

use super::generate::{CREATED_FROM, CREATED_UNTIL};
use super::*;

mod db;

fn small_spec(rows: usize, with_vector_column: bool) -> SampleSpec {
    SampleSpec {
        rows,
        seed: 7,
        bad_rows: 32,
        with_vector_column,
        dimension_mix: vec![(384, 3), (1536, 1), (8, 1)],
        compressed_percent: 50,
        clusters: 0,
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
        clusters: 0,
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
        clusters: 0,
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
        clusters: 0,
        bad_rows: 0,
        ..SampleSpec::realistic(100, 2)
    };
    assert!(generate_rows(&spec).all(|(row, _)| row.embedding_data.starts_with('[')));
}

/// Mean, over rows, of the cosine similarity of each row to its nearest
/// other row.
fn mean_nearest_similarity(spec: &SampleSpec) -> f64 {
    let vectors: Vec<Vec<f32>> = generate_rows(spec)
        .filter(|(_, bad)| bad.is_none())
        .map(|(row, _)| {
            let bytes = crate::decode::decode_embedding_data(&row.embedding_data).unwrap();
            crate::decode::vector_from_le_bytes(&bytes).unwrap()
        })
        .collect();
    let mut total = 0.0;
    for (i, a) in vectors.iter().enumerate() {
        let best = vectors
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, b)| 1.0 - crate::decode::cosine_distance(a, b).unwrap())
            .fold(f64::MIN, f64::max);
        total += best;
    }
    total / vectors.len() as f64
}

#[test]
fn clustered_vectors_have_near_neighbours_uniform_ones_do_not() {
    let spec = |clusters| SampleSpec {
        rows: 400,
        seed: 5,
        bad_rows: 0,
        with_vector_column: false,
        dimension_mix: vec![(384, 1)],
        compressed_percent: 0,
        clusters,
    };
    let uniform = mean_nearest_similarity(&spec(0));
    let clustered = mean_nearest_similarity(&spec(20));
    assert!(uniform < 0.3, "uniform: {uniform}");
    assert!(clustered > 0.6, "clustered: {clustered}");
}
