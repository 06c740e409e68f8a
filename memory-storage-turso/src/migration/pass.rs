//! What travels together through the copy, the verification and the online
//! mirror: the connection, what exists, the page limits, the one writer,
//! the retry budget, the rows the database refused, and the observer.

use libsql::Connection;

use super::apply::Rejected;
use super::observer::Observer;
use super::scan::{Layout, Limits};
use super::write::BatchWriter;

/// One pass over the tables (a copy, a verification, an online mirror).
pub struct Pass<'p, 'c> {
    pub conn: &'c Connection,
    pub layout: &'p Layout,
    pub limits: Limits,
    pub writer: &'p mut BatchWriter<'c>,
    /// Retries of a window after a transient error.
    pub max_retries: u32,
    /// Rows the database refused during this run, with the reason.
    pub rejected: &'p mut Rejected,
    pub observer: &'p dyn Observer,
}

impl<'c> Pass<'_, 'c> {
    /// The same pass, borrowed again (for a step of it).
    pub fn reborrow(&mut self) -> Pass<'_, 'c> {
        Pass {
            conn: self.conn,
            layout: self.layout,
            limits: self.limits,
            writer: &mut *self.writer,
            max_retries: self.max_retries,
            rejected: &mut *self.rejected,
            observer: self.observer,
        }
    }
}

/// How a phase ended: it went through every row, or the observer asked it
/// to stop (at a batch boundary, with everything before it committed).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Finished,
    Stopped,
}
