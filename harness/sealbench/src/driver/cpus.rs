//! `run --cpus`: which CPUs the driver's shard threads and the embedded relay's threads
//! may run on, so that on a shared machine the two do not take each other's cores
//! (`driver=0,relay=1`). Without it, every thread may run on every core (the scheduler
//! decides), as before; the summary's `generator.cores` says which it was.
//!
//! Pinning is `sched_setaffinity` on each thread as it starts (through `rustix`), once per
//! thread: nothing on the per-message path.

use std::fmt;

/// The CPUs each part may use; `None`: not pinned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSplit {
    /// The driver's shard threads.
    pub driver: Option<Vec<usize>>,
    /// The embedded relay's runtime threads (its workers and its accept thread).
    pub relay: Option<Vec<usize>>,
}

impl CpuSplit {
    /// Reads `driver=LIST,relay=LIST` (either part may be left out). A LIST is CPU numbers
    /// and ranges: `driver=0-2,relay=3` or `driver=0,1,relay=2` (a bare number or range
    /// continues the part named before it).
    ///
    /// # Errors
    /// A part other than `driver` or `relay`, a number that is not one, an empty or
    /// reversed range, a part given twice, or nothing at all.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut split = CpuSplit::default();
        let mut current: Option<&mut Vec<usize>> = None;
        for item in text.split(',').map(str::trim) {
            let list = match item.split_once('=') {
                Some((part, list)) => {
                    let slot = match part.trim() {
                        "driver" => &mut split.driver,
                        "relay" => &mut split.relay,
                        other => {
                            return Err(format!(
                                "`{other}`: the parts are `driver` and `relay` (e.g. driver=0,relay=1)"
                            ));
                        }
                    };
                    if slot.is_some() {
                        return Err(format!("`{}` is given twice", part.trim()));
                    }
                    current = Some(slot.insert(Vec::new()));
                    list.trim()
                }
                None => item,
            };
            let Some(cpus) = current.as_deref_mut() else {
                return Err(format!("`{item}`: name the part first: driver=LIST,relay=LIST (e.g. driver=0,relay=1)"));
            };
            let (lo, hi) = match list.split_once('-') {
                Some((a, b)) => (cpu_number(a)?, cpu_number(b)?),
                None => (cpu_number(list)?, cpu_number(list)?),
            };
            if hi < lo {
                return Err(format!("`{list}`: a range goes from the lower CPU to the higher"));
            }
            cpus.extend(lo..=hi);
        }
        for cpus in [&mut split.driver, &mut split.relay].into_iter().flatten() {
            cpus.sort_unstable();
            cpus.dedup();
        }
        if split.driver.is_none() && split.relay.is_none() {
            return Err("give driver=LIST and/or relay=LIST (e.g. driver=0,relay=1)".into());
        }
        Ok(split)
    }

    /// Checks that every CPU named exists and this process may run on it.
    ///
    /// # Errors
    /// Names the first CPU that does not, and the ones there are.
    pub fn check(&self) -> Result<(), String> {
        let allowed =
            rustix::thread::sched_getaffinity(None).map_err(|e| format!("cannot read this process's CPUs: {e}"))?;
        let usable: Vec<usize> = (0..rustix::thread::CpuSet::MAX_CPU).filter(|c| allowed.is_set(*c)).collect();
        for (part, cpus) in self.parts() {
            if let Some(c) = cpus.iter().find(|c| !usable.contains(c)) {
                return Err(format!(
                    "{part}={}: CPU {c} does not exist here, or this process may not use it (it may use CPUs {})",
                    list(cpus),
                    list(&usable)
                ));
            }
        }
        Ok(())
    }

    /// The parts that are pinned, named.
    fn parts(&self) -> impl Iterator<Item = (&'static str, &[usize])> {
        [("driver", &self.driver), ("relay", &self.relay)].into_iter().filter_map(|(n, c)| Some((n, c.as_deref()?)))
    }

    /// Whether the two parts share a CPU.
    pub fn overlap(&self) -> bool {
        match (&self.driver, &self.relay) {
            (Some(d), Some(r)) => d.iter().any(|c| r.contains(c)),
            _ => false,
        }
    }
}

impl fmt::Display for CpuSplit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.parts().map(|(n, c)| format!("{n}={}", list(c))).collect();
        f.write_str(&parts.join(","))
    }
}

fn cpu_number(text: &str) -> Result<usize, String> {
    text.trim().parse().map_err(|_| format!("`{}` is not a CPU number", text.trim()))
}

/// `0-2,5`: a CPU list as `taskset -c` and `/sys/devices/system/cpu/online` write it.
pub fn list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if j == i { cpus[i].to_string() } else { format!("{}-{}", cpus[i], cpus[j]) });
        i = j + 1;
    }
    out.join(",")
}

/// Pins the calling thread to `cpus` (checked beforehand with [`CpuSplit::check`]).
///
/// # Errors
/// The kernel refused (the process's own CPU set changed since the check).
pub fn pin_this_thread(cpus: &[usize]) -> std::io::Result<()> {
    let mut set = rustix::thread::CpuSet::new();
    for c in cpus {
        set.set(*c);
    }
    rustix::thread::sched_setaffinity(None, &set).map_err(std::io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_split_reads_parts_lists_and_ranges() -> Result<(), String> {
        let s = CpuSplit::parse("driver=0,relay=1")?;
        assert_eq!((s.driver.as_deref(), s.relay.as_deref()), (Some(&[0][..]), Some(&[1][..])));
        let s = CpuSplit::parse("driver=0-2,5,relay=3")?;
        assert_eq!(s.driver.as_deref(), Some(&[0, 1, 2, 5][..]));
        assert_eq!(s.to_string(), "driver=0-2,5,relay=3");
        assert_eq!(CpuSplit::parse("relay=1")?.driver, None);
        assert!(CpuSplit::parse("driver=0,relay=0")?.overlap());
        Ok(())
    }

    #[test]
    fn cpu_split_refuses_bad_input_with_a_reason() {
        for (bad, says) in [
            ("", "name the part first"),
            ("driver=", "not a CPU number"),
            ("0,1", "name the part first"),
            ("gpu=1", "the parts are"),
            ("driver=x", "not a CPU number"),
            ("driver=3-1", "lower CPU"),
            ("driver=0,driver=1", "given twice"),
        ] {
            let e = CpuSplit::parse(bad).expect_err(bad);
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn a_cpu_that_does_not_exist_is_refused() {
        let last = rustix::thread::CpuSet::MAX_CPU - 1;
        let s = CpuSplit { driver: Some(vec![0]), relay: Some(vec![last]) };
        let e = s.check().expect_err("the last CPU a set can name does not exist on a test machine");
        assert!(e.contains("does not exist"), "{e}");
    }
}
