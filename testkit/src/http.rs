//! GET requests to the operator's own HTTP server (health probes, /metrics) on this host, through
//! hyper's client (already in the tree through kube-client): no HTTP written by hand.

use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// A bound on one request, so a server that accepts and never answers cannot hang a wait.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A free TCP port on 127.0.0.1, for an operator's `--metrics-addr`.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on 127.0.0.1")
}

/// `GET http://127.0.0.1:{port}{path}`: the status code and the body as text.
pub async fn get(port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    get_at("127.0.0.1", port, path).await
}

/// `GET http://{host}:{port}{path}` (a Service's address, say): the status code and the body.
pub async fn get_at(host: &str, port: u16, path: &str) -> anyhow::Result<(u16, String)> {
    let uri: hyper::Uri = format!("http://{host}:{port}{path}")
        .parse()
        .with_context(|| format!("{path:?} is not a request path"))?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let response = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let response = client.get(uri.clone()).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
    .await
    .with_context(|| format!("GET {uri}: no answer within {REQUEST_TIMEOUT:?}"))?
    .with_context(|| format!("GET {uri}"))?;
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn get_returns_the_status_and_body_and_fails_on_a_closed_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let n = stream.read(&mut request).await.unwrap();
            let request = String::from_utf8_lossy(&request[..n]).into_owned();
            let body = "not ready\n";
            let answer = format!(
                "HTTP/1.1 503 Service Unavailable\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(answer.as_bytes()).await.unwrap();
            request
        });
        assert_eq!(
            get(port, "/readyz").await.unwrap(),
            (503, "not ready\n".to_owned())
        );
        assert!(
            server
                .await
                .unwrap()
                .starts_with("GET /readyz HTTP/1.1\r\n")
        );

        let closed = free_port();
        let err = get(closed, "/readyz").await.unwrap_err();
        assert!(
            format!("{err:#}").contains(&format!("127.0.0.1:{closed}")),
            "{err:#}"
        );
    }
}
