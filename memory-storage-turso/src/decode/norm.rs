//! Whether cosine search can rank a vector at all.
//!
//! libSQL computes the cosine distance in f32: it sums `a·b`, `a·a` and
//! `b·b` one component at a time, then returns `1 − dot / sqrt(|a|² · |b|²)`
//! with the product of the squared norms rounded to f32. A vector with no
//! direction (all zeros), or whose squared norm (or that norm squared, which
//! libSQL takes the root of) leaves f32's normal range, gives `NaN`, `±inf`
//! or a distance with no precision left: search cannot rank it, not even
//! against itself. Such vectors are legal data and migrate bit for bit; this
//! check only says that searching for them is meaningless.

use serde::Serialize;

/// Why cosine search cannot rank a vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, thiserror::Error)]
#[serde(rename_all = "snake_case")]
pub enum Unsearchable {
    /// Every component is zero: the vector has no direction.
    #[error("every component is zero: the vector has no direction, its cosine distance to anything is undefined")]
    ZeroNorm,
    /// The components are so small that the squared norm underflows f32.
    #[error("the components are so small that the squared norm underflows f32: cosine distances are undefined or imprecise")]
    Underflow,
    /// A component is so large that the squared norm overflows f32.
    #[error("a component is so large that the squared norm overflows f32: cosine distances are undefined")]
    Overflow,
    /// A component is NaN or infinite.
    #[error("a component is NaN or infinite")]
    NonFinite,
}

impl Unsearchable {
    /// Stable short code, e.g. `zero_norm`.
    pub fn code(self) -> &'static str {
        match self {
            Unsearchable::ZeroNorm => "zero_norm",
            Unsearchable::Underflow => "underflow",
            Unsearchable::Overflow => "overflow",
            Unsearchable::NonFinite => "non_finite",
        }
    }
}

/// Whether a vector given as little-endian f32 bytes (an F32_BLOB) can be
/// ranked by cosine distance as libSQL computes it in f32; the reason when
/// not. Trailing bytes short of a whole f32 are ignored.
pub fn cosine_searchable(le_bytes: &[u8]) -> Result<(), Unsearchable> {
    if surely_searchable(le_bytes) {
        return Ok(());
    }
    let mut squared_norm = 0f32;
    let mut all_zero = true;
    for chunk in le_bytes.chunks_exact(4) {
        let Ok(bytes) = <[u8; 4]>::try_from(chunk) else {
            continue;
        };
        let x = f32::from_le_bytes(bytes);
        if !x.is_finite() {
            return Err(Unsearchable::NonFinite);
        }
        all_zero &= x == 0.0;
        // In order, rounded at each step, as libSQL's loop does.
        squared_norm += x * x;
    }
    if all_zero {
        return Err(Unsearchable::ZeroNorm);
    }
    // libSQL divides by sqrt(|a|² · |b|²), the product rounded to f32;
    // searching for the vector itself, both factors are this one.
    let product = squared_norm * squared_norm;
    if !squared_norm.is_finite() || !product.is_finite() {
        return Err(Unsearchable::Overflow);
    }
    if product < f32::MIN_POSITIVE {
        return Err(Unsearchable::Underflow);
    }
    Ok(())
}

/// The fast path, on the exponents alone: at most 65,536 components, none
/// of magnitude 2^20 or more (nor infinite or NaN), one at least 2^-20.
/// Then the squared norm lies between 2^-40 and 2^56, so neither it nor its
/// square can overflow or underflow, whatever the rounding (a sum of
/// squares never shrinks as terms are added).
fn surely_searchable(le_bytes: &[u8]) -> bool {
    const LOWEST: u32 = 127 - 20;
    const HIGHEST: u32 = 127 + 20;
    if le_bytes.len() / 4 > 65_536 {
        return false;
    }
    let max_exponent = le_bytes
        .chunks_exact(4)
        .map(|c| (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) >> 23) & 0xff)
        .max()
        .unwrap_or(0);
    (LOWEST..HIGHEST).contains(&max_exponent)
}

