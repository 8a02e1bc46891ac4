//! Signals and what commands leave running: SIGTERM and SIGINT reach the command's whole
//! process group, the rest of the step does not run, and nothing outlives the workflow.
//! Synchronisation is by lines the workflow prints and pid files it writes; the only time
//! bound is a hang guard. What is left running writes nowhere, so that a run that leaves
//! it behind ends (and fails its check) rather than holding the test's pipe open.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{Dir, bin};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;

/// How long any run or wait may take before the test calls it a hang.
const HANG: Duration = Duration::from_secs(60);

/// Kills process group `group` after [`HANG`] (which ends every blocked read of its
/// output), or as soon as it is dropped unfinished (a failed test leaves nothing behind).
struct HangGuard {
    done: Option<mpsc::Sender<()>>,
    watchdog: Option<JoinHandle<bool>>,
}

impl HangGuard {
    fn start(group: Pid) -> HangGuard {
        let (done, guard) = mpsc::channel::<()>();
        let watchdog = std::thread::spawn(move || match guard.recv_timeout(HANG) {
            Ok(()) => false,
            Err(ended) => {
                let _ = killpg(group, Signal::SIGKILL);
                ended == RecvTimeoutError::Timeout
            }
        });
        HangGuard {
            done: Some(done),
            watchdog: Some(watchdog),
        }
    }

    /// Whether the guard had to end the run.
    fn hung(mut self) -> bool {
        let _ = self.done.take().unwrap().send(());
        self.watchdog.take().unwrap().join().unwrap()
    }
}

impl Drop for HangGuard {
    fn drop(&mut self) {
        // Unfinished: the sender goes, and the watchdog ends the group at once.
        drop(self.done.take());
    }
}

/// Polls `probe` until it answers, panicking with `what` after [`HANG`].
fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(answer) = probe() {
            return answer;
        }
        assert!(start.elapsed() < HANG, "hung waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A run of workflow `text` (with `{dir}` replaced by a scratch directory).
struct Run {
    child: Child,
    stdout: BufReader<ChildStdout>,
    dir: Dir,
    guard: Option<HangGuard>,
}

impl Run {
    fn start(text: &str) -> Run {
        let dir = Dir::temp();
        let text = text.replace("{dir}", dir.0.path().to_str().unwrap());
        let file = dir.file("w.yaml", text);
        let mut child = bin()
            .args(["run", "-f", &file])
            // A group of its own, for the hang guard to end with all it runs.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let guard = Some(HangGuard::start(Pid::from_raw(child.id() as i32)));
        Run {
            child,
            stdout,
            dir,
            guard,
        }
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(self.child.id() as i32)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line
    }

    fn signal(&self, sig: Signal) {
        kill(self.pid(), sig).unwrap();
    }

    /// A pid the workflow wrote to `{dir}/name`.
    fn pid_file(&self, name: &str) -> Pid {
        let text = std::fs::read_to_string(self.dir.path(name)).unwrap();
        Pid::from_raw(text.trim().parse().unwrap())
    }

    /// Waits for the run to end (its group is killed a minute after the start: a hang);
    /// returns the exit code, the rest of stdout, and stderr.
    fn finish(&mut self) -> (i32, String, String) {
        let mut rest = String::new();
        self.stdout.read_to_string(&mut rest).unwrap();
        let mut stderr = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = self.child.wait().unwrap();
        let hung = self.guard.take().unwrap().hung();
        assert!(!hung, "hung; stderr:\n{stderr}");
        (status.code().expect("exited"), rest, stderr)
    }
}

/// Whether `pid` is a live (not zombie) `sleep`: a pid reused by anything else is not it.
fn sleep_alive(pid: Pid) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat.rsplit(')').next().unwrap_or("").trim_start();
    stat.contains("(sleep)") && !state.starts_with('Z')
}

fn assert_gone(pids: &[Pid]) {
    let alive: Vec<_> = pids.iter().filter(|p| sleep_alive(**p)).collect();
    for pid in &alive {
        let _ = kill(**pid, Signal::SIGKILL);
    }
    assert!(alive.is_empty(), "still running after the run: {alive:?}");
}

#[test]
fn sigterm_reaches_the_command_group_and_the_rest_of_the_step_does_not_run() {
    // The command survives SIGTERM (exit 0): only the stop check keeps item 2 from running.
    let mut run = Run::start(
        r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'trap "echo got TERM; exit 0" TERM; sleep 300 >/dev/null 2>&1 & echo $! > {dir}/grandchild; echo ready; wait'
          - echo never-item
      - print: [never-step]
"#,
    );
    assert_eq!(run.line(), "ready\n");
    let grandchild = run.pid_file("grandchild");
    run.signal(Signal::SIGTERM);
    let (code, rest, stderr) = run.finish();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(rest, "got TERM\n", "{stderr}");
    assert!(
        stderr.contains(
            "error: task 1, step 1 (shell): stopped by SIGTERM (passed on to the running command)"
        ),
        "{stderr}"
    );
    assert_gone(&[grandchild]);
}

