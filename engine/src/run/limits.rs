//! How large values may grow at run time, so that doubling values (`a2: "{{env:a1}}{{env:a1}}"`)
//! stop early with an error instead of using all memory, and every value still fits where
//! it goes: Linux takes at most 128 KiB for one argument or `NAME=value` (MAX_ARG_STRLEN)
//! and, with the default 8 MiB stack, about 2 MiB for all of them together (ARG_MAX).

use std::collections::HashMap;

use crate::substitute::references;

/// The most one variable's value may take: half of MAX_ARG_STRLEN, leaving room for the
/// name in `NAME=value`.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// The most one command word or one `shell` script may take once substituted: what
/// Linux accepts for one argument (MAX_ARG_STRLEN, with its terminating NUL).
pub const MAX_ARGUMENT_BYTES: usize = 128 * 1024 - 1;
/// The most all workflow variables may take together, counted as the `NAME=value` entries
/// the commands get: half of ARG_MAX, leaving the rest to the process environment and the
/// command's arguments. Also the most one command's words together, and one `print`
/// step's messages together, may take once substituted.
pub const MAX_VARIABLES_BYTES: usize = 1024 * 1024;

/// The length of `text` once substituted, computed without building it. Names that
/// `length_of` does not know count as written (substitution then reports them).
pub(crate) fn substituted_len(text: &str, length_of: impl Fn(&str) -> Option<usize>) -> usize {
    references(text).fold(text.len(), |len, name| match length_of(name) {
        // The template `{{env:NAME}}` is replaced by the value.
        Some(value) => (len + value).saturating_sub(name.len() + "{{env:}}".len()),
        None => len,
    })
}

/// Workflow variables and the bytes they take as `NAME=value` entries.
#[derive(Default)]
pub(crate) struct Variables {
    values: HashMap<String, String>,
    bytes: usize,
}

/// Why a value was not set.
pub(crate) enum Refused {
    /// The value alone is larger than [`MAX_VALUE_BYTES`].
    Value(usize),
    /// All variables together would take this many bytes, more than [`MAX_VARIABLES_BYTES`].
    All(usize),
}

fn entry_len(name: &str, value: &str) -> usize {
    // `NAME=value` and its terminating NUL.
    name.len() + value.len() + 2
}

impl Variables {
    pub(crate) fn get(&self, name: &str) -> Option<&String> {
        self.values.get(name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &String)> {
        self.values.iter()
    }

    pub(crate) fn set(&mut self, name: &str, value: String) -> Result<(), Refused> {
        if value.len() > MAX_VALUE_BYTES {
            return Err(Refused::Value(value.len()));
        }
        let old = self.values.get(name).map_or(0, |v| entry_len(name, v));
        let bytes = self.bytes - old + entry_len(name, &value);
        if bytes > MAX_VARIABLES_BYTES {
            return Err(Refused::All(bytes));
        }
        self.bytes = bytes;
        self.values.insert(name.to_owned(), value);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substituted_length_without_substituting() {
        let len = |name: &str| (name == "a").then_some(100);
        assert_eq!(substituted_len("x{{env:a}}y{{env:a}}", len), 202);
        assert_eq!(substituted_len("{{env:nope}}", len), 12);
        assert_eq!(substituted_len("{{env:}} plain", len), 14);
    }

    #[test]
    fn caps_one_value_and_all_of_them() {
        let mut vars = Variables::default();
        assert!(vars.set("a", "x".repeat(MAX_VALUE_BYTES)).is_ok());
        assert!(matches!(
            vars.set("a", "x".repeat(MAX_VALUE_BYTES + 1)),
            Err(Refused::Value(n)) if n == MAX_VALUE_BYTES + 1
        ));
        // Replacing a value frees its bytes.
        for _ in 0..100 {
            assert!(vars.set("a", "x".repeat(MAX_VALUE_BYTES)).is_ok());
        }
        let mut all = Ok(());
        for i in 0..MAX_VARIABLES_BYTES / MAX_VALUE_BYTES {
            all = vars.set(&format!("v{i}"), "x".repeat(MAX_VALUE_BYTES));
        }
        assert!(matches!(all, Err(Refused::All(n)) if n > MAX_VARIABLES_BYTES));
        assert!(vars.bytes <= MAX_VARIABLES_BYTES);
    }
}
