//! `cargo xtask tools`: builds the test control plane from Go modules, once, into a cache keyed by version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Subcommand;

use crate::progress;

pub const KUBERNETES_VERSION: &str = "v1.36.3";
pub const ETCD_VERSION: &str = "v3.6.16";
pub const KWOK_VERSION: &str = "v0.8.0";
pub const HELM_VERSION: &str = "v3.22.0";
/// containerd 2.x: Kubernetes 1.37 drops support for 1.x.
pub const CONTAINERD_VERSION: &str = "v2.2.9";

/// Overrides the cache: a directory already holding every binary in [`TOOLS`].
pub const BIN_ENV: &str = "ROIERGASIAS_K8S_BIN";

#[derive(Subcommand)]
pub enum ToolsCommand {
    /// Print the directory holding the binaries (last line), building what is missing first.
    Path {
        /// Fail instead of building when a tool is missing.
        #[arg(long)]
        no_build: bool,
    },
}

/// Where a tool's source lives and how `go` builds it.
enum Source {
    /// A package of a committed wrapper module under xtask/go/ (its go.mod pins every sibling module).
    Wrapper {
        module_dir: &'static str,
        package: &'static str,
        /// Go build tags (`-tags`), e.g. to leave out a storage driver that needs C headers.
        tags: &'static str,
    },
    /// A plain `go install package@version`.
    Install {
        package: &'static str,
        version: &'static str,
    },
}

pub struct Tool {
    pub name: &'static str,
    source: Source,
    /// `-X` link flags so `--version` tells the truth.
    version_vars: fn() -> Vec<String>,
}

pub const TOOLS: &[Tool] = &[
    Tool {
        name: "kube-apiserver",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kube-apiserver",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    Tool {
        name: "kube-controller-manager",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kube-controller-manager",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    Tool {
        name: "kube-scheduler",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kube-scheduler",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    Tool {
        name: "kubectl",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kubectl",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    Tool {
        name: "kubelet",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kubelet",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    // Service routing for the real nodes' pods: in-cluster clients reach the API server through
    // the `kubernetes` Service.
    Tool {
        name: "kube-proxy",
        source: Source::Wrapper {
            module_dir: "kubernetes",
            package: "k8s.io/kubernetes/cmd/kube-proxy",
            tags: "",
        },
        version_vars: kubernetes_version_vars,
    },
    Tool {
        name: "containerd",
        source: containerd("github.com/containerd/containerd/v2/cmd/containerd"),
        version_vars: containerd_version_vars,
    },
    Tool {
        name: "containerd-shim-runc-v2",
        source: containerd("github.com/containerd/containerd/v2/cmd/containerd-shim-runc-v2"),
        version_vars: containerd_version_vars,
    },
    Tool {
        name: "ctr",
        source: containerd("github.com/containerd/containerd/v2/cmd/ctr"),
        version_vars: containerd_version_vars,
    },
    Tool {
        name: "etcd",
        source: Source::Wrapper {
            module_dir: "etcd",
            package: "go.etcd.io/etcd/server/v3",
            tags: "",
        },
        version_vars: etcd_version_vars,
    },
    Tool {
        name: "kwok",
        source: Source::Install {
            package: "sigs.k8s.io/kwok/cmd/kwok",
            version: KWOK_VERSION,
        },
        version_vars: kwok_version_vars,
    },
    Tool {
        name: "kwokctl",
        source: Source::Install {
            package: "sigs.k8s.io/kwok/cmd/kwokctl",
            version: KWOK_VERSION,
        },
        version_vars: kwok_version_vars,
    },
    Tool {
        name: "helm",
        source: Source::Install {
            package: "helm.sh/helm/v3/cmd/helm",
            version: HELM_VERSION,
        },
        version_vars: helm_version_vars,
    },
];

/// A command of the containerd module; `no_btrfs` leaves out the btrfs snapshotter, which needs C headers.
const fn containerd(package: &'static str) -> Source {
    Source::Wrapper {
        module_dir: "containerd",
        package,
        tags: "no_btrfs",
    }
}

fn containerd_version_vars() -> Vec<String> {
    vec![
        format!("github.com/containerd/containerd/v2/version.Version={CONTAINERD_VERSION}"),
        "github.com/containerd/containerd/v2/version.Revision=roiergasias-xtask".to_string(),
    ]
}

fn kubernetes_version_vars() -> Vec<String> {
    let (major, minor) = major_minor(KUBERNETES_VERSION);
    // kubectl reports its client version from client-go, the servers from component-base.
    [
        "k8s.io/component-base/version",
        "k8s.io/client-go/pkg/version",
    ]
    .iter()
    .flat_map(|pkg| {
        [
            format!("{pkg}.gitVersion={KUBERNETES_VERSION}"),
            format!("{pkg}.gitMajor={major}"),
            format!("{pkg}.gitMinor={minor}"),
            format!("{pkg}.gitTreeState=clean"),
            format!("{pkg}.buildDate={}", build_date()),
        ]
    })
    .collect()
}

fn etcd_version_vars() -> Vec<String> {
    // The version itself is a constant in etcd's api module; only the commit is left to the build.
    vec![format!(
        "go.etcd.io/etcd/api/v3/version.GitSHA={ETCD_VERSION}"
    )]
}

fn kwok_version_vars() -> Vec<String> {
    // KubeVersion is the Kubernetes release kwokctl assumes when it chooses component flags.
    vec![
        format!(
            "sigs.k8s.io/kwok/pkg/consts.Version={}",
            KWOK_VERSION.trim_start_matches('v')
        ),
        format!(
            "sigs.k8s.io/kwok/pkg/consts.KubeVersion={}",
            KUBERNETES_VERSION.trim_start_matches('v')
        ),
    ]
}

fn helm_version_vars() -> Vec<String> {
    vec![
        format!("helm.sh/helm/v3/internal/version.version={HELM_VERSION}"),
        "helm.sh/helm/v3/internal/version.gitTreeState=clean".to_string(),
    ]
}

fn major_minor(version: &str) -> (&str, &str) {
    let mut parts = version.trim_start_matches('v').split('.');
    (parts.next().unwrap_or(""), parts.next().unwrap_or(""))
}

fn build_date() -> String {
    // `date` keeps jiff out of xtask; the date is informational only.
    Command::new("date")
        .args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// The cache root shared by tools and clusters: `${XDG_CACHE_HOME:-~/.cache}/roiergasias`.
pub fn cache_root() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("roiergasias"));
    }
    let home = std::env::var_os("HOME")
        .filter(|d| !d.is_empty())
        .context("neither XDG_CACHE_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cache").join("roiergasias"))
}

