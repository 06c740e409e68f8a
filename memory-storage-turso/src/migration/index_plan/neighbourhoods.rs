//! Whole neighbourhoods of a table: for a few seed rows, their nearest rows
//! among every row of the table, found while the rows go by.
//!
//! The plan's validating sample is uniform, an eighth of the table at
//! most, so it holds an eighth of each cluster of similar vectors. Where a
//! cluster of the table outgrows the index's `max_neighbors`, its graph
//! can lose the edges between clusters, while the sample's smaller
//! clusters keep them: on 50,000 clustered rows the uniform sample
//! predicted recall 0.960 and 0.980 for indexes that found 0.767 and 0.289.
//! A sample of whole neighbourhoods holds them at the table's density.
//! Where it measures clearly less than the uniform sample, its recall
//! stands ([`super::fit::predict_validated`]): on uniform vectors the two
//! agree, on clustered ones it found 0.12–0.35 for indexes that found
//! 0.29–0.83 built (`docs/index-plan-bench.md`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Seed rows whose neighbourhoods are collected.
pub(crate) const SEEDS: usize = 25;

/// One row near a seed.
#[derive(Debug)]
struct Near {
    distance: f64,
    /// The row's place in the order the rows were offered.
    order: u64,
    vector: Vec<f32>,
}

impl PartialEq for Near {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Near {}
impl PartialOrd for Near {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Near {
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.order.cmp(&other.order))
    }
}

/// The `per_seed` nearest rows of each seed, over every row offered.
#[derive(Debug)]
pub(crate) struct Neighbourhoods {
    per_seed: usize,
    seeds: Vec<Vec<f32>>,
    /// Where each seed was offered, when the first rows are the seeds.
    seed_orders: Vec<u64>,
    /// Per seed, a max-heap of its nearest rows so far.
    near: Vec<BinaryHeap<Near>>,
    offered: u64,
    /// Whether the first rows offered become the seeds.
    first_rows_seed: bool,
}

impl Neighbourhoods {
    /// Seeds taken from the first [`SEEDS`] rows offered (rows read in key
    /// order, as the dry run reads them, are in no order of their vectors).
    pub fn first_rows(per_seed: usize) -> Self {
        Self::with_seeds(Vec::new(), per_seed, true)
    }

    /// These seeds (rows drawn at random).
    pub fn seeded(seeds: Vec<Vec<f32>>, per_seed: usize) -> Self {
        Self::with_seeds(seeds, per_seed, false)
    }

    fn with_seeds(seeds: Vec<Vec<f32>>, per_seed: usize, first_rows_seed: bool) -> Self {
        let seeds: Vec<Vec<f32>> = seeds.into_iter().filter(|s| searchable(s)).collect();
        Neighbourhoods {
            per_seed,
            near: seeds.iter().map(|_| BinaryHeap::new()).collect(),
            seeds,
            seed_orders: Vec::new(),
            offered: 0,
            first_rows_seed,
        }
    }

    /// Offers one row's vector (its little-endian bytes, as stored).
    pub fn offer(&mut self, le_bytes: &[u8]) {
        let order = self.offered;
        self.offered += 1;
        if crate::decode::cosine_searchable(le_bytes).is_err() {
            return;
        }
        let Some(vector) = crate::decode::vector_from_le_bytes(le_bytes) else {
            return;
        };
        let vector = vector.as_slice();
        if self.first_rows_seed && self.seeds.len() < SEEDS {
            // The rows before it were seeds: offered to it now.
            let mut heap = BinaryHeap::new();
            for (earlier, at) in self.seeds.iter().zip(&self.seed_orders) {
                keep(&mut heap, self.per_seed, vector, earlier, *at);
            }
            self.seeds.push(vector.to_vec());
            self.seed_orders.push(order);
            self.near.push(heap);
        }
        for (seed, heap) in self.seeds.iter().zip(self.near.iter_mut()) {
            keep(heap, self.per_seed, seed, vector, order);
        }
    }

