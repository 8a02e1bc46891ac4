//! Every kind of bad input gets exit 2 (or 1 for a failing command) and a message
//! saying what is wrong and where. Never a panic.

mod common;

use common::{Dir, Out, roiergasias, roiergasias_stdin, run_with_outputs_file};

/// Validates `contents` from a file named `w.yaml` and returns the result.
fn validate(contents: impl AsRef<[u8]>) -> Out {
    let dir = Dir::temp();
    let file = dir.file("w.yaml", contents);
    let out = roiergasias(&["validate", "-f", &file]);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
    // Messages name the file; drop the temporary directory for readable assertions.
    Out {
        stderr: out
            .stderr
            .replace(&format!("{}/", dir.0.path().display()), ""),
        ..out
    }
}

fn assert_invalid(contents: impl AsRef<[u8]>, expected: &[&str]) {
    let out = validate(contents);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert_eq!(out.stdout, "");
    for e in expected {
        assert!(out.stderr.contains(e), "expected {e:?} in\n{}", out.stderr);
    }
}

#[test]
fn missing_file() {
    let out = roiergasias(&["run", "-f", "/nonexistent/workflow.yaml"]);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: cannot read workflow /nonexistent/workflow.yaml: No such file or directory (os error 2)\n"
    );
}

#[test]
fn empty_file() {
    assert_invalid(
        "",
        &[
            "error: w.yaml is invalid (1 problem):\n  w.yaml: the workflow is empty; it needs at least `version: 0.1` and a `task` list",
        ],
    );
    assert_invalid(
        "# nothing but a comment\n---\n",
        &["w.yaml: the workflow is empty"],
    );
}

#[test]
fn not_yaml() {
    assert_invalid(
        "version: 0.1\ntask: [unclosed\n",
        &["w.yaml:2:7: not valid YAML: unclosed bracket '['"],
    );
    assert_invalid("a: b\n  c: d\n", &["w.yaml:2:4: not valid YAML"]);
}

#[test]
fn yaml_that_is_not_a_mapping() {
    assert_invalid(
        "- version: 0.1\n",
        &[
            "w.yaml:1:1: the workflow must be a mapping with `version`, `environment` and `task`, found a list",
        ],
    );
    assert_invalid("hello\n", &["found a single value"]);
}

#[test]
fn unknown_top_level_key_with_did_you_mean() {
    assert_invalid(
        "version: 0.1\ntasks:\n  - sequential: [print: [hi]]\n",
        &[
            "(1 problem)",
            "w.yaml:2:1: unknown key `tasks` (did you mean `task`?)",
        ],
    );
}

#[test]
fn wrong_version() {
    assert_invalid(
        "version: 0.2\ntask:\n  - sequential: [print: [hi]]\n",
        &["w.yaml:1:10: unsupported version `0.2`; this roiergasias reads version 0.1"],
    );
}

#[test]
fn unknown_task_type() {
    assert_invalid(
        "version: 0.1\ntask:\n  - parallel:\n      - print: [hi]\n",
        &[
            "w.yaml:3:5: task 1: unknown task type `parallel`; the only task type in 0.1 is `sequential`",
        ],
    );
    assert_invalid(
        "version: 0.1\ntask:\n  - sequentail: []\n",
        &["unknown task type `sequentail` (did you mean `sequential`?)"],
    );
}

#[test]
fn unknown_step_type_has_line_and_column() {
    assert_invalid(
        "version: 0.1\ntask:\n  - sequential:\n      - print: [ok]\n      - exec: [ls]\n",
        &[
            "w.yaml:5:9: task 1, step 2: unknown step type `exec` (did you mean `execute`?); known types are `print`, `execute`, `shell`, `environment`",
        ],
    );
}

#[test]
fn step_argument_of_the_wrong_shape() {
    assert_invalid(
        "version: 0.1\ntask:\n  - sequential:\n      - print: hello\n      - environment: [a, b]\n",
        &[
            "w.yaml:4:16: task 1, step 1: `print` takes a list of strings, found a single value; write `print: [\"...\"]`",
            "w.yaml:5:23: task 1, step 2 (environment): entry 1 must be a single `NAME: value` pair, found a single value",
            "(3 problems)",
        ],
    );
}

#[test]
fn node_on_some_tasks_only() {
    assert_invalid(
        "version: 0.1\ntask:\n  - node: node1\n    sequential: []\n  - sequential: []\n",
        &["w.yaml:5:5: `node` is set on task 1 but not on task 2; set it on every task or on none"],
    );
}

