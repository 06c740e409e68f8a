//! The command-line front end of the migration: argument parsing, progress
//! lines and report rendering. Every decision about data is made by the
//! `memory-storage-turso` library; this crate only asks and shows.

pub mod args;
pub mod command;
pub mod demo;
pub mod progress;
pub mod render;

/// Exit status: done and clean.
pub const EXIT_OK: u8 = 0;
/// Exit status: the run failed (one sentence on stderr says why).
pub const EXIT_FAILED: u8 = 1;
/// Exit status: bad usage.
pub const EXIT_USAGE: u8 = 2;
/// Exit status: done, but rows were quarantined or verification found
/// discrepancies (or the run was interrupted before the end).
pub const EXIT_ATTENTION: u8 = 3;
