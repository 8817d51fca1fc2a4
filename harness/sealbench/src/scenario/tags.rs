//! The traffic classes a run records its tagged metrics under, decided from the population
//! once per run (histograms, thresholds and the summary all need the same list before the
//! first message): `class=dm` for 1:1 conversations, `class=group` for groups, and
//! `class=group,size=N` per group-size class. A run has one fan-out strategy (it is in
//! the scenario), so it is not a label; two runs compare strategies.

use super::Plan;
use super::population::ChatKind;
use crate::tags::{Label, TagId, TagSet};
use std::sync::Arc;

impl Plan {
    /// The run's traffic classes, in [`TagId`] order.
    pub fn tags(&self) -> Arc<[TagSet]> {
        let mut tags = Vec::new();
        let chats = &self.population.chats;
        if chats.iter().any(|c| c.kind == ChatKind::Direct) {
            tags.push(TagSet::class("dm").expect("a valid static tag"));
        }
        let sizes = self.population.group_sizes();
        if !sizes.is_empty() {
            let group = TagSet::class("group").expect("a valid static tag");
            for s in sizes {
                tags.push(group.clone().with(Label::Size, &s.to_string()).expect("a size is a valid label value"));
            }
            tags.push(group);
        }
        Arc::from(tags)
    }

    /// The ids of the classes a conversation of `kind` records its messages under.
    pub fn chat_tags(&self, kind: ChatKind) -> Vec<TagId> {
        let tags = self.tags();
        let find = |class: &str, size: Option<u32>| {
            tags.iter()
                .position(|t| t.get(Label::Class) == Some(class) && t.size() == size && t.get(Label::Fanout).is_none())
                .map(|i| TagId(i as u16))
        };
        match kind {
            ChatKind::Direct => find("dm", None).into_iter().collect(),
            ChatKind::Group { size, .. } => {
                [find("group", None), find("group", Some(size))].into_iter().flatten().collect()
            }
        }
    }
}
