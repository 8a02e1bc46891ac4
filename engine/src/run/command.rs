//! Starting one command and waiting for it, with output going to our standard output.

use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;
use nix::sys::wait::WaitStatus;
use nix::unistd::Pid;

use super::reap::{self, Leftovers};
use super::signals::{self, signal_name};
use super::terminal;

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

/// Runs `command` to completion in a process group of its own, which is noted in
/// `leftovers` if something it started is still running. Its stdout and stderr both go
/// to our stdout, so a workflow's output is one ordered stream and our stderr holds only
/// our own logs.
pub fn run(
    command: &mut Command,
    leftovers: &mut Leftovers,
) -> std::io::Result<Result<(), Outcome>> {
    // Anything we printed must come out before the child's output.
    std::io::stdout().flush()?;
    let stdout = std::io::stdout().as_fd().try_clone_to_owned()?;
    let stderr = stdout.try_clone()?;
    command
        .stdout(Stdio::from(stdout))
        .stderr(Stdio::from(stderr))
        // Still posix_spawn (POSIX_SPAWN_SETPGROUP): no fork, no pre_exec.
        .process_group(0);
    let child = command.spawn()?;
    let pid = Pid::from_raw(child.id() as i32);
    let terminal = terminal::hand_over(pid);
    signals::set_group(pid);
    let status = loop {
        match reap::wait_for(pid, terminal.is_some()) {
            // Ctrl-Z stopped the command: stop too, so that the shell we run in sees its
            // job stop, and go on where we were once continued (`fg`).
            Ok(WaitStatus::Stopped(..)) => terminal::suspend(pid),
            status => break status,
        }
    };
    signals::clear_group();
    let had_terminal = terminal.is_some();
    drop(terminal);
    leftovers.note(pid);
    let outcome = outcome(status?);
    if had_terminal && outcome == Err(Outcome::Signalled(Signal::SIGINT as i32)) {
        // Ctrl-C went to the command alone, as it had the terminal.
        signals::note(Signal::SIGINT);
    }
    Ok(outcome)
}

fn outcome(status: WaitStatus) -> Result<(), Outcome> {
    match status {
        WaitStatus::Exited(_, 0) => Ok(()),
        WaitStatus::Exited(_, code) => Err(Outcome::Exited(code)),
        WaitStatus::Signaled(_, sig, _) => Err(Outcome::Signalled(sig as i32)),
        // wait_for returns only the two above.
        _ => Err(Outcome::Exited(-1)),
    }
}
