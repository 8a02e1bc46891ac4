//! The real nodes' life cycle on this host: `down` leaves the host as `up` found it, and a run killed at
//! any moment (during `up`, or with real pods running) is cleared by the next `up`.
//!
//! These tests own the host's real nodes, so the shared test cluster must not run its own meanwhile:
//! `cargo xtask test` runs them after it has stopped that cluster (they are ignored otherwise).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const CLUSTER: &str = "xt-real-life";

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    cmd.env("ROIERGASIAS_CLUSTER", CLUSTER)
        .env_remove("ROIERGASIAS_REAL_NODES")
        .env_remove("ROIERGASIAS_APISERVER_PORT");
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out: Output = cmd.output().expect("running xtask");
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The error is stderr's last line; it comes first, so a shortened report still shows it.
    let last = stderr.lines().last().unwrap_or("");
    assert!(
        out.status.success(),
        "{last}\n{cmd:?} failed; its stderr:\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// What real nodes may change on the host, as text, so a difference reads plainly.
fn host_snapshot() -> BTreeMap<&'static str, String> {
    let mut snap = BTreeMap::new();
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let mut mounts: Vec<&str> = mounts
        .lines()
        .map(|l| l.split(' ').nth(1).unwrap_or(""))
        .collect();
    mounts.sort();
    snap.insert("mounts", mounts.join("\n"));
    let mut links: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    links.sort();
    snap.insert("links", links.join("\n"));
    let mut cgroups = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for c in std::fs::read_dir(h.path()).into_iter().flatten().flatten() {
            if c.file_type().is_ok_and(|t| t.is_dir()) {
                cgroups.push(c.path().display().to_string());
            }
        }
    }
    cgroups.sort();
    snap.insert("cgroups", cgroups.join("\n"));
    let sysctls: Vec<String> = [
        "vm/overcommit_memory",
        "kernel/panic",
        "kernel/panic_on_oops",
        "net/ipv4/ip_forward",
    ]
    .iter()
    .map(|s| {
        format!(
            "{s}={}",
            std::fs::read_to_string(format!("/proc/sys/{s}"))
                .unwrap()
                .trim()
        )
    })
    .collect();
    snap.insert("sysctls", sysctls.join("\n"));
    let paths: Vec<String> = [
        "/var/lib/kubelet",
        "/var/log/containers",
        "/var/log/pods",
        "/var/lib/cni",
        "/run/containerd",
        "/run/netns",
        "/run/roiergasias",
    ]
    .iter()
    .map(|p| format!("{p}: {}", std::path::Path::new(p).exists()))
    .collect();
    snap.insert("host paths", paths.join("\n"));
    snap.insert("processes", ours().join("\n"));
    // kube-proxy's: every table's own chains and rules (an emptied table may stay listed).
    let saved = Command::new("iptables-save")
        .output()
        .expect("iptables-save");
    let mut table = String::new();
    let mut rules = Vec::new();
    for line in String::from_utf8_lossy(&saved.stdout).lines() {
        if let Some(name) = line.strip_prefix('*') {
            table = name.to_string();
        } else if line.starts_with("-A ") || (line.starts_with(':') && line.contains(" - ")) {
            rules.push(format!(
                "{table}: {}",
                line.split(" [").next().unwrap_or(line)
            ));
        }
    }
    snap.insert("iptables", rules.join("\n"));
    snap
}

/// Processes of real nodes: kubelets, containerd and shims name our directories.
fn ours() -> Vec<String> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("/run/roiergasias") || cmdline.contains("real-nodes/nodes") {
            found.push(cmdline);
        }
    }
    found.sort();
    found
}

fn assert_same_host(before: &BTreeMap<&str, String>, when: &str) {
    let after = host_snapshot();
    for (what, was) in before {
        assert_eq!(&after[what], was, "{when}: the host's {what} changed");
    }
}

fn kubectl(kubeconfig: &str) -> Command {
    let out = run_ok(xtask().args(["tools", "path", "--no-build"]));
    let bin = PathBuf::from(out.lines().last().unwrap());
    let mut cmd = Command::new(bin.join("kubectl"));
    cmd.arg("--kubeconfig").arg(kubeconfig);
    cmd
}

fn up() -> String {
    run_ok(xtask().args(["cluster", "up"]))
        .lines()
        .last()
        .unwrap()
        .to_string()
}

/// A pod sleeping on real-node1, Running.
fn start_real_pod(kubeconfig: &str) {
    let pod = r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "sleeper"},
        "spec": {"nodeSelector": {"type": "real"}, "restartPolicy": "Never",
                 "containers": [{"name": "s", "image": "roiergasias:0.2.0", "command": ["sleep", "600"]}]}}"#;
    let mut apply = kubectl(kubeconfig);
    apply.args(["apply", "-f", "-"]).stdin(Stdio::piped());
    let mut child = apply.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), pod.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());
    run_ok(kubectl(kubeconfig).args([
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "--timeout=120s",
    ]));
}

/// Everything of the cluster and its nodes dies at once, as when a machine's session ends.
fn kill_everything() {
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let pid: i32 = e.file_name().to_string_lossy().parse().unwrap_or(0);
        let container = std::fs::read_to_string(e.path().join("cgroup"))
            .is_ok_and(|c| c.contains("/roiergasias-node"));
        if pid > 1
            && (cmdline.contains("/run/roiergasias")
                || cmdline.contains("real-nodes/nodes")
                || cmdline.contains(CLUSTER)
                || container)
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
#[ignore = "owns the host's real nodes: `cargo xtask test` runs it after the shared cluster is down"]
fn down_restores_the_host_and_a_killed_run_is_cleared_by_the_next_up() {
    // A run of this test killed earlier (a machine's session ended) left the host changed:
    // `down` restores it, so the snapshot is of the host as it was before any real node.
    run_ok(xtask().args(["cluster", "down"]));
    let before = host_snapshot();

    // Killed during `up`, once the kubelets have started.
    let log = tempfile::NamedTempFile::new().unwrap();
    let mut starting = xtask()
        .args(["cluster", "up"])
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !ours().iter().any(|p| p.contains("kubelet")) {
        if Instant::now() >= deadline {
            // Nothing of this run may outlive it, a failed one included.
            let _ = starting.kill();
            let _ = starting.wait();
            kill_everything();
            let _ = xtask().args(["cluster", "down"]).output();
            let said = std::fs::read_to_string(log.path()).unwrap_or_default();
            let tail: Vec<&str> = said.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "no kubelet started within 300 s; `cluster up` said last:\n{}",
                tail.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    starting.kill().unwrap();
    starting.wait().unwrap();
    kill_everything();

    // Killed with a real pod running.
    let kubeconfig = up();
    start_real_pod(&kubeconfig);
    kill_everything();

    let kubeconfig = up();
    run_ok(kubectl(&kubeconfig).args([
        "wait",
        "--for=condition=Ready",
        "node/real-node1",
        "node/real-node2",
        "--timeout=60s",
    ]));
    run_ok(xtask().args(["cluster", "down"]));
    assert_same_host(&before, "after up, kills, up again and down");
}
