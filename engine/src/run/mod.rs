//! Running a workflow on this machine: every task here, in order, `node` ignored.

mod command;
mod env_file;
mod signals;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub use command::Outcome;
pub use env_file::{EnvFileError, parse_env_file};
pub use signals::forward_signals;

use crate::model::{EnvVar, Step, Workflow};
use crate::substitute::substitute;

/// Name of the variable holding the path of a command's outputs file.
pub const ENV_FILE_VAR: &str = "ROIERGASIAS_ENV";

/// Why a run stopped. `Display` names the task, step and command.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("{at}: `{{{{env:{name}}}}}` refers to undefined variable `{name}`")]
    Undefined { at: String, name: String },
    #[error("{at}: command `{command}` {outcome}")]
    Failed {
        at: String,
        command: String,
        outcome: Outcome,
    },
    #[error("{at}: could not start command `{command}`: {error}{hint}")]
    Start {
        at: String,
        command: String,
        error: std::io::Error,
        hint: &'static str,
    },
    #[error("{at}: `{command}`: {message}")]
    BadCommand {
        at: String,
        command: String,
        message: String,
    },
    #[error("{at}: command `{command}` wrote a malformed line {line} to {ENV_FILE_VAR}: {message}")]
    EnvFile {
        at: String,
        command: String,
        line: usize,
        message: String,
    },
    #[error("{at}: stopped by {signal}{}", if *.signal == "SIGTERM" { " (passed on to the running command)" } else { "" })]
    Stopped { at: String, signal: &'static str },
    #[error("{at}: {what}: {error}")]
    Io {
        at: String,
        what: String,
        error: std::io::Error,
    },
}

/// What the runner reports as it goes; the CLI turns these into progress lines.
pub trait Observer {
    fn step_started(&mut self, _at: &StepAt) {}
    fn step_finished(&mut self, _at: &StepAt, _took: Duration, _ok: bool) {}
    /// Detail for `--debug`: commands with their words, variables set.
    fn detail(&mut self, _message: &str) {}
}

/// Where a step sits: 1-based numbers and totals.
#[derive(Debug, Clone)]
pub struct StepAt {
    pub task: usize,
    pub tasks: usize,
    pub step: usize,
    pub steps: usize,
    pub kind: &'static str,
}

impl std::fmt::Display for StepAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "task {}, step {} ({})", self.task, self.step, self.kind)
    }
}

/// Observer that reports nothing.
pub struct Quiet;
impl Observer for Quiet {}

/// Runs `workflow`, printing to standard output; returns the variables set during the
/// run (environment steps and `ROIERGASIAS_ENV` lines, in the order they were set).
pub fn run(workflow: &Workflow, observer: &mut dyn Observer) -> Result<Vec<EnvVar>, RunError> {
    let mut runner = Runner {
        vars: HashMap::new(),
        outputs: Vec::new(),
        observer,
        env_dir: None,
        commands: 0,
    };
    runner.global_environment(&workflow.environment)?;
    let tasks = workflow.tasks.len();
    for (t, task) in workflow.tasks.iter().enumerate() {
        for (s, step) in task.steps.iter().enumerate() {
            let at = StepAt {
                task: t + 1,
                tasks,
                step: s + 1,
                steps: task.steps.len(),
                kind: step.kind(),
            };
            runner.observer.step_started(&at);
            let started = Instant::now();
            // A signal between steps stops the workflow before the next one starts.
            let mut result = match signals::received() {
                Some(_) => Ok(()),
                None => runner.step(&at, step),
            };
            // Stop after the step during which SIGTERM or SIGINT arrived, whatever its result.
            if let Some(sig) = signals::received() {
                result = Err(RunError::Stopped {
                    at: at.to_string(),
                    signal: command::signal_name(sig).unwrap_or("a signal"),
                });
            }
            runner
                .observer
                .step_finished(&at, started.elapsed(), result.is_ok());
            result?;
        }
    }
    Ok(runner.outputs)
}

struct Runner<'o> {
    /// Workflow variables so far; they win over the process environment.
    vars: HashMap<String, String>,
    outputs: Vec<EnvVar>,
    observer: &'o mut dyn Observer,
    /// A private directory (0700) for the commands' outputs files, made at the first
    /// command. Files in a small directory of our own are cheaper to create than in a
    /// shared /tmp, and nobody else can plant or read them.
    env_dir: Option<tempfile::TempDir>,
    commands: usize,
}

