//! Hrana's `/v3/pipeline`, spoken directly, for the migration's hot path
//! over the network: a whole window read, or a whole batch transaction, in
//! one HTTP request.
//!
//! Why not the `libsql` client: version 0.10 sends every statement as a
//! request of its own, and every query as two (a `describe`, then the
//! cursor); it has no way to send bound statements as one Hrana `batch`
//! (its `execute_batch` takes SQL text without parameters). A 1,000-row
//! batch cost about 100 requests: at 80 ms a round trip, an hour of network
//! per million rows. Here a batch is one request whose steps each run only
//! if the one before succeeded, ending in `COMMIT` — or `ROLLBACK` when
//! anything before failed — so a failure stops the transaction at that
//! step: nothing after it runs outside the transaction (sqld, having timed
//! out a transaction, would otherwise run the next statements in
//! autocommit). A stream that saw any error is never used again.
//!
//! Requests go in Hrana's protobuf encoding (`/v3-protobuf/pipeline`,
//! [`super::protobuf`]: why), or in JSON to a server without that endpoint
//! (it answers 404, having run nothing). Either way values travel as Hrana
//! values, the vectors as their bytes, never through decimal floats.
//! Errors come back as `libsql::Error`s whose text reads like the `libsql`
//! client's, so that `db::classify` judges them the same way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Body;
use libsql::Value;
use libsql_hrana::proto;

use super::deadline::{self, DeadlineConnector};
use super::protobuf;

mod held;
pub use held::Held;

type Connector = DeadlineConnector<hyper_rustls::HttpsConnector<hyper::client::HttpConnector>>;

/// One statement of a batch.
#[derive(Debug, Clone)]
pub struct Statement {
    pub sql: String,
    pub args: Vec<Value>,
}

impl Statement {
    pub fn new(sql: impl Into<String>, args: Vec<Value>) -> Self {
        Statement {
            sql: sql.into(),
            args,
        }
    }
}

/// A statement that fails (integer overflow) unless `condition`, an SQL
/// expression, holds: Hrana's step conditions see only success or failure
/// of a step, so a value is tested by failing on it.
pub fn fail_unless(condition: &str) -> String {
    format!("SELECT CASE WHEN {condition} THEN 1 ELSE abs(-9223372036854775807 - 1) END")
}

/// What one statement of a batch returned.
#[derive(Debug, Default)]
pub struct Outcome {
    pub rows: Vec<Vec<Value>>,
    pub affected: u64,
}

/// A batch that did not go through.
#[derive(Debug)]
pub enum Failure {
    /// Statement `step` (of those given) failed; nothing of the batch is
    /// committed.
    Step { step: usize, error: libsql::Error },
    /// The request or its answer was lost, or the server refused it: the
    /// batch may or may not have been committed.
    Request(libsql::Error),
    /// Not sent: the stream it had to run on is gone (see
    /// [`Pipeline::transaction_on`]). Nothing of it ran.
    StreamChanged,
    /// Not run: the transaction it was to run in ([`Held`]) had ended on
    /// the server before the request arrived. Nothing of it ran.
    Ended,
}

impl Failure {
    /// The error, whatever the step.
    pub fn into_error(self) -> libsql::Error {
        match self {
            Failure::Step { error, .. } | Failure::Request(error) => error,
            Failure::StreamChanged => lost("the stream it was to run on is gone"),
            // sqld ends a transaction of ours only by timing it out.
            Failure::Ended => lost(
                "the transaction had ended on the server before the request \
                 (timed out while another writer waited); nothing of the request ran",
            ),
        }
    }

    /// The error as the crate's, `context` naming the work.
    pub fn in_context(self, context: impl Into<String>) -> crate::Error {
        crate::Error::Database {
            context: context.into(),
            source: self.into_error(),
        }
    }
}

/// A Hrana HTTP client with one stream, kept across requests (a stream is
/// one connection on the server: `PRAGMA data_version` read on it compares
/// with a later one on it). Cheap to clone: clones share the stream.
#[derive(Clone)]
pub struct Pipeline {
    inner: Arc<Inner>,
}

