//! `cargo xtask images`: the images real pods run, built offline into OCI archives under the cache.
//!
//! No registry is involved. The Debian base is made with debootstrap from the machine's apt mirror
//! and stored in buildah's storage as `docker.io/library/debian:bookworm-slim`; buildah then builds
//! the project's own Dockerfiles with `--pull=never`; each image is exported as an OCI archive that
//! `ctr -n k8s.io images import` names. Archives are keyed by their inputs, so an unchanged input is
//! not rebuilt.

mod apt_sources;
mod base;
mod buildah;
mod dockerfile;
mod key;
mod oci;
mod pause;
mod runner;
mod scratch;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{progress, tools};

/// Lines of a failed step's log shown on the terminal.
const LOG_TAIL: usize = 40;
/// The longest any one step (debootstrap, a `buildah build`) may take: a generous hang guard.
const STEP_LIMIT: Duration = Duration::from_secs(30 * 60);
const TICK: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);

/// The workspace version: the tag of the project's images.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Image {
    /// The pod sandbox, compiled from Kubernetes' build/pause/linux/pause.c.
    Pause,
    /// docker/runner.Dockerfile: what a Workflow's Jobs run.
    Runner,
    /// examples/machine-learning/aws/Dockerfile: the runner plus Python, pandas and scikit-learn.
    MachineLearning,
    /// docker/operator.Dockerfile, on a distroless-equivalent base (docker/distroless-cc.Dockerfile).
    Operator,
}

impl Image {
    /// The images real nodes run: the operator's too, which the walkthrough installs with Helm.
    pub(crate) const ALL: [Image; 4] = [
        Image::Pause,
        Image::Runner,
        Image::MachineLearning,
        Image::Operator,
    ];

    /// The exact reference to put in pod specs (and containerd's sandbox image, for pause).
    pub(crate) fn name(self) -> String {
        match self {
            Image::Pause => format!("localhost/roiergasias/pause:{}", pause::VERSION),
            Image::Runner => format!("localhost/roiergasias:{VERSION}"),
            Image::MachineLearning => format!("localhost/roiergasias-ml:{VERSION}"),
            Image::Operator => format!("localhost/roiergasias-operator:{VERSION}"),
        }
    }

    fn file_stem(self) -> &'static str {
        match self {
            Image::Pause => "pause",
            Image::Runner => "runner",
            Image::MachineLearning => "machine-learning",
            Image::Operator => "operator",
        }
    }
}

/// A built image: import `path` with `ctr -n k8s.io images import`, then run it as `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageArchive {
    pub image: Image,
    pub name: String,
    pub path: PathBuf,
}

#[derive(clap::Args)]
pub struct ImagesArgs {
    /// The images to build (default: all of them, which real nodes run).
    #[arg(value_enum)]
    images: Vec<Image>,
}

pub fn run(args: ImagesArgs) -> anyhow::Result<()> {
    let wanted = if args.images.is_empty() {
        Image::ALL.to_vec()
    } else {
        args.images
    };
    for archive in ensure(&wanted)? {
        let size = std::fs::metadata(&archive.path)
            .map(|m| m.len())
            .unwrap_or(0);
        eprintln!(
            "{}: {} ({:.1} MiB)",
            archive.name,
            archive.path.display(),
            size as f64 / 1048576.0
        );
        println!("{}\t{}", archive.name, archive.path.display());
    }
    Ok(())
}

/// `~/.cache/roiergasias/images`.
pub(crate) fn cache_dir() -> anyhow::Result<PathBuf> {
    Ok(tools::cache_root()?.join("images"))
}

/// Builds whatever is missing or stale (and what it depends on) and returns the archives, in the
/// order asked. One `ensure` at a time per cache: a second waits for the first.
pub(crate) fn ensure(images: &[Image]) -> anyhow::Result<Vec<ImageArchive>> {
    check_root()?;
    let cache = cache_dir()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let _lock = lock(&cache)?;
    let mut built = Builder::new(&cache)?;
    images.iter().map(|&image| built.archive(image)).collect()
}

/// Builds in dependency order, each image at most once per `ensure`.
struct Builder<'a> {
    cache: &'a Path,
    buildah: buildah::Buildah,
    done: Vec<(Image, String, PathBuf)>,
}

