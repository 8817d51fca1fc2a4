//! Which wire protocol a run speaks to its target, and what each offers: the vocabulary the
//! scenario checks a run against (a leaf: it imports nothing from the crate, so `scenario`
//! can use it without importing the driver). The codecs are `driver::wire`'s.

use serde::{Deserialize, Serialize};

/// Which wire protocol a run's clients speak to the target (`relay.wire`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wire {
    /// sealbench's own relay protocol (the reference relay, or another that speaks it).
    #[default]
    Sealbench,
    /// MQTT 3.1.1 over WebSocket (subprotocol `mqtt`): a broker such as Mosquitto.
    Mqtt,
    /// XMPP over WebSocket (RFC 7395, subprotocol `xmpp`): a server such as Prosody.
    Xmpp,
}

/// What a wire protocol offers a run (each a yes or no: a scenario that needs what its
/// target lacks is refused before anything connects, naming it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// The server acknowledges each send (`relay.ack` measures `relay_ack` from it).
    pub server_ack: bool,
    /// The server keeps messages for an offline device and delivers them when it is back.
    pub store_and_forward: bool,
    /// The server marks stored deliveries (what `offline_e2e` is measured from, and what
    /// churn needs) and may say how many follow at log-in (`mailbox_drain`: sealbench's
    /// relay does, XMPP's `<delay/>` marks without a count).
    pub stored_marked: bool,
    /// The server fans a group message out to the group's members (`fanout = "relay"`).
    pub server_fanout: bool,
    /// A group message comes back to its sender too (MQTT 3.1.1 has no "no local"
    /// subscription): the driver drops its own copies.
    pub group_echo: bool,
    /// The server keeps each device's public key for others to fetch (Noise IK / NK).
    pub key_directory: bool,
    /// The server hands out each of a device's published one-time keys once (Olm's
    /// one-time keys, MLS key packages; Megolm rides on Olm).
    pub consume_once_keys: bool,
}

/// One capability, by name (for refusals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Capability {
    /// [`Capabilities::server_ack`].
    ServerAck,
    /// [`Capabilities::store_and_forward`].
    StoreAndForward,
    /// [`Capabilities::stored_marked`].
    StoredMarked,
    /// [`Capabilities::server_fanout`].
    ServerFanout,
    /// [`Capabilities::key_directory`].
    KeyDirectory,
    /// [`Capabilities::consume_once_keys`].
    ConsumeOnceKeys,
}

impl Capability {
    /// Its name in words, as refusals and docs say it.
    pub fn name(self) -> &'static str {
        match self {
            Capability::ServerAck => "a server ack per send",
            Capability::StoreAndForward => "store-and-forward for offline devices",
            Capability::StoredMarked => "stored deliveries marked (and counted at log-in)",
            Capability::ServerFanout => "server-side group fan-out",
            Capability::KeyDirectory => "a key directory",
            Capability::ConsumeOnceKeys => "consume-once one-time keys",
        }
    }
}

impl Capabilities {
    /// Whether it offers `c`.
    pub fn has(&self, c: Capability) -> bool {
        match c {
            Capability::ServerAck => self.server_ack,
            Capability::StoreAndForward => self.store_and_forward,
            Capability::StoredMarked => self.stored_marked,
            Capability::ServerFanout => self.server_fanout,
            Capability::KeyDirectory => self.key_directory,
            Capability::ConsumeOnceKeys => self.consume_once_keys,
        }
    }
}

/// What sealbench's own relay offers.
pub const SEALBENCH: Capabilities = Capabilities {
    server_ack: true,
    store_and_forward: true,
    stored_marked: true,
    server_fanout: true,
    group_echo: false,
    key_directory: true,
    consume_once_keys: true,
};

/// What an MQTT 3.1.1 broker offers (`docs/TARGETS.md`).
pub const MQTT: Capabilities = Capabilities {
    server_ack: true,
    store_and_forward: true,
    stored_marked: false,
    server_fanout: true,
    group_echo: true,
    key_directory: true,
    consume_once_keys: false,
};

/// What an XMPP server offers this adapter (`docs/TARGETS.md`): store-and-forward with
/// stored deliveries marked (`<delay/>`) but not counted; no XEP-0198 acks, MUC or PEP here.
pub const XMPP: Capabilities = Capabilities {
    server_ack: false,
    store_and_forward: true,
    stored_marked: true,
    server_fanout: false,
    group_echo: false,
    key_directory: false,
    consume_once_keys: false,
};

impl Wire {
    /// Its name in scenario files and results.
    pub fn name(self) -> &'static str {
        match self {
            Wire::Sealbench => "sealbench",
            Wire::Mqtt => "mqtt",
            Wire::Xmpp => "xmpp",
        }
    }

    /// The capability table.
    pub const fn capabilities(self) -> Capabilities {
        match self {
            Wire::Sealbench => SEALBENCH,
            Wire::Mqtt => MQTT,
            Wire::Xmpp => XMPP,
        }
    }
}
