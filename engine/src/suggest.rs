//! "did you mean": the closest known name to a misspelt one, in bounded work.
//!
//! A distance costs the product of the two lengths, so comparing every undefined name with
//! every defined one (or two 200 KB names) is quadratic. Instead each word is compared with
//! its neighbours in sorted order, forwards and backwards (a typo leaves the start or the end
//! of a name intact), then with names of similar length that pass a cheap letter-count
//! check: at most [`MAX_CANDIDATES`] distances a word, and at most [`MAX_CELLS`] of work for
//! a whole validation; past that, errors come without hints.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;

/// Longer words get no suggestion: typos are made in names people type.
const MAX_LEN: usize = 64;
/// Neighbours in each sorted order, on each side, compared first.
const NEIGHBOURS: usize = 4;
/// Distances computed for one word, at most.
const MAX_CANDIDATES: usize = 32;
/// Names looked at (by the letter check) for one word, at most.
const MAX_EXAMINED: usize = 256;
/// Work (distance-table cells, about a letter each for a letter check) for one
/// [`Suggester`], at most: a few milliseconds.
const MAX_CELLS: usize = 1 << 22;

/// The edit distance below which `known`, of `len` characters, is suggested.
fn max_distance(len: usize) -> usize {
    2.max(len / 4)
}

/// Known names, indexed by length (in characters) and in order, forwards and reversed.
pub(crate) struct Suggester<'a> {
    by_len: HashMap<usize, Vec<&'a str>>,
    sorted: BTreeSet<&'a str>,
    reversed: BTreeMap<String, &'a str>,
    cells_left: usize,
}

/// One word's search: the best so far and what it may still spend.
struct Search<'w, 'a> {
    word: &'w str,
    len: usize,
    letters: Letters,
    best: Option<(usize, &'a str)>,
    tried: usize,
    examined: usize,
}

impl<'a> Suggester<'a> {
    pub fn new() -> Self {
        Suggester {
            by_len: HashMap::new(),
            sorted: BTreeSet::new(),
            reversed: BTreeMap::new(),
            cells_left: MAX_CELLS,
        }
    }

    pub fn add(&mut self, name: &'a str) {
        let len = name.chars().count();
        if len <= MAX_LEN + max_distance(MAX_LEN) && self.sorted.insert(name) {
            self.by_len.entry(len).or_default().push(name);
            self.reversed.insert(name.chars().rev().collect(), name);
        }
    }

    /// ` (did you mean `x`?)` when `word` is a near miss (or a clear abbreviation) of a known
    /// name; empty otherwise.
    pub fn hint(&mut self, word: &str) -> String {
        self.closest(word)
            .map(|k| format!(" (did you mean `{k}`?)"))
            .unwrap_or_default()
    }

    fn closest(&mut self, word: &str) -> Option<&'a str> {
        if word.len() > 4 * MAX_LEN {
            return None;
        }
        let len = word.chars().count();
        if len > MAX_LEN {
            return None;
        }
        let from = (Bound::Included(word), Bound::Unbounded);
        let after: Vec<&'a str> = self
            .sorted
            .range::<str, _>(from)
            .take(NEIGHBOURS)
            .copied()
            .collect();
        // `exec` for `execute`: close enough, though three edits away.
        let abbreviation = after
            .first()
            .filter(|k| word.len() >= 3 && k.starts_with(word) && **k != word)
            .map(|k| (1, *k));
        let mut search = Search {
            word,
            len,
            letters: Letters::of(word),
            best: abbreviation,
            tried: 0,
            examined: 0,
        };
        let to = (Bound::Unbounded, Bound::Excluded(word));
        let before = self
            .sorted
            .range::<str, _>(to)
            .rev()
            .take(NEIGHBOURS)
            .copied();
        let reversed: String = word.chars().rev().collect();
        let around = |r: &BTreeMap<String, &'a str>| -> Vec<&'a str> {
            let from = (Bound::Included(reversed.as_str()), Bound::Unbounded);
            let to = (Bound::Unbounded, Bound::Excluded(reversed.as_str()));
            let after = r.range::<str, _>(from).take(NEIGHBOURS);
            let before = r.range::<str, _>(to).rev().take(NEIGHBOURS);
            after.chain(before).map(|(_, k)| *k).collect()
        };
        let near: Vec<&'a str> = after
            .iter()
            .copied()
            .chain(before)
            .chain(around(&self.reversed))
            .collect();
        for known in near {
            if !self.consider(&mut search, known) {
                return search.best.map(|(_, k)| k);
            }
        }
        // Nearest lengths first, so the cap drops the least likely names.
        for delta in 0..=max_distance(MAX_LEN) {
            for known_len in lengths(len, delta) {
                let bucket = match self.by_len.get(&known_len) {
                    Some(b) if delta <= max_distance(known_len) => b.clone(),
                    _ => continue,
                };
                for known in bucket.into_iter().take(MAX_EXAMINED) {
                    if !self.consider(&mut search, known) {
                        return search.best.map(|(_, k)| k);
                    }
                }
            }
        }
        search.best.map(|(_, k)| k)
    }

