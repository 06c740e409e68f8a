//! Proxy mode: Hrana requests are forwarded to an upstream server (libSQL's
//! `sqld`) and its answers relayed, so the faults of [`crate::faults`] and
//! the added latency can be tried against the real server. The upstream
//! checks the client's token; this side only guards its control endpoints.

use hyper::client::HttpConnector;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Body, Client, Method, Request, Response, StatusCode};

/// The server requests are forwarded to.
pub struct Upstream {
    /// `http://HOST:PORT`, without a trailing slash.
    base: String,
    client: Client<HttpConnector>,
}

impl Upstream {
    /// An upstream at `base` (`http://HOST:PORT`; plain HTTP only: it is a
    /// test server on loopback).
    pub fn new(base: &str) -> anyhow::Result<Upstream> {
        let base = base.trim_end_matches('/').to_string();
        anyhow::ensure!(
            base.starts_with("http://"),
            "--upstream must be an http:// URL, not {base}"
        );
        Ok(Upstream {
            base,
            client: Client::builder().build_http(),
        })
    }

    /// Sends one Hrana request upstream (a protobuf one as such) and reads
    /// its whole answer, which is relayed with its status and content type
    /// (502 when the upstream cannot be reached or its answer breaks off:
    /// the client sees a lost request).
    pub async fn forward(
        &self,
        path: &str,
        authorization: Option<HeaderValue>,
        body: hyper::body::Bytes,
        protobuf: bool,
    ) -> Response<Body> {
        match self.send(path, authorization, body, protobuf).await {
            Ok(resp) => resp,
            Err(e) => {
                let mut resp = Response::new(Body::from(
                    serde_json::json!({ "error": format!("upstream: {e}") }).to_string(),
                ));
                *resp.status_mut() = StatusCode::BAD_GATEWAY;
                resp
            }
        }
    }

    async fn send(
        &self,
        path: &str,
        authorization: Option<HeaderValue>,
        body: hyper::body::Bytes,
        protobuf: bool,
    ) -> Result<Response<Body>, hyper::Error> {
        let mut req = Request::new(Body::from(body));
        *req.method_mut() = Method::POST;
        *req.uri_mut() = format!("{}{path}", self.base)
            .parse()
            .expect("the upstream URL and a request path make a URI");
        let content_type = match protobuf {
            true => "application/x-protobuf",
            false => "application/json",
        };
        req.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        if let Some(value) = authorization {
            req.headers_mut().insert(AUTHORIZATION, value);
        }
        let resp = self.client.request(req).await?;
        let status = resp.status();
        let content_type = resp.headers().get(CONTENT_TYPE).cloned();
        // Read to the end: the request has run upstream once this returns
        // (what a drop_after fault needs).
        let bytes = hyper::body::to_bytes(resp.into_body()).await?;
        let mut relayed = Response::new(Body::from(bytes));
        *relayed.status_mut() = status;
        if let Some(value) = content_type {
            relayed.headers_mut().insert(CONTENT_TYPE, value);
        }
        Ok(relayed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_upstreams_are_taken() {
        assert!(Upstream::new("http://127.0.0.1:8080/").is_ok());
        assert!(Upstream::new("https://example.com").is_err());
        assert!(Upstream::new("127.0.0.1:8080").is_err());
    }
}
