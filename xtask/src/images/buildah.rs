//! buildah, with storage of its own under the image cache, so it never touches the host's
//! `/var/lib/containers`, and with settings that leave the host as they found it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::oci;

/// The label holding an image's cache key, so a stored image is known to match its inputs.
pub(crate) const KEY_LABEL: &str = "org.roiergasias.images.key";

/// containers/image keeps root's blob-info cache here whatever the storage root (buildah 1.28 has
/// no option for it); it is removed after use when that cache is all the directory holds (no
/// podman or buildah storage of the host's own), whoever made it.
const SYSTEM_CONTAINERS_DIR: &str = "/var/lib/containers";

pub(crate) struct Buildah {
    root: PathBuf,
    runroot: PathBuf,
    tmp: PathBuf,
    /// Our containers.conf: CNI configuration under the cache, not in /etc/cni.
    conf: PathBuf,
}

/// One `buildah build`.
pub(crate) struct Build<'a> {
    pub dockerfile: &'a Path,
    pub context: &'a Path,
    pub tag: &'a str,
    pub key: &'a str,
    pub args: Vec<(&'a str, String)>,
    /// Named build contexts (`--build-context name=dir`): a name that is also a stage replaces it.
    pub contexts: Vec<(&'a str, PathBuf)>,
}

impl Buildah {
    pub fn new(cache: &Path) -> anyhow::Result<Self> {
        check_version()?;
        let dir = cache.join("buildah");
        let buildah = Buildah {
            root: dir.join("storage"),
            runroot: dir.join("run"),
            tmp: dir.join("tmp"),
            conf: dir.join("containers.conf"),
        };
        for dir in [&buildah.root, &buildah.runroot, &buildah.tmp] {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(&buildah.conf, containers_conf(&dir.join("cni")))?;
        // Working containers left by a killed build (ours alone: `ensure` holds the cache's lock).
        buildah.output(&["rm", "--all"])?;
        Ok(buildah)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--runroot")
            .arg(&self.runroot)
            .args(["--storage-driver", "overlay"])
            // Big layers are staged in TMPDIR: keep them with the cache, not in /var/tmp.
            .env("TMPDIR", &self.tmp)
            .env("CONTAINERS_CONF", &self.conf);
        cmd
    }

    /// The cache key an image in storage was built from, if the image is there.
    pub fn stored_key(&self, name: &str) -> Option<String> {
        let format = format!("{{{{index .OCIv1.Config.Labels \"{KEY_LABEL}\"}}}}");
        let out = self
            .command()
            .args(["inspect", "--type", "image", "--format", &format, name])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
        (out.status.success() && !key.is_empty()).then_some(key)
    }

    /// Builds a Dockerfile with nothing fetched from a registry.
    pub fn build(&self, build: &Build, label: &str, log: &Path) -> anyhow::Result<()> {
        let mut cmd = self.command();
        cmd.args(build_args(build)).arg(build.context);
        super::run_logged(&mut cmd, label, log)
    }

    /// Makes an image of a root filesystem tarball, as `docker import` would.
    pub fn import_rootfs(
        &self,
        tarball: &Path,
        name: &str,
        key: &str,
        cmd: &str,
    ) -> anyhow::Result<()> {
        let container = self.output(&["from", "--pull=never", "scratch"])?;
        let result = (|| {
            let tar = tarball
                .to_str()
                .context("the tarball's path is not UTF-8")?;
            self.output(&["add", "--quiet", &container, tar, "/"])?;
            self.output(&[
                "config",
                "--env",
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--cmd",
                cmd,
                "--label",
                &format!("{KEY_LABEL}={key}"),
                &container,
            ])?;
            self.output(&["commit", "--quiet", &container, name])
        })();
        let _ = self.output(&["rm", &container]);
        result.map(|_| ())
    }

    /// Loads an archive we wrote back into storage (after the storage was cleared, say).
    pub fn pull_archive(&self, archive: &Path, name: &str) -> anyhow::Result<()> {
        let source = format!("oci-archive:{}", archive.display());
        // `pull --quiet` prints the image's id.
        let id = self.output(&["pull", "--quiet", "--policy", "always", &source])?;
        let id = id.lines().last().unwrap_or("").trim();
        if id.is_empty() {
            bail!("buildah pull {source} printed no image id");
        }
        self.output(&["tag", id, name]).map(|_| ())
    }

    /// Writes the image as an OCI archive that `ctr images import` names `name`.
    pub fn push_archive(&self, name: &str, out: &Path) -> anyhow::Result<()> {
        let layout = self.tmp.join(format!(
            "layout-{}",
            out.file_name().and_then(|n| n.to_str()).unwrap_or("image")
        ));
        let _ = std::fs::remove_dir_all(&layout);
        let dest = format!("oci:{}:{name}", layout.display());
        // zstd: half gzip's time and smaller (containerd unpacks it since 1.5).
        let result = self
            .output(&[
                "push",
                "--quiet",
                "--compression-format",
                "zstd",
                name,
                &dest,
            ])
            .and_then(|_| oci::pack(&layout, name, out));
        let _ = std::fs::remove_dir_all(&layout);
        result
    }

    /// Drops images no name points at any more (earlier builds), so storage does not grow.
    pub fn prune(&self) {
        let _ = self.output(&["rmi", "--prune"]);
    }

    fn output(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running buildah {}", args.join(" ")))?;
        if !out.status.success() {
            bail!(
                "buildah {} failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

impl Drop for Buildah {
    fn drop(&mut self) {
        let dir = Path::new(SYSTEM_CONTAINERS_DIR);
        if holds_only_blob_info_cache(dir) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `dir` holds `cache/` and nothing else, and `cache/` at most the blob-info cache.
pub(crate) fn holds_only_blob_info_cache(dir: &Path) -> bool {
    let names = |d: &Path| -> Option<Vec<String>> {
        let entries = std::fs::read_dir(d).ok()?;
        entries
            .map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect()
    };
    match (names(dir), names(&dir.join("cache"))) {
        (Some(top), Some(cache)) => {
            top == ["cache"] && cache.iter().all(|n| n == "blob-info-cache-v1.boltdb")
        }
        _ => false,
    }
}

/// Keeps buildah's CNI configuration (created even for `--network=host`) out of /etc/cni.
pub(crate) fn containers_conf(cni_dir: &Path) -> String {
    format!(
        "[network]\nnetwork_config_dir = {:?}\n",
        cni_dir.display().to_string()
    )
}

/// The arguments of `buildah build`, before the context directory.
pub(crate) fn build_args(build: &Build) -> Vec<String> {
    let mut args = vec![
        "build".to_string(),
        // Only what is in our storage: the debootstrap base and the images built before.
        "--pull=never".to_string(),
        // chroot isolation runs RUN steps without runc, and the host network without CNI, so a
        // build creates no bridge, iptables chain or /run/runc on the host.
        "--isolation=chroot".to_string(),
        "--network=host".to_string(),
        "--file".to_string(),
        build.dockerfile.display().to_string(),
        "--tag".to_string(),
        build.tag.to_string(),
        "--label".to_string(),
        format!("{KEY_LABEL}={}", build.key),
    ];
    for (name, value) in &build.args {
        args.push("--build-arg".to_string());
        args.push(format!("{name}={value}"));
    }
    for (name, dir) in &build.contexts {
        args.push("--build-context".to_string());
        args.push(format!("{name}={}", dir.display()));
    }
    args
}

/// buildah 1.28 (Debian bookworm's) is the first with `--build-context`.
fn check_version() -> anyhow::Result<()> {
    let out = match Command::new("buildah").arg("--version").output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "buildah is not on PATH: `cargo xtask images` builds the Dockerfiles with it \
             (Debian: apt-get install buildah debootstrap)"
        ),
        Err(e) => return Err(e).context("running `buildah --version`"),
    };
    let text = String::from_utf8_lossy(&out.stdout);
    match parse_version(&text) {
        Some(v) if v >= (1, 28) => Ok(()),
        Some((major, minor)) => {
            bail!("buildah {major}.{minor} is too old: `--build-context` needs 1.28 or newer")
        }
        None => bail!("cannot read buildah's version from {:?}", text.trim()),
    }
}

/// `buildah version 1.28.2 (image-spec …)` → (1, 28).
pub(crate) fn parse_version(text: &str) -> Option<(u32, u32)> {
    let version = text.split_whitespace().nth(2)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_never_pulls_and_passes_args_and_contexts() {
        let build = Build {
            dockerfile: Path::new("/repo/docker/runner.Dockerfile"),
            context: Path::new("/repo"),
            tag: "localhost/roiergasias:0.2.0",
            key: "abc",
            args: vec![("RUNNER_IMAGE", "localhost/r:1".into())],
            contexts: vec![("builder", PathBuf::from("/cache/bin"))],
        };
        let args = build_args(&build).join(" ");
        assert!(
            args.starts_with("build --pull=never --isolation=chroot --network=host"),
            "{args}"
        );
        assert!(
            args.contains(
                "--file /repo/docker/runner.Dockerfile --tag localhost/roiergasias:0.2.0"
            )
        );
        assert!(args.contains(&format!("--label {KEY_LABEL}=abc")));
        assert!(args.contains("--build-arg RUNNER_IMAGE=localhost/r:1"));
        assert!(
            args.ends_with("--build-context builder=/cache/bin"),
            "{args}"
        );
    }

    #[test]
    fn containers_conf_moves_cni_config_into_the_cache() {
        assert_eq!(
            containers_conf(Path::new("/cache/images/buildah/cni")),
            "[network]\nnetwork_config_dir = \"/cache/images/buildah/cni\"\n"
        );
    }

    #[test]
    fn only_a_lone_blob_info_cache_is_taken_for_ours() {
        let dir = tempfile::tempdir().unwrap();
        let containers = dir.path().join("containers");
        assert!(!holds_only_blob_info_cache(&containers), "absent");
        std::fs::create_dir_all(containers.join("cache")).unwrap();
        std::fs::write(containers.join("cache/blob-info-cache-v1.boltdb"), "").unwrap();
        assert!(holds_only_blob_info_cache(&containers));
        std::fs::create_dir(containers.join("storage")).unwrap();
        assert!(
            !holds_only_blob_info_cache(&containers),
            "the host's own storage"
        );
        std::fs::remove_dir(containers.join("storage")).unwrap();
        std::fs::write(containers.join("cache/other"), "").unwrap();
        assert!(
            !holds_only_blob_info_cache(&containers),
            "something else in the cache"
        );
    }

    #[test]
    fn versions() {
        assert_eq!(
            parse_version("buildah version 1.28.2 (image-spec 1.1.0-rc2, runtime-spec 1.0.2-dev)"),
            Some((1, 28))
        );
        assert_eq!(parse_version("buildah version 1.9"), Some((1, 9)));
        assert_eq!(parse_version("something else"), None);
    }
}
