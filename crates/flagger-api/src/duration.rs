//! Go's `time.ParseDuration`, for the accessors that turn duration strings into [`Duration`]s.
//!
//! Flagger parses intervals with Go; a string Go rejects (including one too large for 64-bit nanoseconds)
//! makes Flagger fall back to its default, so the accessors need Go's exact grammar, and must never panic
//! on user input.

use std::time::Duration;

const NANOS_LIMIT: u128 = 1 << 63;

/// A Go duration: negative or not, and its size.
pub(crate) struct GoDuration {
    pub negative: bool,
    pub magnitude: Duration,
}

/// Parses `input` exactly as Go's `time.ParseDuration` does; `None` where Go returns an error.
pub(crate) fn parse_go_duration(input: &str) -> Option<GoDuration> {
    let (negative, mut s) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if s == "0" {
        return Some(GoDuration {
            negative,
            magnitude: Duration::ZERO,
        });
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let mut value: u128 = 0;
        for d in int_digits.bytes() {
            value = value * 10 + u128::from(d - b'0');
            if value > NANOS_LIMIT {
                return None;
            }
        }
        // Fraction: digits after a '.', kept while they add precision (as Go does).
        let (mut fraction, mut scale, mut frac_len) = (0u128, 1u128, 0usize);
        if let Some(rest) = s.strip_prefix('.') {
            frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            for d in rest[..frac_len].bytes() {
                if fraction * 10 + 9 < NANOS_LIMIT {
                    fraction = fraction * 10 + u128::from(d - b'0');
                    scale *= 10;
                }
            }
            s = &rest[frac_len..];
        } else if int_len == 0 {
            return None;
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        let unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{00b5}s" | "\u{03bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        if value > NANOS_LIMIT / unit {
            return None;
        }
        value *= unit;
        if fraction > 0 {
            // Go computes this part in float64 and truncates.
            #[expect(
                clippy::cast_precision_loss,
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss
            )]
            let part = (fraction as f64 * (unit as f64 / scale as f64)) as u128;
            value += part;
            if value > NANOS_LIMIT {
                return None;
            }
        }
        total += value;
        if total > NANOS_LIMIT {
            return None;
        }
    }
    if !negative && total > NANOS_LIMIT - 1 {
        return None;
    }
    let secs = u64::try_from(total / 1_000_000_000).ok()?;
    let nanos = u32::try_from(total % 1_000_000_000).ok()?;
    Some(GoDuration {
        negative,
        magnitude: Duration::new(secs, nanos),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Option<(bool, u128)> {
        parse_go_duration(s).map(|d| (d.negative, d.magnitude.as_nanos()))
    }

    #[test]
    fn accepts_what_go_accepts() {
        assert_eq!(parse("0"), Some((false, 0)));
        assert_eq!(parse("-0"), Some((true, 0)));
        assert_eq!(parse("1m"), Some((false, 60_000_000_000)));
        assert_eq!(parse("+1m30s"), Some((false, 90_000_000_000)));
        assert_eq!(parse("-1.5h"), Some((true, 5_400_000_000_000)));
        assert_eq!(parse(".5s"), Some((false, 500_000_000)));
        assert_eq!(parse("5.s"), Some((false, 5_000_000_000)));
        assert_eq!(parse("1h2m3s4ms5us6ns"), Some((false, 3_723_004_005_006)));
        assert_eq!(parse("1\u{00b5}s"), Some((false, 1_000)));
        assert_eq!(
            parse("9223372036854775807ns"),
            Some((false, 9_223_372_036_854_775_807))
        );
        assert_eq!(
            parse("-9223372036854775808ns"),
            Some((true, 9_223_372_036_854_775_808))
        );
    }

    #[test]
    fn rejects_what_go_rejects_without_panicking() {
        for s in [
            "",
            "-",
            "+",
            "1",
            "m",
            "1d",
            "1.2.3s",
            ".s",
            "1e3s",
            "+-5m",
            "--5m",
            "1m ",
            " 1m",
            "9223372036854775808ns",
            "99999999999999999999999m",
            "2562048h",
            "1.5",
        ] {
            assert_eq!(parse(s), None, "{s:?}");
        }
    }
}
