//! MLS (RFC 9420) over openmls, ciphersuite 0x0001
//! (`MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519`), with openmls's RustCrypto provider
//! and basic credentials.
//!
//! A [`MlsMember`] is one device: its provider (crypto + in-memory storage, one per
//! device, as on a phone), its signature key and credential. It publishes key packages;
//! the first member creates the group by adding the others in one commit (a Welcome for
//! the new members, the commit for the existing ones); members process what they receive
//! in order. The ratchet tree travels in the Welcome (the ratchet-tree extension), so a
//! joiner needs nothing else.
//!
//! # Formats (`docs/PROTOCOL.md` §5.3)
//! Key packages, commits, Welcomes and application messages are openmls's TLS encodings
//! of `KeyPackage` and `MLSMessage` (RFC 9420 §6, §10, §12.4.3.1), carried opaquely.
//!
//! **Epochs.** A member keeps the secrets of [`PAST_EPOCHS`] past epochs, so application
//! messages sent just before a commit still decrypt after it; older ones are
//! [`ProtoError::OldEpoch`], counted under that name by a load run.

use crate::ProtoError;
use openmls::prelude::tls_codec::{Deserialize, Serialize};
use openmls::prelude::*;
use openmls_basic_credential::SignatureKeyPair;
use openmls_rust_crypto::OpenMlsRustCrypto;

/// The ciphersuite every sealbench MLS group uses (0x0001).
pub const CIPHERSUITE: Ciphersuite = Ciphersuite::MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519;
/// Past epochs whose secrets a member keeps for late application messages.
pub const PAST_EPOCHS: usize = 4;
/// How far out of order (generations) an application message may arrive within an epoch.
pub const OUT_OF_ORDER: u32 = 64;
/// How far ahead (generations) of the last one a message may be.
pub const MAX_FORWARD: u32 = 10_000;

/// What processing a message did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Processed {
    /// An application message and its plaintext (openmls's own allocation).
    Application(Vec<u8>),
    /// A commit, merged: the group is now at `epoch`.
    Commit {
        /// The new epoch.
        epoch: u64,
    },
    /// A commit that removed this member: it is no longer in the group.
    Removed,
    /// A proposal (stored by openmls until a commit; sealbench itself sends none).
    Proposal,
}

/// A commit to send: to the existing members (`commit`) and to the added ones (`welcome`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// The commit, for every member that was in the group before it.
    pub commit: Vec<u8>,
    /// The Welcome, for every member it adds (None when it adds nobody).
    pub welcome: Option<Vec<u8>>,
    /// The epoch the committer is at once it is merged.
    pub epoch: u64,
}

/// One MLS device: provider, signer, credential and (once in one) its group.
pub struct MlsMember {
    provider: OpenMlsRustCrypto,
    signer: SignatureKeyPair,
    credential: CredentialWithKey,
    group: Option<MlsGroup>,
    /// The epoch of the last message [`MlsMember::process`] decoded (whether or not it
    /// could process it): who was in the group then decides how a refusal is counted.
    last_epoch: u64,
}

impl std::fmt::Debug for MlsMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MlsMember")
            .field("epoch", &self.group.as_ref().map(|g| g.epoch().as_u64()))
            .finish_non_exhaustive()
    }
}

fn library<E>(_: E) -> ProtoError {
    ProtoError::Library
}

fn encode(m: &MlsMessageOut) -> Result<Vec<u8>, ProtoError> {
    m.tls_serialize_detached().map_err(library)
}

impl MlsMember {
    /// A new device whose basic credential is `identity` (any bytes; sealbench uses the
    /// relay client id as 8 bytes little-endian).
    ///
    /// # Errors
    /// [`ProtoError::Library`] when the signature key cannot be made.
    pub fn new(identity: &[u8]) -> Result<Self, ProtoError> {
        let provider = OpenMlsRustCrypto::default();
        let signer = SignatureKeyPair::new(CIPHERSUITE.signature_algorithm()).map_err(library)?;
        let credential = CredentialWithKey {
            credential: BasicCredential::new(identity.to_vec()).into(),
            signature_key: signer.to_public_vec().into(),
        };
        Ok(MlsMember { provider, signer, credential, group: None, last_epoch: 0 })
    }

