//! Wildcard topic patterns as a word trie: one walk per publish finds every matching pattern,
//! whatever the number of patterns held.
//!
//! A pattern is a path from the root, one node per word: a literal word, `*` (exactly one key
//! word) or `#` (zero or more key words). Patterns sharing a prefix share its nodes, and a node
//! holds the values (subscribers) of the pattern that ends there.
//!
//! Matching walks states `(node, i)`: "the path to `node` matched the first `i` key words".
//! From `(node, i)` the key's next word is looked up among the literal children (a hash lookup
//! past a few of them), the `*` child takes one word, and the `#` child takes any number: it
//! yields `(#, j)` for every `j ≥ i`. So the work is bounded by the states reached, which are
//! the matching branches times the key's words, never the patterns held. Each `(node, i)` is
//! taken at most once per publish: below `#` nodes the same state could be reached once per way
//! of splitting the key among them (for `#.#.#.a`, the key's length to the third power), so
//! each `#` node remembers the lowest `i` it was entered at and only expands what is new.
//! Without a `#` above it, a node's depth is the number of words matched, so it is reached once.
//!
//! Nodes live in one arena indexed by `u32` (64 bytes a node, plus its word in the parent's
//! index), so the walk keeps no borrows, removing a pattern prunes its bare nodes bottom-up
//! without recursion, and an emptied trie gives its memory back.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;

use super::topic_pattern::split;

/// A node's index in the arena.
type NodeId = u32;

/// The root: the empty pattern, and where every walk starts.
const ROOT: NodeId = 0;

/// Literal children a node scans in order before it indexes them in a map: a chain node of a
/// long pattern has one, and comparing a few words costs less than hashing the key word.
const FEW: usize = 8;

/// A node's literal children, by word.
#[derive(Debug)]
enum Literals {
    /// Up to [`FEW`], compared one by one.
    Few(Vec<(Box<str>, NodeId)>),
    /// More (a common prefix with many branches: `prices.<symbol>.#`).
    #[expect(
        clippy::box_collection,
        reason = "boxed, the map costs every node 8 bytes instead of 48: most have a few children"
    )]
    Many(Box<HashMap<Box<str>, NodeId>>),
}

impl Literals {
    fn get(&self, word: &str) -> Option<NodeId> {
        match self {
            Literals::Few(few) => few.iter().find(|(w, _)| **w == *word).map(|&(_, id)| id),
            Literals::Many(map) => map.get(word).copied(),
        }
    }

    fn insert(&mut self, word: &str, id: NodeId) {
        match self {
            Literals::Few(few) if few.len() < FEW => {
                // Most nodes have one literal child (a chain): room for that one first.
                if few.is_empty() {
                    few.reserve_exact(1);
                }
                few.push((word.into(), id));
            }
            Literals::Few(few) => {
                let mut map: HashMap<_, _> = std::mem::take(few).into_iter().collect();
                map.insert(word.into(), id);
                *self = Literals::Many(Box::new(map));
            }
            Literals::Many(map) => {
                map.insert(word.into(), id);
            }
        }
    }

    fn remove(&mut self, word: &str) {
        match self {
            Literals::Few(few) => few.retain(|(w, _)| **w != *word),
            Literals::Many(map) => {
                map.remove(word);
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            Literals::Few(few) => few.is_empty(),
            Literals::Many(map) => map.is_empty(),
        }
    }
}

#[derive(Debug)]
struct Node<T> {
    literals: Literals,
    /// The `*` child.
    one: Option<NodeId>,
    /// The `#` child.
    any: Option<NodeId>,
    /// The values of the pattern that ends here, in insertion order.
    values: Vec<T>,
}

impl<T> Node<T> {
    fn new() -> Self {
        Node {
            literals: Literals::Few(Vec::new()),
            one: None,
            any: None,
            values: Vec::new(),
        }
    }

