//! SIGTERM and SIGINT: passed on to the running command's process group; the workflow stops.
//!
//! In a pod, `roiergasias` is PID 1: when the Job is deleted, Kubernetes sends SIGTERM to
//! it alone, and PID 1 ignores signals it has no handler for. Each command runs in a
//! process group of its own (so that what it starts in the background can be found and
//! ended), which also means a terminal's Ctrl-C reaches only us: both signals are passed on
//! to the whole group of the running command, and the workflow stops after it.

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, Ordering};

use nix::errno::Errno;
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, killpg, sigaction};
use nix::unistd::Pid;

/// The running command's process group, 0 when none.
static GROUP: AtomicI32 = AtomicI32::new(0);
/// The last signal received, 0 when none.
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// How many signals were received, and how many of them were passed on: the handler and
/// [`set_group`] race, and each signal should reach a command once.
static COUNT: AtomicU32 = AtomicU32::new(0);
static FORWARDED: AtomicU32 = AtomicU32::new(0);
/// Whether [`supervise`] ran: we then reap every child, orphans included.
static SUPERVISING: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(sig: nix::libc::c_int) {
    // The interrupted code may be about to read errno.
    let errno = Errno::last_raw();
    RECEIVED.store(sig, Ordering::SeqCst);
    let count = COUNT.fetch_add(1, Ordering::SeqCst) + 1;
    forward(GROUP.load(Ordering::SeqCst), count);
    Errno::set_raw(errno);
}

/// Sends the last signal to `group` unless signal number `count` was passed on already.
fn forward(group: i32, count: u32) {
    if group <= 0 {
        return;
    }
    let done = FORWARDED.load(Ordering::SeqCst);
    if done >= count
        || FORWARDED
            .compare_exchange(done, count, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
    {
        return;
    }
    if let Ok(sig) = Signal::try_from(RECEIVED.load(Ordering::SeqCst)) {
        // kill(2) is async-signal-safe; the group is our running command's.
        let _ = killpg(Pid::from_raw(group), sig);
    }
}

/// For the `roiergasias` binary (a library user keeps its own handlers and children):
/// installs the handlers for SIGTERM and SIGINT, and makes this process the reaper of
/// orphaned descendants (as PID 1 it is already), so that what commands leave running
/// can be found, ended and reaped.
pub fn forward_signals() {
    let action = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGTERM, Signal::SIGINT] {
        // SAFETY: the handler only touches atomics, errno and kill(2), all async-signal-safe.
        let _ = unsafe { sigaction(sig, &action) };
    }
    // Fails only on kernels older than 3.4; orphans then go to init, as before.
    let _ = nix::sys::prctl::set_child_subreaper(true);
    SUPERVISING.store(true, Ordering::SeqCst);
}

pub(crate) fn supervising() -> bool {
    SUPERVISING.load(Ordering::SeqCst)
}

/// The running command's process group (its leader's pid).
pub(crate) fn set_group(group: Pid) {
    GROUP.store(group.as_raw(), Ordering::SeqCst);
    // A signal that arrived while the command was starting found no group to send to.
    forward(group.as_raw(), COUNT.load(Ordering::SeqCst));
}

pub(crate) fn clear_group() {
    GROUP.store(0, Ordering::SeqCst);
}

/// Records `sig` as if received: a terminal's Ctrl-C that went to the command alone.
pub(crate) fn note(sig: Signal) {
    RECEIVED.store(sig as i32, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// The signal that asked us to stop, if any.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        sig => Some(sig),
    }
}

/// Whether a signal was passed on to a running command.
pub(crate) fn passed_on() -> bool {
    FORWARDED.load(Ordering::SeqCst) > 0
}

/// `SIGTERM` for 15, and so on.
pub fn signal_name(sig: i32) -> Option<&'static str> {
    Signal::try_from(sig).ok().map(Signal::as_str)
}