    /// A new key package to publish (its private part stays in this device's storage).
    /// A `last_resort` one may be used more than once (the directory's fallback).
    ///
    /// # Errors
    /// [`ProtoError::Library`].
    pub fn key_package(&self, last_resort: bool) -> Result<Vec<u8>, ProtoError> {
        let mut b = KeyPackage::builder();
        if last_resort {
            b = b.mark_as_last_resort();
        }
        let bundle = b.build(CIPHERSUITE, &self.provider, &self.signer, self.credential.clone()).map_err(library)?;
        bundle.key_package().tls_serialize_detached().map_err(library)
    }

    fn create_config() -> MlsGroupCreateConfig {
        MlsGroupCreateConfig::builder()
            .ciphersuite(CIPHERSUITE)
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(OUT_OF_ORDER, MAX_FORWARD))
            .build()
    }

    fn join_config() -> MlsGroupJoinConfig {
        MlsGroupJoinConfig::builder()
            .use_ratchet_tree_extension(true)
            .max_past_epochs(PAST_EPOCHS)
            .sender_ratchet_configuration(SenderRatchetConfiguration::new(OUT_OF_ORDER, MAX_FORWARD))
            .build()
    }

    fn key_packages(&self, kps: &[&[u8]]) -> Result<Vec<KeyPackage>, ProtoError> {
        kps.iter()
            .map(|b| {
                KeyPackageIn::tls_deserialize_exact(b)
                    .map_err(|_| ProtoError::Malformed)?
                    .validate(self.provider.crypto(), ProtocolVersion::Mls10)
                    .map_err(|_| ProtoError::BadKey)
            })
            .collect()
    }

    /// Creates group `group_id` with this device as its first member and adds the
    /// devices of `key_packages` in one commit. Returns the commit (no one else is in the
    /// group yet: nobody needs it) and the Welcome for the added members.
    ///
    /// # Errors
    /// [`ProtoError::Malformed`] / [`ProtoError::BadKey`] for a key package that does not
    /// decode or verify; [`ProtoError::Library`].
    pub fn create_group(&mut self, group_id: &[u8], key_packages: &[&[u8]]) -> Result<Commit, ProtoError> {
        let group = MlsGroup::new_with_group_id(
            &self.provider,
            &self.signer,
            &Self::create_config(),
            GroupId::from_slice(group_id),
            self.credential.clone(),
        )
        .map_err(library)?;
        self.group = Some(group);
        if key_packages.is_empty() {
            return Ok(Commit { commit: Vec::new(), welcome: None, epoch: self.epoch() });
        }
        self.add(key_packages)
    }

    fn finish(&mut self, commit: &MlsMessageOut, welcome: Option<&MlsMessageOut>) -> Result<Commit, ProtoError> {
        let (commit, welcome) = (encode(commit)?, welcome.map(encode).transpose()?);
        let provider = &self.provider;
        let g = self.group.as_mut().ok_or(ProtoError::NotMember)?;
        g.merge_pending_commit(provider).map_err(library)?;
        Ok(Commit { commit, welcome, epoch: g.epoch().as_u64() })
    }

    /// Adds the devices of `key_packages` in one commit (merged here at once: the
    /// committer does not wait for the relay to echo it).
    ///
    /// # Errors
    /// As [`MlsMember::create_group`]; [`ProtoError::NotMember`] outside a group.
    pub fn add(&mut self, key_packages: &[&[u8]]) -> Result<Commit, ProtoError> {
        let kps = self.key_packages(key_packages)?;
        let (provider, signer) = (&self.provider, &self.signer);
        let g = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            _ => return Err(ProtoError::NotMember),
        };
        let (commit, welcome, _) = g.add_members(provider, signer, &kps).map_err(library)?;
        self.finish(&commit, Some(&welcome))
    }

    /// Removes the members whose credentials are `identities` in one commit.
    ///
    /// # Errors
    /// [`ProtoError::NotMember`] when one of them is not in the group (or this device is
    /// not); [`ProtoError::Library`].
    pub fn remove(&mut self, identities: &[&[u8]]) -> Result<Commit, ProtoError> {
        let mut leaves = Vec::with_capacity(identities.len());
        for id in identities {
            leaves.push(self.leaf_of(id).ok_or(ProtoError::NotMember)?);
        }
        let (provider, signer) = (&self.provider, &self.signer);
        let g = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            _ => return Err(ProtoError::NotMember),
        };
        let leaves: Vec<LeafNodeIndex> = leaves.into_iter().map(LeafNodeIndex::new).collect();
        let (commit, welcome, _) = g.remove_members(provider, signer, &leaves).map_err(library)?;
        self.finish(&commit, welcome.as_ref())
    }

    /// A self-update commit: fresh leaf keys for this device (post-compromise security).
    ///
    /// # Errors
    /// [`ProtoError::NotMember`]; [`ProtoError::Library`].
    pub fn self_update(&mut self) -> Result<Commit, ProtoError> {
        let (provider, signer) = (&self.provider, &self.signer);
        let g = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            _ => return Err(ProtoError::NotMember),
        };
        let bundle = g.self_update(provider, signer, LeafNodeParameters::default()).map_err(library)?;
        let (commit, welcome, _) = bundle.into_messages();
        self.finish(&commit, welcome.as_ref())
    }

    /// Joins the group a Welcome invites this device to (the key package it names must be
    /// one this device published). A device removed from that group joins it again this
    /// way (its old state of the group is deleted first).
    ///
    /// # Errors
    /// [`ProtoError::Malformed`] (not a Welcome), [`ProtoError::MissingOneTimeKey`] (no key
    /// package of this device matches), [`ProtoError::Library`].
    pub fn join(&mut self, welcome: &[u8]) -> Result<u64, ProtoError> {
        let m = MlsMessageIn::tls_deserialize_exact(welcome).map_err(|_| ProtoError::Malformed)?;
        let MlsMessageBodyIn::Welcome(w) = m.extract() else { return Err(ProtoError::Malformed) };
        // Re-added after a removal: the state of the group it was removed from goes first
        // (openmls refuses a Welcome to a group id its storage still holds).
        if let Some(mut old) = self.group.take() {
            old.delete(self.provider.storage()).map_err(library)?;
        }
        let staged =
            StagedWelcome::new_from_welcome(&self.provider, &Self::join_config(), w, None).map_err(|e| match e {
                WelcomeError::NoMatchingKeyPackage => ProtoError::MissingOneTimeKey,
                _ => ProtoError::Library,
            })?;
        let group = staged.into_group(&self.provider).map_err(library)?;
        let epoch = group.epoch().as_u64();
        self.group = Some(group);
        Ok(epoch)
    }

    /// Encrypts an application message; appends its encoding to `out`.
    ///
    /// # Errors
    /// [`ProtoError::NotMember`]; [`ProtoError::Library`].
    pub fn encrypt(&mut self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let (provider, signer) = (&self.provider, &self.signer);
        let g = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            _ => return Err(ProtoError::NotMember),
        };
        let m = g.create_message(provider, signer, plaintext).map_err(library)?;
        m.tls_serialize(out).map_err(library)?;
        Ok(())
    }

    /// Processes a commit or an application message of this device's group (commits are
    /// merged at once).
    ///
    /// # Errors
    /// [`ProtoError::OldEpoch`] (an epoch whose secrets are gone), [`ProtoError::FutureEpoch`],
    /// [`ProtoError::Replay`] (a generation already decrypted), [`ProtoError::TooOld`],
    /// [`ProtoError::TooFarAhead`], [`ProtoError::Auth`], [`ProtoError::Malformed`],
    /// [`ProtoError::NotMember`] (not in the group, or removed from it).
    pub fn process(&mut self, message: &[u8]) -> Result<Processed, ProtoError> {
        let m = MlsMessageIn::tls_deserialize_exact(message).map_err(|_| ProtoError::Malformed)?;
        let pm = m.try_into_protocol_message().map_err(|_| ProtoError::Malformed)?;
        self.last_epoch = pm.epoch().as_u64();
        let provider = &self.provider;
        let g = match self.group.as_mut() {
            Some(g) if g.is_active() => g,
            _ => return Err(ProtoError::NotMember),
        };
        let (theirs, ours) = (pm.epoch().as_u64(), g.epoch().as_u64());
        if theirs > ours {
            return Err(ProtoError::FutureEpoch);
        }
        if ours - theirs > PAST_EPOCHS as u64 {
            return Err(ProtoError::OldEpoch);
        }
        let processed = g.process_message(provider, pm).map_err(|e| classify(e, theirs < ours))?;
        match processed.into_content() {
            ProcessedMessageContent::ApplicationMessage(a) => Ok(Processed::Application(a.into_bytes())),
            ProcessedMessageContent::StagedCommitMessage(staged) => {
                let removed = staged.self_removed();
                g.merge_staged_commit(provider, *staged).map_err(library)?;
                if removed { Ok(Processed::Removed) } else { Ok(Processed::Commit { epoch: g.epoch().as_u64() }) }
            }
            _ => Ok(Processed::Proposal),
        }
    }

    /// The epoch of the last message [`MlsMember::process`] decoded, processed or not (a
    /// removed device still reads it: it was in the group in some epochs, not in others).
    pub fn last_epoch(&self) -> u64 {
        self.last_epoch
    }

    /// The group's epoch (0 outside a group).
    pub fn epoch(&self) -> u64 {
        self.group.as_ref().map_or(0, |g| g.epoch().as_u64())
    }

    /// Whether this device is in a group now.
    pub fn in_group(&self) -> bool {
        self.group.as_ref().is_some_and(|g| g.is_active())
    }

    /// Members of the group.
    pub fn members(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.members().count())
    }

    /// The leaf index of the member with credential `identity`.
    pub fn leaf_of(&self, identity: &[u8]) -> Option<u32> {
        let g = self.group.as_ref()?;
        g.members().find(|m| m.credential.serialized_content() == identity).map(|m| m.index.u32())
    }
}

