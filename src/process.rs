//! The standard process metrics Prometheus client libraries export (`process_*`, unprefixed,
//! as dashboards expect them), read from `/proc` at each scrape. Elsewhere than Linux, or
//! when `/proc` is not mounted, the families are absent rather than wrong.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

/// Linux reports times in /proc in USER_HZ, 100 on every architecture it runs on.
const USER_HZ: f64 = 100.0;

/// Reads `/proc/self` on every scrape.
#[derive(Debug, Default)]
pub struct ProcessCollector;

/// One reading.
#[derive(Debug, Default, PartialEq)]
pub struct Reading {
    /// User + system CPU time.
    pub cpu_seconds: f64,
    /// Resident set size.
    pub resident_bytes: i64,
    /// Virtual memory size.
    pub virtual_bytes: i64,
    /// Open file descriptors.
    pub open_fds: i64,
    /// The soft limit on open file descriptors.
    pub max_fds: i64,
    /// Start time, seconds since the epoch.
    pub start_time_seconds: f64,
}

/// Parses `/proc/self/stat` (after the `comm` field, which may hold spaces and parentheses),
/// `/proc/self/status` and `/proc/stat`'s `btime`.
pub fn parse(stat: &str, status: &str, proc_stat: &str) -> Option<Reading> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_comm.split_whitespace().collect();
    // Field 3 (state) is fields[0]: utime is field 14, stime 15, starttime 22.
    let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
    let kb = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<i64>().ok())
            .map(|v| v * 1024)
    };
    let btime = proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse::<f64>().ok())?;
    Some(Reading {
        cpu_seconds: (field(14)? + field(15)?) / USER_HZ,
        resident_bytes: kb("VmRSS:").unwrap_or(0),
        virtual_bytes: kb("VmSize:").unwrap_or(0),
        open_fds: 0,
        max_fds: 0,
        start_time_seconds: btime + field(22)? / USER_HZ,
    })
}

/// Reads this process now.
pub fn read() -> Option<Reading> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let proc_stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut r = parse(&stat, &status, &proc_stat)?;
    r.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as i64)
        .unwrap_or(0);
    r.max_fds = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0);
    Some(r)
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(r) = read() else {
            return Ok(());
        };
        let cpu = ConstCounter::new(r.cpu_seconds);
        cpu.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            None,
            cpu.metric_type(),
        )?)?;
        let gauges: [(&str, &str, f64); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                r.resident_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                r.virtual_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                r.open_fds as f64,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                r.max_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since the Unix epoch in seconds",
                r.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(value);
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_files_parse_even_with_a_command_name_holding_spaces_and_parentheses() {
        let stat = "4242 (mtls gw (x)) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 50 0 0 20 0 4 0 12345 1000000 300 18446744073709551615";
        let status = "Name:\tmtls-gateway\nVmSize:\t  20480 kB\nVmRSS:\t   12288 kB\n";
        let proc_stat = "cpu  1 2 3\nbtime 1700000000\nprocesses 5\n";
        let r = parse(stat, status, proc_stat).unwrap();
        assert_eq!(r.cpu_seconds, 3.0);
        assert_eq!(r.resident_bytes, 12288 * 1024);
        assert_eq!(r.virtual_bytes, 20480 * 1024);
        assert_eq!(r.start_time_seconds, 1700000000.0 + 123.45);
        assert!(parse("garbage", status, proc_stat).is_none());
    }

    #[test]
    fn this_process_can_be_read() {
        let r = read().unwrap();
        assert!(r.resident_bytes > 0 && r.open_fds > 0 && r.max_fds > 0);
        assert!(r.start_time_seconds > 1.6e9);
    }
}
