//! The terminal, when a run is interactive.
//!
//! A command in a process group of its own is in the background of our terminal: reading
//! from it would stop the command (SIGTTIN) for ever. So while a command runs, its group
//! is the terminal's foreground group, as a shell does for a job, and Ctrl-C goes to it.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal, killpg, pthread_sigmask};
use nix::unistd::{Pid, getpgrp, tcgetpgrp, tcsetpgrp};

/// Gives the terminal back to us when dropped.
pub(crate) struct Handed {
    ours: Pid,
    group: Pid,
}

/// Makes `group` the foreground group of standard input's terminal, if it is one and
/// it is ours (a run in the background of a shell leaves it alone).
pub(crate) fn hand_over(group: Pid) -> Option<Handed> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return None;
    }
    let ours = getpgrp();
    let fd = stdin.as_fd();
    if tcgetpgrp(fd).ok()? != ours {
        return None;
    }
    tcsetpgrp(fd, group).ok()?;
    // It may have tried to read before it was in the foreground, and stopped.
    let _ = killpg(group, Signal::SIGCONT);
    Some(Handed { ours, group })
}

/// The running command (`group`) was stopped from the terminal: gives the terminal back
/// to our group and stops us; once we are continued, continues the command.
pub(crate) fn suspend(group: Pid) {
    let stdin = std::io::stdin();
    if tcgetpgrp(stdin.as_fd()) == Ok(group) {
        set_foreground(stdin.as_fd(), getpgrp());
    }
    let _ = nix::sys::signal::raise(Signal::SIGSTOP);
    // Continued in the foreground (`fg`), the command gets the terminal back; in the
    // background (`bg`), it runs on without it.
    if tcgetpgrp(stdin.as_fd()) == Ok(getpgrp()) {
        set_foreground(stdin.as_fd(), group);
    }
    let _ = killpg(group, Signal::SIGCONT);
}

impl Drop for Handed {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        // Unless it went elsewhere meanwhile (we were continued in the background).
        if tcgetpgrp(stdin.as_fd()) == Ok(self.group) {
            set_foreground(stdin.as_fd(), self.ours);
        }
    }
}

/// tcsetpgrp from the background sends us SIGTTOU unless it is blocked.
fn set_foreground(fd: BorrowedFd<'_>, group: Pid) {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    if pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old)).is_ok() {
        let _ = tcsetpgrp(fd, group);
        let _ = pthread_sigmask(SigmaskHow::SIG_SETMASK, Some(&old), None);
    }
}
