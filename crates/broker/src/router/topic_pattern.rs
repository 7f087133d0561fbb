//! Topic subscription patterns with RabbitMQ topic-exchange semantics, exactly, so a RabbitMQ
//! relay can bind them one to one.
//!
//! A routing key and a pattern are split on `.` into words (empty words count: `a..b` is three
//! words). In a pattern, a word that is exactly `*` matches exactly one word and a word that is
//! exactly `#` matches zero or more words; any other word, `a*` included, matches itself only.
//!
//! The topic table matches all its patterns at once in a word trie (`topic_trie.rs`);
//! [`TopicPattern`] matches one, and is kept (in tests) as the specification the trie is checked
//! against.

/// Whether `pattern` has a wildcard word (`*` or `#`); if not, it matches only the identical
/// routing key.
pub(crate) fn is_wildcard(pattern: &str) -> bool {
    split(pattern).any(|w| w == "*" || w == "#")
}

/// One word of a pattern.
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
enum Word {
    Literal(Box<str>),
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Any,
}

/// A parsed subscription pattern (the name after `/topic/`).
#[cfg(test)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct TopicPattern {
    words: Box<[Word]>,
}

#[cfg(test)]
impl TopicPattern {
    /// Parses a pattern; every string is a valid pattern. Returns `None` when it has no wildcard
    /// word (then it matches only the identical routing key, and is routed by exact lookup).
    pub(crate) fn parse(pattern: &str) -> Option<TopicPattern> {
        let mut has_wildcard = false;
        let mut words: Vec<Word> = Vec::new();
        for w in split(pattern) {
            let word = match w {
                "*" => Word::One,
                "#" => Word::Any,
                other => Word::Literal(other.into()),
            };
            has_wildcard |= word != Word::Literal(w.into());
            // `#.#` matches exactly what `#` matches: collapsing keeps matching linear.
            if word == Word::Any && words.last() == Some(&Word::Any) {
                continue;
            }
            words.push(word);
        }
        has_wildcard.then(|| TopicPattern {
            words: words.into_boxed_slice(),
        })
    }

    /// True if the routing key `key` (already split into words) matches.
    pub(crate) fn matches(&self, key: &[&str]) -> bool {
        let pat = &self.words;
        let (mut p, mut k) = (0, 0);
        // The last `#` seen and the key position it is currently assumed to end at.
        let mut backtrack: Option<(usize, usize)> = None;
        while k < key.len() {
            match pat.get(p) {
                Some(Word::Any) => {
                    backtrack = Some((p, k));
                    p += 1;
                }
                Some(Word::One) => {
                    p += 1;
                    k += 1;
                }
                Some(Word::Literal(w)) if **w == *key[k] => {
                    p += 1;
                    k += 1;
                }
                _ => match backtrack {
                    // Let the last `#` swallow one more word and retry from there.
                    Some((bp, bk)) => {
                        backtrack = Some((bp, bk + 1));
                        p = bp + 1;
                        k = bk + 1;
                    }
                    None => return false,
                },
            }
        }
        pat[p..].iter().all(|w| *w == Word::Any)
    }
}

/// Splits a routing key or pattern into words, as RabbitMQ does: the empty string has no words,
/// otherwise every `.` separates two (possibly empty) words.
pub(crate) fn split(key: &str) -> impl Iterator<Item = &str> {
    let empty = key.is_empty();
    key.split('.').filter(move |_| !empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, key: &str) -> bool {
        let words: Vec<&str> = split(key).collect();
        match TopicPattern::parse(pattern) {
            Some(p) => p.matches(&words),
            None => pattern == key,
        }
    }

    #[test]
    fn star_is_exactly_one_word() {
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a"));
        assert!(!m("a.*", "a.b.c"));
        assert!(m("*.b", "a.b"));
        assert!(m("*", "a"));
        assert!(!m("*", "a.b"));
        assert!(m("a.*.c", "a.x.c"));
        assert!(m("a.*", "a."), "an empty word is a word");
    }

    #[test]
    fn hash_is_zero_or_more_words() {
        assert!(m("a.#", "a"));
        assert!(m("a.#", "a.b"));
        assert!(m("a.#", "a.b.c"));
        assert!(!m("a.#", "b.a"));
        assert!(m("#", "a.b.c"));
        assert!(m("#", "a"));
        assert!(m("#.c", "c"));
        assert!(m("#.c", "a.b.c"));
        assert!(!m("#.c", "a.b.c.d"));
        assert!(m("a.#.c", "a.c"));
        assert!(m("a.#.c", "a.b.b.c"));
        assert!(m("a.#.b.#.c", "a.b.c"));
        assert!(m("a.#.b.#.c", "a.x.b.y.z.c"));
        assert!(!m("a.#.b.#.c", "a.x.y.c"));
        assert!(m("#.#", "a"));
        assert!(m("#.*", "a"));
        assert!(!m("#.*", ""));
        assert!(m("*.#", "a.b.c"));
        assert!(!m("*.#", ""));
    }

    #[test]
    fn wildcards_only_as_whole_words() {
        assert!(!is_wildcard("a*") && !is_wildcard("a.b#") && !is_wildcard(""));
        assert!(is_wildcard("a.*") && is_wildcard("#") && is_wildcard("a.#.b"));
        assert_eq!(TopicPattern::parse("a*"), None);
        assert_eq!(TopicPattern::parse("a.b#"), None);
        assert!(!m("a*", "ab"));
        assert!(m("a*", "a*"));
        assert!(m("stock.#", "stock.usd.nyse"));
        assert!(m("*.usd.*", "stock.usd.nyse"));
        assert!(!m("*.usd.*", "stock.eur.nyse"));
    }
}
