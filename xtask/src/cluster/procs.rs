//! The processes of a kwokctl binary-runtime cluster: its pid files, and a /proc sweep for strays.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// One component kwokctl started, from `<cluster>/pids/<component>.pid`.
#[derive(Debug)]
pub struct Component {
    pub name: String,
    pub pid: Option<u32>,
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
pub fn belongs_to(pid: u32, cluster_dir: &Path) -> bool {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let dir = cluster_dir.display().to_string();
    // Gone, or a zombie.
    if stat_fields(pid).is_none_or(|(zombie, _)| zombie) {
        return false;
    }
    let cmdline = std::fs::read(proc.join("cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline);
    if cmdline.contains(&dir) {
        return true;
    }
    std::fs::read_link(proc.join("cwd")).is_ok_and(|cwd| cwd.starts_with(cluster_dir))
}

/// A process, told apart from a later one that reuses its pid by its start time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Proc {
    pub pid: u32,
    start: u64,
}

impl Proc {
    fn of(pid: u32) -> Option<Proc> {
        stat_fields(pid).map(|(_, start)| Proc { pid, start })
    }

    /// Still running, zombies excluded. A process in the middle of exiting has already lost its
    /// command line and working directory, so `belongs_to` no longer sees it, but this does.
    fn alive(&self) -> bool {
        stat_fields(self.pid).is_some_and(|(zombie, start)| !zombie && start == self.start)
    }
}

/// (zombie, start time in clock ticks) from `/proc/<pid>/stat`.
fn stat_fields(pid: u32) -> Option<(bool, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); the start time is field 22.
    Some((fields.first() == Some(&"Z"), fields.get(19)?.parse().ok()?))
}

/// Every live process that belongs to the cluster, pid files or not.
pub fn sweep(cluster_dir: &Path) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let mut found: Vec<Proc> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me && belongs_to(pid, cluster_dir))
        .filter_map(Proc::of)
        .collect();
    found.sort_unstable_by_key(|p| p.pid);
    found
}

/// SIGTERM, then SIGKILL after `grace`; returns the pids still alive after both (should be none).
/// Waits until each process has really exited, not just until it stopped looking like ours.
pub fn kill_all(procs: &[Proc], grace: Duration) -> Vec<u32> {
    let alive = || {
        procs
            .iter()
            .filter(|p| p.alive())
            .map(|p| p.pid)
            .collect::<Vec<_>>()
    };
    signal("-TERM", &alive());
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if alive().is_empty() {
            return Vec::new();
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    signal("-KILL", &alive());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !alive().is_empty() {
        std::thread::sleep(Duration::from_millis(50));
    }
    alive()
}

fn signal(sig: &str, pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg(sig)
        .args(pids.iter().map(|p| p.to_string()))
        .status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_started_in_the_cluster_dir_is_found_and_killed() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
            .unwrap();
        let pid = child.id();
        assert!(belongs_to(pid, dir.path()));
        let found = sweep(dir.path());
        assert_eq!(found.iter().map(|p| p.pid).collect::<Vec<_>>(), vec![pid]);
        let other = tempfile::tempdir().unwrap();
        assert!(
            !belongs_to(pid, other.path()),
            "a process elsewhere is not ours"
        );
        let left = kill_all(&found, Duration::from_secs(5));
        assert!(left.is_empty());
        let _ = child.wait();
        assert!(!belongs_to(pid, dir.path()));
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
