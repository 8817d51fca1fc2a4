//! The relay frame codec: encode and decode a SEND per body size, and the in-place
//! SEND → DELIVER header rewrite the relay does per message.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sealcore::frame::{self, Frame};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("frame");
    for size in [64usize, 256, 1024, 16384] {
        let body = vec![7u8; size];
        let f = Frame::Send { request_id: 9, flags: frame::FLAG_ACK, recipient: 42, body: &body };
        let mut out = vec![0u8; f.encoded_len()];
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("encode_send", size), &size, |b, _| {
            b.iter(|| black_box(f.encode(&mut out).expect("encode")))
        });
        let n = f.encode(&mut out).expect("encode");
        g.bench_with_input(BenchmarkId::new("decode_send", size), &size, |b, _| {
            b.iter(|| black_box(frame::decode(black_box(&out[..n])).expect("decode")))
        });
        g.bench_with_input(BenchmarkId::new("rewrite_as_deliver", size), &size, |b, _| {
            b.iter(|| frame::rewrite_as_deliver(black_box(&mut out[..n]), 5, 0, 0).expect("rewrite"))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
