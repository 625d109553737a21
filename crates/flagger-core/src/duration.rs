//! Go duration strings (`time.ParseDuration`), as Flagger parses `interval`, `timeout` and similar fields.
//!
//! The accepted syntax is exactly Go's: an optional sign, then one or more `<number><unit>` pairs such as
//! `1m30s` or `1.5h`, where the number may have a fraction and the unit is one of `ns`, `us` (or `µs`,
//! `μs`), `ms`, `s`, `m`, `h`. The bare string `0` is also accepted. Values must fit in a signed 64-bit
//! count of nanoseconds (about 292 years).

use std::time::Duration;

/// Why a string is not a Go duration. The messages match Go's `time.ParseDuration` errors.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// The string is empty or is not a sequence of `<number><unit>` pairs.
    #[error("invalid duration {0:?}")]
    Invalid(String),
    /// A number has no unit after it, such as `10`.
    #[error("missing unit in duration {0:?}")]
    MissingUnit(String),
    /// A unit is not one Go knows, such as the `d` in `1d`.
    #[error("unknown unit {unit:?} in duration {input:?}")]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// The whole duration string.
        input: String,
    },
    /// The duration does not fit in 64-bit nanoseconds.
    #[error("duration {0:?} is out of range")]
    Overflow(String),
    /// The duration is negative where only non-negative durations make sense.
    #[error("duration {0:?} is negative")]
    Negative(String),
}

const NANOS_LIMIT: u64 = 1 << 63;

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    })
}

/// Parses a Go duration into signed nanoseconds, accepting exactly what Go's `time.ParseDuration` accepts.
pub fn parse_go_duration_nanos(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid(input.to_owned());
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let bytes = s.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
        let mut whole: u64 = 0;
        for &b in &bytes[..int_len] {
            whole = whole
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(b - b'0')))
                .filter(|&v| v <= NANOS_LIMIT)
                .ok_or_else(invalid)?;
        }
        s = &s[int_len..];
        // Fraction part: digits beyond what fits are ignored, as in Go.
        let mut fraction: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut has_fraction_digits = false;
        if let Some(rest) = s.strip_prefix('.') {
            s = rest;
            let frac_len = s.bytes().take_while(u8::is_ascii_digit).count();
            has_fraction_digits = frac_len > 0;
            let mut overflowed = false;
            for b in s[..frac_len].bytes() {
                if overflowed {
                    continue;
                }
                match fraction
                    .checked_mul(10)
                    .and_then(|v| v.checked_add(u64::from(b - b'0')))
                {
                    Some(v) if v <= NANOS_LIMIT => {
                        fraction = v;
                        scale *= 10.0;
                    }
                    _ => overflowed = true,
                }
            }
            s = &s[frac_len..];
        }
        if int_len == 0 && !has_fraction_digits {
            return Err(invalid());
        }
        // Unit.
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit(input.to_owned()));
        }
        let unit = &s[..unit_len];
        s = &s[unit_len..];
        let per_unit = unit_nanos(unit).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit.to_owned(),
            input: input.to_owned(),
        })?;
        if whole > NANOS_LIMIT / per_unit {
            return Err(DurationError::Overflow(input.to_owned()));
        }
        let mut value = whole * per_unit;
        if fraction > 0 {
            // Same float arithmetic as Go; truncation towards zero is intended.
            #[allow(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let extra = (fraction as f64 * (per_unit as f64 / scale)) as u64;
            value = value
                .checked_add(extra)
                .filter(|&v| v <= NANOS_LIMIT)
                .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
        }
        total = total
            .checked_add(value)
            .filter(|&v| v <= NANOS_LIMIT)
            .ok_or_else(|| DurationError::Overflow(input.to_owned()))?;
    }
    if negative {
        // total <= 2^63, so the negation fits (i64::MIN when equal).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| DurationError::Overflow(input.to_owned()))
}

