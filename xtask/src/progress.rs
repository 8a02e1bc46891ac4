//! Progress for long child processes, so a log or a terminal shows what runs and for how long.
//!
//! When all of a child's output passes through us ([`run_teed`]) and stderr is a terminal, an
//! indicatif spinner counts the time below that output. Otherwise, in CI logs and for a child
//! that writes straight to our terminal (where a redrawn line would land inside its output), a
//! plain `label: still running (elapsed)` line every [`TICK`].

use std::io::{BufRead, IsTerminal, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressState, ProgressStyle};

const TICK: Duration = Duration::from_secs(20);

/// Runs `cmd` (inheriting stdout/stderr) and prints `label: still running (elapsed)` every [`TICK`].
pub fn run_with_ticker(cmd: &mut Command, label: &str) -> anyhow::Result<ExitStatus> {
    Ok(run(cmd, label, None, None)?.0)
}

/// How a [`run_teed`] child ended.
pub struct Teed {
    pub status: ExitStatus,
    /// Its standard output and error, merged.
    pub output: String,
    /// Whether it was killed, with all it had started, for running past its limit.
    pub overran: bool,
}

/// Like [`run_with_ticker`], also returning the child's standard output and error, merged (cargo
/// names each test binary on stderr and prints its results on stdout); both still reach our stdout.
/// Past `limit` the child and everything it started are ended, so a hang is a failure that says
/// so instead of a run that never ends.
pub fn run_teed(cmd: &mut Command, label: &str, limit: Option<Duration>) -> anyhow::Result<Teed> {
    let (reader, writer) = std::io::pipe().context("a pipe for the child's output")?;
    cmd.stderr(
        writer
            .try_clone()
            .context("a pipe for the child's output")?,
    )
    .stdout(writer);
    let spinner = std::io::stderr().is_terminal().then(|| spinner(label));
    let copier = {
        let spinner = spinner.clone();
        std::thread::spawn(move || copy_lines(reader, spinner.as_ref()))
    };
    let ran = run(cmd, label, spinner.as_ref(), limit);
    // Our copy of the write end must go, or the reader never sees the end.
    cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let output = copier.join().unwrap_or_default();
    let (status, overran) = ran?;
    Ok(Teed {
        status,
        output,
        overran,
    })
}

/// The child's status, and whether it ran past `limit` and was ended.
fn run(
    cmd: &mut Command,
    label: &str,
    spinner: Option<&ProgressBar>,
    limit: Option<Duration>,
) -> anyhow::Result<(ExitStatus, bool)> {
    eprintln!("{label}: started");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{label}: starting {:?}", cmd.get_program()))?;
    let pid = child.id() as i32;
    let (status, overran) = within(limit, pid, || match spinner {
        Some(spinner) => {
            spinner.enable_steady_tick(Duration::from_millis(200));
            let status = child.wait();
            spinner.finish_and_clear();
            status
        }
        None => with_lines(label, TICK, std::io::stderr(), || child.wait()),
    });
    if overran {
        eprintln!(
            "{label}: ended after running past its limit of {}",
            human(limit.unwrap_or_default())
        );
    }
    let status = status.with_context(|| format!("{label}: waiting for the child process"))?;
    Ok((status, overran))
}

/// Runs `wait` (which returns once process `pid` has ended); past `limit`, ends `pid` and all
/// its descendants (SIGTERM, SIGKILL 10 s later). Also returns whether that happened.
fn within<T>(limit: Option<Duration>, pid: i32, wait: impl FnOnce() -> T) -> (T, bool) {
    let Some(limit) = limit else {
        return (wait(), false);
    };
    let (done, timer) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        let watchdog = s.spawn(move || {
            let overran = timer.recv_timeout(limit) == Err(mpsc::RecvTimeoutError::Timeout);
            if overran {
                let tree = crate::cluster::procs::tree(pid);
                crate::cluster::procs::terminate(&tree, Duration::from_secs(10));
            }
            overran
        });
        let result = wait();
        drop(done);
        (result, watchdog.join().unwrap_or(false))
    })
}

