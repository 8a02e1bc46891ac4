//! The operator as a real subprocess against the test cluster (so a test can kill and restart it),
//! its log in a file of its own.

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::wait;

/// The runner image on the real nodes, by the name the chart and the examples use.
pub const RUNNER_IMAGE: &str = concat!("roiergasias:", env!("CARGO_PKG_VERSION"));

/// A runner image no node can pull: on kwok's fake nodes nothing pulls it.
const FAKE_RUNNER: &str = "registry.invalid/roiergasias/runner:test";

/// The operator, run from `bin` (a test's `env!("CARGO_BIN_EXE_roiergasias-operator")`),
/// watching one namespace, without leader election, its metrics on a free port.
pub struct Operator {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Operator {
    pub fn start(bin: &str, namespace: &str) -> Self {
        Self::spawn(bin, namespace, FAKE_RUNNER, &[], &[])
    }

    /// `env` adds variables, e.g. the test-only crash point `ROIERGASIAS_TEST_CRASH_AFTER`.
    pub fn start_with(bin: &str, namespace: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(bin, namespace, FAKE_RUNNER, &[], env)
    }

    /// `args` adds flags, e.g. a policy such as `--job-templates=refuse`.
    pub fn start_with_args(bin: &str, namespace: &str, args: &[&str]) -> Self {
        Self::spawn(bin, namespace, FAKE_RUNNER, args, &[])
    }

    /// For real pods: the runner image `cargo xtask cluster up` imports into the real nodes, as the
    /// chart names it (`roiergasias:0.2.0`, which containerd reads as docker.io/library/…).
    pub fn start_real(bin: &str, namespace: &str, args: &[&str]) -> Self {
        Self::spawn(bin, namespace, RUNNER_IMAGE, args, &[])
    }

    /// [`Operator::start_real`] with variables, e.g. the test-only crash point.
    pub fn start_real_with(bin: &str, namespace: &str, env: &[(&str, &str)]) -> Self {
        Self::spawn(bin, namespace, RUNNER_IMAGE, &[], env)
    }

    /// With leader election on the Lease `lease` in `namespace`, as `identity` (its POD_NAME),
    /// talking to the cluster through `kubeconfig` (e.g. a [`crate::faults::Proxy`]'s).
    pub fn start_electing(
        bin: &str,
        namespace: &str,
        lease: &str,
        identity: &str,
        kubeconfig: &std::path::Path,
    ) -> Self {
        let kubeconfig = kubeconfig.to_str().expect("a UTF-8 kubeconfig path");
        let args = ["--leader-election=true", "--leader-election-lease", lease];
        let namespaced = ["--leader-election-namespace", namespace];
        let env = [("KUBECONFIG", kubeconfig), ("POD_NAME", identity)];
        Self::spawn(
            bin,
            namespace,
            FAKE_RUNNER,
            &[&args[..], &namespaced].concat(),
            &env,
        )
    }

    fn spawn(
        bin: &str,
        namespace: &str,
        runner: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let electing = args.iter().any(|a| a.starts_with("--leader-election="));
        let child = Command::new(bin)
            .args((!electing).then_some("--leader-election=false"))
            .args([
                "--namespace",
                namespace,
                "--metrics-addr",
                "127.0.0.1:0",
                "--runner-image",
                runner,
                "--log-level",
                "info,roiergasias_controller=debug",
            ])
            .args(args)
            .envs(env.iter().copied())
            .stdout(log.reopen().expect("log file"))
            .stderr(log.reopen().expect("log file"))
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {bin}: {e}"));
        Operator { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no graceful anything, like a node dying.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, as Kubernetes sends it to a pod being stopped.
    pub fn terminate(&self) {
        let pid = Pid::from_raw(i32::try_from(self.pid()).expect("a pid fits in i32"));
        kill(pid, Signal::SIGTERM).expect("sending SIGTERM to the operator");
    }

    /// Waits for the process to exit by itself (a crash point, a signal) and returns its exit code.
    pub async fn exited(&mut self, within: Duration) -> Option<i32> {
        let child = &mut self.child;
        let log = self.log.path().to_owned();
        wait::try_until("the operator to exit", within, || {
            let polled = child.try_wait().expect("polling the operator");
            std::future::ready(polled.map(|s| s.code()).ok_or("still running"))
        })
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}; its log:\n{}", read_log(&log)))
    }

    /// Waits until the log holds `text`.
    pub async fn logged(&self, text: &str, within: Duration) {
        let what = format!("the operator to log {text:?}");
        wait::try_until(&what, within, || {
            let found = self.log().contains(text);
            std::future::ready(if found { Ok(()) } else { Err("not yet") })
        })
        .await
        .unwrap_or_else(|timeout| panic!("{timeout}; its log:\n{}", self.log()));
    }

    pub fn log(&self) -> String {
        read_log(self.log.path())
    }
}

fn read_log(path: &std::path::Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
    text
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- roiergasias-operator log ----\n{}", self.log());
        }
    }
}
