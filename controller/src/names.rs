//! Names of the ConfigMaps and Jobs the operator creates, as the original operator chose them,
//! shortened with a stable hash when Kubernetes would refuse them.

/// Kubernetes names of one split's objects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitNames {
    pub config_map: String,
    pub job: String,
}

/// ConfigMap names are DNS-1123 subdomains.
pub const MAX_CONFIG_MAP_NAME: usize = 253;
/// A Job's name becomes the value of its pods' `job-name` label: at most 63 characters.
pub const MAX_JOB_NAME: usize = 63;
/// Label values hold at most 63 characters.
pub const MAX_LABEL_VALUE: usize = 63;
/// "-" and 10 hex digits of the hash.
const HASH_SUFFIX_LEN: usize = 11;

/// Names of split `index` (from 1) of Workflow `workflow` whose workflowYAML is called `name`.
/// Without nodes (one split): ConfigMap `<workflow>-<name>`, Job `<workflow>`. With nodes:
/// ConfigMap `<workflow>-<name>-<index>-<node>`, Job `<workflow>-<index>-<node>`.
pub fn split_names(workflow: &str, name: &str, index: u32, node: Option<&str>) -> SplitNames {
    match node {
        None => SplitNames {
            config_map: fit(&format!("{workflow}-{name}"), MAX_CONFIG_MAP_NAME),
            job: fit(workflow, MAX_JOB_NAME),
        },
        Some(node) => SplitNames {
            config_map: fit(
                &format!("{workflow}-{name}-{index}-{node}"),
                MAX_CONFIG_MAP_NAME,
            ),
            job: fit(&format!("{workflow}-{index}-{node}"), MAX_JOB_NAME),
        },
    }
}

/// Names of attempt `attempt` of a split whose first attempt is named `first`: the first
/// keeps them, a retry's end in `-retry<attempt>` (fitted, so a long name stays valid).
pub fn attempt_names(first: SplitNames, attempt: u32) -> SplitNames {
    if attempt <= 1 {
        return first;
    }
    SplitNames {
        config_map: fit(
            &format!("{}-retry{attempt}", first.config_map),
            MAX_CONFIG_MAP_NAME,
        ),
        job: fit(&format!("{}-retry{attempt}", first.job), MAX_JOB_NAME),
    }
}

/// `wanted` if it is a valid DNS-1123 subdomain of at most `max` characters; otherwise a valid
/// one built from it: invalid characters replaced by '-', cut to fit, and ended by a hash of
/// `wanted` so two different wanted names never share a result.
pub fn fit(wanted: &str, max: usize) -> String {
    let cleaned = sanitize(wanted);
    if cleaned == wanted && cleaned.len() <= max {
        return cleaned;
    }
    let hash = format!("{:016x}", fnv1a64(wanted.as_bytes()));
    let keep = max.saturating_sub(HASH_SUFFIX_LEN);
    let prefix = cleaned[..cleaned.len().min(keep)].trim_end_matches(['-', '.']);
    if prefix.is_empty() {
        format!("x{}", &hash[..HASH_SUFFIX_LEN - 1])
    } else {
        format!("{prefix}-{}", &hash[..HASH_SUFFIX_LEN - 1])
    }
}

/// Lower case; anything but `[a-z0-9.-]` becomes '-'; starts and ends alphanumeric; no empty
/// dot-separated segment. ASCII only, so byte slicing above stays on char boundaries.
fn sanitize(wanted: &str) -> String {
    let mapped: String = wanted
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9' | '-' | '.') => c,
            _ => '-',
        })
        .collect();
    let segments: Vec<&str> = mapped
        .split('.')
        .map(|s| s.trim_matches('-'))
        .filter(|s| !s.is_empty())
        .collect();
    segments.join(".")
}

