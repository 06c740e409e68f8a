//! Deterministic randomness for the generator: a seeded splitmix64 (no
//! `rand`), independent streams per purpose, and v4-shaped UUIDs.

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The splitmix64 finalizer: a bijection on u64 with good avalanche.
pub(super) const fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// splitmix64.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(mix64(seed))
    }

    pub(super) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(GOLDEN);
        mix64(self.0)
    }

    /// Uniform in `0..n` (`n > 0`); the multiply-shift bias is negligible here.
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// True with probability `percent / 100`.
    pub(super) fn percent(&mut self, percent: u32) -> bool {
        self.below(100) < u64::from(percent)
    }

    /// Uniform in `[-1, 1)`.
    pub(crate) fn signed_unit(&mut self) -> f32 {
        // 24 random bits: exact in f32.
        ((self.next_u64() >> 40) as f32) * (2.0 / (1u64 << 24) as f32) - 1.0
    }
}

/// Streams of randomness kept apart from each other.
pub(super) mod salt {
    pub const ROW: u64 = 0x524f_5753;
    pub const BAD_POS: u64 = 0x4241_4450;
    pub const UUID: u64 = 0x5555_4944;
    pub const HEX: u64 = 0x4845_5821;
    pub const CENTRE: u64 = 0x4345_4e54;
}

/// A seed for stream `salt` of `seed`, element `i`.
pub(super) fn seed_for(seed: u64, salt: u64, i: u64) -> u64 {
    mix64(seed ^ mix64(salt)).wrapping_add(i.wrapping_mul(GOLDEN))
}

/// A v4-shaped hyphenated lowercase UUID whose 64 "unique" bits are `unique`, the rest random.
pub(super) fn uuid_string(unique: u64, rng: &mut Rng) -> String {
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
