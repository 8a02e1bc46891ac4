//! Finding and removing everything of the real nodes on the host: processes (kubelets, containerd,
//! shims, containers), mounts, cgroups and bridges. Works from names and paths alone, so it clears
//! the leftovers of a run that was killed as well as a healthy set of nodes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use procfs::process::Process;

use crate::cluster::poll;
use crate::cluster::procs::{Proc, terminate};

/// What belongs to the real nodes.
pub struct Footprint {
    /// Directories whose paths appear in our processes' command lines and under which our mounts are.
    pub roots: Vec<PathBuf>,
    /// Cgroup names (the same in every hierarchy) holding the pods.
    pub cgroups: Vec<String>,
    pub bridges: Vec<String>,
}

impl Footprint {
    /// Processes whose command line names one of our roots (kubelets, containerd, shims).
    pub fn daemons(&self) -> Vec<Proc> {
        crate::cluster::procs::every(|p| {
            p.cmdline().is_ok_and(|args| {
                args.iter()
                    .any(|a| self.roots.iter().any(|r| a.contains(&*r.to_string_lossy())))
            })
        })
    }

    /// Every process in our cgroups: the containers and their children.
    pub fn contained(&self) -> Vec<Proc> {
        let mut found = HashSet::new();
        for dir in self.cgroup_dirs() {
            for entry in dirs(&dir) {
                let Ok(text) = std::fs::read_to_string(entry.join("cgroup.procs")) else {
                    continue;
                };
                found.extend(
                    text.lines()
                        .filter_map(|l| l.trim().parse().ok())
                        .filter_map(Proc::of),
                );
            }
        }
        found.into_iter().collect()
    }

    /// `<hierarchy>/<name>` for each cgroup hierarchy mounted and each of our names that exists there.
    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        hierarchies()
            .iter()
            .flat_map(|h| self.cgroups.iter().map(move |c| h.join(c)))
            .filter(|d| d.is_dir())
            .collect()
    }

    /// Mount points under our roots, deepest first.
    pub fn mounts(&self) -> Vec<PathBuf> {
        let mut found: Vec<PathBuf> = mount_points()
            .into_iter()
            .filter(|m| self.roots.iter().any(|r| m.starts_with(r)))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        found.dedup();
        found
    }

    pub fn live_bridges(&self) -> Vec<String> {
        self.bridges
            .iter()
            .filter(|b| Path::new("/sys/class/net").join(b).exists())
            .cloned()
            .collect()
    }

    /// Stops and removes everything; returns what is left (empty when the host is clean).
    pub fn clear(&self, grace: Duration) -> Vec<String> {
        // Kubelets first, so nothing restarts the containers; then the containers, which are only
        // test pods; then containerd and the shims, whose containers are gone by then.
        let (kubelets, others): (Vec<Proc>, Vec<Proc>) =
            self.daemons().into_iter().partition(|p| is_kubelet(p.pid));
        terminate(&kubelets, grace);
        terminate(&self.contained(), Duration::ZERO);
        terminate(&others, grace);
        for m in self.mounts() {
            let _ = nix::mount::umount2(&m, nix::mount::MntFlags::MNT_DETACH);
        }
        self.remove_cgroups();
        for b in self.live_bridges() {
            let _ = std::process::Command::new("ip")
                .args(["link", "del", &b])
                .status();
        }
        self.left()
    }

    fn remove_cgroups(&self) {
        // A cgroup is busy until its last process has exited: try for a while.
        poll::wait(Duration::from_millis(100), Duration::from_secs(10), || {
            let mut busy = false;
            for dir in self.cgroup_dirs() {
                for d in dirs(&dir) {
                    busy |= std::fs::remove_dir(&d).is_err();
                }
            }
            if busy {
                terminate(&self.contained(), Duration::ZERO);
            }
            !busy
        });
    }

    /// What is still there, one line each.
    pub fn left(&self) -> Vec<String> {
        let mut left: Vec<String> = self
            .daemons()
            .iter()
            .chain(self.contained().iter())
            .map(|p| format!("process {}", p.pid))
            .collect();
        left.extend(
            self.mounts()
                .iter()
                .map(|m| format!("mount {}", m.display())),
        );
        left.extend(
            self.cgroup_dirs()
                .iter()
                .map(|c| format!("cgroup {}", c.display())),
        );
        left.extend(self.live_bridges().iter().map(|b| format!("bridge {b}")));
        left
    }
}

fn is_kubelet(pid: i32) -> bool {
    Process::new(pid)
        .and_then(|p| p.exe())
        .is_ok_and(|exe| exe.file_name().is_some_and(|n| n == "kubelet"))
}

/// The mount points of every cgroup hierarchy (v1 controllers, and the unified one if mounted).
pub fn hierarchies() -> Vec<PathBuf> {
    let Ok(mounts) = Process::myself().and_then(|p| p.mountinfo()) else {
        return Vec::new();
    };
    mounts
        .into_iter()
        .filter(|m| m.fs_type == "cgroup" || m.fs_type == "cgroup2")
        .map(|m| m.mount_point)
        .collect()
}

fn mount_points() -> Vec<PathBuf> {
    Process::myself()
        .and_then(|p| p.mountinfo())
        .map(|m| m.into_iter().map(|m| m.mount_point).collect())
        .unwrap_or_default()
}

/// `dir` and every directory below it, children before their parents (the order to remove them in).
fn dirs(dir: &Path) -> impl Iterator<Item = PathBuf> {
    walkdir::WalkDir::new(dir)
        .contents_first(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_dir())
        .map(walkdir::DirEntry::into_path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_naming_a_root_is_found_and_stopped() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("marker");
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30; true", &marker.display().to_string()])
            .spawn()
            .unwrap();
        let footprint = Footprint {
            roots: vec![dir.path().to_path_buf()],
            cgroups: vec![],
            bridges: vec![],
        };
        // Until the child has exec'd, its command line is still ours; and until sh's own child
        // has exec'd `sleep`, that one's is sh's, naming the root too.
        let pid = child.id() as i32;
        let found = poll::until(Duration::from_millis(20), Duration::from_secs(10), || {
            let found = footprint.daemons();
            if found.iter().map(|p| p.pid).eq([pid]) {
                Ok(found)
            } else {
                Err(found)
            }
        });
        let found = found.unwrap_or_else(|f| panic!("found {f:?}, not just {pid}"));
        terminate(&found, Duration::from_secs(5));
        let _ = child.wait();
        assert!(footprint.daemons().is_empty());
        assert!(footprint.left().is_empty());
    }

    #[test]
    fn dirs_lists_children_before_parents_and_only_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("a/b")).unwrap();
        std::fs::write(dir.path().join("a/file"), "").unwrap();
        let all: Vec<PathBuf> = dirs(dir.path()).collect();
        let pos = |p: &str| all.iter().position(|d| d.ends_with(p)).unwrap();
        assert!(pos("a/b") < pos("a"));
        assert_eq!(all.last().map(PathBuf::as_path), Some(dir.path()));
        assert_eq!(all.len(), 3, "{all:?}");
    }
}
