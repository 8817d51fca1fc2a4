//! Traffic classes: the small label sets (`class=dm`, `class=group,fanout=client,size=500`)
//! some metrics are also recorded under, so that a user can ask "how fast are groups of
//! 500?" and not only "how fast is everything?".
//!
//! Why a fixed vocabulary of three labels in a fixed order: every place a tag is written
//! (summary.json, latency.hlog, timeseries.csv, thresholds, compare) must spell the same
//! class the same way, or two runs would not compare and a threshold would silently match
//! nothing. Why ids: the set of tags is fixed per run (the plan decides it), so the hot
//! path records under a small integer ([`TagId`]) precomputed per conversation, with no
//! lookup, formatting or allocation per message.
//!
//! Text forms:
//! - canonical `class=group,fanout=client,size=500` (labels in [`Label::ALL`] order), and
//!   `metric{class=group,size=50}` for a series — summary.json, console, thresholds, compare;
//! - interval log `e2e{class=group;size=50}`: an HdrHistogram `Tag=` ends at the first ','
//!   in every reader, so labels are joined with ';' there (also the `timeseries.csv`
//!   column form, which needs no CSV quoting).

use std::cmp::Ordering;
use std::fmt;

/// A tag's index among the run's tags (the order [`crate::driver::recorder::Histograms::with_tags`] was
/// given them in). Small, `Copy`: what the hot path passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TagId(pub u16);

/// A label a tag may set, in canonical order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Label {
    /// The kind of traffic: `dm`, `group` (the workload decides the values).
    Class = 0,
    /// A group's fan-out strategy: `relay` or `client`.
    Fanout,
    /// A group's size (members), a whole number.
    Size,
}

impl Label {
    /// Every label, in canonical order.
    pub const ALL: [Label; 3] = [Label::Class, Label::Fanout, Label::Size];

    /// Its key in text forms.
    pub fn key(self) -> &'static str {
        ["class", "fanout", "size"][self as usize]
    }

    /// The label whose key is `key`.
    pub fn parse(key: &str) -> Option<Label> {
        Label::ALL.into_iter().find(|l| l.key() == key)
    }
}

/// What is wrong with a tag's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TagError {
    /// A `k=v` item without `=` (or with an empty side).
    #[error("`{0}` is not `label=value`")]
    NotAPair(String),
    /// A key that is not one of [`Label::ALL`].
    #[error("unknown label `{0}` (labels: class, fanout, size)")]
    UnknownLabel(String),
    /// The same label twice.
    #[error("label `{0}` given twice")]
    Repeated(&'static str),
    /// A value with characters outside `[A-Za-z0-9_.-]`.
    #[error("value `{0}`: use letters, digits, '_', '.' or '-'")]
    BadValue(String),
    /// A `size` that is not a whole number.
    #[error("size `{0}` is not a whole number")]
    BadSize(String),
    /// A `metric{...}` without its closing brace, or with text after it.
    #[error("`{0}`: expected `metric{{label=value,...}}`")]
    Unbalanced(String),
    /// `{}`: a tag with no label.
    #[error("an empty tag `{{}}`: name at least one label, or leave the braces out")]
    Empty,
}

/// A traffic class: up to one value per [`Label`]. Ordered for tables as people read them
/// (class, then fan-out, then size by number).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct TagSet {
    values: [Option<Box<str>>; 3],
}

impl TagSet {
    /// The tag with no label (only a builder's start: a run's tags have one label at least).
    pub fn new() -> Self {
        TagSet::default()
    }

