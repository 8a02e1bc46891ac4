//! The runner image from docker/runner.Dockerfile itself, and the machine-learning image from
//! examples/machine-learning/aws/Dockerfile on top of it: the Dockerfiles users build.
//!
//! The runner's Rust build stage needs crates.io and a rust image, so here the binary comes from
//! `cargo build --release` and a named build context replaces that stage: `--build-context
//! builder=DIR` with `DIR/out/roiergasias`, which is what `COPY --from=builder` reads. Plain
//! `docker build` still runs the stage.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use super::{Image, archive_path, buildah, dockerfile, key::Key, remove_stale, scratch};

/// The Dockerfiles' stage that a prebuilt binary replaces, and where it puts the binary.
pub(crate) const BUILDER_STAGE: &str = "builder";
pub(crate) const BINARY_IN_BUILDER: &str = "/out/roiergasias";
pub(crate) const RUNNER_DOCKERFILE: &str = "docker/runner.Dockerfile";
pub(crate) const ML_DOCKERFILE: &str = "examples/machine-learning/aws/Dockerfile";

/// An image already built: its name, key and archive.
pub(crate) struct Stored {
    pub name: String,
    pub key: String,
    pub archive: PathBuf,
}

pub(crate) fn ensure_runner(
    cache: &Path,
    buildah: &buildah::Buildah,
    base_key: &str,
    label: &str,
) -> anyhow::Result<(String, PathBuf)> {
    let workspace = workspace_root();
    let dockerfile = workspace.join(RUNNER_DOCKERFILE);
    let binary = crate::bench::release_binary("roiergasias-engine", "roiergasias")?;
    let mut key = Key::new("runner v1");
    key.text("base", base_key).path("binary", &binary)?;
    let key = keyed_dockerfile(key, &workspace, &dockerfile, &[BUILDER_STAGE])?;
    let out = archive_path(cache, Image::Runner, &key);
    if out.is_file() {
        return Ok((key, out));
    }
    let stage = scratch::Dir::new(cache.join("work/runner-binary"))?;
    let staged = stage.path().join(BINARY_IN_BUILDER.trim_start_matches('/'));
    std::fs::create_dir_all(staged.parent().expect("has a parent"))?;
    std::fs::copy(&binary, &staged)
        .with_context(|| format!("copying {} into the build context", binary.display()))?;
    let name = Image::Runner.name();
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
        &super::new_log(cache, "runner")?,
    )?;
    finish(cache, buildah, Image::Runner, &out)?;
    Ok((key, out))
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
    fn runner_dockerfile_takes_the_binary_from_the_stage_a_build_context_replaces() {
        let text = read(RUNNER_DOCKERFILE);
        assert!(
            text.contains(&format!("AS {BUILDER_STAGE}\n")),
            "the runner Dockerfile has no `{BUILDER_STAGE}` stage"
        );
        assert!(
            text.contains(&format!("COPY --from={BUILDER_STAGE} {BINARY_IN_BUILDER} ")),
            "the runner Dockerfile does not copy {BINARY_IN_BUILDER} from {BUILDER_STAGE}"
        );
        // With the builder replaced, the runner's final stage reads nothing from the context.
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
