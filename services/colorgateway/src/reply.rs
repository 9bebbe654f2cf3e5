//! The `/color` reply: written byte for byte as the Go gateway writes it, and read back.

use std::{collections::BTreeMap, fmt::Write as _};

use crate::Flavor;

/// A `/color` reply, in either flavour.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayReply {
    /// Which keys the reply used: `color`/`stats` or `colorV2`/`statsV2`.
    pub flavor: Flavor,
    /// The color the teller answered this time.
    pub color: String,
    /// Each color's share of the recent answers, rounded to two decimals.
    pub stats: BTreeMap<String, f64>,
}

/// Why a body is not a `/color` reply.
#[derive(Debug, thiserror::Error)]
pub enum ReplyError {
    #[error("the colorgateway reply is not a JSON object")]
    NotJson(#[source] serde_json::Error),
    #[error(
        "the colorgateway reply has neither a \"color\" nor a \"colorV2\" key (keys: {keys:?})"
    )]
    UnknownShape { keys: Vec<String> },
    #[error("the colorgateway reply has no {field:?} key")]
    MissingField { field: &'static str },
    #[error("the colorgateway reply's {field:?} is not {expected}")]
    WrongType {
        field: String,
        expected: &'static str,
    },
}

impl GatewayReply {
    /// The reply exactly as colorgateway sends it:
    /// `{"color":"<c>", "stats": {"a":0.5,"b":0.5}}` (or the `V2` keys), no trailing newline.
    ///
    /// As in the Go original the color goes in verbatim (`%s`, no JSON escaping) while the stats
    /// map is marshalled like Go's `json.Marshal`: sorted keys, Go's string escaping and Go's
    /// shortest float form.
    pub fn render(&self) -> String {
        let (color_key, stats_key) = self.flavor.keys();
        let mut out = format!("{{\"{color_key}\":\"{}\", \"{stats_key}\": {{", self.color);
        for (index, (name, ratio)) in self.stats.iter().enumerate() {
            if index > 0 {
                out.push(',');
            }
            go_json_string(&mut out, name);
            out.push(':');
            out.push_str(&go_json_float(*ratio));
        }
        out.push_str("}}");
        out
    }
}

/// Reads a `/color` reply of either flavour.
pub fn parse_reply(body: &str) -> Result<GatewayReply, ReplyError> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).map_err(ReplyError::NotJson)?;
    let flavor = if object.contains_key("color") {
        Flavor::V1
    } else if object.contains_key("colorV2") {
        Flavor::V2
    } else {
        return Err(ReplyError::UnknownShape {
            keys: object.keys().cloned().collect(),
        });
    };
    let (color_key, stats_key) = flavor.keys();
    let color = object[color_key]
        .as_str()
        .ok_or_else(|| ReplyError::WrongType {
            field: color_key.to_owned(),
            expected: "a string",
        })?
        .to_owned();
    let stats = object
        .get(stats_key)
        .ok_or(ReplyError::MissingField { field: stats_key })?
        .as_object()
        .ok_or_else(|| ReplyError::WrongType {
            field: stats_key.to_owned(),
            expected: "an object",
        })?
        .iter()
        .map(|(name, ratio)| {
            ratio
                .as_f64()
                .map(|ratio| (name.clone(), ratio))
                .ok_or_else(|| ReplyError::WrongType {
                    field: format!("{stats_key}.{name}"),
                    expected: "a number",
                })
        })
        .collect::<Result<_, _>>()?;
    Ok(GatewayReply {
        flavor,
        color,
        stats,
    })
}

