//! A run split over several processes (machines): which conversations this process runs.
//!
//! Every process of a split run reads the same scenario and seed, so each lays out the
//! same population; the conversations are dealt to the `count` parts in order, each to
//! the part with the fewest devices so far — deterministic, whole conversations (every
//! sender and recipient of a message in one process, on one clock), balanced by devices.
//! Relay ids are global (device index + 1), so the parts' clients never collide.

use super::Plan;
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Part `index` of `count` (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Part {
    /// This process's part, `0..count`.
    pub index: usize,
    /// How many parts the run is split into.
    pub count: usize,
}

impl FromStr for Part {
    type Err = String;
    /// `I/N`, e.g. `0/3`.
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}`: write the part as I/N, e.g. 0/3 (I from 0 to N-1)");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) = (i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?);
        Part::new(index, count)
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Part {
    /// Part `index` of `count`.
    ///
    /// # Errors
    /// `count` is 0 or `index` is not below it.
    pub fn new(index: usize, count: usize) -> Result<Part, String> {
        if count == 0 || index >= count {
            return Err(format!("part {index}/{count}: the index must be below the count (0 ≤ I < N)"));
        }
        Ok(Part { index, count })
    }

    /// The part from a Kubernetes Indexed Job's environment: `JOB_COMPLETION_INDEX` and
    /// `SEALBENCH_SHARDS` (the Job's `completions`). None when neither is set.
    ///
    /// # Errors
    /// One set without the other, or values that are not a valid part.
    pub fn from_env(index: Option<String>, count: Option<String>) -> Result<Option<Part>, String> {
        match (index, count) {
            (None, None) => Ok(None),
            (Some(i), Some(n)) => format!("{i}/{n}").parse().map(Some),
            (Some(_), None) => {
                Err("JOB_COMPLETION_INDEX is set but SEALBENCH_SHARDS (the number of parts) is not".into())
            }
            (None, Some(_)) => {
                Err("SEALBENCH_SHARDS is set but JOB_COMPLETION_INDEX (this part's index) is not".into())
            }
        }
    }
}

impl Plan {
    /// Runs only `part` of the conversations.
    ///
    /// # Errors
    /// When there are fewer conversations than parts.
    pub fn with_part(mut self, part: Part) -> Result<Plan> {
        if part.count > self.conversations() {
            bail!(
                "--shard {part}: the scenario has {} conversations, fewer than {} parts",
                self.conversations(),
                part.count
            );
        }
        self.part = Some(part);
        Ok(self)
    }

    /// For each conversation, the part that runs it (all 0 when the run is not split).
    pub fn chat_parts(&self) -> Vec<usize> {
        let Some(part) = self.part else { return vec![0; self.conversations()] };
        let mut load = vec![0u64; part.count];
        self.population
            .chats
            .iter()
            .map(|c| {
                let p = (0..part.count).min_by_key(|&i| (load[i], i)).unwrap_or(0);
                load[p] += u64::from(self.population.device_count(c));
                p
            })
            .collect()
    }

    /// Whether this process runs conversation `chat` (by index).
    pub fn runs(&self, parts: &[usize], chat: usize) -> bool {
        self.part.is_none_or(|p| parts[chat] == p.index)
    }

    /// Conversations and devices this process runs.
    pub fn local(&self) -> (usize, usize) {
        let parts = self.chat_parts();
        let mut n = (0, 0);
        for (i, c) in self.population.chats.iter().enumerate() {
            if self.runs(&parts, i) {
                n.0 += 1;
                n.1 += self.population.device_count(c) as usize;
            }
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::Scenario;

    #[test]
    fn parts_parse_and_refuse_what_cannot_be_a_part() {
        assert_eq!("1/3".parse::<Part>(), Ok(Part { index: 1, count: 3 }));
        for bad in ["3/3", "1", "a/3", "0/0", "-1/2"] {
            assert!(bad.parse::<Part>().is_err(), "{bad}");
        }
        assert_eq!(Part::from_env(Some("2".into()), Some("4".into())), Ok(Some(Part { index: 2, count: 4 })));
        assert_eq!(Part::from_env(None, None), Ok(None));
        assert!(Part::from_env(Some("2".into()), None).unwrap_err().contains("SEALBENCH_SHARDS"));
    }

    #[test]
    fn the_parts_cover_every_conversation_once_balanced_by_devices() -> anyhow::Result<()> {
        let text = "name = \"t\"\nduration = \"1s\"\n[clients]\ncount = 999\ndevices = [{ devices = 1, weight = 1 }, \
                    { devices = 3, weight = 1 }]\n";
        let whole = Plan::new(Scenario::parse(text, "t.toml", &[])?)?;
        let mut devices = Vec::new();
        let mut chats = 0;
        for i in 0..3 {
            let p = whole.clone().with_part(Part::new(i, 3).map_err(anyhow::Error::msg)?)?;
            let (c, d) = p.local();
            chats += c;
            devices.push(d);
        }
        assert_eq!(chats, whole.conversations(), "every conversation in exactly one part");
        assert_eq!(devices.iter().sum::<usize>(), 999);
        let (lo, hi) = (devices.iter().min().unwrap(), devices.iter().max().unwrap());
        assert!(hi - lo <= 6, "balanced by devices: {devices:?}");
        Ok(())
    }
}
