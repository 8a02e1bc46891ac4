//! Running a workflow on this machine: every task here, in order, `node` ignored.

mod command;
mod env_file;
mod limits;
mod reap;
mod signals;
mod terminal;

use std::collections::HashMap;
use std::ffi::OsString;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub use command::Outcome;
pub use env_file::{EnvFileError, MAX_ENV_FILE_BYTES, parse_env_bytes, parse_env_file};
pub use limits::{MAX_ARGUMENT_BYTES, MAX_VALUE_BYTES, MAX_VARIABLES_BYTES};
pub use reap::GRACE;
pub use signals::{forward_signals, signal_name};

use crate::model::{EnvVar, Step, Workflow};
use crate::substitute::substitute;
use limits::{Refused, Variables, substituted_len};
use reap::Leftovers;

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
    #[error("{at}: stopped by {signal}{}", if *.passed_on { " (passed on to the running command)" } else { "" })]
    Stopped {
        at: String,
        signal: &'static str,
        passed_on: bool,
    },
    #[error(
        "{at}: `{name}` would be {size} bytes, more than the {MAX_VALUE_BYTES}-byte limit for a variable's value{from}"
    )]
    ValueTooLarge {
        at: String,
        name: String,
        size: usize,
        from: String,
    },
    #[error(
        "{at}: setting `{name}` would make the workflow's variables {size} bytes in all (as NAME=value), more than the {MAX_VARIABLES_BYTES}-byte limit{from}"
    )]
    VariablesTooLarge {
        at: String,
        name: String,
        size: usize,
        from: String,
    },
    #[error(
        "{at}: {what} would be {size} bytes once substituted, more than the {limit}-byte limit"
    )]
    TextTooLarge {
        at: String,
        what: String,
        size: usize,
        limit: usize,
    },
    #[error("{at}: command `{command}` left a {ENV_FILE_VAR} file that {message}")]
    EnvFileRefused {
        at: String,
        command: String,
        message: String,
    },
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
    /// Something went wrong that does not change the run's result.
    fn warning(&mut self, _message: &str) {}
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
/// Whatever the result, what the commands left running is ended before it returns.
pub fn run(workflow: &Workflow, observer: &mut dyn Observer) -> Result<Vec<EnvVar>, RunError> {
    let mut runner = Runner {
        vars: Variables::default(),
        outputs: Vec::new(),
        observer,
        env_dir: None,
        commands: 0,
        leftovers: Leftovers::default(),
    };
    let result = runner.workflow(workflow);
    let stuck = runner.leftovers.end();
    if stuck > 0 {
        runner.observer.warning(&format!(
            "{stuck} process(es) that the commands started did not end after SIGTERM and SIGKILL"
        ));
    }
    result.map(|()| runner.outputs)
}

struct Runner<'o> {
    /// Workflow variables so far; they win over the process environment.
    vars: Variables,
    outputs: Vec<EnvVar>,
    observer: &'o mut dyn Observer,
    /// A private directory (0700) for the commands' outputs files, made at the first
    /// command. Files in a small directory of our own are cheaper to create than in a
    /// shared /tmp, and nobody else can plant or read them.
    env_dir: Option<tempfile::TempDir>,
    commands: usize,
    leftovers: Leftovers,
}

/// The error for a signal received: `at` is where the workflow stopped.
fn stopped(at: &dyn std::fmt::Display) -> Option<RunError> {
    signals::received().map(|sig| RunError::Stopped {
        at: at.to_string(),
        signal: signal_name(sig).unwrap_or("a signal"),
        passed_on: signals::passed_on(),
    })
}