impl<'a> Builder<'a> {
    fn new(cache: &'a Path) -> anyhow::Result<Self> {
        Ok(Builder {
            cache,
            buildah: buildah::Buildah::new(cache)?,
            done: Vec::new(),
        })
    }

    fn archive(&mut self, image: Image) -> anyhow::Result<ImageArchive> {
        let (_, path) = self.ensure(image)?;
        let checked = oci::check_archive(&path)?;
        if checked.name != image.name() {
            bail!(
                "{} names {}, not {}",
                path.display(),
                checked.name,
                image.name()
            );
        }
        Ok(ImageArchive {
            image,
            name: image.name(),
            path,
        })
    }

    /// The image's key and archive, built now if the cache lacks that key.
    fn ensure(&mut self, image: Image) -> anyhow::Result<(String, PathBuf)> {
        if let Some((_, key, path)) = self.done.iter().find(|(i, ..)| *i == image) {
            return Ok((key.clone(), path.clone()));
        }
        let label = format!("images: {}", image.name());
        // Timed from when what it is built on is ready, so each figure is the image's own.
        let started;
        let (key, path) = match image {
            Image::Pause => {
                started = Instant::now();
                pause::ensure(self.cache, &self.buildah, &label)?
            }
            Image::Runner => {
                let base = self.base()?;
                started = Instant::now();
                let spec = &runner::RUNNER;
                runner::ensure_from_binary(self.cache, &self.buildah, spec, &base, &label)?
            }
            Image::Operator => {
                let base = self.base()?;
                let distroless = runner::ensure_distroless(self.cache, &self.buildah, &base)?;
                started = Instant::now();
                let spec = &runner::OPERATOR;
                runner::ensure_from_binary(self.cache, &self.buildah, spec, &distroless, &label)?
            }
            Image::MachineLearning => {
                let (key, archive) = self.ensure(Image::Runner)?;
                started = Instant::now();
                let runner = runner::Stored {
                    name: Image::Runner.name(),
                    key,
                    archive,
                };
                runner::ensure_machine_learning(self.cache, &self.buildah, &runner, &label)?
            }
        };
        eprintln!("{label}: ready in {}", progress::human(started.elapsed()));
        self.done.push((image, key.clone(), path.clone()));
        Ok((key, path))
    }

    /// The Debian base, in buildah's storage under the name the Dockerfiles ask for.
    fn base(&self) -> anyhow::Result<String> {
        let recipe = base::recipe()?;
        if self.buildah.stored_key(base::NAME).as_deref() == Some(recipe.key.as_str()) {
            return Ok(recipe.key);
        }
        let started = Instant::now();
        let tarball = base::tarball(self.cache, &recipe)?;
        self.buildah
            .import_rootfs(&tarball, base::NAME, &recipe.key, "bash")?;
        eprintln!(
            "images: base {} from {} ready in {}",
            base::NAME,
            tarball.display(),
            progress::human(started.elapsed())
        );
        Ok(recipe.key)
    }
}

/// The archive's file for a key: `<cache>/<stem>-<key>.oci.tar`.
fn archive_path(cache: &Path, image: Image, key: &str) -> PathBuf {
    cache.join(format!("{}-{key}.oci.tar", image.file_stem()))
}

/// Removes the archives of `image` other than `keep`, so the cache holds one per image.
fn remove_stale(cache: &Path, image: Image, keep: &Path) {
    let prefix = format!("{}-", image.file_stem());
    let Ok(entries) = std::fs::read_dir(cache) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(".oci.tar") && path != keep {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Runs `cmd` with its output appended to `log`, printing progress; on failure, the log's tail.
/// A step still running after [`STEP_LIMIT`] (a mirror that stopped answering, say) is killed.
pub(crate) fn run_logged(cmd: &mut Command, label: &str, log: &Path) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    // Its own process group, so a timeout stops the step's children (apt, dpkg, ...) too.
    cmd.stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .process_group(0);
    eprintln!("{label}: started (output in {})", log.display());
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{label}: starting {:?}", cmd.get_program()))?;
    let status = wait_bounded(&mut child, label, STEP_LIMIT)?;
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL)..].join("\n");
    bail!(
        "{label} failed ({status}); the last lines of {}:\n{tail}",
        log.display()
    )
}

