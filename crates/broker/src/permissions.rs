//! Who may send to and subscribe to which destinations: ordered allow/deny rules on
//! destination patterns, per user or role, checked by the router for every client SEND and
//! SUBSCRIBE (`router/address.rs`, `Rules::permit`).
//!
//! ```toml
//! [[permissions]]
//! roles = ["user"]                     # whom it is about: `users`, `roles`, or neither (everyone)
//! allow = ["send", "subscribe"]        # or `deny = [...]`
//! destinations = ["/topic/chat.*", "/app/chat.#", "/user/{user}/#"]
//! ```
//!
//! Rules are evaluated in order; the first that is about the session, names the operation and
//! matches the destination decides. When none does, the operation is refused, with one
//! exception: a SUBSCRIBE to `/user/...` (always the subscriber's own destinations) is allowed
//! unless a rule denies it. With no rules at all ([`Permissions::default`]), every SEND and
//! SUBSCRIBE is allowed except a SEND to `/user/{name}/...`, another user's private
//! destinations.
//!
//! # Patterns
//! A pattern is a destination with wildcards: `*` matches one or more characters other than
//! `.` and `/` (one word of a routing key or a path), `#` matches any characters, none
//! included, and `{user}` matches the session's login exactly (never for an anonymous session,
//! nor for a login containing `/`, `*` or `#`, which could otherwise reach into another user's
//! destinations).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ConfigError, Principal};

/// What a permission is about, besides the destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// Sending a message to it (SEND, also `/app/...` handler destinations).
    Send,
    /// Subscribing to it.
    Subscribe,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Access::Send => "send",
            Access::Subscribe => "subscribe",
        })
    }
}

/// One rule as written in configuration. Exactly one of `allow` and `deny` is set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PermissionRule {
    /// Logins the rule is about.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<String>,
    /// Roles the rule is about (a session matches when its principal has one of them). With
    /// neither `users` nor `roles`, the rule is about every session, anonymous ones included.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// Operations allowed on `destinations`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<Access>,
    /// Operations refused on `destinations`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<Access>,
    /// Destination patterns (see the module documentation).
    pub destinations: Vec<String>,
}

