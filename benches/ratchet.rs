//! The per-message symmetric ratchet: one KDF step alone, and transport seal in `noise`
//! against `ratchet` mode over message sizes.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealcore::handshake::complete_in_memory;
use sealcore::transport::OVERHEAD;
use sealcore::{AeadKind, Handshake, HandshakeKeys, HashKind, Pattern, Suite, Transport, TransportMode};
use std::hint::black_box;

fn pair(mode: TransportMode) -> (Transport, Transport) {
    let suite = Suite::new(Pattern::NN, AeadKind::ChaCha20Poly1305, HashKind::Sha256);
    let mut i = Handshake::initiator(suite, HandshakeKeys::default(), b"").expect("i");
    let mut r = Handshake::responder(suite, HandshakeKeys::default(), b"").expect("r");
    complete_in_memory(&mut i, &mut r).expect("handshake");
    (i.into_transport(mode).expect("t"), r.into_transport(mode).expect("t"))
}

fn bench(c: &mut Criterion) {
    c.bench_function("ratchet/kdf_step", |b| {
        let (mut ck, mut mk) = ([1u8; 32], [0u8; 32]);
        b.iter(|| {
            sealcore::kdf::ratchet_step(&mut ck, &mut mk);
            black_box(&mk);
        })
    });
    let mut g = c.benchmark_group("transport_seal");
    for (name, mode) in [("noise", TransportMode::Noise { rekey_every: 0 }), ("ratchet", TransportMode::KdfChain)] {
        for size in [64usize, 256, 1024, 16384] {
            let (mut a, _) = pair(mode);
            let mut buf = vec![0u8; size + OVERHEAD];
            g.throughput(Throughput::Bytes(size as u64));
            g.bench_with_input(BenchmarkId::new(name, size), &size, |b, &s| {
                b.iter(|| black_box(a.sender.seal(&mut buf, s).expect("seal")))
            });
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