#[test]
fn undefined_variable_names_variable_task_and_step() {
    let out = validate(
        "version: 0.1\nenvironment:\n  - name: x\ntask:\n  - sequential: [print: [ok]]\n  - sequential:\n      - print: [\"{{env:nmae}}\"]\n",
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("w.yaml:7:17: task 2, step 1 (print): `{{env:nmae}}` refers to undefined variable `nmae` (did you mean `name`?)"),
        "{}",
        out.stderr
    );
    // `run` refuses before anything runs.
    let out = roiergasias_stdin(&["run", "-f", "-"], b"version: 0.1\ntask:\n  - sequential: [print: [first], print: [\"{{env:UNDEFINED_X}}\"]]\n");
    assert_eq!(out.code, 2);
    assert_eq!(out.stdout, "", "nothing ran");
    assert!(out.stderr.contains("<stdin>:3:42: task 1, step 2 (print): `{{env:UNDEFINED_X}}` refers to undefined variable `UNDEFINED_X`"), "{}", out.stderr);
}

#[test]
fn unbalanced_quotes() {
    assert_invalid(
        "version: 0.1\ntask:\n  - sequential:\n      - execute: [\"echo 'unterminated\"]\n",
        &["w.yaml:4:19: task 1, step 1 (execute): unbalanced quotes in `echo 'unterminated`"],
    );
}

#[test]
fn command_that_does_not_exist_exits_1() {
    let out = roiergasias_stdin(
        &["run", "-f", "-"],
        b"version: 0.1\ntask:\n  - sequential: [execute: [\"/no/such/tool\"]]\n",
    );
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("could not start command `/no/such/tool`: No such file or directory"),
        "{}",
        out.stderr
    );
}

#[test]
fn ten_megabyte_workflow() {
    let mut text = String::from("version: 0.1\ntask:\n  - sequential:\n      - print:\n");
    while text.len() < 10 * 1024 * 1024 {
        text.push_str("          - \"padding padding padding padding padding padding\"\n");
    }
    let out = validate(&text);
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: w.yaml: the workflow is larger than the 8 MiB limit\n"
    );
    // The same through standard input, which is read only up to the limit.
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 2);
    assert_eq!(
        out.stderr,
        "error: <stdin>: the workflow is larger than the 8 MiB limit\n"
    );
}

#[test]
fn binary_garbage() {
    // Deterministic pseudo-random bytes (a linear congruential generator).
    let mut x: u32 = 12345;
    let garbage: Vec<u8> = (0..4096)
        .map(|_| {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (x >> 16) as u8
        })
        .collect();
    let out = validate(&garbage);
    assert_eq!(out.code, 2);
    assert!(
        out.stderr.contains("not UTF-8 text (invalid byte 0x"),
        "{}",
        out.stderr
    );
    // Valid UTF-8 with control characters (an ELF header, say).
    assert_invalid(
        b"\x7fELF\x02\x01\x01\x00\x00",
        &["w.yaml:1: binary data (byte 0x02 at offset 4); a workflow is YAML text"],
    );
}

#[test]
fn a_directory() {
    let dir = Dir::temp();
    let out = roiergasias(&["validate", "-f", dir.0.path().to_str().unwrap()]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("Is a directory"), "{}", out.stderr);
}

#[test]
fn every_problem_is_reported_at_once() {
    let out = validate(
        "version: 1\ntask:\n  - sequential:\n      - prnt: [a]\n  - nodes: x\n    sequential: [execute: [\"'\"]]\n",
    );
    assert_eq!(out.code, 2);
    assert!(
        out.stderr
            .starts_with("error: w.yaml is invalid (4 problems):\n"),
        "{}",
        out.stderr
    );
    let lines: Vec<&str> = out.stderr.lines().skip(1).collect();
    assert_eq!(lines.len(), 4, "{}", out.stderr);
    assert!(lines[0].starts_with("  w.yaml:1:10: unsupported version `1`"));
    assert!(lines[1].starts_with("  w.yaml:4:9: task 1, step 1: unknown step type `prnt`"));
    assert!(
        lines[2]
            .starts_with("  w.yaml:5:5: task 2: unknown task type `nodes` (did you mean `node`?)")
    );
    assert!(lines[3].starts_with("  w.yaml:6:28: task 2, step 1 (execute): unbalanced quotes"));
}

#[test]
fn invalid_workflow_error_goes_to_the_outputs_file() {
    let (out, written) = run_with_outputs_file("version: 0.1\ntask: []\n");
    assert_eq!(out.code, 2);
    assert!(
        written.ends_with("w.yaml:2:7: `task` is empty; a workflow needs at least one task"),
        "{written}"
    );
}
