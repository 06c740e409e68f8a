//! The HTTP side: Hrana's `/v2/pipeline`, `/v3/pipeline` and `/v3/cursor`
//! (what the `libsql` remote client calls), version probes, and the
//! control endpoints tests use to arm faults. Hrana requests are run on the
//! served file, or forwarded to an upstream server in proxy mode, which
//! also forwards `/v3-protobuf/pipeline` (the migration's own pipeline
//! speaks protobuf where the server has it; the served file answers it
//! 404, as a server without it does, and the client goes on in JSON).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hrana_server::{HranaConfig, PipelineError, SessionManager};
use hyper::{Body, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

use crate::backend::FileBackend;
use crate::faults::{Action, Fault, Faults};
use crate::proxy::Upstream;

/// One SQLite file served here.
pub struct Local {
    pub backend: FileBackend,
    pub sessions: SessionManager,
    pub config: HranaConfig,
}

/// Where Hrana requests are run.
pub enum Target {
    /// On a file, with `hrana-server`.
    File(Local),
    /// On an upstream server (proxy mode); `token` guards the control
    /// endpoints, the upstream checks the clients' tokens.
    Upstream { upstream: Upstream, token: String },
}

/// Everything a request needs.
pub struct Server {
    pub target: Target,
    pub faults: Faults,
    /// Added before every Hrana request is handled (simulated latency).
    pub delay: Duration,
    /// Print the start of every Hrana request body on stderr.
    pub log_requests: bool,
    /// Hrana requests being handled now (streams do not expire meanwhile).
    pub in_flight: std::sync::atomic::AtomicUsize,
}

/// Returned by the service to make hyper close the connection without a
/// response.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// Accepts connections forever, one task each.
pub async fn serve(listener: TcpListener, server: Arc<Server>) -> anyhow::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(server.clone(), req));
            // An error here is a dropped connection (ours or the client's).
            let _ = hyper::server::conn::Http::new()
                .http1_only(true)
                .http1_keep_alive(true)
                .serve_connection(stream, service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: impl Into<Body>) -> Response<Body> {
    let mut resp = Response::new(body.into());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_reply(status: StatusCode, message: &str) -> Response<Body> {
    reply(status, serde_json::json!({ "error": message }).to_string())
}

/// Whether `a` and `b` are equal, compared in constant time.
pub fn same_token(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn bearer(req: &Request<Body>) -> Option<&str> {
    req.headers()
        .get(hyper::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

async fn handle(server: Arc<Server>, req: Request<Body>) -> Result<Response<Body>, DropConnection> {
    let path = req.uri().path().to_string();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/health" | "/v2" | "/v3") => return Ok(reply(StatusCode::OK, "")),
        (&Method::GET | &Method::POST | &Method::DELETE, _) => {}
        _ => {
            return Ok(error_reply(
                StatusCode::METHOD_NOT_ALLOWED,
                "method not allowed",
            ))
        }
    }
    let token = bearer(&req).unwrap_or_default().to_string();
    let is_protobuf = path == PROTOBUF_PIPELINE;
    let is_hrana = method == Method::POST
        && (is_protobuf
            || matches!(
                path.as_str(),
                "/v2/pipeline" | "/v3/pipeline" | "/v3/cursor"
            ));
    let authorized = match &server.target {
        Target::File(local) => local.backend.token_matches(&token),
        Target::Upstream { .. } if is_hrana => true,
        Target::Upstream { token: ours, .. } => same_token(ours, &token),
    };
    let authorization = req.headers().get(hyper::header::AUTHORIZATION).cloned();
    if !authorized {
        return Ok(error_reply(
            StatusCode::UNAUTHORIZED,
            "Unauthorized: missing or invalid bearer token",
        ));
    }
    let bytes = match hyper::body::to_bytes(req.into_body()).await {
        Ok(b) => b,
        Err(_) => return Err(DropConnection),
    };
    let body = match is_protobuf {
        true => Payload::Protobuf(bytes),
        false => Payload::Json(String::from_utf8_lossy(&bytes).into_owned()),
    };
    match (method, path.as_str()) {
        (Method::POST, PROTOBUF_PIPELINE) if matches!(server.target, Target::File(_)) => {
            Ok(error_reply(StatusCode::NOT_FOUND, "not found"))
        }
        (Method::POST, "/v2/pipeline" | "/v3/pipeline" | "/v3/cursor" | PROTOBUF_PIPELINE) => {
            let request = HranaRequest {
                token,
                authorization,
                path,
                body,
            };
            hrana(server, request).await
        }
        (Method::POST, "/control/faults") => Ok(arm(&server, &body.text())),
        (Method::DELETE, "/control/faults") => {
            server.faults.clear();
            Ok(reply(StatusCode::OK, "{}"))
        }
        (Method::GET, "/control/stats") => Ok(reply(
            StatusCode::OK,
            serde_json::to_string(&server.faults.stats()).unwrap_or_default(),
        )),
        _ => Ok(error_reply(StatusCode::NOT_FOUND, "not found")),
    }
}

/// Arms one fault (a JSON object) or several (an array).
fn arm(server: &Server, body: &str) -> Response<Body> {
    let parsed: Result<Vec<Fault>, _> = serde_json::from_str::<Vec<Fault>>(body)
        .or_else(|_| serde_json::from_str::<Fault>(body).map(|f| vec![f]));
    match parsed {
        Ok(faults) => {
            server.faults.arm(faults);
            reply(
                StatusCode::OK,
                serde_json::to_string(&server.faults.stats()).unwrap_or_default(),
            )
        }
        Err(e) => error_reply(StatusCode::BAD_REQUEST, &format!("bad fault: {e}")),
    }
}

#[derive(Clone, Copy)]
enum Endpoint {
    Pipeline,
    Cursor,
}

/// Hrana's pipeline in protobuf: forwarded in proxy mode only.
const PROTOBUF_PIPELINE: &str = "/v3-protobuf/pipeline";

/// One Hrana request as received.
struct HranaRequest {
    token: String,
    /// The `Authorization` header, forwarded as it came in proxy mode.
    authorization: Option<hyper::header::HeaderValue>,
    path: String,
    body: Payload,
}

/// A request's body: JSON text (run here or forwarded), or a protobuf
/// pipeline request (forwarded as it came).
enum Payload {
    Json(String),
    Protobuf(hyper::body::Bytes),
}

impl Payload {
    /// The body's bytes as received.
    fn len(&self) -> usize {
        match self {
            Payload::Json(text) => text.len(),
            Payload::Protobuf(bytes) => bytes.len(),
        }
    }

    /// The body as text: what faults match and the log shows. A protobuf
    /// request reads as the same request's JSON, or as its bytes where it
    /// does not decode.
    fn text(&self) -> std::borrow::Cow<'_, str> {
        use prost::Message;
        match self {
            Payload::Json(text) => text.as_str().into(),
            Payload::Protobuf(bytes) => libsql_hrana::proto::PipelineReqBody::decode(&bytes[..])
                .ok()
                .and_then(|request| serde_json::to_string(&request).ok())
                .map_or_else(|| String::from_utf8_lossy(bytes), Into::into),
        }
    }
}

async fn hrana(
    server: Arc<Server>,
    request: HranaRequest,
) -> Result<Response<Body>, DropConnection> {
    let HranaRequest {
        token,
        authorization,
        path,
        body,
    } = request;
    if !server.delay.is_zero() {
        tokio::time::sleep(server.delay).await;
    }
    let action = server.faults.on_request(body.len(), || body.text());
    if server.log_requests {
        let start: String = body.text().chars().take(300).collect();
        eprintln!("hrana-test-server: {action:?} {start}");
    }
    match action {
        Action::Serve | Action::DropAfter => {}
        Action::DropBefore => return Err(DropConnection),
        Action::Status500 => {
            return Ok(error_reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal server error (injected)",
            ))
        }
        Action::Stall(d) => tokio::time::sleep(d).await,
    }
    if let Target::Upstream { upstream, .. } = &server.target {
        let resp = match body {
            Payload::Protobuf(bytes) => upstream.forward(&path, authorization, bytes, true).await,
            Payload::Json(text) => {
                upstream
                    .forward(&path, authorization, text.into(), false)
                    .await
            }
        };
        if action == Action::DropAfter {
            return Err(DropConnection);
        }
        return Ok(resp);
    }
    let endpoint = if path == "/v3/cursor" {
        Endpoint::Cursor
    } else {
        Endpoint::Pipeline
    };
    let mut value: serde_json::Value = match serde_json::from_str(&body.text()) {
        Ok(v) => v,
        Err(e) => {
            return Ok(error_reply(
                StatusCode::BAD_REQUEST,
                &format!("bad JSON: {e}"),
            ))
        }
    };
    pad_base64(&mut value);
    let worker = server.clone();
    server.in_flight.fetch_add(1, Ordering::SeqCst);
    let outcome = tokio::task::spawn_blocking(move || execute(&worker, &token, value, endpoint))
        .await
        .unwrap_or_else(|_| Err(PipelineError::Internal("the handler panicked".into())));
    server.in_flight.fetch_sub(1, Ordering::SeqCst);
    if action == Action::DropAfter {
        return Err(DropConnection);
    }
    Ok(match outcome {
        Ok(body) => reply(StatusCode::OK, body),
        Err(e) => {
            let status = match &e {
                PipelineError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
                PipelineError::BadRequest(_) => StatusCode::BAD_REQUEST,
                PipelineError::ReadOnly(_) => StatusCode::FORBIDDEN,
                PipelineError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error_reply(status, &e.to_string())
        }
    })
}

/// Runs a pipeline or cursor request (blocking: SQLite may wait on a lock).
fn execute(
    server: &Server,
    token: &str,
    value: serde_json::Value,
    endpoint: Endpoint,
) -> Result<String, PipelineError> {
    let Target::File(server) = &server.target else {
        return Err(PipelineError::Internal("no file is served here".into()));
    };
    let bad = |e: serde_json::Error| PipelineError::BadRequest(format!("bad request: {e}"));
    match endpoint {
        Endpoint::Pipeline => {
            let request = serde_json::from_value(value).map_err(bad)?;
            let response = hrana_server::handle_pipeline(
                &server.backend,
                &server.sessions,
                &server.config,
                token,
                request,
            )?;
            serde_json::to_string(&response)
                .map_err(|e| PipelineError::Internal(format!("serializing the response: {e}")))
        }
        Endpoint::Cursor => {
            let request = serde_json::from_value(value).map_err(bad)?;
            hrana_server::handle_cursor(
                &server.backend,
                &server.sessions,
                &server.config,
                token,
                request,
            )
            .map(|c| c.ndjson)
        }
    }
}

/// Hrana clients (libSQL's among them) send blobs in base64 without
/// padding; hrana-server 0.1.0 decodes only padded base64, so pad it here.
fn pad_base64(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            let is_blob = map.get("type").and_then(|t| t.as_str()) == Some("blob");
            if is_blob {
                if let Some(serde_json::Value::String(b64)) = map.get_mut("base64") {
                    while b64.len() % 4 != 0 {
                        b64.push('=');
                    }
                }
            }
            for v in map.values_mut() {
                pad_base64(v);
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(pad_base64),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_get_padded_and_nothing_else_changes() {
        let mut v = serde_json::json!({
            "requests": [{"type": "execute", "stmt": {"sql": "x", "args": [
                {"type": "blob", "base64": "AAECAw"},
                {"type": "text", "value": "AAECAw"},
                {"type": "blob", "base64": "AAEC"}
            ]}}]
        });
        pad_base64(&mut v);
        let args = &v["requests"][0]["stmt"]["args"];
        assert_eq!(args[0]["base64"], "AAECAw==");
        assert_eq!(args[1]["value"], "AAECAw");
        assert_eq!(args[2]["base64"], "AAEC");
    }
}
