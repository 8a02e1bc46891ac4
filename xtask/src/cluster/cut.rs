//! A network partition between one client (an operator) and the API server: a TCP proxy, named,
//! that a kubeconfig of its own points at (`cargo xtask cluster proxy NAME`), cut and healed by
//! signals (`cargo xtask cluster cut|heal NAME`, or a test sending them itself).
//!
//! Cut, it behaves as a partition does, not as a refusal: a new connection is taken in and then
//! hears nothing (as if its packets were lost) until the cut heals; an established one goes
//! silent both ways, and once the cut heals it is reset, as after a partition that outlasted its
//! TCP timeouts. Nothing sent into a cut reaches the API server later.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use kube::config::Kubeconfig;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

/// Whether the link is cut now, and how many cuts there have been (so a connection knows it was
/// cut even when the cut healed before it looked).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Link {
    cut: bool,
    cuts: u64,
}

/// Where proxy `name` of the cluster in `dir` keeps its pid and its kubeconfig.
pub(crate) fn files(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let base = dir.join("proxies");
    (
        base.join(format!("{name}.pid")),
        base.join(format!("{name}.kubeconfig")),
    )
}

/// Checks a proxy name: it becomes a file name.
fn validate(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !ok {
        bail!("proxy name {name:?}: use 1 to 63 letters, digits, '-' or '_'");
    }
    Ok(())
}

/// Runs proxy `name` in front of the API server `kubeconfig` names, until SIGTERM or Ctrl-C;
/// SIGUSR1 cuts it, SIGUSR2 heals it. Writes a kubeconfig that goes through it.
pub fn serve(dir: &Path, kubeconfig: &Path, name: &str) -> anyhow::Result<()> {
    validate(name)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (upstream, mut config) = upstream_of(kubeconfig)?;
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        point_at(&mut config, port);
        let (pid_file, proxied) = files(dir, name);
        std::fs::create_dir_all(pid_file.parent().expect("a parent"))?;
        std::fs::write(&proxied, serde_json::to_vec_pretty(&config)?)
            .with_context(|| format!("writing {}", proxied.display()))?;
        std::fs::write(&pid_file, std::process::id().to_string())?;
        println!(
            "proxy {name}: 127.0.0.1:{port} -> {upstream}; `cargo xtask cluster cut {name}` cuts it"
        );
        println!("{}", proxied.display());
        let result = relay_until_stopped(listener, upstream).await;
        let _ = std::fs::remove_file(&pid_file);
        let _ = std::fs::remove_file(&proxied);
        result
    })
}

/// The API server's `host:port` from `kubeconfig`'s current context, and the config itself.
fn upstream_of(kubeconfig: &Path) -> anyhow::Result<(String, Kubeconfig)> {
    let config = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let server = config
        .clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .with_context(|| format!("{} names no server", kubeconfig.display()))?;
    let uri: http::Uri = server
        .parse()
        .with_context(|| format!("server {server:?}"))?;
    let authority = uri.authority().context("the server URL has no host")?;
    let port = authority.port_u16().unwrap_or(443);
    Ok((format!("{}:{port}", authority.host()), config))
}

/// Points every cluster of `config` at the proxy; the API server's certificate names 127.0.0.1.
fn point_at(config: &mut Kubeconfig, port: u16) {
    for cluster in config
        .clusters
        .iter_mut()
        .filter_map(|c| c.cluster.as_mut())
    {
        cluster.server = Some(format!("https://127.0.0.1:{port}"));
    }
}

async fn relay_until_stopped(listener: TcpListener, upstream: String) -> anyhow::Result<()> {
    let (link, watched) = watch::channel(Link::default());
    let (mut cut, mut heal) = (
        signal(SignalKind::user_defined1())?,
        signal(SignalKind::user_defined2())?,
    );
    let mut term = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (client, _) = accepted?;
                tokio::spawn(relay(client, upstream.clone(), watched.clone()));
            }
            _ = cut.recv() => {
                link.send_modify(|l| if !l.cut { l.cut = true; l.cuts += 1 });
                println!("cut");
            }
            _ = heal.recv() => {
                link.send_modify(|l| l.cut = false);
                println!("healed");
            }
            _ = term.recv() => return Ok(()),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

