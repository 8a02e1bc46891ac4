//! Errors for workflows that cannot be read or are invalid.

use std::fmt;

/// One thing wrong with a workflow, at a line and column when the parser knows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column (characters), when known.
    pub column: Option<u64>,
    pub message: String,
}

impl Problem {
    pub fn at(pos: Pos, message: impl Into<String>) -> Self {
        Self {
            line: pos.line(),
            column: pos.column(),
            message: message.into(),
        }
    }

    pub fn nowhere(message: impl Into<String>) -> Self {
        Self::at(Pos::UNKNOWN, message)
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(line), Some(column)) => write!(f, "{line}:{column}: {}", self.message),
            (Some(line), None) => write!(f, "{line}: {}", self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// A source position, 1-based; compact because the parser keeps one per YAML node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 0 when unknown.
    line: u32,
    /// 0 when unknown.
    column: u32,
}

impl Pos {
    pub const UNKNOWN: Pos = Pos { line: 0, column: 0 };

    /// 0 (serde-saphyr's and our "unknown") gives `None` from the accessors.
    pub fn new(line: u64, column: u64) -> Self {
        let clamp = |v: u64| u32::try_from(v).unwrap_or(u32::MAX);
        Pos {
            line: clamp(line),
            column: clamp(column),
        }
    }

    pub fn line(&self) -> Option<u64> {
        (self.line > 0).then_some(u64::from(self.line))
    }

    pub fn column(&self) -> Option<u64> {
        (self.column > 0).then_some(u64::from(self.column))
    }
}

/// Problems kept for a report: the first [`MAX_PROBLEMS`], and how many more there were.
/// A hostile workflow can hold hundreds of thousands; their messages would be larger than the
/// workflow (and than a Kubernetes status can hold).
#[derive(Debug, Default)]
pub(crate) struct Problems {
    kept: Vec<Problem>,
    omitted: usize,
}

/// Problems kept in a [`WorkflowError`]; the rest are counted.
pub const MAX_PROBLEMS: usize = 100;

impl Problems {
    pub fn push(&mut self, problem: Problem) {
        if self.is_full() {
            self.omitted += 1;
        } else {
            self.kept.push(problem);
        }
    }

    /// When full, a caller may count a problem with [`Problems::omit`] instead of describing it.
    pub fn is_full(&self) -> bool {
        self.kept.len() >= MAX_PROBLEMS
    }

    pub fn omit(&mut self) {
        self.omitted += 1;
    }

    pub fn is_empty(&self) -> bool {
        self.kept.is_empty() && self.omitted == 0
    }

    pub fn extend(&mut self, other: Problems) {
        self.omitted += other.omitted;
        for p in other.kept {
            self.push(p);
        }
    }
}

/// Problems found in a workflow, in source order; `Display` gives one per line. At most
/// [`MAX_PROBLEMS`] are kept; [`WorkflowError::total`] counts them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WorkflowError {
    problems: Vec<Problem>,
    omitted: usize,
}

impl WorkflowError {
    pub(crate) fn new(problems: Problems) -> Self {
        let Problems { mut kept, omitted } = problems;
        // Unknown positions sort first (they concern the whole document); stable otherwise.
        kept.sort_by_key(|p| (p.line, p.column));
        Self {
            problems: kept,
            omitted,
        }
    }

    pub(crate) fn single(problem: Problem) -> Self {
        Self {
            problems: vec![problem],
            omitted: 0,
        }
    }

    /// The problems kept (the first [`MAX_PROBLEMS`] found).
    pub fn problems(&self) -> &[Problem] {
        &self.problems
    }

    /// How many problems were found, kept or not.
    pub fn total(&self) -> usize {
        self.problems.len() + self.omitted
    }

    fn omitted_line(&self) -> Option<String> {
        (self.omitted > 0).then(|| {
            format!(
                "… and {} more problem{} (the first {MAX_PROBLEMS} are shown)",
                self.omitted,
                if self.omitted == 1 { "" } else { "s" }
            )
        })
    }

    /// One problem a line, each prefixed with `origin` (a file name) as `origin:line:column: …`.
    pub fn display_for(&self, origin: &str) -> String {
        let mut out = String::new();
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            if p.line.is_some() {
                out.push_str(&format!("{origin}:{p}"));
            } else {
                out.push_str(&format!("{origin}: {p}"));
            }
        }
        if let Some(line) = self.omitted_line() {
            out.push_str(&format!("\n{origin}: {line}"));
        }
        out
    }
}

impl fmt::Display for WorkflowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        if let Some(line) = self.omitted_line() {
            write!(f, "\n{line}")?;
        }
        Ok(())
    }
}
