//! `{{env:NAME}}` templates: finding and replacing them.

const OPEN: &str = "{{env:";
const CLOSE: &str = "}}";

/// Characters allowed in a variable name (and so inside `{{env:…}}`).
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

/// Whether `name` can be set and referenced as a workflow variable.
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(is_name_char)
}

/// Byte ranges of each template in `text`: (start of `{{`, name, end after `}}`).
/// Text that only looks similar (`{{env:}}`, `{{ env:x }}`) is left alone, as the original did.
fn templates(text: &str) -> impl Iterator<Item = (usize, &str, usize)> {
    let mut from = 0;
    std::iter::from_fn(move || {
        while let Some(found) = text[from..].find(OPEN) {
            let start = from + found;
            let name_start = start + OPEN.len();
            let name_len = text[name_start..]
                .find(|c: char| !is_name_char(c))
                .unwrap_or(text.len() - name_start);
            let name_end = name_start + name_len;
            if name_len > 0 && text[name_end..].starts_with(CLOSE) {
                from = name_end + CLOSE.len();
                return Some((start, &text[name_start..name_end], from));
            }
            from = name_start;
        }
        None
    })
}

/// Names referred to by `{{env:NAME}}` in `text`, in order (repeats included).
pub fn references(text: &str) -> impl Iterator<Item = &str> {
    templates(text).map(|(_, name, _)| name)
}

/// Replaces every template using `lookup`; the first name it cannot resolve is the error.
pub fn substitute<F>(text: &str, mut lookup: F) -> Result<String, &str>
where
    F: FnMut(&str) -> Option<String>,
{
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (start, name, end) in templates(text) {
        let value = lookup(name).ok_or(name)?;
        out.push_str(&text[copied..start]);
        out.push_str(&value);
        copied = end;
    }
    out.push_str(&text[copied..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "greeting" => Some("Hi".into()),
            "with-dash" => Some("d".into()),
            "braces" => Some("{{env:greeting}}".into()),
            _ => None,
        }
    }

    #[test]
    fn replaces_every_template() {
        assert_eq!(
            substitute("{{env:greeting}}, {{env:with-dash}}!{{env:greeting}}", vars).unwrap(),
            "Hi, d!Hi"
        );
    }

    #[test]
    fn leaves_non_templates_alone() {
        for text in [
            "{{env:}}",
            "{{ env:greeting }}",
            "{{env:greeting",
            "{env:greeting}",
            "{{env:a b}}",
        ] {
            assert_eq!(substitute(text, vars).unwrap(), text);
        }
        assert_eq!(
            substitute("{{env:{{env:greeting}}", vars).unwrap(),
            "{{env:Hi"
        );
    }

    #[test]
    fn values_are_not_substituted_again() {
        assert_eq!(
            substitute("{{env:braces}}", vars).unwrap(),
            "{{env:greeting}}"
        );
    }

    #[test]
    fn reports_the_undefined_name() {
        assert_eq!(
            substitute("a {{env:greeting}} {{env:nope}}", vars),
            Err("nope")
        );
    }

    #[test]
    fn lists_references() {
        let names: Vec<_> = references("{{env:a}}{{env:b_2}} {{env:}} {{env:a}}").collect();
        assert_eq!(names, ["a", "b_2", "a"]);
    }

    #[test]
    fn names() {
        assert!(is_valid_name("A-b_9"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name("a b"));
        assert!(!is_valid_name("a=b"));
    }
}
