//! `cargo xtask bench engine`: times whole `roiergasias` processes (release build) and
//! prints ratios measured in one run, as Markdown for the README.
//!
//! - 1000 `execute: ["true"]` steps against a shell loop starting `/usr/bin/true` 1000 times;
//! - `validate` and `split` of generated 1 000 / 10 000 / 100 000-task workflows;
//! - peak memory (max RSS) of the hello-world run;
//! - hostile inputs of about 500 KB (a Workflow holds at most 512 KiB): an alias bomb,
//!   10 000 undefined references, 900 tasks each setting its own variable (one split, and all);
//! - the engine's YAML emitter against serde-saphyr's, in process (`engine/benches/emit.rs`).
//!
//! Each process is reaped with `wait4`, which also gives its CPU time and peak memory:
//! on a busy machine wall time swings, CPU time much less.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

const ROUNDS: usize = 5;

pub fn run() -> anyhow::Result<()> {
    let bin = super::release_binary("roiergasias-engine", "roiergasias")?;
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
    peak_memory(bin)?;
    execute_overhead(bin, dir)?;
    scaling(bin, dir)?;
    hostile(bin, dir)?;
    emitter()
}

/// `engine/benches/emit.rs` prints its own rows of the table.
fn emitter() -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args(["bench", "-q", "-p", "roiergasias-engine", "--bench", "emit"])
        .stdin(Stdio::null())
        .status()
        .context("running cargo bench")?;
    if !status.success() {
        bail!("the emitter benchmark failed");
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// What one finished process cost, from `wait4`.
#[derive(Clone, Copy)]
struct Cost {
    wall: Duration,
    /// User + system time of the process and the children it waited for.
    cpu: Duration,
    /// `ru_maxrss`, KiB: see [`peak_memory`] for what it includes.
    max_rss_kib: u64,
}

/// Runs `program args…` with its output discarded and measures it.
fn cost(program: &Path, args: &[&std::ffi::OsStr]) -> anyhow::Result<Cost> {
    cost_exiting(program, args, 0)
}

/// [`cost`] of a run that must exit with `code`.
fn cost_exiting(program: &Path, args: &[&std::ffi::OsStr], code: i32) -> anyhow::Result<Cost> {
    let started = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain old data; all-zero is a valid value that wait4 overwrites.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: we own the child and wait for it exactly once (std's Child is not waited on).
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = started.elapsed();
    if reaped != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == code) {
        bail!(
            "{} {args:?} failed (wait status {status})",
            program.display()
        );
    }
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Cost {
        wall,
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_kib: usage.ru_maxrss as u64,
    })
}

