//! The runner and operator images from docker/*.Dockerfile themselves, and the machine-learning
//! image from examples/machine-learning/aws/Dockerfile on top of the runner: the Dockerfiles users build.
//!
//! Their Rust build stage needs crates.io and a rust image, so here the binary comes from
//! `cargo build --release` and a named build context replaces that stage: `--build-context
//! builder=DIR` with `DIR/out/<binary>`, which is what `COPY --from=builder` reads. Plain
//! `docker build` still runs the stage.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Image, archive_path, buildah, dockerfile, key::Key, remove_stale, scratch};

/// The Dockerfiles' stage that a prebuilt binary replaces; it leaves the binary in `/out/`.
pub(crate) const BUILDER_STAGE: &str = "builder";
pub(crate) const ML_DOCKERFILE: &str = "examples/machine-learning/aws/Dockerfile";
pub(crate) const DISTROLESS_DOCKERFILE: &str = "docker/distroless-cc.Dockerfile";
/// The operator Dockerfile's base, made by [`DISTROLESS_DOCKERFILE`] into buildah's storage.
pub(crate) const DISTROLESS_NAME: &str = "gcr.io/distroless/cc-debian12:nonroot";

/// An image whose Dockerfile's `builder` stage compiles one binary of the workspace.
pub(crate) struct FromBinary {
    pub image: Image,
    pub dockerfile: &'static str,
    pub package: &'static str,
    pub bin: &'static str,
}

pub(crate) const RUNNER: FromBinary = FromBinary {
    image: Image::Runner,
    dockerfile: "docker/runner.Dockerfile",
    package: "roiergasias-engine",
    bin: "roiergasias",
};

pub(crate) const OPERATOR: FromBinary = FromBinary {
    image: Image::Operator,
    dockerfile: "docker/operator.Dockerfile",
    package: "roiergasias-controller",
    bin: "roiergasias-operator",
};

impl FromBinary {
    /// Where the `builder` stage leaves the binary, which the final stage copies.
    pub fn in_builder(&self) -> String {
        format!("/out/{}", self.bin)
    }
}

/// An image already built: its name, key and archive.
pub(crate) struct Stored {
    pub name: String,
    pub key: String,
    pub archive: PathBuf,
}

/// Builds `spec`'s Dockerfile on a base whose key is `base_key`, with `cargo build --release`'s
/// binary in place of the Rust stage.
pub(crate) fn ensure_from_binary(
    cache: &Path,
    buildah: &buildah::Buildah,
    spec: &FromBinary,
    base_key: &str,
    label: &str,
) -> anyhow::Result<(String, PathBuf)> {
    let workspace = workspace_root();
    let dockerfile = workspace.join(spec.dockerfile);
    let binary = crate::bench::release_binary(spec.package, spec.bin)?;
    let mut key = Key::new(&format!("{} v1", spec.bin));
    key.text("base", base_key).path("binary", &binary)?;
    let key = keyed_dockerfile(key, &workspace, &dockerfile, &[BUILDER_STAGE])?;
    let out = archive_path(cache, spec.image, &key);
    if out.is_file() {
        return Ok((key, out));
    }
    let stage = scratch::Dir::new(cache.join(format!("work/{}-binary", spec.bin)))?;
    let staged = stage.path().join(spec.in_builder().trim_start_matches('/'));
    std::fs::create_dir_all(staged.parent().expect("has a parent"))?;
    std::fs::copy(&binary, &staged)
        .with_context(|| format!("copying {} into the build context", binary.display()))?;
    let name = spec.image.name();
    buildah.build(
        &buildah::Build {
            dockerfile: &dockerfile,
            context: &workspace,
            tag: &name,
            key: &key,
            args: vec![],
            contexts: vec![(BUILDER_STAGE, stage.path().to_path_buf())],
        },
        label,
        &super::new_log(cache, spec.image.file_stem())?,
    )?;
    finish(cache, buildah, spec.image, &out)?;
    Ok((key, out))
}

/// The distroless-equivalent base in buildah's storage, built on the Debian base; returns its key.
pub(crate) fn ensure_distroless(
    cache: &Path,
    buildah: &buildah::Buildah,
    base_key: &str,
) -> anyhow::Result<String> {
    let workspace = workspace_root();
    let dockerfile = workspace.join(DISTROLESS_DOCKERFILE);
    let mut key = Key::new("distroless v1");
    key.text("base", base_key);
    let key = keyed_dockerfile(key, &workspace, &dockerfile, &[])?;
    if buildah.stored_key(DISTROLESS_NAME).as_deref() == Some(key.as_str()) {
        return Ok(key);
    }
    buildah.build(
        &buildah::Build {
            dockerfile: &dockerfile,
            context: &workspace,
            tag: DISTROLESS_NAME,
            key: &key,
            args: vec![],
            contexts: vec![],
        },
        &format!("images: base {DISTROLESS_NAME}"),
        &super::new_log(cache, "distroless")?,
    )?;
    Ok(key)
}

