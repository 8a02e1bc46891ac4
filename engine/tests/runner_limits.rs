//! Hostile values at run time: sizes are capped when a value is set, and the
//! `ROIERGASIAS_ENV` file is read only when it is a small regular file.

mod common;

use std::fmt::Write as _;

use common::{Dir, Out, run_with};

/// Runs workflow `text` with its virtual memory capped at 512 MiB (a run that builds
/// gigabytes aborts instead of taking the machine) and a 60 s hang guard (then SIGKILL,
/// for a run that would ignore SIGTERM).
fn run_bounded(text: &str) -> Out {
    let dir = Dir::temp();
    let file = dir.file("w.yaml", text);
    let mut command = std::process::Command::new("sh");
    command.args([
        "-c",
        "ulimit -v 524288; exec timeout -k 5 60 \"$0\" run -f \"$1\"",
        env!("CARGO_BIN_EXE_roiergasias"),
        &file,
    ]);
    let out = run_with(command, &[], None);
    assert!(![124, 137].contains(&out.code), "hung: {}", out.stderr);
    out
}

fn assert_failed_with(out: &Out, message: &str) {
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .lines()
            .any(|l| l.starts_with("error: ") && l.contains(message)),
        "missing {message:?} in\n{}",
        out.stderr
    );
    assert!(
        !out.stdout.contains("never"),
        "later steps ran: {}",
        out.stdout
    );
}

/// `a0: 8 bytes`, then 40 entries that each double the one before.
fn doubling(indent: &str) -> String {
    let mut entries = format!("{indent}- a0: xxxxxxxx\n");
    for n in 1..=40 {
        let m = n - 1;
        writeln!(
            entries,
            "{indent}- a{n}: \"{{{{env:a{m}}}}}{{{{env:a{m}}}}}\""
        )
        .unwrap();
    }
    entries
}

#[test]
fn doubling_values_stop_at_the_value_limit_in_the_global_environment() {
    let text = format!(
        "version: 0.1\nenvironment:\n{}task:\n  - sequential: [print: [never]]\n",
        doubling("  ")
    );
    let out = run_bounded(&text);
    // 8 × 2^13 = 65536 fits; a14 would be twice that.
    assert_failed_with(
        &out,
        "global environment, `a14`: `a14` would be 131072 bytes, more than the 65536-byte limit for a variable's value",
    );
}

#[test]
fn doubling_values_stop_at_the_value_limit_in_an_environment_step() {
    let text = format!(
        "version: 0.1\ntask:\n  - sequential:\n      - environment:\n{}      - print: [never]\n",
        doubling("          ")
    );
    let out = run_bounded(&text);
    assert_failed_with(
        &out,
        "task 1, step 1 (environment): `a14` would be 131072 bytes, more than the 65536-byte limit for a variable's value",
    );
}

#[test]
fn all_variables_together_are_capped() {
    // Values of 60 KiB: as `vN=value` entries, 17 fit in 1 MiB and the 18th does not.
    let mut text = String::from("version: 0.1\ntask:\n  - sequential:\n      - shell:\n");
    for n in 1..=20 {
        writeln!(
            text,
            "          - 'printf \"v{n}=%s\\n\" \"$(head -c 61440 /dev/zero | tr \"\\0\" x)\" >> \"$ROIERGASIAS_ENV\"'"
        )
        .unwrap();
    }
    text.push_str("      - print: [never]\n");
    let out = run_bounded(&text);
    // 9 × (2 + 61440 + 2) + 9 × (3 + 61440 + 2)
    assert_failed_with(
        &out,
        "task 1, step 1 (shell): setting `v18` would make the workflow's variables 1106001 bytes in all (as NAME=value), more than the 1048576-byte limit (from ROIERGASIAS_ENV of `printf \"v18=",
    );
}

#[test]
fn a_megabyte_value_from_roiergasias_env_is_refused_when_set() {
    let text = r#"version: 0.1
task:
  - sequential:
      - shell:
          - 'printf "big=%s\n" "$(head -c 1000000 /dev/zero | tr "\\0" x)" >> "$ROIERGASIAS_ENV"'
          - echo never
"#;
    let out = run_bounded(text);
    assert_failed_with(
        &out,
        "task 1, step 1 (shell): `big` would be 1000000 bytes, more than the 65536-byte limit for a variable's value (from ROIERGASIAS_ENV of `printf",
    );
}

