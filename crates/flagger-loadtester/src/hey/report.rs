//! hey's summary: the same sections, numbers and layout as hey's default output, computed the same way
//! (percentiles, histogram buckets). hey's "Details" section (DNS, dial, write, wait and read times) is
//! left out: the built-in client does not time those phases separately.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

/// hey keeps at most this many latencies for the percentiles and the histogram.
pub const MAX_RESULTS: usize = 1_000_000;

/// The outcome of a run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// Wall time of the run.
    pub total: Duration,
    /// Requests that completed (with a response or an error).
    pub responses: u64,
    /// Latencies in seconds of the requests that got a response (at most [`MAX_RESULTS`]).
    pub latencies: Vec<f64>,
    /// Sum of the latencies of all requests that got a response, and their number.
    pub latency_sum: f64,
    /// Number of responses.
    pub ok_count: u64,
    /// Sum of the positive Content-Length values.
    pub size_total: u64,
    /// Responses per status code.
    pub status_codes: BTreeMap<u16, u64>,
    /// Errors by message.
    pub errors: BTreeMap<String, u64>,
}

fn num(v: f64) -> String {
    format!("{v:4.4}")
}

impl Report {
    /// Requests per second (completed requests, errors included, over the wall time).
    pub fn rps(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let n = self.responses as f64;
        n / self.total.as_secs_f64()
    }

    fn sorted(&self) -> Vec<f64> {
        let mut lats = self.latencies.clone();
        lats.sort_by(f64::total_cmp);
        lats
    }

    /// hey's latency distribution: `(percentile, seconds)` for 10, 25, 50, 75, 90, 95 and 99; `(0, 0.0)`
    /// where hey has no value.
    pub fn percentiles(&self) -> Vec<(u32, f64)> {
        percentiles_of(&self.sorted())
    }

    /// The latency at percentile `p` of [`Report::percentiles`] (e.g. 99).
    pub fn percentile(&self, p: u32) -> Option<f64> {
        self.percentiles()
            .into_iter()
            .find(|(q, _)| *q == p)
            .map(|(_, v)| v)
    }

    fn histogram(lats: &[f64]) -> String {
        let (Some(&fastest), Some(&slowest)) = (lats.first(), lats.last()) else {
            return String::new();
        };
        let bc = 10;
        let bs = (slowest - fastest) / f64::from(bc);
        let mut marks: Vec<f64> = (0..bc).map(|i| fastest + bs * f64::from(i)).collect();
        marks.push(slowest);
        let mut counts = vec![0u64; marks.len()];
        let mut bi = 0;
        let mut i = 0;
        while i < lats.len() {
            if lats[i] <= marks[bi] {
                i += 1;
                counts[bi] += 1;
            } else if bi < marks.len() - 1 {
                bi += 1;
            } else {
                // Only NaN latencies could get here; they are never recorded.
                break;
            }
        }
        let max = counts.iter().copied().max().unwrap_or(0);
        let mut out = String::new();
        for (mark, count) in marks.iter().zip(&counts) {
            let bar = (count * 40 + max / 2)
                .checked_div(max)
                .and_then(|b| usize::try_from(b).ok())
                .unwrap_or(0);
            let _ = writeln!(out, "  {mark:4.3} [{count}]\t|{}", "■".repeat(bar));
        }
        out
    }

