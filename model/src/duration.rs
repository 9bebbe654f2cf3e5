//! Protobuf JSON durations (`"15s"`, `"0.5s"`, `"1.000340012s"`) as Gloo writes them.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A `google.protobuf.Duration` in its JSON form: seconds with up to nine fractional digits and
/// the suffix `s`. Negative durations are rejected because no Gloo option colormesh reads
/// accepts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ProtoDuration(pub Duration);

/// Why a string is not a protobuf JSON duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid duration {input:?}: {reason} (expected seconds with an `s` suffix, like \"15s\" or \"0.5s\")"
)]
pub struct DurationParseError {
    /// The text that failed to parse.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl ProtoDuration {
    /// Parses a protobuf JSON duration string.
    pub fn parse(text: &str) -> Result<Self, DurationParseError> {
        let fail = |reason| DurationParseError {
            input: text.to_owned(),
            reason,
        };
        let body = text
            .strip_suffix('s')
            .ok_or_else(|| fail("missing `s` suffix"))?;
        if body.starts_with('-') {
            return Err(fail("negative durations are not supported"));
        }
        let (whole, fraction) = match body.split_once('.') {
            Some((whole, fraction)) => (whole, fraction),
            None => (body, ""),
        };
        if whole.is_empty() && fraction.is_empty() {
            return Err(fail("no digits"));
        }
        if !whole.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(fail("only digits and one `.` may precede the `s`"));
        }
        if fraction.len() > 9 {
            return Err(fail("more than nine fractional digits"));
        }
        if body.contains('.') && fraction.is_empty() {
            return Err(fail("no digits after `.`"));
        }
        let seconds: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| fail("seconds out of range"))?
        };
        let nanos: u32 = if fraction.is_empty() {
            0
        } else {
            let digits: u32 = fraction.parse().map_err(|_| fail("bad fraction"))?;
            digits * 10u32.pow(9 - fraction.len() as u32)
        };
        Ok(Self(Duration::new(seconds, nanos)))
    }

    /// The duration as a standard library value.
    pub fn as_std(self) -> Duration {
        self.0
    }
}

impl From<Duration> for ProtoDuration {
    fn from(value: Duration) -> Self {
        Self(value)
    }
}

impl FromStr for ProtoDuration {
    type Err = DurationParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// Writes the canonical proto3 JSON form: 0, 3, 6 or 9 fractional digits, as the protobuf
/// runtime does (`15s`, `0.500s`, `1.000340012s`).
impl fmt::Display for ProtoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        let nanos = self.0.subsec_nanos();
        if nanos == 0 {
            write!(f, "{seconds}s")
        } else if nanos.is_multiple_of(1_000_000) {
            write!(f, "{seconds}.{:03}s", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            write!(f, "{seconds}.{:06}s", nanos / 1_000)
        } else {
            write!(f, "{seconds}.{nanos:09}s")
        }
    }
}

impl Serialize for ProtoDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProtoDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurationVisitor;
        impl Visitor<'_> for DurationVisitor {
            type Value = ProtoDuration;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a protobuf duration string such as \"15s\"")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                ProtoDuration::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_str(DurationVisitor)
    }
}

impl JsonSchema for ProtoDuration {
    fn schema_name() -> Cow<'static, str> {
        "ProtoDuration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "string" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Duration {
        ProtoDuration::parse(s).unwrap().0
    }

    #[test]
    fn parses_protobuf_json_durations() {
        assert_eq!(parse("15s"), Duration::from_secs(15));
        assert_eq!(parse("0.5s"), Duration::from_millis(500));
        assert_eq!(parse(".25s"), Duration::from_millis(250));
        assert_eq!(parse("1.000340012s"), Duration::new(1, 340_012));
        assert_eq!(parse("0s"), Duration::ZERO);
    }

    #[test]
    fn rejects_malformed_durations() {
        for bad in [
            "15",
            "15ms",
            "1m",
            "-1s",
            "1.s",
            "s",
            "1.0000000001s",
            "1e3s",
            "",
            " 1s",
        ] {
            let err = ProtoDuration::parse(bad).unwrap_err();
            assert_eq!(err.input, bad);
        }
        let err = ProtoDuration::parse("15").unwrap_err();
        assert!(err.to_string().contains("missing `s` suffix"), "{err}");
    }

    #[test]
    fn displays_canonical_form_and_round_trips() {
        assert_eq!(ProtoDuration(Duration::from_secs(15)).to_string(), "15s");
        assert_eq!(
            ProtoDuration(Duration::from_millis(500)).to_string(),
            "0.500s"
        );
        assert_eq!(
            ProtoDuration(Duration::from_micros(1_500)).to_string(),
            "0.001500s"
        );
        assert_eq!(
            ProtoDuration(Duration::new(1, 340_012)).to_string(),
            "1.000340012s"
        );
        for s in ["15s", "0.5s", "1.000340012s", "0.001500s", "3600s"] {
            let d = ProtoDuration::parse(s).unwrap();
            assert_eq!(ProtoDuration::parse(&d.to_string()).unwrap(), d);
        }
    }

    #[test]
    fn serde_uses_the_string_form() {
        let d: ProtoDuration = serde_json::from_str("\"0.5s\"").unwrap();
        assert_eq!(d.0, Duration::from_millis(500));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"0.500s\"");
        let err = serde_json::from_str::<ProtoDuration>("\"5 minutes\"").unwrap_err();
        assert!(err.to_string().contains("invalid duration"), "{err}");
        assert!(serde_json::from_str::<ProtoDuration>("15").is_err());
    }
}