impl Runner<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }

    fn fill(&self, at: &dyn std::fmt::Display, text: &str) -> Result<String, RunError> {
        substitute(text, |name| self.lookup(name)).map_err(|name| RunError::Undefined {
            at: at.to_string(),
            name: name.to_owned(),
        })
    }

    fn global_environment(&mut self, environment: &[EnvVar]) -> Result<(), RunError> {
        let mut last = HashMap::new();
        for (i, var) in environment.iter().enumerate() {
            last.insert(var.name.as_str(), i);
        }
        for (i, var) in environment.iter().enumerate() {
            let at = format!("global environment, `{}`", var.name);
            match self.fill(&at, &var.value) {
                Ok(value) => {
                    self.vars.insert(var.name.clone(), value);
                }
                // Overridden later anyway (a split document's carried value that the
                // operator replaced with the earlier run's output): skip it.
                Err(RunError::Undefined { .. }) if last[var.name.as_str()] > i => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn set(&mut self, var: EnvVar, source: &str) {
        self.observer.detail(&format!(
            "{source} sets `{}` ({} bytes)",
            var.name,
            var.value.len()
        ));
        self.vars.insert(var.name.clone(), var.value.clone());
        self.outputs.push(var);
    }

    fn step(&mut self, at: &StepAt, step: &Step) -> Result<(), RunError> {
        match step {
            Step::Print(messages) => {
                let mut text = String::new();
                for message in messages {
                    text.push_str(&self.fill(at, message)?);
                    text.push('\n');
                }
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|error| RunError::Io {
                        at: at.to_string(),
                        what: "writing to standard output".into(),
                        error,
                    })
            }
            Step::Environment(vars) => {
                for var in vars {
                    let value = self.fill(at, &var.value)?;
                    self.set(EnvVar::new(var.name.clone(), value), "environment step");
                }
                Ok(())
            }
            Step::Execute(items) => {
                for item in items {
                    let words = shell_words::split(item).map_err(|_| RunError::BadCommand {
                        at: at.to_string(),
                        command: item.clone(),
                        message: "unbalanced quotes".into(),
                    })?;
                    // Split first, then fill in each word: a value never adds words or code.
                    let words = words
                        .iter()
                        .map(|w| self.fill(at, w))
                        .collect::<Result<Vec<_>, _>>()?;
                    let Some((program, args)) = words.split_first() else {
                        return Err(RunError::BadCommand {
                            at: at.to_string(),
                            command: item.clone(),
                            message: "empty command".into(),
                        });
                    };
                    self.observer
                        .detail(&format!("{at}: running {:?} {:?}", program, args));
                    let path = self
                        .vars
                        .get("PATH")
                        .map(OsString::from)
                        .or_else(|| std::env::var_os("PATH"));
                    let mut command = command::new(program, path.as_deref());
                    command.args(args);
                    self.command(at, item, command)?;
                }
                Ok(())
            }
            Step::Shell(items) => {
                for item in items {
                    // The script is trusted text: substituted values become shell code here.
                    let script = self.fill(at, item)?;
                    self.observer
                        .detail(&format!("{at}: running sh -c {script:?}"));
                    let path = self
                        .vars
                        .get("PATH")
                        .map(OsString::from)
                        .or_else(|| std::env::var_os("PATH"));
                    let mut command = command::new("sh", path.as_deref());
                    command.arg("-c").arg(&script);
                    self.command(at, item, command)?;
                }
                Ok(())
            }
        }
    }

    /// Runs one command with the workflow variables exported and a fresh outputs file.
    fn command(&mut self, at: &StepAt, shown: &str, mut command: Command) -> Result<(), RunError> {
        let io_error = |error| RunError::Io {
            at: at.to_string(),
            what: format!(
                "creating the {ENV_FILE_VAR} file in {} (set TMPDIR to a writable directory)",
                std::env::temp_dir().display()
            ),
            error,
        };
        if self.env_dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("roiergasias-")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                .map_err(io_error)?;
            self.env_dir = Some(dir);
        }
        self.commands += 1;
        let path = self
            .env_dir
            .as_ref()
            .map(|d| d.path().join(format!("env-{}", self.commands)))
            .unwrap_or_default();
        // A fresh path per command, in our private directory. The file is made by the
        // command when it first appends (`>>` creates it): most commands write nothing,
        // and creating and deleting a file for each of them was a tenth of our cost.
        let env_file = EnvFile { path };
        command.envs(&self.vars).env(ENV_FILE_VAR, &env_file.path);
        match command::run(&mut command) {
            Ok(Ok(())) => {}
            Ok(Err(outcome)) => {
                return Err(RunError::Failed {
                    at: at.to_string(),
                    command: shown.to_owned(),
                    outcome,
                });
            }
            Err(error) => {
                let hint = match error.kind() {
                    std::io::ErrorKind::NotFound => " (is it installed and on PATH?)",
                    std::io::ErrorKind::PermissionDenied => " (is it executable?)",
                    _ => "",
                };
                return Err(RunError::Start {
                    at: at.to_string(),
                    command: shown.to_owned(),
                    error,
                    hint,
                });
            }
        }
        let bytes = match std::fs::read(&env_file.path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(error) => {
                return Err(RunError::Io {
                    at: at.to_string(),
                    what: format!("reading {ENV_FILE_VAR} after `{shown}`"),
                    error,
                });
            }
        };
        let text = String::from_utf8(bytes).map_err(|_| RunError::BadCommand {
            at: at.to_string(),
            command: shown.to_owned(),
            message: format!("wrote text that is not UTF-8 to {ENV_FILE_VAR}"),
        })?;
        let vars = parse_env_file(&text).map_err(|e| RunError::EnvFile {
            at: at.to_string(),
            command: shown.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        for var in vars {
            self.set(var, ENV_FILE_VAR);
        }
        Ok(())
    }
}

/// An outputs file's path; the file is removed when done with (the directory goes at
/// the end of the run).
struct EnvFile {
    path: PathBuf,
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}
