//! The `roiergasias` binary on real workflows: stdout, stderr and exit codes.

mod common;

use common::{Dir, bin, example, roiergasias, roiergasias_stdin, run_with, run_with_outputs_file};

const HELLO_OUTPUT: &str = "Welcome to roiergasias! Hello, world.
This message comes from a print step.
world is cheerful
Task 2 still knows the mood (cheerful) and the lucky number (42).
THE MOOD IS CHEERFUL
";

#[test]
fn runs_the_hello_world_example() {
    let out = roiergasias(&["run", "-f", &example("hello-world.yaml")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, HELLO_OUTPUT);
    // Progress goes to stderr, never mixed into the workflow's output.
    for line in [
        "task 1/2 · step 1/3 · print",
        "task 1/2 · step 3/3 · execute · ok in ",
        "task 2/2 · step 2/2 · shell · ok in ",
    ] {
        assert!(
            out.stderr.contains(line),
            "missing {line:?} in\n{}",
            out.stderr
        );
    }
    assert!(!out.stderr.contains("Hello"), "{}", out.stderr);
    assert!(
        !out.stderr.contains('\x1b'),
        "no colour when stderr is not a terminal"
    );
}

#[test]
fn runs_the_multi_node_example_locally() {
    let out = roiergasias(&["run", "--file", &example("hello-world-multi-node.yaml")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", out.stdout);
    assert_eq!(
        lines[..3],
        [
            "Welcome to the multi-node hello world!",
            "Task 1 runs on node1.",
            "Task 2 runs on node2 and received: Warm greetings from node1",
        ]
    );
    // The host name comes from task 1's command through ROIERGASIAS_ENV.
    let host = std::process::Command::new("uname")
        .arg("-n")
        .output()
        .unwrap();
    let host = String::from_utf8_lossy(&host.stdout)
        .trim()
        .chars()
        .take(20)
        .collect::<String>();
    assert_eq!(
        lines[3],
        format!("Task 3 on node2: node2 says hello back (data prepared by {host})")
    );
}

#[test]
fn file_flag_forms_and_stdin() {
    let text = "version: 0.1\ntask:\n  - sequential: [print: [from-somewhere]]\n";
    let dir = Dir::temp();
    let file = dir.file("w.yaml", text);
    let equals = format!("--file={file}");
    for args in [
        vec!["run", "-f", &file],
        vec!["run", "--file", &file],
        vec!["run", &equals],
    ] {
        let out = roiergasias(&args);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, "from-somewhere\n"),
            "{args:?}: {}",
            out.stderr
        );
    }
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "from-somewhere\n"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("running <stdin>"), "{}", out.stderr);
}

#[test]
fn command_output_keeps_its_order_and_stderr_goes_to_stdout() {
    let text = r#"version: 0.1
task:
  - sequential:
      - print: [one]
      - execute: ["sh -c 'echo two; echo three >&2; echo four'"]
      - print: [five]
      - shell: ["echo six; echo seven >&2"]
"#;
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(out.stdout, "one\ntwo\nthree\nfour\nfive\nsix\nseven\n");
    assert!(
        !out.stderr.contains("three") && !out.stderr.contains("seven"),
        "{}",
        out.stderr
    );
}

#[test]
fn values_never_become_words_or_code_in_execute() {
    let text = r#"version: 0.1
environment:
  - tricky: "a  b; echo INJECTED $(echo no) 'q"
task:
  - sequential:
      - execute: ["printf '[%s]\n' {{env:tricky}} 'x {{env:tricky}}'"]
      - shell: ["printf '[%s]\n' \"$tricky\""]
"#;
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "[a  b; echo INJECTED $(echo no) 'q]\n[x a  b; echo INJECTED $(echo no) 'q]\n[a  b; echo INJECTED $(echo no) 'q]\n"
    );
}

