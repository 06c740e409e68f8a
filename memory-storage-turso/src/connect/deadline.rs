//! A request timeout for remote databases. The `libsql` client has none: a
//! server that takes a request and never answers would hold a run forever.
//! The HTTP connections are made through [`DeadlineConnector`], whose
//! sockets fail a read with `TimedOut` once the server has been silent for
//! the timeout since the client last wrote or last received anything. The
//! migration's retry classifies that as a lost request: it reads the
//! window again on a fresh stream, so a batch that the server did commit
//! late is found committed, not written twice.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::client::connect::{Connected, Connection};
use hyper::Uri;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A socket whose reads time out while an answer is awaited.
pub struct Deadline<S> {
    inner: S,
    timeout: Duration,
    sleep: Pin<Box<Sleep>>,
    /// Something was written and no silence longer than the timeout has
    /// passed since the last byte either way.
    armed: bool,
}

impl<S> Deadline<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        Deadline {
            inner,
            timeout,
            sleep: Box::pin(tokio::time::sleep(timeout)),
            armed: false,
        }
    }

    fn arm(&mut self) {
        self.armed = true;
        let at = Instant::now() + self.timeout;
        self.sleep.as_mut().reset(at);
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Deadline<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before && self.armed {
                    self.arm();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                if self.armed && self.sleep.as_mut().poll(cx).is_ready() {
                    self.armed = false;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!(
                            "timed out: no answer from the server in {} s",
                            self.timeout.as_secs_f64()
                        ),
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Deadline<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.arm();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.arm();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Connection> Connection for Deadline<S> {
    fn connected(&self) -> Connected {
        self.inner.connected()
    }
}

/// Makes connections with `inner` (bounded by the timeout too) and wraps
/// them in [`Deadline`].
#[derive(Clone)]
pub struct DeadlineConnector<C> {
    inner: C,
    timeout: Duration,
}

impl<C> DeadlineConnector<C> {
    pub fn new(inner: C, timeout: Duration) -> Self {
        DeadlineConnector { inner, timeout }
    }
}

impl<C> tower::Service<Uri> for DeadlineConnector<C>
where
    C: tower::Service<Uri>,
    C::Response: Send + 'static,
    C::Future: Send + 'static,
    C::Error: Into<BoxError>,
{
    type Response = Deadline<C::Response>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.inner.call(uri);
        let timeout = self.timeout;
        Box::pin(async move {
            let socket = tokio::time::timeout(timeout, connecting)
                .await
                .map_err(|_| -> BoxError {
                    format!(
                        "timed out: no connection to the server in {} s",
                        timeout.as_secs_f64()
                    )
                    .into()
                })?
                .map_err(Into::into)?;
            Ok(Deadline::new(socket, timeout))
        })
    }
}

/// libSQL's own HTTPS-or-HTTP connector, wrapped.
pub fn connector(
    timeout: Duration,
) -> io::Result<DeadlineConnector<hyper_rustls::HttpsConnector<hyper::client::HttpConnector>>> {
    let mut http = hyper::client::HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_native_roots()?
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
    Ok(DeadlineConnector::new(https, timeout))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A silent peer fails the read after the timeout; a peer that answers
    /// in time does not, and an idle socket (nothing asked) never times out.
    #[tokio::test]
    async fn silence_after_a_write_times_out_an_answer_does_not() {
        let (client, mut server) = tokio::io::duplex(64);
        let mut s = Deadline::new(client, Duration::from_millis(100));
        let mut buf = [0u8; 4];

        // Idle: nothing written, nothing awaited.
        let idle = tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await;
        assert!(idle.is_err(), "an idle socket must not time out");

        // Asked and answered in time.
        s.write_all(b"ping").await.unwrap();
        server.read_exact(&mut buf).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        server.write_all(b"pong").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"pong");

        // Asked, then silence.
        s.write_all(b"ping").await.unwrap();
        let began = std::time::Instant::now();
        let err = s.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("timed out"));
        assert!(began.elapsed() >= Duration::from_millis(90));
    }
}