/// FNV-1a, 64 bits: tiny, and stable across releases (names must not change on upgrade).
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Whether `name` is a DNS-1123 subdomain of at most `max` characters.
#[cfg(test)]
fn is_valid(name: &str, max: usize) -> bool {
    !name.is_empty()
        && name.len() <= max
        && name.split('.').all(|segment| {
            let bytes = segment.as_bytes();
            !bytes.is_empty()
                && bytes[0].is_ascii_alphanumeric()
                && bytes[bytes.len() - 1].is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_retry_has_names_of_its_own_that_stay_valid() {
        let first = split_names("demo", "hello-world", 2, Some("node2"));
        assert_eq!(attempt_names(first.clone(), 1), first);
        let second = attempt_names(first.clone(), 2);
        assert_eq!(second.job, "demo-2-node2-retry2");
        assert_eq!(second.config_map, "demo-hello-world-2-node2-retry2");
        let long = split_names(&"w".repeat(63), "hello-world", 1, None);
        let retried = attempt_names(long.clone(), 3);
        assert!(is_valid(&retried.job, MAX_JOB_NAME), "{}", retried.job);
        assert_ne!(retried.job, long.job);
        assert_ne!(retried.job, attempt_names(long, 4).job);
    }

    #[test]
    fn names_without_nodes_are_the_originals() {
        let names = split_names("roiergasias-demo", "hello-world", 1, None);
        assert_eq!(names.config_map, "roiergasias-demo-hello-world");
        assert_eq!(names.job, "roiergasias-demo");
    }

    #[test]
    fn names_with_nodes_are_the_originals() {
        let names: Vec<SplitNames> = [(1, "node1"), (2, "node2"), (3, "node2")]
            .iter()
            .map(|(n, node)| split_names("roiergasias-demo", "hello-world", *n, Some(node)))
            .collect();
        assert_eq!(
            names
                .iter()
                .map(|n| n.config_map.as_str())
                .collect::<Vec<_>>(),
            [
                "roiergasias-demo-hello-world-1-node1",
                "roiergasias-demo-hello-world-2-node2",
                "roiergasias-demo-hello-world-3-node2"
            ]
        );
        assert_eq!(
            names.iter().map(|n| n.job.as_str()).collect::<Vec<_>>(),
            [
                "roiergasias-demo-1-node1",
                "roiergasias-demo-2-node2",
                "roiergasias-demo-3-node2"
            ]
        );
    }

    #[test]
    fn long_job_names_are_shortened_stably_and_distinctly() {
        let workflow = "a".repeat(60);
        let one = split_names(&workflow, "w", 1, Some("node1"));
        let again = split_names(&workflow, "w", 1, Some("node1"));
        let two = split_names(&workflow, "w", 2, Some("node1"));
        assert_eq!(one, again);
        assert_ne!(one.job, two.job);
        for job in [&one.job, &two.job] {
            assert_eq!(job.len(), MAX_JOB_NAME, "{job}");
            assert!(is_valid(job, MAX_JOB_NAME), "{job}");
            assert!(job.starts_with("aaaa"));
        }
        // The ConfigMap name still fits, so it is not touched.
        assert_eq!(one.config_map, format!("{workflow}-w-1-node1"));
    }

    #[test]
    fn long_config_map_names_are_shortened() {
        let workflow = "b".repeat(200);
        let names = split_names(&workflow, &"c".repeat(63), 7, Some("node2"));
        assert!(is_valid(&names.config_map, MAX_CONFIG_MAP_NAME));
        assert_eq!(names.config_map.len(), MAX_CONFIG_MAP_NAME);
        assert!(is_valid(&names.job, MAX_JOB_NAME));
    }

    #[test]
    fn node_labels_invalid_in_names_are_cleaned_and_kept_apart() {
        // Label values allow upper case and '_'; names do not.
        let upper = split_names("wf", "w", 1, Some("GPU_Node"));
        let lower = split_names("wf", "w", 1, Some("gpu-node"));
        assert!(is_valid(&upper.job, MAX_JOB_NAME), "{}", upper.job);
        assert!(upper.job.starts_with("wf-1-gpu-node-"), "{}", upper.job);
        assert_eq!(lower.job, "wf-1-gpu-node");
        assert_ne!(upper.job, lower.job);
        assert!(is_valid(&upper.config_map, MAX_CONFIG_MAP_NAME));
    }

    #[test]
    fn dotted_names_stay_valid_subdomains() {
        let names = split_names("my.flow", "w", 1, Some("zone.a"));
        assert_eq!(names.job, "my.flow-1-zone.a");
        assert!(is_valid(&names.job, MAX_JOB_NAME));
        assert!(is_valid(&fit("a.-b", 63), 63), "{}", fit("a.-b", 63));
        assert!(is_valid(&fit("--", 63), 63), "{}", fit("--", 63));
    }

    #[test]
    fn validity_check_rejects_what_kubernetes_rejects() {
        for bad in ["", "-a", "a-", "A", "a_b", "a..b", ".a", &"a".repeat(64)] {
            assert!(!is_valid(bad, 63), "{bad:?}");
        }
        for good in ["a", "a-b", "a.b", "0", &"a".repeat(63)] {
            assert!(is_valid(good, 63), "{good:?}");
        }
    }

    #[test]
    fn fit_hashes_are_fixed_across_releases() {
        // Names of existing objects must not change when the operator is upgraded.
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
