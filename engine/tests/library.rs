//! The library API the operator builds on: parse, validate, to_yaml, split.

use roiergasias_engine::{
    EnvVar, PlannedSplit, Step, Task, Workflow, parse, parse_with_env, plan, split, split_at,
    split_count, splits,
};

const HELLO: &str = r#"
version: 0.1
environment:
  - welcome: "Welcome to the demo workflow!"
task:
  - node: node1
    sequential:
      - print: ["Hello", "World!"]
      - execute: ["echo {{env:greeting}}"]
      - environment:
          - greeting: "Warm greetings!"
  - node: node2
    sequential:
      - shell: ["echo $welcome | tr a-z A-Z"]
"#;

fn errors(text: &str) -> String {
    parse(text).expect_err("should be invalid").to_string()
}

#[test]
fn parses_the_issue_example() {
    // `greeting` is used before it is set: unknown statically, so assumed to come from the process env.
    let wf = parse(HELLO).unwrap();
    assert_eq!(wf.version, "0.1");
    assert_eq!(
        wf.environment,
        vec![EnvVar::new("welcome", "Welcome to the demo workflow!")]
    );
    assert_eq!(wf.tasks.len(), 2);
    assert_eq!(wf.tasks[0].node.as_deref(), Some("node1"));
    assert_eq!(
        wf.tasks[0].steps,
        vec![
            Step::Print(vec!["Hello".into(), "World!".into()]),
            Step::Execute(vec!["echo {{env:greeting}}".into()]),
            Step::Environment(vec![EnvVar::new("greeting", "Warm greetings!")]),
        ]
    );
    assert_eq!(
        wf.tasks[1].steps,
        vec![Step::Shell(vec!["echo $welcome | tr a-z A-Z".into()])]
    );
}

#[test]
fn version_may_be_a_number_or_a_string() {
    for v in ["0.1", "\"0.1\"", "'0.1'"] {
        let text = format!("version: {v}\ntask:\n  - sequential: [print: [hi]]\n");
        assert!(parse(&text).is_ok(), "{v}");
    }
    // YAML reads these as the number 0.1, and the original accepted them.
    for v in ["0.10", ".1", "0.100", "1e-1"] {
        let text = format!("version: {v}\ntask:\n  - sequential: [print: [hi]]\n");
        assert_eq!(parse(&text).expect(v).version, "0.1");
    }
    let err = errors("version: 0.11\ntask:\n  - sequential: []\n");
    assert_eq!(
        err,
        "1:10: unsupported version `0.11`; this roiergasias reads version 0.1"
    );
    for v in ["1", "0.1.0", "01", "v0.1"] {
        let err = errors(&format!("version: {v}\ntask:\n  - sequential: []\n"));
        assert!(err.contains(&format!("unsupported version `{v}`")), "{err}");
    }
}

#[test]
fn numbers_and_booleans_keep_their_text() {
    let wf = parse("version: 0.1\nenvironment:\n  - port: 08080\n  - ratio: 1.50\n  - yes: yes\ntask:\n  - sequential:\n      - print: [1e3, true, 0x1F]\n").unwrap();
    assert_eq!(
        wf.environment,
        vec![
            EnvVar::new("port", "08080"),
            EnvVar::new("ratio", "1.50"),
            EnvVar::new("yes", "yes")
        ]
    );
    assert_eq!(
        wf.tasks[0].steps[0],
        Step::Print(vec!["1e3".into(), "true".into(), "0x1F".into()])
    );
}

