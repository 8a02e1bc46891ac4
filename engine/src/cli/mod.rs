//! Commands, their arguments, and the exit-code contract:
//! 0 success, 1 a step failed, 2 the workflow is invalid or unreadable.

#[cfg(feature = "cluster")]
mod cluster;
mod progress;

use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{CommandFactory, Parser, Subcommand};
use roiergasias_engine::{MAX_WORKFLOW_BYTES, Split, Workflow, outputs};
use tracing::{debug, error, info, warn};

use progress::{LogFormat, Progress, human};

/// Where Kubernetes reads a container's termination message from.
const TERMINATION_LOG: &str = "/dev/termination-log";

#[derive(Parser)]
#[command(
    name = "roiergasias",
    version,
    about = "Run YAML workflows on this machine or, split per node, as Kubernetes Jobs",
    after_help = "Exit codes: 0 success, 1 a step failed, 2 the workflow is invalid or unreadable.\n\
Step output goes to standard output; progress and errors go to standard error."
)]
struct Cli {
    /// Also log each command's words and each variable set.
    #[arg(short, long, global = true)]
    debug: bool,
    /// How progress and errors are written to standard error.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a workflow here (every task runs on this machine; `node` is ignored).
    Run {
        /// Workflow file, or `-` for standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Write the outputs (JSON) here, or the error text on failure.
        /// Default: /dev/termination-log when it exists and is writable.
        #[arg(long, value_name = "PATH")]
        outputs_file: Option<PathBuf>,
    },
    /// Check a workflow without running it; prints a summary or every error.
    Validate {
        /// Workflow file, or `-` for standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
    },
    /// Print the per-node workflows as a YAML stream, one document per task.
    Split {
        /// Workflow file, or `-` for standard input.
        #[arg(short, long, value_name = "FILE")]
        file: PathBuf,
        /// Print only split N (1-based), as the operator makes it.
        #[arg(long, value_name = "N")]
        index: Option<usize>,
    },
    /// Print the version.
    Version,
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    #[cfg(feature = "cluster")]
    #[command(flatten)]
    Cluster(cluster::Command),
}

/// A failure with its exit code; the text may span lines.
enum Failure {
    /// Exit 2: unreadable or invalid.
    Invalid(String),
    /// Exit 1: a step (or writing outputs) failed.
    Step(String),
}

impl Failure {
    fn text(&self) -> &str {
        match self {
            Failure::Invalid(t) | Failure::Step(t) => t,
        }
    }
    fn code(&self) -> ExitCode {
        match self {
            Failure::Invalid(_) => ExitCode::from(2),
            Failure::Step(_) => ExitCode::from(1),
        }
    }
}

