//! `memory-cli`: placeholder until the command line is written.
fn main() {}