#[test]
fn shell_trusts_its_text() {
    // Documented: in `shell`, a substituted value is shell code.
    let text = "version: 0.1\nenvironment:\n  - code: \"echo from-value | tr a-z A-Z\"\ntask:\n  - sequential: [shell: [\"{{env:code}}\"]]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "FROM-VALUE\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn variables_are_exported_with_their_names() {
    let text = "version: 0.1\nenvironment:\n  - with-dash: one\n  - under_score: two\ntask:\n  - sequential:\n      - environment: [later: three]\n      - execute: [env]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    for line in [
        "with-dash=one",
        "under_score=two",
        "later=three",
        "ROIERGASIAS_ENV=/",
    ] {
        assert!(
            out.stdout.lines().any(|l| l.starts_with(line)),
            "{line} not in\n{}",
            out.stdout
        );
    }
}

#[test]
fn process_environment_is_the_fallback() {
    let text = "version: 0.1\nenvironment:\n  - mine: workflow\ntask:\n  - sequential: [print: [\"{{env:FROM_JOB}} {{env:mine}}\"]]\n";
    let mut command = bin();
    command
        .env("FROM_JOB", "s3://bucket")
        .env("mine", "process");
    let out = run_with(command, &["run", "-f", "-"], Some(text.as_bytes()));
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "s3://bucket workflow\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn outputs_travel_through_roiergasias_env_and_the_outputs_file() {
    let text = r#"version: 0.1
environment:
  - global: not-an-output
task:
  - sequential:
      - execute:
          - "sh -c 'echo model=s3://b/m.bin >> \"$ROIERGASIAS_ENV\"; printf \"multi<<EOF\\nline 1\\nline 2\\nEOF\\n\" >> \"$ROIERGASIAS_ENV\"'"
          - "echo second command sees {{env:model}}"
  - sequential:
      - environment: [stage: trained]
      - print: ["{{env:model}} {{env:multi}}"]
"#;
    let (out, json) = run_with_outputs_file(text);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "second command sees s3://b/m.bin\ns3://b/m.bin line 1\nline 2\n"
    );
    assert_eq!(
        json,
        r#"{"model":"s3://b/m.bin","multi":"line 1\nline 2","stage":"trained"}"#
    );
    let parsed = roiergasias_engine::outputs::parse_outputs(&json).unwrap();
    assert_eq!(parsed.len(), 3);
}

#[test]
fn outputs_too_large_fail_naming_the_largest() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - shell: [\"echo big=$(head -c 5000 /dev/zero | tr '\\\\0' x) >> $ROIERGASIAS_ENV; echo small=1 >> $ROIERGASIAS_ENV\"]\n";
    let (out, written) = run_with_outputs_file(text);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("more than the 4096-byte termination message limit; largest variables: big (5000 bytes), small (1 bytes)"), "{}", out.stderr);
    assert!(
        written.starts_with("the outputs take 5022 bytes as JSON"),
        "the error, not truncated JSON: {written}"
    );
}

#[test]
fn malformed_roiergasias_env_lines_are_errors() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - shell: [\"echo oops >> $ROIERGASIAS_ENV\"]\n      - print: [never]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: task 1, step 1 (shell): command `echo oops >> $ROIERGASIAS_ENV` wrote a malformed line 1 to ROIERGASIAS_ENV: `oops` is not `NAME=value`"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn a_failing_command_stops_the_workflow() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - print: [before]\n  - sequential:\n      - execute: [\"true\", \"sh -c 'exit 3'\", \"echo not-run\"]\n      - print: [after]\n";
    let (out, written) = run_with_outputs_file(text);
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "before\n");
    let message = "task 2, step 1 (execute): command `sh -c 'exit 3'` exited with status 3";
    assert!(
        out.stderr.contains(&format!("error: {message}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("task 2/2 · step 1/2 · execute · failed in "),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("step 2/2"),
        "later steps do not run: {}",
        out.stderr
    );
    assert_eq!(written, message);
}

#[test]
fn a_killed_command_names_the_signal() {
    let text = "version: 0.1\ntask:\n  - sequential: [execute: [\"sh -c 'kill -TERM $$'\"]]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr
            .contains("command `sh -c 'kill -TERM $$'` was killed by signal 15 (SIGTERM)"),
        "{}",
        out.stderr
    );
}

#[test]
fn a_command_that_does_not_exist() {
    let text = "version: 0.1\ntask:\n  - sequential: [execute: [\"no-such-command-xyz --flag\"], print: [never]]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: task 1, step 1 (execute): could not start command `no-such-command-xyz --flag`: No such file or directory (os error 2) (is it installed and on PATH?)"), "{}", out.stderr);
    assert_eq!(out.stdout, "");
}

