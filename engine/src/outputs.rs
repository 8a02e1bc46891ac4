//! The outputs of a run: variables set during it, as a flat JSON object, sized for
//! a Kubernetes termination message so the operator can carry them to the next node.

use std::collections::BTreeMap;

use crate::model::EnvVar;
use crate::substitute::is_valid_name;

/// Kubernetes keeps at most this many bytes of a container's termination message.
pub const TERMINATION_MESSAGE_LIMIT: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OutputsError {
    #[error("outputs are not a JSON object of string values: {0}")]
    Invalid(String),
    #[error("outputs variable name `{0}` may contain only letters, digits, `-` and `_`")]
    BadName(String),
    #[error(
        "the outputs take {size} bytes as JSON, more than the {TERMINATION_MESSAGE_LIMIT}-byte termination message limit; largest variables: {}",
        largest.iter().map(|(n, s)| format!("{n} ({s} bytes)")).collect::<Vec<_>>().join(", ")
    )]
    TooLarge {
        size: usize,
        /// Up to three names with their value sizes, largest first.
        largest: Vec<(String, usize)>,
    },
}

/// Parses the JSON that a successful run writes. Empty text means no outputs.
pub fn parse_outputs(text: &str) -> Result<Vec<EnvVar>, OutputsError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: BTreeMap<String, String> =
        serde_json::from_str(text).map_err(|e| OutputsError::Invalid(e.to_string()))?;
    map.into_iter()
        .map(|(name, value)| {
            if is_valid_name(&name) {
                Ok(EnvVar { name, value })
            } else {
                Err(OutputsError::BadName(name))
            }
        })
        .collect()
}

/// The JSON for `vars` (later entries win), or an error naming the largest variables
/// when it does not fit in a termination message. Never truncates.
pub fn encode_outputs(vars: &[EnvVar]) -> Result<String, OutputsError> {
    let map: BTreeMap<&str, &str> = vars
        .iter()
        .map(|v| (v.name.as_str(), v.value.as_str()))
        .collect();
    let json = serde_json::to_string(&map).map_err(|e| OutputsError::Invalid(e.to_string()))?;
    if json.len() <= TERMINATION_MESSAGE_LIMIT {
        return Ok(json);
    }
    let mut sizes: Vec<(String, usize)> =
        map.iter().map(|(n, v)| (n.to_string(), v.len())).collect();
    sizes.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    sizes.truncate(3);
    Err(OutputsError::TooLarge {
        size: json.len(),
        largest: sizes,
    })
}

/// A human error message cut to fit a termination message, marked when cut.
pub fn fit_message(text: &str) -> String {
    const MARKER: &str = "\n… (truncated)";
    if text.len() <= TERMINATION_MESSAGE_LIMIT {
        return text.to_owned();
    }
    let mut end = TERMINATION_MESSAGE_LIMIT - MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{MARKER}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let vars = vec![
            EnvVar::new("b", "two \"quoted\"\nlines"),
            EnvVar::new("a-1", "one"),
            EnvVar::new("b", "last wins"),
        ];
        let json = encode_outputs(&vars).unwrap();
        assert_eq!(json, r#"{"a-1":"one","b":"last wins"}"#);
        assert_eq!(
            parse_outputs(&json).unwrap(),
            vec![EnvVar::new("a-1", "one"), EnvVar::new("b", "last wins")]
        );
    }

    #[test]
    fn empty_text_means_no_outputs() {
        assert_eq!(parse_outputs("").unwrap(), vec![]);
        assert_eq!(parse_outputs("{}").unwrap(), vec![]);
    }

    #[test]
    fn rejects_other_json() {
        assert!(matches!(
            parse_outputs("[1]"),
            Err(OutputsError::Invalid(_))
        ));
        assert!(matches!(
            parse_outputs(r#"{"a":1}"#),
            Err(OutputsError::Invalid(_))
        ));
        assert!(matches!(
            parse_outputs("task 1 failed"),
            Err(OutputsError::Invalid(_))
        ));
        assert_eq!(
            parse_outputs(r#"{"a b":"x"}"#),
            Err(OutputsError::BadName("a b".into()))
        );
    }

    #[test]
    fn too_large_names_the_largest_and_never_truncates() {
        let vars = vec![
            EnvVar::new("small", "x"),
            EnvVar::new("big", "y".repeat(3000)),
            EnvVar::new("bigger", "z".repeat(3500)),
        ];
        let err = encode_outputs(&vars).unwrap_err();
        let OutputsError::TooLarge { size, largest } = &err else {
            panic!("expected TooLarge, got {err:?}")
        };
        assert!(*size > TERMINATION_MESSAGE_LIMIT);
        assert_eq!(largest[0], ("bigger".to_string(), 3500));
        assert_eq!(largest[1], ("big".to_string(), 3000));
        let text = err.to_string();
        assert!(
            text.contains("bigger (3500 bytes), big (3000 bytes)"),
            "{text}"
        );
    }

    #[test]
    fn exactly_at_the_limit_fits() {
        // {"a":"…"} is 8 bytes of framing.
        let vars = vec![EnvVar::new("a", "v".repeat(TERMINATION_MESSAGE_LIMIT - 8))];
        assert_eq!(
            encode_outputs(&vars).unwrap().len(),
            TERMINATION_MESSAGE_LIMIT
        );
        let vars = vec![EnvVar::new("a", "v".repeat(TERMINATION_MESSAGE_LIMIT - 7))];
        assert!(encode_outputs(&vars).is_err());
    }

    #[test]
    fn messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(TERMINATION_MESSAGE_LIMIT);
        let cut = fit_message(&long);
        assert!(cut.len() <= TERMINATION_MESSAGE_LIMIT);
        assert!(cut.ends_with("(truncated)"));
        assert_eq!(fit_message("short"), "short");
    }
}
