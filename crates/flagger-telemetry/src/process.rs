//! Go-style process metrics (`process_*`, as client_golang's process collector exports them), read from
//! `/proc/self` at scrape time. On systems without `/proc` the metrics are simply absent.
//!
//! | metric | type |
//! |---|---|
//! | `process_cpu_seconds_total` | counter |
//! | `process_resident_memory_bytes` | gauge |
//! | `process_virtual_memory_bytes` | gauge |
//! | `process_start_time_seconds` | gauge (Unix time) |
//! | `process_open_fds` | gauge |
//! | `process_max_fds` | gauge |

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Registry, Unit};

/// Clock ticks per second of `/proc/<pid>/stat` times. Linux fixes USER_HZ at 100 on every architecture
/// Kubernetes runs on; Go's procfs makes the same assumption.
const USER_HZ: f64 = 100.0;

/// Registers the process collector on `registry`, which must have no prefix (the names are `process_*`).
pub fn register(registry: &mut Registry) {
    registry.register_collector(Box::new(ProcessCollector));
}

/// Reads `/proc/self` on every scrape.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProcessCollector;

/// One reading of the process statistics.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    /// User + system CPU time in seconds.
    pub cpu_seconds: f64,
    /// Start time since the Unix epoch in seconds.
    pub start_time_seconds: f64,
    /// Virtual memory size in bytes.
    pub virtual_memory_bytes: u64,
    /// Resident set size in bytes.
    pub resident_memory_bytes: u64,
}

/// Parses `/proc/self/stat` (`stat`), with `/proc/stat`'s `btime` (`boot_time`, seconds since the epoch)
/// and the page size in bytes.
pub fn parse_stat(stat: &str, boot_time: u64, page_size: u64) -> Option<ProcessStats> {
    // The command name (field 2) is in parentheses and may contain spaces: start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is field 3 (state), so field n is fields[n - 3].
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    let utime = field(14)?;
    let stime = field(15)?;
    let start_ticks = field(22)?;
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / USER_HZ,
        start_time_seconds: boot_time as f64 + start_ticks as f64 / USER_HZ,
        virtual_memory_bytes: field(23)?,
        resident_memory_bytes: field(24)? * page_size,
    })
}

/// `btime` of `/proc/stat`.
pub fn parse_boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft "Max open files" limit of `/proc/self/limits` (`None` when unlimited).
pub fn parse_max_fds(limits: &str) -> Option<u64> {
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The page size that `stat`'s RSS is counted in: `KernelPageSize` of `/proc/self/smaps_rollup` (arm64
/// kernels may use 16 or 64 KiB pages), 4 KiB when that is unavailable.
fn page_size() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("KernelPageSize:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(4096, |kb| kb * 1024)
}

fn read_stats() -> Option<ProcessStats> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let boot = parse_boot_time(&std::fs::read_to_string("/proc/stat").ok()?)?;
    parse_stat(&stat, boot, page_size())
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: f64,
) -> std::fmt::Result {
    let metric = ConstGauge::new(value);
    metric.encode(encoder.encode_descriptor(name, help, unit, metric.metric_type())?)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        if let Some(stats) = read_stats() {
            let cpu = ConstCounter::new(stats.cpu_seconds);
            cpu.encode(encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                cpu.metric_type(),
            )?)?;
            gauge(
                &mut encoder,
                "process_resident_memory",
                "Resident memory size in bytes",
                Some(&Unit::Bytes),
                stats.resident_memory_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_virtual_memory",
                "Virtual memory size in bytes",
                Some(&Unit::Bytes),
                stats.virtual_memory_bytes as f64,
            )?;
            gauge(
                &mut encoder,
                "process_start_time",
                "Start time of the process since unix epoch in seconds",
                Some(&Unit::Seconds),
                stats.start_time_seconds,
            )?;
        }
        if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                &mut encoder,
                "process_open_fds",
                "Number of open file descriptors",
                None,
                entries.count() as f64,
            )?;
        }
        if let Some(max) = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .as_deref()
            .and_then(parse_max_fds)
        {
            gauge(
                &mut encoder,
                "process_max_fds",
                "Maximum number of open file descriptors",
                None,
                max as f64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::encoding::prometheus_text;

    #[test]
    fn parses_stat_with_spaces_in_the_command_name() {
        let stat = "4242 (flagger (rs) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 8 0 \
                    12345 104857600 2560 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        let stats = parse_stat(stat, 1_700_000_000, 4096).unwrap();
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                start_time_seconds: 1_700_000_123.45,
                virtual_memory_bytes: 104_857_600,
                resident_memory_bytes: 2560 * 4096,
            }
        );
        assert_eq!(
            parse_boot_time("cpu 1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1048576              1048576              files\n";
        assert_eq!(parse_max_fds(limits), Some(1_048_576));
    }

    #[test]
    fn exports_go_process_metric_names() {
        let mut registry = Registry::default();
        register(&mut registry);
        let mut out = String::new();
        prometheus_text::encode(&mut out, &registry).unwrap();
        for name in [
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_virtual_memory_bytes",
            "process_start_time_seconds",
            "process_open_fds",
            "process_max_fds",
        ] {
            let sample = out
                .lines()
                .find(|l| l.starts_with(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} in {out}"));
            let value: f64 = sample[name.len() + 1..].parse().unwrap();
            // CPU time can still be 0 ticks in a fresh test process; everything else is positive.
            assert!(
                value > 0.0 || (name == "process_cpu_seconds_total" && value == 0.0),
                "{sample}"
            );
        }
        assert!(out.contains("# TYPE process_cpu_seconds_total counter"), "{out}");
        assert!(
            out.contains("# TYPE process_resident_memory_bytes gauge"),
            "{out}"
        );
    }
}
