//! Scope strings (RFC 6749 §3.3): space-delimited, case-sensitive, unordered.

use std::collections::BTreeSet;
use std::fmt;

use crate::Error;

/// A set of scope tokens, parsed and validated at the edge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope(BTreeSet<String>);

impl Scope {
    /// Parses a `scope` parameter. Each token is `1*( %x21 / %x23-5B / %x5D-7E )`
    /// (RFC 6749 §3.3): printable ASCII without space, `"` or `\`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        let mut set = BTreeSet::new();
        for token in text.split(' ').filter(|t| !t.is_empty()) {
            if !token
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
            {
                return Err(Error::new(
                    crate::Reason::ScopeMalformed,
                    format!(
                        "scope token {:?} has characters RFC 6749 §3.3 does not allow",
                        crate::error::bounded(token)
                    ),
                ));
            }
            set.insert(token.to_owned());
        }
        Ok(Scope(set))
    }

    pub fn from_tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Scope(tokens.into_iter().map(Into::into).collect())
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    pub fn is_subset(&self, other: &Scope) -> bool {
        self.0.is_subset(&other.0)
    }

    pub fn intersection(&self, other: &Scope) -> Scope {
        Scope(self.0.intersection(&other.0).cloned().collect())
    }

    /// The tokens of `self` that `allowed` does not contain.
    pub fn excess<'a>(&'a self, allowed: &'a Scope) -> impl Iterator<Item = &'a str> {
        self.0.difference(&allowed.0).map(String::as_str)
    }

    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_normalises_and_refuses_bad_characters() {
        let scope = Scope::parse("b a  b").expect("valid");
        assert_eq!(scope.to_string(), "a b");
        assert!(Scope::parse("a\"b").is_err());
        assert!(Scope::parse("caf\u{e9}").is_err());
        assert!(Scope::parse("").expect("empty").is_empty());
        let allowed = Scope::parse("a b c").expect("valid");
        assert!(scope.is_subset(&allowed));
        let wide = Scope::parse("a d").expect("valid");
        assert_eq!(wide.excess(&allowed).collect::<Vec<_>>(), ["d"]);
    }
}