/// The versioned directory for this set of tools; a version bump builds into a fresh one.
pub fn versioned_dir() -> anyhow::Result<PathBuf> {
    Ok(cache_root()?.join(format!(
        "tools-k8s-{KUBERNETES_VERSION}-etcd-{ETCD_VERSION}-kwok-{KWOK_VERSION}-helm-{HELM_VERSION}-containerd-{CONTAINERD_VERSION}"
    )))
}

/// Where the binaries are (or will be): `ROIERGASIAS_K8S_BIN`, else the cache.
pub fn bin_dir() -> anyhow::Result<PathBuf> {
    match std::env::var_os(BIN_ENV).filter(|d| !d.is_empty()) {
        Some(dir) => Ok(PathBuf::from(dir)),
        None => Ok(versioned_dir()?.join("bin")),
    }
}

/// kwok's default stages, copied from the kwok module next to the cached binaries.
pub fn default_stages_file() -> anyhow::Result<PathBuf> {
    Ok(versioned_dir()?.join("kwok-default-stages.yaml"))
}

/// The binaries that are not in `dir` yet.
pub fn missing(dir: &Path) -> Vec<&'static Tool> {
    TOOLS
        .iter()
        .filter(|t| !is_executable(&dir.join(t.name)))
        .collect()
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

pub fn run(command: Option<ToolsCommand>) -> anyhow::Result<()> {
    if let Some(ToolsCommand::Path { no_build: true }) = command {
        let dir = bin_dir()?;
        let missing: Vec<_> = missing(&dir).iter().map(|t| t.name).collect();
        if !missing.is_empty() {
            bail!(
                "{} lacks {}: `cargo xtask tools` builds them",
                dir.display(),
                missing.join(", ")
            );
        }
        println!("{}", dir.display());
        return Ok(());
    }
    let dir = ensure()?;
    if matches!(command, Some(ToolsCommand::Path { .. })) {
        println!("{}", dir.display());
    } else {
        eprintln!("all tools are in {}:", dir.display());
        for tool in TOOLS {
            eprintln!("  {}", tool.name);
        }
        println!("{}", dir.display());
    }
    Ok(())
}

