//! Real nodes beside kwok's fake ones: two kubelets, each with its own containerd, runc from Debian,
//! and a CNI bridge, so pods really run (`kubectl logs`, termination messages, signals, Pod Security).
//!
//! Everything they make lives under two roots, one for files and one for runtime state, plus cgroups
//! and bridges named for them ([`Footprint`]), so `down`, or the next `up` after a killed run, finds
//! and removes all of it and restores what they changed on the host ([`host`]).

mod host;
mod pki;
mod proxy;
mod render;
mod sweep;

use std::ffi::OsStr;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::poll;

pub use host::HostState;
pub use render::NodeLayout;
pub use sweep::Footprint;

/// `0` (or `false`, `no`) asks for the kwok-only cluster, like `cluster up --no-real-nodes`.
pub const ENV: &str = "ROIERGASIAS_REAL_NODES";

/// The real nodes: name and `node.roiergasias` label.
pub const NODES: &[(&str, &str)] = &[("real-node1", "node1"), ("real-node2", "node2")];

/// Marks the real nodes, as `type=kwok` marks the fake ones.
pub const REAL_NODE_LABEL: &str = "type=real";

pub const RUNC: &str = "/usr/sbin/runc";
pub const CNI_BIN: &str = "/usr/lib/cni";
const CNI_PLUGINS: &[&str] = &["bridge", "host-local", "loopback"];

/// Whether the environment lets real nodes start (the command line may still say no).
pub fn wanted_by_env() -> bool {
    !matches!(
        std::env::var(ENV)
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str(),
        "0" | "false" | "no"
    )
}

/// What the host lacks for real nodes, one reason a line; empty when they can run.
pub fn missing() -> Vec<String> {
    let mut missing = Vec::new();
    if !nix::unistd::geteuid().is_root() {
        missing.push(
            "root: kubelets and containerd run as root (run as root, or pass --no-real-nodes)"
                .into(),
        );
    }
    if sweep::hierarchies().is_empty() {
        missing.push("cgroups: no cgroup hierarchy is mounted under /sys/fs/cgroup".into());
    }
    if !Path::new(RUNC).is_file() {
        missing.push(format!("runc: {RUNC} (Debian package runc)"));
    }
    for p in CNI_PLUGINS {
        if !Path::new(CNI_BIN).join(p).is_file() {
            missing.push(format!(
                "CNI plugin {CNI_BIN}/{p} (Debian package containernetworking-plugins)"
            ));
        }
    }
    for (tool, package) in [
        ("ip", "iproute2"),
        ("openssl", "openssl"),
        ("iptables-save", "iptables"),
        ("iptables-restore", "iptables"),
    ] {
        if !on_path(tool) {
            missing.push(format!("{tool} (Debian package {package})"));
        }
    }
    missing.extend(too_little_disk());
    missing
}

/// Each node unpacks every image into its own containerd store: a nearly full disk would fail
/// half-way through an import, with containerd's message far from the cause.
const MIN_FREE_BYTES: u64 = 5 << 30;

fn too_little_disk() -> Option<String> {
    let root = crate::tools::cache_root().ok()?;
    let stat = nix::sys::statvfs::statvfs(&root).ok()?;
    let free = stat.blocks_available() as u64 * stat.fragment_size() as u64;
    (free < MIN_FREE_BYTES).then(|| {
        format!(
            "disk space: {} MiB free under {}, the real nodes' images need {} MiB",
            free >> 20,
            root.display(),
            MIN_FREE_BYTES >> 20
        )
    })
}

fn on_path(tool: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(tool).is_file()))
}

/// The images every node imports before its kubelet starts.
pub struct NodeImages {
    pub archives: Vec<PathBuf>,
    /// The sandbox image (pinned: never garbage-collected).
    pub pause: String,
    /// (name, alias): another name for an imported image.
    pub aliases: Vec<(String, String)>,
}

/// What the real nodes need from the cluster they join.
pub struct Join<'a> {
    pub cluster: &'a str,
    pub pki: PathBuf,
    pub server: String,
    /// The admin's kubeconfig (kube-proxy reads Services and EndpointSlices with it).
    pub kubeconfig: PathBuf,
    pub kubectl: Box<dyn Fn() -> Command + Sync + 'a>,
}

