//! Ordered frame headers with first-wins lookup.

use bytestring::ByteString;

/// The headers of a frame, in wire order.
///
/// Repeated headers are kept (the spec allows them); [`Headers::get`] returns the first value,
/// which is the one the spec says is meaningful. Names and values are UTF-8 strings backed by
/// [`bytes::Bytes`]: when decoded without escapes they are slices of the input buffer.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(ByteString, ByteString)>,
}

impl Headers {
    /// The name/value pairs, for rewriting them in place (`frame::detach`).
    pub(crate) fn entries_mut(&mut self) -> &mut Vec<(ByteString, ByteString)> {
        &mut self.entries
    }

    /// No headers.
    pub const fn new() -> Self {
        Headers {
            entries: Vec::new(),
        }
    }

    /// No headers, with room for `n` before reallocating.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            entries: Vec::with_capacity(n),
        }
    }

    /// Appends a header, keeping any earlier one of the same name.
    pub fn push(&mut self, name: impl Into<ByteString>, value: impl Into<ByteString>) {
        self.entries.push((name.into(), value.into()));
    }

    /// The first value of `name` (spec: "only the first header entry should be used").
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| &**v)
    }

    /// The first value of `name`, as the shared string (cheap to clone).
    pub fn get_shared(&self, name: &str) -> Option<&ByteString> {
        self.entries.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Every value of `name`, in wire order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.entries
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| &**v)
    }

    /// True if at least one header is called `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.iter().any(|(n, _)| n == name)
    }

    /// Replaces every `name` header with a single one holding `value`, at the position of the
    /// first (or at the end if there was none).
    pub fn set(&mut self, name: impl Into<ByteString>, value: impl Into<ByteString>) {
        let name = name.into();
        let value = value.into();
        match self.entries.iter().position(|(n, _)| *n == name) {
            Some(i) => {
                self.entries[i].1 = value;
                let mut j = i + 1;
                while j < self.entries.len() {
                    if self.entries[j].0 == name {
                        self.entries.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.entries.push((name, value)),
        }
    }

    /// Removes every `name` header; returns the first removed value.
    pub fn remove(&mut self, name: &str) -> Option<ByteString> {
        let mut first = None;
        self.entries.retain_mut(|(n, v)| {
            if n == name {
                if first.is_none() {
                    first = Some(std::mem::take(v));
                }
                false
            } else {
                true
            }
        });
        first
    }

    /// Keeps only the headers for which `keep(name, value)` is true.
    pub fn retain(&mut self, mut keep: impl FnMut(&str, &str) -> bool) {
        self.entries.retain(|(n, v)| keep(n, v));
    }

    /// Every header in wire order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.entries.iter().map(|(n, v)| (&**n, &**v))
    }

    /// Every header in wire order, as shared strings.
    pub fn iter_shared(&self) -> impl ExactSizeIterator<Item = &(ByteString, ByteString)> {
        self.entries.iter()
    }

    /// The number of header lines, repeats included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<N: Into<ByteString>, V: Into<ByteString>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Headers {
            entries: iter
                .into_iter()
                .map(|(n, v)| (n.into(), v.into()))
                .collect(),
        }
    }
}

impl<N: Into<ByteString>, V: Into<ByteString>> Extend<(N, V)> for Headers {
    fn extend<I: IntoIterator<Item = (N, V)>>(&mut self, iter: I) {
        self.entries
            .extend(iter.into_iter().map(|(n, v)| (n.into(), v.into())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_wins_and_order_is_kept() {
        let mut h: Headers = [("a", "1"), ("b", "2"), ("a", "3")].into_iter().collect();
        assert_eq!(h.get("a"), Some("1"));
        assert_eq!(h.get_all("a").collect::<Vec<_>>(), ["1", "3"]);
        h.set("a", "9");
        assert_eq!(h.iter().collect::<Vec<_>>(), [("a", "9"), ("b", "2")]);
        assert_eq!(h.remove("b").as_deref(), Some("2"));
        assert_eq!(h.len(), 1);
    }
}