    /// Each seed's `m` nearest rows, each row once, in the order they were
    /// offered (the order an index of the table inserts them in), with
    /// every eighth row of a neighbourhood held out as a query, at most
    /// `queries` of those, spread over them.
    pub fn sample(&self, m: usize, queries: usize) -> (Vec<Vec<f32>>, Vec<Vec<f32>>) {
        let mut rows = std::collections::BTreeMap::new();
        let mut held = std::collections::BTreeSet::new();
        for heap in &self.near {
            let mut nearest: Vec<&Near> = heap.iter().collect();
            nearest.sort();
            for (j, near) in nearest.into_iter().take(m).enumerate() {
                if rows.insert(near.order, &near.vector).is_none() && j % 8 == 4 {
                    held.insert(near.order);
                }
            }
        }
        let mut base = Vec::new();
        let mut asked = Vec::new();
        for (order, vector) in rows {
            if held.contains(&order) {
                asked.push(vector.clone());
            } else {
                base.push(vector.clone());
            }
        }
        (base, super::super::recall::spread(asked, queries))
    }
}

/// Whether a seed given as floats can rank rows by cosine.
fn searchable(v: &[f32]) -> bool {
    crate::decode::cosine_searchable(&crate::decode::vector_to_le_bytes(v)).is_ok()
}

/// Keeps `vector` among the `per_seed` nearest to `seed` in `heap`.
fn keep(heap: &mut BinaryHeap<Near>, per_seed: usize, seed: &[f32], vector: &[f32], order: u64) {
    let Some(distance) = crate::decode::cosine_distance(seed, vector) else {
        return;
    };
    if heap.len() >= per_seed {
        match heap.peek() {
            Some(worst) if worst.distance > distance => {
                heap.pop();
            }
            _ => return,
        }
    }
    heap.push(Near {
        distance,
        order,
        vector: vector.to_vec(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn le(v: Vec<f32>) -> Vec<u8> {
        crate::decode::vector_to_le_bytes(&v)
    }

    /// Row `i` of a line of 2-dimension vectors at angle `i` milliradians.
    fn at(i: u64) -> Vec<f32> {
        let a = i as f32 / 1000.0;
        vec![a.cos(), a.sin()]
    }

    #[test]
    fn each_seed_keeps_its_nearest_rows_over_every_row_offered() {
        // Seeds at 0, 500 and 1000 mrad; rows 0..1200 offered.
        let mut n = Neighbourhoods::seeded(vec![at(0), at(500), at(1000)], 16);
        for i in 0..1200 {
            n.offer(&le(at(i)));
        }
        let (base, queries) = n.sample(16, 100);
        // Three neighbourhoods of 16, every eighth held out.
        assert_eq!(base.len() + queries.len(), 3 * 16);
        assert_eq!(queries.len(), 3 * 2);
        // In the order offered: the rows near 0 first, 1000's last; all
        // within 16 mrad of a seed.
        let angle = |v: &Vec<f32>| (v[1].atan2(v[0]) * 1000.0).round() as i64;
        let angles: Vec<i64> = base.iter().map(angle).collect();
        assert!(angles.windows(2).all(|w| w[0] < w[1]), "{angles:?}");
        assert!(angles
            .iter()
            .all(|a| [0, 500, 1000].iter().any(|s| (a - s).abs() <= 16)));
        // A smaller m takes each seed's nearest.
        let (base, queries) = n.sample(8, 100);
        assert_eq!(base.len() + queries.len(), 3 * 8);
        assert!(base
            .iter()
            .chain(&queries)
            .map(angle)
            .all(|a| [0, 500, 1000].iter().any(|s| (a - s).abs() <= 8)));
    }

    #[test]
    fn the_first_rows_offered_are_the_seeds_and_see_each_other() {
        let mut n = Neighbourhoods::first_rows(4);
        // Rows 0..SEEDS are the seeds (a zero vector is not one).
        n.offer(&le(vec![0.0, 0.0]));
        for i in 0..SEEDS as u64 {
            n.offer(&le(at(100 * i)));
        }
        for i in 0..3000 {
            n.offer(&le(at(i)));
        }
        assert_eq!(n.seeds.len(), SEEDS);
        // Seed 1 (100 mrad) saw seed 0 before it became a seed, but its
        // nearest are the rows at 98..=102 mrad offered later, and itself.
        let mut nearest: Vec<&Near> = n.near[1].iter().collect();
        nearest.sort();
        assert_eq!(nearest[0].distance, 0.0);
        assert!(nearest.iter().all(|r| r.distance < 1e-5), "{nearest:?}");
        // Seed 0 is its own nearest, though offered before seed 1 existed.
        assert_eq!(n.near[0].iter().map(|r| r.order).min(), Some(1));
    }
}
