//! Progress for long child processes: a line every so often saying what runs and for how long.

use std::process::{Command, ExitStatus};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Context;

const TICK: Duration = Duration::from_secs(20);

/// Runs `cmd` (inheriting stdout/stderr) and prints `label: still running (elapsed)` every [`TICK`].
pub fn run_with_ticker(cmd: &mut Command, label: &str) -> anyhow::Result<ExitStatus> {
    let started = Instant::now();
    eprintln!("{label}: started");
    let mut child = cmd
        .spawn()
        .with_context(|| format!("{label}: starting {:?}", cmd.get_program()))?;
    let (done, ticks) = mpsc::channel::<()>();
    let label_owned = label.to_string();
    let ticker = std::thread::spawn(move || {
        while let Err(mpsc::RecvTimeoutError::Timeout) = ticks.recv_timeout(TICK) {
            eprintln!(
                "{label_owned}: still running ({})",
                human(started.elapsed())
            );
        }
    });
    let status = child.wait();
    let _ = done.send(());
    let _ = ticker.join();
    status.with_context(|| format!("{label}: waiting for the child process"))
}

/// Like [`run_with_ticker`], also returning the child's standard output and error, merged (cargo
/// names each test binary on stderr and prints its results on stdout); both still reach our stdout.
pub fn run_teed(cmd: &mut Command, label: &str) -> anyhow::Result<(ExitStatus, String)> {
    use std::io::{BufRead, Write};
    let (tx, rx) = mpsc::channel::<String>();
    let (reader, writer) = std::io::pipe().context("a pipe for the child's output")?;
    cmd.stderr(
        writer
            .try_clone()
            .context("a pipe for the child's output")?,
    )
    .stdout(writer);
    let copier = std::thread::spawn(move || {
        let mut all = String::new();
        for line in std::io::BufReader::new(reader)
            .lines()
            .map_while(Result::ok)
        {
            let _ = writeln!(std::io::stdout(), "{line}");
            all.push_str(&line);
            all.push('\n');
        }
        let _ = tx.send(all);
    });
    let status = run_with_ticker(cmd, label);
    // Our copy of the write end must go, or the reader never sees the end.
    cmd.stdout(std::process::Stdio::inherit())
        .stderr(std::process::Stdio::inherit());
    let output = rx.recv().unwrap_or_default();
    let _ = copier.join();
    Ok((status?, output))
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

    #[test]
    fn human_durations() {
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human(Duration::from_secs(75)), "1m15s");
        assert_eq!(human(Duration::from_secs(3600)), "60m00s");
    }
}