/// Appends `value` as Go's `encoding/json` (2019, Go 1.12) writes a string: HTML-sensitive
/// characters and U+2028/U+2029 as `\u` escapes, control characters other than `\n`, `\r` and
/// `\t` as lowercase `\u00xx`.
fn go_json_string(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Formats a float as Go's `encoding/json` does: the shortest digits that read back to the same
/// value, plain below 1e21 and from 1e-6 up, exponent form (`1e-7`, `1e+21`) outside that.
fn go_json_float(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude == 0.0 || (1e-6..1e21).contains(&magnitude) {
        return value.to_string();
    }
    let scientific = format!("{value:e}");
    match scientific.split_once('e') {
        Some((mantissa, exponent)) if !exponent.starts_with('-') => {
            format!("{mantissa}e+{exponent}")
        }
        _ => scientific,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    fn stats(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs
            .iter()
            .map(|(name, ratio)| ((*name).to_owned(), *ratio))
            .collect()
    }

    #[test]
    fn renders_the_documented_v1_shape() {
        let reply = GatewayReply {
            flavor: Flavor::V1,
            color: "black".into(),
            stats: stats(&[("white", 0.3), ("black", 0.5), ("blue", 0.2)]),
        };
        assert_eq!(
            reply.render(),
            r#"{"color":"black", "stats": {"black":0.5,"blue":0.2,"white":0.3}}"#
        );
        let single = GatewayReply {
            flavor: Flavor::V1,
            color: "black".into(),
            stats: stats(&[("black", 1.0)]),
        };
        assert_eq!(
            single.render(),
            r#"{"color":"black", "stats": {"black":1}}"#
        );
    }

    #[test]
    fn renders_the_v2_shape_of_the_walkthrough() {
        let reply = GatewayReply {
            flavor: Flavor::V2,
            color: "white".into(),
            stats: stats(&[("black", 0.24), ("blue", 0.57), ("white", 0.19)]),
        };
        assert_eq!(
            reply.render(),
            r#"{"colorV2":"white", "statsV2": {"black":0.24,"blue":0.57,"white":0.19}}"#
        );
    }

    #[test]
    fn color_goes_in_verbatim_but_stat_keys_are_go_escaped() {
        let reply = GatewayReply {
            flavor: Flavor::V1,
            color: "a\"<b>".into(),
            stats: stats(&[("a\"<b>&\u{1}\n\u{2028}", 1.0)]),
        };
        assert_eq!(
            reply.render(),
            r#"{"color":"a"<b>", "stats": {"a\"\u003cb\u003e\u0026\u0001\n\u2028":1}}"#
        );
    }

    #[test]
    fn floats_take_go_json_form() {
        assert_eq!(go_json_float(0.0), "0");
        assert_eq!(go_json_float(1.0), "1");
        assert_eq!(go_json_float(0.33), "0.33");
        assert_eq!(go_json_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(go_json_float(1e-7), "1e-7");
        assert_eq!(go_json_float(1e21), "1e+21");
        assert_eq!(go_json_float(123456.0), "123456");
    }

    #[test]
    fn parses_both_flavours_and_round_trips() {
        let v1 = r#"{"color":"red", "stats": {"blue":0.33,"red":0.36,"white":0.31}}"#;
        let reply = parse_reply(v1).unwrap();
        assert_eq!(reply.flavor, Flavor::V1);
        assert_eq!(reply.color, "red");
        assert_eq!(
            reply.stats,
            stats(&[("blue", 0.33), ("red", 0.36), ("white", 0.31)])
        );
        assert_eq!(reply.render(), v1);

        let v2 = r#"{"colorV2":"white", "statsV2": {"black":0.24,"blue":0.57,"white":0.19}}"#;
        let reply = parse_reply(v2).unwrap();
        assert_eq!(reply.flavor, Flavor::V2);
        assert_eq!(reply.render(), v2);
    }

    #[test]
    fn refuses_what_is_not_a_reply() {
        assert!(matches!(
            parse_reply("500 - Unexpected Error"),
            Err(ReplyError::NotJson(_))
        ));
        assert!(matches!(parse_reply("[1]"), Err(ReplyError::NotJson(_))));
        assert!(matches!(
            parse_reply(r#"{"x":1}"#),
            Err(ReplyError::UnknownShape { .. })
        ));
        assert!(matches!(
            parse_reply(r#"{"color":"a", "error":"boom"}"#),
            Err(ReplyError::MissingField { field: "stats" })
        ));
        let error = parse_reply(r#"{"colorV2":"a", "statsV2": {"a":"1"}}"#).unwrap_err();
        assert_eq!(
            error.to_string(),
            "the colorgateway reply's \"statsV2.a\" is not a number"
        );
        assert!(matches!(
            parse_reply(r#"{"color":1, "stats": {}}"#),
            Err(ReplyError::WrongType { .. })
        ));
    }
}
