//! The Debian mirror this machine is configured with: debootstrap fetches from it, and the base
//! image's own apt sources point at it, as `debian:bookworm-slim`'s point at deb.debian.org.

use std::path::Path;

use anyhow::{Context, bail};

/// Overrides the mirror taken from the machine's apt sources.
pub(crate) const MIRROR_ENV: &str = "ROIERGASIAS_DEBIAN_MIRROR";

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    pub components: Vec<String>,
}

/// Reads `/etc/apt/sources.list` and `sources.list.d/*.{list,sources}` under `etc_apt`.
pub(crate) fn read(etc_apt: &Path) -> anyhow::Result<Vec<Source>> {
    let mut sources = Vec::new();
    let list = etc_apt.join("sources.list");
    if list.is_file() {
        sources.extend(parse_one_line(&std::fs::read_to_string(&list)?));
    }
    let dir = etc_apt.join("sources.list.d");
    if dir.is_dir() {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .with_context(|| format!("listing {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for file in files {
            let text = || std::fs::read_to_string(&file);
            match file.extension().and_then(|e| e.to_str()) {
                Some("list") => sources.extend(parse_one_line(&text()?)),
                Some("sources") => sources.extend(parse_deb822(&text()?)),
                _ => {}
            }
        }
    }
    Ok(sources)
}

/// `deb [options] URI SUITE COMPONENT...` lines.
pub(crate) fn parse_one_line(text: &str) -> Vec<Source> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("").trim();
            let rest = line.strip_prefix("deb ")?.trim_start();
            let rest = match rest.strip_prefix('[') {
                Some(options) => options.split_once(']')?.1,
                None => rest,
            };
            let mut words = rest.split_whitespace();
            Some(Source {
                uri: words.next()?.to_string(),
                suites: vec![words.next()?.to_string()],
                components: words.map(str::to_string).collect(),
            })
        })
        .collect()
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Components:`), skipping `Enabled: no`.
pub(crate) fn parse_deb822(text: &str) -> Vec<Source> {
    let mut sources = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |name: &str| -> Vec<String> {
            stanza
                .lines()
                .filter(|l| !l.starts_with('#'))
                .find_map(|l| {
                    let (key, value) = l.split_once(':')?;
                    key.trim()
                        .eq_ignore_ascii_case(name)
                        .then(|| value.split_whitespace().map(str::to_string).collect())
                })
                .unwrap_or_default()
        };
        let enabled = field("Enabled").first().is_none_or(|v| v != "no");
        if !enabled || !field("Types").iter().any(|t| t == "deb") {
            continue;
        }
        for uri in field("URIs") {
            sources.push(Source {
                uri,
                suites: field("Suites"),
                components: field("Components"),
            });
        }
    }
    sources
}

/// The sources a Debian `suite` image uses: the suite, its `-updates` and `-security`, component main.
pub(crate) fn for_suite(all: &[Source], suite: &str) -> Vec<Source> {
    let wanted = [
        suite.to_string(),
        format!("{suite}-updates"),
        format!("{suite}-security"),
    ];
    all.iter()
        .filter(|s| s.components.iter().any(|c| c == "main"))
        .filter_map(|s| {
            let suites: Vec<String> = s
                .suites
                .iter()
                .filter(|x| wanted.contains(x))
                .cloned()
                .collect();
            (!suites.is_empty()).then(|| Source {
                uri: s.uri.clone(),
                suites,
                components: vec!["main".into()],
            })
        })
        .collect()
}

/// The mirror serving `suite` itself: what debootstrap is given (`ROIERGASIAS_DEBIAN_MIRROR` first).
pub(crate) fn mirror(sources: &[Source], suite: &str) -> anyhow::Result<String> {
    match std::env::var(MIRROR_ENV).ok().filter(|u| !u.is_empty()) {
        Some(uri) => Ok(uri),
        None => configured_mirror(sources, suite),
    }
}

fn configured_mirror(sources: &[Source], suite: &str) -> anyhow::Result<String> {
    match sources.iter().find(|s| s.suites.iter().any(|x| x == suite)) {
        Some(source) => Ok(source.uri.clone()),
        None => bail!(
            "no apt source for Debian {suite} (component main) in /etc/apt/sources.list or /etc/apt/sources.list.d/; \
             debootstrap needs a mirror: add one there, or set {MIRROR_ENV}=URI"
        ),
    }
}

/// The image's `/etc/apt/sources.list.d/debian.sources`, as in Debian's own images.
pub(crate) fn render_deb822(sources: &[Source]) -> String {
    sources
        .iter()
        .map(|s| {
            format!(
                "Types: deb\nURIs: {}\nSuites: {}\nComponents: {}\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
                s.uri,
                s.suites.join(" "),
                s.components.join(" ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEB822: &str = "\
Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm
Components: main

Enabled: no
Types: deb
URIs: http://off.example/debian
Suites: bookworm
Components: main
";

    #[test]
    fn deb822_keeps_enabled_binary_stanzas() {
        let sources = parse_deb822(DEB822);
        let uris: Vec<_> = sources.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "http://deb.debian.org/debian",
                "http://deb.debian.org/debian-security"
            ]
        );
        assert_eq!(sources[0].suites, ["bookworm", "bookworm-updates"]);
    }

    #[test]
    fn one_line_format_with_options_and_comments() {
        let text = "# comment\ndeb [signed-by=/k.gpg arch=amd64] http://m.example/debian bookworm main contrib # x\n\
                    deb-src http://m.example/debian bookworm main\ndeb https://other.example/apt nodistro main\n";
        let sources = parse_one_line(text);
        assert_eq!(sources.len(), 2);
        assert_eq!(
            sources[0],
            Source {
                uri: "http://m.example/debian".into(),
                suites: vec!["bookworm".into()],
                components: vec!["main".into(), "contrib".into()],
            }
        );
    }

    #[test]
    fn suite_selection_drops_third_party_and_other_suites() {
        let mut all = parse_deb822(DEB822);
        all.extend(parse_one_line(
            "deb https://deb.nodesource.com/node_20.x nodistro main\ndeb http://x/debian trixie main\n",
        ));
        let picked = for_suite(&all, "bookworm");
        assert_eq!(picked.len(), 2);
        assert_eq!(
            configured_mirror(&picked, "bookworm").unwrap(),
            "http://deb.debian.org/debian"
        );
        let rendered = render_deb822(&picked);
        assert!(rendered.contains("Suites: bookworm bookworm-updates\n"));
        assert!(
            rendered.contains(
                "URIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n"
            )
        );
        assert!(!rendered.contains("nodesource") && !rendered.contains("trixie"));
    }

    #[test]
    fn no_mirror_is_a_clear_error() {
        let err = configured_mirror(&[], "bookworm").unwrap_err().to_string();
        assert!(
            err.contains("no apt source for Debian bookworm") && err.contains(MIRROR_ENV),
            "{err}"
        );
    }

    #[test]
    fn reads_list_and_sources_files_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sources.list.d")).unwrap();
        std::fs::write(
            dir.path().join("sources.list"),
            "deb http://a/debian bookworm main\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("sources.list.d/debian.sources"), DEB822).unwrap();
        std::fs::write(
            dir.path().join("sources.list.d/x.list.disabled"),
            "deb http://no/debian bookworm main\n",
        )
        .unwrap();
        let uris: Vec<_> = read(dir.path())
            .unwrap()
            .into_iter()
            .map(|s| s.uri)
            .collect();
        assert_eq!(
            uris,
            [
                "http://a/debian",
                "http://deb.debian.org/debian",
                "http://deb.debian.org/debian-security"
            ]
        );
    }
}
