//! Running the built `roiergasias` binary in tests.

#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_roiergasias"));
    // Keep the tests independent of the developer's terminal settings.
    c.env_remove("NO_COLOR");
    c
}

pub fn run_with(mut command: Command, args: &[&str], stdin: Option<&[u8]>) -> Out {
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = command.spawn().expect("start roiergasias");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        // A reader that stops early (input too large) closes the pipe: ignore that.
        let _ = pipe.write_all(input);
    }
    let output = child.wait_with_output().unwrap();
    Out {
        code: output.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

pub fn roiergasias(args: &[&str]) -> Out {
    run_with(bin(), args, None)
}

pub fn roiergasias_stdin(args: &[&str], stdin: &[u8]) -> Out {
    run_with(bin(), args, Some(stdin))
}

/// Runs workflow `text` from a file `w.yaml` with `--outputs-file`; returns the run and what it
/// wrote there.
pub fn run_with_outputs_file(text: &str) -> (Out, String) {
    let dir = Dir::temp();
    let file = dir.file("w.yaml", text);
    let outputs = dir.path("termination-log");
    let out = roiergasias(&[
        "run",
        "-f",
        &file,
        "--outputs-file",
        outputs.to_str().unwrap(),
    ]);
    let written = std::fs::read_to_string(&outputs).unwrap_or_default();
    (out, written)
}

/// A temporary directory with workflow files in it.
pub struct Dir(pub tempfile::TempDir);

impl Dir {
    pub fn temp() -> Self {
        Dir(tempfile::tempdir().unwrap())
    }
    pub fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

pub fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/hello-world")
        .join(name)
        .to_str()
        .unwrap()
        .to_owned()
}
