//! Text → [`Scenario`]: the TOML file, its `--set` overrides, and errors that name the
//! file, the line and the field — or the `--set` that is wrong.

use super::{Plan, Scenario};
use anyhow::{Context, Result, anyhow, bail};
use std::path::Path;

impl Scenario {
    /// Loads `path`, applies `overrides` (`path.to.field=value`), and checks the whole
    /// scenario (see [`Plan::new`]).
    ///
    /// # Errors
    /// Unreadable file; TOML syntax error or unknown / mistyped field (with file, line
    /// and field); an override that does not parse or sets a wrong value (naming the
    /// `--set`); an invalid combination (naming the field).
    pub fn load(path: &Path, overrides: &[String]) -> Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading scenario {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// As [`load`](Self::load), from text; `origin` names it in errors.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        let scenario = Self::parse_fields(text, origin, overrides)?;
        Plan::check(&scenario).map_err(|e| anyhow!("{origin}: {e:#}"))?;
        Ok(scenario)
    }

    /// Reads the fields (each choice into its type) without the whole-scenario checks,
    /// so that typed edits can follow before [`Plan::new`].
    ///
    /// # Errors
    /// As [`load`](Self::load), less the whole-scenario checks.
    pub fn parse_fields(text: &str, origin: &str, overrides: &[String]) -> Result<Scenario> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| anyhow!("{origin}: {}", located(text, &e)))?;
        let mut set_paths = Vec::new();
        for o in overrides {
            set_paths.push(apply_override(&mut table, o)?);
        }
        exclusive(&table, overrides).map_err(|e| anyhow!("{origin}: {e}"))?;
        if overrides.is_empty() {
            return toml::from_str(text).map_err(|e| anyhow!("{origin}: {}", located(text, &e)));
        }
        let merged = toml::to_string(&table).context("re-serialising the scenario")?;
        toml::from_str(&merged).map_err(|e| {
            let path = e.span().and_then(|s| field_at(&merged, s.start));
            let msg = e.message().trim();
            match path {
                Some(p) => match set_paths.iter().position(|sp| *sp == p) {
                    Some(i) => anyhow!("{origin}: --set {}: {msg}", overrides[i]),
                    None => match line_of(text, &p) {
                        Some((n, src)) => anyhow!("{origin}: line {n}: {p}: {msg} (at `{src}`)"),
                        None => anyhow!("{origin}: {p}: {msg}"),
                    },
                },
                None => anyhow!("{origin} (with --set overrides): {msg}"),
            }
        })
    }
}

/// Pairs of fields of which a scenario may hold one: refused when both are there, with
/// the `--set` that removes one.
fn exclusive(table: &toml::Table, overrides: &[String]) -> Result<()> {
    let Some(traffic) = table.get("traffic").and_then(toml::Value::as_table) else { return Ok(()) };
    for (a, b) in [("rate", "aggregate_rate"), ("size", "sizes")] {
        if traffic.contains_key(a) && traffic.contains_key(b) {
            let how = if overrides.is_empty() { "remove one" } else { "remove one (e.g. --set traffic.{a}=)" };
            bail!("traffic: `{a}` and `{b}` are both set, but only one can apply; {how}");
        }
    }
    Ok(())
}

/// A TOML error with its line, the field and the offending line's text.
fn located(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let at = span.start.min(text.len());
            let line = text[..at].matches('\n').count() + 1;
            let src = text.lines().nth(line - 1).unwrap_or("").trim();
            let field = field_at(text, at).map(|f| format!("{f}: ")).unwrap_or_default();
            format!("line {line}: {field}{} (at `{src}`)", e.message().trim())
        }
        None => e.message().trim().to_owned(),
    }
}

/// The dotted path of the field at byte `at` of a TOML text: the last `[table]` header
/// before it and the key on its line (scenario files use no inline tables for fields).
fn field_at(text: &str, at: usize) -> Option<String> {
    let at = at.min(text.len());
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = text[line_start..].lines().next().unwrap_or("");
    let header = text[..line_start].lines().filter_map(header_of).next_back();
    if let Some(h) = header_of(line) {
        return Some(h);
    }
    let key = key_of(line)?;
    Some(match header {
        Some(h) => format!("{h}.{key}"),
        None => key,
    })
}

/// The first line (1-based) and text of field `path` in a TOML text.
fn line_of(text: &str, path: &str) -> Option<(usize, String)> {
    let mut header: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = header_of(line) {
            if h == path {
                return Some((i + 1, line.trim().to_owned()));
            }
            header = Some(h);
            continue;
        }
        if let Some(k) = key_of(line) {
            let p = match &header {
                Some(h) => format!("{h}.{k}"),
                None => k,
            };
            if p == path {
                return Some((i + 1, line.trim().to_owned()));
            }
        }
    }
    None
}