/// The least disturbed of several runs, wall and CPU each: on a busy machine the best
/// estimate of the cost itself.
fn best(samples: &[Cost]) -> (Duration, Duration) {
    let wall = samples.iter().map(|c| c.wall).min().unwrap_or_default();
    let cpu = samples.iter().map(|c| c.cpu).min().unwrap_or_default();
    (wall, cpu)
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
    let engine_args = ["run".as_ref(), "-f".as_ref(), file.as_os_str()];
    let shell_args = ["-c".as_ref(), script.as_ref()];
    let (mut engine, mut shell) = (Vec::new(), Vec::new());
    // Alternate so that machine noise hits both sides alike.
    for _ in 0..ROUNDS {
        engine.push(cost(bin, &engine_args)?);
        shell.push(cost(Path::new("/bin/sh"), &shell_args)?);
    }
    let ((ew, ec), (sw, sc)) = (best(&engine), best(&shell));
    println!(
        "| 1000 × `execute: [\"true\"]` vs a shell loop starting `{true_path}` 1000×, wall time (best of {ROUNDS}) | {} vs {} → **{:.2}×** (target ≤ 1.10×) |",
        ms(ew),
        ms(sw),
        ew.as_secs_f64() / sw.as_secs_f64()
    );
    println!(
        "| the same, CPU time (user + system, children included) | {} vs {} → **{:.2}×** |",
        ms(ec),
        ms(sc),
        ec.as_secs_f64() / sc.as_secs_f64()
    );
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
    struct Row {
        tasks: usize,
        bytes: usize,
        validate: (Duration, Duration),
        split: (Duration, Duration),
        rounds: usize,
    }
    let mut rows: Vec<Row> = Vec::new();
    for tasks in [1_000usize, 10_000, 100_000] {
        let yaml = generated(tasks);
        let file = dir.join(format!("tasks-{tasks}.yaml"));
        std::fs::write(&file, &yaml)?;
        let rounds = if tasks >= 100_000 { 3 } else { ROUNDS };
        let (mut validate, mut split) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            validate.push(cost(
                bin,
                &["validate".as_ref(), "-f".as_ref(), file.as_os_str()],
            )?);
            split.push(cost(
                bin,
                &["split".as_ref(), "-f".as_ref(), file.as_os_str()],
            )?);
        }
        rows.push(Row {
            tasks,
            bytes: yaml.len(),
            validate: best(&validate),
            split: best(&split),
            rounds,
        });
    }
    let show = |(wall, cpu): (Duration, Duration)| format!("{} wall, {} CPU", ms(wall), ms(cpu));
    let growth = |now: (Duration, Duration), before: (Duration, Duration), tasks: usize| {
        format!(
            "; {:.1}× (wall), {:.1}× (CPU) the {tasks}-task figure",
            now.0.as_secs_f64() / before.0.as_secs_f64(),
            now.1.as_secs_f64() / before.1.as_secs_f64()
        )
    };
    for (i, row) in rows.iter().enumerate() {
        let (vg, sg) = match i.checked_sub(1).map(|p| &rows[p]) {
            Some(prev) => (
                growth(row.validate, prev.validate, prev.tasks),
                growth(row.split, prev.split, prev.tasks),
            ),
            None => (String::new(), String::new()),
        };
        println!(
            "| `validate` of {} tasks ({:.1} MB), best of {} | {}{vg} |",
            row.tasks,
            row.bytes as f64 / 1e6,
            row.rounds,
            show(row.validate)
        );
        println!(
            "| `split` of {} tasks ({} documents), best of {} | {}{sg} |",
            row.tasks,
            row.tasks,
            row.rounds,
            show(row.split)
        );
    }
    Ok(())
}

/// Peak RSS of the hello-world run. `ru_maxrss` also counts the address space a child
/// had before `exec`, and std spawns with vfork, so through wait4 the figure can be no
/// lower than the benchmark's own resident memory: prefer GNU time (a small forking
/// parent) when present, and measure first, while this process is still small.
fn peak_memory(bin: &Path) -> anyhow::Result<()> {
    let workflow =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello-world/hello-world.yaml");
    let gnu_time = Path::new("/usr/bin/time");
    let mut peaks = Vec::new();
    for _ in 0..ROUNDS {
        let kib = if gnu_time.exists() {
            let output = Command::new(gnu_time)
                .args(["-f", "%M"])
                .arg(bin)
                .args(["run", "-f"])
                .arg(&workflow)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .output()?;
            let stderr = String::from_utf8_lossy(&output.stderr);
            if !output.status.success() {
                bail!("hello-world run failed: {stderr}");
            }
            stderr
                .lines()
                .last()
                .and_then(|l| l.trim().parse().ok())
                .with_context(|| format!("unexpected /usr/bin/time output: {stderr}"))?
        } else {
            cost(bin, &["run".as_ref(), "-f".as_ref(), workflow.as_os_str()])?.max_rss_kib
        };
        peaks.push(kib);
    }
    peaks.sort();
    let kib = peaks[peaks.len() / 2];
    let how = if gnu_time.exists() {
        "GNU time"
    } else {
        "wait4, an upper bound"
    };
    println!(
        "| Peak memory (max RSS, {how}) of the hello-world run, median of {ROUNDS} | **{:.1} MiB** (target < 10 MB) |",
        kib as f64 / 1024.0
    );
    Ok(())
}

