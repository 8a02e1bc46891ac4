//! The pod sandbox image, from Kubernetes' own sources: `build/pause/linux/pause.c` compiled
//! statically as its Makefile does, packed by its own `build/pause/Dockerfile` on `scratch`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

use super::{Image, archive_path, buildah, key::Key, remove_stale, scratch};
use crate::tools;

/// The `TAG` of Kubernetes' build/pause/Makefile at [`tools::KUBERNETES_VERSION`] (checked at build).
pub(crate) const VERSION: &str = "3.10.2";
/// The Makefile's flags, less `-DVERSION` (set below to say where this one came from).
const CFLAGS: &[&str] = &["-Os", "-Wall", "-Werror", "-static"];

pub(crate) fn ensure(
    cache: &Path,
    buildah: &buildah::Buildah,
    label: &str,
) -> anyhow::Result<(String, PathBuf)> {
    let sources = kubernetes_module_dir()?.join("build/pause");
    let makefile = std::fs::read_to_string(sources.join("Makefile"))
        .with_context(|| format!("reading {}", sources.join("Makefile").display()))?;
    match makefile_tag(&makefile) {
        Some(tag) if tag == VERSION => {}
        other => bail!(
            "Kubernetes {}'s pause is version {other:?}, not {VERSION}: update images::pause::VERSION",
            tools::KUBERNETES_VERSION
        ),
    }
    let arch = go_arch()?;
    let (pause_c, dockerfile) = (sources.join("linux/pause.c"), sources.join("Dockerfile"));
    let key = Key::new(&format!("pause v1: cc {}", CFLAGS.join(" ")))
        .text("arch", arch)
        .text("cc", &cc_version()?)
        .path("pause.c", &pause_c)?
        .path("Dockerfile", &dockerfile)?
        .finish();
    let out = archive_path(cache, Image::Pause, &key);
    if out.is_file() {
        return Ok((key, out));
    }
    let work = scratch::Dir::new(cache.join("work/pause"))?;
    let binary = work.path().join(format!("bin/pause-linux-{arch}"));
    std::fs::create_dir_all(binary.parent().expect("has a parent"))?;
    let mut cc = Command::new("cc");
    cc.args(CFLAGS)
        .arg(format!(
            "-DVERSION=v{VERSION}-roiergasias-{}",
            tools::KUBERNETES_VERSION
        ))
        .arg("-o")
        .arg(&binary)
        .arg(&pause_c);
    let log = super::new_log(cache, "pause")?;
    super::run_logged(&mut cc, &format!("{label}: cc"), &log)
        .context("a static build needs libc6-dev (build-essential)")?;
    let name = Image::Pause.name();
    buildah.build(
        &buildah::Build {
            dockerfile: &dockerfile,
            context: work.path(),
            tag: &name,
            key: &key,
            args: vec![("BASE", "scratch".into()), ("ARCH", arch.into())],
            contexts: vec![],
        },
        label,
        &log,
    )?;
    buildah.push_archive(&name, &out)?;
    remove_stale(cache, Image::Pause, &out);
    buildah.prune();
    Ok((key, out))
}

/// `TAG ?= 3.10.2` → `3.10.2`.
pub(crate) fn makefile_tag(makefile: &str) -> Option<&str> {
    makefile.lines().find_map(|line| {
        let (name, value) = line.split_once("?=")?;
        (name.trim() == "TAG").then(|| value.trim())
    })
}

fn go_arch() -> anyhow::Result<&'static str> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("amd64"),
        "aarch64" => Ok("arm64"),
        other => bail!("no pause image for this machine's architecture ({other})"),
    }
}

fn cc_version() -> anyhow::Result<String> {
    let out = Command::new("cc")
        .arg("--version")
        .output()
        .context("running `cc --version`: the pause image is compiled with the C toolchain (build-essential)")?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .unwrap_or("")
        .to_string())
}

/// Kubernetes' module in the Go module cache (downloaded through the Go proxy when absent).
fn kubernetes_module_dir() -> anyhow::Result<PathBuf> {
    let module = format!("k8s.io/kubernetes@{}", tools::KUBERNETES_VERSION);
    let out = Command::new("go")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .current_dir(std::env::temp_dir())
        .args(["mod", "download", "-json", &module])
        .output()
        .context("running `go mod download` for Kubernetes' pause sources (is Go on PATH?)")?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`go mod download {module}` said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    match info.get("Dir").and_then(|d| d.as_str()) {
        Some(dir) if out.status.success() => Ok(PathBuf::from(dir)),
        _ => bail!("`go mod download {module}` failed: {info}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_makefile_tag() {
        let makefile =
            "REGISTRY ?= staging-k8s.gcr.io\nIMAGE = $(REGISTRY)/pause\n\nTAG ?= 3.10.2\nREV = x\n";
        assert_eq!(makefile_tag(makefile), Some("3.10.2"));
        assert_eq!(makefile_tag("TAGS ?= 1\n"), None);
    }
}
