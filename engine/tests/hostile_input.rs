//! Hostile workflows of up to 512 KiB (what a Workflow object may hold): each fails with a
//! clear, located error, or succeeds, in bounded work. Every run here has its address space
//! capped (so a blow-up is a failure, not a slow machine) and a generous deadline (a hang
//! guard, not a timing).

mod common;

use std::io::Read;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::Dir;

/// Address space for one `roiergasias` process (a few times what the worst input needs; the
/// old code took over 2 GB for a 500 KB alias bomb).
const MEMORY: u64 = 256 << 20;
const DEADLINE: Duration = Duration::from_secs(120);
const SPEC_LIMIT: usize = 512 * 1024;

struct Run {
    code: i32,
    /// Standard output, or only its first 64 KiB (see `stdout_bytes`).
    stdout: String,
    stdout_bytes: usize,
    stderr: String,
}

/// Runs `roiergasias args…` on `text` (as the file `w.yaml`), capped in memory.
fn run(args: &[&str], text: &str) -> Run {
    let dir = Dir::temp();
    dir.file("w.yaml", text);
    // `ulimit -v` (KiB) caps the address space of the `roiergasias` that `sh` then becomes.
    let mut command = Command::new("sh");
    command
        .env_remove("NO_COLOR")
        .current_dir(dir.0.path())
        .args(["-c", "ulimit -v \"$1\" && shift && exec \"$@\"", "sh"])
        .arg((MEMORY / 1024).to_string())
        .arg(env!("CARGO_BIN_EXE_roiergasias"))
        .args(args)
        .args(["-f", "w.yaml"]);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("start roiergasias");
    finish(child)
}

/// Kills process `pid` unless told within [`DEADLINE`] that it finished.
fn watchdog(pid: u32) -> std::sync::mpsc::Sender<()> {
    let (done, finished) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if finished.recv_timeout(DEADLINE).is_err() {
            // The child is not reaped before `finish` has waited for it, so `pid` is still it.
            let pid = nix::unistd::Pid::from_raw(pid as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
        }
    });
    done
}

/// Reads both pipes to the end (keeping the first 64 KiB of stdout) and waits, with a deadline.
fn finish(mut child: Child) -> Run {
    let done = watchdog(child.id());
    let mut stderr_pipe = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        stderr_pipe.read_to_string(&mut s).unwrap();
        s
    });
    let mut stdout_pipe = child.stdout.take().unwrap();
    let (mut kept, mut total, mut buf) = (Vec::new(), 0usize, vec![0u8; 1 << 16]);
    loop {
        let n = stdout_pipe.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        total += n;
        let room = (1usize << 16).saturating_sub(kept.len());
        kept.extend_from_slice(&buf[..n.min(room)]);
    }
    let status = child.wait().unwrap();
    let _ = done.send(());
    let stderr = stderr.join().unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        !stderr.contains("memory allocation"),
        "ran out of its {MEMORY}-byte address space: {stderr}"
    );
    Run {
        code: status
            .code()
            .unwrap_or_else(|| panic!("killed (after {DEADLINE:?}?): {status:?}\n{stderr}")),
        stdout: String::from_utf8_lossy(&kept).into_owned(),
        stdout_bytes: total,
        stderr,
    }
}

fn validate(text: &str) -> Run {
    assert!(text.len() <= SPEC_LIMIT, "{} bytes", text.len());
    run(&["validate"], text)
}

fn assert_alias_budget(text: &str, at: &str) {
    let out = validate(text);
    assert_eq!(out.code, 2, "{}", out.stderr);
    let expected = format!("w.yaml:{at}: YAML anchors and aliases expand to more than ");
    assert!(
        out.stderr.contains(&expected),
        "{expected:?} in {}",
        out.stderr
    );
    assert_eq!(out.stderr.lines().count(), 2, "one problem: {}", out.stderr);
}

#[test]
fn a_long_scalar_aliased_many_times() {
    // 1 KB anchored once, then 125 000 aliases: 125 MB of text from 500 KB.
    let mut text = format!(
        "version: 0.1\nenvironment: [x: &x \"{}\"]\ntask: [sequential: [print: [",
        "y".repeat(1000)
    );
    while text.len() < 500_000 {
        text.push_str("*x,");
    }
    text.push_str("a]]]\n");
    // The budget is 4 × 500 006 bytes; each alias costs 1 032: the 1 938th alias, 3 bytes each.
    assert_alias_budget(&text, "3:5840");
}