fn header_of(line: &str) -> Option<String> {
    let t = line.trim();
    let inner =
        t.strip_prefix("[[").and_then(|r| r.split("]]").next()).or_else(|| t.strip_prefix('[')?.split(']').next())?;
    Some(inner.trim().replace(['"', ' '], ""))
}

fn key_of(line: &str) -> Option<String> {
    let t = line.trim();
    if t.starts_with('#') || t.starts_with('[') {
        return None;
    }
    let (k, _) = t.split_once('=')?;
    let k = k.trim().replace(['"', ' '], "");
    (!k.is_empty()).then_some(k)
}

/// Applies one `a.b.c=value` override and returns its path; the value is read as TOML
/// (`50`, `true`, `"XX"`), falling back to a plain string (`XX`, `30s`). An empty value
/// removes the field. A number in the path indexes an array of tables, from 0 as in error
/// messages: `stages.1.duration=3s` (or `stages[1].duration=3s`) is the second stage's.
fn apply_override(table: &mut toml::Table, o: &str) -> Result<String> {
    let (path, raw) = o.split_once('=').ok_or_else(|| anyhow!("--set {o}: expected path=value"))?;
    let path = path.trim().replace('[', ".").replace(']', "");
    let raw = raw.trim();
    let keys: Vec<&str> = path.split('.').collect();
    if keys.iter().any(|k| k.is_empty()) {
        bail!("--set {o}: empty field name in `{path}`");
    }
    let (last, parents) = keys.split_last().ok_or_else(|| anyhow!("--set {o}: no field name"))?;
    let mut root = toml::Value::Table(std::mem::take(table));
    let applied = set_in(&mut root, parents, last, raw, o);
    if let toml::Value::Table(t) = root {
        *table = t;
    }
    applied.map(|()| path.clone())
}

