//! `cargo xtask bench engine`: times whole `roiergasias` processes (release build) and
//! prints ratios measured in one run, as Markdown for the README.
//!
//! - 1000 `execute: ["true"]` steps against a shell loop starting `/usr/bin/true` 1000 times;
//! - `validate` and `split` of generated 1 000 / 10 000 / 100 000-task workflows;
//! - peak memory (max RSS) of the hello-world run, via GNU `/usr/bin/time` when present.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const ROUNDS: usize = 5;

pub fn run() -> anyhow::Result<()> {
    let bin = build()?;
    let dir = std::env::temp_dir().join(format!("roiergasias-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let result = bench(&bin, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn bench(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    eprintln!("benchmarking {}", bin.display());
    println!("| Measurement | Result |");
    println!("|---|---|");
    execute_overhead(bin, dir)?;
    scaling(bin, dir)?;
    peak_memory(bin)?;
    Ok(())
}

/// Builds the release binary and returns its path, as cargo reports it.
fn build() -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--message-format=json",
            "-p",
            "roiergasias-engine",
            "--bin",
            "roiergasias",
        ])
        .stderr(Stdio::inherit())
        .output()
        .context("running cargo build")?;
    if !output.status.success() {
        bail!("cargo build --release failed");
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["reason"] == "compiler-artifact"
            && message["target"]["name"] == "roiergasias"
            && let Some(exe) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(exe));
        }
    }
    bail!("cargo did not report the roiergasias executable")
}

/// Wall time of one process, its output discarded; fails if it does not exit 0.
fn time(command: &mut Command) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .with_context(|| format!("starting {command:?}"))?;
    let took = started.elapsed();
    if !status.success() {
        bail!("{command:?} failed: {status}");
    }
    Ok(took)
}

