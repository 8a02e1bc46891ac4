//! The operator's small HTTP server (axum): `/metrics` (OpenMetrics), `/healthz`
//! (liveness: the process serves requests) and `/readyz` (ready while the
//! controller runs, or with leader election while this replica takes part in
//! it: leading or standing by).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_io_timeout::TimeoutStream;

use crate::telemetry::Metrics;

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// A slow or idle client must not hold a connection task forever: a connection that
/// sends nothing for this long is closed (axum's hyper has no header-read timer).
const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// After shutdown, how long responses already being written may take to finish.
const DRAIN: Duration = Duration::from_secs(1);

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
    read_timeout: Duration,
}

impl HttpServer {
    pub async fn bind(addr: SocketAddr) -> Result<Self, HttpError> {
        let bind_err = |source| HttpError::Bind { addr, source };
        let listener = TcpListener::bind(addr).await.map_err(bind_err)?;
        let local_addr = listener.local_addr().map_err(bind_err)?;
        Ok(Self {
            listener,
            local_addr,
            read_timeout: READ_TIMEOUT,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` resolves; then stops accepting and gives responses
    /// under way [`DRAIN`] to finish.
    pub async fn run(
        self,
        metrics: Arc<Metrics>,
        ready: watch::Receiver<bool>,
        shutdown: impl Future<Output = ()>,
    ) {
        let (stop, mut stopped) = watch::channel(false);
        let listener = Timed {
            inner: self.listener,
            read_timeout: self.read_timeout,
        };
        let server = axum::serve(listener, router(metrics, ready))
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .into_future();
        tokio::pin!(server);
        tokio::select! {
            _ = &mut server => return,
            _ = shutdown => {}
        }
        stop.send_replace(true);
        let _ = tokio::time::timeout(DRAIN, server).await;
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

#[derive(Clone)]
struct Health {
    metrics: Arc<Metrics>,
    ready: watch::Receiver<bool>,
}

/// GET (and so HEAD) on three paths; everything else is refused with a hint.
fn router(metrics: Arc<Metrics>, ready: watch::Receiver<bool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { text(StatusCode::OK, "ok\n") }))
        .route("/readyz", get(readiness))
        .method_not_allowed_fallback(|| async {
            text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n")
        })
        .fallback(|| async {
            text(
                StatusCode::NOT_FOUND,
                "not found; try /metrics, /healthz or /readyz\n",
            )
        })
        .with_state(Health { metrics, ready })
}

async fn metrics_text(State(health): State<Health>) -> Response {
    ([(CONTENT_TYPE, OPENMETRICS)], health.metrics.encode()).into_response()
}

async fn readiness(State(health): State<Health>) -> Response {
    if *health.ready.borrow() {
        text(StatusCode::OK, "ready\n")
    } else {
        text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the controller is starting, stopping, or cannot reach its leader election Lease\n",
        )
    }
}

fn text(status: StatusCode, body: &'static str) -> Response {
    (status, [(CONTENT_TYPE, TEXT)], body).into_response()
}

/// The TCP listener, each connection with a read timeout.
struct Timed {
    inner: TcpListener,
    read_timeout: Duration,
}

impl axum::serve::Listener for Timed {
    type Io = Pin<Box<TimeoutStream<TcpStream>>>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, SocketAddr) {
        // axum's own accept logs and retries errors (e.g. out of file descriptors).
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let mut stream = TimeoutStream::new(stream);
        stream.set_read_timeout(Some(self.read_timeout));
        (Box::pin(stream), addr)
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::ApiWrite;
    use axum::body::Body;
    use axum::http::{HeaderMap, Request};
    use hyper_util::rt::TokioIo;
    use tokio::io::AsyncReadExt;

    /// One request over a fresh connection (hyper's client); returns (status, headers, body).
    async fn request(addr: SocketAddr, method: &str, path: &str) -> (u16, HeaderMap, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "test")
            .body(Body::empty())
            .unwrap();
        let response = sender.send_request(req).await.expect("response");
        let (head, body) = response.into_parts();
        let body = axum::body::to_bytes(Body::new(body), 1 << 20)
            .await
            .expect("body");
        let body = String::from_utf8(body.to_vec()).expect("UTF-8 body");
        (head.status.as_u16(), head.headers, body)
    }

    fn header<'h>(headers: &'h HeaderMap, name: &str) -> &'h str {
        headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    struct Running {
        addr: SocketAddr,
        ready: watch::Sender<bool>,
        stop: tokio::sync::oneshot::Sender<()>,
        task: tokio::task::JoinHandle<()>,
    }

    async fn start_with(metrics: Arc<Metrics>, read_timeout: Duration) -> Running {
        let mut server = HttpServer::bind("127.0.0.1:0".parse().unwrap())
            .await
            .expect("bind");
        server.read_timeout = read_timeout;
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

    async fn start(metrics: Arc<Metrics>) -> Running {
        start_with(metrics, READ_TIMEOUT).await
    }

    #[tokio::test]
    async fn serves_metrics_in_openmetrics_text() {
        let metrics = Arc::new(Metrics::new());
        metrics.count_write(ApiWrite::Job);
        let server = start(metrics.clone()).await;

        let (status, headers, body) = request(server.addr, "GET", "/metrics").await;
        assert_eq!(status, 200);
        assert_eq!(header(&headers, "content-type"), OPENMETRICS);
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

        let (status, headers, body) = request(server.addr, "GET", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, "ok\n"));
        assert_eq!(header(&headers, "content-type"), TEXT);
        let (status, _, body) = request(server.addr, "GET", "/readyz").await;
        assert_eq!(status, 503);
        assert!(
            body.contains("not ready: the controller is starting"),
            "{body}"
        );

        server.ready.send_replace(true);
        let (status, _, body) = request(server.addr, "GET", "/readyz").await;
        assert_eq!((status, body.as_str()), (200, "ready\n"));
        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);

        server.ready.send_replace(false);
        assert_eq!(request(server.addr, "GET", "/readyz").await.0, 503);
    }

    #[tokio::test]
    async fn unknown_paths_and_methods_are_refused() {
        let server = start(Arc::new(Metrics::new())).await;
        for path in ["/", "/metricsx", "/metrics/"] {
            let (status, _, body) = request(server.addr, "GET", path).await;
            assert_eq!(status, 404, "{path}");
            assert!(body.contains("try /metrics, /healthz or /readyz"), "{body}");
        }
        let (status, headers, body) = request(server.addr, "POST", "/metrics").await;
        assert_eq!((status, body.as_str()), (405, "only GET and HEAD\n"));
        let allow = header(&headers, "allow").to_ascii_lowercase();
        assert!(allow.contains("get") && allow.contains("head"), "{allow}");
        let (status, _, body) = request(server.addr, "HEAD", "/healthz").await;
        assert_eq!((status, body.as_str()), (200, ""));
    }

    #[tokio::test]
    async fn an_idle_connection_is_closed() {
        let server = start_with(Arc::new(Metrics::new()), Duration::from_millis(200)).await;
        let mut idle = TcpStream::connect(server.addr).await.expect("connect");
        let mut buf = [0u8; 64];
        // A hang guard, far above the read timeout.
        let read = tokio::time::timeout(Duration::from_secs(10), idle.read(&mut buf))
            .await
            .expect("the server closes an idle connection");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        // Others are still served.
        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);
    }

    #[tokio::test]
    async fn stops_accepting_after_shutdown_even_with_an_idle_client() {
        let server = start(Arc::new(Metrics::new())).await;
        assert_eq!(request(server.addr, "GET", "/healthz").await.0, 200);
        let _idle = TcpStream::connect(server.addr).await.expect("connect");
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