#[test]
fn sigint_is_passed_on_and_stops_the_workflow() {
    // sh starts `&` jobs with SIGINT ignored: the sleep is ended when the run ends.
    let mut run = Run::start(
        r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'trap "echo got INT; exit 0" INT; sleep 300 >/dev/null 2>&1 & echo $! > {dir}/grandchild; echo ready; wait'
          - echo never-item
      - print: [never-step]
"#,
    );
    assert_eq!(run.line(), "ready\n");
    let grandchild = run.pid_file("grandchild");
    run.signal(Signal::SIGINT);
    let (code, rest, stderr) = run.finish();
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(rest, "got INT\n", "{stderr}");
    assert!(
        stderr.contains(
            "error: task 1, step 1 (shell): stopped by SIGINT (passed on to the running command)"
        ),
        "{stderr}"
    );
    assert_gone(&[grandchild]);
}

#[test]
fn nothing_a_command_started_outlives_a_successful_run() {
    // In the command's group, double-forked (an orphan at once), and out of the group
    // with setsid. The second command sees the last two handed to roiergasias.
    let mut run = Run::start(
        r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'sleep 300 >/dev/null 2>&1 & echo $! > {dir}/background; (sleep 300 >/dev/null 2>&1 & echo $! > {dir}/orphan); setsid sleep 300 >/dev/null 2>&1 & echo $! > {dir}/session'
          - 'for f in orphan session; do awk "{print \$4}" /proc/$(cat {dir}/$f)/stat; done'
      - print: [done]
"#,
    );
    let (first, second) = (run.line(), run.line());
    let parent = run.pid().to_string();
    assert_eq!((first.trim(), second.trim()), (&*parent, &*parent));
    let pids = ["background", "orphan", "session"].map(|f| run.pid_file(f));
    let (code, rest, stderr) = run.finish();
    assert_eq!((code, rest.as_str()), (0, "done\n"), "{stderr}");
    assert_gone(&pids);
}

#[test]
fn leftovers_end_with_a_failed_run_too() {
    let mut run = Run::start(
        r#"version: 0.1
task:
  - sequential:
      - shell: ['setsid sleep 300 >/dev/null 2>&1 & echo $! > {dir}/session; exit 3']
"#,
    );
    let (code, _, stderr) = run.finish();
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("exited with status 3"), "{stderr}");
    assert_gone(&[run.pid_file("session")]);
}

#[test]
fn a_leftover_that_ignores_sigterm_is_killed_after_the_grace_period() {
    // The first command returns once the leftover has set its trap (its pid file exists).
    let mut run = Run::start(
        r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'sh -c "trap \"\" TERM; echo \$\$ > {dir}/stubborn.tmp; mv {dir}/stubborn.tmp {dir}/stubborn; exec sleep 300" >/dev/null 2>&1 & while [ ! -e {dir}/stubborn ]; do sleep 0.01; done'
      - print: [done]
"#,
    );
    let (code, rest, stderr) = run.finish();
    assert_eq!((code, rest.as_str()), (0, "done\n"), "{stderr}");
    assert_gone(&[run.pid_file("stubborn")]);
}

#[test]
fn as_pid_1_orphans_are_reaped_while_the_run_goes_on() {
    // A new pid namespace makes roiergasias PID 1, as in a pod; needs CAP_SYS_ADMIN.
    let probe = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "true"])
        .status();
    if !probe.is_ok_and(|s| s.success()) {
        // Not as an ordinary user; CI runs as root and must not skip it.
        assert!(
            std::env::var_os("CI").is_none(),
            "unshare --pid is not permitted here"
        );
        eprintln!("skipped: unshare --pid is not permitted here");
        return;
    }
    let dir = Dir::temp();
    let file = dir.file(
        "w.yaml",
        r#"version: 0.1
task:
  - sequential:
      - shell: ['for i in 1 2 3 4 5 6 7 8; do (sh -c "exit 0" &); done']
      - shell:
          - 'for try in $(seq 200); do z=$(grep -l "^State:.*Z" /proc/[0-9]*/status 2>/dev/null | wc -l); [ "$z" -eq 0 ] && break; sleep 0.01; done; echo "pid $PPID, zombies $z"'
"#,
    );
    let out = std::process::Command::new("unshare")
        .args(["--pid", "--fork", "--mount-proc", "--kill-child"])
        .arg(env!("CARGO_BIN_EXE_roiergasias"))
        .args(["run", "-f", &file])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        (out.status.code(), stdout.trim()),
        (Some(0), "pid 1, zombies 0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Workflow `text` running on a terminal (util-linux `script` makes one), once it printed
/// `ready`.
struct Terminal {
    child: Child,
    shown: BufReader<ChildStdout>,
    /// What the terminal showed so far.
    seen: String,
    _dir: Dir,
}

impl Terminal {
    fn start(text: &str) -> Terminal {
        let dir = Dir::temp();
        let file = dir.file("w.yaml", text);
        // `script` runs the command with `$SHELL -c`. With `exec`, roiergasias is its child
        // whatever the shell: dash does not exec a lone command, and in between it would get
        // the Ctrl-C too and exit 130, and would not stop with its child on Ctrl-Z.
        let command = format!("exec {} run -f {file}", env!("CARGO_BIN_EXE_roiergasias"));
        let mut child = std::process::Command::new("timeout")
            .args(["-k", "5", "60", "script", "-qec", &command, "/dev/null"])
            .env("SHELL", "/bin/sh")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("util-linux `script` (Debian's bsdutils) makes the terminal");
        let shown = BufReader::new(child.stdout.take().unwrap());
        let mut terminal = Terminal {
            child,
            shown,
            seen: String::new(),
            _dir: dir,
        };
        while !terminal.seen.contains("ready") {
            let mut line = String::new();
            let read = terminal.shown.read_line(&mut line).unwrap();
            assert!(read > 0, "ended early: {}", terminal.seen);
            terminal.seen.push_str(&line);
        }
        terminal
    }

    fn type_in(&mut self, input: &[u8]) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(input).unwrap();
        stdin.flush().unwrap();
    }

    /// The exit code and all the terminal showed.
    fn finish(mut self) -> (i32, String) {
        self.shown.read_to_string(&mut self.seen).unwrap();
        let code = self.child.wait().unwrap().code().unwrap();
        assert!(![124, 137].contains(&code), "hung: {}", self.seen);
        (code, self.seen)
    }
}