/// The real nodes' files and runtime state on this host.
pub struct RealNodes {
    root: PathBuf,
    run: PathBuf,
}

impl RealNodes {
    pub fn new(cache_root: &Path) -> RealNodes {
        RealNodes {
            root: cache_root.join("real-nodes"),
            run: PathBuf::from("/run/roiergasias"),
        }
    }

    fn state_file(&self) -> PathBuf {
        self.root.join("host.json")
    }

    fn nodes_dir(&self) -> PathBuf {
        self.root.join("nodes")
    }

    pub fn footprint(&self) -> Footprint {
        Footprint {
            roots: vec![self.nodes_dir(), self.run.clone()],
            cgroups: NODES.iter().map(|(_, l)| cgroup_root(l)).collect(),
            bridges: NODES.iter().map(|(_, l)| bridge(l)).collect(),
        }
    }

    /// The cluster whose real nodes are (or were, before a kill) on this host.
    pub fn owner(&self) -> Option<String> {
        HostState::load(&self.state_file())
            .ok()
            .flatten()
            .map(|s| s.owner)
    }

    fn proxy_dir(&self) -> PathBuf {
        self.nodes_dir().join("kube-proxy")
    }

    /// Every node's kubelet and containerd is running, and the host's kube-proxy.
    pub fn running(&self) -> bool {
        let daemons = self.footprint().daemons();
        let count = |name: &str| {
            daemons
                .iter()
                .filter(|p| exe_name(p.pid).as_deref() == Some(name))
                .count()
        };
        count("kubelet") == NODES.len()
            && count("containerd") == NODES.len()
            && count("kube-proxy") == 1
    }

    /// Stops everything of the real nodes and restores the host; also clears a killed run's leftovers.
    pub fn stop(&self) -> anyhow::Result<()> {
        let state = HostState::load(&self.state_file())?;
        let footprint = self.footprint();
        let left = footprint.clear(Duration::from_secs(10));
        // Its chains outlive it; those the host had before `up` stay.
        let kept = state.as_ref().map(|s| s.iptables_chains.clone());
        proxy::clean(&crate::tools::bin_dir()?, &kept.unwrap_or_default())?;
        if !left.is_empty() {
            bail!("could not remove the real nodes' {}", left.join(", "));
        }
        for dir in [&self.nodes_dir(), &self.run] {
            if dir.exists() {
                std::fs::remove_dir_all(dir)
                    .with_context(|| format!("removing {}", dir.display()))?;
            }
        }
        if let Some(state) = state {
            let failed = state.restore();
            if !failed.is_empty() {
                bail!("could not restore the host: {}", failed.join("; "));
            }
            std::fs::remove_file(self.state_file())?;
        }
        Ok(())
    }

    /// Starts both nodes for `join`, their images imported, and waits until they are Ready.
    pub fn start(&self, join: &Join, bin: &Path, images: &NodeImages) -> anyhow::Result<()> {
        let started = Instant::now();
        if HostState::load(&self.state_file())?.is_none() {
            HostState::capture(join.cluster).save(&self.state_file())?;
        }
        let ip = node_ip()?;
        let layouts: Vec<NodeLayout> = NODES
            .iter()
            .enumerate()
            .map(|(i, (name, label))| self.layout(i, name, label, ip, &images.pause))
            .collect::<anyhow::Result<_>>()?;
        std::thread::scope(|s| {
            let handles: Vec<_> = layouts
                .iter()
                .map(|node| s.spawn(|| start_node(node, join, bin, images)))
                .collect();
            handles
                .into_iter()
                .try_for_each(|h| h.join().expect("a node start-up thread panicked"))
        })?;
        wait_ready(join, Duration::from_secs(120))?;
        self.start_proxy(join, bin)?;
        eprintln!(
            "real nodes {} Ready ({})",
            NODES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
            crate::progress::human(started.elapsed())
        );
        Ok(())
    }