struct Inner {
    client: hyper::Client<Connector, Body>,
    /// The stream: its URL and its baton, one request at a time.
    stream: tokio::sync::Mutex<Stream>,
    token: String,
    /// The pipeline URL it was made for.
    origin: String,
    /// Shared with the pipelines [`Pipeline::fork`]ed from this one.
    requests: Arc<AtomicU64>,
    /// Whether requests go in protobuf (until the server is found not to
    /// have that endpoint); shared with the forks.
    protobuf: Arc<AtomicBool>,
}

struct Stream {
    /// `…/v3/pipeline` of the server (or of the `base_url` it redirected to).
    url: String,
    baton: Option<String>,
    /// Which of this pipeline's streams it is: one more each time a
    /// request opens a new one.
    id: u64,
    /// When its last answer arrived.
    answered: Option<std::time::Instant>,
}

/// How long a stream may sit idle before its baton is no longer sent and a
/// new stream is opened instead: sqld expires a stream idle for 10 s (and
/// refuses its baton), and the two streams of a run each sit idle while
/// the other, or the `libsql` connection, does the work.
const STREAM_IDLE: Duration = Duration::from_secs(8);

impl Stream {
    /// A stream not opened yet (its first request opens it) at `url`.
    fn new(url: String) -> Self {
        Stream {
            url,
            baton: None,
            id: 0,
            answered: None,
        }
    }

    /// Whether its baton may still be sent.
    fn live(&self) -> bool {
        self.baton.is_some() && self.answered.is_some_and(|t| t.elapsed() < STREAM_IDLE)
    }
}

/// `PRAGMA data_version` as read on one of a pipeline's streams (one
/// connection on the server): it compares only with a later reading on
/// the same stream ([`Pipeline::transaction_on`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub data_version: i64,
    pub stream: u64,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pipeline { .. }")
    }
}

/// `https://…/v3/pipeline` for a `libsql://`, `https://` or `http://` URL
/// (its query string, where a token may hide, left out).
fn pipeline_url(url: &str) -> String {
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let url = match url.strip_prefix("libsql://") {
        Some(rest) => format!("https://{rest}"),
        None => url.to_string(),
    };
    format!("{}/v3/pipeline", url.trim_end_matches('/'))
}

/// The protobuf endpoint beside a `…/v3/pipeline` URL.
fn protobuf_url(url: &str) -> String {
    match url.strip_suffix("/v3/pipeline") {
        Some(base) => format!("{base}/v3-protobuf/pipeline"),
        None => url.to_string(),
    }
}

impl Pipeline {
    /// A client of the server at `url`, answers awaited at most `timeout`.
    pub fn new(url: &str, token: &str, timeout: Duration) -> std::io::Result<Pipeline> {
        let client = hyper::Client::builder().build(deadline::connector(timeout)?);
        Ok(Pipeline {
            inner: Arc::new(Inner {
                client,
                stream: tokio::sync::Mutex::new(Stream::new(pipeline_url(url))),
                token: token.to_string(),
                origin: pipeline_url(url),
                requests: Arc::new(AtomicU64::new(0)),
                protobuf: Arc::new(AtomicBool::new(true)),
            }),
        })
    }

    /// A pipeline to the same server with a stream of its own (another
    /// connection there), so that its requests run beside this one's.
    /// Its requests count in [`Pipeline::requests`] of both.
    pub fn fork(&self) -> Pipeline {
        // Where the server redirected this pipeline, if it is not busy.
        let url = match self.inner.stream.try_lock() {
            Ok(stream) => stream.url.clone(),
            Err(_) => self.inner.origin.clone(),
        };
        Pipeline {
            inner: Arc::new(Inner {
                client: self.inner.client.clone(),
                stream: tokio::sync::Mutex::new(Stream::new(url)),
                token: self.inner.token.clone(),
                origin: self.inner.origin.clone(),
                requests: self.inner.requests.clone(),
                protobuf: self.inner.protobuf.clone(),
            }),
        }
    }

