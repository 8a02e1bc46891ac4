//! `cargo xtask cluster up|down|status`: a throwaway Kubernetes control plane with kwok as the kubelet.

mod config;
mod cut;
mod fault;
mod node_fault;
mod nodes;
pub(crate) mod poll;
pub(crate) mod procs;
pub mod real;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::{progress, tools};

/// Picks the cluster; tests and experiments use their own name so they never disturb the shared one.
pub const NAME_ENV: &str = "ROIERGASIAS_CLUSTER";
pub const DEFAULT_NAME: &str = "roiergasias";
/// Optional fixed port for kube-apiserver (default: kwokctl picks a free one).
pub const PORT_ENV: &str = "ROIERGASIAS_APISERVER_PORT";

const CREATE_TIMEOUT: &str = "120s";

#[derive(Subcommand)]
pub enum ClusterCommand {
    /// Start (or reuse) the test cluster; prints the kubeconfig path last.
    Up {
        /// Only kwok's fake nodes: no kubelets, containerd or bridges (also ROIERGASIAS_REAL_NODES=0).
        #[arg(long)]
        no_real_nodes: bool,
    },
    /// Delete the cluster and every process it started.
    Down,
    /// Say what is running.
    Status,
    /// Fault: stop a component (SIGSTOP) for a while, then continue it.
    Pause {
        /// kube-apiserver, etcd, kube-controller-manager, kube-scheduler or kwok-controller.
        component: String,
        #[arg(long, default_value_t = 6)]
        seconds: u64,
    },
    /// Fault: restart a component as it was started, and wait until the API server is ready.
    Restart {
        /// kube-apiserver, etcd, kube-controller-manager, kube-scheduler or kwok-controller.
        component: String,
    },
    /// Fault tool: a TCP proxy to the API server that `cut NAME` partitions; prints the path of a
    /// kubeconfig through it, and runs until interrupted.
    Proxy {
        /// The proxy's name (letters, digits, '-', '_').
        name: String,
    },
    /// Fault: cut proxy NAME (connections hang, established ones go silent and are reset once
    /// healed).
    Cut {
        name: String,
        /// Heal it again after this many seconds (default: stay cut until `heal NAME`).
        #[arg(long)]
        seconds: Option<u64>,
    },
    /// Heal proxy NAME.
    Heal { name: String },
    /// Fault: restart a real node's kubelet as it was started; waits until it reports again.
    KubeletRestart {
        /// real-node1 or real-node2 (or node1, node2).
        node: String,
    },
    /// Fault: lose a real node: kill its kubelet and containerd (kept for `node-start`).
    NodeStop { node: String },
    /// Start a real node `node-stop` stopped (containerd, then the kubelet); waits until Ready.
    NodeStart { node: String },
}

pub fn run(command: ClusterCommand) -> anyhow::Result<()> {
    let cluster = Cluster::from_env()?;
    match command {
        ClusterCommand::Up { no_real_nodes } => {
            let kubeconfig = cluster
                .up(!no_real_nodes && real::wanted_by_env())?
                .kubeconfig;
            println!("{}", kubeconfig.display());
        }
        ClusterCommand::Down => cluster.down()?,
        ClusterCommand::Status => cluster.status()?,
        ClusterCommand::Pause { component, seconds } => {
            fault::pause(&cluster.dir(), &component, Duration::from_secs(seconds))?;
            println!("{component} was paused for {seconds} s");
        }
        ClusterCommand::Restart { component } => {
            let started = std::time::Instant::now();
            let pid = fault::restart(&cluster.dir(), &component)?;
            if !cluster.wait_ready(&crate::tools::bin_dir()?, Duration::from_secs(120)) {
                bail!(
                    "{component} restarted (pid {pid}), but the API server is not ready after 120 s"
                );
            }
            let took = crate::progress::human(started.elapsed());
            println!("{component} restarted (pid {pid}); the API server was ready again in {took}");
        }
        ClusterCommand::Proxy { name } => cut::serve(&cluster.dir(), &cluster.kubeconfig(), &name)?,
        ClusterCommand::Cut { name, seconds } => {
            cut::signal_proxy(&cluster.dir(), &name, true)?;
            println!("proxy {name} cut");
            if let Some(seconds) = seconds {
                std::thread::sleep(Duration::from_secs(seconds));
                cut::signal_proxy(&cluster.dir(), &name, false)?;
                println!("proxy {name} healed after {seconds} s");
            }
        }
        ClusterCommand::Heal { name } => {
            cut::signal_proxy(&cluster.dir(), &name, false)?;
            println!("proxy {name} healed");
        }
        ClusterCommand::KubeletRestart { node } => {
            let since = k8s_openapi::jiff::Timestamp::now();
            let started = Instant::now();
            let pid = node_fault::restart_kubelet(&cluster.real_nodes()?, &node)?;
            let bin = tools::bin_dir()?;
            let reported = || cluster.node_reported(&bin, &node, since);
            if !poll::wait(
                Duration::from_millis(500),
                Duration::from_secs(120),
                reported,
            ) {
                bail!("{node}'s kubelet restarted (pid {pid}) but has not reported Ready since");
            }
            let took = progress::human(started.elapsed());
            println!("{node}'s kubelet restarted (pid {pid}); the node reported Ready in {took}");
        }
        ClusterCommand::NodeStop { node } => {
            node_fault::stop_node(&cluster.dir(), &cluster.real_nodes()?, &node)?;
            println!(
                "{node} lost: its kubelet and containerd were killed; `node-start {node}` brings it back"
            );
        }
        ClusterCommand::NodeStart { node } => {
            let since = k8s_openapi::jiff::Timestamp::now();
            let started = Instant::now();
            let bin = tools::bin_dir()?;
            let ready = |_: Instant| cluster.node_reported(&bin, &node, since);
            node_fault::start_node(&cluster.dir(), &node, ready, Duration::from_secs(180))?;
            let took = progress::human(started.elapsed());
            println!("{node} started again; Ready in {took}");
        }
    }
    Ok(())
}

