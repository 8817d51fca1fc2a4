//! The relay that reads, as a scenario asks for it: what messages say after their stamp
//! (`traffic.content`, `traffic.keyword_share`) and the embedded relay's keyword scan
//! (`relay.scan`), checked together — the keywords planted must be on the list scanned.

use super::{Content, RelayTarget, ScanChoice, Scenario};
use crate::relay::scan::{ScanAction, WordList};
use anyhow::{Result, bail};
use std::sync::Arc;

/// Keywords are planted from at most this many of the generated list's first words.
pub const PLANT_FROM: usize = 1_000;

/// What fills messages after their stamp, as the driver needs it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ContentPlan {
    /// Text (`traffic.content = "text"`) rather than zeros.
    pub text: bool,
    /// The share of messages that carry a keyword.
    pub keyword_share: f64,
    /// Keywords are planted from the generated list's first this many words.
    pub keywords: usize,
    /// The run's seed: which text each message carries.
    pub seed: u64,
}

/// The embedded relay's scan: its list, read or generated once, and its action.
#[derive(Debug, Clone)]
pub struct ScanPlan {
    /// The keywords.
    pub list: Arc<WordList>,
    /// Count or block a match.
    pub action: ScanAction,
}

/// `traffic.content` and `traffic.keyword_share`, checked.
///
/// # Errors
/// A share outside 0..=1, or a share with zeros (nothing to plant a keyword in).
pub(super) fn content(s: &Scenario) -> Result<ContentPlan> {
    let t = &s.traffic;
    if !(t.keyword_share.is_finite() && (0.0..=1.0).contains(&t.keyword_share)) {
        bail!(
            "traffic.keyword_share: must be between 0 and 1 (the share of messages with a keyword), got {}",
            t.keyword_share
        );
    }
    if t.keyword_share > 0.0 && t.content == Content::Zeros {
        bail!("traffic.keyword_share: only with traffic.content = \"text\" (zeros cannot carry a keyword)");
    }
    let listed = s.relay.scan.as_ref().and_then(|c| c.words).unwrap_or(PLANT_FROM);
    Ok(ContentPlan {
        text: t.content == Content::Text,
        keyword_share: t.keyword_share,
        keywords: listed.clamp(1, PLANT_FROM),
        seed: s.seed,
    })
}

/// `relay.scan`, checked, with its list read (a file) or generated (`words`).
///
/// # Errors
/// A scan for an external relay, both or neither of `words` and `file`, an empty or
/// unreadable list: each names the field or the file.
pub(super) fn scan(s: &Scenario) -> Result<Option<ScanPlan>> {
    let Some(choice) = &s.relay.scan else { return Ok(None) };
    if s.relay.url != RelayTarget::Embedded {
        bail!(
            "relay.scan: only the embedded relay scans from a scenario; start the external relay with \
             `sealbench relay --scan FILE` or `--scan-words N` instead"
        );
    }
    let list = match choice {
        ScanChoice { words: Some(_), file: Some(_), .. } => {
            bail!("relay.scan: give `words` (a generated list) or `file`, not both")
        }
        ScanChoice { words: Some(n), .. } => WordList::generated(*n, "relay.scan.words")?,
        ScanChoice { file: Some(path), .. } => {
            WordList::read(path).map_err(|e| anyhow::anyhow!("relay.scan.file: {e}"))?
        }
        ScanChoice { .. } => {
            bail!("relay.scan: give `words` (e.g. 10000, a generated list) or `file` (one keyword a line)")
        }
    };
    Ok(Some(ScanPlan { list: Arc::new(list), action: choice.action }))
}
