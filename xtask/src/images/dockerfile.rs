//! The little of a Dockerfile that the image cache needs to read: which context files a build copies.
//!
//! buildah does the building; this only finds the inputs, so that a change to any of them changes the
//! cache key. It reads the subset our Dockerfiles use: `FROM … AS name`, `COPY`/`ADD` with flags, and
//! backslash line continuations.

use anyhow::bail;

/// One `COPY`/`ADD` that reads the build context (not `--from` another stage or image).
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ContextCopy {
    /// The stage it belongs to: its `AS` name, else its index.
    pub stage: String,
    pub sources: Vec<String>,
}

/// The context files a Dockerfile copies, skipping the stages in `overridden`
/// (those a named build context replaces, so their instructions never run).
pub(crate) fn context_copies(text: &str, overridden: &[&str]) -> anyhow::Result<Vec<ContextCopy>> {
    let mut copies = Vec::new();
    let mut stage: Option<String> = None;
    for (number, line) in logical_lines(text) {
        let mut words = line.split_whitespace();
        let Some(instruction) = words.next() else {
            continue;
        };
        let args: Vec<&str> = words.collect();
        match instruction.to_ascii_uppercase().as_str() {
            "FROM" => stage = Some(stage_name(&args, copies.len())),
            "COPY" | "ADD" => {
                let Some(stage) = &stage else {
                    bail!("line {number}: {instruction} before any FROM");
                };
                if overridden.contains(&stage.as_str()) {
                    continue;
                }
                if let Some(copy) = context_copy(stage, &args, number)? {
                    copies.push(copy);
                }
            }
            _ => {}
        }
    }
    Ok(copies)
}

fn stage_name(args: &[&str], index: usize) -> String {
    let named = args
        .iter()
        .position(|a| a.eq_ignore_ascii_case("as"))
        .and_then(|i| args.get(i + 1));
    match named {
        Some(name) => name.to_string(),
        None => format!("stage {index}"),
    }
}

fn context_copy(stage: &str, args: &[&str], number: usize) -> anyhow::Result<Option<ContextCopy>> {
    let (flags, paths): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.starts_with("--"));
    if flags.iter().any(|f| f.starts_with("--from=")) {
        return Ok(None);
    }
    if paths.first().is_some_and(|p| p.starts_with('[')) {
        bail!("line {number}: the JSON form of COPY/ADD is not read here; use the plain form");
    }
    if paths.len() < 2 {
        bail!("line {number}: COPY/ADD needs a source and a destination");
    }
    let sources = paths[..paths.len() - 1]
        .iter()
        .map(|s| s.to_string())
        .collect();
    Ok(Some(ContextCopy {
        stage: stage.to_string(),
        sources,
    }))
}

/// Instructions joined across `\` continuations, without comments, each with its first line number.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_none()) {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| (i + 1, String::new()));
        entry.1.push(' ');
        entry.1.push_str(body);
        if !continues {
            lines.extend(current.take());
        }
    }
    lines.extend(current);
    lines
}

/// The default of a build argument declared with `ARG NAME=default`, if any.
pub(crate) fn arg_default(text: &str, name: &str) -> Option<String> {
    logical_lines(text).into_iter().find_map(|(_, line)| {
        let mut words = line.split_whitespace();
        let instruction = words.next()?;
        if !instruction.eq_ignore_ascii_case("ARG") {
            return None;
        }
        let (key, value) = words.next()?.split_once('=')?;
        (key == name).then(|| value.trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
# syntax=docker/dockerfile:1
ARG BASE=\"debian:bookworm-slim\"
FROM rust AS builder
COPY Cargo.toml Cargo.lock ./
COPY engine engine
RUN cargo build
FROM ${BASE}
# a comment between instructions
COPY --from=builder /out/app /usr/local/bin/app
copy --chown=1:1 a.py \\
     b.py \\
     /opt/
ADD run.sh /usr/local/bin/run
";

    #[test]
    fn finds_context_copies_outside_overridden_stages() {
        let copies = context_copies(SAMPLE, &["builder"]).unwrap();
        assert_eq!(
            copies,
            [
                ContextCopy {
                    stage: "stage 0".into(),
                    sources: vec!["a.py".into(), "b.py".into()]
                },
                ContextCopy {
                    stage: "stage 0".into(),
                    sources: vec!["run.sh".into()]
                },
            ]
        );
    }

    #[test]
    fn reads_every_stage_when_none_is_overridden() {
        let copies = context_copies(SAMPLE, &[]).unwrap();
        let sources: Vec<_> = copies.iter().flat_map(|c| c.sources.clone()).collect();
        assert_eq!(
            sources,
            [
                "Cargo.toml",
                "Cargo.lock",
                "engine",
                "a.py",
                "b.py",
                "run.sh"
            ]
        );
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let json = "FROM x\nCOPY [\"a\", \"/b\"]\n";
        let err = context_copies(json, &[]).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("JSON form"), "{err}");
        let early = context_copies("COPY a /b\n", &[]).unwrap_err().to_string();
        assert!(early.contains("before any FROM"), "{early}");
        let short = context_copies("FROM x\nCOPY a\n", &[])
            .unwrap_err()
            .to_string();
        assert!(short.contains("source and a destination"), "{short}");
    }

    #[test]
    fn arg_defaults() {
        assert_eq!(
            arg_default(SAMPLE, "BASE").as_deref(),
            Some("debian:bookworm-slim")
        );
        assert_eq!(arg_default(SAMPLE, "MISSING"), None);
        assert_eq!(arg_default("ARG PLAIN\n", "PLAIN"), None);
    }
}
