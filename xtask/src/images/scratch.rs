//! Scratch directories for root filesystems. debootstrap and chroot mount /proc and /sys inside
//! them, and a killed run leaves those mounts behind: a scratch directory is only ever deleted
//! after everything mounted under it is unmounted, so deleting never reaches into a live /proc.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

pub(crate) struct Dir(PathBuf);

impl Dir {
    /// Clears whatever a killed run left at `path`, then creates it empty.
    pub fn new(path: PathBuf) -> anyhow::Result<Self> {
        remove(&path)?;
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Dir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        if let Err(e) = remove(&self.0) {
            eprintln!("warning: leaving {}: {e:#}", self.0.display());
        }
    }
}

/// Unmounts every mount at or under `path` (deepest first), then deletes it.
pub(crate) fn remove(path: &Path) -> anyhow::Result<()> {
    if path.symlink_metadata().is_err() {
        return Ok(());
    }
    let mounts = mounts_under(&read_mountinfo()?, path);
    for mount in &mounts {
        let c = std::ffi::CString::new(mount.as_os_str().as_encoded_bytes())?;
        // MNT_DETACH: a busy mount is detached now and freed when its last user goes.
        // SAFETY: a valid NUL-terminated path; umount2 reads it only.
        if unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) } != 0 {
            let err = std::io::Error::last_os_error();
            bail!("unmounting {} before deleting it: {err}", mount.display());
        }
    }
    if !mounts_under(&read_mountinfo()?, path).is_empty() {
        bail!(
            "{} still has mounts under it; not deleting it",
            path.display()
        );
    }
    std::fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
}

fn read_mountinfo() -> anyhow::Result<String> {
    std::fs::read_to_string("/proc/self/mountinfo").context("reading /proc/self/mountinfo")
}

/// Mount points at or under `path`, deepest first. Field 5 of each mountinfo line is the mount
/// point, with space, tab, newline and backslash written as octal escapes.
pub(crate) fn mounts_under(mountinfo: &str, path: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(unescape(field)))
        .filter(|point| point.starts_with(path))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found.dedup();
    found
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:5 / /cache/work/base/rootfs/proc rw - proc proc rw
31 22 0:6 / /cache/work/base/rootfs/sys rw - sysfs sysfs rw
32 31 0:7 / /cache/work/base/rootfs/sys/fs/cgroup rw - tmpfs tmpfs rw
33 22 0:8 / /cache/work/base-other/rootfs/proc rw - proc proc rw
34 22 0:9 / /cache/work/base/with\\040space rw - tmpfs tmpfs rw
";

    #[test]
    fn mounts_under_a_path_deepest_first_and_only_there() {
        let found = mounts_under(MOUNTINFO, Path::new("/cache/work/base"));
        let found: Vec<_> = found.iter().map(|p| p.display().to_string()).collect();
        assert_eq!(
            found,
            [
                "/cache/work/base/rootfs/sys/fs/cgroup",
                "/cache/work/base/rootfs/proc",
                "/cache/work/base/rootfs/sys",
                "/cache/work/base/with space",
            ]
        );
    }

    #[test]
    fn scratch_dir_is_emptied_on_creation_and_removed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("work");
        std::fs::create_dir_all(path.join("left/over")).unwrap();
        {
            let scratch = Dir::new(path.clone()).unwrap();
            assert!(std::fs::read_dir(scratch.path()).unwrap().next().is_none());
            std::fs::write(scratch.path().join("f"), "x").unwrap();
        }
        assert!(!path.exists());
    }
}
