//! Faults a test arms at run time (`POST /control/faults`), fired on the
//! Hrana requests that follow.

use std::borrow::Cow;
use std::cell::OnceCell;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// What happens to the request a fault lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultKind {
    /// Close the connection without a response; the request is not executed.
    DropBefore,
    /// Execute the request, then close the connection without a response
    /// (a COMMIT is applied but the client sees an error).
    DropAfter,
    /// Answer 500 without executing the request.
    #[serde(rename = "status_500")]
    Status500,
    /// Wait `stall_ms` before handling the request (past the client's
    /// timeout), then handle it as usual: the client may be gone by then.
    Stall,
}

/// One armed fault.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct Fault {
    pub kind: FaultKind,
    /// Matching requests to let through before the fault fires.
    #[serde(default)]
    pub skip: u32,
    /// How many matching requests it fires on (then it is spent).
    #[serde(default = "one")]
    pub times: u32,
    /// Only requests whose body contains this text match (any request when
    /// absent), e.g. `"sql":"COMMIT"`.
    #[serde(default)]
    pub matching: Option<String>,
    /// The stall of a [`FaultKind::Stall`].
    #[serde(default = "thirty_seconds")]
    pub stall_ms: u64,
}

fn one() -> u32 {
    1
}

fn thirty_seconds() -> u64 {
    30_000
}

/// What a request must suffer, decided when it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Serve,
    DropBefore,
    DropAfter,
    Status500,
    Stall(Duration),
}

/// Counters a test can read (`GET /control/stats`).
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stats {
    /// Hrana requests (pipeline and cursor) received.
    pub requests: u64,
    /// Bytes of their bodies.
    pub request_bytes: u64,
    /// Faults fired.
    pub fired: u64,
    /// Faults still armed.
    pub armed: usize,
}

/// The armed faults, in the order they were armed.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<(Vec<Fault>, Stats)>,
}

impl Faults {
    /// Adds faults after those already armed.
    pub fn arm(&self, faults: Vec<Fault>) {
        let mut state = self.lock();
        state.0.extend(faults.into_iter().filter(|f| f.times > 0));
        state.1.armed = state.0.len();
    }

    /// Disarms every fault.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.0.clear();
        state.1.armed = 0;
    }

    pub fn stats(&self) -> Stats {
        self.lock().1
    }

    /// Counts a request and says what to do with it: the first armed fault
    /// that matches it either lets it through (counting down its `skip`)
    /// or fires. The request's text (`body`) is made only when an armed
    /// fault matches on text: rendering a protobuf request as JSON costs
    /// the proxy milliseconds a request, on the measured path.
    pub fn on_request<'b>(&self, bytes: usize, body: impl FnOnce() -> Cow<'b, str>) -> Action {
        let text = OnceCell::new();
        let mut body = Some(body);
        let mut contains = |m: &str| {
            text.get_or_init(|| body.take().map_or(Cow::Borrowed(""), |b| b()))
                .contains(m)
        };
        let mut state = self.lock();
        let (faults, stats) = &mut *state;
        stats.requests += 1;
        stats.request_bytes += bytes as u64;
        let Some(i) = faults
            .iter()
            .position(|f| f.matching.as_deref().is_none_or(&mut contains))
        else {
            return Action::Serve;
        };
        let fault = &mut faults[i];
        if fault.skip > 0 {
            fault.skip -= 1;
            return Action::Serve;
        }
        let action = match fault.kind {
            FaultKind::DropBefore => Action::DropBefore,
            FaultKind::DropAfter => Action::DropAfter,
            FaultKind::Status500 => Action::Status500,
            FaultKind::Stall => Action::Stall(Duration::from_millis(fault.stall_ms)),
        };
        fault.times -= 1;
        if fault.times == 0 {
            faults.remove(i);
        }
        stats.fired += 1;
        stats.armed = faults.len();
        action
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Fault>, Stats)> {
        // A panic while holding this lock cannot leave it inconsistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(kind: FaultKind, skip: u32, times: u32, matching: Option<&str>) -> Fault {
        Fault {
            kind,
            skip,
            times,
            matching: matching.map(str::to_string),
            stall_ms: 5,
        }
    }

    #[test]
    fn a_fault_skips_then_fires_its_times_on_matching_requests_only() {
        let f = Faults::default();
        f.arm(vec![fault(FaultKind::DropAfter, 1, 2, Some("COMMIT"))]);
        assert_eq!(f.on_request(8, || "SELECT 1".into()), Action::Serve);
        assert_eq!(f.on_request(8, || "COMMIT".into()), Action::Serve);
        assert_eq!(f.on_request(8, || "SELECT 1".into()), Action::Serve);
        assert_eq!(f.on_request(8, || "COMMIT".into()), Action::DropAfter);
        assert_eq!(f.on_request(8, || "COMMIT".into()), Action::DropAfter);
        assert_eq!(f.on_request(8, || "COMMIT".into()), Action::Serve);
        let s = f.stats();
        assert_eq!(
            (s.requests, s.request_bytes, s.fired, s.armed),
            (6, 48, 2, 0)
        );
    }

    #[test]
    fn faults_fire_in_the_order_armed() {
        let f = Faults::default();
        f.arm(vec![
            fault(FaultKind::Status500, 0, 1, None),
            fault(FaultKind::Stall, 0, 1, None),
        ]);
        assert_eq!(f.on_request(1, || "x".into()), Action::Status500);
        assert_eq!(
            f.on_request(1, || "x".into()),
            Action::Stall(Duration::from_millis(5))
        );
        assert_eq!(f.on_request(1, || "x".into()), Action::Serve);
        f.arm(vec![fault(FaultKind::DropBefore, 0, 1, None)]);
        f.clear();
        assert_eq!(f.on_request(1, || "x".into()), Action::Serve);
    }

    #[test]
    fn a_requests_text_is_made_only_for_a_fault_that_matches_on_text() {
        let f = Faults::default();
        f.arm(vec![fault(FaultKind::Status500, 1, 1, None)]);
        assert_eq!(f.on_request(1, || unreachable!()), Action::Serve);
        f.arm(vec![fault(FaultKind::DropBefore, 0, 1, Some("COMMIT"))]);
        assert_eq!(f.on_request(1, || unreachable!()), Action::Status500);
        assert_eq!(f.on_request(1, || "COMMIT".into()), Action::DropBefore);
    }
}