impl PermissionRule {
    /// A rule allowing `access` on `destinations` to every session.
    pub fn allow<D: Into<String>>(
        access: &[Access],
        destinations: impl IntoIterator<Item = D>,
    ) -> Self {
        PermissionRule {
            allow: access.to_vec(),
            destinations: destinations.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// A rule refusing `access` on `destinations` to every session.
    pub fn deny<D: Into<String>>(
        access: &[Access],
        destinations: impl IntoIterator<Item = D>,
    ) -> Self {
        PermissionRule {
            deny: access.to_vec(),
            destinations: destinations.into_iter().map(Into::into).collect(),
            ..Default::default()
        }
    }

    /// The same rule, about these logins only.
    pub fn for_users<U: Into<String>>(mut self, users: impl IntoIterator<Item = U>) -> Self {
        self.users = users.into_iter().map(Into::into).collect();
        self
    }

    /// The same rule, about these roles only.
    pub fn for_roles<R: Into<String>>(mut self, roles: impl IntoIterator<Item = R>) -> Self {
        self.roles = roles.into_iter().map(Into::into).collect();
        self
    }
}

/// The node's permission rules, compiled. The default has no rules: see the module
/// documentation for what that allows.
#[derive(Clone, Debug, Default)]
pub struct Permissions {
    rules: Vec<Compiled>,
}

#[derive(Clone, Debug)]
struct Compiled {
    users: Vec<String>,
    roles: Vec<String>,
    allow: bool,
    access: Vec<Access>,
    patterns: Vec<Pattern>,
}

impl Permissions {
    /// Compiles `rules`; the error names the rule (counted from 1) and what is wrong with it.
    pub fn new(rules: Vec<PermissionRule>) -> Result<Self, ConfigError> {
        let mut compiled = Vec::with_capacity(rules.len());
        for (i, rule) in rules.into_iter().enumerate() {
            let bad = |reason: String| ConfigError {
                field: "permissions",
                reason: format!("rule {}: {reason}", i + 1),
            };
            let (allow, access) = match (rule.allow.is_empty(), rule.deny.is_empty()) {
                (false, true) => (true, rule.allow),
                (true, false) => (false, rule.deny),
                _ => return Err(bad("needs exactly one of `allow` and `deny`".into())),
            };
            if rule.destinations.is_empty() {
                return Err(bad("needs at least one pattern in `destinations`".into()));
            }
            let patterns = (rule.destinations.iter())
                .map(|p| Pattern::parse(p).map_err(|e| bad(format!("{p:?}: {e}"))))
                .collect::<Result<_, _>>()?;
            compiled.push(Compiled {
                users: rule.users,
                roles: rule.roles,
                allow,
                access,
                patterns,
            });
        }
        Ok(Permissions { rules: compiled })
    }

    /// True when no rule is configured (the open default).
    pub fn is_open(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether a session of `principal` may do `access` on `destination` (the destination as
    /// the client wrote it).
    pub fn allows(&self, principal: Option<&Principal>, access: Access, destination: &str) -> bool {
        let user_destination = destination.starts_with("/user/");
        if self.rules.is_empty() {
            return !(access == Access::Send && user_destination);
        }
        let login = principal.map(|p| p.name.as_str());
        for rule in &self.rules {
            if !rule.access.contains(&access) || !rule.is_about(principal) {
                continue;
            }
            if rule.patterns.iter().any(|p| p.matches(destination, login)) {
                return rule.allow;
            }
        }
        access == Access::Subscribe && user_destination
    }
}

impl Compiled {
    fn is_about(&self, principal: Option<&Principal>) -> bool {
        if self.users.is_empty() && self.roles.is_empty() {
            return true;
        }
        let Some(p) = principal else { return false };
        self.users.contains(&p.name) || self.roles.iter().any(|r| p.has_role(r))
    }
}

/// A compiled destination pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Pattern {
    tokens: Vec<Token>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    /// `*`: one or more characters other than `.` and `/`.
    Word,
    /// `#`: any characters.
    Any,
    /// `{user}`: the session's login.
    User,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, &'static str> {
        if !text.starts_with('/') && text != "#" {
            return Err("a destination pattern starts with `/` (or is `#`, everything)");
        }
        let mut tokens = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            let token = match c {
                '*' => Some(Token::Word),
                '#' => Some(Token::Any),
                '{' if rest.starts_with("{user}") => Some(Token::User),
                '{' | '}' => return Err("the only placeholder is `{user}`"),
                _ => None,
            };
            match token {
                Some(token) => {
                    if !literal.is_empty() {
                        tokens.push(Token::Literal(std::mem::take(&mut literal).into()));
                    }
                    rest = &rest[if token == Token::User { 6 } else { 1 }..];
                    tokens.push(token);
                }
                None => {
                    literal.push(c);
                    rest = &rest[c.len_utf8()..];
                }
            }
        }
        if !literal.is_empty() {
            tokens.push(Token::Literal(literal.into()));
        }
        Ok(Pattern { tokens })
    }

    /// Whether `destination` matches, `{user}` standing for `login`. Linear in the pattern's
    /// tokens times the destination's length: `reach[i]` says the tokens so far can end at
    /// byte `i`.
    fn matches(&self, destination: &str, login: Option<&str>) -> bool {
        let text = destination.as_bytes();
        let mut reach = vec![false; text.len() + 1];
        reach[0] = true;
        let mut next = vec![false; text.len() + 1];
        for token in &self.tokens {
            next.iter_mut().for_each(|r| *r = false);
            let mut any = false;
            match token {
                Token::Literal(lit) => literal_step(&reach, &mut next, text, lit.as_bytes()),
                Token::User => {
                    let Some(login) = login.filter(|l| usable_login(l)) else {
                        return false;
                    };
                    literal_step(&reach, &mut next, text, login.as_bytes());
                }
                Token::Any => {
                    let mut on = false;
                    for i in 0..reach.len() {
                        on |= reach[i];
                        next[i] = on;
                    }
                }
                Token::Word => {
                    // From a reachable start, extend over one or more word characters.
                    let mut run = false;
                    for i in 1..reach.len() {
                        let word = !matches!(text[i - 1], b'.' | b'/');
                        run = word && (run || reach[i - 1]);
                        next[i] = run;
                    }
                }
            }
            std::mem::swap(&mut reach, &mut next);
            for r in &reach {
                any |= *r;
            }
            if !any {
                return false;
            }
        }
        reach[text.len()]
    }
}

fn literal_step(reach: &[bool], next: &mut [bool], text: &[u8], literal: &[u8]) {
    for (i, _) in reach.iter().enumerate().filter(|(_, r)| **r) {
        if text[i..].starts_with(literal) {
            next[i + literal.len()] = true;
        }
    }
}

/// A login `{user}` may stand for: one that cannot reach past its own path segment.
fn usable_login(login: &str) -> bool {
    !login.is_empty() && !login.contains(['/', '*', '#'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, destination: &str) -> bool {
        Pattern::parse(pattern)
            .unwrap()
            .matches(destination, Some("alice"))
    }

    #[test]
    fn patterns() {
        assert!(matches("/topic/chat.*", "/topic/chat.general"));
        assert!(!matches("/topic/chat.*", "/topic/chat.general.x"));
        assert!(!matches("/topic/chat.*", "/topic/chat."));
        assert!(matches("/topic/#", "/topic/a.b.c"));
        assert!(matches("#", "/queue/anything/at/all"));
        assert!(matches("/topic/*.news.#", "/topic/eu.news.sport.live"));
        assert!(!matches("/topic/*.news.#", "/topic/eu.weather.x"));
        assert!(matches("/queue/jobs", "/queue/jobs"));
        assert!(!matches("/queue/jobs", "/queue/jobs2"));
        assert!(matches("/user/{user}/#", "/user/alice/queue/x"));
        assert!(!matches("/user/{user}/#", "/user/bob/queue/x"));
        assert!(!matches("/user/{user}/#", "/user/alicex/queue/x"));
        assert!(matches("/app/room.{user}", "/app/room.alice"));
        assert!(matches("/a/#/b", "/a/x/y/b"));
        assert!(matches("/a/#/b", "/a//b"));
        assert!(Pattern::parse("topic/x").is_err());
        assert!(Pattern::parse("/topic/{login}").is_err());
    }

    #[test]
    fn a_login_with_separators_never_stands_for_user() {
        let p = Pattern::parse("/user/{user}/#").unwrap();
        assert!(!p.matches("/user/alice/queue/x", Some("alice/queue")));
        assert!(!p.matches("/user/alice/queue/x", None));
        assert!(!p.matches("/user/#/queue/x", Some("#")));
    }

    #[test]
    fn many_wildcards_stay_linear() {
        let pattern = format!("/{}", "#.".repeat(200));
        let long = format!("/{}", "a".repeat(20_000));
        assert!(!Pattern::parse(&pattern).unwrap().matches(&long, None));
    }

    fn alice() -> Principal {
        Principal::new("alice").with_roles(["user"])
    }

    #[test]
    fn the_open_default_refuses_only_sends_to_users() {
        let p = Permissions::default();
        assert!(p.is_open());
        assert!(p.allows(None, Access::Send, "/topic/a"));
        assert!(p.allows(None, Access::Subscribe, "/queue/a"));
        assert!(p.allows(None, Access::Subscribe, "/user/queue/a"));
        assert!(!p.allows(Some(&alice()), Access::Send, "/user/bob/queue/a"));
    }

    #[test]
    fn first_matching_rule_decides_and_the_rest_is_refused() {
        let p = Permissions::new(vec![
            PermissionRule::deny(&[Access::Send], ["/topic/chat.admin"]),
            PermissionRule::allow(&[Access::Send, Access::Subscribe], ["/topic/chat.*"])
                .for_roles(["user"]),
            PermissionRule::allow(&[Access::Send], ["/user/{user}/#"]).for_users(["alice"]),
            PermissionRule::allow(&[Access::Subscribe], ["/topic/public.#"]),
        ])
        .unwrap();
        let a = alice();
        assert!(p.allows(Some(&a), Access::Send, "/topic/chat.general"));
        assert!(!p.allows(Some(&a), Access::Send, "/topic/chat.admin"));
        assert!(p.allows(Some(&a), Access::Subscribe, "/topic/chat.admin"));
        assert!(p.allows(Some(&a), Access::Send, "/user/alice/queue/notes"));
        assert!(!p.allows(Some(&a), Access::Send, "/user/bob/queue/notes"));
        assert!(!p.allows(None, Access::Subscribe, "/topic/chat.general"));
        assert!(p.allows(None, Access::Subscribe, "/topic/public.news"));
        assert!(!p.allows(None, Access::Send, "/topic/public.news"));
        // Own user destinations stay subscribable unless a rule denies them.
        assert!(p.allows(None, Access::Subscribe, "/user/queue/errors"));
        let closed = Permissions::new(vec![PermissionRule::deny(
            &[Access::Subscribe],
            ["/user/#"],
        )])
        .unwrap();
        assert!(!closed.allows(Some(&a), Access::Subscribe, "/user/queue/errors"));
    }

    #[test]
    fn bad_rules_are_named() {
        let both = PermissionRule {
            allow: vec![Access::Send],
            deny: vec![Access::Send],
            destinations: vec!["#".into()],
            ..Default::default()
        };
        let e = Permissions::new(vec![PermissionRule::allow(&[Access::Send], ["#"]), both])
            .unwrap_err();
        assert!(e.reason.starts_with("rule 2: needs exactly one"), "{e}");
        let e = Permissions::new(vec![PermissionRule::allow(&[Access::Send], ["x"])]).unwrap_err();
        assert!(e.reason.contains("starts with `/`"), "{e}");
        let json =
            r#"{"users": ["alice"], "allow": ["send", "subscribe"], "destinations": ["/topic/#"]}"#;
        let rule: PermissionRule = serde_json::from_str(json).unwrap();
        assert_eq!(rule.allow, vec![Access::Send, Access::Subscribe]);
    }
}