    /// This tag with `label` set to `value`.
    ///
    /// # Errors
    /// A value with characters outside `[A-Za-z0-9_.-]`, or a `size` that is not a whole
    /// number.
    pub fn with(mut self, label: Label, value: &str) -> Result<Self, TagError> {
        if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c)) {
            return Err(TagError::BadValue(value.to_owned()));
        }
        if label == Label::Size && value.parse::<u32>().is_err() {
            return Err(TagError::BadSize(value.to_owned()));
        }
        self.values[label as usize] = Some(value.into());
        Ok(self)
    }

    /// `class=<class>` (e.g. `dm`).
    ///
    /// # Errors
    /// As [`TagSet::with`].
    pub fn class(class: &str) -> Result<Self, TagError> {
        TagSet::new().with(Label::Class, class)
    }

    /// The value of `label`, if set.
    pub fn get(&self, label: Label) -> Option<&str> {
        self.values[label as usize].as_deref()
    }

    /// The `size` label as a number (a group's size).
    pub fn size(&self) -> Option<u32> {
        self.get(Label::Size)?.parse().ok()
    }

    /// True when no label is set.
    pub fn is_empty(&self) -> bool {
        self.values.iter().all(Option::is_none)
    }

    /// The labels set, in canonical order.
    pub fn labels(&self) -> impl Iterator<Item = (Label, &str)> {
        Label::ALL.into_iter().filter_map(|l| self.get(l).map(|v| (l, v)))
    }

    /// Parses `class=group,size=50` (labels in any order, separated by ',' or ';').
    ///
    /// # Errors
    /// Names the item that is wrong.
    pub fn parse(text: &str) -> Result<Self, TagError> {
        let mut t = TagSet::new();
        for item in text.split([',', ';']).map(str::trim) {
            let (k, v) = item.split_once('=').ok_or_else(|| TagError::NotAPair(item.to_owned()))?;
            let (k, v) = (k.trim(), v.trim());
            if k.is_empty() || v.is_empty() {
                return Err(TagError::NotAPair(item.to_owned()));
            }
            let label = Label::parse(k).ok_or_else(|| TagError::UnknownLabel(k.to_owned()))?;
            if t.get(label).is_some() {
                return Err(TagError::Repeated(label.key()));
            }
            t = t.with(label, v)?;
        }
        if t.is_empty() {
            return Err(TagError::Empty);
        }
        Ok(t)
    }

    /// The tag a threshold selector means: `size` and `fanout` only exist for groups, so
    /// either implies `class=group` when the selector leaves the class out.
    pub fn implied(mut self) -> Self {
        if self.get(Label::Class).is_none() && (self.get(Label::Size).is_some() || self.get(Label::Fanout).is_some()) {
            self.values[Label::Class as usize] = Some("group".into());
        }
        self
    }

    /// The labels joined by `sep` (`,` canonical, `;` in the interval log).
    fn joined(&self, sep: &str) -> String {
        self.labels().map(|(l, v)| format!("{}={v}", l.key())).collect::<Vec<_>>().join(sep)
    }

    /// The interval-log form: `class=group;size=50`.
    pub fn hlog(&self) -> String {
        self.joined(";")
    }

    fn sort_key(&self) -> (Option<&str>, Option<&str>, Option<u32>, Option<&str>) {
        (self.get(Label::Class), self.get(Label::Fanout), self.size(), self.get(Label::Size))
    }
}

impl Ord for TagSet {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sort_key().cmp(&other.sort_key())
    }
}

impl PartialOrd for TagSet {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The canonical form, `class=group,size=50`.
impl fmt::Display for TagSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined(","))
    }
}

/// `metric` or `metric{class=group,size=50}`: a series' canonical name.
pub fn series_name(metric: &str, tag: Option<&TagSet>) -> String {
    match tag {
        Some(t) => format!("{metric}{{{t}}}"),
        None => metric.to_owned(),
    }
}

/// `metric` or `metric{class=group;size=50}`: a series' interval-log `Tag=` (and
/// `timeseries.csv` column suffix) form.
pub fn series_hlog(metric: &str, tag: Option<&TagSet>) -> String {
    match tag {
        Some(t) => format!("{metric}{{{}}}", t.hlog()),
        None => metric.to_owned(),
    }
}

