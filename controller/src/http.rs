//! The operator's small HTTP server: `/metrics` (OpenMetrics), `/healthz`
//! (liveness: the process serves requests) and `/readyz` (ready while the
//! controller runs, or with leader election while this replica takes part in
//! it: leading or standing by).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::telemetry::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A slow or idle client must not hold a connection task forever.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("cannot listen on {addr} for metrics and health checks: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A bound listener; binding first lets callers learn the real port when
/// they asked for port 0.
pub struct HttpServer {
    listener: TcpListener,
    local_addr: SocketAddr,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        let bind_err = |source| HttpError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            listener,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves. Connections already accepted finish
    /// on their own tasks.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        ready: watch::Receiver<bool>,
        shutdown: impl Future<Output = ()>,
    ) {
        tokio::pin!(shutdown);
        loop {
            let stream = tokio::select! {
                _ = &mut shutdown => return,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        // Usually transient (e.g. out of file descriptors): pause, don't die.
                        tracing::warn!(%error, "accepting a metrics/health connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let metrics = metrics.clone();
            let ready = ready.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let response = respond(&req, &metrics, &ready);
                    async move { Ok::<_, Infallible>(response) }
                });
                let mut builder = http1::Builder::new();
                builder
                    .timer(hyper_util::rt::TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                if let Err(error) = builder
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    tracing::debug!(%error, "metrics/health connection ended with an error");
                }
            });
        }
    }
}

/// Binds `addr`, logs the address actually bound, and serves until `shutdown`.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HttpError> {
    let server = HttpServer::bind(addr).await?;
    tracing::info!(addr = %server.local_addr(), "serving /metrics, /healthz and /readyz");
    server.run(metrics, ready, shutdown).await;
    Ok(())
}

fn respond(
    req: &Request<Incoming>,
    metrics: &Metrics,
    ready: &watch::Receiver<bool>,
) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(metrics.encode())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS));
            response
        }
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" if *ready.borrow() => text(StatusCode::OK, "ready\n"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the controller is starting, stopping, or cannot reach its leader election Lease\n",
        ),
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /metrics, /healthz or /readyz\n",
        ),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ApiWrite;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// One request over a fresh TCP connection; returns (status, headers, body).
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let req = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        stream.write_all(req.as_bytes()).await.expect("write");
        let mut raw = String::new();
        stream.read_to_string(&mut raw).await.expect("read");
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status code");
        (status, head.to_ascii_lowercase(), body.to_owned())
    }

    struct Running {
        addr: SocketAddr,
        ready: watch::Sender<bool>,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start(metrics: Arc<Metrics>) -> Running {
        let server = HttpServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        let addr = server.local_addr();
        assert_ne!(addr.port(), 0, "port 0 must report the real port");
        let (ready, ready_rx) = watch::channel(false);
        let (stop, stop_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server.run(metrics, ready_rx, async {
            let _ = stop_rx.await;
        }));
        Running {
            addr,
            ready,
            stop,
            task,
        }
    }

    #[tokio::test]
    async fn serves_metrics_in_openmetrics_text() {
        let metrics = Arc::new(Metrics::new());
        metrics.count_write(ApiWrite::Job);
        let server = start(metrics.clone()).await;

        let (status, head, body) = request(server.addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert!(
            head.contains("content-type: application/openmetrics-text"),
            "{head}"
        );
        assert!(
            body.contains("roiergasias_api_writes_total{kind=\"job\"} 1"),
            "{body}"
        );
        assert!(body.ends_with("# EOF\n"));

        // Served live, not a snapshot taken at start.
        metrics.count_write(ApiWrite::Job);
        let (_, _, body) = request(server.addr, "GET", "/metrics?x=1").await;
        assert!(
            body.contains("roiergasias_api_writes_total{kind=\"job\"} 2"),
            "{body}"
        );
    }

    #[tokio::test]
    async fn readiness_follows_the_watch_and_liveness_is_always_ok() {
        let server = start(Arc::new(Metrics::new())).await;

        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);
        let (status, _, body) = request(server.addr, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert!(
            body.contains("not ready: the controller is starting"),
            "{body}"
        );

        server.ready.send_replace(true);
        assert_eq!(request(server.addr, "GET", "/readyz").await.0, 200);
        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);

        server.ready.send_replace(false);
        assert_eq!(request(server.addr, "GET", "/readyz").await.0, 503);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let server = start(Arc::new(Metrics::new())).await;
        assert_eq!(request(server.addr, "GET", "/").await.0, 404);
        assert_eq!(request(server.addr, "GET", "/metricsx").await.0, 404);
        let (status, head, _) = request(server.addr, "POST", "/metrics").await;
        assert_eq!(status, 405);
        assert!(head.contains("allow: get, head"), "{head}");
        let (status, _, body) = request(server.addr, "HEAD", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn stops_accepting_after_shutdown() {
        let server = start(Arc::new(Metrics::new())).await;
        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);
        server.stop.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(5), server.task)
            .await
            .expect("server stops promptly")
            .unwrap();
        assert!(
            TcpStream::connect(server.addr).await.is_err(),
            "listener closed after shutdown"
        );
    }

    #[tokio::test]
    async fn bind_failure_names_the_address() {
        let first = HttpServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let taken = first.local_addr();
        let err = HttpServer::bind(taken).await.err().expect("port in use");
        assert!(err.to_string().contains(&taken.to_string()), "{err}");
    }
}
