//! Added response latency: none, fixed, uniform, or a piecewise-linear distribution given by percentiles.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rand::Rng;

/// How long the app waits before answering a request.
///
/// Text forms (also the `--latency` flag):
/// * `0` or `none`: answer at once;
/// * `50ms`, `1.5s`, `250us`: always that long;
/// * `10ms..100ms`: uniform between the two bounds;
/// * `p50=10ms,p90=40ms,p99=200ms`: a distribution through those percentiles, interpolated linearly between
///   them; below the first percentile the first value, above the last the last value.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Latency {
    #[default]
    None,
    Fixed(Duration),
    Uniform {
        min: Duration,
        max: Duration,
    },
    /// `(quantile in 0..=1, value)` with strictly increasing quantiles and non-decreasing values.
    Percentiles(Vec<(f64, Duration)>),
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ParseError {
    #[error("invalid duration {0:?}: expected a number with a unit us, ms or s (e.g. 50ms)")]
    Duration(String),
    #[error("invalid latency range {0:?}: min must not exceed max")]
    Range(String),
    #[error(
        "invalid percentile {0:?}: expected pNN=DURATION with NN in (0, 100], increasing, values not decreasing"
    )]
    Percentile(String),
}

impl Latency {
    /// Draws one latency.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> Duration {
        match self {
            Self::None => Duration::ZERO,
            Self::Fixed(d) => *d,
            Self::Uniform { min, max } if min == max => *min,
            Self::Uniform { min, max } => rng.random_range(*min..=*max),
            Self::Percentiles(points) => quantile(points, rng.random_range(0.0..1.0)),
        }
    }
}

/// The value at quantile `q` of the piecewise-linear distribution through `points`.
fn quantile(points: &[(f64, Duration)], q: f64) -> Duration {
    let Some(&(first_q, first_v)) = points.first() else {
        return Duration::ZERO;
    };
    if q <= first_q {
        return first_v;
    }
    for pair in points.windows(2) {
        let [(q0, v0), (q1, v1)] = [pair[0], pair[1]];
        if q <= q1 {
            let t = (q - q0) / (q1 - q0);
            return v0 + (v1 - v0).mul_f64(t);
        }
    }
    points.last().map_or(Duration::ZERO, |p| p.1)
}

/// Parses `50ms`, `1.5s`, `250us`, `0`.
pub fn parse_duration(s: &str) -> Result<Duration, ParseError> {
    let s = s.trim();
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let err = || ParseError::Duration(s.to_string());
    let split = s.find(|c: char| c.is_ascii_alphabetic()).ok_or_else(err)?;
    let (number, unit) = s.split_at(split);
    let number: f64 = number.parse().map_err(|_| err())?;
    let seconds = match unit {
        "us" | "µs" => number / 1e6,
        "ms" => number / 1e3,
        "s" => number,
        _ => return Err(err()),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| err())
}

impl FromStr for Latency {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "none" || s == "0" || s.is_empty() {
            return Ok(Self::None);
        }
        if let Some((min, max)) = s.split_once("..") {
            let (min, max) = (parse_duration(min)?, parse_duration(max)?);
            if min > max {
                return Err(ParseError::Range(s.to_string()));
            }
            return Ok(Self::Uniform { min, max });
        }
        if s.starts_with('p') {
            let mut points: Vec<(f64, Duration)> = Vec::new();
            for part in s.split(',') {
                let bad = || ParseError::Percentile(part.to_string());
                let (p, v) = part
                    .trim()
                    .strip_prefix('p')
                    .and_then(|r| r.split_once('='))
                    .ok_or_else(bad)?;
                let p: f64 = p.parse().map_err(|_| bad())?;
                let v = parse_duration(v)?;
                let q = p / 100.0;
                let ordered = points.last().is_none_or(|&(lq, lv)| q > lq && v >= lv);
                if !(q > 0.0 && q <= 1.0 && ordered) {
                    return Err(bad());
                }
                points.push((q, v));
            }
            return Ok(Self::Percentiles(points));
        }
        Ok(Self::Fixed(parse_duration(s)?))
    }
}

impl fmt::Display for Latency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = |d: &Duration| format!("{}ms", d.as_secs_f64() * 1e3);
        match self {
            Self::None => f.write_str("none"),
            Self::Fixed(v) => f.write_str(&d(v)),
            Self::Uniform { min, max } => write!(f, "{}..{}", d(min), d(max)),
            Self::Percentiles(points) => {
                let parts: Vec<String> = points
                    .iter()
                    .map(|(q, v)| format!("p{}={}", q * 100.0, d(v)))
                    .collect();
                f.write_str(&parts.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn parses_every_form() {
        assert_eq!("none".parse(), Ok(Latency::None));
        assert_eq!("0".parse(), Ok(Latency::None));
        assert_eq!("60ms".parse(), Ok(Latency::Fixed(MS(60))));
        assert_eq!("1.5s".parse(), Ok(Latency::Fixed(MS(1500))));
        assert_eq!("250us".parse(), Ok(Latency::Fixed(Duration::from_micros(250))));
        assert_eq!(
            "10ms..20ms".parse(),
            Ok(Latency::Uniform {
                min: MS(10),
                max: MS(20)
            })
        );
        assert_eq!(
            "p50=10ms,p99=100ms".parse(),
            Ok(Latency::Percentiles(vec![(0.5, MS(10)), (0.99, MS(100))]))
        );
    }

    #[test]
    fn rejects_nonsense() {
        for bad in [
            "10",
            "10m",
            "ms",
            "20ms..10ms",
            "p0=1ms",
            "p50=10ms,p40=20ms",
            "p50=10ms,p90=5ms",
            "p101=1s",
        ] {
            assert!(bad.parse::<Latency>().is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn samples_stay_in_their_distribution() {
        let mut rng = rand::rng();
        let uniform: Latency = "10ms..20ms".parse().unwrap();
        let pct: Latency = "p50=10ms,p90=20ms,p100=100ms".parse().unwrap();
        for _ in 0..1000 {
            let u = uniform.sample(&mut rng);
            assert!((MS(10)..=MS(20)).contains(&u), "{u:?}");
            let p = pct.sample(&mut rng);
            assert!((MS(10)..=MS(100)).contains(&p), "{p:?}");
        }
        let points = [(0.5, MS(10)), (0.9, MS(20)), (1.0, MS(100))];
        assert_eq!(quantile(&points, 0.1), MS(10));
        assert_eq!(quantile(&points, 0.7), MS(15));
        assert_eq!(quantile(&points, 0.95), MS(60));
    }
}
