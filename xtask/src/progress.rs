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
    run(cmd, label, None)
}

/// Like [`run_with_ticker`], also returning the child's standard output and error, merged (cargo
/// names each test binary on stderr and prints its results on stdout); both still reach our stdout.
pub fn run_teed(cmd: &mut Command, label: &str) -> anyhow::Result<(ExitStatus, String)> {
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
    let status = run(cmd, label, spinner.as_ref());
    // Our copy of the write end must go, or the reader never sees the end.
    cmd.stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let output = copier.join().unwrap_or_default();
    Ok((status?, output))
}

fn run(
    cmd: &mut Command,
    label: &str,
    spinner: Option<&ProgressBar>,
) -> anyhow::Result<ExitStatus> {
    eprintln!("{label}: started");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{label}: starting {:?}", cmd.get_program()))?;
    let status = match spinner {
        Some(spinner) => {
            spinner.enable_steady_tick(Duration::from_millis(200));
            let status = child.wait();
            spinner.finish_and_clear();
            status
        }
        None => with_lines(label, TICK, std::io::stderr(), || child.wait()),
    };
    status.with_context(|| format!("{label}: waiting for the child process"))
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
        let (status, output) = run_teed(&mut cmd, "sh").unwrap();
        assert_eq!(status.code(), Some(3));
        let lines: Vec<&str> = output.lines().collect();
        assert!(
            lines.contains(&"to-stdout") && lines.contains(&"to-stderr"),
            "{output:?}"
        );
    }

    #[test]
    fn a_missing_program_is_an_error_naming_the_step() {
        let mut cmd = Command::new("/nonexistent/program");
        let err = run_with_ticker(&mut cmd, "the step").unwrap_err();
        assert!(format!("{err:#}").contains("the step: starting"), "{err:#}");
        let err = run_teed(&mut cmd, "teed step").unwrap_err();
        assert!(
            format!("{err:#}").contains("teed step: starting"),
            "{err:#}"
        );
    }
}
