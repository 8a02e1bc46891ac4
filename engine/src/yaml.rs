//! YAML text → a small tree of nodes with positions, straight from parser events.
//!
//! We read the event stream of granit-parser (the parser under serde-saphyr, re-exported
//! by it) rather than deserializing through serde: a workflow needs no type inference
//! (every scalar is text, `0.1` included), and skipping serde's per-node machinery makes
//! large workflows parse several times faster.

use std::borrow::Cow;
use std::collections::HashMap;

use serde_saphyr::granit_parser::{Event, Parser, ScalarStyle, ScanError};

use crate::error::{Pos, Problem};

/// Deeper nesting than any workflow needs; bounds memory and work on hostile input.
const MAX_DEPTH: usize = 64;

pub(crate) struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

/// Borrows scalars from the input where the parser can (no escapes): fewer allocations.
pub(crate) enum Node<'a> {
    Null,
    /// Any scalar, as text (plain scalars are not typed: `0.10` stays `0.10`).
    Str(Cow<'a, str>),
    Seq(Vec<Spanned<Node<'a>>>),
    Map(Vec<(Spanned<Node<'a>>, Spanned<Node<'a>>)>),
}

impl Clone for Spanned<Node<'_>> {
    fn clone(&self) -> Self {
        let value = match &self.value {
            Node::Null => Node::Null,
            Node::Str(s) => Node::Str(s.clone()),
            Node::Seq(items) => Node::Seq(items.clone()),
            Node::Map(entries) => Node::Map(entries.clone()),
        };
        Spanned {
            value,
            pos: self.pos,
        }
    }
}

enum Frame<'a> {
    Seq(Spanned<Vec<Spanned<Node<'a>>>>, usize),
    Map(
        Spanned<Vec<(Spanned<Node<'a>>, Spanned<Node<'a>>)>>,
        Option<Spanned<Node<'a>>>,
        usize,
    ),
}

fn at(marker: &serde_saphyr::granit_parser::Marker) -> Pos {
    // Lines are 1-based, columns 0-based (characters) in granit.
    Pos::new(marker.line() as u64, marker.col() as u64 + 1)
}

fn scan_problem(err: &ScanError) -> Problem {
    Problem::at(at(err.marker()), format!("not valid YAML: {}", err.info()))
}

/// What a copied node counts against the alias budget besides its text: about what the
/// node and the string made from it take in memory.
const NODE_BYTES: usize = 32;

/// Aliases (and the anchors they copy from) may produce at most this many times the text…
pub(crate) const ALIAS_BUDGET_FACTOR: usize = 4;
/// …or this much, whichever is more, counting scalar bytes and [`NODE_BYTES`] a node.
pub(crate) const ALIAS_BUDGET_MIN: usize = 64 * 1024;

/// Bytes a copy of `node` produces: its scalars' text plus [`NODE_BYTES`] a node.
fn weight(node: &Spanned<Node<'_>>) -> usize {
    NODE_BYTES
        + match &node.value {
            Node::Null => 0,
            Node::Str(s) => s.len(),
            Node::Seq(items) => items.iter().map(weight).sum(),
            Node::Map(entries) => entries.iter().map(|(k, v)| weight(k) + weight(v)).sum(),
        }
}

/// Bytes that anchors and aliases may still copy. Each alias is a copy, so a small text
/// can name a huge tree (a "billion laughs"); charging before copying keeps the work
/// linear in the text and the failure fast.
struct AliasBudget {
    limit: usize,
    used: usize,
}

impl AliasBudget {
    fn for_text(text: &str) -> Self {
        AliasBudget {
            limit: (text.len().saturating_mul(ALIAS_BUDGET_FACTOR)).max(ALIAS_BUDGET_MIN),
            used: 0,
        }
    }

    fn charge(&mut self, bytes: usize, pos: Pos) -> Result<(), Problem> {
        self.used = self.used.saturating_add(bytes);
        if self.used <= self.limit {
            return Ok(());
        }
        Err(Problem::at(
            pos,
            format!(
                "YAML anchors and aliases expand to more than {} bytes ({}× the text, at least {} KiB); write the repeated parts out, or repeat less",
                self.limit,
                ALIAS_BUDGET_FACTOR,
                ALIAS_BUDGET_MIN / 1024
            ),
        ))
    }
}

