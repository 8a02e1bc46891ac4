//! Starting one command and waiting for it, with output going to our standard output.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};

/// A command for `program`, found on `path` (the PATH the child will get) when the name
/// has no `/`. Looking it up with `stat` is much cheaper than letting `execvp` try and
/// fail in every PATH directory, which dominated the cost of short commands. argv[0]
/// stays the name as written (multi-call binaries such as busybox rely on it).
pub fn new(program: &str, path: Option<&OsStr>) -> Command {
    if program.contains('/') {
        return Command::new(program);
    }
    let found = path.and_then(|path| {
        std::env::split_paths(path).find_map(|dir| {
            let candidate = if dir.as_os_str().is_empty() {
                PathBuf::from(".").join(program)
            } else {
                dir.join(program)
            };
            let meta = std::fs::metadata(&candidate).ok()?;
            (meta.is_file() && meta.permissions().mode() & 0o111 != 0).then_some(candidate)
        })
    });
    match found {
        Some(resolved) => {
            let mut command = Command::new(resolved);
            command.arg0(program);
            command
        }
        // Not found: let the OS report it, with its own error.
        None => Command::new(program),
    }
}

/// How a command ended when it did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signalled(i32),
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Exited(code) => write!(f, "exited with status {code}"),
            Outcome::Signalled(sig) => match signal_name(*sig) {
                Some(name) => write!(f, "was killed by signal {sig} ({name})"),
                None => write!(f, "was killed by signal {sig}"),
            },
        }
    }
}

/// Runs `command` to completion. Its stdout and stderr both go to our stdout, so a
/// workflow's output is one ordered stream and our stderr holds only our own logs.
pub fn run(command: &mut Command) -> std::io::Result<Result<(), Outcome>> {
    // Anything we printed must come out before the child's output.
    std::io::stdout().flush()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let stderr = stdout.try_clone()?;
    command
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr));
    let mut child = command.spawn()?;
    super::signals::set_child(child.id());
    let status = child.wait();
    super::signals::clear_child();
    Ok(outcome(status?))
}

fn outcome(status: ExitStatus) -> Result<(), Outcome> {
    if status.success() {
        Ok(())
    } else if let Some(code) = status.code() {
        Err(Outcome::Exited(code))
    } else {
        Err(Outcome::Signalled(status.signal().unwrap_or(0)))
    }
}

pub fn signal_name(sig: i32) -> Option<&'static str> {
    Some(match sig {
        1 => "SIGHUP",
        2 => "SIGINT",
        3 => "SIGQUIT",
        4 => "SIGILL",
        6 => "SIGABRT",
        8 => "SIGFPE",
        9 => "SIGKILL",
        11 => "SIGSEGV",
        13 => "SIGPIPE",
        14 => "SIGALRM",
        15 => "SIGTERM",
        _ => return None,
    })
}
