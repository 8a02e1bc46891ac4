//! Faults of a real node (`cargo xtask cluster kubelet-restart|node-stop|node-start NODE`): its
//! kubelet restarted as it was started, or its kubelet and containerd stopped for good (the node
//! lost) and later started again as they were. The processes are found as `cluster status`
//! finds them (by executable name and the node's directory in their command line); how they were
//! started is read from /proc (command line, working directory, environment, log file), and kept
//! in the cluster's directory while the node is stopped.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procfs::process::Process;
use serde::{Deserialize, Serialize};

use super::poll;
use super::procs::{Proc, terminate};
use super::real::{NODES, RealNodes};

/// How a process was started: enough to start it again the same way.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Launch {
    args: Vec<String>,
    cwd: PathBuf,
    env: BTreeMap<String, String>,
    /// Where its output went (its stdout), when that was a file.
    log: Option<PathBuf>,
}

impl Launch {
    pub(crate) fn of(pid: i32) -> anyhow::Result<Launch> {
        let p = Process::new(pid).with_context(|| format!("reading /proc/{pid}"))?;
        let args = p.cmdline().context("its command line")?;
        if args.is_empty() {
            bail!("process {pid} has an empty command line");
        }
        let env = p.environ().context("its environment")?;
        let env = env
            .into_iter()
            .map(|(k, v)| (k.to_string_lossy().into(), v.to_string_lossy().into()))
            .collect();
        let log = std::fs::read_link(format!("/proc/{pid}/fd/1"))
            .ok()
            .filter(|l| l.is_absolute() && l.is_file());
        let cwd = p.cwd().context("its working directory")?;
        Ok(Launch {
            args,
            cwd,
            env,
            log,
        })
    }

    /// Starts it again, in a process group of its own, its output appended to its log.
    pub(crate) fn spawn(&self) -> anyhow::Result<u32> {
        let (program, args) = self.args.split_first().context("a command line")?;
        let output = match &self.log {
            Some(log) => {
                let file = OpenOptions::new().create(true).append(true).open(log)?;
                (Stdio::from(file.try_clone()?), Stdio::from(file))
            }
            None => (Stdio::null(), Stdio::null()),
        };
        let child = Command::new(program)
            .args(args)
            .current_dir(&self.cwd)
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(output.0)
            .stderr(output.1)
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting {program}"))?;
        Ok(child.id())
    }
}

/// `node` (real-node1 or real-node2), checked.
fn known(node: &str) -> anyhow::Result<&'static str> {
    let found = NODES.iter().find(|(n, l)| *n == node || *l == node);
    let names: Vec<&str> = NODES.iter().map(|(n, _)| *n).collect();
    found
        .map(|(n, _)| *n)
        .with_context(|| format!("no real node {node:?}; the real nodes are {names:?}"))
}

/// The pid of `node`'s `exe` (kubelet or containerd).
fn pid_of(nodes: &RealNodes, node: &str, exe: &str) -> anyhow::Result<i32> {
    let wanted = format!("{node} {exe}");
    let found = nodes.processes().into_iter().find(|(n, _, _)| *n == wanted);
    found
        .map(|(_, pid, _)| pid)
        .with_context(|| format!("{node} has no {exe} running"))
}

fn stop(pid: i32, what: &str, kill_it: bool) -> anyhow::Result<()> {
    // Taken first: a killed process is gone at once.
    let proc = Proc::of(pid).with_context(|| format!("{what} exited meanwhile"))?;
    if kill_it {
        kill(Pid::from_raw(pid), Signal::SIGKILL).with_context(|| format!("killing {what}"))?;
    }
    if !terminate(&[proc], Duration::from_secs(10)).is_empty() {
        bail!("{what} (pid {pid}) did not exit");
    }
    Ok(())
}

/// Where a stopped node's launches are kept, in the cluster's directory.
fn saved(dir: &Path, node: &str) -> PathBuf {
    dir.join("stopped-nodes").join(format!("{node}.json"))
}

/// Restarts `node`'s kubelet (SIGTERM, as a service manager does) as it was started; returns its
/// new pid.
pub fn restart_kubelet(nodes: &RealNodes, node: &str) -> anyhow::Result<u32> {
    let node = known(node)?;
    let pid = pid_of(nodes, node, "kubelet")?;
    let launch = Launch::of(pid)?;
    stop(pid, &format!("{node}'s kubelet"), false)?;
    launch.spawn()
}

