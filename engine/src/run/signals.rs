//! Passing SIGTERM on to the running command.
//!
//! In a pod, `roiergasias` is PID 1: when the Job is deleted, Kubernetes sends SIGTERM to
//! it alone, and PID 1 ignores signals it has no handler for. Without forwarding, the
//! command would run on until SIGKILL at the end of the grace period, with no chance to
//! clean up. With it, the command gets SIGTERM, and the workflow stops after it.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

/// The running command's pid, 0 when none.
static CHILD: AtomicI32 = AtomicI32::new(0);
/// The last signal received, 0 when none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Whether SIGTERM was already sent to the running command: the handler and `set_child`
/// race, and the command should get it once.
static FORWARDED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: libc::c_int) {
    RECEIVED.store(sig, Ordering::SeqCst);
    // SIGINT from a terminal already reaches the whole process group; send only SIGTERM on.
    if sig == libc::SIGTERM {
        forward_term(CHILD.load(Ordering::SeqCst));
    }
}

fn forward_term(pid: i32) {
    if pid > 0 && !FORWARDED.swap(true, Ordering::SeqCst) {
        // SAFETY: kill is async-signal-safe; pid is our own child's.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

/// Installs the handlers for SIGTERM and SIGINT. For the CLI: a library user keeps its own.
pub fn forward_signals() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        // SAFETY: the handler only touches atomics and calls kill, both async-signal-safe.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

pub(crate) fn set_child(pid: u32) {
    FORWARDED.store(false, Ordering::SeqCst);
    CHILD.store(pid as i32, Ordering::SeqCst);
    // SIGTERM that arrived while the command was starting found no pid to send to.
    if RECEIVED.load(Ordering::SeqCst) == libc::SIGTERM {
        forward_term(pid as i32);
    }
}

pub(crate) fn clear_child() {
    CHILD.store(0, Ordering::SeqCst);
}

/// The signal that asked us to stop, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}