impl Runner<'_> {
    fn workflow(&mut self, workflow: &Workflow) -> Result<(), RunError> {
        self.global_environment(&workflow.environment)?;
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
                self.observer.step_started(&at);
                let started = Instant::now();
                // A signal between steps stops the workflow before the next one starts.
                let mut result = match stopped(&at) {
                    Some(e) => Err(e),
                    None => self.step(&at, step),
                };
                // Stop after the step during which SIGTERM or SIGINT arrived, whatever its result.
                if let Some(e) = stopped(&at) {
                    result = Err(e);
                }
                self.observer
                    .step_finished(&at, started.elapsed(), result.is_ok());
                result?;
            }
        }
        Ok(())
    }

    fn lookup(&self, name: &str) -> Option<String> {
        self.vars
            .get(name)
            .cloned()
            .or_else(|| std::env::var(name).ok())
    }

    fn value_len(&self, name: &str) -> Option<usize> {
        match self.vars.get(name) {
            Some(value) => Some(value.len()),
            None => std::env::var_os(name).map(|v| v.len()),
        }
    }

    /// `text` substituted, or an error if it is larger than `limit` (checked first, so
    /// nothing large is built).
    fn fill(
        &self,
        at: &dyn std::fmt::Display,
        text: &str,
        limit: usize,
        too_large: impl FnOnce(usize) -> RunError,
    ) -> Result<String, RunError> {
        let size = self.substituted_len(text);
        if size > limit {
            return Err(too_large(size));
        }
        self.substitute(at, text)
    }

    /// `text` substituted; its size must have been checked.
    fn substitute(&self, at: &dyn std::fmt::Display, text: &str) -> Result<String, RunError> {
        substitute(text, |name| self.lookup(name)).map_err(|name| RunError::Undefined {
            at: at.to_string(),
            name: name.to_owned(),
        })
    }

    fn substituted_len(&self, text: &str) -> usize {
        substituted_len(text, |name| self.value_len(name))
    }

    /// The value of `var` once substituted, as a variable's value.
    fn fill_value(&self, at: &dyn std::fmt::Display, var: &EnvVar) -> Result<String, RunError> {
        self.fill(at, &var.value, MAX_VALUE_BYTES, |size| {
            RunError::ValueTooLarge {
                at: at.to_string(),
                name: var.name.clone(),
                size,
                from: String::new(),
            }
        })
    }

    fn global_environment(&mut self, environment: &[EnvVar]) -> Result<(), RunError> {
        let mut last = HashMap::new();
        for (i, var) in environment.iter().enumerate() {
            last.insert(var.name.as_str(), i);
        }
        for (i, var) in environment.iter().enumerate() {
            let at = format!("global environment, `{}`", var.name);
            match self.fill_value(&at, var) {
                Ok(value) => self.store(&at, &var.name, value, "")?,
                // Overridden later anyway (a split document's carried value that the
                // operator replaced with the earlier run's output): skip it.
                Err(RunError::Undefined { .. }) if last[var.name.as_str()] > i => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Sets a variable within the limits; `from` says where it came from, for errors.
    fn store(
        &mut self,
        at: &dyn std::fmt::Display,
        name: &str,
        value: String,
        from: &str,
    ) -> Result<(), RunError> {
        self.vars.set(name, value).map_err(|refused| {
            let (at, name, from) = (at.to_string(), name.to_owned(), from.to_owned());
            match refused {
                Refused::Value(size) => RunError::ValueTooLarge {
                    at,
                    name,
                    size,
                    from,
                },
                Refused::All(size) => RunError::VariablesTooLarge {
                    at,
                    name,
                    size,
                    from,
                },
            }
        })
    }

    /// Sets a variable that is one of the run's outputs.
    fn set(&mut self, at: &StepAt, var: EnvVar, source: &str) -> Result<(), RunError> {
        self.observer.detail(&format!(
            "{source} sets `{}` ({} bytes)",
            var.name,
            var.value.len()
        ));
        let from = match source {
            "environment step" => String::new(),
            _ => format!(" (from {source})"),
        };
        self.store(at, &var.name, var.value.clone(), &from)?;
        self.outputs.push(var);
        Ok(())
    }

    fn step(&mut self, at: &StepAt, step: &Step) -> Result<(), RunError> {
        match step {
            Step::Print(messages) => self.print(at, messages),
            Step::Environment(vars) => {
                for var in vars {
                    let value = self.fill_value(at, var)?;
                    self.set(at, EnvVar::new(var.name.clone(), value), "environment step")?;
                }
                Ok(())
            }
            Step::Execute(items) => {
                for item in items {
                    let (program, args) = self.words(at, item)?;
                    self.observer
                        .detail(&format!("{at}: running {:?} {:?}", program, args));
                    let mut command = command::new(&program, self.path().as_deref());
                    command.args(args);
                    self.command(at, item, command)?;
                }
                Ok(())
            }
            Step::Shell(items) => {
                for item in items {
                    // The script is trusted text: substituted values become shell code here.
                    let script = self.fill(at, item, MAX_ARGUMENT_BYTES, |size| {
                        RunError::TextTooLarge {
                            at: at.to_string(),
                            what: format!("script `{}`", shorten(item)),
                            size,
                            limit: MAX_ARGUMENT_BYTES,
                        }
                    })?;
                    self.observer
                        .detail(&format!("{at}: running sh -c {script:?}"));
                    let mut command = command::new("sh", self.path().as_deref());
                    command.arg("-c").arg(&script);
                    self.command(at, item, command)?;
                }
                Ok(())
            }
        }
    }

    /// Each message on its own line; all of them within [`MAX_VARIABLES_BYTES`].
    fn print(&mut self, at: &StepAt, messages: &[String]) -> Result<(), RunError> {
        let size: usize = messages.iter().map(|m| self.substituted_len(m) + 1).sum();
        if size > MAX_VARIABLES_BYTES {
            return Err(RunError::TextTooLarge {
                at: at.to_string(),
                what: "the messages".into(),
                size,
                limit: MAX_VARIABLES_BYTES,
            });
        }
        let mut text = String::new();
        for message in messages {
            text.push_str(&self.substitute(at, message)?);
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

    /// An `execute` item's words, split first, then each filled in: a value never adds
    /// words or code. Each word, and all of them, within the limits.
    fn words(&self, at: &StepAt, item: &str) -> Result<(String, Vec<String>), RunError> {
        let bad = |message: &str| RunError::BadCommand {
            at: at.to_string(),
            command: item.to_owned(),
            message: message.into(),
        };
        let words = shell_words::split(item).map_err(|_| bad("unbalanced quotes"))?;
        let too_large = |size, limit| RunError::TextTooLarge {
            at: at.to_string(),
            what: format!("command `{}`", shorten(item)),
            size,
            limit,
        };
        let sizes = words.iter().map(|w| self.substituted_len(w));
        if let Some(size) = sizes.clone().find(|s| *s > MAX_ARGUMENT_BYTES) {
            return Err(too_large(size, MAX_ARGUMENT_BYTES));
        }
        let total: usize = sizes.sum();
        if total > MAX_VARIABLES_BYTES {
            return Err(too_large(total, MAX_VARIABLES_BYTES));
        }
        let mut words = words
            .iter()
            .map(|w| self.substitute(at, w))
            .collect::<Result<Vec<_>, _>>()?
            .into_iter();
        let program = words.next().ok_or_else(|| bad("empty command"))?;
        Ok((program, words.collect()))
    }

    /// The PATH the command will get, where it is looked up.
    fn path(&self) -> Option<OsString> {
        self.vars
            .get("PATH")
            .map(OsString::from)
            .or_else(|| std::env::var_os("PATH"))
    }

    /// Runs one command with the workflow variables exported and a fresh outputs file.
    fn command(&mut self, at: &StepAt, shown: &str, mut command: Command) -> Result<(), RunError> {
        // A signal stops the workflow before the next item of a step, too.
        if let Some(e) = stopped(at) {
            return Err(e);
        }
        let env_file = self.env_file(at)?;
        command
            .envs(self.vars.iter())
            .env(ENV_FILE_VAR, &env_file.path);
        match command::run(&mut command, &mut self.leftovers) {
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
        self.outputs_of(at, shown, &env_file)
    }

    /// A fresh path for a command's outputs file, in our private directory. The file is
    /// made by the command when it first appends (`>>` creates it): most commands write
    /// nothing, and creating and deleting a file for each of them was a tenth of our cost.
    fn env_file(&mut self, at: &StepAt) -> Result<EnvFile, RunError> {
        if self.env_dir.is_none() {
            let dir = tempfile::Builder::new()
                .prefix("roiergasias-")
                .permissions(std::fs::Permissions::from_mode(0o700))
                .tempdir()
                .map_err(|error| RunError::Io {
                    at: at.to_string(),
                    what: format!(
                        "creating the {ENV_FILE_VAR} file in {} (set TMPDIR to a writable directory)",
                        std::env::temp_dir().display()
                    ),
                    error,
                })?;
            self.env_dir = Some(dir);
        }
        self.commands += 1;
        let path = self
            .env_dir
            .as_ref()
            .map(|d| d.path().join(format!("env-{}", self.commands)))
            .unwrap_or_default();
        Ok(EnvFile { path })
    }

    /// Reads what the command wrote to its outputs file and sets those variables.
    fn outputs_of(&mut self, at: &StepAt, shown: &str, file: &EnvFile) -> Result<(), RunError> {
        let bytes = match env_file::read_env_file(&file.path) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return Ok(()),
            Err(message) => {
                return Err(RunError::EnvFileRefused {
                    at: at.to_string(),
                    command: shown.to_owned(),
                    message,
                });
            }
        };
        let vars = parse_env_bytes(&bytes).map_err(|e| RunError::EnvFile {
            at: at.to_string(),
            command: shown.to_owned(),
            line: e.line,
            message: e.message,
        })?;
        let source = format!("{ENV_FILE_VAR} of `{}`", shorten(shown));
        for var in vars {
            self.set(at, var, &source)?;
        }
        Ok(())
    }
}

/// A command's text cut for a message.
fn shorten(text: &str) -> String {
    match text.char_indices().nth(80) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// An outputs file's path; the file is removed when done with (the directory goes at
/// the end of the run).
struct EnvFile {
    path: PathBuf,
}

impl Drop for EnvFile {
    fn drop(&mut self) {
        // Not following a symlink the command may have left there, nor emptying a directory.
        let _ = std::fs::remove_file(&self.path).or_else(|_| std::fs::remove_dir(&self.path));
    }
}
