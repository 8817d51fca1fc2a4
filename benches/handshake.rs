//! Complete Noise handshakes (both sides' work) per pattern (classical and hybrid
//! ML-KEM-768), through our snow resolver, on every backend in the build.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealcore::handshake::complete_in_memory;
use sealcore::{AeadKind, Backend, Handshake, HandshakeKeys, HashKind, Pattern, StaticKeypair, Suite, TransportMode};
use std::hint::black_box;

fn handshake(suite: Suite, ikeys: HandshakeKeys<'_>, rkeys: HandshakeKeys<'_>) -> usize {
    let mut i = Handshake::initiator(suite, ikeys, b"bench").expect("initiator");
    let mut r = Handshake::responder(suite, rkeys, b"bench").expect("responder");
    let bytes = complete_in_memory(&mut i, &mut r).expect("handshake");
    black_box(i.into_transport(TransportMode::Noise { rekey_every: 0 }).expect("transport"));
    bytes
}

fn bench(c: &mut Criterion) {
    let is = StaticKeypair::generate().expect("key");
    let rs = StaticKeypair::generate().expect("key");
    let ikeys = HandshakeKeys { local_static: Some(&is), remote_static: Some(&rs.public), fixed_ephemeral: None };
    let rkeys = HandshakeKeys { local_static: Some(&rs), ..Default::default() };
    let mut g = c.benchmark_group("handshake");
    g.sample_size(30);
    for backend in Backend::compiled() {
        for aead in [AeadKind::ChaCha20Poly1305, AeadKind::Aes256Gcm] {
            for p in Pattern::ALL {
                let suite = Suite::new(p, aead, HashKind::Sha256).with_backend(backend);
                let bytes = handshake(suite, ikeys, rkeys);
                g.throughput(Throughput::Bytes(bytes as u64));
                let id = format!("{}/{backend}", suite.protocol_name());
                g.bench_with_input(BenchmarkId::new(id, bytes), &suite, |b, &s| b.iter(|| handshake(s, ikeys, rkeys)));
            }
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