/// The least disturbed of several runs: on a busy machine the best estimate of the cost.
fn best_of(samples: Vec<Duration>) -> Duration {
    samples.into_iter().min().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Wall time and CPU time (user + system, the process and its children) of one
/// process, through GNU time; its output discarded.
fn time_cpu(program: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<(Duration, Duration)> {
    let output = Command::new("/usr/bin/time")
        .args(["-f", "%e %U %S"])
        .arg(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        bail!("{} failed: {stderr}", program.display());
    }
    let fields: Vec<f64> = stderr
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [wall, user, sys] = fields[..] else {
        bail!("unexpected /usr/bin/time output: {stderr}");
    };
    Ok((
        Duration::from_secs_f64(wall),
        Duration::from_secs_f64(user + sys),
    ))
}

fn execute_overhead(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let true_path = ["/usr/bin/true", "/bin/true"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .context("no /usr/bin/true or /bin/true")?;
    let mut yaml = String::from("version: 0.1\ntask:\n  - sequential:\n");
    for _ in 0..1000 {
        yaml.push_str("      - execute: [\"true\"]\n");
    }
    let file = dir.join("execute-1000.yaml");
    std::fs::write(&file, yaml)?;
    // `true` is a shell builtin: the loop must start the program, as the workflow does.
    let script = format!("i=0; while [ $i -lt 1000 ]; do {true_path}; i=$((i+1)); done");
    if Path::new("/usr/bin/time").exists() {
        let engine_args = ["run".as_ref(), "-f".as_ref(), file.as_os_str()];
        let shell_args = ["-c".as_ref(), script.as_ref()];
        let (mut engine, mut shell) = (Vec::new(), Vec::new());
        // Alternate so that machine noise hits both sides alike; keep the best of each:
        // the least disturbed run is the best estimate of the cost itself.
        for _ in 0..ROUNDS {
            engine.push(time_cpu(bin, &engine_args)?);
            shell.push(time_cpu(Path::new("sh"), &shell_args)?);
        }
        let best = |v: &[(Duration, Duration)], pick: fn(&(Duration, Duration)) -> Duration| {
            v.iter().map(pick).min().unwrap_or_default()
        };
        let (ew, sw) = (best(&engine, |s| s.0), best(&shell, |s| s.0));
        let (ec, sc) = (best(&engine, |s| s.1), best(&shell, |s| s.1));
        println!(
            "| 1000 × `execute: [\"true\"]` vs a shell loop starting `{true_path}` 1000×, wall time (best of {ROUNDS}) | {} vs {} → **{:.2}×** (target ≤ 1.10×) |",
            ms(ew),
            ms(sw),
            ew.as_secs_f64() / sw.as_secs_f64()
        );
        println!(
            "| the same, CPU time (user + system, with the children) | {} vs {} → **{:.2}×** |",
            ms(ec),
            ms(sc),
            ec.as_secs_f64() / sc.as_secs_f64()
        );
    } else {
        let (mut engine, mut shell) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            engine.push(time(Command::new(bin).arg("run").arg("-f").arg(&file))?);
            shell.push(time(Command::new("sh").arg("-c").arg(&script))?);
        }
        let (engine, shell) = (best_of(engine), best_of(shell));
        println!(
            "| 1000 × `execute: [\"true\"]` vs a shell loop starting `{true_path}` 1000×, wall time (best of {ROUNDS}) | {} vs {} → **{:.2}×** (target ≤ 1.10×) |",
            ms(engine),
            ms(shell),
            engine.as_secs_f64() / shell.as_secs_f64()
        );
    }
    Ok(())
}

/// One task per line, on two nodes, each printing and setting a variable, so that
/// `split` carries environment forward across every task. Compact so that 100 000
/// tasks (about 7 MB) stay under the engine's 8 MiB input limit.
fn generated(tasks: usize) -> String {
    let mut yaml = String::with_capacity(tasks * 72 + 64);
    yaml.push_str("version: 0.1\nenvironment:\n  - run: bench\ntask:\n");
    for i in 0..tasks {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        yaml.push_str(&format!(
            "  - {{node: {node}, sequential: [print: [t{i}], environment: [s: \"{i}\"]]}}\n"
        ));
    }
    yaml
}

fn scaling(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    let sizes = [1_000usize, 10_000, 100_000];
    let mut rows = Vec::new();
    for &tasks in &sizes {
        let yaml = generated(tasks);
        let file = dir.join(format!("tasks-{tasks}.yaml"));
        std::fs::write(&file, &yaml)?;
        let rounds = if tasks >= 100_000 { 3 } else { ROUNDS };
        let mut validate = Vec::new();
        let mut split = Vec::new();
        for _ in 0..rounds {
            validate.push(time(
                Command::new(bin).arg("validate").arg("-f").arg(&file),
            )?);
            split.push(time(Command::new(bin).arg("split").arg("-f").arg(&file))?);
        }
        rows.push((tasks, yaml.len(), best_of(validate), best_of(split), rounds));
    }
    type Row = (usize, usize, Duration, Duration, usize);
    for (i, (tasks, bytes, validate, split, rounds)) in rows.iter().enumerate() {
        let growth = |now: Duration, pick: fn(&Row) -> Duration| {
            if i == 0 {
                String::new()
            } else {
                format!(
                    ", {:.1}× the {}-task time",
                    now.as_secs_f64() / pick(&rows[i - 1]).as_secs_f64(),
                    rows[i - 1].0
                )
            }
        };
        println!(
            "| `validate` of {tasks} tasks ({:.1} MB), best of {rounds} | {}{} |",
            *bytes as f64 / 1e6,
            ms(*validate),
            growth(*validate, |r| r.2)
        );
        println!(
            "| `split` of {tasks} tasks ({tasks} documents), best of {rounds} | {}{} |",
            ms(*split),
            growth(*split, |r| r.3)
        );
    }
    Ok(())
}

fn peak_memory(bin: &Path) -> anyhow::Result<()> {
    let workflow =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-world/hello-world.yaml");
    let time = Path::new("/usr/bin/time");
    if !time.exists() {
        println!(
            "| Peak memory of the hello-world run | not measured: GNU /usr/bin/time is not installed |"
        );
        return Ok(());
    }
    let mut peaks = Vec::new();
    for _ in 0..ROUNDS {
        let output = Command::new(time)
            .args(["-f", "%M"])
            .arg(bin)
            .arg("run")
            .arg("-f")
            .arg(&workflow)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        if !output.status.success() {
            bail!(
                "hello-world run failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        // GNU time prints max RSS in KiB as the last line of stderr.
        let stderr = String::from_utf8_lossy(&output.stderr);
        let kib: u64 = stderr
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .with_context(|| format!("unexpected /usr/bin/time output: {stderr}"))?;
        peaks.push(kib);
    }
    peaks.sort();
    let kib = peaks[peaks.len() / 2];
    println!(
        "| Peak memory (max RSS) of the hello-world run (median of {ROUNDS}) | **{:.1} MiB** (target < 10 MB) |",
        kib as f64 / 1024.0
    );
    Ok(())
}
