//! What real nodes change on the host, and how it is put back: sysctls the kubelet and CNI set, host
//! paths the kubelet creates whatever its root dir, and the leftovers of a run that was killed.
//!
//! The state is saved before anything changes, and kept until `down` has restored it, so a run
//! killed at any moment leaves what the next `up` needs to restore the host as the first `up` found it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// The sysctls the kubelet (overcommit, panic) and the bridge plugin (forwarding) set.
pub const SYSCTLS: &[&str] = &[
    "vm.overcommit_memory",
    "kernel.panic",
    "kernel.panic_on_oops",
    "net.ipv4.ip_forward",
];

/// Paths the kubelet, containerd and libcni create on the host although told to use ours.
pub const HOST_PATHS: &[&str] = &[
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/containerd",
    "/run/netns",
    "/etc/cni",
    "/opt/cni",
];

/// The host as the first `up` found it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// The cluster whose real nodes these are.
    pub owner: String,
    pub sysctls: BTreeMap<String, String>,
    /// Host paths that did not exist, so `down` removes them again.
    pub absent_paths: Vec<String>,
    /// kube-proxy's chains the host had already (a Kubernetes node's own), which `down` leaves.
    #[serde(default)]
    pub iptables_chains: Vec<String>,
}

impl HostState {
    /// Reads the host as it is now.
    pub fn capture(owner: &str) -> HostState {
        let sysctls = SYSCTLS
            .iter()
            .filter_map(|name| Some((name.to_string(), read_sysctl(name)?)))
            .collect();
        let absent_paths = HOST_PATHS
            .iter()
            .filter(|p| !Path::new(p).exists())
            .map(|p| p.to_string())
            .collect();
        HostState {
            owner: owner.to_string(),
            sysctls,
            absent_paths,
            iptables_chains: super::proxy::chains_left(),
        }
    }

    pub fn load(file: &Path) -> anyhow::Result<Option<HostState>> {
        match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .with_context(|| format!("{} is not a saved host state", file.display()))
                .map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).with_context(|| format!("reading {}", file.display())),
        }
    }

    /// Written through a temporary file, so a kill mid-write never leaves half a state.
    pub fn save(&self, file: &Path) -> anyhow::Result<()> {
        let tmp = file.with_extension("json.tmp");
        std::fs::create_dir_all(file.parent().expect("has a parent"))?;
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, file).with_context(|| format!("writing {}", file.display()))
    }

    /// Puts the sysctls back and removes the host paths that were not there; returns what failed.
    pub fn restore(&self) -> Vec<String> {
        let mut failed = Vec::new();
        for (name, value) in &self.sysctls {
            if read_sysctl(name).as_deref() != Some(value.as_str())
                && let Err(e) = write_sysctl(name, value)
            {
                failed.push(format!("sysctl {name}={value}: {e}"));
            }
        }
        for path in &self.absent_paths {
            let p = PathBuf::from(path);
            if p.exists()
                && let Err(e) = std::fs::remove_dir_all(&p)
            {
                failed.push(format!("removing {path}: {e}"));
            }
        }
        failed
    }
}

fn sysctl_path(name: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(name.replace('.', "/"))
}

pub fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(sysctl_path(name))
        .ok()
        .map(|v| v.trim().to_string())
}

fn write_sysctl(name: &str, value: &str) -> std::io::Result<()> {
    std::fs::write(sysctl_path(name), value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_saved_state_reads_back_the_same() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/host.json");
        let state = HostState::capture("roiergasias");
        assert!(
            state.sysctls.contains_key("vm.overcommit_memory"),
            "{state:?}"
        );
        state.save(&file).unwrap();
        assert_eq!(HostState::load(&file).unwrap(), Some(state));
        assert_eq!(
            HostState::load(&dir.path().join("none.json")).unwrap(),
            None
        );
    }

    #[test]
    fn a_corrupt_state_is_an_error_not_a_fresh_start() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("host.json");
        std::fs::write(&file, "{\"owner\": 1").unwrap();
        let err = HostState::load(&file).unwrap_err().to_string();
        assert!(err.contains("not a saved host state"), "{err}");
    }

    #[test]
    fn only_paths_that_were_absent_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let made = dir.path().join("made-by-kubelet");
        std::fs::create_dir_all(made.join("device-plugins")).unwrap();
        let state = HostState {
            owner: "x".into(),
            sysctls: BTreeMap::new(),
            absent_paths: vec![made.display().to_string()],
            iptables_chains: Vec::new(),
        };
        assert!(state.restore().is_empty());
        assert!(!made.exists());
        assert!(dir.path().exists(), "only the recorded path goes");
    }
}
