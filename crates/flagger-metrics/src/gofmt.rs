//! Go's text formatting of the values that appear in Flagger's event messages: `%v` and `%.2f` of a
//! `float64`, and `time.Duration.String()`.

/// `fmt.Sprintf("%v", v)` for a `float64`: the shortest representation that round-trips, in `%e` form when
/// the decimal exponent is below -4 or at least 6 (`99`, `99.5`, `1e+06`, `1.5e-05`, `+Inf`, `NaN`).
pub fn float_v(v: f64) -> String {
    if v.is_nan() {
        return "NaN".to_owned();
    }
    if v.is_infinite() {
        return if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned();
    }
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-tripping form too: `-1.2345e6`, `5e-1`.
    let e = format!("{:e}", v.abs());
    let (mantissa, exp) = e.split_once('e').unwrap_or((e.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if v < 0.0 { "-" } else { "" };
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let exp_sign = if exp < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{exp_sign}{:02}", exp.abs());
    }
    let point = exp + 1; // digits before the decimal point
    let n = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let body = if point <= 0 {
        let zeros = "0".repeat(usize::try_from(-point).unwrap_or(0));
        format!("0.{zeros}{digits}")
    } else if point >= n {
        let zeros = "0".repeat(usize::try_from(point - n).unwrap_or(0));
        format!("{digits}{zeros}")
    } else {
        let (int, frac) = digits.split_at(usize::try_from(point).unwrap_or(0));
        format!("{int}.{frac}")
    };
    format!("{sign}{body}")
}

/// `fmt.Sprintf("%.2f", v)` for a `float64` (Go spells infinities `+Inf`/`-Inf`).
pub fn float_2f(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_owned()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{v:.2}")
    }
}

/// `time.Duration(nanos).String()`: `0s`, `1.5ms`, `250ms`, `1.2s`, `1m0s`, `2h3m4.5s`.
pub fn duration(nanos: i64) -> String {
    let negative = nanos < 0;
    let mut u = nanos.unsigned_abs();
    let mut out = if u < 1_000_000_000 {
        let (prec, unit) = match u {
            0 => return "0s".to_owned(),
            1..1_000 => (0, "ns"),
            1_000..1_000_000 => (3, "\u{b5}s"),
            _ => (6, "ms"),
        };
        let (frac, int) = fraction(u, prec);
        format!("{int}{frac}{unit}")
    } else {
        let (frac, secs) = fraction(u, 9);
        u = secs;
        let mut s = format!("{}{frac}s", u % 60);
        u /= 60;
        if u > 0 {
            s = format!("{}m{s}", u % 60);
            u /= 60;
            if u > 0 {
                s = format!("{u}h{s}");
            }
        }
        s
    };
    if negative {
        out.insert(0, '-');
    }
    out
}

/// Splits `v` into `v / 10^prec` and its fraction as `.ddd` without trailing zeros (empty when zero).
fn fraction(v: u64, prec: u32) -> (String, u64) {
    let scale = 10u64.pow(prec);
    let (int, frac) = (v / scale, v % scale);
    if frac == 0 {
        return (String::new(), int);
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), int)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_like_go_v() {
        for (v, go) in [
            (99.0, "99"),
            (99.5, "99.5"),
            (0.1, "0.1"),
            (100_000.0, "100000"),
            (123_456.0, "123456"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (0.0001, "0.0001"),
            (0.000_015, "1.5e-05"),
            (-2.5, "-2.5"),
            (0.0, "0"),
            (f64::INFINITY, "+Inf"),
            (f64::NAN, "NaN"),
            (1e21, "1e+21"),
        ] {
            assert_eq!(float_v(v), go, "{v}");
        }
    }

    #[test]
    fn floats_like_go_2f() {
        assert_eq!(float_2f(87.5), "87.50");
        assert_eq!(float_2f(99.999), "100.00");
        assert_eq!(float_2f(f64::NEG_INFINITY), "-Inf");
    }

    #[test]
    fn durations_like_go() {
        const MS: i64 = 1_000_000;
        for (nanos, go) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5\u{b5}s"),
            (MS, "1ms"),
            (1_500_000, "1.5ms"),
            (512 * MS, "512ms"),
            (1_000 * MS, "1s"),
            (1_200 * MS, "1.2s"),
            (60_000 * MS, "1m0s"),
            (7_384_500 * MS, "2h3m4.5s"),
            (-250 * MS, "-250ms"),
        ] {
            assert_eq!(duration(nanos), go, "{nanos}");
        }
    }
}