    /// [`Pipeline::read`], after `PRAGMA data_version` in the same request:
    /// what it read, and on which stream.
    pub async fn read_observed(
        &self,
        statements: Vec<Statement>,
    ) -> Result<(Observed, Vec<Outcome>), Failure> {
        let mut all = vec![Statement::new("PRAGMA data_version", vec![])];
        all.extend(statements);
        let (mut outcomes, stream) = self.read_on(all).await?;
        let first = outcomes.remove(0);
        match first.rows.first().and_then(|r| r.first()) {
            Some(Value::Integer(data_version)) => Ok((
                Observed {
                    data_version: *data_version,
                    stream,
                },
                outcomes,
            )),
            _ => Err(Failure::Request(lost("data_version is not an integer"))),
        }
    }

    /// Whether a value read on stream `stream` still compares: the stream
    /// is the current one and may still be used (true while a request is
    /// in flight on it; [`Pipeline::transaction_on`] is the final word).
    pub fn on_live_stream(&self, stream: u64) -> bool {
        match self.inner.stream.try_lock() {
            Ok(current) => current.id == stream && current.live(),
            Err(_) => true,
        }
    }

    /// HTTP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// Whether requests now go in protobuf (not yet refused by the server).
    pub fn speaks_protobuf(&self) -> bool {
        self.inner.protobuf.load(Ordering::Relaxed)
    }

    /// Runs `statements` in one request, each only if the one before
    /// succeeded, outside any transaction of ours (reads). Returns each
    /// statement's rows.
    pub async fn read(&self, statements: Vec<Statement>) -> Result<Vec<Outcome>, Failure> {
        Ok(self.read_on(statements).await?.0)
    }

    /// [`Pipeline::read`], and the stream it ran on.
    async fn read_on(&self, statements: Vec<Statement>) -> Result<(Vec<Outcome>, u64), Failure> {
        let n = statements.len();
        let steps = statements
            .into_iter()
            .enumerate()
            .map(|(i, s)| step(s, true, (i > 0).then(|| ok(i - 1))))
            .collect();
        let (results, errors, stream) = self.batch(steps, None).await?;
        Ok((collect(results, errors, 0, n)?, stream))
    }

    /// Runs `statements` as one transaction in one request: `BEGIN
    /// IMMEDIATE`, each statement only if everything before it succeeded,
    /// `COMMIT`, and `ROLLBACK` when anything failed. Succeeds only if the
    /// `COMMIT` did.
    pub async fn transaction(&self, statements: Vec<Statement>) -> Result<Vec<Outcome>, Failure> {
        self.transaction_in(statements, None).await
    }

    /// [`Pipeline::transaction`] on the stream `stream` (of an
    /// [`Observed`]) only: where that stream is gone, nothing is sent and
    /// the answer is [`Failure::StreamChanged`]. A `data_version` read on
    /// the stream then still compares with one read in the transaction.
    pub async fn transaction_on(
        &self,
        stream: u64,
        statements: Vec<Statement>,
    ) -> Result<Vec<Outcome>, Failure> {
        self.transaction_in(statements, Some(stream)).await
    }

    async fn transaction_in(
        &self,
        statements: Vec<Statement>,
        on: Option<u64>,
    ) -> Result<Vec<Outcome>, Failure> {
        let n = statements.len();
        let mut steps = vec![step(Statement::new("BEGIN IMMEDIATE", vec![]), false, None)];
        for (i, s) in statements.into_iter().enumerate() {
            steps.push(step(s, true, Some(ok(i))));
        }
        let commit = steps.len();
        steps.push(step(
            Statement::new("COMMIT", vec![]),
            false,
            Some(ok(commit - 1)),
        ));
        steps.push(step(
            Statement::new("ROLLBACK", vec![]),
            false,
            Some(proto::BatchCond::Not {
                cond: Box::new(ok(commit)),
            }),
        ));
        let (results, errors, _) = self.batch(steps, on).await?;
        if let Some(Some(e)) = errors.first() {
            return Err(Failure::Step {
                step: 0,
                error: step_error(e, "BEGIN IMMEDIATE"),
            });
        }
        committed(results, errors, 1, n)
    }

