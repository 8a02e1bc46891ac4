//! Faults injected into the test cluster's own processes (see `controller/tests/cluster/faults.rs`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The pid of the test cluster's `component` (`kube-apiserver`, `etcd`, …), from the pid file
/// kwokctl keeps for the cluster `cargo xtask cluster up` started (`ROIERGASIAS_CLUSTER`).
pub fn component_pid(component: &str) -> Pid {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache")
        });
    let name = std::env::var("ROIERGASIAS_CLUSTER").unwrap_or_else(|_| "roiergasias".into());
    let file = cache.join(format!(
        "roiergasias/kwok/clusters/{name}/pids/{component}.pid"
    ));
    let text = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("the pid of {component}: {}: {e}", file.display()));
    Pid::from_raw(text.trim().parse().expect("a pid"))
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
