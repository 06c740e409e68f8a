//! The window loop the copy and the verification share: read the next
//! window (the one after it is read ahead: before this one is worked on,
//! or beside it where the work allows), work on it in one transaction,
//! and on a failure roll back, forget what
//! was read ahead and try again: a refused row is left out, a transient
//! error waits with backoff, anything else ends the run. A transaction the
//! server timed out (sqld, while another writer waited) is tried again
//! with half the rows, and the rest of the pass keeps the smaller windows.

use super::apply::after_failure;
use super::error::Result;
use super::pass::Pass;
use super::scan::Limits;
use crate::decode::row::Key;

/// What one phase does with a window.
pub(crate) trait WindowWork {
    /// A window as read, its judging under way.
    type Read;
    /// What working on one window produced.
    type Done;

    /// Reads the window after `after`, at most `limits`. When it is read
    /// ahead, `before` is the window just read (whose state it continues).
    async fn read(
        &self,
        after: Option<&Key>,
        before: Option<&Self::Read>,
        limits: Limits,
    ) -> Result<Self::Read>;

    /// Whether `read` is past the end of the table.
    fn is_end(read: &Self::Read) -> bool;

    /// The last key of `read`'s range, or `None` for the last window.
    fn upper(read: &Self::Read) -> Option<&Key>;

    /// Works on `read` (one transaction, rolled back by the caller when
    /// it fails).
    async fn work(
        &self,
        pass: Pass<'_, '_>,
        after: Option<&Key>,
        read: Self::Read,
    ) -> Result<Self::Done>;

    /// Whether the next window is now read at the same time as one is
    /// worked on (not before), without `before`: only where reading and
    /// working do not wait for each other (a remote database's reading
    /// stream beside its writing one).
    fn read_alongside(&self) -> bool {
        false
    }

    /// Whether a window read ahead may still be worked on as read (else
    /// it is read again).
    fn still_current(&self, _read: &Self::Read) -> bool {
        true
    }
}

/// The windows of one pass, in key order, one read ahead.
pub(crate) struct Windows<W: WindowWork> {
    pub work: W,
    ahead: Option<W::Read>,
    limits: Limits,
}

impl<W: WindowWork> Windows<W> {
    /// The windows `work` goes through, each at most `limits`.
    pub fn new(work: W, limits: Limits) -> Self {
        Windows {
            work,
            ahead: None,
            limits,
        }
    }

    /// Works on the window after `after`: what it produced and the retries
    /// it took, or `None` past the end of the table.
    pub async fn next(
        &mut self,
        pass: &mut Pass<'_, '_>,
        after: Option<&Key>,
    ) -> Result<Option<(W::Done, u32)>> {
        let mut attempt = 0;
        loop {
            let read = match self.ahead.take() {
                Some(read) if self.work.still_current(&read) => read,
                _ => match self.work.read(after, None, self.limits).await {
                    Ok(read) => read,
                    Err(e) => {
                        after_failure(e, &mut attempt, pass.max_retries, pass.rejected).await?;
                        continue;
                    }
                },
            };
            if W::is_end(&read) {
                return Ok(None);
            }
            // Read the next window now, before or while this one is worked
            // on (the ranges are disjoint, so the order is safe). A failed
            // read is simply not kept: the next turn reads again, with
            // retries.
            let upper = W::upper(&read).cloned();
            let worked = match upper {
                Some(upper) if self.work.read_alongside() => {
                    let (next, worked) = tokio::join!(
                        self.work.read(Some(&upper), None, self.limits),
                        self.work.work(pass.reborrow(), after, read)
                    );
                    self.ahead = next.ok();
                    worked
                }
                Some(upper) => {
                    self.ahead = self
                        .work
                        .read(Some(&upper), Some(&read), self.limits)
                        .await
                        .ok();
                    self.work.work(pass.reborrow(), after, read).await
                }
                None => self.work.work(pass.reborrow(), after, read).await,
            };
            match worked {
                Ok(done) => return Ok(Some((done, attempt))),
                Err(e) => {
                    pass.writer.rollback().await;
                    self.ahead = None;
                    if e.transaction_timed_out() {
                        self.limits.rows = (self.limits.rows / 2).max(1);
                        tracing::debug!(
                            rows = self.limits.rows,
                            "the server timed the transaction out: smaller windows"
                        );
                    }
                    after_failure(e, &mut attempt, pass.max_retries, pass.rejected).await?;
                }
            }
        }
    }
}
