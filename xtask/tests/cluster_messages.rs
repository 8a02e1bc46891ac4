//! The messages `cargo xtask tools` / `cluster` give in the situations users hit: no Go, a taken port,
//! `up` twice, and a stale cluster left by a killed run. Each test uses a cluster name of its own.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn xtask() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_xtask"));
    // The shared cluster owns the host's real nodes; xtask/tests/real_nodes.rs tests theirs.
    cmd.env_remove("ROIERGASIAS_K8S_BIN")
        .env_remove("ROIERGASIAS_APISERVER_PORT")
        .env("ROIERGASIAS_REAL_NODES", "0");
    cmd
}

fn run(cmd: &mut Command) -> (Output, String, String) {
    let out = cmd.output().expect("running xtask");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (out, stdout, stderr)
}

#[test]
fn without_go_the_tools_cannot_be_built_and_we_say_so() {
    let cache = tempfile::tempdir().unwrap();
    let empty_path = tempfile::tempdir().unwrap();
    for args in [&["tools"][..], &["cluster", "up"][..]] {
        let (out, _, stderr) = run(xtask()
            .args(args)
            .env("PATH", empty_path.path())
            .env("XDG_CACHE_HOME", cache.path())
            .env("ROIERGASIAS_CLUSTER", "xt-msg-nogo"));
        assert!(!out.status.success(), "{args:?} must fail without go");
        assert!(stderr.contains("no Go toolchain"), "{args:?}: {stderr}");
        assert!(
            stderr.contains("ROIERGASIAS_K8S_BIN"),
            "the way out is named: {stderr}"
        );
    }
}

#[test]
fn a_taken_apiserver_port_is_reported_before_anything_starts() {
    let cache = tempfile::tempdir().unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (out, _, stderr) = run(xtask()
        .args(["cluster", "up"])
        .env("XDG_CACHE_HOME", cache.path())
        .env("ROIERGASIAS_CLUSTER", "xt-msg-port")
        .env("ROIERGASIAS_APISERVER_PORT", port.to_string()));
    assert!(!out.status.success());
    assert!(
        stderr.contains(&format!("port 127.0.0.1:{port}")) && stderr.contains("already in use"),
        "{stderr}"
    );
    assert!(stderr.contains("ROIERGASIAS_APISERVER_PORT"), "{stderr}");
    assert!(
        !cache
            .path()
            .join("roiergasias/kwok/clusters/xt-msg-port")
            .exists(),
        "nothing was created"
    );
}

/// The real tool cache; this test starts a real cluster.
fn require_tools() {
    let (out, stdout, stderr) = run(xtask().args(["tools", "path", "--no-build"]));
    let dir = PathBuf::from(stdout.lines().last().unwrap_or_default());
    assert!(
        out.status.success() && dir.join("kwokctl").is_file(),
        "this test starts a cluster and needs the tools built: run it with `cargo xtask test` ({stderr})"
    );
}

fn pids_of(cluster_dir: &Path) -> Vec<(String, u32)> {
    let mut pids: Vec<(String, u32)> = std::fs::read_dir(cluster_dir.join("pids"))
        .unwrap()
        .flatten()
        .map(|e| {
            let name = e.path().file_stem().unwrap().to_string_lossy().to_string();
            (
                name,
                std::fs::read_to_string(e.path())
                    .unwrap()
                    .trim()
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    pids.sort();
    pids
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn up_twice_reuses_and_a_stale_cluster_is_replaced() {
    require_tools();
    let name = format!("xt-msg-{}", std::process::id());
    let cluster = || {
        let mut cmd = xtask();
        cmd.env("ROIERGASIAS_CLUSTER", &name);
        cmd
    };
    let (out, stdout, stderr) = run(cluster().args(["cluster", "up"]));
    assert!(out.status.success(), "first up failed: {stderr}");
    let kubeconfig = PathBuf::from(stdout.lines().last().unwrap());
    assert!(
        kubeconfig.is_file(),
        "the last line is the kubeconfig: {stdout}"
    );
    let dir = kubeconfig.parent().unwrap().to_path_buf();
    let first = pids_of(&dir);
    assert_eq!(
        first.len(),
        5,
        "etcd, apiserver, controller manager, scheduler, kwok: {first:?}"
    );

    let (out, stdout, stderr) = run(cluster().args(["cluster", "up"]));
    assert!(out.status.success(), "second up failed: {stderr}");
    assert!(
        stderr.contains("already up and healthy: reusing it"),
        "{stderr}"
    );
    assert_eq!(
        stdout.lines().last().map(PathBuf::from),
        Some(kubeconfig.clone())
    );
    assert_eq!(pids_of(&dir), first, "reuse starts nothing new");

    // What a killed run leaves behind: the cluster directory, with etcd and the API server gone.
    let victims: Vec<u32> = first
        .iter()
        .filter(|(n, _)| n == "etcd" || n == "kube-apiserver")
        .map(|p| p.1)
        .collect();
    Command::new("kill")
        .arg("-KILL")
        .args(victims.iter().map(|p| p.to_string()))
        .status()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (_, stdout, _) = run(cluster().args(["cluster", "status"]));
    assert!(stdout.contains("stale"), "{stdout}");

    let (out, stdout, stderr) = run(cluster().args(["cluster", "up"]));
    assert!(
        out.status.success(),
        "up over a stale cluster failed: {stderr}"
    );
    assert!(
        stderr.contains("is stale, left by an earlier run that was killed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("etcd") && stderr.contains("kube-apiserver"),
        "says what was dead: {stderr}"
    );
    assert_eq!(
        stdout.lines().last().map(PathBuf::from),
        Some(kubeconfig.clone())
    );
    for (component, pid) in &first {
        assert!(
            !alive(*pid),
            "{component} (pid {pid}) of the stale cluster is still running"
        );
    }
    let second = pids_of(&dir);

    let (out, _, stderr) = run(cluster().args(["cluster", "down"]));
    assert!(out.status.success(), "down failed: {stderr}");
    for (component, pid) in &second {
        assert!(!alive(*pid), "{component} (pid {pid}) survived `down`");
    }
    assert!(!dir.exists());
    let (out, _, stderr) = run(cluster().args(["cluster", "down"]));
    assert!(
        out.status.success() && stderr.contains("is not running; nothing to do"),
        "{stderr}"
    );
    let (_, stdout, _) = run(cluster().args(["cluster", "status"]));
    assert!(stdout.contains("not created"), "{stdout}");
}
