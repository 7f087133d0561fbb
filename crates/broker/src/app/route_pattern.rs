//! Handler patterns: `/chat.{room}`, `/rooms/{room}/join`.
//!
//! A pattern is matched against an `/app` destination with its prefix removed. `{name}` captures
//! one or more characters up to the next `/` or `.` (or the end), so a variable is always one
//! segment of a slash- or dot-separated path, as Spring's path matchers do. Everything else must
//! match literally. A pattern with no variables matches only the identical path.

/// One piece of a compiled pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Literal(Box<str>),
    Var(Box<str>),
}

/// A compiled handler pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Pattern {
    text: Box<str>,
    pieces: Box<[Piece]>,
}

/// A pattern that cannot be matched unambiguously; registering it panics with this message, as
/// registering an invalid route does in axum.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    #[error("handler pattern {0:?} must start with '/'")]
    NoLeadingSlash(String),
    #[error("handler pattern {0:?} has an unclosed or empty {{variable}}")]
    BadVariable(String),
    #[error(
        "handler pattern {0:?}: a {{variable}} must be followed by '/', '.' or the end of the pattern"
    )]
    VariableNotAtSeparator(String),
    #[error("handler pattern {0:?} uses the variable name {1:?} twice")]
    DuplicateVariable(String, String),
}

fn is_separator(c: char) -> bool {
    c == '/' || c == '.'
}

impl Pattern {
    pub(crate) fn parse(text: &str) -> Result<Pattern, PatternError> {
        if !text.starts_with('/') {
            return Err(PatternError::NoLeadingSlash(text.to_owned()));
        }
        let mut pieces = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            match rest.find('{') {
                Some(0) => {
                    let end = rest
                        .find('}')
                        .filter(|&e| e > 1)
                        .ok_or_else(|| PatternError::BadVariable(text.to_owned()))?;
                    let name = &rest[1..end];
                    if name.contains(['{', '/', '.']) {
                        return Err(PatternError::BadVariable(text.to_owned()));
                    }
                    if pieces.contains(&Piece::Var(name.into())) {
                        return Err(PatternError::DuplicateVariable(
                            text.to_owned(),
                            name.to_owned(),
                        ));
                    }
                    rest = &rest[end + 1..];
                    if rest.chars().next().is_some_and(|c| !is_separator(c)) {
                        return Err(PatternError::VariableNotAtSeparator(text.to_owned()));
                    }
                    pieces.push(Piece::Var(name.into()));
                }
                found => {
                    let end = found.unwrap_or(rest.len());
                    if rest[..end].contains('}') {
                        return Err(PatternError::BadVariable(text.to_owned()));
                    }
                    pieces.push(Piece::Literal(rest[..end].into()));
                    rest = &rest[end..];
                }
            }
        }
        Ok(Pattern {
            text: text.into(),
            pieces: pieces.into_boxed_slice(),
        })
    }

    /// The pattern as registered.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// True when the pattern has no variables.
    pub(crate) fn is_literal(&self) -> bool {
        self.pieces.iter().all(|p| matches!(p, Piece::Literal(_)))
    }

    /// Matches `path`; returns the captured variables in pattern order.
    pub(crate) fn matches(&self, path: &str) -> Option<Vec<(Box<str>, Box<str>)>> {
        let mut rest = path;
        let mut vars = Vec::new();
        for piece in self.pieces.iter() {
            match piece {
                Piece::Literal(lit) => rest = rest.strip_prefix(&**lit)?,
                Piece::Var(name) => {
                    let end = rest.find(is_separator).unwrap_or(rest.len());
                    if end == 0 {
                        return None;
                    }
                    vars.push((name.clone(), rest[..end].into()));
                    rest = &rest[end..];
                }
            }
        }
        rest.is_empty().then_some(vars)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        Pattern::parse(pattern)
            .unwrap()
            .matches(path)
            .map(|v| v.into_iter().map(|(k, v)| (k.into(), v.into())).collect())
    }

    fn vars(pairs: &[(&str, &str)]) -> Option<Vec<(String, String)>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn variables_capture_one_segment() {
        assert_eq!(
            m("/chat.{room}", "/chat.general"),
            vars(&[("room", "general")])
        );
        assert_eq!(m("/chat.{room}", "/chat.a.b"), None);
        assert_eq!(m("/chat.{room}", "/chat."), None);
        assert_eq!(
            m("/rooms/{room}/users/{id}", "/rooms/r1/users/42"),
            vars(&[("room", "r1"), ("id", "42")])
        );
        assert_eq!(m("/rooms/{room}/users/{id}", "/rooms/r1/users"), None);
        assert_eq!(m("/a.{x}.b", "/a.1.b"), vars(&[("x", "1")]));
        assert_eq!(m("/a.{x}.b", "/a.1.c"), None);
    }

    #[test]
    fn literals_match_exactly() {
        assert_eq!(m("/chat.join", "/chat.join"), vars(&[]));
        assert_eq!(m("/chat.join", "/chat.joined"), None);
        assert_eq!(m("/chat.join", "/chat"), None);
        assert!(Pattern::parse("/chat.join").unwrap().is_literal());
    }

    #[test]
    fn ambiguous_patterns_are_refused() {
        for bad in ["chat", "/{x}-{y}", "/{}", "/{x", "/x}", "/{x}.{x}"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
        assert!(Pattern::parse("/a.{x}").is_ok());
        assert!(Pattern::parse("/{x}").is_ok());
    }
}
