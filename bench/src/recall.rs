//! Pure parts of the recall measurement: a seeded generator, noisy queries,
//! brute-force cosine top-k and recall@k.

use std::collections::HashSet;

/// splitmix64: small, seeded, good enough to pick rows and add noise.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1).
    pub fn signed_unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

fn norm(v: &[f32]) -> f64 {
    v.iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt()
}

/// Cosine similarity (0 when either vector is zero).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| f64::from(x) * f64::from(y))
        .sum();
    let n = norm(a) * norm(b);
    if n == 0.0 {
        0.0
    } else {
        dot / n
    }
}

/// Indexes of the `k` rows most similar to `query` by cosine, best first
/// (ties broken by the lower index).
pub fn top_k(rows: &[Vec<f32>], query: &[f32], k: usize) -> Vec<usize> {
    let mut scored: Vec<(f64, usize)> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| (cosine(r, query), i))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, i)| i).collect()
}

/// Share of `truth` found in `found` (1.0 for an empty truth).
pub fn recall<T: Eq + std::hash::Hash>(truth: &[T], found: &[T]) -> f64 {
    if truth.is_empty() {
        return 1.0;
    }
    let found: HashSet<&T> = found.iter().collect();
    truth.iter().filter(|t| found.contains(t)).count() as f64 / truth.len() as f64
}

/// `count` queries: rows picked at random, each plus a noise vector whose
/// length is `relative_noise` times the row's.
pub fn noisy_queries(
    rows: &[Vec<f32>],
    count: usize,
    relative_noise: f32,
    rng: &mut SplitMix,
) -> Vec<Vec<f32>> {
    if rows.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let row = &rows[rng.below(rows.len())];
            let noise: Vec<f32> = row.iter().map(|_| rng.signed_unit()).collect();
            let scale =
                (relative_noise as f64 * norm(row) / norm(&noise).max(f64::MIN_POSITIVE)) as f32;
            row.iter()
                .zip(&noise)
                .map(|(&x, &n)| x + n * scale)
                .collect()
        })
        .collect()
}

/// A vector as libSQL's F32_BLOB: little-endian f32s.
pub fn f32_blob(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`f32_blob`]; `None` when the length is not a multiple of 4.
pub fn from_f32_blob(bytes: &[u8]) -> Option<Vec<f32>> {
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_the_share_of_the_truth_found() {
        assert_eq!(recall(&[1, 2, 3, 4], &[4, 9, 1, 8]), 0.5);
        assert_eq!(recall(&[1, 2], &[1, 2]), 1.0);
        assert_eq!(recall(&[1, 2], &[]), 0.0);
        assert_eq!(recall::<i32>(&[], &[5]), 1.0);
        // Order does not matter, duplicates in `found` count once.
        assert_eq!(recall(&["a", "b"], &["b", "b", "a"]), 1.0);
    }

    #[test]
    fn top_k_ranks_by_cosine_not_by_length() {
        let rows = vec![
            vec![1.0, 0.0],  // 0: same direction as the query
            vec![0.0, 1.0],  // 1: orthogonal
            vec![10.0, 1.0], // 2: close, and long
            vec![-1.0, 0.0], // 3: opposite
        ];
        assert_eq!(top_k(&rows, &[2.0, 0.0], 3), vec![0, 2, 1]);
        assert_eq!(top_k(&rows, &[2.0, 0.0], 10).len(), 4);
    }

    #[test]
    fn cosine_of_zero_vectors_is_zero() {
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert!((cosine(&[1.0, 1.0], &[2.0, 2.0]) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn noisy_queries_stay_near_a_row() {
        let mut rng = SplitMix::new(7);
        let rows: Vec<Vec<f32>> = (0..50)
            .map(|_| (0..64).map(|_| rng.signed_unit()).collect())
            .collect();
        let queries = noisy_queries(&rows, 20, 0.05, &mut SplitMix::new(1));
        assert_eq!(queries.len(), 20);
        for q in &queries {
            let best = top_k(&rows, q, 1)[0];
            assert!(cosine(&rows[best], q) > 0.99);
        }
        // Deterministic for a seed.
        assert_eq!(
            queries,
            noisy_queries(&rows, 20, 0.05, &mut SplitMix::new(1))
        );
    }

    #[test]
    fn blobs_round_trip() {
        let v = vec![0.5f32, -0.0, f32::MAX];
        assert_eq!(from_f32_blob(&f32_blob(&v)), Some(v));
        assert_eq!(from_f32_blob(&[0, 1, 2]), None);
    }
}