    /// Sends one batch on the stream (only on stream `on`, when given) and
    /// returns its step results and errors, and the stream it ran on. A
    /// request that fails, or a batch with any error in it, leaves the
    /// stream behind: the next request opens a new one.
    async fn batch(
        &self,
        steps: Vec<proto::BatchStep>,
        on: Option<u64>,
    ) -> Result<Answer, Failure> {
        let mut stream = self.inner.stream.lock().await;
        self.batch_on(&mut stream, steps, on).await
    }

    /// [`Pipeline::batch`] on the stream already locked by the caller.
    async fn batch_on(
        &self,
        stream: &mut Stream,
        steps: Vec<proto::BatchStep>,
        on: Option<u64>,
    ) -> Result<Answer, Failure> {
        if !stream.live() {
            stream.baton = None;
        }
        if stream.baton.is_none() {
            if on.is_some() {
                return Err(Failure::StreamChanged);
            }
            stream.id += 1;
        }
        if on.is_some_and(|id| id != stream.id) {
            return Err(Failure::StreamChanged);
        }
        let ran_on = stream.id;
        let baton = stream.baton.take();
        let protobuf = self.inner.protobuf.load(Ordering::Relaxed);
        let (status, bytes, is_protobuf) = match self
            .send(&stream.url, baton.as_deref(), &steps, protobuf)
            .await?
        {
            // A server without Hrana's protobuf endpoint ran nothing: ask
            // it again in JSON, and keep to JSON from now on.
            (status, _, _) if protobuf && status == hyper::StatusCode::NOT_FOUND => {
                self.inner.protobuf.store(false, Ordering::Relaxed);
                tracing::debug!("the server has no protobuf endpoint: JSON from now on");
                self.send(&stream.url, baton.as_deref(), &steps, false)
                    .await?
            }
            answer => answer,
        };
        if !status.is_success() {
            let text = match is_protobuf {
                true => protobuf::error_text(&bytes),
                false => None,
            }
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Failure::Request(hrana(format!(
                "api error: status={} {}: {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or(""),
                text.chars().take(500).collect::<String>()
            ))));
        }
        let body: proto::PipelineRespBody = match is_protobuf {
            true => protobuf::decode_answer(&bytes, steps.len())
                .map_err(|e| Failure::Request(lost(&format!("protobuf error: {e}"))))?,
            false => serde_json::from_slice(&bytes)
                .map_err(|e| Failure::Request(lost(&format!("json error: {e}"))))?,
        };
        let result = match body.results.into_iter().next() {
            Some(proto::StreamResult::Ok {
                response: proto::StreamResponse::Batch(b),
            }) => b.result,
            Some(proto::StreamResult::Error { error }) => {
                return Err(Failure::Request(step_error(&error, "a batch")))
            }
            _ => return Err(Failure::Request(lost("unexpected response to a batch"))),
        };
        if result.step_errors.iter().all(Option::is_none) {
            stream.baton = body.baton;
            stream.answered = Some(std::time::Instant::now());
            if let Some(base) = body.base_url {
                stream.url = pipeline_url(&base);
            }
        }
        Ok((result.step_results, result.step_errors, ran_on))
    }

    /// Sends one batch request to the stream's `url` (its protobuf endpoint
    /// when `protobuf`): the answer's status and body, and whether the body
    /// says it is protobuf (an error may come as text from whatever
    /// answered: a proxy, a load balancer).
    async fn send(
        &self,
        url: &str,
        baton: Option<&str>,
        steps: &[proto::BatchStep],
        protobuf: bool,
    ) -> Result<(hyper::StatusCode, hyper::body::Bytes, bool), Failure> {
        let (url, content_type, body) = if protobuf {
            (
                protobuf_url(url),
                protobuf::CONTENT_TYPE,
                protobuf::encode_batch(baton, steps),
            )
        } else {
            let body = proto::PipelineReqBody {
                baton: baton.map(str::to_string),
                requests: vec![proto::StreamRequest::Batch(proto::BatchStreamReq {
                    batch: proto::Batch {
                        steps: steps.to_vec(),
                        replication_index: None,
                    },
                })],
            };
            let body = serde_json::to_vec(&body)
                .map_err(|e| Failure::Request(lost(&format!("encoding a request: {e}"))))?;
            (url.to_string(), "application/json", body)
        };
        let sent_bytes = body.len();
        let mut request =
            hyper::Request::post(&url).header(hyper::header::CONTENT_TYPE, content_type);
        if !self.inner.token.is_empty() {
            request = request.header(
                hyper::header::AUTHORIZATION,
                format!("Bearer {}", self.inner.token),
            );
        }
        let request = request
            .body(Body::from(body))
            .map_err(|e| Failure::Request(lost(&format!("building a request: {e}"))))?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let sent_at = std::time::Instant::now();
        let response = self
            .inner
            .client
            .request(request)
            .await
            .map_err(|e| Failure::Request(lost(&format!("connection: {e}"))))?;
        let status = response.status();
        let is_protobuf = response
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(protobuf::CONTENT_TYPE.as_bytes()));
        let bytes = hyper::body::to_bytes(response.into_body())
            .await
            .map_err(|e| Failure::Request(lost(&format!("connection: {e}"))))?;
        tracing::trace!(
            steps = steps.len(),
            sent_bytes,
            answer_bytes = bytes.len(),
            ms = sent_at.elapsed().as_secs_f64() * 1e3,
            "request answered"
        );
        Ok((status, bytes, is_protobuf))
    }
}

