//! What every part of the walkthrough uses: the repository, commands that must succeed or fail,
//! and YAML read as JSON values.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

pub(crate) use roiergasias_testkit::cluster::tools_dir;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Repository, tools and processes

pub(crate) fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the controller crate sits in the workspace")
        .to_path_buf()
}

pub(crate) fn read(relative: &str) -> String {
    std::fs::read_to_string(repo().join(relative))
        .unwrap_or_else(|e| panic!("cannot read {relative}: {e}"))
}

pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

pub(crate) fn helm() -> Command {
    Command::new(tools_dir().join("helm"))
}

/// Runs a command that must succeed; returns its standard output.
pub(crate) fn run_ok(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// Runs a command that must fail; returns its standard error.
pub(crate) fn run_err(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
    assert!(
        !out.status.success(),
        "{command:?} succeeded but should have failed:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

pub(crate) fn workspace_version() -> String {
    let manifest = read("Cargo.toml");
    let package = manifest
        .split("[workspace.package]")
        .nth(1)
        .expect("a [workspace.package] table");
    package
        .lines()
        .find_map(|l| l.trim().strip_prefix("version = "))
        .map(|v| v.trim_matches('"').to_string())
        .expect("a workspace version")
}

/// The `[[bin]]` names of the workspace's packages.
pub(crate) fn workspace_binaries() -> BTreeSet<String> {
    let mut bins = BTreeSet::new();
    for member in ["engine", "crd", "controller", "xtask"] {
        let manifest = read(&format!("{member}/Cargo.toml"));
        for table in manifest.split("[[bin]]").skip(1) {
            if let Some(name) = table.lines().find_map(|l| l.trim().strip_prefix("name = ")) {
                bins.insert(name.trim_matches('"').to_string());
            }
        }
    }
    bins
}

/// Where `cargo test` put its binaries, so release builds share the target dir.
pub(crate) fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR").filter(|d| !d.is_empty()) {
        let dir = PathBuf::from(dir);
        return if dir.is_absolute() {
            dir
        } else {
            repo().join(dir)
        };
    }
    Path::new(env!("CARGO_BIN_EXE_roiergasias-operator"))
        .parent()
        .and_then(Path::parent)
        .expect("the operator binary sits in <target>/<profile>/")
        .to_path_buf()
}

/// Release builds are expensive on two cores: one at a time.
pub(crate) static RELEASE_BUILDS: Mutex<()> = Mutex::new(());

// ---------------------------------------------------------------------------
// YAML and JSON

pub(crate) fn yaml_documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("invalid YAML: {e}\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

pub(crate) fn yaml(text: &str) -> Value {
    let mut docs = yaml_documents(text);
    assert_eq!(docs.len(), 1, "expected one YAML document:\n{text}");
    docs.remove(0)
}

pub(crate) fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no string at {pointer} in {value:#}"))
}

pub(crate) fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| s.as_str().expect("a string").to_string())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn by_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter()
        .filter(|d| d.get("kind").and_then(Value::as_str) == Some(kind))
        .collect()
}

pub(crate) fn one<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    let found = by_kind(docs, kind);
    assert_eq!(found.len(), 1, "expected one {kind}, found {}", found.len());
    found[0]
}
