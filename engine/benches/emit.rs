//! The engine's YAML emitter (`Workflow::to_yaml`) against serde-saphyr's serializer set up
//! to write the same layout (block lists indented, strings double-quoted): time, and whether
//! the bytes are the same. Run by `cargo xtask bench engine`; prints Markdown table rows.

use std::time::{Duration, Instant};

use roiergasias_engine::{EnvVar, Step, Task, Workflow, parse, splits};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use serde_saphyr::{DoubleQuoted, SerializerOptions};

const ROUNDS: usize = 5;

fn main() {
    speed(
        "all 900 splits of 900 tasks each setting its own 520-byte variable",
        &splits_of(&distinct_variables()),
    );
    speed(
        "one 10 000-task workflow",
        &[parse(&generated(10_000)).expect("valid")],
    );
    compatibility();
}

fn speed(what: &str, workflows: &[Workflow]) {
    let (ours, bytes) = best(workflows, Workflow::to_yaml);
    let (theirs, _) = best(workflows, saphyr);
    let same = workflows.iter().all(|w| w.to_yaml() == saphyr(w));
    println!(
        "| YAML emitter, {what} ({:.1} MB): `to_yaml` / serde-saphyr, best of {ROUNDS} | {} / {} ({:.1}×); bytes {} |",
        bytes as f64 / 1e6,
        ms(ours),
        ms(theirs),
        theirs.as_secs_f64() / ours.as_secs_f64(),
        if same { "identical" } else { "differ" }
    );
}

/// Values and names that YAML could read as something else, and control characters.
fn compatibility() {
    let values = [
        "",
        "007",
        "true",
        "null",
        "~",
        "- dash",
        "a: b",
        "#x",
        "multi\nline",
        "tab\t\"q\" 's'",
        "\\",
        "\u{7f}",
        "\u{85}",
        "\u{a0}",
        "\u{feff}",
        "\u{2028}",
        "émoji 🚀",
        " lead",
        "trail ",
    ];
    let names = [
        "n", "A_B-c", "node-1.a", "2", "0x1", "1e3", "true", "yes", "on", "null", "-x", ".x",
    ];
    let mut differ = 0;
    for value in values {
        for name in names {
            let w = workflow(name, vec![Step::Print(vec![value.to_owned()])]);
            differ += usize::from(w.to_yaml() != saphyr(&w));
        }
    }
    let points: Vec<char> = (0u32..0x3000).filter_map(char::from_u32).collect();
    let differing: Vec<char> = points
        .iter()
        .copied()
        .filter(|c| {
            let w = workflow("node1", vec![Step::Print(vec![format!("a{c}b")])]);
            w.to_yaml() != saphyr(&w)
        })
        .collect();
    println!(
        "| YAML emitter, bytes of `to_yaml` and serde-saphyr on {} name × value pairs / on U+0000…U+2FFF one at a time | {differ} differ / {} differ (e.g. {:?}) |",
        values.len() * names.len(),
        differing.len(),
        differing.iter().take(3).collect::<String>()
    );
}

fn workflow(name: &str, steps: Vec<Step>) -> Workflow {
    Workflow {
        version: "0.1".into(),
        environment: vec![EnvVar::new(name, "v")],
        tasks: vec![Task {
            node: Some(name.into()),
            steps,
        }],
    }
}

/// The fastest of [`ROUNDS`] runs over all `workflows`, and the bytes written.
fn best(workflows: &[Workflow], emit: fn(&Workflow) -> String) -> (Duration, usize) {
    let mut fastest = Duration::MAX;
    let mut bytes = 0;
    for _ in 0..ROUNDS {
        let start = Instant::now();
        bytes = workflows.iter().map(|w| emit(w).len()).sum();
        fastest = fastest.min(start.elapsed());
    }
    (fastest, bytes)
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn splits_of(text: &str) -> Vec<Workflow> {
    splits(&parse(text).expect("valid"))
        .map(|s| s.workflow)
        .collect()
}

/// As `cargo xtask bench engine`'s hostile case: split `n` carries n - 1 variables.
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

fn generated(tasks: usize) -> String {
    let mut yaml = String::from("version: 0.1\nenvironment:\n  - run: bench\ntask:\n");
    for i in 0..tasks {
        yaml.push_str(&format!(
            "  - {{node: n{}, sequential: [print: [\"t{i} {{{{env:run}}}}\"], execute: [\"echo {i}\"], environment: [s{i}: \"{i}\"]]}}\n",
            i % 2
        ));
    }
    yaml
}

/// serde-saphyr with the layout `to_yaml` writes.
fn saphyr(workflow: &Workflow) -> String {
    let mut options = SerializerOptions::default();
    options.compact_list_indent = false;
    options.indent_step = 2;
    serde_saphyr::to_string_with_options(&Doc(workflow), options).expect("serializable")
}

/// The workflow's YAML shape (steps and variables are one-entry maps) needs hand-written
/// `Serialize` impls: no derive gives it.
struct Doc<'a>(&'a Workflow);
struct Vars<'a>(&'a [EnvVar]);
struct Var<'a>(&'a EnvVar);
struct TaskDoc<'a>(&'a Task);
struct StepDoc<'a>(&'a Step);
struct Items<'a>(&'a [String]);

fn seq<'a, S: Serializer, T, U: Serialize>(
    s: S,
    items: &'a [T],
    f: impl Fn(&'a T) -> U,
) -> Result<S::Ok, S::Error> {
    let mut out = s.serialize_seq(Some(items.len()))?;
    for item in items {
        out.serialize_element(&f(item))?;
    }
    out.end()
}

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        // `version: 0.1` plain; a string would be quoted.
        map.serialize_entry("version", &0.1f64)?;
        if !self.0.environment.is_empty() {
            map.serialize_entry("environment", &Vars(&self.0.environment))?;
        }
        map.serialize_entry("task", &Tasks(&self.0.tasks))?;
        map.end()
    }
}

struct Tasks<'a>(&'a [Task]);
struct Steps<'a>(&'a [Step]);

impl Serialize for Steps<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0, StepDoc)
    }
}

impl Serialize for Tasks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0, TaskDoc)
    }
}

impl Serialize for Vars<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0, Var)
    }
}

impl Serialize for Var<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry(&self.0.name, &DoubleQuoted(self.0.value.as_str()))?;
        map.end()
    }
}

impl Serialize for TaskDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(None)?;
        if let Some(node) = &self.0.node {
            map.serialize_entry("node", node)?;
        }
        map.serialize_entry("sequential", &Steps(&self.0.steps))?;
        map.end()
    }
}

impl Serialize for StepDoc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        match self.0 {
            Step::Print(items) | Step::Execute(items) | Step::Shell(items) => {
                map.serialize_entry(self.0.kind(), &Items(items))?
            }
            Step::Environment(vars) => map.serialize_entry(self.0.kind(), &Vars(vars))?,
        }
        map.end()
    }
}

impl Serialize for Items<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        seq(s, self.0, |item| DoubleQuoted(item.as_str()))
    }
}
