//! `{{env:NAME}}` substitution: replacing each template by itself is the identity, every
//! reference is a valid name, and a lookup that knows every name never fails.
#![no_main]

use libfuzzer_sys::fuzz_target;
use roiergasias_engine::substitute::{is_valid_name, references, substitute};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let names: Vec<&str> = references(text).collect();
    assert!(names.iter().all(|n| is_valid_name(n)));
    let same = substitute(text, |name| Some(format!("{{{{env:{name}}}}}")));
    assert_eq!(same.as_deref(), Ok(text));
    // Values are not substituted again, and the result grows only by what was put in.
    let filled = substitute(text, |name| Some(format!("<{name}>{{{{env:x}}}}"))).unwrap();
    let added: usize = names.iter().map(|n| n.len() + 2 + 9).sum();
    let removed: usize = names.iter().map(|n| n.len() + 8).sum();
    assert_eq!(filled.len(), text.len() + added - removed);
    if let Some(first) = names.first() {
        assert_eq!(substitute(text, |_| None), Err(*first));
    }
});
