//! Processes: the pid files of a kwokctl binary-runtime cluster, a /proc sweep for strays (procfs),
//! and stopping them (nix signals). The real nodes' sweep uses the same [`Proc`] and [`terminate`].

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use procfs::process::Process;

use super::poll;

/// One component kwokctl started, from `<cluster>/pids/<component>.pid`.
#[derive(Debug)]
pub struct Component {
    pub name: String,
    pub pid: Option<i32>,
    /// Alive and still one of this cluster's processes (a recycled pid does not count).
    pub running: bool,
}

/// The components recorded in the cluster's pid files.
pub fn components(cluster_dir: &Path) -> Vec<Component> {
    let Ok(entries) = std::fs::read_dir(cluster_dir.join("pids")) else {
        return Vec::new();
    };
    let mut found: Vec<Component> = entries
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            let name = path.file_stem()?.to_str()?.to_string();
            let pid = std::fs::read_to_string(&path)
                .ok()
                .and_then(|t| t.trim().parse().ok());
            let running = pid.is_some_and(|p| belongs_to(p, cluster_dir));
            Some(Component { name, pid, running })
        })
        .collect();
    found.sort_by(|a, b| a.name.cmp(&b.name));
    found
}

/// Whether `pid` is alive and was started for this cluster (its command line or working directory names it).
pub fn belongs_to(pid: i32, cluster_dir: &Path) -> bool {
    let Ok(p) = Process::new(pid) else {
        return false;
    };
    // Gone, or a zombie.
    if !p.stat().is_ok_and(|s| s.state != 'Z') {
        return false;
    }
    let dir = cluster_dir.to_string_lossy();
    p.cmdline()
        .is_ok_and(|args| args.iter().any(|a| a.contains(&*dir)))
        || p.cwd().is_ok_and(|cwd| cwd.starts_with(cluster_dir))
}

/// A process, told apart from a later one that reuses its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Proc {
    pub pid: i32,
    start: u64,
}

impl Proc {
    /// The live process `pid`, zombies excluded.
    pub fn of(pid: i32) -> Option<Proc> {
        let stat = Process::new(pid).ok()?.stat().ok()?;
        (stat.state != 'Z').then_some(Proc {
            pid,
            start: stat.starttime,
        })
    }

    /// Still running, zombies excluded. A process in the middle of exiting has already lost its
    /// command line and working directory, so `belongs_to` no longer sees it, but this does.
    pub fn alive(&self) -> bool {
        Proc::of(self.pid).is_some_and(|p| p == *self)
    }
}

/// Every live process but this one for which `select` holds.
pub fn every(select: impl Fn(&Process) -> bool) -> Vec<Proc> {
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let mut found: Vec<Proc> = all
        .flatten()
        .filter(|p| p.pid != me && select(p))
        .filter_map(|p| Proc::of(p.pid))
        .collect();
    found.sort_unstable_by_key(|p| p.pid);
    found
}

/// `pid` and every live process descended from it.
pub fn tree(pid: i32) -> Vec<Proc> {
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    let parents: std::collections::HashMap<i32, i32> = all
        .flatten()
        .filter_map(|p| Some((p.pid, p.stat().ok()?.ppid)))
        .collect();
    let descends = |mut p: i32| {
        // Bounded: a pid reused while we read could make a loop.
        for _ in 0..parents.len() {
            if p == pid {
                return true;
            }
            match parents.get(&p) {
                Some(&parent) if parent > 0 => p = parent,
                _ => return false,
            }
        }
        false
    };
    every(|p| descends(p.pid))
}

/// Every live process that belongs to the cluster, pid files or not.
pub fn sweep(cluster_dir: &Path) -> Vec<Proc> {
    every(|p| belongs_to(p.pid, cluster_dir))
}

/// SIGTERM and up to `grace` to exit (none when `grace` is zero), then SIGKILL; waits until each
/// has really exited, not just stopped looking like ours. Returns the pids still alive (should be none).
pub fn terminate(procs: &[Proc], grace: Duration) -> Vec<i32> {
    let alive = || {
        procs
            .iter()
            .filter(|p| p.alive())
            .map(|p| p.pid)
            .collect::<Vec<_>>()
    };
    let send = |sig| {
        for pid in alive() {
            // ESRCH: it exited meanwhile, which is what we want.
            let _ = kill(Pid::from_raw(pid), sig);
        }
    };
    let gone = || alive().is_empty();
    let every = Duration::from_millis(50);
    if !grace.is_zero() {
        send(Signal::SIGTERM);
        if poll::wait(every, grace, gone) {
            return Vec::new();
        }
    }
    send(Signal::SIGKILL);
    poll::wait(every, Duration::from_secs(5), gone);
    alive()
}

/// Resident memory of `pid`, in KiB.
pub fn rss_kib(pid: i32) -> Option<u64> {
    Process::new(pid).ok()?.status().ok()?.vmrss
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn a_process_started_in_the_cluster_dir_is_found_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert!(belongs_to(pid, dir.path()));
        let found = sweep(dir.path());
        assert_eq!(found.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![pid]);
        let other = tempfile::tempdir().unwrap();
        assert!(
            !belongs_to(pid, other.path()),
            "a process elsewhere is not ours"
        );
        assert!(rss_kib(pid).is_some_and(|k| k > 0));
        let left = terminate(&found, Duration::from_secs(5));
        assert!(left.is_empty());
        let _ = child.wait();
        assert!(!belongs_to(pid, dir.path()));
        assert!(!found[0].alive());
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_after_the_grace() {
        // `trap '' TERM` makes sh ignore SIGTERM; exec'd `sleep` inherits the ignored disposition.
        let mut child = Command::new("sh")
            .args(["-c", "trap '' TERM; exec sleep 30"])
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        let exec_d = poll::wait(Duration::from_millis(10), Duration::from_secs(10), || {
            Process::new(pid)
                .and_then(|p| p.cmdline())
                .is_ok_and(|a| a.first().is_some_and(|a| a == "sleep"))
        });
        assert!(exec_d, "the child did not exec sleep");
        let proc = Proc::of(pid).unwrap();
        let left = terminate(&[proc], Duration::from_millis(200));
        assert!(left.is_empty(), "still alive: {left:?}");
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(Signal::SIGKILL as i32));
    }

    #[test]
    fn pid_files_report_dead_components() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("pids")).unwrap();
        // Our own pid is alive but not the cluster's: it must not count as running.
        std::fs::write(
            dir.path().join("pids/etcd.pid"),
            std::process::id().to_string(),
        )
        .unwrap();
        std::fs::write(dir.path().join("pids/kube-apiserver.pid"), "garbage").unwrap();
        let found = components(dir.path());
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].name, "etcd");
        assert!(!found[0].running);
        assert_eq!(found[1].pid, None);
        assert!(!found[1].running);
    }
}
