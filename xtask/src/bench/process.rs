//! The process that drives a bench run (the operator, or the floor), its memory, and its end.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long the floor may take to list the namespace and say `ready`.
const FLOOR_READY: Duration = Duration::from_secs(60);

/// Resident memory now: anonymous (heap, thread stacks) and file-backed (the binary, libraries).
pub(super) struct MemoryNow {
    pub anon_kib: u64,
    pub file_kib: u64,
    pub threads: u64,
    /// Open sockets (its connections to the API server, and its listener).
    pub sockets: usize,
    /// CPU time used so far, user + system.
    pub cpu: Duration,
}

pub(super) struct DriverProcess {
    child: Child,
    /// The floor's stdin: a line starts it, closing it ends it.
    stdin: Option<ChildStdin>,
}

impl DriverProcess {
    pub fn operator(
        binary: &Path,
        kubeconfig: &Path,
        namespace: &str,
        port: u16,
        image: &str,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let child = Command::new(binary)
            .args(["--namespace", namespace])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{port}"))
            .args(["--leader-election=false", "--runner-image", image])
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        Ok(Self { child, stdin: None })
    }

    /// This binary's `bench floor`, once it has said `ready`.
    pub async fn floor(
        kubeconfig: &Path,
        namespace: &str,
        chains: usize,
        image: &str,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let exe = std::env::current_exe().context("finding the xtask binary")?;
        let mut child = Command::new(&exe)
            .args(["bench", "floor", "--namespace", namespace])
            .arg(format!("--chains={chains}"))
            .arg(format!("--runner-image={image}"))
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {} bench floor", exe.display()))?;
        let stdout = child.stdout.take().context("the floor's stdout")?;
        let stdin = child.stdin.take();
        let mut process = Self { child, stdin };
        let ready = tokio::task::spawn_blocking(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            // Keep draining, so the floor's `done` never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            first
        });
        match tokio::time::timeout(FLOOR_READY, ready).await {
            Ok(Ok(Some(Ok(line)))) if line == "ready" => Ok(process),
            other => {
                process.stop();
                bail!(
                    "the floor did not say ready within {FLOOR_READY:?} ({other:?}); see {}",
                    log.display()
                )
            }
        }
    }

    /// Tells the floor to start its chains.
    pub fn go(&mut self) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("not the floor")?;
        stdin
            .write_all(b"go\n")
            .and_then(|()| stdin.flush())
            .context("starting the floor")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// VmHWM: the peak resident set size of the process so far.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let pid = i32::try_from(self.pid()).ok()?;
        procfs::process::Process::new(pid)
            .ok()?
            .status()
            .ok()?
            .vmhwm
    }

    pub fn memory_now(&self) -> Option<MemoryNow> {
        let pid = i32::try_from(self.pid()).ok()?;
        let process = procfs::process::Process::new(pid).ok()?;
        let status = process.status().ok()?;
        let stat = process.stat().ok()?;
        let sockets = process
            .fd()
            .ok()?
            .flatten()
            .filter(|fd| matches!(fd.target, procfs::process::FDTarget::Socket(_)));
        let ticks = procfs::ticks_per_second() as f64;
        Some(MemoryNow {
            anon_kib: status.rssanon?,
            file_kib: status.rssfile?,
            threads: status.threads,
            sockets: sockets.count(),
            cpu: Duration::from_secs_f64((stat.utime + stat.stime) as f64 / ticks),
        })
    }

    /// Closes stdin and sends SIGTERM (graceful shutdown), then SIGKILL if it lingers.
    pub fn stop(&mut self) {
        self.stdin = None;
        if let Ok(pid) = i32::try_from(self.pid()) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.exited().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.stop();
        }
    }
}