#[test]
fn a_billion_laughs() {
    let mut text = String::from("version: 0.1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    text.push_str("task: [sequential: [print: *a11]]\n");
    // a2 (line 4, at its `[`) is 10 × a1, about 36 KB, and keeping it as an anchor as much again.
    assert_alias_budget(&text, "4:9");
}

#[test]
fn nested_anchors_each_keep_a_copy() {
    // 50 levels of anchors around 400 KB: keeping each anchored node is a copy too.
    let items = vec!["x".repeat(100); 4_000].join(",");
    let mut inner = format!("[{items}]");
    for i in 0..50 {
        inner = format!("&n{i} [{inner}]");
    }
    let text = format!("version: 0.1\ntask: [sequential: [print: {inner}]]\n");
    let out = validate(&text);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("YAML anchors and aliases expand to more than"),
        "{}",
        out.stderr
    );
}

#[test]
fn moderate_reuse_of_anchors_is_fine() {
    let mut text = String::from(
        "version: 0.1\nx-steps: &steps\n  - print: [\"a step that several tasks share\"]\n  - execute: [\"true\"]\ntask:\n",
    );
    for _ in 0..100 {
        text.push_str("  - sequential: *steps\n");
    }
    let out = validate(&text);
    assert_eq!(out.code, 2, "{}", out.stderr);
    // Only the unknown key: the 100 aliases are within budget.
    assert!(
        out.stderr.contains("unknown key `x-steps`") && out.stderr.contains("(1 problem)"),
        "{}",
        out.stderr
    );
}

/// Tasks on two nodes, each setting its own variable with a `value_len`-byte value.
fn distinct_variables(tasks: usize, value_len: usize) -> String {
    let value = "v".repeat(value_len);
    let mut text = String::from("version: 0.1\ntask:\n");
    for i in 0..tasks {
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        text.push_str(&format!(
            "  - {{node: {node}, sequential: [environment: [var{i}: \"{value}\"]]}}\n"
        ));
    }
    text
}

#[test]
fn one_split_of_many_distinct_variables_is_linear() {
    let text = distinct_variables(900, 520);
    assert!(text.len() > 480_000 && text.len() <= SPEC_LIMIT);
    let out = run(&["split", "--index", "900"], &text);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout.starts_with(
            "--- # split 900/900 on node n2\nversion: 0.1\nenvironment:\n  - var0: \"vvv"
        ),
        "{}",
        &out.stdout[..200]
    );
    assert!(
        out.stdout_bytes < 2 * text.len(),
        "{} bytes",
        out.stdout_bytes
    );
    // All 900 together are quadratic (about 200 MB): written one at a time, in bounded memory.
    let all = run(&["split"], &text);
    assert_eq!(all.code, 0, "{}", all.stderr);
    assert!(all.stdout_bytes > 200_000_000, "{}", all.stdout_bytes);
}

#[test]
fn split_index_prints_that_document_of_the_stream() {
    let text = distinct_variables(5, 3);
    let all = run(&["split"], &text);
    assert_eq!(all.code, 0, "{}", all.stderr);
    let documents: Vec<String> =
        all.stdout
            .split_inclusive('\n')
            .fold(Vec::new(), |mut docs, line| {
                if line.starts_with("---") {
                    docs.push(String::new());
                }
                docs.last_mut().unwrap().push_str(line);
                docs
            });
    assert_eq!(documents.len(), 5);
    for (i, doc) in documents.iter().enumerate() {
        let one = run(&["split", "--index", &(i + 1).to_string()], &text);
        assert_eq!(one.code, 0, "{}", one.stderr);
        assert_eq!(&one.stdout, doc);
    }
    for bad in ["0", "6"] {
        let out = run(&["split", "--index", bad], &text);
        assert_eq!(out.code, 2);
        assert_eq!(out.stdout, "");
        assert_eq!(
            out.stderr,
            format!(
                "error: w.yaml: there is no split {bad}: the workflow has 5 splits (numbered from 1)\n"
            )
        );
    }
}