/// Splits a series name in either form into the metric's name and its tag:
/// `e2e` → (`e2e`, None); `e2e{class=group;size=50}` → (`e2e`, `class=group,size=50`).
///
/// # Errors
/// Unbalanced braces or a tag that does not parse.
pub fn split_series(text: &str) -> Result<(&str, Option<TagSet>), TagError> {
    let Some(open) = text.find('{') else {
        if text.contains('}') {
            return Err(TagError::Unbalanced(text.to_owned()));
        }
        return Ok((text, None));
    };
    let inner = text[open + 1..].strip_suffix('}').ok_or_else(|| TagError::Unbalanced(text.to_owned()))?;
    if inner.contains(['{', '}']) {
        return Err(TagError::Unbalanced(text.to_owned()));
    }
    if inner.trim().is_empty() {
        return Err(TagError::Empty);
    }
    Ok((&text[..open], Some(TagSet::parse(inner)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_print_in_canonical_order_whatever_order_they_were_written_in() -> Result<(), TagError> {
        let t = TagSet::parse("size=500, fanout=client,class=group")?;
        assert_eq!(t.to_string(), "class=group,fanout=client,size=500");
        assert_eq!(t.hlog(), "class=group;fanout=client;size=500");
        assert_eq!(t.size(), Some(500));
        Ok(())
    }

    #[test]
    fn both_text_forms_round_trip() -> Result<(), TagError> {
        for text in ["class=dm", "class=group,size=50", "class=group,fanout=relay,size=5"] {
            let t = TagSet::parse(text)?;
            assert_eq!(t.to_string(), text);
            assert_eq!(TagSet::parse(&t.hlog())?, t);
            let canonical = series_name("fanout_last", Some(&t));
            let hlog = series_hlog("fanout_last", Some(&t));
            assert!(!hlog.contains(','), "an hlog Tag= may not hold ',': {hlog}");
            assert_eq!(split_series(&canonical)?, ("fanout_last", Some(t.clone())));
            assert_eq!(split_series(&hlog)?, ("fanout_last", Some(t)));
        }
        assert_eq!(split_series("e2e")?, ("e2e", None));
        assert_eq!(series_name("e2e", None), "e2e");
        Ok(())
    }

    #[test]
    fn bad_tags_say_what_is_wrong() {
        assert_eq!(TagSet::parse("klass=dm"), Err(TagError::UnknownLabel("klass".into())));
        assert_eq!(TagSet::parse("class"), Err(TagError::NotAPair("class".into())));
        assert_eq!(TagSet::parse("class=dm,class=group"), Err(TagError::Repeated("class")));
        assert_eq!(TagSet::parse("size=big"), Err(TagError::BadSize("big".into())));
        assert_eq!(TagSet::parse("class=a b"), Err(TagError::BadValue("a b".into())));
        assert!(split_series("e2e{class=dm").is_err());
        assert!(split_series("e2e{class=dm}x").is_err());
        assert_eq!(split_series("e2e{}"), Err(TagError::Empty));
    }

    #[test]
    fn size_or_fanout_imply_a_group() -> Result<(), TagError> {
        assert_eq!(TagSet::parse("size=500")?.implied().to_string(), "class=group,size=500");
        assert_eq!(TagSet::parse("fanout=client")?.implied().to_string(), "class=group,fanout=client");
        assert_eq!(TagSet::parse("class=dm")?.implied().to_string(), "class=dm");
        Ok(())
    }

    #[test]
    fn group_sizes_sort_by_number() -> Result<(), TagError> {
        let mut v: Vec<TagSet> = ["class=group,size=500", "class=group,size=50", "class=dm", "class=group,size=5"]
            .iter()
            .map(|t| TagSet::parse(t))
            .collect::<Result<_, _>>()?;
        v.sort();
        let s: Vec<String> = v.iter().map(ToString::to_string).collect();
        assert_eq!(s, ["class=dm", "class=group,size=5", "class=group,size=50", "class=group,size=500"]);
        Ok(())
    }
}
