//! The `debian:bookworm-slim` equivalent, made offline from Debian's packages: `debootstrap
//! --variant=minbase`, brought up to date from -updates and -security, then slimmed as Debian's
//! slim images are (no docs but copyrights, man pages, locales, apt lists or caches).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context;

use super::{apt_sources, key::Key, run_logged, scratch};

pub(crate) const SUITE: &str = "bookworm";
/// The name the Dockerfiles' `FROM` asks for; buildah finds it in our storage, never in a registry.
pub(crate) const NAME: &str = "docker.io/library/debian:bookworm-slim";

/// What Debian's slim images leave out (debuerreotype's slimify), as dpkg excludes: later
/// `apt-get install`s in derived images keep to them too.
pub(crate) const DPKG_EXCLUDES: &str = "\
# The \"slim\" variant, as in Debian's slim images: docs (but copyrights), man pages and locales are left out.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/man/*
";

/// Debian's images' apt settings: no caches or translations kept, no suggested packages pulled in.
const APT_CONF: &[(&str, &str)] = &[
    (
        "docker-clean",
        "DPkg::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         APT::Update::Post-Invoke { \"rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true\"; };\n\
         Dir::Cache::pkgcache \"\";\nDir::Cache::srcpkgcache \"\";\n",
    ),
    ("docker-no-languages", "Acquire::Languages \"none\";\n"),
    ("docker-gzip-indexes", "Acquire::GzipIndexes \"true\";\n"),
    (
        "docker-autoremove-suggests",
        "Apt::AutoRemove::SuggestsImportant \"false\";\n",
    ),
];

/// Where the base's inputs come from, and its cache key.
pub(crate) struct Recipe {
    pub mirror: String,
    pub sources: Vec<apt_sources::Source>,
    pub key: String,
}

pub(crate) fn recipe() -> anyhow::Result<Recipe> {
    let all = apt_sources::read(Path::new("/etc/apt"))?;
    let sources = apt_sources::for_suite(&all, SUITE);
    let mirror = apt_sources::mirror(&sources, SUITE)?;
    let key = Key::new("base v1: debootstrap --variant=minbase, apt-get upgrade, slimify")
        .text("suite", SUITE)
        .text("mirror", &mirror)
        .text("sources", &apt_sources::render_deb822(&sources))
        .text("excludes", DPKG_EXCLUDES)
        .text("apt", &format!("{APT_CONF:?}"))
        .finish();
    Ok(Recipe {
        mirror,
        sources,
        key,
    })
}

/// The rootfs tarball, made once per key.
pub(crate) fn tarball(cache: &Path, recipe: &Recipe) -> anyhow::Result<PathBuf> {
    let out = cache.join(format!("base/debian-{SUITE}-slim-{}.tar", recipe.key));
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().expect("has a parent"))?;
    let work = scratch::Dir::new(cache.join(format!("work/base-{}", recipe.key)))?;
    let rootfs = work.path().join("rootfs");
    let log = super::new_log(cache, "base")?;
    debootstrap(&rootfs, &recipe.mirror, &log)?;
    upgrade(&rootfs, &recipe.sources, &log)?;
    slimify(&rootfs)?;
    finish(&rootfs)?;
    let partial = out.with_extension("tar.partial");
    run_logged(
        Command::new("tar")
            .args([
                "--sort=name",
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=*",
                "-C",
            ])
            .arg(&rootfs)
            .arg("-cf")
            .arg(&partial)
            .arg("."),
        "base: tar",
        &log,
    )?;
    std::fs::rename(&partial, &out)?;
    Ok(out)
}

fn debootstrap(rootfs: &Path, mirror: &str, log: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new("debootstrap");
    cmd.args(["--variant=minbase", SUITE])
        .arg(rootfs)
        .arg(mirror);
    match run_logged(&mut cmd, "base: debootstrap", log) {
        Err(e) if which("debootstrap").is_none() => {
            Err(e.context("debootstrap is not installed (Debian: apt-get install debootstrap)"))
        }
        other => other,
    }
}

/// Security and point-release updates, as Debian's images have them.
fn upgrade(rootfs: &Path, sources: &[apt_sources::Source], log: &Path) -> anyhow::Result<()> {
    let _ = std::fs::remove_file(rootfs.join("etc/apt/sources.list"));
    std::fs::write(
        rootfs.join("etc/apt/sources.list.d/debian.sources"),
        apt_sources::render_deb822(sources),
    )?;
    for args in [
        &["apt-get", "update", "-qq"][..],
        &["apt-get", "-y", "-qq", "upgrade"][..],
    ] {
        let mut cmd = Command::new("chroot");
        cmd.arg(rootfs)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run_logged(&mut cmd, &format!("base: chroot {}", args.join(" ")), log)?;
    }
    Ok(())
}

/// Removes what [`DPKG_EXCLUDES`] keeps out, and installs the excludes and apt settings.
pub(crate) fn slimify(rootfs: &Path) -> anyhow::Result<()> {
    let share = rootfs.join("usr/share");
    keep_only(&share.join("doc"), |rel| rel.ends_with("/copyright"))?;
    keep_only(&share.join("locale"), |rel| rel == "locale.alias")?;
    for dir in ["groff", "info", "linda", "lintian", "man"] {
        keep_only(&share.join(dir), |_| false)?;
    }
    let dpkg = rootfs.join("etc/dpkg/dpkg.cfg.d");
    std::fs::create_dir_all(&dpkg)?;
    std::fs::write(dpkg.join("docker"), DPKG_EXCLUDES)?;
    let apt = rootfs.join("etc/apt/apt.conf.d");
    std::fs::create_dir_all(&apt)?;
    for (name, text) in APT_CONF {
        std::fs::write(apt.join(name), text)?;
    }
    Ok(())
}