/// Builds whatever is missing and returns the directory holding every tool.
pub fn ensure() -> anyhow::Result<PathBuf> {
    let dir = bin_dir()?;
    let missing = missing(&dir);
    if std::env::var_os(BIN_ENV).is_some_and(|d| !d.is_empty()) {
        if !missing.is_empty() {
            let names: Vec<_> = missing.iter().map(|t| t.name).collect();
            bail!(
                "{BIN_ENV}={} lacks these executables: {}.\nPut them there, or unset {BIN_ENV} to let `cargo xtask tools` build them.",
                dir.display(),
                names.join(", ")
            );
        }
        return Ok(dir);
    }
    let stages = default_stages_file()?;
    if missing.is_empty() && stages.is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Two runs building at once would write the same scratch directories: one waits for the other.
    let lock = std::fs::File::create(dir.join(".lock"))?;
    if lock.try_lock().is_err() {
        eprintln!("another run is building the tools: waiting for it");
        lock.lock()?;
    }
    let missing = self::missing(&dir);
    if missing.is_empty() && stages.is_file() {
        return Ok(dir);
    }
    let go = check_go()?;
    if !missing.is_empty() {
        eprintln!(
            "building {} tool(s) with {go} into {} (first time only; a cold build takes a while on 2 cores)",
            missing.len(),
            dir.display()
        );
    }
    let total = Instant::now();
    for (i, tool) in missing.iter().enumerate() {
        let label = format!("[{}/{}] {}", i + 1, missing.len(), tool.name);
        let started = Instant::now();
        build(tool, &dir, &label)?;
        eprintln!("{label}: built in {}", progress::human(started.elapsed()));
    }
    if !missing.is_empty() {
        eprintln!("all tools built in {}", progress::human(total.elapsed()));
    }
    if !stages.is_file() {
        write_default_stages(&stages)?;
    }
    Ok(dir)
}

/// `go` must be on PATH and new enough for the wrapper modules (GOTOOLCHAIN=local forbids downloading another).
fn check_go() -> anyhow::Result<String> {
    let output = match Command::new("go")
        .arg("version")
        .env("GOTOOLCHAIN", "local")
        .output()
    {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "no Go toolchain: `go` is not on PATH.\n\
             `cargo xtask tools` builds kube-apiserver, kube-controller-manager, kube-scheduler, kubectl, etcd, kwok, kwokctl and helm from Go modules; \
             install Go 1.26 or newer (https://go.dev/doc/install, or your package manager), \
             or set {BIN_ENV}=DIR to a directory that already holds those binaries."
        ),
        Err(e) => return Err(e).context("running `go version`"),
    };
    let text = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() {
        bail!(
            "`go version` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let version = text
        .split_whitespace()
        .nth(2)
        .unwrap_or("")
        .trim_start_matches("go");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) < (1, 26) {
        bail!(
            "Go {version} is too old: the pinned Kubernetes {KUBERNETES_VERSION}, etcd, kwok and helm need Go 1.26 or newer \
             (GOTOOLCHAIN=local, so Go will not fetch a newer toolchain itself)."
        );
    }
    Ok(format!("go{version}"))
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn build(tool: &Tool, dir: &Path, label: &str) -> anyhow::Result<()> {
    // Build into a scratch directory and rename, so an interrupted build never leaves a half-written binary.
    let scratch = dir.join(format!(".building-{}", tool.name));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch)?;
    let mut ldflags = vec!["-s".to_string(), "-w".to_string()];
    for var in (tool.version_vars)() {
        ldflags.push("-X".to_string());
        ldflags.push(var);
    }
    let ldflags = ldflags.join(" ");
    let mut cmd = Command::new("go");
    // A user's GOFLAGS (e.g. -mod=mod) must not loosen the pinned go.sum.
    cmd.env("GOTOOLCHAIN", "local").env("GOFLAGS", "");
    let built = match &tool.source {
        Source::Wrapper {
            module_dir,
            package,
            tags,
        } => {
            let out = scratch.join(tool.name);
            cmd.current_dir(workspace_root().join("xtask/go").join(module_dir))
                .args(["build", "-o"])
                .arg(&out)
                .args(["-tags", tags, "-ldflags", &ldflags, package]);
            out
        }
        Source::Install { package, version } => {
            // Outside any module, so `go install pkg@version` uses that module's own go.mod.
            cmd.current_dir(&scratch).env("GOBIN", &scratch).args([
                "install",
                "-ldflags",
                &ldflags,
                &format!("{package}@{version}"),
            ]);
            scratch.join(package.rsplit('/').next().unwrap_or(tool.name))
        }
    };
    let status = progress::run_with_ticker(&mut cmd, label)?;
    if !status.success() {
        let _ = std::fs::remove_dir_all(&scratch);
        bail!("{label}: `go` failed ({status}); its output is above");
    }
    std::fs::rename(&built, dir.join(tool.name))
        .with_context(|| format!("moving {} into {}", built.display(), dir.display()))?;
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(())
}