/// A spinner on stderr: `⠙ label: running (1m15s)`.
fn spinner(label: &str) -> ProgressBar {
    let style = ProgressStyle::with_template("{spinner} {msg}: running ({human})")
        .expect("a valid template")
        .with_key(
            "human",
            |state: &ProgressState, out: &mut dyn std::fmt::Write| {
                let _ = write!(out, "{}", human(state.elapsed()));
            },
        );
    ProgressBar::new_spinner()
        .with_style(style)
        .with_message(label.to_string())
}

/// Copies the child's output to our stdout line by line (above the spinner, if any); returns it all.
fn copy_lines(reader: impl std::io::Read, spinner: Option<&ProgressBar>) -> String {
    let mut all = String::new();
    for line in std::io::BufReader::new(reader)
        .lines()
        .map_while(Result::ok)
    {
        let print = || {
            let _ = writeln!(std::io::stdout(), "{line}");
        };
        match spinner {
            Some(spinner) => spinner.suspend(print),
            None => print(),
        }
        all.push_str(&line);
        all.push('\n');
    }
    all
}

/// Runs `work`, writing `label: still running (elapsed)` to `out` every `every` until it returns.
fn with_lines<T>(
    label: &str,
    every: Duration,
    mut out: impl Write + Send,
    work: impl FnOnce() -> T,
) -> T {
    let started = Instant::now();
    let (done, ticks) = mpsc::channel::<()>();
    std::thread::scope(|s| {
        s.spawn(move || {
            while let Err(mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(every) {
                let _ = writeln!(out, "{label}: still running ({})", human(started.elapsed()));
            }
        });
        let result = work();
        drop(done);
        result
    })
}

/// `75s` → `1m15s`; short and stable for logs.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs >= 60 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(75)), "1m15s");
        assert_eq!(human(Duration::from_secs(3600)), "60m00s");
    }

    /// A writer the test can read while the ticker thread writes.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Shared {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn plain_lines_say_what_still_runs_until_it_ends() {
        let out = Shared::default();
        let seen = out.clone();
        let got = with_lines("go build", Duration::from_millis(5), out.clone(), || {
            // Until the ticker has spoken twice.
            crate::cluster::poll::wait(Duration::from_millis(5), Duration::from_secs(30), || {
                seen.text().lines().count() >= 2
            })
        });
        assert!(got, "no ticks in 30 s: {:?}", out.text());
        let text = out.text();
        let lines_then = text.lines().count();
        for line in text.lines() {
            let elapsed = line
                .strip_prefix("go build: still running (")
                .and_then(|l| l.strip_suffix("s)"))
                .unwrap_or_else(|| panic!("{line:?}"));
            assert!(elapsed.parse::<f64>().is_ok(), "{line:?}");
        }
        // None after the work returned (the thread has been joined).
        assert_eq!(out.text().lines().count(), lines_then);
    }

    #[test]
    fn run_teed_returns_the_merged_output_and_the_status() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo to-stdout; echo to-stderr >&2; exit 3"]);
        let Teed { status, output, .. } = run_teed(&mut cmd, "sh", None).unwrap();
        assert_eq!(status.code(), Some(3));
        let lines: Vec<&str> = output.lines().collect();
        assert!(
            lines.contains(&"to-stdout") && lines.contains(&"to-stderr"),
            "{output:?}"
        );
    }

    #[test]
    fn past_its_limit_a_child_ends_with_all_it_started() {
        // The background sleep holds the output pipe too: it must end for the run to return.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo started; sleep 300 & sleep 300"]);
        let teed = run_teed(&mut cmd, "sh", Some(Duration::from_millis(500))).unwrap();
        assert!(teed.overran);
        assert!(!teed.status.success());
        assert_eq!(teed.output, "started\n");
        let mut quick = Command::new("true");
        let teed = run_teed(&mut quick, "true", Some(Duration::from_secs(60))).unwrap();
        assert!(!teed.overran && teed.status.success());
    }

    #[test]
    fn a_missing_program_is_an_error_naming_the_step() {
        let mut cmd = Command::new("/nonexistent/program");
        let err = run_with_ticker(&mut cmd, "the step").unwrap_err();
        assert!(format!("{err:#}").contains("the step: starting"), "{err:#}");
        let err = run_teed(&mut cmd, "teed step", None).err().unwrap();
        assert!(
            format!("{err:#}").contains("teed step: starting"),
            "{err:#}"
        );
    }
}
