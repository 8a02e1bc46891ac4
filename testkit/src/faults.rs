//! Faults injected into the test cluster's own processes (see `controller/tests/cluster/faults.rs`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait;

/// The directory kwokctl keeps for the cluster `cargo xtask cluster up` started
/// (`ROIERGASIAS_CLUSTER`).
pub fn cluster_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    let name = std::env::var("ROIERGASIAS_CLUSTER").unwrap_or_else(|_| "roiergasias".into());
    cache.join(format!("roiergasias/kwok/clusters/{name}"))
}

fn pid_in(file: &Path, what: &str) -> Pid {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("the pid of {what}: {}: {e}", file.display()));
    Pid::from_raw(text.trim().parse().expect("a pid"))
}

/// The pid of the test cluster's `component` (`kube-apiserver`, `etcd`, …), from the pid file
/// kwokctl keeps for it.
pub fn component_pid(component: &str) -> Pid {
    let file = cluster_dir().join(format!("pids/{component}.pid"));
    pid_in(&file, component)
}

/// Stops `component` for `pause` (SIGSTOP: its connections stay open and nothing answers), then
/// lets it go on; returns the instant it did.
pub async fn pause(component: &str, pause: Duration) -> Instant {
    let pid = component_pid(component);
    kill(pid, Signal::SIGSTOP).unwrap_or_else(|e| panic!("stopping {component}: {e}"));
    // The fault is a stretch of time: there is nothing to wait for but the clock.
    tokio::time::sleep(pause).await;
    kill(pid, Signal::SIGCONT).unwrap_or_else(|e| panic!("continuing {component}: {e}"));
    Instant::now()
}

/// `cargo xtask cluster proxy NAME`: a TCP proxy between one client and the API server, which
/// [`Proxy::cut`] partitions (connections hang; established ones go silent, and are reset once
/// healed) and [`Proxy::heal`] heals. Stopped when dropped.
pub struct Proxy {
    pub name: String,
    /// A kubeconfig for the test cluster through this proxy.
    pub kubeconfig: PathBuf,
    pid_file: PathBuf,
    child: Child,
}

impl Proxy {
    /// Starts proxy `name` and waits until it listens (xtask may need building first).
    pub async fn start(name: &str) -> Self {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let child = Command::new(cargo)
            .args(["xtask", "cluster", "proxy", name])
            .current_dir(crate::cluster::repo())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting cargo xtask cluster proxy");
        let dir = cluster_dir().join("proxies");
        let (pid_file, kubeconfig) = (
            dir.join(format!("{name}.pid")),
            dir.join(format!("{name}.kubeconfig")),
        );
        let what = format!("proxy {name} to listen");
        wait::until(&what, Duration::from_secs(300), || {
            let up = pid_file.is_file() && kubeconfig.is_file();
            std::future::ready(if up { Ok(()) } else { Err("not yet") })
        })
        .await;
        Proxy {
            name: name.to_owned(),
            kubeconfig,
            pid_file,
            child,
        }
    }

    fn signal(&self, signal: Signal) {
        let pid = pid_in(&self.pid_file, &self.name);
        kill(pid, signal).unwrap_or_else(|e| panic!("{signal} to proxy {}: {e}", self.name));
    }

    pub fn cut(&self) {
        self.signal(Signal::SIGUSR1);
    }

    pub fn heal(&self) {
        self.signal(Signal::SIGUSR2);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if self.pid_file.is_file() {
            self.signal(Signal::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