#[test]
fn names_only_a_command_could_set_are_checked_when_the_step_runs() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - execute: [\"true\"]\n      - print: [\"{{env:never-set}}\"]\n";
    // Statically possible (the command could have set it), so validation passes…
    let out = roiergasias_stdin(&["validate", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    // …and the run fails at that step, exit 1.
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("error: task 1, step 2 (print): `{{env:never-set}}` refers to undefined variable `never-set`"), "{}", out.stderr);
}

#[test]
fn validate_prints_a_summary() {
    let out = roiergasias(&["validate", "-f", &example("hello-world-multi-node.yaml")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(
        out.stdout
            .ends_with("hello-world-multi-node.yaml is valid: 3 tasks, 6 steps, 3 splits\n"),
        "{}",
        out.stdout
    );
    let out = roiergasias(&["validate", "-f", &example("hello-world.yaml")]);
    assert!(
        out.stdout
            .ends_with("hello-world.yaml is valid: 2 tasks, 5 steps, 1 split\n"),
        "{}",
        out.stdout
    );
}

#[test]
fn split_prints_one_valid_document_per_task() {
    let out = roiergasias(&["split", "-f", &example("hello-world-multi-node.yaml")]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let docs = documents(&out.stdout);
    assert_eq!(docs.len(), 3);
    let nodes: Vec<_> = docs
        .iter()
        .map(|d| {
            roiergasias_engine::parse(d).unwrap().tasks[0]
                .node
                .clone()
                .unwrap()
        })
        .collect();
    assert_eq!(nodes, ["node1", "node2", "node2"]);
    let second = roiergasias_engine::parse(&docs[1]).unwrap();
    assert_eq!(
        second.environment.last().unwrap(),
        &roiergasias_engine::EnvVar::new("greeting", "Warm greetings from node1")
    );
    // A document runs on its own.
    let out = roiergasias_stdin(&["run", "-f", "-"], docs[1].as_bytes());
    assert_eq!(
        out.stdout, "Task 2 runs on node2 and received: Warm greetings from node1\n",
        "{}",
        out.stderr
    );

    let out = roiergasias(&["split", "-f", &example("hello-world.yaml")]);
    assert_eq!(
        documents(&out.stdout).len(),
        1,
        "no nodes: the workflow itself"
    );
}

/// The documents of a YAML stream as printed by `split`.
pub fn documents(stream: &str) -> Vec<String> {
    let mut docs: Vec<String> = Vec::new();
    for line in stream.lines() {
        if line.starts_with("---") {
            docs.push(String::new());
        } else {
            let doc = docs.last_mut().expect("stream starts with ---");
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

#[test]
fn version_help_and_completions() {
    let out = roiergasias(&["version"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, concat!("roiergasias ", env!("CARGO_PKG_VERSION"), "\n"))
    );
    for cmd in [
        &["--help"][..],
        &["run", "--help"],
        &["validate", "--help"],
        &["split", "--help"],
        &["completions", "--help"],
    ] {
        let out = roiergasias(cmd);
        assert_eq!(out.code, 0, "{cmd:?}");
        assert!(
            out.stdout.contains("Usage: roiergasias"),
            "{cmd:?}: {}",
            out.stdout
        );
    }
    let out = roiergasias(&["run", "--help"]);
    assert!(
        out.stdout.contains("--outputs-file <PATH>") && out.stdout.contains("-f, --file <FILE>"),
        "{}",
        out.stdout
    );
    for shell in ["bash", "zsh", "fish"] {
        let out = roiergasias(&["completions", shell]);
        assert_eq!(out.code, 0);
        assert!(
            out.stdout.contains("roiergasias") && out.stdout.contains("validate"),
            "{shell}"
        );
    }
    let out = roiergasias(&["run"]);
    assert_eq!(out.code, 2, "usage errors exit 2");
    assert!(out.stderr.contains("--file <FILE>"), "{}", out.stderr);
}

#[test]
fn json_logs_are_one_object_per_line() {
    let text = "version: 0.1\ntask:\n  - sequential: [print: [hi], execute: [\"false\"]]\n";
    let out = roiergasias_stdin(&["--log-format", "json", "run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert_eq!(out.stdout, "hi\n");
    let events: Vec<serde_json::Value> = out
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let finished: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "step_finished")
        .collect();
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["result"], "ok");
    assert_eq!(finished[1]["result"], "failed");
    assert_eq!(finished[1]["kind"], "execute");
    assert!(finished[1]["duration_ms"].as_f64().is_some());
    let last = events.last().unwrap();
    assert_eq!(last["level"], "ERROR");
    assert_eq!(
        last["message"],
        "task 1, step 2 (execute): command `false` exited with status 1"
    );
}

#[test]
fn debug_shows_commands_and_variables() {
    let text = "version: 0.1\ntask:\n  - sequential: [environment: [a: b], execute: [\"echo {{env:a}}\"]]\n";
    let out = roiergasias_stdin(&["run", "-d", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0);
    assert!(
        out.stderr
            .contains("debug: environment step sets `a` (1 bytes)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains(r#"debug: task 1, step 2 (execute): running "echo" ["b"]"#),
        "{}",
        out.stderr
    );
    let quiet = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert!(!quiet.stderr.contains("debug:"));
}

#[test]
fn commands_are_found_on_the_workflow_path_with_argv0_as_written() {
    let text = "version: 0.1\ntask:\n  - sequential: [execute: [\"sh -c 'echo $0'\"]]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "sh\n"),
        "{}",
        out.stderr
    );
    // A workflow that sets PATH changes where commands are looked up, as for the child.
    let text = "version: 0.1\nenvironment:\n  - PATH: /nonexistent\ntask:\n  - sequential: [execute: [\"true\"]]\n";
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("could not start command `true`"),
        "{}",
        out.stderr
    );
}

#[test]
fn each_command_gets_a_fresh_private_outputs_file_removed_afterwards() {
    let text = r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'test ! -s "$ROIERGASIAS_ENV" && echo "$ROIERGASIAS_ENV" && echo a=1 >> "$ROIERGASIAS_ENV"'
          - 'test ! -s "$ROIERGASIAS_ENV" && echo "$ROIERGASIAS_ENV" && stat -c %a "$(dirname "$ROIERGASIAS_ENV")"'
"#;
    let out = roiergasias_stdin(&["run", "-f", "-"], text.as_bytes());
    assert_eq!(out.code, 0, "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{}", out.stdout);
    assert_ne!(lines[0], lines[1], "a new file per command");
    assert_eq!(lines[2], "700", "the directory is private");
    for path in &lines[..2] {
        let path = std::path::Path::new(path);
        assert!(
            !path.exists() && !path.parent().unwrap().exists(),
            "{path:?} is cleaned up"
        );
    }
}

#[test]
fn sigterm_is_passed_on_to_the_command_and_stops_the_workflow() {
    use std::io::{BufRead, BufReader};
    let text = "version: 0.1\ntask:\n  - sequential:\n      - shell: [\"trap 'echo got TERM; exit 7' TERM; sleep 30 >/dev/null 2>&1 & echo ready; wait\"]\n      - print: [never]\n";
    let dir = Dir::temp();
    let file = dir.file("w.yaml", text);
    let mut child = bin()
        .args(["run", "-f", &file])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    // The command has set its trap and started its background sleep once it says so (the
    // sleep gets SIGTERM too, with the command's whole process group).
    stdout.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        rest, "got TERM\n",
        "the command got SIGTERM; later steps did not run"
    );
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "error: task 1, step 1 (shell): stopped by SIGTERM (passed on to the running command)"
        ),
        "{stderr}"
    );
}
