//! The trie against the one-pattern matcher it replaced (`TopicPattern`, the specification),
//! and the bounds on its work and memory.

use proptest::prelude::*;
use proptest::test_runner::RngSeed;

use super::*;
use crate::router::topic_pattern::{TopicPattern, split};

/// The values matching `key`, sorted, and the states walked.
fn matches(trie: &WordTrie<usize>, key: &str) -> (Vec<usize>, usize) {
    let mut found = Vec::new();
    let walked = trie.for_each_match(key, |&v| found.push(v));
    found.sort_unstable();
    (found, walked)
}

/// What the specification says: does `pattern` match `key`?
fn spec(pattern: &str, key: &str) -> bool {
    let words: Vec<&str> = split(key).collect();
    TopicPattern::parse(pattern).map_or(pattern == key, |p| p.matches(&words))
}

fn trie(patterns: &[&str]) -> WordTrie<usize> {
    let mut trie = WordTrie::default();
    for (i, p) in patterns.iter().enumerate() {
        trie.insert(p, i);
    }
    trie
}

#[test]
fn finds_every_matching_pattern_once() {
    let patterns = [
        "a.*", "a.#", "#", "#.#", "*.b", "#.b.#", "a.b", "a", "*", "#.*", "a.*.#", "b.#",
    ];
    let trie = trie(&patterns);
    for key in ["a.b", "a", "b", "", "a.b.c", "x.b", "a..b", "b.b.b"] {
        let want: Vec<usize> = (0..patterns.len())
            .filter(|&i| spec(patterns[i], key))
            .collect();
        assert_eq!(matches(&trie, key).0, want, "key {key:?}");
    }
}

/// Every pattern of up to four words over `a`, `*` and `#`: a walk enters more `#` nodes than
/// it scans (past [`FEW`]), and still takes each state once.
#[test]
fn every_short_pattern_agrees_with_the_specification() {
    let mut patterns = vec![String::new()];
    let mut last = vec![String::new()];
    for _ in 0..4 {
        last = (last.iter())
            .flat_map(|p| {
                ["a", "*", "#"].map(|w| {
                    if p.is_empty() {
                        w.into()
                    } else {
                        format!("{p}.{w}")
                    }
                })
            })
            .collect();
        patterns.extend(last.iter().cloned());
    }
    let trie = trie(&patterns.iter().map(String::as_str).collect::<Vec<_>>());
    for key in ["", "a", "b", "a.a", "a.b.a", "a.a.a.a.a", "b.a.b.a.b.a"] {
        let want: Vec<usize> = (0..patterns.len())
            .filter(|&i| spec(&patterns[i], key))
            .collect();
        assert_eq!(matches(&trie, key).0, want, "key {key:?}");
    }
}

#[test]
fn values_of_one_pattern_come_in_insertion_order() {
    let mut trie = WordTrie::default();
    for v in [3, 1, 2] {
        trie.insert("a.#", v);
    }
    let mut found = Vec::new();
    trie.for_each_match("a.b", |&v| found.push(v));
    assert_eq!(found, [3, 1, 2]);
    assert_eq!(trie.len(), 3);
    assert!(trie.contains("a.#") && !trie.contains("a") && !trie.contains("a.*"));
}

#[test]
fn removing_prunes_bare_nodes_and_keeps_the_rest() {
    let mut trie = trie(&["a.b.#", "a.b.c", "a.*", "#.x"]);
    assert!(!trie.remove("a.b", |_| true), "a prefix, no values");
    assert!(!trie.remove("a.b.c", |&v| v == 0), "not that value");
    assert!(trie.remove("a.b.c", |&v| v == 1));
    assert!(!trie.contains("a.b.c"));
    assert_eq!(matches(&trie, "a.b.c").0, [0]);
    assert_eq!(matches(&trie, "a.q").0, [2]);
    for (pattern, v) in [("a.b.#", 0), ("a.*", 2), ("#.x", 3)] {
        assert!(trie.remove(pattern, |&x| x == v));
    }
    assert!(trie.is_empty());
    assert_eq!(trie.nodes.len(), 1, "only the root is left");
    assert!(trie.free.is_empty());
    assert_eq!(matches(&trie, "a.b.c").0, Vec::<usize>::new());
}

#[test]
fn many_literal_children_are_indexed_and_still_removable() {
    let names: Vec<String> = (0..3 * FEW).map(|i| format!("s.w{i}.#")).collect();
    let patterns: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut trie = trie(&patterns);
    let s = trie.find("s").unwrap();
    assert!(matches!(trie.node(s).literals, Literals::Many(_)));
    for i in 0..patterns.len() {
        assert_eq!(matches(&trie, &format!("s.w{i}.z")).0, [i]);
    }
    for (i, p) in patterns.iter().enumerate() {
        assert!(trie.remove(p, |&v| v == i));
    }
    assert_eq!(trie.nodes.len(), 1);
}