#[test]
fn unknown_top_level_key_suggests_the_right_one() {
    let err = errors("version: 0.1\ntasks:\n  - sequential: []\n");
    assert_eq!(
        err,
        "2:1: unknown key `tasks` (did you mean `task`?); a workflow has `version`, `environment` and `task`"
    );
    // What is under the misspelled key is still checked.
    let err = errors("version: 0.1\ntasks:\n  - sequential: [prnt: [x]]\n");
    assert!(
        err.contains("3:18: task 1, step 1: unknown step type `prnt`"),
        "{err}"
    );
    let err = errors("version: 0.1\nenviroment: []\ntask:\n  - sequential: []\n");
    assert!(
        err.contains("unknown key `enviroment` (did you mean `environment`?)"),
        "{err}"
    );
    let err = errors("version: 0.1\nzzz: 1\ntask:\n  - sequential: []\n");
    assert!(
        err.contains("unknown key `zzz`;"),
        "no suggestion for a far miss: {err}"
    );
}

#[test]
fn collects_every_problem_with_positions() {
    let text = "version: 0.1\ntask:\n  - sequential:\n      - prnt: [hi]\n      - execute: \"echo\"\n  - parallel: []\n  - sequential:\n      - execute: ['unbalanced \"quote']\n";
    let err = parse(text).unwrap_err();
    let lines: Vec<String> = err.problems().iter().map(|p| p.to_string()).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert!(
        lines[0]
            .starts_with("4:9: task 1, step 1: unknown step type `prnt` (did you mean `print`?)"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].starts_with(
            "5:18: task 1, step 2: `execute` takes a list of strings, found a single value"
        ),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].starts_with("6:5: task 2: unknown task type `parallel`"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].starts_with("8:19: task 3, step 1 (execute): unbalanced quotes"),
        "{}",
        lines[3]
    );
    assert_eq!(err.to_string(), lines.join("\n"));
}

#[test]
fn structure_errors() {
    let cases: &[(&str, &str)] = &[
        ("", "the workflow is empty"),
        ("   \n# only a comment\n", "the workflow is empty"),
        (
            "- a\n- b\n",
            "1:1: the workflow must be a mapping with `version`, `environment` and `task`, found a list",
        ),
        ("just text", "must be a mapping"),
        ("version: 0.1\n", "missing `task`"),
        ("task:\n  - sequential: []\n", "missing `version: 0.1`"),
        ("version: 0.1\ntask: []\n", "2:7: `task` is empty"),
        (
            "version: 0.1\ntask: {a: 1}\n",
            "`task` must be a list of tasks",
        ),
        (
            "version: 0.1\ntask:\n  - node: n1\n",
            "task 1 has no `sequential` list of steps",
        ),
        (
            "version: 0.1\ntask:\n  - hello\n",
            "task 1 must be a mapping",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [hello]\n",
            "task 1, step 1: a step must be a mapping",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{print: [a], execute: [b]}]\n",
            "found `print`, `execute`",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{print: [[a]]}]\n",
            "task 1, step 1 (print): item 1 must be a string, found a list",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{print: [~]}]\n",
            "item 1 must be a string, found nothing (null)",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{execute: [\"\"]}]\n",
            "command 1 is empty",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{environment: {a: b}}]\n",
            "must be a list of `- NAME: value` entries, found a mapping",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{environment: [{a: b, c: d}]}]\n",
            "entry 1 must be a single `NAME: value` pair, found a mapping with 2 keys",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{environment: [{a: [x]}]}]\n",
            "`a` needs a single value, found a list",
        ),
        (
            "version: 0.1\ntask:\n  - sequential: [{environment: [{\"a b\": x}]}]\n",
            "variable name `a b` may contain only letters",
        ),
        (
            "version: 0.1\ntask:\n  - node: \"node 1\"\n    sequential: []\n",
            "node `node 1` is not a valid Kubernetes label value",
        ),
        ("version: 0.1\ntask: [\n", "not valid YAML"),
        ("version: 0.1\nversion: 0.1\ntask: []\n", "not valid YAML"),
    ];
    for (text, expected) in cases {
        let err = errors(text);
        assert!(
            err.contains(expected),
            "input {text:?}\nexpected {expected:?}\ngot {err:?}"
        );
    }
}

