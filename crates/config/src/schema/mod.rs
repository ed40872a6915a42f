//! The shape check: walks the parsed, spanned TOML document once and reports every unknown key and
//! every value of the wrong TOML type, in all tables at once.
//!
//! serde's `deny_unknown_fields` and type errors stop at the first problem, so this walk runs
//! first. It also *removes* what it reported from the document, so that deserializing into the
//! `raw` types afterwards cannot fail and `validate` still checks everything else. It knows TOML
//! types only ("a string", "an integer"); what a string means (a duration, an address) is
//! `validate`'s business.

use std::borrow::Cow;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::diag::Sink;
use crate::values::closest;

mod keys;

use keys::ROOT;

/// One known key of a table.
struct Field {
    key: &'static str,
    kind: Kind,
    /// How a correct value looks, used in the fix of a type error.
    example: &'static str,
}

#[derive(Clone, Copy)]
enum Kind {
    Str,
    Int,
    /// A float, or an integer read as one.
    Float,
    Bool,
    /// An integer (bytes) or a string with a unit.
    Size,
    /// An array of strings.
    StrList,
    /// An array whose elements are strings or tables with these keys (`servers`).
    StrOrTableList(&'static [Field]),
    /// A table with these keys.
    Table(&'static [Field]),
    /// An array of tables with these keys (`[[route]]`).
    TableArray(&'static [Field]),
    /// A table of named tables with these keys (`[upstream.NAME]`).
    TableMap(&'static [Field]),
}

const fn field(key: &'static str, kind: Kind, example: &'static str) -> Field {
    Field { key, kind, example }
}

/// Reports unknown keys and ill-typed values anywhere in `doc`, and removes them. Returns the key
/// paths that were removed, so diagnostics caused only by the removal can be left out.
pub(crate) fn check(doc: &mut DeTable<'_>, sink: &mut Sink<'_>) -> Vec<String> {
    let mut removed = Vec::new();
    walk_table(doc, ROOT, "", sink, &mut removed);
    removed
}

fn walk_table(
    table: &mut DeTable<'_>,
    fields: &[Field],
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) {
    let mut remove = Vec::new();
    for (key, value) in table.iter_mut() {
        let name: &str = key.get_ref();
        let child = join(path, name);
        let keep = match fields.iter().find(|f| f.key == name) {
            Some(field) => walk_value(value, field, &child, sink, removed),
            None => {
                let supported = || fields.iter().map(|f| f.key);
                let fix = match closest(name, supported()) {
                    Some(similar) => format!("did you mean `{similar}`?"),
                    None => format!(
                        "remove it; the keys allowed here are {}",
                        supported().collect::<Vec<_>>().join(", ")
                    ),
                };
                sink.error(
                    Some(key.span()),
                    &child,
                    format!("unknown key `{name}`"),
                    fix,
                );
                false
            }
        };
        if !keep {
            remove.push(name.to_owned());
            removed.push(child);
        }
    }
    for name in remove {
        table.remove(name.as_str());
    }
}

/// Checks one value against its field; returns whether to keep it.
fn walk_value(
    value: &mut Spanned<DeValue<'_>>,
    field: &Field,
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) -> bool {
    let span = value.span();
    match (field.kind, value.get_mut()) {
        (Kind::Str, DeValue::String(_))
        | (Kind::Bool, DeValue::Boolean(_))
        | (Kind::Size, DeValue::String(_)) => true,
        (Kind::Int | Kind::Size | Kind::Float, DeValue::Integer(n)) => {
            let fits = i64::from_str_radix(n.as_str(), n.radix()).is_ok();
            if !fits {
                sink.error(
                    Some(span),
                    path,
                    format!("{n} is too large"),
                    field_fix(field),
                );
            }
            fits
        }
        (Kind::Float, DeValue::Float(f)) => {
            // Rejects what toml would refuse to convert (1e999) and nan/inf, which no key takes.
            let finite = f.as_str().parse::<f64>().is_ok_and(f64::is_finite);
            if !finite {
                sink.error(
                    Some(span),
                    path,
                    format!("{} is not a finite number", f.as_str()),
                    field_fix(field),
                );
            }
            finite
        }
        (Kind::StrList, DeValue::Array(items)) => {
            list_elements(items, field, None, path, sink, removed);
            true
        }
        (Kind::StrOrTableList(fields), DeValue::Array(items)) => {
            list_elements(items, field, Some(fields), path, sink, removed);
            true
        }
        (Kind::Table(fields), DeValue::Table(table)) => {
            walk_table(table, fields, path, sink, removed);
            true
        }
        (Kind::TableArray(fields), DeValue::Array(items)) => {
            if let Some((i, item)) = items
                .iter()
                .enumerate()
                .find(|(_, v)| !v.get_ref().is_table())
            {
                let found = item.get_ref().type_str();
                sink.error(
                    Some(item.span()),
                    format!("{path}[{i}]"),
                    format!("expected a table, found {}", article(found)),
                    field_fix(field),
                );
                return false;
            }
            for (i, item) in items.iter_mut().enumerate() {
                if let DeValue::Table(table) = item.get_mut() {
                    walk_table(table, fields, &format!("{path}[{i}]"), sink, removed);
                }
            }
            true
        }
        (Kind::TableMap(fields), DeValue::Table(map)) => {
            let mut remove = Vec::new();
            for (name, entry) in map.iter_mut() {
                let child = join(path, name.get_ref());
                let entry_span = entry.span();
                if let DeValue::Table(table) = entry.get_mut() {
                    walk_table(table, fields, &child, sink, removed);
                } else {
                    let found = entry.get_ref().type_str();
                    sink.error(
                        Some(entry_span),
                        &child,
                        format!("expected a table, found {}", article(found)),
                        format!("write it as a table: [{child}]"),
                    );
                    remove.push(name.get_ref().to_string());
                    removed.push(child);
                }
            }
            for name in remove {
                map.remove(name.as_str());
            }
            true
        }
        (_, found) => {
            let found = found.type_str();
            sink.error(
                Some(span),
                path,
                format!(
                    "expected {}, found {}",
                    expected(field.kind),
                    article(found)
                ),
                field_fix(field),
            );
            false
        }
    }
}

/// Checks the elements of a list of strings (`tables: None`) or of strings and tables. A wrong
/// element is replaced by "" rather than removed, so the others keep their index and are still
/// checked; `removed` hides what "" would cause.
fn list_elements(
    items: &mut [Spanned<DeValue<'_>>],
    field: &Field,
    tables: Option<&[Field]>,
    path: &str,
    sink: &mut Sink<'_>,
    removed: &mut Vec<String>,
) {
    for (i, item) in items.iter_mut().enumerate() {
        let child = format!("{path}[{i}]");
        match (tables, item.get_mut()) {
            (_, DeValue::String(_)) => continue,
            (Some(fields), DeValue::Table(table)) => {
                walk_table(table, fields, &child, sink, removed);
                continue;
            }
            _ => {}
        }
        let found = item.get_ref().type_str();
        let expected = if tables.is_some() {
            "a string or a table"
        } else {
            "a string"
        };
        sink.error(
            Some(item.span()),
            &child,
            format!("expected {expected}, found {}", article(found)),
            field_fix(field),
        );
        *item = Spanned::new(item.span(), DeValue::String(Cow::Borrowed("")));
        removed.push(child);
    }
}

fn field_fix(field: &Field) -> String {
    format!("write it like {}", field.example)
}

fn expected(kind: Kind) -> &'static str {
    match kind {
        Kind::Str => "a string",
        Kind::Int => "an integer",
        Kind::Float => "a number",
        Kind::Bool => "true or false",
        Kind::Size => "a size (a string like \"64KiB\" or a number of bytes)",
        Kind::StrList => "a list of strings",
        Kind::StrOrTableList(_) => "a list of strings or tables",
        Kind::Table(_) | Kind::TableMap(_) => "a table",
        Kind::TableArray(_) => "an array of tables",
    }
}

/// `"integer"` → `"an integer"`.
fn article(type_str: &str) -> String {
    if type_str.starts_with(['a', 'e', 'i', 'o', 'u']) {
        format!("an {type_str}")
    } else {
        format!("a {type_str}")
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}
