//! `cargo xtask test`: the project's one test command.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;

use crate::cluster::Cluster;
use crate::{gen_crd, progress, tools};

#[derive(clap::Args)]
pub struct TestArgs {
    /// Leave the cluster running afterwards (it is always kept when it was already up before the run).
    #[arg(long)]
    keep_cluster: bool,
    /// Extra arguments for `cargo test` (after `--`), e.g. a test name filter.
    #[arg(last = true)]
    cargo_test_args: Vec<String>,
}

#[derive(Clone, Copy, PartialEq)]
enum Outcome {
    Passed,
    Failed,
    Skipped,
}

struct Step {
    name: String,
    outcome: Outcome,
    note: String,
}

pub fn run(args: TestArgs) -> anyhow::Result<()> {
    let interrupted = Arc::new(AtomicBool::new(false));
    {
        // Ctrl-C reaches the child (same process group) too; we only note it and still tear down.
        let flag = interrupted.clone();
        ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst))?;
    }
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut record = |name: &str, outcome: Outcome, note: String| {
        let mark = match outcome {
            Outcome::Passed => "ok",
            Outcome::Failed => "FAILED",
            Outcome::Skipped => "skipped",
        };
        eprintln!("==> {name}: {mark} {note}");
        steps.push(Step {
            name: name.to_string(),
            outcome,
            note,
        });
    };

    eprintln!("==> tools");
    if let Err(e) = tools::ensure() {
        record("tools", Outcome::Failed, format!("{e:#}"));
        return finish(steps, started);
    }
    record("tools", Outcome::Passed, String::new());

    let cluster = Cluster::from_env()?;
    eprintln!("==> cluster up ({})", cluster.name);
    let up = match cluster.up(crate::cluster::real::wanted_by_env()) {
        Ok(up) => up,
        Err(e) => {
            record("cluster up", Outcome::Failed, format!("{e:#}"));
            return finish(steps, started);
        }
    };
    record(
        "cluster up",
        Outcome::Passed,
        format!("kubeconfig {}", up.kubeconfig.display()),
    );
    // Real pods are part of the suite: without them the run fails, it does not quietly pass.
    match &up.no_real_nodes {
        None => record("real nodes", Outcome::Passed, "(2 Ready)".into()),
        Some(why) => record("real nodes", Outcome::Failed, format!("none: {why}")),
    }

    // The CRD must match the Rust types; gen-crd needs no cluster.
    if !interrupted.load(Ordering::SeqCst) {
        eprintln!("==> gen-crd --check");
        match gen_crd::run(true) {
            Ok(()) => record("gen-crd --check", Outcome::Passed, String::new()),
            Err(e) => record("gen-crd --check", Outcome::Failed, format!("{e:#}")),
        }
    }

    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut test = Command::new(&cargo);
    test.args(["test", "--workspace", "--no-fail-fast", "--"])
        .args(shared_run_test_args())
        .args(&args.cargo_test_args);
    test.env("KUBECONFIG", &up.kubeconfig)
        .env(tools::BIN_ENV, tools::bin_dir()?)
        .env(crate::cluster::NAME_ENV, &cluster.name);
    let mut fmt = Command::new(&cargo);
    fmt.args(["fmt", "--all", "--check"]);
    let mut clippy = Command::new(&cargo);
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);

    // The fault tests stop parts of the cluster every other test shares: alone, after them.
    let mut faults = Command::new(&cargo);
    faults
        .args(["test", "-p", "roiergasias-controller", "--test", "cluster"])
        .args(["--", "--ignored", "--test-threads=1", FAULT_TESTS]);
    faults
        .env("KUBECONFIG", &up.kubeconfig)
        .env(tools::BIN_ENV, tools::bin_dir()?)
        .env(crate::cluster::NAME_ENV, &cluster.name);
    for (name, mut cmd) in [
        ("cargo test", test),
        ("fault tests", faults),
        ("cargo fmt --check", fmt),
        ("cargo clippy", clippy),
    ] {
        if interrupted.load(Ordering::SeqCst) {
            record(name, Outcome::Skipped, "(interrupted)".into());
            continue;
        }
        if name == "fault tests" && !args.cargo_test_args.is_empty() {
            record(name, Outcome::Skipped, "(a test filter was given)".into());
            continue;
        }
        eprintln!("==> {name}");
        let t = Instant::now();
        match progress::run_teed(&mut cmd, name, Some(STEP_LIMIT)) {
            Ok(teed) => {
                let s = teed.status;
                let elapsed = progress::human(t.elapsed());
                // A filter that matches nothing passes: a fault step that ran none has failed.
                let none = name == "fault tests" && fault_count(&teed.output) == 0;
                let outcome = if s.success() && !none {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                };
                let mut real = match name {
                    "cargo test" => real_pod_summary(&teed.output),
                    "fault tests" => format!(", {} fault tests ran", fault_count(&teed.output)),
                    _ => String::new(),
                };
                if teed.overran {
                    real.push_str(&overrun_note(&teed.output));
                }
                let status = if s.success() {
                    String::new()
                } else {
                    format!("{s}, ")
                };
                record(name, outcome, format!("({status}{elapsed}){real}"));
            }
            Err(e) => record(name, Outcome::Failed, format!("{e:#}")),
        }
    }

    if up.reused || args.keep_cluster {
        let why = if up.reused {
            "it was already up before this run"
        } else {
            "--keep-cluster"
        };
        record(
            "cluster down",
            Outcome::Skipped,
            format!("(left running: {why})"),
        );
    } else {
        eprintln!("==> cluster down");
        match cluster.down() {
            Ok(()) => record("cluster down", Outcome::Passed, String::new()),
            Err(e) => record("cluster down", Outcome::Failed, format!("{e:#}")),
        }
    }
    if up.no_real_nodes.is_none() && !interrupted.load(Ordering::SeqCst) && !up.reused {
        // These own the host's real nodes, so they run once the shared cluster is down.
        let name = "real-node life cycle";
        eprintln!("==> {name}");
        let mut cmd = Command::new(&cargo);
        cmd.args([
            "test",
            "-p",
            "xtask",
            "--test",
            "real_nodes",
            "--",
            "--ignored",
        ]);
        let t = Instant::now();
        match progress::run_teed(&mut cmd, name, Some(STEP_LIMIT)) {
            Ok(teed) if teed.status.success() => record(
                name,
                Outcome::Passed,
                format!("({})", progress::human(t.elapsed())),
            ),
            Ok(teed) if teed.overran => record(
                name,
                Outcome::Failed,
                format!("({}){}", teed.status, overrun_note(&teed.output)),
            ),
            Ok(teed) => record(name, Outcome::Failed, format!("({})", teed.status)),
            Err(e) => record(name, Outcome::Failed, format!("{e:#}")),
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        record("run", Outcome::Failed, "interrupted by Ctrl-C".into());
    }
    finish(steps, started)
}