/// Parses a non-negative Go duration.
pub fn parse_go_duration(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_go_duration_nanos(input)?;
    let nanos = u64::try_from(nanos).map_err(|_| DurationError::Negative(input.to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ok(s: &str) -> i64 {
        parse_go_duration_nanos(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn accepts_go_examples() {
        assert_eq!(ok("0"), 0);
        assert_eq!(ok("-0"), 0);
        assert_eq!(ok("1s"), 1_000_000_000);
        assert_eq!(ok("1m30s"), 90_000_000_000);
        assert_eq!(ok("1.5h"), 5_400_000_000_000);
        assert_eq!(ok("-1.5h"), -5_400_000_000_000);
        assert_eq!(ok("+10ms"), 10_000_000);
        assert_eq!(ok(".5s"), 500_000_000);
        assert_eq!(ok("5.s"), 5_000_000_000);
        assert_eq!(ok("3us"), 3_000);
        assert_eq!(ok("3µs"), 3_000);
        assert_eq!(ok("3μs"), 3_000);
        assert_eq!(ok("2h45m0.5s"), 9_900_500_000_000);
        assert_eq!(ok("0s"), 0);
        assert_eq!(ok("9223372036854775807ns"), i64::MAX);
        assert_eq!(ok("-9223372036854775808ns"), i64::MIN);
        assert_eq!(ok("0.3333333333333333333h"), 1_200_000_000_000);
    }

    #[test]
    fn rejects_what_go_rejects() {
        assert_eq!(
            parse_go_duration_nanos(""),
            Err(DurationError::Invalid(String::new()))
        );
        assert_eq!(
            parse_go_duration_nanos("10"),
            Err(DurationError::MissingUnit("10".into()))
        );
        assert_eq!(
            parse_go_duration_nanos("1d"),
            Err(DurationError::UnknownUnit {
                unit: "d".into(),
                input: "1d".into()
            })
        );
        assert!(matches!(
            parse_go_duration_nanos("."),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("-"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("s"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("1m 30s"),
            Err(DurationError::UnknownUnit { .. })
        ));
        assert!(matches!(
            parse_go_duration_nanos(" 1m"),
            Err(DurationError::Invalid(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("9223372036854775808ns"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("3000000h"),
            Err(DurationError::Overflow(_))
        ));
        assert!(matches!(
            parse_go_duration_nanos("99999999999999999999s"),
            Err(DurationError::Invalid(_))
        ));
    }

    #[test]
    fn unsigned_form_rejects_negative() {
        assert_eq!(parse_go_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(
            parse_go_duration("-1s"),
            Err(DurationError::Negative("-1s".into()))
        );
    }

    #[test]
    fn error_messages_read_like_go() {
        assert_eq!(
            parse_go_duration_nanos("1d").map_err(|e| e.to_string()),
            Err("unknown unit \"d\" in duration \"1d\"".to_owned())
        );
        assert_eq!(
            parse_go_duration_nanos("10").map_err(|e| e.to_string()),
            Err("missing unit in duration \"10\"".to_owned())
        );
    }

    proptest! {
        #[test]
        fn components_add_up(h in 0u64..1000, m in 0u64..100_000, sec in 0u64..100_000, ms in 0u64..10_000, neg: bool) {
            let text = format!("{}{h}h{m}m{sec}s{ms}ms", if neg { "-" } else { "" });
            let nanos = ((h * 3600 + m * 60 + sec) * 1_000 + ms) * 1_000_000;
            let expected = if neg { -i64::try_from(nanos).expect("fits") } else { i64::try_from(nanos).expect("fits") };
            prop_assert_eq!(parse_go_duration_nanos(&text), Ok(expected));
        }

        #[test]
        fn never_panics(s in "\\PC{0,12}") {
            let _ = parse_go_duration_nanos(&s);
        }

        #[test]
        fn fractions_of_a_second(whole in 0u64..10_000, frac in 0u64..1000) {
            let text = format!("{whole}.{frac:03}s");
            prop_assert_eq!(parse_go_duration(&text), Ok(Duration::from_millis(whole * 1000 + frac)));
        }
    }
}