/// What `up` did, so `cargo xtask test` only tears down what it started.
pub struct Up {
    pub kubeconfig: PathBuf,
    pub reused: bool,
    /// Why there are no real nodes, when there are none.
    pub no_real_nodes: Option<String>,
}

pub struct Cluster {
    pub name: String,
    /// kwokctl's work directory (`KWOK_WORKDIR`), kept under our cache so we never touch ~/.kwok.
    workdir: PathBuf,
}

/// The state `up` finds a cluster in.
#[derive(Debug, PartialEq)]
enum Found {
    Absent,
    Healthy,
    /// Left by a run that was killed: some processes are gone or the API server does not answer.
    Stale(String),
}

impl Cluster {
    pub fn from_env() -> anyhow::Result<Self> {
        let name = std::env::var(NAME_ENV)
            .ok()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        Self::new(&name)
    }

    pub fn new(name: &str) -> anyhow::Result<Self> {
        validate_name(name)?;
        Ok(Self {
            name: name.to_string(),
            workdir: tools::cache_root()?.join("kwok"),
        })
    }

    fn dir(&self) -> PathBuf {
        self.workdir.join("clusters").join(&self.name)
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig.yaml")
    }

    fn exists(&self) -> bool {
        self.dir().join("kwok.yaml").is_file()
    }