#[test]
fn node_on_some_tasks_only() {
    let err = errors(
        "version: 0.1\ntask:\n  - node: a\n    sequential: []\n  - sequential: []\n  - node: b\n    sequential: []\n",
    );
    assert_eq!(
        err,
        "5:5: `node` is set on tasks 1, 3 but not on task 2; set it on every task or on none"
    );
}

#[test]
fn binary_and_oversized_input() {
    let err = errors("version: 0.1\n\u{0}\u{1}garbage");
    assert!(
        err.contains("binary data (byte 0x00 at offset 13)"),
        "{err}"
    );
    let big = "#".repeat(roiergasias_engine::MAX_WORKFLOW_BYTES + 1);
    assert!(errors(&big).contains("more than the 8 MiB limit"));
    let err = roiergasias_engine::workflow_text(b"version: 0.1\n\xff\xfe")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "2: not UTF-8 text (invalid byte 0xff at offset 13); a workflow is YAML text"
    );
}

#[test]
fn undefined_variables_name_variable_task_and_step() {
    let text = "version: 0.1\nenvironment:\n  - greeting: hi\ntask:\n  - sequential:\n      - print: [\"{{env:greting}}\"]\n      - environment:\n          - later: \"{{env:greeting}} {{env:nope}}\"\n";
    let err = parse_with_env(text, |_| false).unwrap_err().to_string();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert_eq!(
        lines[0],
        "6:17: task 1, step 1 (print): `{{env:greting}}` refers to undefined variable `greting` (did you mean `greeting`?); set it earlier in an `environment` or in the process environment"
    );
    assert!(
        lines[1].starts_with(
            "8:13: task 1, step 2 (environment): `{{env:nope}}` refers to undefined variable `nope`"
        ),
        "{}",
        lines[1]
    );
    // The same names are fine when the process environment has them.
    assert!(parse_with_env(text, |n| n == "greting" || n == "nope").is_ok());
    // `parse` leaves them to the environment the workflow will run in.
    assert!(parse(text).is_ok());
}

#[test]
fn variables_must_be_set_before_use() {
    let text = "version: 0.1\nenvironment:\n  - a: \"{{env:b}}\"\n  - b: x\ntask:\n  - sequential:\n      - print: [\"{{env:c}}\"]\n      - environment: [c: y]\n";
    let err = parse_with_env(text, |_| false).unwrap_err().to_string();
    assert!(
        err.contains("global environment, `a`: `{{env:b}}` refers to undefined variable `b`"),
        "{err}"
    );
    assert!(err.contains("task 1, step 1 (print): `{{env:c}}`"), "{err}");
}

#[test]
fn names_after_a_command_are_left_to_run_time() {
    // A command may set `out` through ROIERGASIAS_ENV; that is known only when it runs.
    let text = "version: 0.1\ntask:\n  - sequential:\n      - print: [\"{{env:before}}\"]\n      - execute: [\"true\", \"echo {{env:second}}\"]\n  - sequential:\n      - print: [\"{{env:out}}\"]\n";
    let err = parse_with_env(text, |_| false).unwrap_err().to_string();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("undefined variable `before`"), "{err}");
}

#[test]
fn global_entries_overridden_later_may_be_unresolved() {
    // Split documents carry raw step values that the operator overrides with outputs.
    let text = "version: 0.1\nenvironment:\n  - x: \"{{env:from-command}}\"\n  - x: resolved\ntask:\n  - sequential: [print: [\"{{env:x}}\"]]\n";
    assert!(parse_with_env(text, |_| false).is_ok());
}

