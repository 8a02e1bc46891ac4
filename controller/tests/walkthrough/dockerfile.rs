//! The Dockerfiles, read by a small parser of their own: multi-stage, pinned, non-root, copying
//! binaries the workspace builds.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use crate::helm::{CHART, container, template};
use crate::readme::readme_block;
use crate::support::*;

// ---------------------------------------------------------------------------
// Dockerfiles

struct Dockerfile {
    path: &'static str,
    /// (image, stage name) per FROM.
    stages: Vec<(String, Option<String>)>,
    /// Sources of COPY without --from: paths in the build context.
    context_copies: Vec<String>,
    /// (stage, source, destination) of COPY --from.
    stage_copies: Vec<(String, String, String)>,
    /// `cargo build` commands of RUN instructions.
    cargo_builds: Vec<String>,
    /// USER of the final stage.
    final_user: Option<String>,
}

fn parse_dockerfile(path: &'static str) -> Dockerfile {
    let text = read(path);
    let mut instructions: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.starts_with('#') || line.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => {
                current.push_str(start);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                instructions.push(std::mem::take(&mut current));
            }
        }
    }
    let mut file = Dockerfile {
        path,
        stages: Vec::new(),
        context_copies: Vec::new(),
        stage_copies: Vec::new(),
        cargo_builds: Vec::new(),
        final_user: None,
    };
    for instruction in instructions {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        match words[0] {
            "FROM" => {
                let name = (words.get(2) == Some(&"AS")).then(|| words[3].to_string());
                file.stages.push((words[1].to_string(), name));
                file.final_user = None;
            }
            "COPY" => {
                let from = words.iter().find_map(|w| w.strip_prefix("--from="));
                let paths: Vec<&str> = words[1..]
                    .iter()
                    .copied()
                    .filter(|w| !w.starts_with("--"))
                    .collect();
                let (destination, sources) = paths.split_last().expect("COPY src dest");
                for source in sources {
                    match from {
                        Some(stage) => file.stage_copies.push((
                            stage.to_string(),
                            source.to_string(),
                            destination.to_string(),
                        )),
                        None => file.context_copies.push(source.to_string()),
                    }
                }
            }
            "RUN" => {
                for command in instruction.split("&&") {
                    if let Some(at) = command.find("cargo build") {
                        file.cargo_builds.push(command[at..].trim().to_string());
                    }
                }
            }
            "USER" => file.final_user = Some(words[1].to_string()),
            _ => {}
        }
    }
    file
}

const DOCKERFILES: [(&str, &str, &[&str]); 2] = [
    (
        "docker/runner.Dockerfile",
        "roiergasias",
        &["/usr/local/bin/roiergasias", "/root/roiergasias"],
    ),
    (
        "docker/operator.Dockerfile",
        "roiergasias-operator",
        &["/usr/local/bin/roiergasias-operator"],
    ),
];

#[test]
fn dockerfiles_are_multi_stage_pinned_non_root_and_copy_workspace_binaries() {
    let binaries = workspace_binaries();
    let ignore = read(".dockerignore");
    let ignored: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    for (path, binary, destinations) in DOCKERFILES {
        let file = parse_dockerfile(path);
        assert!(file.stages.len() >= 2, "{path} is multi-stage");
        let (builder, name) = &file.stages[0];
        assert_eq!(
            builder, "docker.io/library/rust:1.95-slim-bookworm",
            "{path}: a pinned Rust builder"
        );
        for (image, _) in &file.stages {
            let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
            assert!(
                !tag.is_empty() && tag != "latest" && !tag.contains('/'),
                "{path}: {image} is pinned to a tag"
            );
        }
        let user = file
            .final_user
            .as_deref()
            .expect("a USER in the final stage");
        assert!(
            !user.starts_with("root") && !user.starts_with("0"),
            "{path} runs as non-root, not {user}"
        );

        // The build context holds what it copies, and every workspace member
        // (cargo reads them all).
        for source in &file.context_copies {
            assert!(repo().join(source).exists(), "{path}: {source} exists");
            assert!(
                !ignored
                    .iter()
                    .any(|i| source == i || source.starts_with(&format!("{i}/"))),
                "{path}: {source} is not excluded by .dockerignore"
            );
        }
        for member in ["engine", "crd", "controller", "xtask"] {
            assert!(
                file.context_copies.iter().any(|s| s == member),
                "{path} copies the workspace member {member}"
            );
        }

        // What it builds is the binary it copies, a workspace binary.
        assert_eq!(
            file.cargo_builds,
            [format!("cargo build --release --locked --bin {binary}")],
            "{path}"
        );
        assert!(binaries.contains(binary), "{binary} is a workspace [[bin]]");
        let builder_stage = name.as_deref().expect("a named builder stage");
        let copied: Vec<&str> = file
            .stage_copies
            .iter()
            .map(|(stage, source, destination)| {
                assert_eq!(stage, builder_stage);
                assert_eq!(Path::new(source).file_name().unwrap(), binary);
                destination.as_str()
            })
            .collect();
        assert_eq!(copied, destinations, "{path}");
        assert!(file.path.ends_with(".Dockerfile"));
    }
}

/// The `cargo build` each Dockerfile runs, run here: the binaries they copy build in
/// release mode, and run.
#[test]
fn dockerfile_cargo_builds_produce_the_binaries_they_copy() {
    let _one_at_a_time = RELEASE_BUILDS.lock().unwrap_or_else(|e| e.into_inner());
    let target = target_dir();
    for (path, binary, _) in DOCKERFILES {
        let file = parse_dockerfile(path);
        let build = &file.cargo_builds[0];
        let args: Vec<&str> = build.split_whitespace().skip(1).collect();
        run_ok(
            Command::new(cargo())
                .args(&args)
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(repo()),
        );
        let built = target.join("release").join(binary);
        assert!(
            built.is_file(),
            "{path}: `{build}` produced {}",
            built.display()
        );
        let help = run_ok(Command::new(&built).arg("--help"));
        assert!(!help.trim().is_empty(), "{binary} --help says something");
    }
    let version = run_ok(Command::new(target.join("release/roiergasias")).arg("version"));
    assert!(version.contains(&workspace_version()), "{version}");
}

#[test]
fn readme_image_commands_build_the_images_the_charts_and_examples_use() {
    let steps = readme_block("images");
    let version = workspace_version();
    let mut built = BTreeMap::new();
    for step in steps {
        let words: Vec<&str> = step.line.split_whitespace().collect();
        assert_eq!(&words[..2], ["docker", "build"], "{}", step.line);
        let after = |flag: &str| {
            words
                .iter()
                .position(|w| *w == flag)
                .map(|i| words[i + 1].to_string())
                .unwrap_or_else(|| panic!("{} lacks {flag}", step.line))
        };
        assert_eq!(words.last(), Some(&"."), "built from the repository root");
        built.insert(after("-t"), after("-f"));
    }
    assert_eq!(
        built,
        BTreeMap::from([
            (
                format!("roiergasias:{version}"),
                "docker/runner.Dockerfile".to_string()
            ),
            (
                format!("roiergasias-operator:{version}"),
                "docker/operator.Dockerfile".to_string()
            ),
        ])
    );
    // The chart's defaults are these tags.
    let deployment = template(CHART, "ops", &[]);
    let c = container(one(&deployment, "Deployment"));
    assert!(built.contains_key(str_at(c, "/image")));
    let runner = strings(&c["args"])[0].replace("--runner-image=", "");
    assert!(built.contains_key(&runner));
}