    /// No values and no children: a node that can go.
    fn is_bare(&self) -> bool {
        self.values.is_empty()
            && self.literals.is_empty()
            && self.one.is_none()
            && self.any.is_none()
    }

    /// The child for one pattern word.
    fn child(&self, word: &str) -> Option<NodeId> {
        match word {
            "*" => self.one,
            "#" => self.any,
            literal => self.literals.get(literal),
        }
    }
}

/// Values (subscribers) keyed by topic pattern, found by routing key.
#[derive(Debug)]
pub(crate) struct WordTrie<T> {
    /// Index = [`NodeId`]; slots listed in `free` are unused.
    nodes: Vec<Node<T>>,
    free: Vec<NodeId>,
    /// Values held, all patterns together.
    len: usize,
}

impl<T> Default for WordTrie<T> {
    fn default() -> Self {
        WordTrie {
            nodes: vec![Node::new()],
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> WordTrie<T> {
    /// Values held, all patterns together.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether any value is held under exactly `pattern`.
    pub(crate) fn contains(&self, pattern: &str) -> bool {
        self.find(pattern)
            .is_some_and(|id| !self.node(id).values.is_empty())
    }

    /// Adds `value` under `pattern`, after those already there.
    pub(crate) fn insert(&mut self, pattern: &str, value: T) {
        let mut at = ROOT;
        for word in split(pattern) {
            at = match self.node(at).child(word) {
                Some(child) => child,
                None => self.add_child(at, word),
            };
        }
        self.node_mut(at).values.push(value);
        self.len += 1;
    }

    /// Removes the values under `pattern` that `which` selects, and the nodes left bare;
    /// returns whether any was removed.
    pub(crate) fn remove(&mut self, pattern: &str, mut which: impl FnMut(&T) -> bool) -> bool {
        // The path from the root, each node with the word that leads to it.
        let mut path = Vec::new();
        let mut at = ROOT;
        for word in split(pattern) {
            let Some(child) = self.node(at).child(word) else {
                return false;
            };
            path.push((word, child));
            at = child;
        }
        let values = &mut self.node_mut(at).values;
        let before = values.len();
        values.retain(|v| !which(v));
        let removed = before - values.len();
        self.len -= removed;
        // Bottom-up: each bare node leaves its parent (the previous node on the path).
        while let Some(&(word, id)) = path.last()
            && self.node(id).is_bare()
        {
            path.pop();
            let parent = path.last().map_or(ROOT, |&(_, p)| p);
            let parent = self.node_mut(parent);
            match word {
                "*" => parent.one = None,
                "#" => parent.any = None,
                literal => parent.literals.remove(literal),
            }
            self.nodes[id as usize] = Node::new();
            self.free.push(id);
        }
        // Only the root left: give back what a burst of patterns made the arena grow to.
        if self.free.len() + 1 == self.nodes.len() {
            self.nodes.truncate(1);
            self.nodes.shrink_to_fit();
            self.free = Vec::new();
        }
        removed > 0
    }

    /// Calls `found` with every value whose pattern matches the routing key `key`, each once.
    /// Returns the states walked: the work done (see the module doc for its bound).
    pub(crate) fn for_each_match(&self, key: &str, mut found: impl FnMut(&T)) -> usize {
        let reused = WALK.try_with(|walk| {
            let mut walk = walk.try_borrow_mut().ok()?;
            Some(self.walk(key, &mut walk, &mut found))
        });
        match reused {
            Ok(Some(walked)) => walked,
            // The thread is ending, or `found` matched again (it does not): fresh memory.
            _ => self.walk(key, &mut Walk::default(), &mut found),
        }
    }

    fn walk(&self, key: &str, walk: &mut Walk, found: &mut impl FnMut(&T)) -> usize {
        walk.split(key);
        let end = walk.words.len();
        walk.pending.push((ROOT, 0));
        let mut walked = 0;
        while let Some((id, i)) = walk.pending.pop() {
            walked += 1;
            let node = self.node(id);
            if i == end {
                node.values.iter().for_each(&mut *found);
            } else {
                let word = &key[walk.words[i].clone()];
                if let Some(child) = node.literals.get(word) {
                    walk.pending.push((child, i + 1));
                }
                if let Some(child) = node.one {
                    walk.pending.push((child, i + 1));
                }
            }
            if let Some(any) = node.any {
                walk.enter(any, i, end);
            }
        }
        walk.reset();
        walked
    }

    fn node(&self, id: NodeId) -> &Node<T> {
        &self.nodes[id as usize]
    }

    fn node_mut(&mut self, id: NodeId) -> &mut Node<T> {
        &mut self.nodes[id as usize]
    }

    /// The node of exactly `pattern`, if its path exists.
    fn find(&self, pattern: &str) -> Option<NodeId> {
        split(pattern).try_fold(ROOT, |at, word| self.node(at).child(word))
    }

    fn add_child(&mut self, parent: NodeId, word: &str) -> NodeId {
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                let id = NodeId::try_from(self.nodes.len()).expect("fewer than 2^32 trie nodes");
                self.nodes.push(Node::new());
                id
            }
        };
        let parent = self.node_mut(parent);
        match word {
            "*" => parent.one = Some(id),
            "#" => parent.any = Some(id),
            literal => parent.literals.insert(literal, id),
        }
        id
    }
}

/// A walk's working memory, kept per thread and reused: once warm, a publish allocates
/// nothing to match.
#[derive(Debug, Default)]
struct Walk {
    /// The key's words, as byte ranges of the key.
    words: Vec<Range<usize>>,
    /// States to walk: (node, key words its path matched).
    pending: Vec<(NodeId, usize)>,
    /// `#` nodes entered, with the lowest key index each was entered at: from there on, every
    /// `(#, j)` is already pending or walked. Scanned while there are few, as usual...
    entered: Vec<(NodeId, usize)>,
    /// ...and indexed past [`FEW`].
    entered_many: HashMap<NodeId, usize>,
}

thread_local! {
    static WALK: RefCell<Walk> = RefCell::default();
}

impl Walk {
    /// Entries a thread keeps between walks; what one long key needed beyond it is given back.
    const KEEP: usize = 256;

