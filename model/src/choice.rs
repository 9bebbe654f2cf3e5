//! The error of a field that must hold exactly one of several alternatives (Gloo's and App
//! Mesh's `oneof`s), raised while a document is decoded; the loader reports it with the file,
//! line, resource and field path around it.

/// A `oneof` that is set wrongly: none or more than one of its alternatives, or an alternative
/// colormesh does not implement.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChoiceError {
    /// Exactly one alternative is required.
    #[error(
        "{what} needs exactly one of {}, found {}{}",
        .allowed.join(", "),
        found(.present),
        note_suffix(.note)
    )]
    NotExactlyOne {
        /// What holds the alternatives (`route`, `routeAction`, ...).
        what: &'static str,
        /// The alternatives that were set, in declaration order.
        present: Vec<&'static str>,
        /// The alternatives colormesh accepts.
        allowed: &'static [&'static str],
        /// Why an alternative that was set is not among `allowed`, when that is the reason.
        note: Option<&'static str>,
    },
    /// At most one alternative may be set, and several were.
    #[error("{what} may set only one of {}, found {}", .allowed.join(", "), .present.join(" and "))]
    MoreThanOne {
        /// What holds the alternatives.
        what: &'static str,
        /// The alternatives that were set.
        present: Vec<&'static str>,
        /// The alternatives.
        allowed: &'static [&'static str],
    },
    /// An alternative of the real resource that colormesh does not implement.
    #[error("{field} is not supported by colormesh (use {instead})")]
    Unsupported {
        /// The field that was set.
        field: &'static str,
        /// What to use instead.
        instead: &'static str,
    },
}

fn found(present: &[&str]) -> String {
    if present.is_empty() {
        "none".to_owned()
    } else {
        present.join(" and ")
    }
}

fn note_suffix(note: &Option<&str>) -> String {
    note.map(|note| format!(" ({note})")).unwrap_or_default()
}

/// Names of the `Some` alternatives, in declaration order.
macro_rules! present {
    ($($name:literal => $value:expr),* $(,)?) => {{
        let mut names: Vec<&'static str> = Vec::new();
        $(if $value.is_some() { names.push($name); })*
        names
    }};
}
pub(crate) use present;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_what_was_found_and_what_is_allowed() {
        let none = ChoiceError::NotExactlyOne {
            what: "route",
            present: Vec::new(),
            allowed: &["routeAction", "directResponseAction"],
            note: None,
        };
        assert_eq!(
            none.to_string(),
            "route needs exactly one of routeAction, directResponseAction, found none"
        );
        let two = ChoiceError::NotExactlyOne {
            what: "route",
            present: vec!["httpRoute", "grpcRoute"],
            allowed: &["httpRoute", "tcpRoute"],
            note: Some("http2Route and grpcRoute are not supported by colormesh"),
        };
        assert_eq!(
            two.to_string(),
            "route needs exactly one of httpRoute, tcpRoute, found httpRoute and grpcRoute (http2Route and grpcRoute are not supported by colormesh)"
        );
        let many = ChoiceError::MoreThanOne {
            what: "matcher",
            present: vec!["prefix", "regex"],
            allowed: &["prefix", "exact", "regex"],
        };
        assert_eq!(
            many.to_string(),
            "matcher may set only one of prefix, exact, regex, found prefix and regex"
        );
    }
}