/// Waits for `child`, saying every [`TICK`] that it still runs, and kills its process group after
/// `limit`. Polling with `try_wait` means the group is only signalled while the child is unreaped,
/// so its id cannot have been reused.
fn wait_bounded(
    child: &mut std::process::Child,
    label: &str,
    limit: Duration,
) -> anyhow::Result<std::process::ExitStatus> {
    let started = Instant::now();
    let mut next_tick = TICK;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        let elapsed = started.elapsed();
        if elapsed >= limit {
            // SAFETY: kill(2) on our own unreaped child's process group.
            unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
            let _ = child.wait();
            bail!(
                "{label}: still running after {}; stopped it",
                progress::human(limit)
            );
        }
        if elapsed >= next_tick {
            eprintln!("{label}: still running ({})", progress::human(elapsed));
            next_tick += TICK;
        }
        std::thread::sleep(POLL);
    }
}

/// Starts a fresh log for one image's build.
pub(crate) fn new_log(cache: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let dir = cache.join("logs");
    std::fs::create_dir_all(&dir)?;
    let path = dir.join(format!("{name}.log"));
    std::fs::write(&path, "").with_context(|| format!("creating {}", path.display()))?;
    Ok(path)
}

fn check_root() -> anyhow::Result<()> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "`cargo xtask images` needs root: debootstrap, chroot and buildah's overlay storage do \
             (the real nodes that run these images need root too)"
        );
    }
    Ok(())
}

/// An exclusive lock on `<cache>/.lock`, held until dropped (flock: released if we die).
fn lock(cache: &Path) -> anyhow::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let path = cache.join(".lock");
    let file =
        std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
    // SAFETY: a valid open descriptor.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        eprintln!(
            "images: waiting for another `cargo xtask images` ({})",
            path.display()
        );
        // SAFETY: as above.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error()).context("locking the image cache");
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn names_are_local_and_carry_the_workspace_version() {
        assert_eq!(
            Image::Runner.name(),
            format!("localhost/roiergasias:{VERSION}")
        );
        assert_eq!(
            Image::MachineLearning.name(),
            format!("localhost/roiergasias-ml:{VERSION}")
        );
        assert!(
            Image::Pause
                .name()
                .starts_with("localhost/roiergasias/pause:3.")
        );
    }

    #[test]
    fn a_failed_step_shows_its_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("step.log");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo first; echo 'the real cause' >&2; exit 3"]);
        let err = run_logged(&mut cmd, "step", &log).unwrap_err().to_string();
        assert!(
            err.contains("step failed") && err.contains("the real cause"),
            "{err}"
        );
        let mut ok = Command::new("true");
        run_logged(&mut ok, "ok", &log).unwrap();
        assert!(
            std::fs::read_to_string(&log)
                .unwrap()
                .starts_with("first\n")
        );
    }

    #[test]
    fn a_step_past_its_limit_is_killed_with_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("grandchild");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!("sleep 600 & echo $! > {}; wait", pidfile.display()))
            .process_group(0)
            .spawn()
            .unwrap();
        // The grandchild's pid is written before the limit is checked.
        while std::fs::read_to_string(&pidfile).map_or(true, |s| !s.ends_with('\n')) {
            std::thread::sleep(POLL);
        }
        let err = wait_bounded(&mut child, "slow", Duration::ZERO)
            .unwrap_err()
            .to_string();
        assert!(err.contains("slow: still running after"), "{err}");
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        // Killed with the group: soon gone, or a zombie awaiting its (dead) parent's reaper.
        let gone = || {
            let state =
                std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
            state.is_empty()
                || state
                    .rsplit(')')
                    .next()
                    .is_some_and(|r| r.trim_start().starts_with('Z'))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !gone() && Instant::now() < deadline {
            std::thread::sleep(POLL);
        }
        let state = std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
        let gone = gone();
        assert!(gone, "the step's child still runs: {state}");
    }

    #[test]
    fn stale_archives_of_one_image_go_and_others_stay() {
        let dir = tempfile::tempdir().unwrap();
        let keep = archive_path(dir.path(), Image::Runner, "new");
        for path in [
            keep.clone(),
            archive_path(dir.path(), Image::Runner, "old"),
            archive_path(dir.path(), Image::Pause, "p"),
        ] {
            std::fs::write(path, "").unwrap();
        }
        remove_stale(dir.path(), Image::Runner, &keep);
        assert!(keep.is_file());
        assert!(!archive_path(dir.path(), Image::Runner, "old").exists());
        assert!(archive_path(dir.path(), Image::Pause, "p").is_file());
    }
}
