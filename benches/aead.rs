//! AEAD seal and open per message size, on the keyed primitive (`AeadKey`), every AEAD on
//! every backend in the build (`aead/<backend>/<aead>`). `sealbench crypto` measures the
//! same through the full transport; this is the stage alone.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealcore::{AeadKey, AeadKind, Backend};
use std::hint::black_box;

const SIZES: &[usize] = &[64, 256, 1024, 1350, 4096, 16384, 65536];

fn bench(c: &mut Criterion) {
    for (backend, aead) in Backend::compiled().flat_map(|b| AeadKind::ALL.map(|a| (b, a))) {
        if !backend.has_aead(aead) {
            continue;
        }
        let key = AeadKey::with_backend(backend, aead, &vec![7u8; aead.key_len()]).expect("key");
        let nonce = vec![0u8; aead.nonce_len()];
        let mut g = c.benchmark_group(format!("aead/{backend}/{}", aead.name()));
        for &size in SIZES {
            g.throughput(Throughput::Bytes(size as u64));
            let mut buf = vec![0x5au8; size];
            g.bench_with_input(BenchmarkId::new("seal", size), &size, |b, _| {
                b.iter(|| black_box(key.seal(&nonce, &[], &mut buf).expect("seal")))
            });
            let mut sealed = vec![0x5au8; size];
            let tag = key.seal(&nonce, &[], &mut sealed).expect("seal");
            g.bench_with_input(BenchmarkId::new("open", size), &size, |b, _| {
                b.iter_batched_ref(
                    || sealed.clone(),
                    |m| key.open(&nonce, &[], m, &tag).expect("open"),
                    BatchSize::SmallInput,
                )
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
