//! Lines that a command appends to its `ROIERGASIAS_ENV` file.
//!
//! The format is GitHub Actions' `GITHUB_ENV`: `NAME=value` lines, and for values with
//! newlines `NAME<<DELIMITER`, the value's lines, then `DELIMITER` alone on a line.

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

use crate::model::EnvVar;
use crate::substitute::is_valid_name;

/// The most a command may write to its `ROIERGASIAS_ENV` file.
pub const MAX_ENV_FILE_BYTES: u64 = 1024 * 1024;

/// Reads the file a command may have written: `None` if it made none. Only a regular
/// file is read: opened without following a symlink and without blocking (a FIFO would
/// wait for a writer), and at most [`MAX_ENV_FILE_BYTES`]. The error says what it is.
pub(crate) fn read_env_file(path: &Path) -> Result<Option<Vec<u8>>, String> {
    let flags = OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY;
    let file = match File::options()
        .read(true)
        .custom_flags(flags.bits())
        .open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(nix::libc::ELOOP) => {
            return Err("is a symbolic link, not a regular file".into());
        }
        Err(e) => return Err(format!("cannot be opened: {e}")),
    };
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot be examined: {e}"))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        let what = if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Err(format!("is {what}, not a regular file"));
    }
    let too_big = |size: u64| {
        format!("is {size} bytes, more than the {MAX_ENV_FILE_BYTES}-byte limit for one command")
    };
    if meta.len() > MAX_ENV_FILE_BYTES {
        return Err(too_big(meta.len()));
    }
    // Something still running may be appending: never read past the limit.
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(MAX_ENV_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot be read: {e}"))?;
    if bytes.len() as u64 > MAX_ENV_FILE_BYTES {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(Some(bytes))
}

/// [`parse_env_file`] on bytes, which must be UTF-8.
pub fn parse_env_bytes(bytes: &[u8]) -> Result<Vec<EnvVar>, EnvFileError> {
    match std::str::from_utf8(bytes) {
        Ok(text) => parse_env_file(text),
        Err(e) => Err(EnvFileError {
            line: 1 + bytes[..e.valid_up_to()]
                .iter()
                .filter(|b| **b == b'\n')
                .count(),
            message: "the text is not UTF-8".into(),
        }),
    }
}

/// What is wrong with the file, with its 1-based line number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvFileError {
    pub line: usize,
    pub message: String,
}

/// Parses a `ROIERGASIAS_ENV` file's text (no I/O; the fuzz target's entry point).
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

    #[test]
    fn bytes_must_be_utf8() {
        assert_eq!(
            parse_env_bytes(b"a=1\n").unwrap(),
            vec![EnvVar::new("a", "1")]
        );
        let err = parse_env_bytes(b"a=1\nb=\xff\n").unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "the text is not UTF-8")
        );
    }

    #[test]
    fn reads_only_a_regular_file_within_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("env");
        assert_eq!(read_env_file(&path), Ok(None));
        std::fs::write(&path, "a=1\n").unwrap();
        assert_eq!(read_env_file(&path), Ok(Some(b"a=1\n".to_vec())));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap();
        assert_eq!(
            read_env_file(&link),
            Err("is a symbolic link, not a regular file".into())
        );
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(
            read_env_file(&fifo),
            Err("is a FIFO, not a regular file".into())
        );
        assert_eq!(
            read_env_file(dir.path()),
            Err("is a directory, not a regular file".into())
        );
        std::fs::write(&path, vec![b'x'; MAX_ENV_FILE_BYTES as usize + 1]).unwrap();
        assert_eq!(
            read_env_file(&path),
            Err("is 1048577 bytes, more than the 1048576-byte limit for one command".into())
        );
    }
}
