//! `summary.json`'s `clients` and `messages` sections: the run's counters as a result
//! shows them, generated from the one list of counters
//! ([`crate::driver::recorder::counters`]) together with the conversions both ways — a
//! run's [`Counters`] into the sections, and a result's sections back into counters (what
//! `merge` sums).
//!
//! Refusals are counted per relay error code; results name the code
//! ([`code_name`], [`code_of`]).

use crate::driver::recorder::{Counters, MAX_CODE, counters_table};
use sealcore::frame::ErrorCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The name results give relay error code `code` (`mailbox_full`; `code_7` for a code
/// this build does not know).
pub fn code_name(code: usize) -> String {
    u16::try_from(code)
        .ok()
        .and_then(ErrorCode::from_u16)
        .map_or_else(|| format!("code_{code}"), |e| e.name().to_owned())
}

/// The code [`code_name`] named `name` (0 for a name it never gives), within the
/// [`MAX_CODE`] counted.
pub fn code_of(name: &str) -> usize {
    let code = (0..MAX_CODE as u16)
        .find(|&c| ErrorCode::from_u16(c).is_some_and(|e| e.name() == name))
        .or_else(|| name.strip_prefix("code_").and_then(|c| c.parse().ok()))
        .unwrap_or(0);
    usize::from(code).min(MAX_CODE - 1)
}

/// The refusals of `c` by code name, codes never seen left out.
pub fn refused_by_code(c: &Counters) -> BTreeMap<String, u64> {
    c.refused.iter().enumerate().filter(|(_, n)| **n > 0).map(|(code, &n)| (code_name(code), n)).collect()
}

/// Generates [`ClientsSummary`], [`Messages`] and their conversions from the counter list.
macro_rules! summary_sections {
    (
        clients { $( $(#[$cdoc:meta])* $c:ident => $csum:ident : $chelp:literal; )* }
        accounting { $( $(#[$adoc:meta])* $a:ident => $asum:ident : $ahelp:literal; )* }
        refused { $(#[$rdoc:meta])* $r:ident : $rhelp:literal; }
        messages { $( $(#[$mdoc:meta])* $m:ident => $msum:ident : $mhelp:literal; )* }
    ) => {
        /// Clients.
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        pub struct ClientsSummary {
            /// Clients in the scenario.
            pub requested: u64,
            $( $(#[$cdoc])* #[serde(default)] pub $csum: u64, )*
        }

        /// Message accounting: `sent = delivered + refused + undelivered_offline + lost`,
        /// counted in deliveries (a message to a group of 50 is 49 deliveries; `messages`
        /// counts it once).
        #[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
        pub struct Messages {
            $( $(#[$adoc])* #[serde(default)] pub $asum: u64, )*
            /// Refused by the relay, total.
            pub refused: u64,
            /// Refused by the relay, by error code name.
            pub refused_by_code: BTreeMap<String, u64>,
            /// Neither delivered nor refused by the end of the cooldown.
            pub lost: u64,
            $( $(#[$mdoc])* #[serde(default)] pub $msum: u64, )*
            /// Deliveries in the last second before the run stopped waiting for them (the
            /// end of the cool-down). With `lost` > 0, messages were still arriving then:
            /// the lost ones are likely still queued (in the relay or the sockets), not
            /// dropped, and a longer `cooldown` would wait for them. They stay in `lost`:
            /// not delivered in time.
            #[serde(default)]
            pub delivered_at_end: u64,
        }

        impl Messages {
            /// The accounting of `c` (`delivered_at_end` is the caller's: 0 here).
            pub fn of(c: &Counters) -> Self {
                Messages {
                    $( $asum: c.$a, )*
                    refused: c.refused_total(),
                    refused_by_code: refused_by_code(c),
                    lost: c.lost(),
                    $( $msum: c.$m, )*
                    delivered_at_end: 0,
                }
            }
        }

        impl ClientsSummary {
            /// The clients of a run that asked for `requested` of them.
            pub fn of(requested: usize, c: &Counters) -> Self {
                ClientsSummary { requested: requested as u64, $( $csum: c.$c, )* }
            }
        }

        /// The counters a result's `clients` and `messages` sections show, back (what is
        /// derived — `lost`, the refusals' total — is recomputed from them).
        pub fn counters_of(k: &ClientsSummary, m: &Messages) -> Counters {
            let mut c = Counters::new();
            $( c.$c = k.$csum; )*
            $( c.$a = m.$asum; )*
            for (name, &n) in &m.refused_by_code {
                c.$r[code_of(name)] += n;
            }
            $( c.$m = m.$msum; )*
            c
        }
    };
}

counters_table!(summary_sections);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_survive_the_summary_sections() {
        let mut c = Counters::new();
        (c.connects_ok, c.disconnects, c.sent, c.delivered, c.other_errors, c.members_readded) = (4, 1, 10, 7, 2, 3);
        c.refused[ErrorCode::MailboxFull as usize] = 2;
        c.refused[MAX_CODE - 1] = 1;
        let (k, m) = (ClientsSummary::of(5, &c), Messages::of(&c));
        assert_eq!((k.requested, k.connected, k.disconnected), (5, 4, 1));
        assert_eq!((m.refused, m.lost, m.control_errors), (3, 0, 2));
        assert_eq!(counters_of(&k, &m), c);
    }
}
