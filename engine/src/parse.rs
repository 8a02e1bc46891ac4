//! YAML text → [`Workflow`], checking the 0.1 structure and collecting every problem.
//!
//! The YAML is first read into a small tree that keeps each node's position, then
//! walked by hand. Deserializing straight into typed structs would stop at the first
//! error; walking the tree lets validation report all of them with line:column.

use crate::error::{Pos, Problem, Problems, WorkflowError};
use crate::model::{EnvVar, Step, Task, VERSION, Workflow};
use crate::substitute::is_valid_name;
use crate::suggest::did_you_mean;
use crate::yaml::{self, Node, Spanned};

/// Largest workflow accepted, in bytes. Generous for hand-written workflows (and a
/// 100 000-task generated one, about 5 MB), small enough to reject runaway input early.
pub const MAX_WORKFLOW_BYTES: usize = 8 * 1024 * 1024;

const EMPTY: &str = "the workflow is empty; it needs at least `version: 0.1` and a `task` list";
const TOP_KEYS: &[&str] = &["version", "environment", "task"];
const TASK_KEYS: &[&str] = &["sequential", "node"];
const STEP_TYPES: &[&str] = &["print", "execute", "shell", "environment"];

fn pos(node: &Spanned<Node<'_>>) -> Pos {
    node.pos
}

fn describe(node: &Node) -> &'static str {
    match node {
        Node::Null => "nothing (null)",
        Node::Str(_) => "a single value",
        Node::Seq(_) => "a list",
        Node::Map(_) => "a mapping",
    }
}

/// Where each part of a parsed workflow came from, for errors found after parsing.
#[derive(Debug, Default)]
pub(crate) struct Positions {
    /// Per global environment entry.
    pub environment: Vec<Pos>,
    /// Names of global entries rejected with a problem: their later uses are not reported
    /// again as undefined.
    pub rejected_environment: Vec<String>,
    pub tasks: Vec<TaskPositions>,
}

#[derive(Debug, Default)]
pub(crate) struct TaskPositions {
    pub at: Pos,
    pub steps: Vec<StepPositions>,
}

#[derive(Debug, Default)]
pub(crate) struct StepPositions {
    pub at: Pos,
    /// Per item (print/execute/shell) or per entry (environment).
    pub items: Vec<Pos>,
}

/// Reads `text` into a workflow; on problems, returns them all with the partial
/// workflow so later checks can still run on what was understood.
/// The workflow text in `bytes`: checks the size limit and UTF-8 before parsing.
pub fn workflow_text(bytes: &[u8]) -> Result<&str, WorkflowError> {
    if bytes.len() > MAX_WORKFLOW_BYTES {
        return Err(WorkflowError::single(too_large(bytes.len())));
    }
    std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        let line = bytes[..offset].iter().filter(|b| **b == b'\n').count() as u64 + 1;
        WorkflowError::single(Problem::at(
            Pos::new(line, 0),
            format!("not UTF-8 text (invalid byte 0x{:02x} at offset {offset}); a workflow is YAML text", bytes[offset]),
        ))
    })
}

fn too_large(len: usize) -> Problem {
    Problem::nowhere(format!(
        "the workflow is {len} bytes, more than the {} MiB limit",
        MAX_WORKFLOW_BYTES / (1024 * 1024)
    ))
}

/// An `environment` list as read: its entries, where each is, and the names of the entries
/// rejected with a problem.
#[derive(Default)]
struct EnvList {
    vars: Vec<EnvVar>,
    at: Vec<Pos>,
    rejected: Vec<String>,
}

/// A workflow with where its parts came from.
pub(crate) struct Parsed {
    pub workflow: Workflow,
    pub positions: Positions,
}

/// Problems, with what could still be understood (for further checks).
pub(crate) struct Unparsed {
    pub problems: Problems,
    pub partial: Option<Parsed>,
}