    fn kwokctl(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin.join("kwokctl"));
        cmd.env("KWOK_WORKDIR", &self.workdir)
            .arg("--name")
            .arg(&self.name);
        cmd
    }

    fn kubectl(&self, bin: &Path) -> Command {
        let mut cmd = Command::new(bin.join("kubectl"));
        cmd.arg("--kubeconfig").arg(self.kubeconfig());
        cmd
    }

    fn inspect(&self, bin: &Path) -> Found {
        if !self.exists() {
            return Found::Absent;
        }
        let components = procs::components(&self.dir());
        let dead: Vec<_> = components
            .iter()
            .filter(|c| !c.running)
            .map(|c| c.name.as_str())
            .collect();
        if components.is_empty() {
            return Found::Stale("no process of it is recorded".into());
        }
        if !dead.is_empty() {
            return Found::Stale(format!("not running: {}", dead.join(", ")));
        }
        match output(
            self.kubectl(bin)
                .args(["get", "--raw", "/readyz", "--request-timeout=5s"]),
        ) {
            Ok(o) if o.status.success() => Found::Healthy,
            _ => Found::Stale("its API server does not answer /readyz".into()),
        }
    }

    /// Starts the cluster, or reuses a healthy one; always ends with every fake node Ready, and
    /// with both real nodes Ready when `real_nodes` and the host allows them.
    pub fn up(&self, real_nodes: bool) -> anyhow::Result<Up> {
        let started = Instant::now();
        let bin_guess = tools::bin_dir()?;
        // Real pods (the operator's) reach the API server at the host's address.
        let pods_reach = match real_nodes && real::missing().is_empty() {
            true => Some(real::node_ip()?),
            false => None,
        };
        let found = match self.inspect(&bin_guess) {
            Found::Healthy if pods_reach.is_some_and(|ip| !self.listens_at(ip)) => Found::Stale(
                "it was started without real nodes: its API server listens on loopback only".into(),
            ),
            found => found,
        };
        let reused = found == Found::Healthy;
        match &found {
            Found::Healthy => eprintln!(
                "cluster `{}` is already up and healthy: reusing it (`cargo xtask cluster down` removes it)",
                self.name
            ),
            Found::Stale(why) => {
                eprintln!(
                    "cluster `{}` is stale, left by an earlier run that was killed ({why}): deleting it and starting a fresh one",
                    self.name
                );
                self.delete(&bin_guess)?;
            }
            Found::Absent => {}
        }
        if !reused {
            let port = fixed_port()?;
            if let Some(port) = port {
                check_port_free(port)?;
            }
            let bin = tools::ensure()?;
            self.create(&bin, port, pods_reach)?;
        }
        let bin = tools::bin_dir()?;
        let no_real_nodes = if real_nodes {
            self.ensure_real_nodes(&bin)?
        } else {
            self.stop_own_real_nodes()?;
            Some("not asked for (--no-real-nodes or ROIERGASIAS_REAL_NODES=0)".to_string())
        };
        self.ensure_nodes(&bin, no_real_nodes.is_none())?;
        eprintln!(
            "cluster `{}` is up ({}, {} MiB resident); kubeconfig:",
            self.name,
            progress::human(started.elapsed()),
            self.rss_kib() / 1024
        );
        Ok(Up {
            kubeconfig: self.kubeconfig(),
            reused,
            no_real_nodes,
        })
    }

    /// Whether real node `node` (or `nodeN`) is Ready with a heartbeat at or after `since`, and
    /// without the taints of a node that is not ready or unreachable.
    fn node_reported(&self, bin: &Path, node: &str, since: k8s_openapi::jiff::Timestamp) -> bool {
        let name = match node.starts_with("real-") {
            true => node.to_owned(),
            false => format!("real-{node}"),
        };
        let path = r#"{.status.conditions[?(@.type=="Ready")].status} {.status.conditions[?(@.type=="Ready")].lastHeartbeatTime} {.spec.taints[*].key}"#;
        let out = output(
            self.kubectl(bin)
                .args(["get", "node", &name, "-o"])
                .arg(format!("jsonpath={path}")),
        );
        let Ok(out) = out else { return false };
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let (ready, beat) = (words.next(), words.next());
        let beat: Option<k8s_openapi::jiff::Timestamp> = beat.and_then(|b| b.parse().ok());
        // Heartbeats are in whole seconds.
        let floor = since - k8s_openapi::jiff::SignedDuration::from_secs(1);
        // The node controller lifts the taints of a node it had lost on its next check.
        let lost = [
            "node.kubernetes.io/unreachable",
            "node.kubernetes.io/not-ready",
        ];
        let tainted = words.any(|t| lost.contains(&t));
        ready == Some("True") && beat.is_some_and(|b| b >= floor) && !tainted
    }

    fn real_nodes(&self) -> anyhow::Result<real::RealNodes> {
        Ok(real::RealNodes::new(&tools::cache_root()?))
    }

    /// Starts (or reuses) the real nodes; `Some(reason)` when they cannot run here.
    fn ensure_real_nodes(&self, bin: &Path) -> anyhow::Result<Option<String>> {
        let missing = real::missing();
        if !missing.is_empty() {
            let why = format!("this host lacks {}", missing.join("; "));
            eprintln!("real nodes cannot run: {why}. Starting the kwok-only cluster.");
            return Ok(Some(why));
        }
        let nodes = self.real_nodes()?;
        if let Some(owner) = nodes.owner().filter(|o| o != &self.name)
            && Cluster::new(&owner)?.inspect(bin) == Found::Healthy
        {
            let why = format!("cluster `{owner}` runs this host's real nodes");
            eprintln!("{why}: starting `{}` without real nodes", self.name);
            return Ok(Some(why));
        }
        if nodes.owner().as_deref() == Some(&self.name) && nodes.running() {
            eprintln!("real nodes are running: reusing them");
        } else {
            if nodes.owner().is_some() || !nodes.footprint().left().is_empty() {
                eprintln!("clearing real nodes left by an earlier run, and restoring the host");
            }
            nodes.stop()?;
            let images = node_images()?;
            let join = real::Join {
                cluster: &self.name,
                pki: self.dir().join("pki"),
                server: self.server()?,
                kubeconfig: self.kubeconfig(),
                kubectl: Box::new(|| self.kubectl(bin)),
            };
            nodes.start(&join, bin, &images)?;
        }
        Ok(None)
    }

    /// Stops the real nodes if this cluster owns them.
    fn stop_own_real_nodes(&self) -> anyhow::Result<()> {
        let nodes = self.real_nodes()?;
        if nodes.owner().as_deref() == Some(&self.name) {
            nodes.stop()?;
        }
        Ok(())
    }

    /// The API server's URL, from the kubeconfig kwokctl wrote.
    fn server(&self) -> anyhow::Result<String> {
        let path = self.kubeconfig();
        let cfg = kube::config::Kubeconfig::read_from(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        cfg.clusters
            .into_iter()
            .find_map(|c| c.cluster?.server)
            .with_context(|| format!("{} names no server", path.display()))
    }

    /// Whether the API server answers at `ip` (beyond loopback), on the kubeconfig's port.
    fn listens_at(&self, ip: std::net::Ipv4Addr) -> bool {
        let port = self
            .server()
            .ok()
            .and_then(|url| url.rsplit(':').next()?.trim_end_matches('/').parse().ok());
        port.is_some_and(|port: u16| {
            std::net::TcpStream::connect_timeout(&(ip, port).into(), Duration::from_secs(2)).is_ok()
        })
    }

    fn create(
        &self,
        bin: &Path,
        port: Option<u16>,
        pods_reach: Option<std::net::Ipv4Addr>,
    ) -> anyhow::Result<()> {
        let stages = tools::default_stages()?;
        std::fs::create_dir_all(&self.workdir)?;
        let config_path = self.workdir.join(format!("{}.kwokctl.yaml", self.name));
        let pki = self.dir().join("pki");
        std::fs::write(
            &config_path,
            config::render(bin, &pki, port, pods_reach, &stages),
        )
        .with_context(|| format!("writing {}", config_path.display()))?;
        eprintln!(
            "creating cluster `{}` with kwokctl (binary runtime, loopback only)",
            self.name
        );
        let mut cmd = self.kwokctl(bin);
        cmd.args(["create", "cluster", "--runtime", "binary", "--config"])
            .arg(&config_path)
            // An empty --kubeconfig keeps kwokctl away from ~/.kube/config.
            .args([
                "--kubeconfig",
                "",
                "--wait",
                CREATE_TIMEOUT,
                "--timeout",
                CREATE_TIMEOUT,
            ])
            .stdout(stderr_stdio()?);
        let status = progress::run_with_ticker(&mut cmd, "kwokctl create cluster")?;
        // --wait only logs a timeout; the API server must really answer.
        let ready = status.success() && self.wait_ready(bin, Duration::from_secs(60));
        if !ready {
            let hint = self.bind_failures();
            let _ = self.delete(bin);
            match hint {
                Some(hint) => bail!("cluster `{}` failed to start: {hint}", self.name),
                None => bail!(
                    "cluster `{}` failed to start (kwokctl: {status}); its output is above",
                    self.name
                ),
            }
        }
        Ok(())
    }

    fn wait_ready(&self, bin: &Path, timeout: Duration) -> bool {
        poll::wait(
            Duration::from_millis(500),
            timeout,
            || matches!(output(self.kubectl(bin).args(["get", "--raw", "/readyz", "--request-timeout=5s"])), Ok(o) if o.status.success()),
        )
    }

    /// A component that could not bind its port says so in its log; surface that line.
    fn bind_failures(&self) -> Option<String> {
        let logs = std::fs::read_dir(self.dir().join("logs")).ok()?;
        for entry in logs.flatten() {
            let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.contains("address already in use")) {
                let component = entry
                    .path()
                    .file_stem()
                    .map(|s| s.to_string_lossy().to_string())
                    .unwrap_or_default();
                return Some(format!(
                    "{component} could not listen because a port is already in use by another process ({})",
                    line.trim()
                ));
            }
        }
        None
    }

    fn ensure_nodes(&self, bin: &Path, tainted: bool) -> anyhow::Result<()> {
        let mut apply = self.kubectl(bin);
        apply
            .args(["apply", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(stderr_stdio()?);
        let mut child = apply.spawn().context("starting kubectl apply")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(nodes::all(tainted).as_bytes())?;
        }
        if !child.wait()?.success() {
            bail!("kubectl apply of the fake nodes failed (output above)");
        }
        let wait = output(self.kubectl(bin).args([
            "wait",
            "--for=condition=Ready",
            "node",
            "-l",
            nodes::FAKE_NODE_LABEL,
            "--timeout=60s",
        ]))?;
        if !wait.status.success() {
            bail!(
                "kwok did not make the fake nodes Ready within 60s: {}",
                String::from_utf8_lossy(&wait.stderr).trim()
            );
        }
        // Pods need the namespace's default ServiceAccount, which the controller manager creates shortly after start.
        poll::until(Duration::from_millis(300), Duration::from_secs(60), || {
            let get = output(self.kubectl(bin).args([
                "get",
                "serviceaccount",
                "default",
                "-n",
                "default",
            ]))?;
            if !get.status.success() {
                bail!(
                    "the controller manager did not create the default ServiceAccount within 60s"
                );
            }
            Ok(())
        })
    }

    /// kwokctl's delete, then a sweep for anything it missed.
    fn delete(&self, bin: &Path) -> anyhow::Result<()> {
        // The kubelets first: they would otherwise keep trying an API server that is going away.
        self.stop_own_real_nodes()?;
        let dir = self.dir();
        // Taken before kwokctl stops them: it does not wait for its processes to exit.
        let mut strays = procs::sweep(&dir);
        if bin.join("kwokctl").is_file() && self.exists() {
            let out = output(self.kwokctl(bin).args(["delete", "cluster"]))?;
            if !out.status.success() {
                eprintln!(
                    "kwokctl delete cluster failed, cleaning up by hand: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
        }
        for p in procs::sweep(&dir) {
            if !strays.contains(&p) {
                strays.push(p);
            }
        }
        let left = procs::terminate(&strays, Duration::from_secs(5));
        if !left.is_empty() {
            bail!(
                "could not stop processes {left:?} of cluster `{}`",
                self.name
            );
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        }
        let _ = std::fs::remove_file(self.workdir.join(format!("{}.kwokctl.yaml", self.name)));
        Ok(())
    }

    pub fn down(&self) -> anyhow::Result<()> {
        let dir = self.dir();
        let real_owned = self.real_nodes()?.owner().as_deref() == Some(&self.name);
        if !dir.exists() && procs::sweep(&dir).is_empty() && !real_owned {
            eprintln!("cluster `{}` is not running; nothing to do", self.name);
            return Ok(());
        }
        let started = Instant::now();
        self.delete(&tools::bin_dir()?)?;
        eprintln!(
            "cluster `{}` deleted, all its processes stopped ({})",
            self.name,
            progress::human(started.elapsed())
        );
        Ok(())
    }

    pub fn status(&self) -> anyhow::Result<()> {
        let bin = tools::bin_dir()?;
        let dir = self.dir();
        println!("cluster:    {}", self.name);
        println!("directory:  {}", dir.display());
        match self.inspect(&bin) {
            Found::Absent => {
                println!("state:      not created (`cargo xtask cluster up` starts it)");
                return Ok(());
            }
            Found::Healthy => println!("state:      up and healthy"),
            Found::Stale(why) => {
                println!("state:      stale ({why}); `cargo xtask cluster up` replaces it")
            }
        }
        println!("kubeconfig: {}", self.kubeconfig().display());
        let mut total_kib = 0;
        for c in procs::components(&dir) {
            let rss = c.pid.filter(|_| c.running).and_then(procs::rss_kib);
            total_kib += rss.unwrap_or(0);
            let pid = c.pid.map(|p| p.to_string()).unwrap_or_else(|| "?".into());
            let state = if c.running { "running" } else { "NOT running" };
            let rss = rss
                .map(|k| format!(", {} MiB", k / 1024))
                .unwrap_or_default();
            println!("  {:<24} pid {pid:<8} {state}{rss}", c.name);
        }
        let nodes = self.real_nodes()?;
        if nodes.owner().as_deref() == Some(&self.name) {
            for (what, pid, rss) in nodes.processes() {
                total_kib += rss;
                println!("  {what:<24} pid {pid:<8} running, {} MiB", rss / 1024);
            }
        }
        println!("memory:     {} MiB resident in total", total_kib / 1024);
        if let Ok(o) = output(self.kubectl(&bin).args([
            "get",
            "nodes",
            "-L",
            "node.roiergasias",
            "--request-timeout=5s",
        ])) && o.status.success()
        {
            print!("{}", String::from_utf8_lossy(&o.stdout));
        }
        Ok(())
    }

    /// Resident memory of every process of the cluster, in KiB.
    pub fn rss_kib(&self) -> u64 {
        procs::components(&self.dir())
            .iter()
            .filter(|c| c.running)
            .filter_map(|c| c.pid.and_then(procs::rss_kib))
            .sum()
    }
}

/// The image archives every real node imports, the pause image's name, and the other names each
/// image answers to: the runner, the machine-learning and the operator image also by the names
/// `docker build -t` gives them (`roiergasias:0.2.0` is docker.io/library/roiergasias:0.2.0 to
/// containerd), so the README's manifests and the chart's defaults run unchanged.
fn node_images() -> anyhow::Result<real::NodeImages> {
    use crate::images::{self, Image};
    let built = images::ensure(&Image::ALL)?;
    let docker_name = |name: &str| {
        let short = name.trim_start_matches("localhost/");
        format!("docker.io/library/{short}")
    };
    Ok(real::NodeImages {
        archives: built.iter().map(|a| a.path.clone()).collect(),
        pause: Image::Pause.name(),
        aliases: built
            .iter()
            .filter(|a| a.image != Image::Pause)
            .map(|a| (a.name.clone(), docker_name(&a.name)))
            .collect(),
    })
}

fn validate_name(name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 40
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if !ok {
        bail!(
            "{NAME_ENV}={name:?} is not a valid cluster name: use 1-40 lowercase letters, digits and '-'"
        );
    }
    Ok(())
}

fn fixed_port() -> anyhow::Result<Option<u16>> {
    match std::env::var(PORT_ENV) {
        Ok(v) if !v.is_empty() => match v.parse::<u16>() {
            Ok(p) if p > 0 => Ok(Some(p)),
            _ => bail!("{PORT_ENV}={v:?} is not a port number (1-65535)"),
        },
        _ => Ok(None),
    }
}

/// Fails clearly, before anything starts, when the chosen API server port is taken.
fn check_port_free(port: u16) -> anyhow::Result<()> {
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port 127.0.0.1:{port} ({PORT_ENV}) is already in use by another process: stop it, choose another port, \
             or unset {PORT_ENV} to let a free port be picked"
        ),
        Err(e) => Err(e).with_context(|| format!("checking port 127.0.0.1:{port} ({PORT_ENV})")),
    }
}