/// A 1 KB scalar, anchored once and aliased as often as fits in 500 KB.
fn alias_bomb() -> String {
    let mut yaml = format!(
        "version: 0.1\nenvironment: [x: &x \"{}\"]\ntask: [sequential: [print: [",
        "y".repeat(1000)
    );
    while yaml.len() < 500_000 {
        yaml.push_str("*x,");
    }
    yaml.push_str("a]]]\n");
    yaml
}

/// 5 000 names, then 10 000 steps each referring to a near miss of one of them.
fn undefined_references() -> String {
    let mut yaml = String::from("version: 0.1\nenvironment:\n");
    for i in 0..5_000 {
        yaml.push_str(&format!("  - name{i:05}: x\n"));
    }
    yaml.push_str("task:\n  - sequential:\n");
    for i in 0..10_000 {
        yaml.push_str(&format!(
            "      - print: [\"{{{{env:nmae{:05}}}}}\"]\n",
            i % 5_000
        ));
    }
    yaml
}

/// 900 tasks on two nodes, each setting its own 520-byte variable: split `n` carries n - 1.
fn distinct_variables() -> String {
    let value = "v".repeat(520);
    let mut yaml = String::from("version: 0.1\ntask:\n");
    for i in 0..900 {
        yaml.push_str(&format!(
            "  - {{node: n{}, sequential: [environment: [var{i}: \"{value}\"]]}}\n",
            i % 2
        ));
    }
    yaml
}

/// Peak RSS (KiB) of a run that must exit with `code`, from GNU time (see [`peak_memory`]
/// for why not wait4's figure); the median of `ROUNDS` runs.
fn gnu_time_rss(bin: &Path, args: &[&std::ffi::OsStr], code: i32) -> anyhow::Result<u64> {
    let mut peaks = Vec::new();
    for _ in 0..ROUNDS {
        let output = Command::new("/usr/bin/time")
            .args(["-f", "%M %x"])
            .arg(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()?;
        let stderr = String::from_utf8_lossy(&output.stderr);
        let last = stderr.lines().last().unwrap_or_default();
        match last.split_once(' ') {
            Some((kib, exit)) if exit == code.to_string() => peaks.push(kib.parse()?),
            _ => bail!(
                "{} {args:?}: expected exit {code}, got: {stderr}",
                bin.display()
            ),
        }
    }
    peaks.sort();
    Ok(peaks[peaks.len() / 2])
}

fn hostile(bin: &Path, dir: &Path) -> anyhow::Result<()> {
    if !Path::new("/usr/bin/time").exists() {
        eprintln!("no /usr/bin/time (GNU time): hostile-input rows skipped");
        return Ok(());
    }
    let cases: [(&str, String, &[&str], i32); 5] = [
        (
            "alias bomb (a 1 KB scalar aliased 166 000×), `validate` → exit 2",
            alias_bomb(),
            &["validate"],
            2,
        ),
        (
            "10 000 references to near misses of 5 000 names, `validate` → exit 2",
            undefined_references(),
            &["validate"],
            2,
        ),
        (
            "900 tasks each setting its own variable, `validate`",
            distinct_variables(),
            &["validate"],
            0,
        ),
        (
            "the same, `split --index 900` (one split, 0.5 MB)",
            distinct_variables(),
            &["split", "--index", "900"],
            0,
        ),
        (
            "the same, `split` (all 900 splits, 217 MB written)",
            distinct_variables(),
            &["split"],
            0,
        ),
    ];
    for (i, (what, yaml, args, code)) in cases.iter().enumerate() {
        let file = dir.join(format!("hostile-{i}.yaml"));
        std::fs::write(&file, yaml)?;
        let mut full: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        full.extend(["-f".as_ref(), file.as_os_str()]);
        let samples = (0..ROUNDS)
            .map(|_| cost_exiting(bin, &full, *code))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let (wall, cpu) = best(&samples);
        let kib = gnu_time_rss(bin, &full, *code)?;
        println!(
            "| {what}, {:.0} KB, best of {ROUNDS} | {} wall, {} CPU, **{:.1} MiB** max RSS (median) |",
            yaml.len() as f64 / 1000.0,
            ms(wall),
            ms(cpu),
            kib as f64 / 1024.0
        );
    }
    Ok(())
}