/// How long each of `cargo test`, fmt and clippy may run (builds included) before it counts as
/// hung and is ended: the whole suite, cold, takes about 25 minutes, and CI gives 90 to all of
/// `.ci/run`. Without it a test stuck for ever ends the CI run with no summary.
const STEP_LIMIT: Duration = Duration::from_secs(45 * 60);

/// `; ended after running past its limit, still running then: a, b` from cargo test's output:
/// the tests the harness reported as running over 60 seconds that never reported a result.
fn overrun_note(output: &str) -> String {
    let ended: std::collections::HashSet<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("test "))
        .filter_map(|l| l.split_once(" ... ").map(|(name, _)| name))
        .collect();
    let mut stuck: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("test "))
        .filter_map(|l| l.strip_suffix(" has been running for over 60 seconds"))
        .filter(|name| !ended.contains(name))
        .collect();
    stuck.dedup();
    if stuck.is_empty() {
        return format!(
            "; ended after running past its limit of {}",
            progress::human(STEP_LIMIT)
        );
    }
    format!(
        "; ended after running past its limit of {}, still running then: {}",
        progress::human(STEP_LIMIT),
        stuck.join(", ")
    )
}

/// The xtask tests that own the host's real nodes (xtask/tests/real_nodes.rs). Ignored like the
/// cluster tests, they run only once the shared cluster is down, so the shared run skips them.
const REAL_NODE_TESTS: &[&str] =
    &["down_restores_the_host_and_a_killed_run_is_cleared_by_the_next_up"];

/// The cluster binary's module of fault tests (controller/tests/cluster/faults.rs), run on the
/// shared cluster once the other tests are done.
const FAULT_TESTS: &str = "faults::";

/// Test-binary arguments of the run on the shared cluster: the cluster tests are `#[ignore]`d (a
/// plain `cargo test` needs no cluster), so include them, all but [`REAL_NODE_TESTS`] and the
/// [`FAULT_TESTS`].
fn shared_run_test_args() -> Vec<&'static str> {
    let mut args = vec!["--include-ignored", "--skip", FAULT_TESTS];
    for name in REAL_NODE_TESTS {
        args.extend(["--skip", name]);
    }
    args
}

/// The cluster binary's modules whose tests run real pods on the real nodes.
const REAL_POD_MODULES: &[&str] = &["real_pods::", "real_lifecycle::"];

