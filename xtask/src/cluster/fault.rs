//! Faults injected into a running test cluster, by a person (`cargo xtask cluster pause|restart`)
//! or a fault test (`controller/tests/cluster/faults.rs`): a component paused, or restarted as
//! kwokctl started it (same command line, directory, environment and log file).

use std::fs::OpenOptions;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procfs::process::Process;

use super::procs::{Proc, belongs_to, terminate};

/// The running `component` of the cluster in `dir`, from its pid file.
fn running(dir: &Path, component: &str) -> anyhow::Result<Process> {
    let file = dir.join("pids").join(format!("{component}.pid"));
    let text = std::fs::read_to_string(&file)
        .with_context(|| format!("{component} has no pid file ({})", file.display()))?;
    let pid: i32 = text.trim().parse().context("a pid file holds a pid")?;
    if !belongs_to(pid, dir) {
        bail!("{component} (pid {pid}) is not running");
    }
    Process::new(pid).with_context(|| format!("reading /proc/{pid}"))
}

/// Stops `component` (SIGSTOP: its connections stay open and nothing answers) for `pause`, then
/// continues it.
pub fn pause(dir: &Path, component: &str, pause: Duration) -> anyhow::Result<()> {
    let pid = Pid::from_raw(running(dir, component)?.pid);
    kill(pid, Signal::SIGSTOP).with_context(|| format!("stopping {component}"))?;
    std::thread::sleep(pause);
    kill(pid, Signal::SIGCONT).with_context(|| format!("continuing {component}"))?;
    Ok(())
}

/// Stops `component` (SIGTERM, SIGKILL after 10 s) and starts it again as it was started; returns
/// once the old one has exited and the new one runs. Whether the cluster answers again is for
/// the caller to wait for.
pub fn restart(dir: &Path, component: &str) -> anyhow::Result<u32> {
    let old = running(dir, component)?;
    let args = old.cmdline().context("its command line")?;
    let cwd = old.cwd().context("its working directory")?;
    let env = old.environ().context("its environment")?;
    let Some((program, args)) = args.split_first() else {
        bail!("{component} has an empty command line");
    };
    let proc = Proc::of(old.pid).context("it exited meanwhile")?;
    let left = terminate(&[proc], Duration::from_secs(10));
    if !left.is_empty() {
        bail!("{component} (pid {}) did not exit", old.pid);
    }
    let log = dir.join("logs").join(format!("{component}.log"));
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("opening {}", log.display()))?;
    let child = Command::new(program)
        .args(args)
        .current_dir(cwd)
        .env_clear()
        .envs(env)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        // Its own group, as kwokctl's: a Ctrl-C meant for us does not reach it.
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting {component} again"))?;
    let pid = child.id();
    let file = dir.join("pids").join(format!("{component}.pid"));
    std::fs::write(&file, pid.to_string())
        .with_context(|| format!("writing {}", file.display()))?;
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restarted_component_runs_again_as_it_was_started_and_the_old_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["pids", "logs"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        // A component of this "cluster": its working directory is in it, as kwokctl's are.
        let mut first = Command::new("sleep")
            .arg("300")
            .current_dir(dir.path())
            .env("MARK", "kept")
            .spawn()
            .unwrap();
        let pid_file = dir.path().join("pids/sleeper.pid");
        std::fs::write(&pid_file, first.id().to_string()).unwrap();
        let pid = restart(dir.path(), "sleeper").unwrap();
        assert!(first.try_wait().unwrap().is_some(), "the old one exited");
        assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
        let new = Process::new(pid as i32).unwrap();
        assert_eq!(new.cmdline().unwrap(), ["sleep", "300"]);
        assert_eq!(new.cwd().unwrap(), dir.path());
        let env = new.environ().unwrap();
        assert_eq!(env.get(std::ffi::OsStr::new("MARK")).unwrap(), "kept");
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        let err = restart(dir.path(), "absent").unwrap_err();
        assert!(
            format!("{err:#}").contains("absent has no pid file"),
            "{err:#}"
        );
    }
}