/// A batch's step results, step errors, and the stream it ran on.
type Answer = (
    Vec<Option<proto::StmtResult>>,
    Vec<Option<proto::Error>>,
    u64,
);

fn ok(step: usize) -> proto::BatchCond {
    proto::BatchCond::Ok { step: step as u32 }
}

fn step(s: Statement, want_rows: bool, condition: Option<proto::BatchCond>) -> proto::BatchStep {
    let mut stmt = proto::Stmt::new(s.sql, want_rows);
    stmt.args = s.args.into_iter().map(to_proto).collect();
    proto::BatchStep { condition, stmt }
}

/// The outcomes of statements `first..first + n` of a batch whose step
/// `first + n` is its `COMMIT`: only if the `COMMIT` ran and succeeded.
fn committed(
    results: Vec<Option<proto::StmtResult>>,
    errors: Vec<Option<proto::Error>>,
    first: usize,
    n: usize,
) -> Result<Vec<Outcome>, Failure> {
    let commit = first + n;
    let ran = matches!(results.get(commit), Some(Some(_)));
    let commit_error = errors
        .get(commit)
        .and_then(Option::as_ref)
        .map(|e| step_error(e, "COMMIT"));
    let outcomes = collect(results, errors, first, n)?;
    match (ran, commit_error) {
        (true, _) => Ok(outcomes),
        (false, Some(error)) => Err(Failure::Step { step: n, error }),
        (false, None) => Err(Failure::Request(lost("the server did not run the COMMIT"))),
    }
}

/// The outcomes of steps `first..first + n`, or the first error among them.
fn collect(
    results: Vec<Option<proto::StmtResult>>,
    errors: Vec<Option<proto::Error>>,
    first: usize,
    n: usize,
) -> Result<Vec<Outcome>, Failure> {
    if let Some((i, e)) = errors
        .iter()
        .enumerate()
        .skip(first)
        .take(n)
        .find_map(|(i, e)| e.as_ref().map(|e| (i, e)))
    {
        return Err(Failure::Step {
            step: i - first,
            error: step_error(e, &format!("statement {}", i - first + 1)),
        });
    }
    let mut out = Vec::with_capacity(n);
    for r in results.into_iter().skip(first).take(n) {
        let Some(r) = r else {
            return Err(Failure::Request(lost(
                "a statement of the batch did not run",
            )));
        };
        out.push(Outcome {
            affected: r.affected_row_count,
            rows: r
                .rows
                .into_iter()
                .map(|row| row.values.into_iter().map(from_proto).collect())
                .collect(),
        });
    }
    if out.len() < n {
        return Err(Failure::Request(lost("the batch's answer is short")));
    }
    Ok(out)
}