/// `, N real-pod tests ran (P passed, F failed)` from cargo test's output: the results of the
/// cluster binary's [`REAL_POD_MODULES`] tests (`test real_pods::name ... ok`).
fn real_pod_summary(output: &str) -> String {
    let results: Vec<&str> = output
        .lines()
        .filter_map(|l| l.strip_prefix("test "))
        .filter(|l| REAL_POD_MODULES.iter().any(|m| l.starts_with(m)))
        .filter_map(|l| l.rsplit_once(" ... ").map(|(_, result)| result.trim()))
        .collect();
    let passed = results.iter().filter(|r| **r == "ok").count();
    let failed = results.iter().filter(|r| r.starts_with("FAILED")).count();
    if passed + failed == 0 {
        return ", no real-pod test ran".into();
    }
    format!(
        ", {} real-pod tests ran ({passed} passed, {failed} failed)",
        passed + failed
    )
}

/// How many fault tests reported a result in the fault step's output.
fn fault_count(output: &str) -> usize {
    output
        .lines()
        .filter_map(|l| l.strip_prefix("test "))
        .filter(|l| l.starts_with(FAULT_TESTS) && l.contains(" ... "))
        .count()
}

fn finish(steps: Vec<Step>, started: Instant) -> anyhow::Result<()> {
    eprintln!("\nsummary ({}):", progress::human(started.elapsed()));
    for s in &steps {
        let mark = match s.outcome {
            Outcome::Passed => "ok     ",
            Outcome::Failed => "FAILED ",
            Outcome::Skipped => "skipped",
        };
        let note = s.note.lines().next().unwrap_or("");
        eprintln!("  {mark} {} {note}", s.name);
    }
    let failed: Vec<_> = steps
        .iter()
        .filter(|s| s.outcome == Outcome::Failed)
        .map(|s| s.name.as_str())
        .collect();
    if !failed.is_empty() {
        bail!("failed: {}", failed.join(", "));
    }
    eprintln!("all passed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{REAL_NODE_TESTS, overrun_note, real_pod_summary, shared_run_test_args};

    #[test]
    fn an_overrun_names_the_tests_that_never_finished() {
        let output = "test a ... ok\n\
            test b has been running for over 60 seconds\n\
            test c has been running for over 60 seconds\n\
            test b ... ok\n";
        let note = overrun_note(output);
        assert!(note.ends_with("still running then: c"), "{note}");
        assert!(!overrun_note("test a ... ok\n").contains("still running"));
    }

    #[test]
    fn real_pod_tests_are_counted_from_their_results() {
        let output = "     Running tests/cluster/main.rs (target/debug/deps/cluster-1)\n\
            test splits::three_splits_run_in_order ... ok\n\
            test real_pods::a ... ok\n\
            test real_pods::b ... FAILED\n\
            test real_pods::c ... ok\n\
            test real_pods::d ... ignored, needs a cluster: cargo xtask test\n\
            test real_pods::e ... ok\n\
            test real_lifecycle::f ... ok\n\
            test real_lifecycle::g ... FAILED\n\
            test lifecycle::h ... ok\n\
            test result: FAILED. 6 passed; 2 failed; 1 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            real_pod_summary(output),
            ", 6 real-pod tests ran (4 passed, 2 failed)"
        );
        assert_eq!(
            real_pod_summary("test splits::x ... ok\ntest result: ok. 5 passed;"),
            ", no real-pod test ran"
        );
    }

    /// Every ignored test of xtask/tests/real_nodes.rs is skipped on the shared cluster: one added
    /// there without a name here would take the host's real nodes from under the shared run.
    #[test]
    fn the_shared_run_skips_every_real_node_test() {
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/real_nodes.rs");
        let text = std::fs::read_to_string(file).expect("reading tests/real_nodes.rs");
        let mut ignored = Vec::new();
        let mut lines = text.lines();
        while let Some(line) = lines.next() {
            if line.trim_start().starts_with("#[ignore") {
                let name = lines
                    .by_ref()
                    .map(str::trim_start)
                    .find_map(|l| l.strip_prefix("async fn ").or(l.strip_prefix("fn ")))
                    .and_then(|l| l.split('(').next())
                    .expect("an ignored fn");
                ignored.push(name.to_owned());
            }
        }
        assert!(!ignored.is_empty(), "tests/real_nodes.rs has ignored tests");
        let args = shared_run_test_args();
        assert_eq!(args[0], "--include-ignored");
        for name in &ignored {
            assert!(
                REAL_NODE_TESTS.contains(&name.as_str()),
                "{name} is not skipped"
            );
            assert!(
                args.windows(2).any(|w| w == ["--skip", name.as_str()]),
                "{args:?}"
            );
        }
    }
}
