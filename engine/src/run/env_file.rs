//! Lines that a command appends to its `ROIERGASIAS_ENV` file.
//!
//! The format is GitHub Actions' `GITHUB_ENV`: `NAME=value` lines, and for values with
//! newlines `NAME<<DELIMITER`, the value's lines, then `DELIMITER` alone on a line.

use crate::model::EnvVar;
use crate::substitute::is_valid_name;

/// What is wrong with the file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

pub fn parse_env_file(text: &str) -> Result<Vec<EnvVar>, EnvFileError> {
    let mut vars = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((i, line)) = lines.next() {
        let number = i + 1;
        if line.trim().is_empty() {
            continue;
        }
        let err = |message: String| EnvFileError {
            line: number,
            message,
        };
        let (name, value) = if let Some((name, delimiter)) = heredoc(line) {
            let mut value_lines = Vec::new();
            loop {
                match lines.next() {
                    Some((_, l)) if l == delimiter => break,
                    Some((_, l)) => value_lines.push(l),
                    None => {
                        return Err(err(format!(
                            "`{name}<<{delimiter}` has no closing `{delimiter}` line"
                        )));
                    }
                }
            }
            (name, value_lines.join("\n"))
        } else if let Some((name, value)) = line.split_once('=') {
            (name, value.to_owned())
        } else {
            return Err(err(format!(
                "`{}` is not `NAME=value` (or `NAME<<DELIMITER`)",
                shorten(line)
            )));
        };
        if !is_valid_name(name) {
            return Err(err(format!(
                "variable name `{}` may contain only letters, digits, `-` and `_`",
                shorten(name)
            )));
        }
        vars.push(EnvVar::new(name, value));
    }
    Ok(vars)
}

/// `NAME<<DELIM` with a valid name and a non-empty delimiter.
fn heredoc(line: &str) -> Option<(&str, &str)> {
    let (name, delimiter) = line.split_once("<<")?;
    (is_valid_name(name) && !delimiter.is_empty() && !name.contains('='))
        .then_some((name, delimiter))
}

fn shorten(text: &str) -> String {
    match text.char_indices().nth(60) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pairs_and_heredocs() {
        let text = "a=1\n\nb=x=y\nempty=\nmulti<<EOF\nline 1\nline 2\nEOF\nc-d_e=last\n";
        assert_eq!(
            parse_env_file(text).unwrap(),
            vec![
                EnvVar::new("a", "1"),
                EnvVar::new("b", "x=y"),
                EnvVar::new("empty", ""),
                EnvVar::new("multi", "line 1\nline 2"),
                EnvVar::new("c-d_e", "last"),
            ]
        );
        assert_eq!(parse_env_file("").unwrap(), vec![]);
    }

    #[test]
    fn rejects_malformed_lines() {
        let err = parse_env_file("a=1\njust words\n").unwrap_err();
        assert_eq!(err.line, 2);
        assert_eq!(
            err.message,
            "`just words` is not `NAME=value` (or `NAME<<DELIMITER`)"
        );
        let err = parse_env_file("bad name=1\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.message.contains("`bad name`"), "{}", err.message);
        let err = parse_env_file("=value\n").unwrap_err();
        assert!(err.message.contains("variable name ``"), "{}", err.message);
        let err = parse_env_file("x<<END\nno end\n").unwrap_err();
        assert_eq!(err.line, 1);
        assert_eq!(err.message, "`x<<END` has no closing `END` line");
    }
}