    /// Compares `known` with the word if the caps allow; false once they are reached.
    fn consider(&mut self, search: &mut Search<'_, 'a>, known: &'a str) -> bool {
        // The letter check costs about a cell a letter, plus a fixed part.
        let cost = known.len() + 16;
        if search.tried == MAX_CANDIDATES
            || search.examined == MAX_EXAMINED
            || cost > self.cells_left
        {
            return false;
        }
        search.examined += 1;
        self.cells_left -= cost;
        let known_len = known.chars().count();
        let bound = max_distance(known_len).min(known_len.saturating_sub(1));
        if known_len.abs_diff(search.len) > bound || search.letters.lower_bound(known) > bound {
            return true;
        }
        let cells = (search.len + 1) * (known_len + 1);
        if cells > self.cells_left {
            return false;
        }
        self.cells_left -= cells;
        search.tried += 1;
        let d = strsim::osa_distance(search.word, known);
        if d <= bound && search.best.is_none_or(|b| (d, known) < b) {
            search.best = Some((d, known));
        }
        true
    }
}

/// `len - delta` and `len + delta` (once when `delta` is 0), skipping 0.
fn lengths(len: usize, delta: usize) -> impl Iterator<Item = usize> {
    let below = len.checked_sub(delta).filter(|&l| l > 0 && delta > 0);
    below.into_iter().chain(std::iter::once(len + delta))
}

/// How often each ASCII character occurs in a word: an edit changes these counts by at
/// most two in all, so half their difference is a lower bound on the distance.
struct Letters(Option<([u16; 128], usize)>);

impl Letters {
    fn of(word: &str) -> Self {
        Letters(word.is_ascii().then(|| {
            let mut counts = [0u16; 128];
            for b in word.bytes() {
                counts[usize::from(b)] += 1;
            }
            (counts, word.len())
        }))
    }

    fn lower_bound(&self, other: &str) -> usize {
        let Some(mine) = &self.0 else { return 0 };
        if !other.is_ascii() {
            return 0;
        }
        let (mut counts, mine_len) = *mine;
        let (mut matched, mut extra) = (0usize, 0usize);
        for b in other.bytes() {
            match counts[usize::from(b)].checked_sub(1) {
                Some(c) => {
                    counts[usize::from(b)] = c;
                    matched += 1;
                }
                None => extra += 1,
            }
        }
        (mine_len - matched + extra).div_ceil(2)
    }
}

/// [`Suggester::hint`] against a short fixed list (keys, step types).
pub(crate) fn did_you_mean(word: &str, known: &[&'static str]) -> String {
    let mut suggester = Suggester::new();
    for k in known {
        suggester.add(k);
    }
    suggester.hint(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_misses_and_abbreviations() {
        let known = ["print", "execute", "shell", "environment"];
        assert_eq!(did_you_mean("prnt", &known), " (did you mean `print`?)");
        assert_eq!(did_you_mean("exec", &known), " (did you mean `execute`?)");
        assert_eq!(
            did_you_mean("enviornment", &known),
            " (did you mean `environment`?)"
        );
        assert_eq!(did_you_mean("parallel", &known), "");
        assert_eq!(did_you_mean("x", &["y"]), "");
    }

    #[test]
    fn ties_go_to_the_first_alphabetically() {
        assert_eq!(did_you_mean("ab", &["xb", "ax"]), " (did you mean `ax`?)");
    }

    #[test]
    fn long_words_are_not_compared() {
        let long = "a".repeat(100_000);
        let mut s = Suggester::new();
        s.add(&long);
        s.add("abc");
        assert_eq!(s.hint(&format!("{long}b")), "");
        assert_eq!(s.cells_left, MAX_CELLS, "no distance was computed");
    }

    #[test]
    fn letter_counts_bound_the_distance() {
        assert_eq!(Letters::of("abcd").lower_bound("abcd"), 0);
        assert_eq!(Letters::of("abcd").lower_bound("dcba"), 0);
        assert_eq!(Letters::of("abcd").lower_bound("abce"), 1);
        assert_eq!(Letters::of("abcd").lower_bound("wxyz"), 4);
        assert_eq!(Letters::of("ab").lower_bound("abcde"), 2);
    }

    #[test]
    fn work_is_capped() {
        // Thousands of same-length names that pass the letter check.
        let names: Vec<String> = (0..5000).map(|i| format!("v{i:05}")).collect();
        let mut s = Suggester::new();
        for n in &names {
            s.add(n);
        }
        let most = MAX_CANDIDATES * 7 * 7 + MAX_EXAMINED * (6 + 16);
        let before = s.cells_left;
        assert!(s.hint("v0000x").contains("did you mean `v0000"));
        assert!(before - s.cells_left <= most);
        // Words unlike every name still look at no more than MAX_EXAMINED names.
        let before = s.cells_left;
        assert_eq!(s.hint("zzzzzz"), "");
        assert!(before - s.cells_left <= MAX_EXAMINED * (6 + 16));
        for i in 0..20_000 {
            s.hint(&format!("w{i:05}"));
        }
        assert!(s.cells_left < most, "the budget ran out");
        // A typo near the start: found through the reversed order.
        let names: Vec<String> = (0..5000).map(|i| format!("name{i:05}")).collect();
        let mut t = Suggester::new();
        for n in &names {
            t.add(n);
        }
        assert_eq!(t.hint("nmae04321"), " (did you mean `name04321`?)");
        // Equally close (one edit, or an abbreviation): the first in order.
        assert_eq!(t.hint("name0432"), " (did you mean `name00432`?)");
    }
}