pub(crate) fn ensure_machine_learning(
    cache: &Path,
    buildah: &buildah::Buildah,
    runner: &Stored,
    label: &str,
) -> anyhow::Result<(String, PathBuf)> {
    let workspace = workspace_root();
    let dockerfile = workspace.join(ML_DOCKERFILE);
    let text = std::fs::read_to_string(&dockerfile)
        .with_context(|| format!("reading {}", dockerfile.display()))?;
    if dockerfile::arg_default(&text, "RUNNER_IMAGE").is_none() {
        bail!(
            "{ML_DOCKERFILE} no longer declares `ARG RUNNER_IMAGE=…`, which names the runner image to build on"
        );
    }
    let mut key = Key::new("machine-learning v1");
    key.text("runner", &runner.key);
    let key = keyed_dockerfile(key, &workspace, &dockerfile, &[])?;
    let out = archive_path(cache, Image::MachineLearning, &key);
    if out.is_file() {
        return Ok((key, out));
    }
    if buildah.stored_key(&runner.name).as_deref() != Some(runner.key.as_str()) {
        buildah.pull_archive(&runner.archive, &runner.name)?;
    }
    let name = Image::MachineLearning.name();
    buildah.build(
        &buildah::Build {
            dockerfile: &dockerfile,
            context: &workspace,
            tag: &name,
            key: &key,
            args: vec![("RUNNER_IMAGE", runner.name.clone())],
            contexts: vec![],
        },
        label,
        &super::new_log(cache, "machine-learning")?,
    )?;
    finish(cache, buildah, Image::MachineLearning, &out)?;
    Ok((key, out))
}

fn finish(
    cache: &Path,
    buildah: &buildah::Buildah,
    image: Image,
    out: &Path,
) -> anyhow::Result<()> {
    buildah.push_archive(&image.name(), out)?;
    remove_stale(cache, image, out);
    buildah.prune();
    Ok(())
}

/// Adds the Dockerfile and every context file it copies (outside `overridden` stages) to the key.
fn keyed_dockerfile(
    mut key: Key,
    context: &Path,
    dockerfile: &Path,
    overridden: &[&str],
) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(dockerfile)
        .with_context(|| format!("reading {}", dockerfile.display()))?;
    key.text("Dockerfile", &text);
    for source in context_sources(&text, overridden)
        .with_context(|| format!("reading {}", dockerfile.display()))?
    {
        key.path(&source, &context.join(&source))?;
    }
    Ok(key.finish())
}

/// The context paths a Dockerfile copies; globs and paths leaving the context are refused, since
/// the cache key could not follow them.
pub(crate) fn context_sources(text: &str, overridden: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut sources = Vec::new();
    for copy in dockerfile::context_copies(text, overridden)? {
        for source in copy.sources {
            if source.contains(['*', '?', '[']) || source.contains("..") || source.starts_with('/')
            {
                bail!(
                    "{}: COPY source {source:?} is a glob or leaves the context",
                    copy.stage
                );
            }
            sources.push(source);
        }
    }
    Ok(sources)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rel: &str) -> String {
        std::fs::read_to_string(workspace_root().join(rel)).unwrap()
    }

    #[test]
    fn binary_dockerfiles_take_the_binary_from_the_stage_a_build_context_replaces() {
        for spec in [&RUNNER, &OPERATOR] {
            let text = read(spec.dockerfile);
            assert!(
                text.contains(&format!("AS {BUILDER_STAGE}\n")),
                "{} has no `{BUILDER_STAGE}` stage",
                spec.dockerfile
            );
            assert!(
                text.contains(&format!(
                    "COPY --from={BUILDER_STAGE} {} ",
                    spec.in_builder()
                )),
                "{} does not copy {} from {BUILDER_STAGE}",
                spec.dockerfile,
                spec.in_builder()
            );
            // With the builder replaced, the final stage reads nothing from the context.
            assert_eq!(
                context_sources(&text, &[BUILDER_STAGE]).unwrap(),
                Vec::<String>::new()
            );
            assert!(
                context_sources(&text, &[])
                    .unwrap()
                    .contains(&"engine".to_string())
            );
        }
        let operator = read(OPERATOR.dockerfile);
        assert!(operator.contains(&format!("FROM {DISTROLESS_NAME}\n")));
    }

    #[test]
    fn machine_learning_inputs_are_the_scripts_it_copies_and_all_exist() {
        let text = read(ML_DOCKERFILE);
        let sources = context_sources(&text, &[]).unwrap();
        assert!(sources.contains(&"examples/machine-learning/local/train-model.py".to_string()));
        assert!(sources.contains(&"examples/machine-learning/aws/sync-data.sh".to_string()));
        for source in &sources {
            assert!(
                workspace_root().join(source).exists(),
                "{source} is copied but missing"
            );
        }
        assert_eq!(
            dockerfile::arg_default(&text, "RUNNER_IMAGE").as_deref(),
            Some(format!("roiergasias:{}", super::super::VERSION).as_str()),
            "the ML Dockerfile's default runner image is the one the README builds"
        );
    }

    #[test]
    fn globs_and_escapes_are_refused() {
        for bad in [
            "FROM x\nCOPY *.py /opt/\n",
            "FROM x\nCOPY ../secret /x\n",
            "FROM x\nCOPY /etc/passwd /x\n",
        ] {
            assert!(context_sources(bad, &[]).is_err(), "{bad}");
        }
    }
}
