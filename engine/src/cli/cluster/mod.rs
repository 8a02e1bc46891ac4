//! The cluster commands: Workflow resources on Kubernetes, reached as kubectl reaches them.
//! Built only with the `cluster` feature; the runner never starts their async runtime.

mod connect;
mod logs;
mod quiet;
mod retry;
mod submit;
mod suspend;
mod table;
mod watch;
mod wrap;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

use super::Failure;
use connect::Target;

/// Which cluster and namespace, as kubectl takes them.
#[derive(Args, Clone, Debug, Default)]
pub(crate) struct TargetArgs {
    /// The kubeconfig context to use (default: its current context).
    #[arg(long, value_name = "CONTEXT")]
    context: Option<String>,
    /// Namespace (default: the context's namespace, else `default`).
    #[arg(short, long, value_name = "NAMESPACE")]
    namespace: Option<String>,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Validate a workflow here, then create it as a Workflow resource and print its name.
    Submit {
        /// Workflow file, or `-` for standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// The Workflow's name (default: generated from the file's name).
        #[arg(long, value_name = "NAME", conflicts_with = "generate_name")]
        name: Option<String>,
        /// Let the cluster append a random suffix to PREFIX.
        #[arg(long, value_name = "PREFIX")]
        generate_name: Option<String>,
        /// Run the splits in this runner image (default: the operator's).
        #[arg(long, value_name = "IMAGE")]
        image: Option<String>,
        /// Show progress until the run ends; exit 0 on Succeeded, 1 on Failed.
        #[arg(short, long)]
        watch: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// List Workflows: name, phase, progress, node, age.
    List {
        /// Across all namespaces.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show a Workflow's splits, their attempts and outputs, and the environment carried.
    Get {
        name: String,
        /// Output format (default: tables).
        #[arg(short, long, value_enum)]
        output: Option<Output>,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Show a Workflow's progress until it ends; exit 0 on Succeeded, 1 on Failed.
    Watch {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Print each split's pod logs in order, each line prefixed `[split n · node]`.
    Logs {
        name: String,
        /// Only split N (from 1).
        #[arg(long, value_name = "N")]
        split: Option<u32>,
        /// Keep following, across splits as they start, until the run ends.
        #[arg(short, long)]
        follow: bool,
        /// Leave out the `[split n · node]` prefix.
        #[arg(long)]
        no_prefix: bool,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Ask the operator to run a Failed Workflow again from its failed split (or --from-split),
    /// and print its answer: exit 0 when accepted, 1 when refused.
    Retry {
        name: String,
        /// Run again from split N (from 1; at most the failed split); later splits' outputs are
        /// dropped.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        from_split: Option<u32>,
        /// Then show progress until the run ends; exit 0 on Succeeded, 1 on Failed.
        #[arg(short, long)]
        watch: bool,
        /// Seconds the operator has to answer.
        #[arg(long, value_name = "SECONDS", default_value_t = 30,
              value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Hold a Workflow before its next split: a running Job finishes, no further split starts.
    Suspend {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Let a suspended Workflow start its next split.
    Resume {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
    /// Delete a Workflow, and with it its ConfigMaps, Jobs and pods.
    Delete {
        name: String,
        #[command(flatten)]
        target: TargetArgs,
    },
}

/// `get -o`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Output {
    Wide,
    Json,
    Yaml,
}

/// Runs one cluster command on a runtime of its own (one thread: the commands wait on the network).
pub(crate) fn run(command: Command) -> Result<(), Failure> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Step(format!("cannot start the async runtime: {e}")))?;
    tracing::dispatcher::with_default(&quiet::Quiet::current(), || {
        runtime.block_on(dispatch(command))
    })
}

async fn dispatch(command: Command) -> Result<(), Failure> {
    match command {
        Command::Submit {
            file,
            name,
            generate_name,
            image,
            watch,
            target,
        } => {
            let request = submit::Request {
                file,
                name,
                generate_name,
                image,
            };
            // Checked before any connection: an invalid file sends nothing.
            let workflow = request.workflow()?;
            let target = Target::connect(&target).await?;
            let name = submit::create(&target, &workflow).await?;
            println!("workflow.batch.ankursoni.github.io/{name} created");
            if watch {
                watch::run(&target, &name).await?;
            }
            Ok(())
        }
        Command::List {
            all_namespaces,
            target,
        } => {
            let target = Target::connect(&target).await?;
            table::list(&target, all_namespaces).await
        }
        Command::Get {
            name,
            output,
            target,
        } => {
            let target = Target::connect(&target).await?;
            table::get(&target, &name, output).await
        }
        Command::Watch { name, target } => {
            let target = Target::connect(&target).await?;
            watch::run(&target, &name).await
        }
        Command::Logs {
            name,
            split,
            follow,
            no_prefix,
            target,
        } => {
            let target = Target::connect(&target).await?;
            let options = logs::Options {
                split,
                follow,
                prefix: !no_prefix,
            };
            logs::run(&target, &name, options).await
        }
        Command::Retry {
            name,
            from_split,
            watch,
            timeout,
            target,
        } => {
            let target = Target::connect(&target).await?;
            let options = retry::Options {
                from_split,
                watch,
                timeout: Duration::from_secs(timeout),
            };
            retry::run(&target, &name, options).await
        }
        Command::Suspend { name, target } => {
            let target = Target::connect(&target).await?;
            suspend::run(&target, &name, true).await
        }
        Command::Resume { name, target } => {
            let target = Target::connect(&target).await?;
            suspend::run(&target, &name, false).await
        }
        Command::Delete { name, target } => {
            let target = Target::connect(&target).await?;
            submit::delete(&target, &name).await
        }
    }
}

/// Invoked as `kubectl-roiergasias` (kubectl's plugin name), the binary is the plugin.
pub(crate) fn plugin_name(argv0: &std::ffi::OsStr) -> Option<&'static str> {
    let base = std::path::Path::new(argv0).file_name()?.to_str()?;
    let base = base.strip_suffix(".exe").unwrap_or(base);
    base.ends_with("kubectl-roiergasias")
        .then_some("kubectl roiergasias")
}