fn to_proto(v: Value) -> proto::Value {
    match v {
        Value::Null => proto::Value::Null,
        Value::Integer(value) => proto::Value::Integer { value },
        Value::Real(value) => proto::Value::Float { value },
        Value::Text(value) => proto::Value::Text {
            value: value.into(),
        },
        Value::Blob(value) => proto::Value::Blob {
            value: value.into(),
        },
    }
}

fn from_proto(v: proto::Value) -> Value {
    match v {
        proto::Value::None | proto::Value::Null => Value::Null,
        proto::Value::Integer { value } => Value::Integer(value),
        proto::Value::Float { value } => Value::Real(value),
        proto::Value::Text { value } => Value::Text(value.to_string()),
        proto::Value::Blob { value } => Value::Blob(value.to_vec()),
    }
}

/// An error the `libsql` client would have reported as a Hrana error.
fn hrana(text: String) -> libsql::Error {
    libsql::Error::Hrana(text.into())
}

/// A lost request or answer (classified transient).
fn lost(what: &str) -> libsql::Error {
    hrana(format!("http error: {what}"))
}

/// A statement's error, as the `libsql` client words it.
fn step_error(e: &proto::Error, what: &str) -> libsql::Error {
    hrana(format!(
        "stream error: {what}: Error {{ message: {:?}, code: {:?} }}",
        e.message, e.code
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_the_pipeline_endpoint_without_their_query() {
        assert_eq!(
            pipeline_url("libsql://db.example.io?authToken=secret"),
            "https://db.example.io/v3/pipeline"
        );
        assert_eq!(
            pipeline_url("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080/v3/pipeline"
        );
        assert_eq!(
            protobuf_url("https://db.example.io/v3/pipeline"),
            "https://db.example.io/v3-protobuf/pipeline"
        );
    }

    #[test]
    fn values_travel_unchanged() {
        let vector: Vec<u8> = [f32::MIN_POSITIVE, -0.0, f32::NAN, 1.0 / 3.0]
            .iter()
            .flat_map(|f| f.to_le_bytes())
            .collect();
        for v in [
            Value::Null,
            Value::Integer(i64::MIN),
            Value::Real(0.1 + 0.2),
            Value::Text("ünïcode 'quoted'".into()),
            Value::Blob(vector),
        ] {
            let json = serde_json::to_vec(&to_proto(v.clone())).unwrap();
            let back: proto::Value = serde_json::from_slice(&json).unwrap();
            assert_eq!(from_proto(back), v);
        }
    }

    #[test]
    fn step_errors_are_judged_like_the_libsql_clients() {
        use crate::db::{classify, ErrorClass};
        let e = |code: &str, message: &str| {
            step_error(
                &proto::Error {
                    message: message.into(),
                    code: code.into(),
                },
                "statement 2",
            )
        };
        assert_eq!(
            classify(&e(
                "SQLITE_CONSTRAINT_PRIMARYKEY",
                "UNIQUE constraint failed"
            )),
            ErrorClass::RowRejected
        );
        assert_eq!(
            classify(&e("TRANSACTION_TIMEOUT", "timed out")),
            ErrorClass::Transient
        );
        assert!(crate::db::codes::transaction_timed_out(&e(
            "TRANSACTION_TIMEOUT",
            "timed out"
        )));
        assert_eq!(
            classify(&e("SQLITE_FULL", "database or disk is full")),
            ErrorClass::Fatal
        );
        assert_eq!(classify(&lost("connection: reset")), ErrorClass::Transient);
    }
}
