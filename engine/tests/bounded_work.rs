//! Property: for random and adversarial workflows up to 512 KiB (what a Workflow object may
//! hold), parse + validate + plan + any one split stay within a fixed multiple of the input's
//! size in what they allocate (peak live heap, from a counting allocator) and in what they
//! output (the split's YAML or the error text), and finish (a generous hang guard).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use proptest::prelude::*;

/// Peak heap and output, at most this many times the input (or [`FLOOR`], if larger). The
/// densest input (one-letter flow items, `[a,a,…]`) takes about 40×: two bytes of text become
/// a tree node (40 bytes), a `String` (24 + 1) and a position (8).
const HEAP_FACTOR: usize = 64;
const OUTPUT_FACTOR: usize = 32;
/// Small inputs may use the alias budget's minimum (64 KiB), whatever their size.
const FLOOR: usize = 16 * 1024;
const MAX_INPUT: usize = 512 * 1024;
const HANG_GUARD: Duration = Duration::from_secs(60);

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; it only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, layout, new) };
        if !q.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new);
        }
        q
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// Runs `f` and returns its result with the peak heap above what was live when it started.
/// Only one test in this binary, so no other thread allocates meanwhile (proptest runs cases
/// on the test's thread).
fn measure<T>(f: impl FnOnce() -> T) -> (T, usize) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    let out = f();
    (out, PEAK.load(Relaxed).saturating_sub(base))
}

/// What the operator does with a spec: parse and validate, plan, build split `pick` (modulo
/// the count) and render it; the output is its YAML, or the error text.
fn work(text: &str, pick: usize) -> usize {
    match roiergasias_engine::parse(text) {
        Err(e) => e.display_for("workflowYAML.yaml").len(),
        Ok(workflow) => {
            let plan = roiergasias_engine::plan(&workflow);
            let index = pick % plan.len() + 1;
            let split = roiergasias_engine::split_at(&workflow, index).expect("planned");
            split.workflow.to_yaml().len()
        }
    }
}

/// Appends `unit(i)` for i = 0, 1, … while the text stays under `size` and `unit` gives text.
fn fill(mut text: String, size: usize, end: &str, unit: impl Fn(usize) -> String) -> String {
    for i in 0.. {
        let next = unit(i);
        if next.is_empty() || text.len() + next.len() + end.len() > size {
            break;
        }
        text.push_str(&next);
    }
    text.push_str(end);
    text
}

/// Workflows shaped to be expensive, each of about `size` bytes; `k` varies the shape.
fn adversarial(kind: usize, size: usize, k: usize) -> String {
    let head = "version: 0.1\n";
    match kind {
        // A scalar of k bytes, aliased as often as fits.
        0 => fill(
            format!(
                "{head}environment: [x: &x \"{}\"]\ntask: [sequential: [print: [",
                "y".repeat(k % 4096)
            ),
            size,
            "a]]]\n",
            |_| "*x,".into(),
        ),
        // A billion laughs of fan-out 2 to 17.
        1 => {
            let fan = 2 + k % 16;
            let mut t = format!("{head}a0: &a0 [{}]\n", vec!["x"; fan].join(","));
            let mut i = 1;
            while t.len() < size.saturating_sub(200) && i < 40 {
                let refs = vec![format!("*a{}", i - 1); fan].join(",");
                t.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
                i += 1;
            }
            t + &format!("task: [sequential: [print: *a{}]]\n", i - 1)
        }
        // One-letter flow items: the most nodes a byte.
        2 => fill(
            format!("{head}task: [sequential: [print: ["),
            size,
            "a]]]\n",
            |_| "a,".into(),
        ),
        // Tasks on two nodes, each setting its own variable: split grows quadratically.
        3 => fill(format!("{head}task:\n"), size, "", |i| {
            format!(
                "- {{node: n{}, sequential: [environment: [v{i}: \"{}\"]]}}\n",
                i % 2,
                "v".repeat(k % 600)
            )
        }),
        // Defined names and references to near misses of them.
        4 => {
            let names = 1 + k % 8000;
            let mut t = fill(format!("{head}environment:\n"), size / 3, "", |i| {
                if i < names {
                    format!("  - name{i:05}: x\n")
                } else {
                    String::new()
                }
            });
            t.push_str("task:\n  - sequential:\n");
            fill(t, size, "", |i| {
                format!("      - print: [\"{{{{env:nmae{:05}}}}}\"]\n", i % names)
            })
        }
        // Unknown keys, one problem each.
        5 => fill(
            format!("{head}task: [{{"),
            size,
            "sequential: []}]\n",
            |i| format!("k{i}, "),
        ),
        // Escape-heavy values: each control character becomes six bytes in YAML.
        6 => fill(
            format!("{head}task: [sequential: [print: ["),
            size,
            "a]]]\n",
            |_| "\"\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\",".into(),
        ),
        // Deep nesting, and a long name.
        _ => {
            let depth = k % 70;
            let name = "n".repeat(size / 2);
            format!(
                "{head}environment:\n  - ? {name}\n    : x\ntask: [sequential: [print: {}\"{{{{env:{name}x}}}}\"{}]]\n",
                "[".repeat(depth),
                "]".repeat(depth)
            )
        }
    }
}

/// A random workflow as text: valid-looking lines, then mutated with YAML's special characters.
fn random_text() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        Just("version: 0.1\n".to_owned()),
        Just("task:\n".to_owned()),
        Just("environment:\n".to_owned()),
        "  - (node: n[0-9]\n    )?sequential:\n".prop_map(|s| s.replace("(", "").replace(")?", "")),
        "      - (print|execute|shell): \\[\"[a-z {}:env\\\\]{0,20}\"\\]\n",
        "      - environment: \\[[a-z]{1,3}: \"[a-z{}:]{0,12}\"\\]\n",
        "[ -~]{0,30}\n",
        Just("  - &a [print: [x]]\n".to_owned()),
        Just("  - *a\n".to_owned()),
    ];
    prop::collection::vec(line, 1..200).prop_map(|lines| lines.concat())
}

fn check(text: &str, pick: usize) -> Result<(), TestCaseError> {
    prop_assume!(text.len() <= MAX_INPUT);
    let started = Instant::now();
    let (output, peak) = measure(|| work(text, pick));
    let allowed = text.len().max(FLOOR);
    prop_assert!(
        started.elapsed() < HANG_GUARD,
        "took {:?}",
        started.elapsed()
    );
    prop_assert!(
        peak <= HEAP_FACTOR * allowed,
        "{} bytes of input: peak heap {peak} ({:.1}×)",
        text.len(),
        peak as f64 / text.len() as f64
    );
    prop_assert!(
        output <= OUTPUT_FACTOR * allowed,
        "{} bytes of input: {output} bytes of output",
        text.len()
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn parse_validate_plan_and_one_split_are_linear(
        kind in 0usize..8,
        // Log-uniform sizes from 1 KiB to 512 KiB: mostly small, some at the limit.
        size_log in 10u32..=19,
        k in any::<usize>(),
        pick in any::<usize>(),
        random in random_text(),
    ) {
        let size = (1usize << size_log) - 64;
        check(&adversarial(kind, size, k), pick)?;
        check(&random, pick)?;
    }
}