#[test]
fn to_yaml_round_trips_tricky_values() {
    let wf = Workflow {
        version: "0.1".into(),
        environment: vec![
            EnvVar::new("empty", ""),
            EnvVar::new("n", "007"),
            EnvVar::new("t", "true"),
        ],
        tasks: vec![
            Task {
                node: Some("node-1.a".into()),
                steps: vec![
                    Step::Print(vec![
                        "multi\nline".into(),
                        "tab\tand \"quotes\" and 'single' #hash: colon".into(),
                        "null".into(),
                        "~".into(),
                        "- dash".into(),
                        "émoji 🚀 \u{7f}".into(),
                    ]),
                    Step::Execute(vec!["sh -c 'echo \"a  b\"'".into()]),
                    Step::Shell(vec![]),
                    Step::Environment(vec![EnvVar::new("k", "{{env:n}}")]),
                ],
            },
            Task {
                node: Some("2".into()),
                steps: vec![],
            },
        ],
    };
    let yaml = wf.to_yaml();
    assert_eq!(parse(&yaml).unwrap(), wf, "{yaml}");
    assert_eq!(parse(&yaml).unwrap().to_yaml(), yaml, "stable output");
}

#[test]
fn with_environment_appended_puts_vars_last() {
    let wf = parse(HELLO).unwrap();
    let out = wf.with_environment_appended(&[EnvVar::new("welcome", "override")]);
    assert_eq!(out.environment.len(), 2);
    assert_eq!(out.environment[1], EnvVar::new("welcome", "override"));
    assert_eq!(out.tasks, wf.tasks);
    assert_eq!(wf.environment.len(), 1, "the original is unchanged");
}