    /// Splits `key` into words as `topic_pattern::split` does.
    fn split(&mut self, key: &str) {
        if key.is_empty() {
            return;
        }
        let mut start = 0;
        for dot in memchr::memchr_iter(b'.', key.as_bytes()) {
            self.words.push(start..dot);
            start = dot + 1;
        }
        self.words.push(start..key.len());
    }

    /// The `#` node `any` is reached with `i` key words matched: it takes key words `i..j`
    /// for every `j` up to `end`. Each `(any, j)` becomes pending once per walk.
    fn enter(&mut self, any: NodeId, i: usize, end: usize) {
        let low = if !self.entered_many.is_empty() {
            self.entered_many.entry(any).or_insert(end + 1)
        } else {
            match self.entered.iter().position(|&(id, _)| id == any) {
                Some(at) => &mut self.entered[at].1,
                None if self.entered.len() < FEW => {
                    self.entered.push((any, end + 1));
                    &mut self.entered.last_mut().expect("just pushed").1
                }
                None => {
                    self.entered_many.extend(self.entered.drain(..));
                    self.entered_many.entry(any).or_insert(end + 1)
                }
            }
        };
        if i < *low {
            self.pending.extend((i..*low).map(|j| (any, j)));
            *low = i;
        }
    }

    fn reset(&mut self) {
        let kept = self.words.capacity().max(self.pending.capacity());
        if kept.max(self.entered_many.capacity()) > Self::KEEP {
            *self = Walk::default();
        } else {
            self.words.clear();
            self.pending.clear();
            self.entered.clear();
            self.entered_many.clear();
        }
    }
}

#[cfg(test)]
mod tests;
