//! One row of any embedding table and its key: the type lives beside the
//! decoder ([`crate::decode::row`]); this module keeps the engine's path.

pub use crate::decode::row::*;
