//! What the bench reports besides rates: latency percentiles, peak memory
//! and CPU time per process, read from /proc.

/// The `p` quantile of `values`, sorted or not.
pub(crate) fn percentile<T: Copy + Ord>(values: &mut [T], p: f64) -> Option<T> {
    values.sort_unstable();
    let last = values.len().checked_sub(1)?;
    Some(values[((last as f64) * p).round() as usize])
}

pub(crate) fn ms(us: Option<u64>) -> f64 {
    us.map_or(0.0, |us| us as f64 / 1000.0)
}

/// Peak resident memory of a process, in MiB (Linux).
pub(crate) fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// CPU time used so far (user + system) by the server, the database,
/// Redis and the bench itself (generator and receiver). Throughput on a
/// shared 2-core machine swings with whatever else runs; CPU per task
/// does much less, so it shows what a change did.
#[derive(Clone, Copy)]
pub(crate) struct CpuTimes {
    pub(crate) seconds: [f64; 4],
}

/// The processes whose CPU `CpuTimes` counts.
pub(crate) struct CpuMeter {
    pub(crate) pids: [Vec<u32>; 4],
}

impl CpuMeter {
    /// The server, the first process called `database`, every process
    /// called `redis-server`, and this one.
    pub(crate) fn new(server: u32, database: &str) -> Self {
        Self {
            pids: [
                vec![server],
                pids_named(database).into_iter().take(1).collect(),
                pids_named("redis-server"),
                vec![std::process::id()],
            ],
        }
    }

    pub(crate) fn now(&self) -> CpuTimes {
        CpuTimes {
            seconds: self
                .pids
                .each_ref()
                .map(|pids| pids.iter().filter_map(|&pid| cpu_seconds(pid)).sum()),
        }
    }

    /// CPU microseconds per task since `before`: server / database / redis
    /// / bench.
    pub(crate) fn per_task(&self, before: CpuTimes, tasks: usize) -> String {
        let now = self.now();
        let us: Vec<String> = (0..4)
            .map(|i| {
                let spent = now.seconds[i] - before.seconds[i];
                format!("{:.0}", spent * 1e6 / tasks.max(1) as f64)
            })
            .collect();
        us.join(" / ")
    }
}

/// Ids of the processes whose command name is `name` (Linux).
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name)
        })
        .collect()
}

/// User plus system CPU seconds a process has used (Linux).
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which may hold spaces, closed by ')'.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // The kernel counts in clock ticks, 100 a second on Linux.
    Some((utime + stime) / 100.0)
}

/// One line of a store's table: what was measured, and its figure.
pub(crate) struct Row {
    pub(crate) figure: String,
    pub(crate) value: String,
}

/// Prints one store's table.
pub(crate) fn print_table(title: &str, rows: &[Row]) {
    println!("\n{title}");
    println!("{:<58} {:>20}", "figure", "value");
    for row in rows {
        println!("{:<58} {:>20}", row.figure, row.value);
    }
}
