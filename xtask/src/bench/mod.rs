//! Benchmarks that time whole processes; each prints figures as ratios measured in one run.

mod engine;
mod operator;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum BenchCommand {
    /// The engine: execute overhead, validate/split scaling, peak memory.
    Engine,
    /// The operator on the test cluster: hand-off latency, API writes, memory.
    Operator,
}

pub fn run(command: BenchCommand) -> anyhow::Result<()> {
    match command {
        BenchCommand::Engine => engine::run(),
        BenchCommand::Operator => operator::run(),
    }
}
