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
        let stats = self
            .stats
            .iter()
            .map(|(name, ratio)| (name.as_bytes().to_vec(), *ratio))
            .collect();
        let bytes = render_bytes(self.flavor, self.color.as_bytes(), &stats);
        // Only UTF-8 went in, and escaping keeps it UTF-8.
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

/// The reply for colors as the teller's raw bytes, as the Go gateway writes it: the color goes
/// in as it came (`%s`), invalid UTF-8 included, and each invalid byte of a stats key becomes
/// `\ufffd`, as Go's `encoding/json` writes it. Keys are sorted by their bytes, as Go sorts them.
pub(crate) fn render_bytes(
    flavor: Flavor,
    color: &[u8],
    stats: &BTreeMap<Vec<u8>, f64>,
) -> Vec<u8> {
    let (color_key, stats_key) = flavor.keys();
    let mut out = format!("{{\"{color_key}\":\"").into_bytes();
    out.extend_from_slice(color);
    out.extend_from_slice(format!("\", \"{stats_key}\": {{").as_bytes());
    for (index, (name, ratio)) in stats.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let mut key = String::new();
        go_json_string(&mut key, name);
        out.extend_from_slice(key.as_bytes());
        out.push(b':');
        out.extend_from_slice(go_json_float(*ratio).as_bytes());
    }
    out.extend_from_slice(b"}}");
    out
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

/// Appends `value` as Go's `encoding/json` (Go 1.17) writes a string: HTML-sensitive
/// characters and U+2028/U+2029 as `\u` escapes, control characters other than `\n`, `\r` and
/// `\t` as lowercase `\u00xx`, and every byte that is not part of valid UTF-8 as `\ufffd`.
fn go_json_string(out: &mut String, value: &[u8]) {
    out.push('"');
    for chunk in value.utf8_chunks() {
        for c in chunk.valid().chars() {
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
        // Go decodes an invalid sequence one byte at a time, each to an escaped U+FFFD.
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
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
    fn invalid_utf8_stays_raw_in_the_color_and_is_escaped_per_byte_in_the_key() {
        let color = b"bl\xffue\xe2\x82".to_vec();
        let stats = [(color.clone(), 1.0)].into_iter().collect();
        assert_eq!(
            render_bytes(Flavor::V1, &color, &stats),
            b"{\"color\":\"bl\xffue\xe2\x82\", \"stats\": {\"bl\\ufffdue\\ufffd\\ufffd\":1}}"
                .to_vec()
        );
        // Keys sort by their bytes, as Go sorts map keys.
        let stats = [(b"\xff".to_vec(), 0.5), (b"z".to_vec(), 0.5)]
            .into_iter()
            .collect();
        assert_eq!(
            render_bytes(Flavor::V2, b"z", &stats),
            b"{\"colorV2\":\"z\", \"statsV2\": {\"z\":0.5,\"\\ufffd\":0.5}}".to_vec()
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