pub fn main() -> ExitCode {
    let cli = parse_args();
    progress::init(cli.log_format, cli.debug);
    let result = match cli.command {
        Command::Run { file, outputs_file } => run(&file, outputs_file),
        Command::Validate { file } => validate(&file),
        Command::Split { file, index } => split(&file, index),
        Command::Version => {
            println!("roiergasias {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "roiergasias",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        #[cfg(feature = "cluster")]
        Command::Cluster(command) => cluster::run(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            error!("{}", failure.text());
            failure.code()
        }
    }
}

/// The arguments; run as `kubectl-roiergasias`, help and errors name `kubectl roiergasias`.
fn parse_args() -> Cli {
    #[cfg(feature = "cluster")]
    if let Some(name) = std::env::args_os()
        .next()
        .and_then(|a| cluster::plugin_name(&a))
    {
        use clap::FromArgMatches;
        let matches = Cli::command().bin_name(name).get_matches();
        return Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    }
    Cli::parse()
}

fn display_name(file: &Path) -> String {
    if file.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        file.display().to_string()
    }
}

/// Reads and validates the workflow, checking `{{env:…}}` names against this process.
fn load(file: &Path) -> Result<Workflow, Failure> {
    let name = display_name(file);
    let mut bytes = Vec::new();
    let limit = MAX_WORKFLOW_BYTES as u64 + 1;
    let read = if file.as_os_str() == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(file).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    read.map_err(|e| Failure::Invalid(format!("cannot read workflow {name}: {e}")))?;
    if bytes.len() > MAX_WORKFLOW_BYTES {
        return Err(Failure::Invalid(format!(
            "{name}: the workflow is larger than the {} MiB limit",
            MAX_WORKFLOW_BYTES / (1024 * 1024)
        )));
    }
    let text = roiergasias_engine::workflow_text(&bytes)
        .map_err(|e| Failure::Invalid(e.display_for(&name)))?;
    roiergasias_engine::parse_with_process_env(text).map_err(|e| invalid(&name, &e, ""))
}

/// `name` failed validation: how many problems, `after` that, then each problem indented.
fn invalid(name: &str, error: &roiergasias_engine::WorkflowError, after: &str) -> Failure {
    let count = error.total();
    let plural = if count == 1 { "" } else { "s" };
    let lines: Vec<String> = error
        .display_for(name)
        .lines()
        .map(|l| format!("  {l}"))
        .collect();
    Failure::Invalid(format!(
        "{name} is invalid ({count} problem{plural}){after}:\n{}",
        lines.join("\n")
    ))
}

fn validate(file: &Path) -> Result<(), Failure> {
    let workflow = load(file)?;
    let splits = roiergasias_engine::split_count(&workflow);
    println!(
        "{} is valid: {} task{}, {} step{}, {} split{}",
        display_name(file),
        workflow.tasks.len(),
        plural(workflow.tasks.len()),
        workflow.step_count(),
        plural(workflow.step_count()),
        splits,
        plural(splits)
    );
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// Writes one document at a time: all splits together can be quadratic in the input's size
/// (every task setting its own variable), so they are never held at once.
fn split(file: &Path, index: Option<usize>) -> Result<(), Failure> {
    let workflow = load(file)?;
    let total = roiergasias_engine::split_count(&workflow);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let write_error = |e: std::io::Error| Failure::Step(format!("writing to standard output: {e}"));
    match index {
        Some(n) => {
            let s = roiergasias_engine::split_at(&workflow, n).ok_or_else(|| {
                Failure::Invalid(format!(
                    "{}: there is no split {n}: the workflow has {total} split{} (numbered from 1)",
                    display_name(file),
                    plural(total)
                ))
            })?;
            write_split(&mut out, &s, total).map_err(write_error)?;
        }
        None => {
            for s in roiergasias_engine::splits(&workflow) {
                write_split(&mut out, &s, total).map_err(write_error)?;
            }
        }
    }
    out.flush().map_err(write_error)
}

fn write_split(out: &mut impl Write, s: &Split, total: usize) -> std::io::Result<()> {
    match &s.node {
        Some(node) => writeln!(out, "--- # split {}/{total} on node {node}", s.index)?,
        None => writeln!(out, "--- # split {}/{total}", s.index)?,
    }
    out.write_all(s.workflow.to_yaml().as_bytes())
}

fn run(file: &Path, outputs_file: Option<PathBuf>) -> Result<(), Failure> {
    let target = outputs_target(outputs_file);
    let result = run_inner(file, target.as_deref());
    if let (Err(failure), Some(target)) = (&result, &target) {
        // On failure the termination message is the error itself, for `kubectl describe`.
        if let Err(e) = write_file(target, &outputs::fit_message(failure.text())) {
            warn!("could not write the error to {}: {e}", target.display());
        }
    }
    result
}

fn run_inner(file: &Path, target: Option<&Path>) -> Result<(), Failure> {
    let workflow = load(file)?;
    let name = display_name(file);
    info!(
        event = "run_started",
        tasks = workflow.tasks.len(),
        steps = workflow.step_count(),
        "running {name}: {} task{}, {} step{}",
        workflow.tasks.len(),
        plural(workflow.tasks.len()),
        workflow.step_count(),
        plural(workflow.step_count())
    );
    roiergasias_engine::run::forward_signals();
    let started = Instant::now();
    let vars = roiergasias_engine::run::run(&workflow, &mut Progress)
        .map_err(|e| Failure::Step(e.to_string()))?;
    let json = outputs::encode_outputs(&vars).map_err(|e| Failure::Step(e.to_string()))?;
    match target {
        Some(target) => {
            write_file(target, &json).map_err(|e| {
                Failure::Step(format!("writing outputs to {}: {e}", target.display()))
            })?;
            debug!("outputs written to {}: {json}", target.display());
        }
        None => debug!("outputs (not written, no --outputs-file): {json}"),
    }
    info!(
        event = "run_finished",
        duration_ms = started.elapsed().as_secs_f64() * 1000.0,
        "{name} finished in {}",
        human(started.elapsed())
    );
    Ok(())
}

/// `--outputs-file`, else the termination log when it exists and is writable.
fn outputs_target(flag: Option<PathBuf>) -> Option<PathBuf> {
    flag.or_else(|| {
        let path = Path::new(TERMINATION_LOG);
        OpenOptions::new()
            .write(true)
            .open(path)
            .ok()
            .map(|_| path.to_path_buf())
    })
}

fn write_file(path: &Path, text: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(text.as_bytes())
}
