//! Property: running each `split` document in order prints exactly what running the
//! whole workflow prints (workflows of print and environment steps on two nodes).

mod common;

use common::roiergasias_stdin;
use proptest::prelude::*;
use roiergasias_engine::{EnvVar, Step, Task, Workflow};

const NAMES: &[&str] = &["a", "b", "c-d", "e_f"];

/// Text mixing literal characters (quotes, `#`, `:`, newlines, non-ASCII) and references.
fn text() -> impl Strategy<Value = String> {
    let segment = prop_oneof![
        "[a-z0-9 \"':#\n\\\\é-]{0,6}",
        prop::sample::select(NAMES).prop_map(|n| format!("{{{{env:{n}}}}}")),
    ];
    prop::collection::vec(segment, 0..4).prop_map(|s| s.concat())
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        prop::collection::vec(text(), 1..3).prop_map(Step::Print),
        prop::collection::vec((prop::sample::select(NAMES), text()), 1..3).prop_map(|vars| {
            Step::Environment(vars.into_iter().map(|(n, v)| EnvVar::new(n, v)).collect())
        }),
    ]
}

fn workflow() -> impl Strategy<Value = Workflow> {
    let task = (
        prop::sample::select(&["node1", "node2"][..]),
        prop::collection::vec(step(), 0..4),
    )
        .prop_map(|(node, steps)| Task {
            node: Some(node.to_owned()),
            steps,
        });
    (
        prop::collection::vec("[a-z é]{0,5}", NAMES.len()),
        prop::collection::vec(task, 1..6),
    )
        .prop_map(|(values, tasks)| Workflow {
            version: "0.1".into(),
            // Every name starts defined, so every reference resolves.
            environment: NAMES
                .iter()
                .zip(values)
                .map(|(n, v)| EnvVar::new(*n, v))
                .collect(),
            tasks,
        })
}

/// The documents of the YAML stream `split` prints.
fn documents(stream: &str) -> Vec<String> {
    let mut docs: Vec<String> = Vec::new();
    for line in stream.lines() {
        if line.starts_with("---") {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 40, ..ProptestConfig::default() })]

    #[test]
    fn split_documents_in_order_print_the_same_as_the_whole(wf in workflow()) {
        let yaml = wf.to_yaml();
        let whole = roiergasias_stdin(&["run", "-f", "-"], yaml.as_bytes());
        prop_assert_eq!(whole.code, 0, "{}", whole.stderr);

        let split = roiergasias_stdin(&["split", "-f", "-"], yaml.as_bytes());
        prop_assert_eq!(split.code, 0, "{}", split.stderr);
        let docs = documents(&split.stdout);
        prop_assert_eq!(docs.len(), wf.tasks.len());

        let mut pieces = String::new();
        for doc in &docs {
            let out = roiergasias_stdin(&["run", "-f", "-"], doc.as_bytes());
            prop_assert_eq!(out.code, 0, "{}\n{}", doc, out.stderr);
            pieces.push_str(&out.stdout);
        }
        prop_assert_eq!(pieces, whole.stdout, "workflow:\n{}", yaml);
    }
}
