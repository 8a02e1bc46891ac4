//! Benchmarks that time whole processes; each prints figures as ratios measured in one run.

mod engine;
mod figures;
mod floor;
mod operator;
mod plot;
mod pods;
mod process;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The engine: execute overhead, validate/split scaling, peak memory.
    Engine,
    /// The operator on the test cluster: hand-off latency, API writes, memory.
    Operator(operator::OperatorArgs),
    /// The floor `bench operator` measures the operator against (it starts this itself): creates
    /// ConfigMap and Job n+1 of each chain when Job n is Complete, and nothing else.
    Floor(floor::FloorArgs),
    /// A PNG of `bench operator --json` files: hand-off latency and memory against workflows.
    Plot(plot::PlotArgs),
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine => engine::run(),
        BenchCommand::Operator(args) => operator::run(&args),
        BenchCommand::Floor(args) => floor::run(&args),
        BenchCommand::Plot(args) => plot::run(&args),
    }
}

/// Builds `bin` of `package` in release mode and returns its path, as cargo reports it.
pub(crate) fn release_binary(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--message-format=json",
            "-p",
            package,
            "--bin",
            bin,
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build --release of {bin} failed");
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == bin
            && let Some(exe) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo did not report the {bin} executable")
}