fn fail(problem: Problem) -> Box<Unparsed> {
    let mut problems = Problems::default();
    problems.push(problem);
    Box::new(Unparsed {
        problems,
        partial: None,
    })
}

pub(crate) fn parse_structure(text: &str) -> Result<Parsed, Box<Unparsed>> {
    if text.len() > MAX_WORKFLOW_BYTES {
        return Err(fail(too_large(text.len())));
    }
    if let Some((offset, byte)) = text
        .bytes()
        .enumerate()
        .find(|(_, b)| *b == 0 || (*b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')))
    {
        let line = text[..offset].matches('\n').count() as u64 + 1;
        return Err(fail(Problem::at(
            Pos::new(line, 0),
            format!("binary data (byte 0x{byte:02x} at offset {offset}); a workflow is YAML text"),
        )));
    }
    if text.trim().is_empty() {
        return Err(fail(Problem::nowhere(EMPTY)));
    }
    let root = yaml::read(text).map_err(fail)?;
    let mut walker = Walker {
        problems: Problems::default(),
    };
    let (workflow, positions) = walker.workflow(&root);
    let parsed = Parsed {
        workflow,
        positions,
    };
    if walker.problems.is_empty() {
        Ok(parsed)
    } else {
        Err(Box::new(Unparsed {
            problems: walker.problems,
            partial: Some(parsed),
        }))
    }
}

struct Walker {
    problems: Problems,
}

impl Walker {
    fn problem(&mut self, at: Pos, message: impl Into<String>) {
        if self.problems.is_full() {
            self.problems.omit();
        } else {
            self.problems.push(Problem::at(at, message));
        }
    }

    fn scalar(&self, node: &Spanned<Node<'_>>) -> Option<String> {
        match &node.value {
            Node::Str(s) => Some(s.to_string()),
            _ => None,
        }
    }

    fn key(&mut self, key: &Spanned<Node<'_>>, context: &str) -> Option<String> {
        let k = self.scalar(key);
        if k.is_none() {
            self.problem(
                pos(key),
                format!(
                    "{context}: a key must be a single word, found {}",
                    describe(&key.value)
                ),
            );
        }
        k
    }

    fn workflow(&mut self, root: &Spanned<Node<'_>>) -> (Workflow, Positions) {
        let mut workflow = Workflow {
            version: VERSION.to_owned(),
            environment: Vec::new(),
            tasks: Vec::new(),
        };
        let mut positions = Positions::default();
        if let Node::Null = root.value {
            // Only comments or `---`: as empty as an empty file.
            self.problem(Pos::UNKNOWN, EMPTY);
            return (workflow, positions);
        }
        let Node::Map(entries) = &root.value else {
            self.problem(
                pos(root),
                format!(
                    "the workflow must be a mapping with `version`, `environment` and `task`, found {}",
                    describe(&root.value)
                ),
            );
            return (workflow, positions);
        };
        let (mut version, mut task) = (false, false);
        let mut misspelled_task = None;
        for (key, value) in entries {
            let Some(name) = self.key(key, "workflow") else {
                continue;
            };
            match name.as_str() {
                "version" => {
                    version = true;
                    self.version(value);
                }
                "environment" => {
                    let list = self.env_list(value, "the global `environment`");
                    workflow.environment = list.vars;
                    positions.environment = list.at;
                    positions.rejected_environment = list.rejected;
                }
                "task" => {
                    task = true;
                    self.tasks(value, &mut workflow, &mut positions);
                }
                other => {
                    let hint = did_you_mean(other, TOP_KEYS);
                    if hint.contains("`task`") {
                        misspelled_task.get_or_insert(value);
                    }
                    self.problem(
                        pos(key),
                        format!("unknown key `{other}`{hint}; a workflow has `version`, `environment` and `task`"),
                    );
                }
            }
        }
        if !version {
            self.problem(pos(root), "missing `version: 0.1`");
        }
        match (task, misspelled_task) {
            (true, _) => {}
            // `tasks:` and the like: check what is under it too, so one run shows every problem.
            (false, Some(value)) => self.tasks(value, &mut workflow, &mut positions),
            (false, None) => self.problem(pos(root), "missing `task`, the list of tasks to run"),
        }
        self.check_nodes(&workflow, &positions);
        (workflow, positions)
    }

    fn version(&mut self, value: &Spanned<Node<'_>>) {
        match self.scalar(value) {
            // YAML reads `0.10` and `.1` as the number 0.1, and so did the original.
            Some(v) if v.trim() == VERSION || v.trim().parse::<f64>() == Ok(0.1) => {}
            Some(v) => self.problem(
                pos(value),
                format!("unsupported version `{v}`; this roiergasias reads version 0.1"),
            ),
            None => self.problem(
                pos(value),
                format!("`version` must be 0.1, found {}", describe(&value.value)),
            ),
        }
    }

    fn tasks(
        &mut self,
        value: &Spanned<Node<'_>>,
        workflow: &mut Workflow,
        positions: &mut Positions,
    ) {
        let Node::Seq(items) = &value.value else {
            self.problem(
                pos(value),
                format!(
                    "`task` must be a list of tasks (`- sequential: [...]`), found {}",
                    describe(&value.value)
                ),
            );
            return;
        };
        if items.is_empty() {
            self.problem(
                pos(value),
                "`task` is empty; a workflow needs at least one task",
            );
        }
        workflow.tasks.reserve(items.len());
        positions.tasks.reserve(items.len());
        for (i, item) in items.iter().enumerate() {
            let (task, at) = self.task(i + 1, item);
            workflow.tasks.push(task);
            positions.tasks.push(at);
        }
    }

    fn task(&mut self, number: usize, node: &Spanned<Node<'_>>) -> (Task, TaskPositions) {
        let mut task = Task {
            node: None,
            steps: Vec::new(),
        };
        let mut at = TaskPositions {
            at: pos(node),
            steps: Vec::new(),
        };
        let Node::Map(entries) = &node.value else {
            self.problem(
                pos(node),
                format!(
                    "task {number} must be a mapping like `sequential: [...]`, found {}",
                    describe(&node.value)
                ),
            );
            return (task, at);
        };
        let mut kinds = 0;
        for (key, value) in entries {
            let Some(name) = self.key(key, &format!("task {number}")) else {
                continue;
            };
            match name.as_str() {
                "node" => task.node = self.node_label(number, value),
                "sequential" => {
                    kinds += 1;
                    self.steps(number, value, &mut task, &mut at);
                }
                other => {
                    kinds += 1;
                    let hint = did_you_mean(other, TASK_KEYS);
                    self.problem(
                        pos(key),
                        format!(
                            "task {number}: unknown task type `{other}`{hint}; the only task type in 0.1 is `sequential` (plus an optional `node`)"
                        ),
                    );
                }
            }
        }
        // Two task types can only be `sequential` plus an unknown key, reported above.
        if kinds == 0 {
            self.problem(
                pos(node),
                format!("task {number} has no `sequential` list of steps"),
            );
        }
        (task, at)
    }

    fn node_label(&mut self, number: usize, value: &Spanned<Node<'_>>) -> Option<String> {
        let Some(label) = self.scalar(value) else {
            self.problem(
                pos(value),
                format!(
                    "task {number}: `node` must be a label such as `node1`, found {}",
                    describe(&value.value)
                ),
            );
            return None;
        };
        if !is_label_value(&label) {
            self.problem(
                pos(value),
                format!(
                    "task {number}: node `{label}` is not a valid Kubernetes label value (at most 63 letters, digits, `-`, `_` or `.`, starting and ending with a letter or digit)"
                ),
            );
        }
        Some(label)
    }

    fn steps(
        &mut self,
        number: usize,
        value: &Spanned<Node<'_>>,
        task: &mut Task,
        at: &mut TaskPositions,
    ) {
        let Node::Seq(items) = &value.value else {
            self.problem(
                pos(value),
                format!(
                    "task {number}: `sequential` must be a list of steps, found {}",
                    describe(&value.value)
                ),
            );
            return;
        };
        for (j, item) in items.iter().enumerate() {
            let (step, step_at) = self.step(number, j + 1, item);
            task.steps.push(step);
            at.steps.push(step_at);
        }
    }

    fn step(
        &mut self,
        task: usize,
        number: usize,
        node: &Spanned<Node<'_>>,
    ) -> (Step, StepPositions) {
        let mut at = StepPositions {
            at: pos(node),
            items: Vec::new(),
        };
        // A placeholder keeps step numbers aligned when a step is broken.
        let broken = Step::Print(Vec::new());
        let where_ = format!("task {task}, step {number}");
        let Node::Map(entries) = &node.value else {
            self.problem(
                pos(node),
                format!(
                    "{where_}: a step must be a mapping with one step type, like `- print: [\"...\"]`, found {}",
                    describe(&node.value)
                ),
            );
            return (broken, at);
        };
        if entries.len() != 1 {
            let names: Vec<String> = entries
                .iter()
                .filter_map(|(k, _)| self.scalar(k))
                .map(|k| format!("`{k}`"))
                .collect();
            let message = if entries.is_empty() {
                format!(
                    "{where_}: empty step; use one of `print`, `execute`, `shell`, `environment`"
                )
            } else {
                format!(
                    "{where_}: a step has exactly one step type, found {}; write each as its own `- ` item",
                    names.join(", ")
                )
            };
            self.problem(pos(node), message);
            return (broken, at);
        }
        let (key, value) = &entries[0];
        let Some(kind) = self.key(key, &where_) else {
            return (broken, at);
        };
        at.at = pos(key);
        let step = match kind.as_str() {
            "print" => self
                .strings(&where_, &kind, value, &mut at)
                .map(Step::Print),
            "execute" => self.strings(&where_, &kind, value, &mut at).map(|items| {
                self.check_commands(&where_, &items, &at.items);
                Step::Execute(items)
            }),
            "shell" => self
                .strings(&where_, &kind, value, &mut at)
                .map(Step::Shell),
            "environment" => {
                let list = self.env_list(value, &format!("{where_} (environment)"));
                at.items = list.at;
                Some(Step::Environment(list.vars))
            }
            other => {
                let hint = did_you_mean(other, STEP_TYPES);
                self.problem(
                    pos(key),
                    format!(
                        "{where_}: unknown step type `{other}`{hint}; known types are `print`, `execute`, `shell`, `environment`"
                    ),
                );
                None
            }
        };
        (step.unwrap_or(broken), at)
    }

    fn strings(
        &mut self,
        where_: &str,
        kind: &str,
        value: &Spanned<Node<'_>>,
        at: &mut StepPositions,
    ) -> Option<Vec<String>> {
        let Node::Seq(items) = &value.value else {
            self.problem(
                pos(value),
                format!(
                    "{where_}: `{kind}` takes a list of strings, found {}; write `{kind}: [\"...\"]`",
                    describe(&value.value)
                ),
            );
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for (k, item) in items.iter().enumerate() {
            match self.scalar(item) {
                Some(s) => out.push(s),
                None => {
                    ok = false;
                    self.problem(
                        pos(item),
                        format!(
                            "{where_} ({kind}): item {} must be a string, found {}",
                            k + 1,
                            describe(&item.value)
                        ),
                    );
                }
            }
            at.items.push(pos(item));
        }
        ok.then_some(out)
    }

    /// Words are fixed by the text as written (templates are filled in afterwards),
    /// so quoting mistakes are found before anything runs.
    fn check_commands(&mut self, where_: &str, items: &[String], at: &[Pos]) {
        for (k, item) in items.iter().enumerate() {
            let here = at.get(k).copied().unwrap_or_default();
            match shell_words::split(item) {
                Ok(words) if words.is_empty() => self.problem(
                    here,
                    format!("{where_} (execute): command {} is empty", k + 1),
                ),
                Ok(_) => {}
                Err(_) => self.problem(
                    here,
                    format!("{where_} (execute): unbalanced quotes in `{item}`"),
                ),
            }
        }
    }

    fn env_list(&mut self, value: &Spanned<Node<'_>>, what: &str) -> EnvList {
        let mut list = EnvList::default();
        let items = match &value.value {
            Node::Seq(items) => items,
            Node::Null => return list,
            other => {
                self.problem(
                    pos(value),
                    format!(
                        "{what} must be a list of `- NAME: value` entries, found {}",
                        describe(other)
                    ),
                );
                return list;
            }
        };
        for (k, item) in items.iter().enumerate() {
            let entries = match &item.value {
                Node::Map(entries) if entries.len() == 1 => entries,
                other => {
                    self.not_a_pair(what, k + 1, item.pos, other, &mut list);
                    continue;
                }
            };
            let (key, val) = &entries[0];
            let Some(name) = self.key(key, what) else {
                continue;
            };
            if !is_valid_name(&name) {
                self.problem(
                    pos(key),
                    format!("{what}: variable name `{name}` may contain only letters, digits, `-` and `_`"),
                );
            }
            // As in the original, `NAME:` and `NAME: ~` set the empty string.
            let value = match &val.value {
                Node::Null => String::new(),
                Node::Str(s) => s.to_string(),
                other => {
                    self.problem(
                        pos(val),
                        format!(
                            "{what}: `{name}` needs a single value, found {}",
                            describe(other)
                        ),
                    );
                    list.rejected.push(name);
                    continue;
                }
            };
            list.vars.push(EnvVar { name, value });
            list.at.push(pos(key));
        }
        list
    }

    fn not_a_pair(&mut self, what: &str, number: usize, at: Pos, node: &Node, list: &mut EnvList) {
        let found = match node {
            Node::Map(entries) => {
                list.rejected
                    .extend(entries.iter().filter_map(|(k, _)| self.scalar(k)));
                format!("a mapping with {} keys", entries.len())
            }
            other => describe(other).to_owned(),
        };
        self.problem(
            at,
            format!("{what}: entry {number} must be a single `NAME: value` pair, found {found}"),
        );
    }

    fn check_nodes(&mut self, workflow: &Workflow, positions: &Positions) {
        let with: Vec<usize> = (0..workflow.tasks.len())
            .filter(|&i| workflow.tasks[i].node.is_some())
            .collect();
        if with.is_empty() || with.len() == workflow.tasks.len() {
            return;
        }
        let without: Vec<usize> = (0..workflow.tasks.len())
            .filter(|&i| workflow.tasks[i].node.is_none())
            .collect();
        self.problem(
            positions.tasks[without[0]].at,
            format!(
                "`node` is set on task{} {} but not on task{} {}; set it on every task or on none",
                plural(with.len()),
                list_numbers(&with),
                plural(without.len()),
                list_numbers(&without)
            ),
        );
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// "1, 2, 5" — capped so a 100 000-task workflow gives a readable message.
fn list_numbers(indices: &[usize]) -> String {
    let mut parts: Vec<String> = indices
        .iter()
        .take(10)
        .map(|i| (i + 1).to_string())
        .collect();
    if indices.len() > 10 {
        parts.push(format!("… ({} in all)", indices.len()));
    }
    parts.join(", ")
}

/// Kubernetes label value rules: the operator selects nodes by `node.roiergasias=<node>`.
fn is_label_value(v: &str) -> bool {
    let alnum = |c: char| c.is_ascii_alphanumeric();
    !v.is_empty()
        && v.len() <= 63
        && v.starts_with(alnum)
        && v.ends_with(alnum)
        && v.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}