/// A secret-tree error by its variant name. openmls does not export the type, so its
/// variant is read from its `Debug` name, written into a stack buffer (no allocation;
/// only on this error path).
fn secret_tree(e: &impl std::fmt::Debug) -> ProtoError {
    struct Buf([u8; 32], usize);
    impl std::fmt::Write for Buf {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            let n = s.len().min(self.0.len() - self.1);
            self.0[self.1..self.1 + n].copy_from_slice(&s.as_bytes()[..n]);
            self.1 += n;
            Ok(())
        }
    }
    let mut b = Buf([0; 32], 0);
    let _ = std::fmt::Write::write_fmt(&mut b, format_args!("{e:?}"));
    match &b.0[..b.1] {
        n if n.starts_with(b"SecretReuseError") => ProtoError::Replay,
        n if n.starts_with(b"TooDistantInThePast") => ProtoError::TooOld,
        n if n.starts_with(b"TooDistantInTheFuture") => ProtoError::TooFarAhead,
        _ => ProtoError::Library,
    }
}

fn classify<S>(e: ProcessMessageError<S>, past_epoch: bool) -> ProtoError {
    use openmls::framing::errors::MessageDecryptionError as D;
    match e {
        ProcessMessageError::ValidationError(v) => match v {
            ValidationError::WrongEpoch | ValidationError::NoPastEpochData if past_epoch => ProtoError::OldEpoch,
            ValidationError::WrongEpoch => ProtoError::FutureEpoch,
            ValidationError::NoPastEpochData => ProtoError::OldEpoch,
            ValidationError::UnableToDecrypt(d) => match d {
                D::SecretTreeError(t) => secret_tree(&t),
                D::GenerationOutOfBound => ProtoError::TooOld,
                D::AeadError => ProtoError::Auth,
                D::MalformedContent | D::WrongWireFormat => ProtoError::Malformed,
                _ => ProtoError::Library,
            },
            _ => ProtoError::Auth,
        },
        ProcessMessageError::GroupStateError(MlsGroupStateError::UseAfterEviction) => ProtoError::NotMember,
        ProcessMessageError::IncompatibleWireFormat => ProtoError::Malformed,
        _ => ProtoError::Library,
    }
}