#[test]
fn on_a_terminal_a_command_can_read_it_and_ctrl_c_stops_the_workflow() {
    // In a background process group, the read would stop the command (SIGTTIN) for ever.
    let read = "version: 0.1\ntask:\n  - sequential:\n      - execute: [\"sh -c 'echo ready; read x; echo got $x'\"]\n";
    let mut terminal = Terminal::start(read);
    terminal.type_in(b"typed\n");
    let (code, shown) = terminal.finish();
    assert_eq!(code, 0, "{shown}");
    assert!(shown.contains("got typed"), "{shown}");
    // Wherever Ctrl-C lands (before the command, or on it once it has the terminal), the
    // workflow stops. (A shell as the command would defer it until its `sleep` ended.)
    let interrupt = "version: 0.1\ntask:\n  - sequential:\n      - print: [ready]\n      - execute: [\"sleep 300\", \"echo never-item\"]\n";
    let mut terminal = Terminal::start(interrupt);
    terminal.type_in(b"\x03");
    let (code, shown) = terminal.finish();
    assert_eq!(code, 1, "{shown}");
    assert!(shown.contains("stopped by SIGINT"), "{shown}");
    assert!(!shown.contains("never-item"), "{shown}");
}

/// The one-letter state and the parent in /proc/PID/stat (`?` once it is gone).
fn state(pid: Pid) -> (char, Pid) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
    let state = fields.next().and_then(|s| s.chars().next()).unwrap_or('?');
    let parent = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (state, Pid::from_raw(parent))
}

#[test]
fn on_a_terminal_ctrl_z_stops_the_run_and_it_goes_on_when_continued() {
    // The command says it is ready once it has the terminal (its group is the foreground).
    // Results go to files: `script`, stopped and continued with its child, does not
    // always pass on the output that follows.
    let scratch = Dir::temp();
    let text = r#"version: 0.1
task:
  - sequential:
      - execute: ["sh -c 'until awk \"{exit !(\\$5 == \\$8)}\" /proc/$$/stat; do :; done; echo ready $PPID; read x; echo got $x > {dir}/got'"]
      - shell: ['echo went on > {dir}/after']
"#
    .replace("{dir}", scratch.0.path().to_str().unwrap());
    let mut terminal = Terminal::start(&text);
    let pid: i32 = terminal
        .seen
        .split("ready ")
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = Pid::from_raw(pid);
    terminal.type_in(b"\x1a");
    // Stopped as a job is, and `script` (its parent) with it: wait for both.
    let script = wait_for("roiergasias and script stop", || match state(pid) {
        ('T', parent) if state(parent).0 == 'T' => Some(parent),
        ('?', _) => panic!("ended instead of stopping: {}", terminal.seen),
        _ => None,
    });
    // `script` stops with its child, as a shell's job would: `fg` continues both.
    for pid in [script, pid] {
        kill(pid, Signal::SIGCONT).unwrap();
    }
    terminal.type_in(b"typed\n");
    wait_for("roiergasias ends", || {
        matches!(state(pid).0, '?' | 'Z').then_some(())
    });
    let _ = killpg(Pid::from_raw(terminal.child.id() as i32), Signal::SIGKILL);
    let _ = terminal.child.wait();
    let read = |name| std::fs::read_to_string(scratch.path(name)).unwrap_or_default();
    assert_eq!(
        (read("got"), read("after")),
        ("got typed\n".into(), "went on\n".into())
    );
}