#[test]
fn freed_nodes_are_reused() {
    let mut trie = trie(&["keep.#"]);
    for round in 0..10 {
        trie.insert("a.b.c.*", round);
        assert!(trie.remove("a.b.c.*", |_| true));
    }
    // The root, `keep`, its `#`, and one path of four reused ever since.
    assert_eq!(trie.nodes.len(), 3 + 4);
}

/// `#`s in a row or apart: each `(#, i)` is walked once, so the work grows with the key's
/// words times the pattern's, not exponentially.
#[test]
fn hashes_walk_each_state_once() {
    let key = vec!["a"; 1000].join(".");
    for pattern in ["#.#.#.#.a", "#.a.#.a.#.a.#", "#.*.#.*.#"] {
        let trie = trie(&[pattern]);
        let (found, walked) = matches(&trie, &key);
        assert_eq!(found, [0], "{pattern}");
        let states = (split(pattern).count() + 1) * (1000 + 1);
        assert!(walked <= states, "{pattern}: {walked} states walked");
    }
}

/// Issue 12's hostile client: 1,023 subscriptions to `#.a.a…a.b` (about 4 KB, 2,048 words)
/// and one publish to an 8 KB key of 4,096 words. The walk is bounded by the pattern's words
/// times the key's, whatever the number of subscriptions (the old table matched each one:
/// 6.6 s of CPU); the destination limits keep both factors small in practice.
#[test]
fn the_hostile_pattern_costs_one_walk_whatever_the_subscriptions() {
    let pattern = format!("#.{}b", "a.".repeat(2046));
    let key = vec!["a"; 4096].join(".");
    assert!(pattern.len() > 4000 && key.len() > 8000);
    let mut trie = WordTrie::default();
    trie.insert(&pattern, 0);
    let (_, once) = matches(&trie, &key);
    for v in 1..1023 {
        trie.insert(&pattern, v);
    }
    let (found, walked) = matches(&trie, &key);
    assert!(found.is_empty());
    assert_eq!(walked, once, "the subscriptions share one path");
    assert!(walked <= 2049 * 4097, "{walked}");
    assert_eq!(trie.nodes.len(), 1 + 2048, "one node per word, once");
}

/// Patterns over a small alphabet, so they collide, share prefixes and match often.
fn pattern() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec!["a", "b", "", "*", "#"]);
    prop::collection::vec(word, 0..6).prop_map(|w| w.join("."))
}

fn key() -> impl Strategy<Value = String> {
    let word = prop::sample::select(vec!["a", "b", ""]);
    prop::collection::vec(word, 0..7).prop_map(|w| w.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 500,
        rng_seed: RngSeed::Fixed(0x7213),
        ..ProptestConfig::default()
    })]

    /// Whatever was inserted and removed, the trie finds exactly the values whose pattern the
    /// specification matches, each once.
    #[test]
    fn agrees_with_the_one_pattern_matcher(
        patterns in prop::collection::vec(pattern(), 1..16),
        removed in prop::collection::vec(any::<bool>(), 16),
        keys in prop::collection::vec(key(), 1..8),
    ) {
        let mut trie = WordTrie::default();
        for (i, p) in patterns.iter().enumerate() {
            trie.insert(p, i);
        }
        for (i, p) in patterns.iter().enumerate() {
            if removed[i] {
                prop_assert!(trie.remove(p, |&v| v == i));
            }
        }
        let kept = |i: &usize| !removed[*i];
        prop_assert_eq!(trie.len(), (0..patterns.len()).filter(kept).count());
        for key in &keys {
            let want: Vec<usize> = (0..patterns.len())
                .filter(kept)
                .filter(|&i| spec(&patterns[i], key))
                .collect();
            prop_assert_eq!(matches(&trie, key).0, want, "key {:?}", key);
        }
        for (i, p) in patterns.iter().enumerate() {
            if !removed[i] {
                prop_assert!(trie.remove(p, |&v| v == i));
            }
        }
        prop_assert!(trie.is_empty());
        prop_assert_eq!(trie.nodes.len(), 1);
    }
}

/// The figure the module doc gives, which the memory of a pattern subscription follows.
#[test]
#[cfg(target_pointer_width = "64")]
fn a_node_is_64_bytes() {
    assert_eq!(
        std::mem::size_of::<Node<crate::router::topic_table::Subscriber>>(),
        64
    );
}
