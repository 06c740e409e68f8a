//! What every test suite of the workspace shares (a dev-dependency only):
//! real libSQL databases and the sample generator ([`db`]), the one
//! independent correctness check ([`oracle`]), whole-database dumps
//! ([`dump`]), an observer that stops a run ([`stop`]), and the binaries as
//! processes ([`process`]).

pub mod db;
pub mod dump;
pub mod oracle;
pub mod process;
pub mod rng;
pub mod sqld;
pub mod stop;

pub use db::*;
pub use dump::*;
pub use oracle::*;
pub use process::*;
pub use rng::Rng;
pub use sqld::{sqld_binary, Sqld};
pub use stop::StopAfter;