    /// kube-proxy, named for its config under our root so `down` finds it; returns once the
    /// `kubernetes` Service is routed.
    fn start_proxy(&self, join: &Join, bin: &Path) -> anyhow::Result<()> {
        let dir = self.proxy_dir();
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("config.yaml");
        let text = proxy::config(
            &join.kubeconfig,
            NODES[0].0,
            free_port(Ipv4Addr::LOCALHOST)?,
            free_port(Ipv4Addr::LOCALHOST)?,
        );
        std::fs::write(&config, text)?;
        let log = dir.join("kube-proxy.log");
        spawn_daemon(
            Command::new(bin.join("kube-proxy"))
                .arg("--config")
                .arg(&config),
            &log,
        )?;
        proxy::wait_synced(Duration::from_secs(60))
            .with_context(|| format!("see {}", log.display()))
    }

    fn layout(
        &self,
        i: usize,
        name: &str,
        label: &str,
        ip: Ipv4Addr,
        pause: &str,
    ) -> anyhow::Result<NodeLayout> {
        Ok(NodeLayout {
            name: name.to_string(),
            label: label.to_string(),
            data: self.nodes_dir().join(label),
            run: self.run.join(label),
            cgroup_root: cgroup_root(label),
            bridge: bridge(label),
            subnet: format!("10.244.{}.0/24", i + 1),
            node_ip: ip,
            kubelet_port: free_port(ip)?,
            healthz_port: free_port(Ipv4Addr::LOCALHOST)?,
            pause_image: pause.to_string(),
        })
    }

    /// Resident memory of each real node's processes, for `cluster status`.
    pub fn processes(&self) -> Vec<(String, i32, u64)> {
        self.footprint()
            .daemons()
            .iter()
            .filter_map(|p| {
                let proc = procfs::process::Process::new(p.pid).ok()?;
                let rss = proc.status().ok()?.vmrss.unwrap_or(0);
                let exe = exe_name(p.pid)?;
                let node = proc.cmdline().ok()?.iter().find_map(|a| {
                    NODES
                        .iter()
                        .find(|(_, l)| a.contains(&format!("/{l}/")))
                        .map(|(n, _)| *n)
                })?;
                Some((format!("{node} {exe}"), p.pid, rss))
            })
            .collect()
    }
}

fn cgroup_root(label: &str) -> String {
    format!("roiergasias-{label}")
}

fn bridge(label: &str) -> String {
    format!("rgs-{label}")
}

fn exe_name(pid: i32) -> Option<String> {
    let exe = procfs::process::Process::new(pid).ok()?.exe().ok()?;
    Some(exe.file_name()?.to_string_lossy().into_owned())
}

fn start_node(
    node: &NodeLayout,
    join: &Join,
    bin: &Path,
    images: &NodeImages,
) -> anyhow::Result<()> {
    write_configs(node, join)?;
    make_cgroup_root(&node.cgroup_root)?;
    let logs = node.data.join("logs");
    std::fs::create_dir_all(&logs)?;
    std::fs::create_dir_all(&node.run)?;
    // containerd finds its shim on PATH.
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut containerd = Command::new(bin.join("containerd"));
    containerd
        .arg("--config")
        .arg(node.containerd_config())
        .env("PATH", &path);
    spawn_daemon(&mut containerd, &logs.join("containerd.log"))?;
    wait_for(&node.socket(), Duration::from_secs(30)).with_context(|| {
        format!(
            "containerd of {} did not open its socket; see {}",
            node.name,
            logs.display()
        )
    })?;
    for image in &images.archives {
        ctr(
            bin,
            node,
            &[
                OsStr::new("images"),
                OsStr::new("import"),
                image.as_os_str(),
            ],
        )?;
    }
    for (name, alias) in &images.aliases {
        ctr(
            bin,
            node,
            &[
                OsStr::new("images"),
                OsStr::new("tag"),
                OsStr::new("--force"),
                OsStr::new(name),
                OsStr::new(alias),
            ],
        )?;
    }
    let labels = format!("node.roiergasias={},{REAL_NODE_LABEL}", node.label);
    let mut kubelet = Command::new(bin.join("kubelet"));
    kubelet
        .args(render::kubelet_args(node, &labels))
        .env("PATH", &path);
    spawn_daemon(&mut kubelet, &logs.join("kubelet.log"))
}