/// Loses `node`: its kubelet and containerd killed (SIGKILL, as a node that loses power; the
/// pods' processes are left, unreachable), how they were started kept for [`start_node`].
pub fn stop_node(dir: &Path, nodes: &RealNodes, node: &str) -> anyhow::Result<()> {
    let node = known(node)?;
    let kubelet = pid_of(nodes, node, "kubelet")?;
    let containerd = pid_of(nodes, node, "containerd")?;
    let launches = [Launch::of(containerd)?, Launch::of(kubelet)?];
    let file = saved(dir, node);
    std::fs::create_dir_all(file.parent().expect("a parent"))?;
    std::fs::write(&file, serde_json::to_vec_pretty(&launches)?)
        .with_context(|| format!("writing {}", file.display()))?;
    stop(kubelet, &format!("{node}'s kubelet"), true)?;
    stop(containerd, &format!("{node}'s containerd"), true)
}

/// Starts a node [`stop_node`] stopped: containerd, once its socket answers the kubelet, then
/// the kubelet; waits (up to `within`) until the node reports Ready after that.
pub fn start_node(
    dir: &Path,
    node: &str,
    ready: impl Fn(Instant) -> bool,
    within: Duration,
) -> anyhow::Result<()> {
    let node = known(node)?;
    let file = saved(dir, node);
    let text = std::fs::read(&file)
        .with_context(|| format!("{node} was not stopped by `node-stop` ({})", file.display()))?;
    let [containerd, kubelet]: [Launch; 2] = serde_json::from_slice(&text)?;
    let started = Instant::now();
    containerd.spawn()?;
    let socket = socket_of(&kubelet).context("the kubelet's containerRuntimeEndpoint")?;
    let answers = || std::os::unix::net::UnixStream::connect(&socket).is_ok();
    if !poll::wait(Duration::from_millis(100), within, answers) {
        bail!(
            "{node}'s containerd does not answer on {}",
            socket.display()
        );
    }
    kubelet.spawn()?;
    std::fs::remove_file(&file)?;
    if !poll::wait(Duration::from_millis(500), within, || ready(started)) {
        bail!("{node} did not report Ready within {within:?} of starting again");
    }
    Ok(())
}

/// The containerd socket the kubelet's config file names.
fn socket_of(kubelet: &Launch) -> anyhow::Result<PathBuf> {
    let config = kubelet
        .args
        .iter()
        .find_map(|a| a.strip_prefix("--config="))
        .context("the kubelet has no --config")?;
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(config)?)?;
    let endpoint = config["containerRuntimeEndpoint"]
        .as_str()
        .context("no containerRuntimeEndpoint")?;
    Ok(PathBuf::from(
        endpoint.strip_prefix("unix://").unwrap_or(endpoint),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_launch_read_from_proc_starts_the_same_process_again() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("out.log");
        let file = std::fs::File::create(&log).unwrap();
        let mut first = Command::new("sleep")
            .arg("300")
            .current_dir(dir.path())
            .env("MARK", "kept")
            .stdout(file)
            .spawn()
            .unwrap();
        let launch = started(first.id() as i32, |l| l.env.contains_key("MARK"));
        let _ = first.kill();
        let _ = first.wait();
        assert_eq!(launch.args, ["sleep", "300"]);
        assert_eq!(launch.log.as_deref(), Some(log.as_path()));
        let again = launch.spawn().unwrap() as i32;
        let relaunched = started(again, |l| *l == launch);
        let _ = kill(Pid::from_raw(again), Signal::SIGKILL);
        assert_eq!(
            relaunched, launch,
            "same command, directory, environment and log"
        );
        assert_eq!(launch.env.get("MARK").map(String::as_str), Some("kept"));
    }

    /// The process's launch once `ready` holds of it: a child just spawned may still be in
    /// exec, its command line and environment not yet set up (empty in /proc).
    fn started(pid: i32, ready: impl Fn(&Launch) -> bool) -> Launch {
        let probe = || match Launch::of(pid) {
            Ok(l) if ready(&l) => Ok(l),
            Ok(l) => Err(format!("not yet as expected: {l:?}")),
            Err(e) => Err(format!("{e:#}")),
        };
        poll::until(Duration::from_millis(10), Duration::from_secs(10), probe).unwrap()
    }

    #[test]
    fn only_the_real_nodes_are_known() {
        assert_eq!(known("node1").unwrap(), "real-node1");
        assert_eq!(known("real-node2").unwrap(), "real-node2");
        let err = known("kwok-node1").unwrap_err().to_string();
        assert!(err.contains("the real nodes are"), "{err}");
    }

    #[test]
    fn the_kubelet_names_its_containerd_socket_in_its_config() {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config.json");
        let endpoint = r#"{"containerRuntimeEndpoint": "unix:///run/x/containerd.sock"}"#;
        std::fs::write(&config, endpoint).unwrap();
        let kubelet = Launch {
            args: vec!["kubelet".into(), format!("--config={}", config.display())],
            cwd: dir.path().into(),
            env: BTreeMap::new(),
            log: None,
        };
        assert_eq!(
            socket_of(&kubelet).unwrap(),
            Path::new("/run/x/containerd.sock")
        );
    }
}
