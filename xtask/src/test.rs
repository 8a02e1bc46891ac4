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
        match progress::run_with_ticker(&mut cmd, name) {
            Ok(s) if s.success() => record(
                name,
                Outcome::Passed,
                format!("({})", progress::human(t.elapsed())),
            ),
            Ok(s) => record(
                name,
                Outcome::Failed,
                format!("({s}, {})", progress::human(t.elapsed())),
            ),
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
    if interrupted.load(Ordering::SeqCst) {
        record("run", Outcome::Failed, "interrupted by Ctrl-C".into());
    }
    finish(steps, started)
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
