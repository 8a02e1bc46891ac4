//! Waiting for commands, reaping orphans, and ending what commands leave running.
//!
//! A command's background processes (`sleep 30 &` in a shell step) stay in its process
//! group; those that leave it (`setsid`) are still our descendants, and, since we are a
//! child subreaper (or PID 1), become our children when their parent exits. At the end
//! of a run both kinds get SIGTERM, then SIGKILL after [`GRACE`].

use std::collections::HashSet;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{Pid, getpgid, getpgrp};

use super::signals::supervising;

/// How long what is left running gets between SIGTERM and SIGKILL.
pub const GRACE: Duration = Duration::from_secs(3);
/// How long we wait, after SIGKILL, for processes that do not die (stuck in the kernel).
const KILL_WAIT: Duration = Duration::from_secs(2);

/// Waits for `pid` to end, or, with `stops`, to be stopped (Ctrl-Z on the terminal it
/// has). When supervising, any child is waited for, so orphans that were handed to us
/// are reaped as they end rather than left as zombies.
pub(crate) fn wait_for(pid: Pid, stops: bool) -> std::io::Result<WaitStatus> {
    let target = if supervising() { None } else { Some(pid) };
    let flags = stops.then_some(WaitPidFlag::WUNTRACED);
    loop {
        match waitpid(target, flags) {
            Ok(
                status @ (WaitStatus::Exited(p, _)
                | WaitStatus::Signaled(p, _, _)
                | WaitStatus::Stopped(p, _)),
            ) if p == pid => return Ok(status),
            Ok(_) | Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// Reaps children that have ended, without blocking.
fn reap_ended() {
    while let Ok(status) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
        if status == WaitStatus::StillAlive {
            break;
        }
    }
}

/// Process groups of commands that had members left when the command ended.
#[derive(Default)]
pub(crate) struct Leftovers {
    groups: Vec<Pid>,
}

impl Leftovers {
    /// Called once `group`'s leader (the command) has been reaped.
    pub(crate) fn note(&mut self, group: Pid) {
        // A group with a live member keeps its id: it cannot be reused meanwhile.
        if killpg(group, None).is_ok() {
            self.groups.push(group);
        }
    }

    /// Ends everything left: SIGTERM once to each, SIGKILL after [`GRACE`]. Returns how
    /// many processes were still there when we gave up (0 in all but kernel trouble).
    pub(crate) fn end(&mut self) -> usize {
        let started = Instant::now();
        let mut termed: HashSet<Pid> = HashSet::new();
        let mut tick = Duration::from_millis(1);
        loop {
            if supervising() {
                reap_ended();
            }
            self.groups.retain(|g| killpg(*g, None).is_ok());
            let children = if supervising() {
                children()
            } else {
                Vec::new()
            };
            if self.groups.is_empty() && children.is_empty() {
                return 0;
            }
            let elapsed = started.elapsed();
            if elapsed > GRACE + KILL_WAIT {
                return self.groups.len() + children.len();
            }
            let sig = if elapsed > GRACE {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            for (pid, group) in self.targets(&children) {
                if sig == Signal::SIGKILL || termed.insert(pid) {
                    let _ = if group {
                        killpg(pid, sig)
                    } else {
                        kill(pid, sig)
                    };
                }
            }
            std::thread::sleep(tick);
            tick = (tick * 2).min(Duration::from_millis(50));
        }
    }
}

impl Leftovers {
    /// Each group, then each child not in one of them: (pid, whether it is a group).
    fn targets(&self, children: &[Pid]) -> Vec<(Pid, bool)> {
        let own = getpgrp();
        let mut targets: Vec<(Pid, bool)> = self.groups.iter().map(|g| (*g, true)).collect();
        for &child in children {
            match getpgid(Some(child)) {
                Ok(group) if self.groups.contains(&group) => {}
                // An orphan that leads its own group (it called setsid): end the group too.
                Ok(group) if group == child && group != own => targets.push((child, true)),
                _ => targets.push((child, false)),
            }
        }
        targets
    }
}

/// Our children: after every command has been reaped, orphans handed to us.
fn children() -> Vec<Pid> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for task in tasks.flatten() {
        // Space-separated pids (Linux 3.5+, CONFIG_PROC_CHILDREN).
        if let Ok(text) = std::fs::read_to_string(task.path().join("children")) {
            found.extend(
                text.split_ascii_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .map(Pid::from_raw),
            );
        }
    }
    found
}