/// Walks `parents` from `cur` (creating tables on the way when setting) and sets or, for
/// an empty `raw`, removes `last`.
fn set_in(cur: &mut toml::Value, parents: &[&str], last: &str, raw: &str, o: &str) -> Result<()> {
    let mut cur = cur;
    for (i, k) in parents.iter().enumerate() {
        let here = parents[..i].join(".");
        cur = match cur {
            toml::Value::Table(t) => {
                if raw.is_empty() && !t.contains_key(*k) {
                    return Ok(()); // nothing to remove
                }
                t.entry((*k).to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()))
            }
            toml::Value::Array(a) => {
                let n = a.len();
                let i: usize = k.parse().map_err(|_| {
                    anyhow!("--set {o}: `{here}` is a list: index it with a number (from 0), not `{k}`")
                })?;
                a.get_mut(i).ok_or_else(|| {
                    anyhow!("--set {o}: `{here}` has {n} entries (0 to {}): there is no {i}", n.saturating_sub(1))
                })?
            }
            _ => bail!("--set {o}: `{here}` is not a table"),
        };
    }
    let here = parents.join(".");
    let toml::Value::Table(t) = cur else {
        bail!("--set {o}: `{here}` is not a table (a list's entries are indexed by number, from 0: `{here}.0.{last}`)")
    };
    if raw.is_empty() {
        t.remove(last);
        return Ok(());
    }
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    t.insert(last.to_owned(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_time_scale_multiplies_the_whole_timeline_and_nothing_else() {
        let text = include_str!("../../../../scenarios/messenger-mix.toml");
        let base = Scenario::parse_fields(text, "m.toml", &[]).unwrap();
        let mut s = base.clone();
        let edits = super::super::Edits { time_scale: Some(0.1), ..Default::default() };
        edits.check(&mut s).unwrap();
        edits.apply(&mut s);
        assert!(!base.stages.is_empty());
        for (a, b) in base.stages.iter().zip(&s.stages) {
            assert_eq!(b.duration.as_secs_f64(), a.duration.as_secs_f64() * 0.1);
            assert_eq!((a.rate, a.from), (b.rate, b.from), "the shape stays");
        }
        assert_eq!(s.clients.count, base.clients.count);
        let bad = super::super::Edits { time_scale: Some(-1.0), ..Default::default() };
        assert!(bad.check(&mut s.clone()).is_err());
    }

    use super::*;
    use anyhow::Result;
    use sealcore::{AeadKind, Pattern};
    use std::time::Duration;

    const MIN: &str = "name = \"t\"\nduration = \"5s\"\n[clients]\ncount = 10\n";

    #[test]
    fn a_minimal_scenario_gets_defaults() {
        let s = Scenario::parse(MIN, "t.toml", &[]).unwrap();
        assert_eq!(s.cooldown, Duration::from_secs(2));
        let p = Plan::new(s).unwrap();
        assert_eq!(p.scenario.crypto.pattern, Pattern::XX);
        assert_eq!(p.scenario.crypto.aead, AeadKind::ChaCha20Poly1305);
        assert_eq!(p.sizes, vec![(256, 1.0)]);
    }

    #[test]
    fn unknown_fields_are_refused_with_file_line_and_field() {
        let text = format!("{MIN}colour = \"red\"\n");
        let e = Scenario::parse(&text, "t.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("t.toml") && e.contains("line 5") && e.contains("colour"), "{e}");
        let text = format!("{MIN}[crypto]\naead = \"rot13\"\n");
        let e = format!("{:#}", Scenario::parse(&text, "t.toml", &[]).unwrap_err());
        assert!(e.contains("crypto.aead") && e.contains("rot13"), "{e}");
    }

    #[test]
    fn overrides_reach_any_field_and_are_validated() {
        let sets = vec!["traffic.rate=50".to_owned(), "crypto.pattern=IK".to_owned(), "duration=2s".to_owned()];
        let s = Scenario::parse(MIN, "t.toml", &sets).unwrap();
        assert_eq!(s.traffic.rate, Some(50.0));
        assert_eq!(s.crypto.pattern, Pattern::IK);
        assert_eq!(s.duration, Duration::from_secs(2));
        assert!(Scenario::parse(MIN, "t.toml", &["clients.count=3".to_owned()]).is_err());
        assert!(Scenario::parse(MIN, "t.toml", &["nonsense".to_owned()]).is_err());
    }

    #[test]
    fn a_wrong_override_is_named_and_a_wrong_file_line_keeps_its_line() {
        let e = format!("{:#}", Scenario::parse(MIN, "t.toml", &["crypto.aead=rot13".to_owned()]).unwrap_err());
        assert!(e.contains("--set crypto.aead=rot13") && e.contains("rot13"), "{e}");
        let text = format!("{MIN}[traffic]\narrival = \"bursty\"\n");
        let e = format!("{:#}", Scenario::parse(&text, "t.toml", &["duration=2s".to_owned()]).unwrap_err());
        assert!(e.contains("line 6") && e.contains("traffic.arrival") && e.contains("bursty"), "{e}");
        let e = format!("{:#}", Scenario::parse(MIN, "t.toml", &["relay.url=http://x/".to_owned()]).unwrap_err());
        assert!(e.contains("--set relay.url") && e.contains("ws://"), "{e}");
    }

    #[test]
    fn the_backend_is_a_scenario_choice_and_what_it_lacks_is_refused_by_name() {
        let s = Scenario::parse(MIN, "t.toml", &["crypto.backend=aws-lc-rs".to_owned()]).unwrap();
        assert_eq!(s.crypto.backend, sealcore::Backend::AwsLcRs);
        let p = Plan::new(s).unwrap();
        assert_eq!(p.suite.backend, sealcore::Backend::AwsLcRs);
        let e = format!("{:#}", Scenario::parse(MIN, "t.toml", &["crypto.backend=openssl".to_owned()]).unwrap_err());
        assert!(e.contains("openssl") && e.contains("rustcrypto, ring, aws-lc-rs"), "{e}");
        let sets = ["crypto.backend=ring".to_owned(), "crypto.aead=xchacha20-poly1305".to_owned()];
        let e = format!("{:#}", Scenario::parse(MIN, "t.toml", &sets).unwrap_err());
        assert!(e.contains("crypto.backend") && e.contains("xchacha20-poly1305") && e.contains("aes-256-gcm"), "{e}");
    }

    #[test]
    fn the_old_mode_name_ratchet_still_loads_as_kdf_chain() {
        let text = format!("{MIN}[crypto]\nmode = \"ratchet\"\n");
        let s = Scenario::parse(&text, "t.toml", &[]).unwrap();
        assert_eq!(s.crypto.mode, crate::scenario::Mode::KdfChain);
        let p = Plan::new(s).unwrap();
        assert_eq!(p.mode, sealcore::TransportMode::KdfChain);
    }

    #[test]
    fn exclusive_fields_are_refused_together() {
        let text = format!("{MIN}[traffic]\nrate = 5\naggregate_rate = 100\n");
        let e = Scenario::parse(&text, "t.toml", &[]).unwrap_err().to_string();
        assert!(e.contains("rate") && e.contains("aggregate_rate"), "{e}");
        let text = format!("{MIN}[traffic]\nsize = 64\nsizes = [{{ size = 64, weight = 1 }}]\n");
        assert!(Scenario::parse(&text, "t.toml", &[]).is_err());
        let text = format!("{MIN}[traffic]\nrate = 5\n");
        let ok = ["traffic.aggregate_rate=100".to_owned(), "traffic.rate=".to_owned()];
        assert_eq!(Scenario::parse(&text, "t.toml", &ok).unwrap().traffic.aggregate_rate, Some(100.0));
    }

    const STAGED: &str = "name = \"t\"\n[clients]\ncount = 10\n\
        [[stages]]\nname = \"warm\"\nduration = \"2s\"\nrate = 100\nmeasure = false\n\
        [[stages]]\nduration = \"3s\"\nrate = 400\n\
        [[stages]]\nduration = \"1s\"\n";

    #[test]
    fn a_stage_is_set_by_its_index_from_zero_and_a_wrong_index_is_named() -> Result<()> {
        let sets = ["stages.1.duration=500ms".to_owned(), "stages[2].rate=40".to_owned()];
        let s = Scenario::parse(STAGED, "t.toml", &sets)?;
        assert_eq!(s.stages[1].duration, Duration::from_millis(500), "the second stage, shortened");
        assert_eq!(s.stages[2].rate, Some(40.0));
        assert_eq!(s.stages[0].duration, Duration::from_secs(2), "the others untouched");
        let e = |set: &str| format!("{:#}", Scenario::parse(STAGED, "t.toml", &[set.to_owned()]).unwrap_err());
        assert!(e("stages.3.duration=1s").contains("`stages` has 3 entries (0 to 2): there is no 3"));
        assert!(e("stages.first.duration=1s").contains("index it with a number"));
        assert!(e("stages.duration=1s").contains("`stages.0.duration`"));
        Ok(())
    }

    #[test]
    fn a_staged_scenario_reads_into_a_profile() -> Result<()> {
        let p = Plan::new(Scenario::parse(STAGED, "t.toml", &[])?)?;
        assert_eq!(p.profile.spans().len(), 3);
        assert_eq!(p.profile.window_s(), (2.0, 6.0));
        assert_eq!((p.warmup_ns(), p.measured_ns(), p.sending_ns()), (2_000_000_000, 4_000_000_000, 6_000_000_000));
        // 200 + 750 + 400 messages over 6 s, shared by 5 conversations.
        assert!((p.offered_rate() - 1350.0 / 6.0).abs() < 1e-9);
        assert!((p.share_of(p.rate_per_conversation) - 0.2).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn a_bad_stages_table_is_refused_naming_the_field() {
        let e = |text: &str, sets: &[&str]| {
            let sets: Vec<String> = sets.iter().map(|s| (*s).to_owned()).collect();
            format!("{:#}", Scenario::parse(text, "t.toml", &sets).unwrap_err())
        };
        let msg = e(STAGED, &["duration=10s"]);
        assert!(msg.contains("duration: leave it out when `stages` is set"), "{msg}");
        let msg = e(&format!("{STAGED}[traffic]\nrate = 5\n"), &[]);
        assert!(msg.contains("traffic.rate: leave it out"), "{msg}");
        let msg = e(&STAGED.replace("rate = 400", "rate = -4"), &[]);
        assert!(msg.contains("stages[1].rate") && msg.contains("-4"), "{msg}");
        let msg = e(&STAGED.replace("duration = \"3s\"", "duration = \"0s\""), &[]);
        assert!(msg.contains("stages[1].duration: must be more than 0"), "{msg}");
        let gap =
            STAGED.replace("measure = false\n", "").replace("duration = \"3s\"", "duration = \"3s\"\nmeasure = false");
        let msg = e(&gap, &[]);
        assert!(msg.contains("stages[1].measure: an unmeasured stage may only come before"), "{msg}");
        let msg = e(&format!("{STAGED}clients = 11\n"), &[]);
        assert!(msg.contains("stages[2].clients: 11 connected clients is more than clients.count (10)"), "{msg}");
        let msg = e(&format!("{STAGED}colour = 4\n"), &[]);
        assert!(msg.contains("colour"), "{msg}");
    }

    #[test]
    fn the_staged_example_of_the_scenario_reference_reads() -> Result<()> {
        let doc = include_str!("../../../../docs/SCENARIOS.md");
        let start = doc.find("```toml\n").map(|i| i + 8).expect("a toml example");
        let text = &doc[start..start + doc[start..].find("```").expect("its end")];
        let p = Plan::new(Scenario::parse(text, "SCENARIOS.md", &[])?)?;
        assert_eq!(p.profile.spans().len(), 6);
        assert_eq!((p.profile.total_s(), p.profile.window_s()), (145.0, (10.0, 140.0)));
        Ok(())
    }
}