/// Relays one connection both ways until either side closes it or a cut ends it.
async fn relay(mut client: TcpStream, upstream: String, mut link: watch::Receiver<Link>) {
    // A connection made during a cut hears nothing until it heals, as if its SYNs were lost.
    let Ok(healed) = link.wait_for(|l| !l.cut).await.map(|l| l.cuts) else {
        return;
    };
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    let (mut from_client, mut to_client) = client.split();
    let (mut from_server, mut to_server) = server.split();
    let (mut up, mut down) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
    loop {
        tokio::select! {
            // A cut first: nothing read after it goes through.
            biased;
            changed = link.changed() => {
                if changed.is_err() || link.borrow().cuts == healed {
                    continue;
                }
                // Cut: nothing more goes through either way; once healed, it is reset.
                let _ = link.wait_for(|l| !l.cut).await;
                break;
            }
            read = from_client.read(&mut up) => match read {
                Ok(n) if n > 0 && to_server.write_all(&up[..n]).await.is_ok() => {}
                _ => return,
            },
            read = from_server.read(&mut down) => match read {
                Ok(n) if n > 0 && to_client.write_all(&down[..n]).await.is_ok() => {}
                _ => return,
            },
        }
    }
    for stream in [&client, &server] {
        let _ = stream.set_zero_linger();
    }
}

/// Cuts (`cut`) or heals proxy `name` of the cluster in `dir`.
pub fn signal_proxy(dir: &Path, name: &str, cut: bool) -> anyhow::Result<()> {
    validate(name)?;
    let (pid_file, _) = files(dir, name);
    let text = std::fs::read_to_string(&pid_file).with_context(|| {
        format!(
            "no proxy {name} ({}): start it with `cargo xtask cluster proxy {name}`",
            pid_file.display()
        )
    })?;
    let pid: i32 = text.trim().parse().context("a pid file holds a pid")?;
    let signal = if cut {
        Signal::SIGUSR1
    } else {
        Signal::SIGUSR2
    };
    kill(Pid::from_raw(pid), signal).with_context(|| format!("proxy {name} (pid {pid})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// An echo server, a relay in front of it, and the link's sender.
    async fn echo_through_relay() -> (std::net::SocketAddr, watch::Sender<Link>) {
        let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let upstream = echo.local_addr().unwrap().to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = echo.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        let proxy = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = proxy.local_addr().unwrap();
        let (link, watched) = watch::channel(Link::default());
        tokio::spawn(async move {
            while let Ok((c, _)) = proxy.accept().await {
                tokio::spawn(relay(c, upstream.clone(), watched.clone()));
            }
        });
        (addr, link)
    }

    async fn echoed(stream: &mut TcpStream, within: Duration) -> std::io::Result<Option<String>> {
        stream.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(within, stream.read_exact(&mut buf)).await {
            Ok(read) => read.map(|_| Some(String::from_utf8_lossy(&buf).into_owned())),
            Err(_) => Ok(None),
        }
    }

    #[tokio::test]
    async fn a_cut_silences_connections_old_and_new_and_resets_the_old_ones_when_healed() {
        let (addr, link) = echo_through_relay().await;
        let mut old = TcpStream::connect(addr).await.unwrap();
        let long = Duration::from_secs(5);
        assert_eq!(
            echoed(&mut old, long).await.unwrap().as_deref(),
            Some("ping")
        );

        link.send_modify(|l| (l.cut, l.cuts) = (true, l.cuts + 1));
        let short = Duration::from_millis(300);
        assert_eq!(
            echoed(&mut old, short).await.unwrap(),
            None,
            "silent, not refused"
        );
        let mut new = TcpStream::connect(addr)
            .await
            .expect("taken in, not refused");
        assert_eq!(echoed(&mut new, short).await.unwrap(), None, "silent");

        link.send_modify(|l| l.cut = false);
        // The connection made during the cut goes through; what it sent was held, not lost.
        let mut buf = [0u8; 4];
        tokio::time::timeout(long, new.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"ping");
        // The one established before the cut was reset: it reads its end, or an error.
        let started = Instant::now();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(long, old.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the old connection ends within {long:?}");
        assert!(started.elapsed() < long);
        assert!(
            rest.is_empty(),
            "nothing sent into the cut came back: {rest:?}"
        );
    }

    #[test]
    fn proxy_names_become_file_names_only_when_safe() {
        assert!(validate("op-a").is_ok());
        for bad in ["", "../x", "a b", &"x".repeat(64)] {
            let err = validate(bad).unwrap_err().to_string();
            assert!(err.contains("proxy name"), "{err}");
        }
    }
}
