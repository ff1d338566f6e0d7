//! What Linux's `/proc` says about a process and the machine: CPU time, memory
//! high-water mark, CPUs and kernel. Off Linux every reading is `None`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Clock ticks per second, the unit of `utime` and `stime` in
/// `/proc/PID/stat` (`sysconf(_SC_CLK_TCK)`, asked of `getconf`; 100, the
/// value on every common Linux platform, if that fails).
pub fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .filter(|out| out.status.success())
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// User plus system CPU time of a process (all its threads), in clock ticks.
/// `pid` may be `"self"`.
pub fn cpu_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) are at 11 and 12 after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Time the given CPUs spent running anything (user, nice and system time
/// in `/proc/stat`), in clock ticks: set against a process's own CPU time,
/// it shows how much else ran on its CPUs.
pub fn cpus_busy_ticks(cpus: &[usize]) -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut total = 0;
    for cpu in cpus {
        let name = format!("cpu{cpu}");
        let line = stat
            .lines()
            .find(|line| line.split_whitespace().next() == Some(name.as_str()))?;
        let fields: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .take(3)
            .filter_map(|f| f.parse().ok())
            .collect();
        if fields.len() < 3 {
            return None;
        }
        total += fields.iter().sum::<u64>();
    }
    Some(total)
}

/// Converts clock ticks to time.
pub fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    Duration::from_secs_f64(ticks as f64 / per_second as f64)
}

/// A `kB` line of `/proc/PID/status` (`VmRSS`, `VmHWM`), in KiB.
pub fn status_kib(pid: &str, key: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

/// Resets the process's peak resident set size (`VmHWM`) to its current
/// size; `false` if the kernel refused.
pub fn reset_peak_rss(pid: &str) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), b"5").is_ok()
}

/// The CPUs this process may run on (`Cpus_allowed_list` of
/// `/proc/self/status`: `0-3`, `0,2,5-7`).
pub fn allowed_cpus() -> Option<Vec<usize>> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let list = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
    parse_cpu_list(list.trim())
}

/// A kernel CPU list (`0-3,8`) as numbers.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((from, to)) => {
                let (from, to): (usize, usize) = (from.parse().ok()?, to.parse().ok()?);
                cpus.extend(from..=to);
            }
            None => cpus.push(part.parse().ok()?),
        }
    }
    Some(cpus)
}

/// The CPUs as a kernel CPU list, `1-3` or `1,3`.
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// The machine, for the report's heading.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpu_model: String,
    /// Logical CPUs online.
    pub cpus: usize,
    pub kernel: String,
    pub memory_mib: Option<u64>,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let field = |name: &str| {
            cpuinfo.lines().find_map(|line| {
                let (key, value) = line.split_once(':')?;
                (key.trim() == name).then(|| value.trim().to_owned())
            })
        };
        let cpu_model = field("model name")
            .or_else(|| field("Hardware"))
            .or_else(|| field("CPU part").map(|part| format!("CPU part {part}")))
            .unwrap_or_else(|| "unknown".into());
        let cpus = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|list| parse_cpu_list(list.trim()))
            .map(|list| list.len())
            .filter(|&n| n > 0)
            .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
            .unwrap_or(1);
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| format!("Linux {}", s.trim()))
            .unwrap_or_else(|_| std::env::consts::OS.to_owned());
        let memory_mib = status_line("/proc/meminfo", "MemTotal").map(|kib| kib / 1024);
        Machine {
            cpu_model,
            cpus,
            kernel,
            memory_mib,
        }
    }
}

fn status_line(path: impl AsRef<Path>, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        let value = line.strip_prefix(key)?.strip_prefix(':')?;
        value.trim().trim_end_matches("kB").trim().parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_round_trip() {
        assert_eq!(parse_cpu_list("0-3,8"), Some(vec![0, 1, 2, 3, 8]));
        assert_eq!(parse_cpu_list("1"), Some(vec![1]));
        assert_eq!(format_cpu_list(&[1, 2, 3, 5, 7, 8]), "1-3,5,7-8");
        assert_eq!(format_cpu_list(&[1]), "1");
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn this_process_has_cpu_time_and_memory() {
        if !cfg!(target_os = "linux") {
            return;
        }
        assert!(cpu_ticks("self").is_some());
        assert!(cpus_busy_ticks(&[0]).is_some());
        assert!(status_kib("self", "VmRSS").is_some_and(|kib| kib > 0));
    }
}
