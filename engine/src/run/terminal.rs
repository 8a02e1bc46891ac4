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
    Some(Handed { ours })
}

impl Drop for Handed {
    fn drop(&mut self) {
        let stdin = std::io::stdin();
        set_foreground(stdin.as_fd(), self.ours);
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