/// Cosine distance, as libSQL ranks (f64 accumulation); `None` when a
/// vector has no direction (all zeros).
pub fn cosine_distance(a: &[f32], b: &[f32]) -> Option<f64> {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let norm = (na * nb).sqrt();
    (norm > 0.0).then(|| 1.0 - dot / norm)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    fn check(v: &[f32]) -> Result<(), Unsearchable> {
        cosine_searchable(&bytes(v))
    }

    #[test]
    fn the_fast_path_agrees_with_the_exact_check_near_its_edges() {
        for v in [
            vec![2f32.powi(-20); 384],
            vec![2f32.powi(-21); 384],
            vec![2f32.powi(19) * 1.99; 3072],
            vec![2f32.powi(20); 3072],
            vec![1e-30, 2f32.powi(-20)],
            vec![-0.5, 1e-45, 0.0],
        ] {
            let b = bytes(&v);
            if surely_searchable(&b) {
                // The exact loop, without the fast path.
                let mut s = 0f32;
                for x in &v {
                    s += x * x;
                }
                assert!(
                    s.is_finite() && (s * s).is_finite() && s * s >= f32::MIN_POSITIVE,
                    "{v:?}"
                );
            }
        }
        assert!(surely_searchable(&bytes(&[2f32.powi(-20); 384])));
        assert!(!surely_searchable(&bytes(&[2f32.powi(-21); 384])));
        assert!(!surely_searchable(&bytes(&[2f32.powi(20); 3])));
        assert!(!surely_searchable(&bytes(&[f32::NAN, 1.0])));
    }

    #[test]
    fn normal_vectors_are_searchable() {
        let unit = vec![1.0 / (384f32).sqrt(); 384];
        assert_eq!(check(&unit), Ok(()));
        assert_eq!(check(&[1.0, 0.0, -0.0]), Ok(()));
        assert_eq!(check(&[-3.5, 2.0e-3, 7.0]), Ok(()));
    }

    #[test]
    fn zero_vectors_have_no_direction() {
        assert_eq!(check(&[0.0; 384]), Err(Unsearchable::ZeroNorm));
        assert_eq!(check(&[0.0, -0.0]), Err(Unsearchable::ZeroNorm));
        assert_eq!(check(&[]), Err(Unsearchable::ZeroNorm));
    }

    #[test]
    fn tiny_vectors_underflow() {
        assert_eq!(check(&[1e-30; 384]), Err(Unsearchable::Underflow));
        // Subnormal components.
        assert_eq!(check(&[1e-40, -1e-42]), Err(Unsearchable::Underflow));
        // The squared norm is normal, but its square is not.
        assert_eq!(check(&[1e-10]), Err(Unsearchable::Underflow));
        assert_eq!(check(&[1e-9]), Ok(()));
    }

    #[test]
    fn huge_components_overflow() {
        assert_eq!(check(&[f32::MAX]), Err(Unsearchable::Overflow));
        assert_eq!(check(&[0.1, 3.0e38, 0.2]), Err(Unsearchable::Overflow));
        assert_eq!(check(&[-f32::MAX, 1.0]), Err(Unsearchable::Overflow));
        // The squared norm fits f32, its square does not.
        assert_eq!(check(&[4.3e9]), Err(Unsearchable::Overflow));
        assert_eq!(check(&[4.0e9]), Ok(()));
    }

    #[test]
    fn a_mix_is_judged_by_its_sum() {
        // Tiny components next to a normal one do no harm.
        assert_eq!(check(&[1e-30, 0.5, 1e-40, 0.0]), Ok(()));
        // One huge component spoils the whole vector.
        assert_eq!(
            check(&[f32::MAX, 1e-30, 0.0, 0.5]),
            Err(Unsearchable::Overflow)
        );
        // Many small components can add up to a usable norm.
        assert_eq!(check(&[1e-5; 384]), Ok(()));
    }

    #[test]
    fn non_finite_components_are_named() {
        assert_eq!(check(&[1.0, f32::NAN]), Err(Unsearchable::NonFinite));
        assert_eq!(check(&[f32::INFINITY]), Err(Unsearchable::NonFinite));
        assert_eq!(
            check(&[f32::NEG_INFINITY, 0.0]),
            Err(Unsearchable::NonFinite)
        );
    }

    #[test]
    fn codes_match_the_serialized_names() {
        for r in [
            Unsearchable::ZeroNorm,
            Unsearchable::Underflow,
            Unsearchable::Overflow,
            Unsearchable::NonFinite,
        ] {
            assert_eq!(
                serde_json::to_value(r).unwrap(),
                serde_json::Value::String(r.code().into())
            );
        }
    }

    #[test]
    fn cosine_distance_matches_the_definition() {
        assert_eq!(cosine_distance(&[1.0, 0.0], &[1.0, 0.0]), Some(0.0));
        assert_eq!(cosine_distance(&[1.0, 0.0], &[0.0, 2.0]), Some(1.0));
        assert_eq!(cosine_distance(&[1.0, 0.0], &[-3.0, 0.0]), Some(2.0));
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 0.0]), None);
    }
}