#[test]
fn split_carries_environment_forward() {
    let text = r#"
version: 0.1
environment:
  - g: global
task:
  - node: node1
    sequential:
      - environment: [a: "1", b: "2"]
  - node: node2
    sequential:
      - environment: [a: "3"]
  - node: node2
    sequential:
      - print: ["{{env:a}}{{env:b}}"]
"#;
    let wf = parse(text).unwrap();
    let splits = split(&wf);
    assert_eq!(splits.len(), 3);
    assert_eq!(
        splits.iter().map(|s| s.index).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(
        splits
            .iter()
            .map(|s| s.node.as_deref().unwrap())
            .collect::<Vec<_>>(),
        ["node1", "node2", "node2"]
    );
    assert_eq!(
        splits[0].workflow.environment,
        vec![EnvVar::new("g", "global")]
    );
    assert_eq!(
        splits[1].workflow.environment,
        vec![
            EnvVar::new("g", "global"),
            EnvVar::new("a", "1"),
            EnvVar::new("b", "2")
        ]
    );
    // `a: "1"` is overridden by `a: "3"` and nothing refers to it in between: left out.
    assert_eq!(
        splits[2].workflow.environment,
        vec![
            EnvVar::new("g", "global"),
            EnvVar::new("b", "2"),
            EnvVar::new("a", "3")
        ]
    );
    for s in &splits {
        assert_eq!(s.workflow.tasks, vec![wf.tasks[s.index - 1].clone()]);
        assert_eq!(parse(&s.workflow.to_yaml()).unwrap(), s.workflow);
    }
}

#[test]
fn split_keeps_overridden_entries_that_are_referred_to() {
    let text = "version: 0.1\ntask:\n  - node: n\n    sequential:\n      - environment: [a: \"1\", b: \"{{env:a}}\", a: \"2\"]\n  - node: n\n    sequential: []\n";
    let splits = split(&parse(text).unwrap());
    assert_eq!(
        splits[1].workflow.environment,
        vec![
            EnvVar::new("a", "1"),
            EnvVar::new("b", "{{env:a}}"),
            EnvVar::new("a", "2")
        ]
    );
}

/// `plan`, `split_at` and `splits` agree with `split`, one split at a time.
fn assert_one_at_a_time_agrees(wf: &Workflow) {
    let all = split(wf);
    assert_eq!(all.len(), split_count(wf));
    let planned: Vec<PlannedSplit> = plan(wf);
    assert_eq!(
        planned,
        all.iter()
            .map(|s| PlannedSplit {
                index: s.index,
                node: s.node.clone()
            })
            .collect::<Vec<_>>()
    );
    for s in &all {
        assert_eq!(split_at(wf, s.index).as_ref(), Some(s));
    }
    assert_eq!(splits(wf).collect::<Vec<_>>(), all);
    assert_eq!(split_at(wf, 0), None);
    assert_eq!(split_at(wf, all.len() + 1), None);
}

#[test]
fn plan_and_split_at_agree_with_split() {
    let with_nodes = "version: 0.1\nenvironment: [g: x]\ntask:\n  - node: n1\n    sequential: [environment: [a: \"1\", b: \"{{env:a}}\", a: \"2\"]]\n  - node: n2\n    sequential: [print: [\"{{env:b}}\"], environment: [c: \"3\"]]\n  - node: n1\n    sequential: [environment: [a: \"4\"]]\n  - node: n2\n    sequential: []\n";
    assert_one_at_a_time_agrees(&parse(with_nodes).unwrap());
    assert_one_at_a_time_agrees(&parse(HELLO).unwrap());
    let without =
        parse("version: 0.1\ntask:\n  - sequential: [print: [a]]\n  - sequential: []\n").unwrap();
    assert_one_at_a_time_agrees(&without);
    assert_eq!(
        plan(&without),
        [PlannedSplit {
            index: 1,
            node: None
        }]
    );
}

#[test]
fn split_without_nodes_is_the_workflow_itself() {
    let wf =
        parse("version: 0.1\ntask:\n  - sequential: [print: [a]]\n  - sequential: [print: [b]]\n")
            .unwrap();
    let splits = split(&wf);
    assert_eq!(splits.len(), 1);
    assert_eq!(splits[0].index, 1);
    assert_eq!(splits[0].node, None);
    assert_eq!(splits[0].workflow, wf);
}

#[test]
fn split_environments_grow_linearly() {
    // 2000 tasks each setting the same two names: every split carries at most two entries.
    let mut text = String::from("version: 0.1\ntask:\n");
    for i in 0..2000 {
        text.push_str(&format!(
            "  - node: n\n    sequential: [environment: [a: \"{i}\", b: \"{i}\"]]\n"
        ));
    }
    let splits = split(&parse(&text).unwrap());
    assert_eq!(splits.len(), 2000);
    assert!(splits.iter().all(|s| s.workflow.environment.len() <= 2));
    assert_eq!(
        splits[1999].workflow.environment,
        vec![EnvVar::new("a", "1998"), EnvVar::new("b", "1998")]
    );
}

#[test]
fn yaml_details() {
    assert_eq!(
        errors("version: 0.1\nversion: 0.1\ntask: []\n"),
        "2:1: not valid YAML: duplicate key `version` (first at 1:1)"
    );
    // Anchors and aliases work; a second document does not belong in a workflow file.
    let wf = parse("version: 0.1\ntask:\n  - sequential: &s [print: [hi]]\n  - sequential: *s\n")
        .unwrap();
    assert_eq!(wf.tasks[1].steps, vec![Step::Print(vec!["hi".into()])]);
    assert!(
        errors("version: 0.1\ntask: [sequential: []]\n---\nversion: 0.1\n")
            .starts_with("3:1: a second YAML document")
    );
    let deep = format!(
        "version: 0.1\ntask: {}{}\n",
        "[".repeat(100),
        "]".repeat(100)
    );
    assert!(errors(&deep).contains("nested deeper than 64 levels"));
    // A billion-laughs style alias bomb is stopped by the alias budget.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..9 {
        bomb.push_str(&format!(
            "a{i}: &a{i} [{}]\n",
            vec![format!("*a{}", i - 1); 10].join(", ")
        ));
    }
    assert!(
        errors(&bomb).contains("YAML anchors and aliases expand to more than 65536 bytes"),
        "{}",
        errors(&bomb)
    );
}