    /// hey's default summary, byte for byte where the numbers are the same (without "Details").
    pub fn summary(&self) -> String {
        let lats = self.sorted();
        let (fastest, slowest) = (
            lats.first().copied().unwrap_or(0.0),
            lats.last().copied().unwrap_or(0.0),
        );
        #[allow(clippy::cast_precision_loss)]
        let average = self.latency_sum / self.ok_count as f64;
        let mut s = String::new();
        let _ = write!(
            s,
            "\nSummary:\n  Total:\t{} secs\n  Slowest:\t{} secs\n  Fastest:\t{} secs\n  Average:\t{} secs\n  Requests/sec:\t{}\n  ",
            num(self.total.as_secs_f64()),
            num(slowest),
            num(fastest),
            num(average),
            num(self.rps()),
        );
        if self.size_total > 0 {
            let per = self.size_total / (lats.len() as u64).max(1);
            let _ = write!(
                s,
                "\n  Total data:\t{} bytes\n  Size/request:\t{per} bytes",
                self.size_total
            );
        }
        let _ = write!(
            s,
            "\n\nResponse time histogram:\n{}\n\nLatency distribution:",
            Self::histogram(&lats)
        );
        if !lats.is_empty() {
            for (p, v) in percentiles_of(&lats) {
                // hey's template writes `%%`; its v0.1.5 release (what `go install ...@latest` gets) prints
                // it as it is (`99%% in 0.0088 secs`).
                let _ = write!(s, "\n  {p}%% in {} secs", num(v));
            }
        }
        s.push_str("\n\nStatus code distribution:");
        for (code, n) in &self.status_codes {
            let _ = write!(s, "\n  [{code}]\t{n} responses");
        }
        s.push_str("\n\n");
        if !self.errors.is_empty() {
            s.push_str("Error distribution:");
            for (err, n) in &self.errors {
                let _ = write!(s, "\n  [{n}]\t{err}");
            }
        }
        s.push_str("\n\n");
        s
    }
}

/// hey's latency distribution of the `sorted` latencies (see [`Report::percentiles`]).
fn percentiles_of(lats: &[f64]) -> Vec<(u32, f64)> {
    let pctls = [10usize, 25, 50, 75, 90, 95, 99];
    let mut data = [0.0f64; 7];
    let mut j = 0;
    for (i, lat) in lats.iter().enumerate() {
        if j >= pctls.len() {
            break;
        }
        if i * 100 / lats.len() >= pctls[j] {
            data[j] = *lat;
            j += 1;
        }
    }
    pctls
        .iter()
        .zip(data)
        .map(|(&p, d)| {
            if d > 0.0 {
                (u32::try_from(p).unwrap_or_default(), d)
            } else {
                (0, 0.0)
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(lats: &[f64]) -> Report {
        Report {
            total: Duration::from_secs(2),
            responses: lats.len() as u64 + 1,
            latencies: lats.to_vec(),
            latency_sum: lats.iter().sum(),
            ok_count: lats.len() as u64,
            size_total: 0,
            status_codes: BTreeMap::from([(200, lats.len() as u64)]),
            errors: BTreeMap::from([("Get \"http://x/\": connection refused".to_owned(), 1)]),
        }
    }

    #[test]
    fn percentiles_as_hey_computes_them() {
        let lats: Vec<f64> = (1..=100).map(|i| f64::from(i) / 1000.0).collect();
        let r = report(&lats);
        assert_eq!(
            r.percentiles(),
            vec![
                (10, 0.011),
                (25, 0.026),
                (50, 0.051),
                (75, 0.076),
                (90, 0.091),
                (95, 0.096),
                (99, 0.1)
            ]
        );
        // Too few values for the upper percentiles: hey reports zeros.
        let r = report(&[0.5, 0.25]);
        assert_eq!(r.percentiles()[..3], [(10, 0.5), (0, 0.0), (0, 0.0)]);
    }

    #[test]
    fn summary_layout() {
        let r = report(&[0.001, 0.002, 0.003, 0.004]);
        let s = r.summary();
        assert!(s.starts_with("\nSummary:\n  Total:\t2.0000 secs\n  Slowest:\t0.0040 secs\n  Fastest:\t0.0010 secs\n  Average:\t0.0025 secs\n  Requests/sec:\t2.5000\n  \n\nResponse time histogram:\n  0.001 [1]\t|"), "{s}");
        assert!(s.contains("\n  0.004 [1]\t|"), "{s}");
        assert!(s.contains("\n\nLatency distribution:\n  10%% in 0.0020 secs\n  25%% in 0.0030 secs\n  50%% in 0.0040 secs\n  0%% in 0.0000 secs"), "{s}");
        assert!(s.contains("\n\nStatus code distribution:\n  [200]\t4 responses\n\nError distribution:\n  [1]\tGet \"http://x/\": connection refused\n\n"), "{s}");
        assert_eq!(
            Report::histogram(&[1.0, 1.0, 2.0]).lines().next(),
            Some("  1.000 [2]\t|■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■■")
        );
    }
}