fn write_configs(node: &NodeLayout, join: &Join) -> anyhow::Result<()> {
    let ca = join.pki.join("ca.crt");
    for dir in [
        node.cni_dir(),
        node.kubelet_dir(),
        node.data.join("containerd"),
    ] {
        std::fs::create_dir_all(&dir)?;
    }
    std::fs::write(
        node.containerd_config(),
        render::containerd_config(node, RUNC, CNI_BIN),
    )?;
    std::fs::write(
        node.cni_dir().join("10-roiergasias.conflist"),
        render::cni_conflist(node),
    )?;
    std::fs::write(node.kubelet_config(), render::kubelet_config(node, &ca))?;
    std::fs::write(
        node.kubelet_kubeconfig(),
        render::kubelet_kubeconfig(node, &join.server, &ca),
    )?;
    pki::ensure_node_cert(&node.pki_dir(), &node.name, &ca, &join.pki.join("ca.key"))
}

/// The kubelet refuses a cgroup root missing from any v1 hierarchy; cpuset needs its cpus and mems.
fn make_cgroup_root(name: &str) -> anyhow::Result<()> {
    for h in sweep::hierarchies() {
        let dir = h.join(name);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating cgroup {}", dir.display()))?;
        for file in ["cpuset.cpus", "cpuset.mems"] {
            if h.join(file).is_file() && !h.join("cgroup.controllers").exists() {
                let value = std::fs::read_to_string(h.join(file))?;
                std::fs::write(dir.join(file), value.trim())
                    .with_context(|| format!("writing {}/{file}", dir.display()))?;
            }
        }
    }
    Ok(())
}

/// Started in its own process group, so a Ctrl-C meant for us does not reach it; `down` stops it.
fn spawn_daemon(cmd: &mut Command, log: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .process_group(0);
    cmd.spawn()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    Ok(())
}

fn ctr(bin: &Path, node: &NodeLayout, args: &[&OsStr]) -> anyhow::Result<()> {
    let out = Command::new(bin.join("ctr"))
        .arg("--address")
        .arg(node.socket())
        .args(["--namespace", "k8s.io"])
        .args(args)
        .output()
        .context("running ctr")?;
    if !out.status.success() {
        bail!(
            "`ctr {}` on {} failed: {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            node.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn wait_for(path: &Path, within: Duration) -> anyhow::Result<()> {
    poll::until(Duration::from_millis(50), within, || {
        if !path.exists() {
            bail!("{} did not appear within {within:?}", path.display());
        }
        Ok(())
    })
}

fn wait_ready(join: &Join, within: Duration) -> anyhow::Result<()> {
    let names: Vec<&str> = NODES.iter().map(|(n, _)| *n).collect();
    // `kubectl wait` fails at once on a node that has not registered yet.
    poll::until(Duration::from_millis(250), within, || {
        let out = (join.kubectl)()
            .args(["get", "nodes", "-o", "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}"])
            .output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        let ready = names
            .iter()
            .all(|n| text.lines().any(|l| l == format!("{n}=True")));
        if !ready {
            bail!(
                "the real nodes did not become Ready within {within:?}; nodes: {}",
                text.trim()
            );
        }
        Ok(())
    })
}

/// The machine's own address: a node IP cannot be loopback (pods could not reach it).
pub fn node_ip() -> anyhow::Result<Ipv4Addr> {
    let out = Command::new("ip")
        .args(["-j", "-4", "addr", "show", "scope", "global"])
        .output()?;
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("reading `ip -j addr`")?;
    let ours = ["rgs-"];
    links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| {
            !ours
                .iter()
                .any(|p| l["ifname"].as_str().unwrap_or("").starts_with(p))
        })
        .flat_map(|l| l["addr_info"].as_array().cloned().unwrap_or_default())
        .find_map(|a| a["local"].as_str()?.parse().ok())
        .context("this machine has no global IPv4 address for the real nodes")
}

fn free_port(ip: Ipv4Addr) -> anyhow::Result<u16> {
    Ok(TcpListener::bind((ip, 0))?.local_addr()?.port())
}