fn output(cmd: &mut Command) -> anyhow::Result<Output> {
    cmd.output()
        .with_context(|| format!("running {:?}", cmd.get_program()))
}

/// `docs` as one YAML text of as many documents, for kwokctl and kubectl. Long strings (paths) stay
/// plain scalars rather than folded blocks; strings that YAML 1.1 would read as numbers or booleans
/// are quoted (serde-saphyr's default), as Go's YAML readers need.
fn yaml<T: serde::Serialize>(docs: &[T]) -> String {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_multiple_with_options(docs, options).expect("plain data serializes")
}

/// Child stdout goes to our stderr so that our stdout carries only the kubeconfig path.
fn stderr_stdio() -> anyhow::Result<Stdio> {
    use std::os::fd::AsFd;
    Ok(Stdio::from(std::io::stderr().as_fd().try_clone_to_owned()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_are_checked() {
        assert!(validate_name("roiergasias").is_ok());
        assert!(validate_name("xt-dev-2").is_ok());
        for bad in ["", "Upper", "a/b", "-x", "has space", &"x".repeat(41)] {
            let err = validate_name(bad).unwrap_err().to_string();
            assert!(err.contains(NAME_ENV), "{err}");
        }
    }

    #[test]
    fn a_taken_port_is_reported_with_the_variable_to_change() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let err = check_port_free(port).unwrap_err().to_string();
        assert!(
            err.contains(&format!("127.0.0.1:{port}")) && err.contains("already in use"),
            "{err}"
        );
        assert!(err.contains(PORT_ENV), "{err}");
        drop(listener);
        assert!(check_port_free(port).is_ok());
    }
}