/// YAML forbids repeated keys; silently keeping one would hide a mistake.
fn check_duplicates(entries: &[(Spanned<Node<'_>>, Spanned<Node<'_>>)]) -> Result<(), Problem> {
    let mut seen: HashMap<&str, Pos> = HashMap::with_capacity(entries.len());
    for (key, _) in entries {
        if let Node::Str(name) = &key.value
            && let Some(first) = seen.insert(name.as_ref(), key.pos)
        {
            let first = match (first.line(), first.column()) {
                (Some(l), Some(c)) => format!(" (first at {l}:{c})"),
                _ => String::new(),
            };
            return Err(Problem::at(
                key.pos,
                format!("not valid YAML: duplicate key `{name}`{first}"),
            ));
        }
    }
    Ok(())
}

/// The single document in `text`; `Node::Null` when it holds no content.
pub(crate) fn read(text: &str) -> Result<Spanned<Node<'_>>, Problem> {
    let mut stack: Vec<Frame> = Vec::new();
    let mut root = None;
    // Anchored nodes with their weights.
    let mut anchors: HashMap<usize, (Spanned<Node<'_>>, usize)> = HashMap::new();
    let mut budget = AliasBudget::for_text(text);
    let mut documents = 0;
    for event in Parser::new_from_str(text) {
        let (event, span) = event.map_err(|e| scan_problem(&e))?;
        let pos = at(&span.start);
        let (node, anchor) = match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(Problem::at(
                        pos,
                        "a second YAML document (`---`): a workflow file holds one; run the documents of `roiergasias split` one at a time",
                    ));
                }
                continue;
            }
            Event::Scalar(value, style, anchor, _) => {
                let null = style == ScalarStyle::Plain
                    && matches!(&*value, "" | "~" | "null" | "Null" | "NULL");
                let node = if null { Node::Null } else { Node::Str(value) };
                (Spanned { value: node, pos }, anchor)
            }
            Event::SequenceStart(_, anchor, _) | Event::MappingStart(_, anchor, _) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(Problem::at(
                        pos,
                        format!("nested deeper than {MAX_DEPTH} levels"),
                    ));
                }
                // Capacity 1: most workflow mappings and lists hold one or two entries, and
                // Vec's default first growth to 4 made the tree several times larger.
                stack.push(if matches!(event, Event::SequenceStart(..)) {
                    Frame::Seq(
                        Spanned {
                            value: Vec::with_capacity(1),
                            pos,
                        },
                        anchor,
                    )
                } else {
                    Frame::Map(
                        Spanned {
                            value: Vec::with_capacity(1),
                            pos,
                        },
                        None,
                        anchor,
                    )
                });
                continue;
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq(seq, anchor)) => (
                    Spanned {
                        value: Node::Seq(seq.value),
                        pos: seq.pos,
                    },
                    anchor,
                ),
                Some(Frame::Map(map, _, anchor)) => {
                    check_duplicates(&map.value)?;
                    (
                        Spanned {
                            value: Node::Map(map.value),
                            pos: map.pos,
                        },
                        anchor,
                    )
                }
                None => continue,
            },
            Event::Alias(id) => {
                let Some((target, size)) = anchors.get(&id) else {
                    return Err(Problem::at(pos, "alias to an unknown anchor"));
                };
                budget.charge(*size, pos)?;
                let mut copy = target.clone();
                copy.pos = pos;
                (copy, 0)
            }
            _ => continue,
        };
        if anchor != 0 {
            // Keeping the anchored node is a copy too (nested anchors would copy a subtree
            // once per level).
            let size = weight(&node);
            budget.charge(size, node.pos)?;
            anchors.insert(anchor, (node.clone(), size));
        }
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq(seq, _)) => seq.value.push(node),
            Some(Frame::Map(_, key @ None, _)) => *key = Some(node),
            Some(Frame::Map(map, key, _)) => {
                if let Some(k) = key.take() {
                    map.value.push((k, node));
                }
            }
        }
    }
    Ok(root.unwrap_or(Spanned {
        value: Node::Null,
        pos: Pos::UNKNOWN,
    }))
}
