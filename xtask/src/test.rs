//! `cargo xtask test`: the project's one test command.

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

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
    test.args(["test", "--workspace", "--no-fail-fast"]);
    if !args.cargo_test_args.is_empty() {
        test.arg("--").args(&args.cargo_test_args);
    }
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

    for (name, mut cmd) in [
        ("cargo test", test),
        ("cargo fmt --check", fmt),
        ("cargo clippy", clippy),
    ] {
        if interrupted.load(Ordering::SeqCst) {
            record(name, Outcome::Skipped, "(interrupted)".into());
            continue;
        }
        eprintln!("==> {name}");
        let t = Instant::now();
        match progress::run_teed(&mut cmd, name) {
            Ok((s, output)) => {
                let elapsed = progress::human(t.elapsed());
                let outcome = if s.success() {
                    Outcome::Passed
                } else {
                    Outcome::Failed
                };
                let real = if name == "cargo test" {
                    real_pod_summary(&output)
                } else {
                    String::new()
                };
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
        match progress::run_with_ticker(&mut cmd, name) {
            Ok(s) if s.success() => record(
                name,
                Outcome::Passed,
                format!("({})", progress::human(t.elapsed())),
            ),
            Ok(s) => record(name, Outcome::Failed, format!("({s})")),
            Err(e) => record(name, Outcome::Failed, format!("{e:#}")),
        }
    }
    if interrupted.load(Ordering::SeqCst) {
        record("run", Outcome::Failed, "interrupted by Ctrl-C".into());
    }
    finish(steps, started)
}

/// `, N real-pod tests ran (P passed, F failed)` from cargo test's output for tests/real_pods.rs.
fn real_pod_summary(output: &str) -> String {
    let mut lines = output
        .lines()
        .skip_while(|l| !l.contains("tests/real_pods.rs"));
    let Some(result) = lines.find(|l| l.starts_with("test result:")) else {
        return ", no real-pod test ran".into();
    };
    let count = |word: &str| -> u32 {
        result
            .split(';')
            .find_map(|part| {
                part.trim()
                    .trim_start_matches("test result: ok.")
                    .trim_start_matches("test result: FAILED.")
                    .trim()
                    .strip_suffix(word)
            })
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0)
    };
    let (passed, failed) = (count("passed"), count("failed"));
    format!(
        ", {} real-pod tests ran ({passed} passed, {failed} failed)",
        passed + failed
    )
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
    use super::real_pod_summary;

    #[test]
    fn real_pod_tests_are_counted_from_their_binarys_result() {
        let output = "     Running tests/operator_splits.rs (target/debug/deps/operator_splits-1)\n\
            test result: ok. 9 passed; 0 failed; 0 ignored\n\
                 Running tests/real_pods.rs (target/debug/deps/real_pods-2)\n\
            test a ... ok\n\
            test result: FAILED. 3 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(
            real_pod_summary(output),
            ", 4 real-pod tests ran (3 passed, 1 failed)"
        );
        assert_eq!(
            real_pod_summary("test result: ok. 5 passed;"),
            ", no real-pod test ran"
        );
    }
}
