//! The workflow as the engine runs it: plain data, no source positions.

/// The only workflow syntax version this engine reads.
pub const VERSION: &str = "0.1";

/// A parsed and validated workflow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workflow {
    /// Always [`VERSION`] once parsed.
    pub version: String,
    /// Global environment, applied in order before the first task.
    pub environment: Vec<EnvVar>,
    pub tasks: Vec<Task>,
}

/// One `NAME: value` entry; names hold letters, digits, `-` and `_`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    pub name: String,
    pub value: String,
}

impl EnvVar {
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            value: value.into(),
        }
    }
}

/// A `sequential` task; `node` selects where the operator runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub node: Option<String>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Each message on its own line.
    Print(Vec<String>),
    /// Each item split into words by POSIX quoting and run without a shell.
    Execute(Vec<String>),
    /// Each item run by `sh -c`; trusts its text.
    Shell(Vec<String>),
    /// Variables for every later step and task.
    Environment(Vec<EnvVar>),
}

impl Step {
    /// The step type as written in YAML.
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Print(_) => "print",
            Step::Execute(_) => "execute",
            Step::Shell(_) => "shell",
            Step::Environment(_) => "environment",
        }
    }
}

impl Workflow {
    /// A copy whose global environment ends with `vars`; being later, they win.
    pub fn with_environment_appended(&self, vars: &[EnvVar]) -> Workflow {
        let mut copy = self.clone();
        copy.environment.extend_from_slice(vars);
        copy
    }

    /// Total number of steps over all tasks.
    pub fn step_count(&self) -> usize {
        self.tasks.iter().map(|t| t.steps.len()).sum()
    }

    /// Whether tasks carry `node` (validation makes it all or none).
    pub fn has_nodes(&self) -> bool {
        self.tasks.iter().any(|t| t.node.is_some())
    }

    /// Version 0.1 YAML that [`crate::parse`] reads back to an equal workflow.
    ///
    /// Every string is double-quoted with JSON escapes (a subset of YAML's
    /// double-quoted style), so no value can change type or structure.
    pub fn to_yaml(&self) -> String {
        let mut out = String::with_capacity(64 + self.step_count() * 48);
        out.push_str("version: 0.1\n");
        if !self.environment.is_empty() {
            out.push_str("environment:\n");
            write_env(&mut out, "  ", &self.environment);
        }
        out.push_str("task:\n");
        for task in &self.tasks {
            let mut first = "  - ";
            if let Some(node) = &task.node {
                out.push_str(first);
                out.push_str("node: ");
                push_key(&mut out, node);
                out.push('\n');
                first = "    ";
            }
            out.push_str(first);
            if task.steps.is_empty() {
                out.push_str("sequential: []\n");
                continue;
            }
            out.push_str("sequential:\n");
            for step in &task.steps {
                out.push_str("      - ");
                out.push_str(step.kind());
                match step {
                    Step::Print(items) | Step::Execute(items) | Step::Shell(items) => {
                        if items.is_empty() {
                            out.push_str(": []\n");
                        } else {
                            out.push_str(":\n");
                            for item in items {
                                out.push_str("          - ");
                                push_quoted(&mut out, item);
                                out.push('\n');
                            }
                        }
                    }
                    Step::Environment(vars) => {
                        if vars.is_empty() {
                            out.push_str(": []\n");
                        } else {
                            out.push_str(":\n");
                            write_env(&mut out, "          ", vars);
                        }
                    }
                }
            }
        }
        out
    }
}

fn write_env(out: &mut String, indent: &str, vars: &[EnvVar]) {
    for var in vars {
        out.push_str(indent);
        out.push_str("- ");
        push_key(out, &var.name);
        out.push_str(": ");
        push_quoted(out, &var.value);
        out.push('\n');
    }
}

/// Names and node labels plain when YAML reads them back as the same text
/// (numbers and booleans keep their spelling in `parse`; null spellings would not).
fn push_key(out: &mut String, text: &str) {
    let plain = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
        && !matches!(text, "null" | "Null" | "NULL");
    if plain {
        out.push_str(text);
    } else {
        push_quoted(out, text);
    }
}

/// YAML double-quoted scalar; escapes everything YAML does not allow as printable text.
fn push_quoted(out: &mut String, text: &str) {
    use std::fmt::Write;
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{20}'..='\u{7e}' | '\u{85}' => out.push(c),
            '\u{a0}'..='\u{fffd}' if c != '\u{feff}' => out.push(c),
            '\u{10000}'.. => out.push(c),
            _ => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
    }
    out.push('"');
}