/// A 60 KiB variable `a`, then `steps`.
fn with_big_value(steps: &str) -> String {
    format!(
        "version: 0.1\nenvironment:\n  - a: {}\ntask:\n  - sequential:\n{steps}      - print: [never]\n",
        "x".repeat(61440)
    )
}

#[test]
fn substituted_words_scripts_and_messages_are_capped() {
    let out = run_bounded(&with_big_value(
        "      - execute: [\"echo {{env:a}}{{env:a}}{{env:a}}\"]\n",
    ));
    assert_failed_with(
        &out,
        "task 1, step 1 (execute): command `echo {{env:a}}{{env:a}}{{env:a}}` would be 184320 bytes once substituted, more than the 131071-byte limit",
    );
    let words = " {{env:a}}".repeat(20);
    let out = run_bounded(&with_big_value(&format!(
        "      - execute: [\"echo{words}\"]\n"
    )));
    assert_failed_with(&out, "more than the 1048576-byte limit");
    assert!(
        out.stderr.contains("would be 1228804 bytes"),
        "{}",
        out.stderr
    );
    let out = run_bounded(&with_big_value(
        "      - shell: [\"echo {{env:a}}{{env:a}}{{env:a}}\"]\n",
    ));
    assert_failed_with(
        &out,
        "task 1, step 1 (shell): script `echo {{env:a}}{{env:a}}{{env:a}}` would be 184325 bytes once substituted, more than the 131071-byte limit",
    );
    let messages = vec!["\"{{env:a}}\""; 20].join(", ");
    let out = run_bounded(&with_big_value(&format!("      - print: [{messages}]\n")));
    assert_failed_with(
        &out,
        "task 1, step 1 (print): the messages would be 1228820 bytes once substituted, more than the 1048576-byte limit",
    );
}

#[test]
fn values_within_the_limits_are_used_in_full() {
    let text =
        with_big_value("      - shell: ['test ${#a} -eq 61440 && printf \"%s\" \"$a\" | wc -c']\n")
            .replace("      - print: [never]\n", "");
    let out = run_bounded(&text);
    assert_eq!(
        (out.code, out.stdout.trim()),
        (0, "61440"),
        "{}",
        out.stderr
    );
}

/// Runs a shell step `script` followed by a print that must not run.
fn env_file_case(script: &str) -> Out {
    let text = format!(
        "version: 0.1\ntask:\n  - sequential:\n      - shell: ['{script}']\n      - print: [never]\n"
    );
    run_bounded(&text)
}

#[test]
fn roiergasias_env_must_be_a_small_regular_file() {
    for (script, what) in [
        (
            "mkfifo \"$ROIERGASIAS_ENV\"",
            "is a FIFO, not a regular file",
        ),
        (
            "ln -s /dev/zero \"$ROIERGASIAS_ENV\"",
            "is a symbolic link, not a regular file",
        ),
        (
            "mkdir \"$ROIERGASIAS_ENV\"",
            "is a directory, not a regular file",
        ),
        (
            "head -c 2000000 /dev/zero > \"$ROIERGASIAS_ENV\"",
            "is 2000000 bytes, more than the 1048576-byte limit for one command",
        ),
    ] {
        let out = env_file_case(script);
        assert_failed_with(
            &out,
            &format!(
                "task 1, step 1 (shell): command `{script}` left a ROIERGASIAS_ENV file that {what}"
            ),
        );
    }
}

#[test]
fn a_fifo_with_a_writer_still_attached_does_not_hang_the_run() {
    // Something the command left running keeps the FIFO open for writing.
    let out =
        env_file_case("mkfifo \"$ROIERGASIAS_ENV\"; sleep 30 > \"$ROIERGASIAS_ENV\" 2>/dev/null &");
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(
        out.stderr
            .contains("left a ROIERGASIAS_ENV file that is a FIFO"),
        "{}",
        out.stderr
    );
}

#[test]
fn env_file_text_must_be_utf8() {
    let out = env_file_case("printf \"a=1\\nb=\\377\\n\" >> \"$ROIERGASIAS_ENV\"");
    assert_failed_with(
        &out,
        "wrote a malformed line 2 to ROIERGASIAS_ENV: the text is not UTF-8",
    );
}
