//! The README's walkthrough blocks: the commands of a marked block, and the promises about
//! what `kubectl get` lists.

use crate::support::*;

// ---------------------------------------------------------------------------
// The README's walkthrough blocks

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Listing {
    ordered: bool,
    names: Vec<String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub(crate) line: String,
    pub(crate) listing: Option<Listing>,
    /// `# prints: TEXT` lines after the command: its output holds each TEXT.
    pub(crate) prints: Vec<String>,
}

/// The commands of the README block marked `<!-- walkthrough: NAME -->`.
pub(crate) fn readme_block(name: &str) -> Vec<Step> {
    let readme = read("README.md");
    let marker = format!("<!-- walkthrough: {name} -->");
    let after = readme
        .split_once(&marker)
        .unwrap_or_else(|| panic!("README.md has no {marker}"))
        .1;
    let mut lines = after.lines().skip_while(|l| l.trim().is_empty());
    let fence = lines.next().unwrap_or_default();
    assert!(
        fence.starts_with("```sh"),
        "{marker} must be followed by a ```sh block"
    );
    let mut steps: Vec<Step> = Vec::new();
    let mut pending = String::new();
    for line in lines.take_while(|l| !l.starts_with("```")) {
        let line = line.trim();
        if let Some(names) = line.strip_prefix("# lists in order:") {
            attach(&mut steps, names, true);
        } else if let Some(names) = line.strip_prefix("# lists:") {
            attach(&mut steps, names, false);
        } else if let Some(text) = line.strip_prefix("# prints:") {
            let step = steps
                .last_mut()
                .expect("a `# prints` comment follows a command");
            step.prints.push(text.trim().to_string());
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if let Some(start) = line.strip_suffix('\\') {
            pending.push_str(start);
        } else {
            pending.push_str(line);
            steps.push(Step {
                line: std::mem::take(&mut pending),
                listing: None,
                prints: Vec::new(),
            });
        }
    }
    assert!(!steps.is_empty(), "{marker} holds no command");
    steps
}

fn attach(steps: &mut [Step], names: &str, ordered: bool) {
    let step = steps
        .last_mut()
        .expect("a `# lists` comment follows a command");
    assert!(
        step.line.starts_with("kubectl get"),
        "`# lists` follows a kubectl get, not {:?}",
        step.line
    );
    step.listing = Some(Listing {
        ordered,
        names: names.split(',').map(|n| n.trim().to_string()).collect(),
    });
}

/// `<id>` at the end of a pattern stands for a generated suffix of [a-z0-9].
fn name_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix("<id>") {
        Some(prefix) => name.strip_prefix(prefix).is_some_and(|id| {
            !id.is_empty()
                && id
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        }),
        None => name == pattern,
    }
}

/// Checks a `kubectl get` table against its promise: the rows whose names share
/// the promised names' prefix are exactly the promised ones (in order, if asked).
pub(crate) fn check_listing(listing: &Listing, table: &str) -> Result<(), String> {
    let stems: Vec<&str> = listing
        .names
        .iter()
        .map(|n| n.strip_suffix("<id>").unwrap_or(n))
        .collect();
    let mut prefix = stems[0].to_string();
    for stem in &stems[1..] {
        while !stem.starts_with(&prefix) {
            prefix.pop();
        }
    }
    let rows: Vec<&str> = table
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| n.starts_with(&prefix))
        .collect();
    let mut unmatched: Vec<&String> = listing.names.iter().collect();
    let mut order = Vec::new();
    for row in &rows {
        match unmatched.iter().position(|p| name_matches(p, row)) {
            Some(i) => order.push(unmatched.remove(i).clone()),
            None => return Err(format!("unexpected {row}")),
        }
    }
    if !unmatched.is_empty() {
        return Err(format!("missing {unmatched:?}"));
    }
    if listing.ordered && order != listing.names {
        return Err(format!("order {order:?}, promised {:?}", listing.names));
    }
    Ok(())
}

#[test]
fn readme_listings_are_checked_strictly() {
    let ordered = Listing {
        ordered: true,
        names: vec!["wf-1-node1".into(), "wf-2-node2".into()],
    };
    let table = "NAME         COMPLETIONS\nwf-1-node1   1/1\nwf-2-node2   1/1\nother   1/1\n";
    assert_eq!(check_listing(&ordered, table), Ok(()));
    let swapped = "NAME\nwf-2-node2\nwf-1-node1\n";
    assert!(
        check_listing(&ordered, swapped)
            .unwrap_err()
            .contains("order")
    );
    let missing = "NAME\nwf-1-node1\n";
    assert!(
        check_listing(&ordered, missing)
            .unwrap_err()
            .contains("missing")
    );
    let extra = "NAME\nwf-1-node1\nwf-2-node2\nwf-3-node2\n";
    assert!(
        check_listing(&ordered, extra)
            .unwrap_err()
            .contains("unexpected")
    );
    let pods = Listing {
        ordered: false,
        names: vec!["wf-<id>".into()],
    };
    assert_eq!(check_listing(&pods, "NAME READY\nwf-x7k2p 0/1\n"), Ok(()));
    assert!(check_listing(&pods, "NAME READY\nwf-1-node1-x7k2p 0/1\n").is_err());
    assert!(check_listing(&pods, "NAME READY\n").is_err());
}

#[test]
fn readme_walkthrough_blocks_are_well_formed() {
    for block in [
        "images",
        "install",
        "hello-world",
        "multi-node",
        "uninstall",
        "machine-learning",
    ] {
        let steps = readme_block(block);
        for step in &steps {
            let program = step.line.split_whitespace().next().unwrap_or_default();
            assert!(
                ["helm", "kubectl", "docker", "cat", "cargo", "pip"].contains(&program),
                "block {block}: unexpected command {:?}",
                step.line
            );
        }
    }
    let hello = readme_block("hello-world");
    assert!(hello.iter().any(|s| s.listing.is_some()));
    let multi = readme_block("multi-node");
    assert!(
        multi
            .iter()
            .filter_map(|s| s.listing.as_ref())
            .any(|l| l.ordered && l.names.len() == 3),
        "the multi-node block promises the three jobs in order"
    );
}