#[test]
fn ten_thousand_undefined_references() {
    // 5 000 defined names and 10 000 references to near misses of them, in 512 KiB.
    let mut text = String::from("version: 0.1\nenvironment:\n");
    for i in 0..5_000 {
        text.push_str(&format!("  - name{i:05}: x\n"));
    }
    text.push_str("task:\n  - sequential:\n      - print:\n");
    for i in 0..10_000 {
        text.push_str(&format!(
            "          - \"{{{{env:nmae{:05}}}}}\"\n",
            i % 5_000
        ));
    }
    assert!(text.len() <= SPEC_LIMIT, "{}", text.len());
    let out = validate(&text);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: w.yaml is invalid (5000 problems):\n")
    );
    // Reported once a step; the first ones come with a hint.
    assert!(
        out.stderr.contains(
            "`{{env:nmae00000}}` refers to undefined variable `nmae00000` (did you mean `name00000`?)"
        ),
        "{}",
        &out.stderr[..2000]
    );
    // In separate steps, every reference is its own problem.
    let mut text = String::from("version: 0.1\nenvironment: [abc: x]\ntask:\n  - sequential:\n");
    for i in 0..10_000 {
        text.push_str(&format!("      - print: [\"{{{{env:ab{i}}}}}\"]\n"));
    }
    assert!(text.len() <= SPEC_LIMIT, "{}", text.len());
    let out = validate(&text);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: w.yaml is invalid (10000 problems):\n")
    );
}

#[test]
fn two_very_long_names() {
    // Keys this long must be explicit (`? key`) in YAML.
    let a = "a".repeat(200_000);
    let b = format!("{}b", "a".repeat(199_999));
    let text = format!(
        "version: 0.1\nenvironment:\n  - ? {a}\n    : x\ntask:\n  - sequential: [print: [\"{{{{env:{b}}}}}\"]]\n"
    );
    let out = validate(&text);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("w.yaml:6:26: task 1, step 1 (print): `{{env:aaaa")
    );
    assert!(!out.stderr.contains("did you mean"));
    // A long unknown key, compared with the known ones.
    let out = validate(&format!(
        "version: 0.1\n? {a}\n: 1\ntask: [sequential: []]\n"
    ));
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("w.yaml:2:3: unknown key `aaaa"),
        "{}",
        &out.stderr[..100]
    );
}

#[test]
fn version_numbers_that_are_0_1() {
    for v in ["0.10", ".1", "0.1"] {
        let out = validate(&format!(
            "version: {v}\ntask: [sequential: [print: [hi]]]\n"
        ));
        assert_eq!(out.code, 0, "{v}: {}", out.stderr);
        assert_eq!(out.stdout, "w.yaml is valid: 1 task, 1 step, 1 split\n");
    }
}

#[test]
fn empty_and_tilde_values_are_empty_strings() {
    let text = "version: 0.1\nenvironment:\n  - a:\n  - b: ~\ntask:\n  - sequential:\n      - environment: [c: , d: ~]\n      - print: [\"[{{env:a}}{{env:b}}{{env:c}}{{env:d}}]\"]\n";
    let out = run(&["run"], text);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "[]\n");
}

#[test]
fn entries_of_one_environment_step_apply_in_order() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - environment: [a: x, b: \"{{env:a}}y\", a: z]\n      - print: [\"{{env:a}} {{env:b}}\"]\n";
    let out = run(&["run"], text);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "z xy\n");
}

#[test]
fn a_rejected_global_entry_is_reported_once() {
    let text = "version: 0.1\nenvironment:\n  - bucket: [s3, b]\n  - {region: x, zone: y}\ntask:\n  - sequential:\n      - print: [\"{{env:bucket}}\"]\n      - print: [\"{{env:bucket}} {{env:region}} {{env:zone}}\"]\n      - print: [\"{{env:other}}\"]\n";
    let out = validate(text);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: w.yaml is invalid (3 problems):\n  \
         w.yaml:3:13: the global `environment`: `bucket` needs a single value, found a list\n  \
         w.yaml:4:5: the global `environment`: entry 2 must be a single `NAME: value` pair, found a mapping with 2 keys\n  \
         w.yaml:9:17: task 1, step 3 (print): `{{env:other}}` refers to undefined variable `other`; set it earlier in an `environment` or in the process environment\n"
    );
}