/// Deletes every file under `dir` whose path relative to it fails `keep`, then the emptied directories.
/// Symlinks are removed, never followed.
fn keep_only(dir: &Path, keep: impl Fn(&str) -> bool + Copy) -> anyhow::Result<()> {
    fn walk(dir: &Path, rel: &str, keep: &dyn Fn(&str) -> bool) -> anyhow::Result<bool> {
        let mut empty = true;
        for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let path = entry.path();
            if entry.file_type()?.is_dir() {
                if walk(&path, &child_rel, keep)? {
                    std::fs::remove_dir(&path)?;
                } else {
                    empty = false;
                }
            } else if keep(&child_rel) {
                empty = false;
            } else {
                std::fs::remove_file(&path)
                    .with_context(|| format!("removing {}", path.display()))?;
            }
        }
        Ok(empty)
    }
    if dir.is_dir() {
        walk(dir, "", &keep)?;
    }
    Ok(())
}

/// What no image should carry from the machine it was made on: apt lists and caches, logs,
/// this host's resolver and name.
fn finish(rootfs: &Path) -> anyhow::Result<()> {
    for dir in ["var/lib/apt/lists", "var/cache/apt", "var/log/apt"] {
        keep_only(&rootfs.join(dir), |_| false)?;
    }
    for file in [
        "var/log/dpkg.log",
        "var/log/alternatives.log",
        "var/log/bootstrap.log",
        "etc/machine-id",
    ] {
        let _ = std::fs::remove_file(rootfs.join(file));
    }
    std::fs::create_dir_all(rootfs.join("var/lib/apt/lists/partial"))?;
    std::fs::create_dir_all(rootfs.join("var/cache/apt/archives/partial"))?;
    std::fs::write(rootfs.join("etc/resolv.conf"), "")?;
    std::fs::write(rootfs.join("etc/hostname"), "localhost\n")?;
    Ok(())
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn touch(root: &Path, rel: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, "x").unwrap();
    }

    #[test]
    fn slimify_keeps_copyrights_and_locale_alias_only() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in [
            "usr/share/doc/bash/copyright",
            "usr/share/doc/bash/README.gz",
            "usr/share/doc/bash/examples/x",
            "usr/share/man/man1/ls.1.gz",
            "usr/share/locale/de/LC_MESSAGES/apt.mo",
            "usr/share/locale/locale.alias",
            "usr/share/info/dir",
            "usr/bin/bash",
        ] {
            touch(root, rel);
        }
        std::os::unix::fs::symlink("bash", root.join("usr/share/doc/sh")).unwrap();
        slimify(root).unwrap();
        assert!(root.join("usr/share/doc/bash/copyright").is_file());
        assert!(root.join("usr/share/locale/locale.alias").is_file());
        assert!(root.join("usr/bin/bash").is_file());
        for gone in [
            "usr/share/doc/bash/README.gz",
            "usr/share/doc/bash/examples",
            "usr/share/doc/sh",
            "usr/share/man/man1",
            "usr/share/locale/de",
            "usr/share/info/dir",
        ] {
            assert!(root.join(gone).symlink_metadata().is_err(), "{gone} left");
        }
        let excludes = std::fs::read_to_string(root.join("etc/dpkg/dpkg.cfg.d/docker")).unwrap();
        assert!(excludes.contains("path-exclude /usr/share/man/*"));
        assert!(root.join("etc/apt/apt.conf.d/docker-clean").is_file());
    }

    #[test]
    fn keep_only_never_follows_a_symlink_out() {
        let dir = tempfile::tempdir().unwrap();
        let outside = dir.path().join("outside");
        touch(&outside, "precious");
        let doc = dir.path().join("root/usr/share/doc");
        std::fs::create_dir_all(&doc).unwrap();
        std::os::unix::fs::symlink(&outside, doc.join("escape")).unwrap();
        keep_only(&doc, |_| false).unwrap();
        assert!(outside.join("precious").is_file());
        assert!(doc.join("escape").symlink_metadata().is_err());
    }

    #[test]
    fn finish_clears_host_traces() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        touch(
            root,
            "var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease",
        );
        touch(root, "var/cache/apt/archives/bash.deb");
        touch(root, "var/log/bootstrap.log");
        touch(root, "etc/resolv.conf");
        finish(root).unwrap();
        assert!(
            !root
                .join("var/lib/apt/lists/deb.debian.org_dists_bookworm_InRelease")
                .exists()
        );
        assert!(root.join("var/lib/apt/lists/partial").is_dir());
        assert!(!root.join("var/cache/apt/archives/bash.deb").exists());
        assert!(!root.join("var/log/bootstrap.log").exists());
        assert_eq!(
            std::fs::read_to_string(root.join("etc/resolv.conf")).unwrap(),
            ""
        );
    }
}
