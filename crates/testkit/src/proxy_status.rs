//! An RFC 9209 `Proxy-Status` parser for assertions: the field is an RFC 8941 list whose
//! members are proxy names (tokens or strings) with parameters.

use sfv::{BareItem, ListEntry, Parser};

/// A parameter value, by its structured-field type.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Token(String),
    String(String),
    Integer(i64),
    Boolean(bool),
    /// Any other type (decimal, byte sequence, date), as Debug text.
    Other(String),
}

/// One member: the proxy's name and its parameters in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    pub params: Vec<(String, Param)>,
}

impl Member {
    pub fn param(&self, key: &str) -> Option<&Param> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The parameter keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.params.iter().map(|(k, _)| k.as_str()).collect()
    }

    /// The `error` token.
    pub fn error(&self) -> Option<&str> {
        match self.param("error") {
            Some(Param::Token(t)) => Some(t),
            _ => None,
        }
    }

    /// A string parameter (`rcode`, `coding`, `next-hop`, `details`).
    pub fn string(&self, key: &str) -> Option<&str> {
        match self.param(key) {
            Some(Param::String(s)) => Some(s),
            _ => None,
        }
    }

    /// An integer parameter (`status-code`, `received-status`, `header-section-size`).
    pub fn integer(&self, key: &str) -> Option<i64> {
        match self.param(key) {
            Some(Param::Integer(n)) => Some(*n),
            _ => None,
        }
    }
}

/// A parsed `Proxy-Status` field: members from the origin side to the client side.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxyStatus {
    pub members: Vec<Member>,
}

impl ProxyStatus {
    pub fn parse(value: &str) -> Result<Self, String> {
        let list: sfv::List = Parser::new(value).parse().map_err(|e| e.to_string())?;
        let members = list
            .into_iter()
            .map(|entry| match entry {
                ListEntry::Item(item) => {
                    let name = match item.bare_item {
                        BareItem::Token(t) => t.as_str().to_owned(),
                        BareItem::String(s) => s.as_str().to_owned(),
                        other => {
                            return Err(format!(
                                "member name {other:?} is neither a token nor a string"
                            ));
                        }
                    };
                    let params = item
                        .params
                        .into_iter()
                        .map(|(k, v)| (k.as_str().to_owned(), param(v)))
                        .collect();
                    Ok(Member { name, params })
                }
                ListEntry::InnerList(inner) => {
                    Err(format!("inner list {inner:?} is not a Proxy-Status member"))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { members })
    }

    /// Several field lines are one list, joined with commas (RFC 9110 §5.3). No line at all
    /// is an empty list.
    pub fn from_lines(lines: &[&str]) -> Result<Self, String> {
        if lines.is_empty() {
            return Ok(Self::default());
        }
        Self::parse(&lines.join(", "))
    }

    /// The member closest to the client (the last one); panics on an empty list.
    pub fn last(&self) -> &Member {
        self.members
            .last()
            .unwrap_or_else(|| panic!("empty Proxy-Status"))
    }
}

fn param(value: BareItem) -> Param {
    match value {
        BareItem::Token(t) => Param::Token(t.as_str().to_owned()),
        BareItem::String(s) => Param::String(s.as_str().to_owned()),
        BareItem::Integer(n) => Param::Integer(i64::from(n)),
        BareItem::Boolean(b) => Param::Boolean(b),
        other => Param::Other(format!("{other:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_members_and_params() {
        let ps = ProxyStatus::from_lines(&[
            r#"inner; error=connection_timeout"#,
            r#"gatehouse;error=dns_error;rcode="NXDOMAIN";header-section-size=17000"#,
        ])
        .unwrap();
        assert_eq!(ps.members.len(), 2);
        assert_eq!(ps.members[0].name, "inner");
        let last = ps.last();
        assert_eq!(last.name, "gatehouse");
        assert_eq!(last.error(), Some("dns_error"));
        assert_eq!(last.string("rcode"), Some("NXDOMAIN"));
        assert_eq!(last.integer("header-section-size"), Some(17000));
        assert_eq!(last.keys(), ["error", "rcode", "header-section-size"]);
    }

    #[test]
    fn rejects_invalid_fields() {
        assert!(ProxyStatus::parse("gatehouse; error=").is_err());
        assert!(ProxyStatus::parse("(a b)").is_err());
    }
}
