//! Project tasks: `cargo xtask gen-crd | tools | images | cluster | test | bench`.

mod bench;
mod cluster;
mod gen_crd;
mod images;
mod progress;
mod test;
mod tools;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "roiergasias project tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write the Workflow CRD into the Helm chart's crds/ folder.
    GenCrd {
        /// Fail instead of writing when the committed CRD differs.
        #[arg(long)]
        check: bool,
    },
    /// Build (once, cached) the Kubernetes control plane, etcd, kwok and helm.
    Tools {
        #[command(subcommand)]
        command: Option<tools::ToolsCommand>,
    },
    /// Build (offline, cached) OCI image archives: pause, runner, machine-learning (real pods), operator.
    Images(images::ImagesArgs),
    /// Manage the throwaway test cluster.
    Cluster {
        #[command(subcommand)]
        command: cluster::ClusterCommand,
    },
    /// The project's one test command.
    Test(test::TestArgs),
    /// Benchmarks; figures go in the README.
    Bench {
        #[command(subcommand)]
        command: bench::BenchCommand,
    },
}

fn main() -> std::process::ExitCode {
    let result = match Cli::parse().command {
        Command::GenCrd { check } => gen_crd::run(check),
        Command::Tools { command } => tools::run(command),
        Command::Images(args) => images::run(args),
        Command::Cluster { command } => cluster::run(command),
        Command::Test(args) => test::run(args),
        Command::Bench { command } => bench::run(command),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // The causes, without the backtrace anyhow prints from `main` when RUST_BACKTRACE is
        // set (CI sets it for the tests): the failing step was already reported above.
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