/// kwokctl drops its built-in stages as soon as a config file carries any stage, so ours go in with
/// kwok's own defaults, read from the very module the kwok binaries were built from.
const DEFAULT_STAGE_FILES: &[&str] = &[
    "kustomize/stage/node/fast/node-initialize.yaml",
    "kustomize/stage/node/heartbeat-with-lease/node-heartbeat-with-lease.yaml",
    "kustomize/stage/pod/fast/pod-ready.yaml",
    "kustomize/stage/pod/fast/pod-complete.yaml",
    "kustomize/stage/pod/fast/pod-delete.yaml",
];

fn write_default_stages(dest: &Path) -> anyhow::Result<()> {
    let module = kwok_module_dir()?;
    let mut text = String::new();
    for file in DEFAULT_STAGE_FILES {
        let path = module.join(file);
        let body = std::fs::read_to_string(&path)
            .with_context(|| format!("reading kwok's default stage {}", path.display()))?;
        text.push_str("---\n");
        text.push_str(&body);
        if !body.ends_with('\n') {
            text.push('\n');
        }
    }
    let tmp = dest.with_extension("yaml.tmp");
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dest)?;
    Ok(())
}

/// The kwok module's source in the Go module cache (downloaded from the Go proxy when absent).
fn kwok_module_dir() -> anyhow::Result<PathBuf> {
    let out = Command::new("go")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "")
        .current_dir(std::env::temp_dir())
        .args([
            "mod",
            "download",
            "-json",
            &format!("sigs.k8s.io/kwok@{KWOK_VERSION}"),
        ])
        .output()
        .context("running `go mod download` for kwok's default stages")?;
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "`go mod download` said: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )
    })?;
    match info.get("Dir").and_then(|d| d.as_str()) {
        Some(dir) if out.status.success() => Ok(PathBuf::from(dir)),
        _ => bail!("`go mod download sigs.k8s.io/kwok@{KWOK_VERSION}` failed: {info}"),
    }
}

/// kwok's default stages: from the tools cache, else straight from the kwok module (for `ROIERGASIAS_K8S_BIN`).
pub fn default_stages() -> anyhow::Result<String> {
    let cached = default_stages_file()?;
    if !cached.is_file() {
        std::fs::create_dir_all(cached.parent().expect("has a parent"))?;
        write_default_stages(&cached).context(
            "kwok's default stages are needed to start the cluster; they come from the kwok Go module (needs `go`)",
        )?;
    }
    Ok(std::fs::read_to_string(&cached)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubernetes_version_is_stamped_for_servers_and_kubectl() {
        let vars = kubernetes_version_vars();
        assert!(vars.contains(&"k8s.io/component-base/version.gitVersion=v1.36.3".to_string()));
        assert!(vars.contains(&"k8s.io/client-go/pkg/version.gitVersion=v1.36.3".to_string()));
        assert!(vars.contains(&"k8s.io/component-base/version.gitMinor=36".to_string()));
    }

    #[test]
    fn missing_lists_only_absent_or_non_executable_tools() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        for tool in TOOLS
            .iter()
            .filter(|t| t.name != "helm" && t.name != "etcd")
        {
            let path = dir.path().join(tool.name);
            std::fs::write(&path, "").unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        std::fs::write(dir.path().join("etcd"), "").unwrap(); // present but not executable
        let names: Vec<_> = missing(dir.path()).iter().map(|t| t.name).collect();
        assert_eq!(names, ["etcd", "helm"]);
    }

    #[test]
    fn cache_dir_is_keyed_by_every_version() {
        let dir = versioned_dir().unwrap().display().to_string();
        for v in [
            KUBERNETES_VERSION,
            ETCD_VERSION,
            KWOK_VERSION,
            HELM_VERSION,
            CONTAINERD_VERSION,
        ] {
            assert!(dir.contains(v), "{dir} lacks {v}");
        }
    }
}
