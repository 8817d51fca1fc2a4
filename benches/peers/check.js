// A smoke test of a peer relay against docs/PROTOCOL.md §4 (the subset the peers serve):
// registration, SEND → ACK + DELIVER, the key directory, and the refusals a peer must
// answer with an ERROR. Each answer is compared with the protocol's layout.
//
// Usage (after `npm ci` in node/): node benches/peers/check.js ws://127.0.0.1:PORT/
// Exit 0 when every answer matches, 1 otherwise. Use a fresh relay: it registers ids 42, 43.
'use strict';

const WebSocket = require('./node/node_modules/ws');

const url = process.argv[2];
if (!url || !url.startsWith('ws://')) {
  console.error('usage: node check.js ws://HOST:PORT/');
  process.exit(2);
}

const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
};
const frame = (type, ...parts) => Buffer.concat([Buffer.from([1, type]), ...parts]);
const hello = (id) => frame(0x01, u64(id), Buffer.from([0]));
const send = (req, flags, to, body) => frame(0x02, u64(req), Buffer.from([flags]), u64(to), Buffer.from(body));

/** Opens a connection whose answers are read in order with `next()` (2 s each at most). */
function open() {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    const queue = [];
    let waiter = null;
    ws.on('message', (d) => (waiter ? (waiter(d), (waiter = null)) : queue.push(d)));
    ws.next = () => new Promise((res) => {
      if (queue.length) return res(queue.shift());
      const timer = setTimeout(() => res(Buffer.alloc(0)), 2000);
      waiter = (d) => (clearTimeout(timer), res(d));
      return undefined;
    });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

let failed = 0;
function expect(what, got, want) {
  const ok = got.subarray(0, want.length).equals(want);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}: ${got.toString('hex')}`);
  if (!ok) failed += 1;
}
const error = (req, code) => frame(0x85, u64(req), Buffer.from([code, 0]));

async function main() {
  const a = await open();
  const b = await open();
  a.send(hello(42));
  expect('HELLO → WELCOME', await a.next(), frame(0x81, u64(42), Buffer.from([0, 0, 0, 0])));
  b.send(send(7, 1, 42, 'hi'));
  expect('SEND before HELLO → NOT_REGISTERED', await b.next(), error(7, 4));
  b.send(hello(43));
  expect('HELLO → WELCOME', await b.next(), frame(0x81, u64(43), Buffer.from([0, 0, 0, 0])));
  b.send(send(7, 1, 42, 'hi'));
  expect('SEND with ACK → ACK', await b.next(), frame(0x83, u64(7)));
  expect('→ DELIVER', await a.next(), frame(0x82, u64(43), Buffer.from([0]), u64(0), Buffer.from([0x68, 0x69])));
  b.send(send(8, 0, 99, 'x'));
  expect('SEND to an unknown id → UNKNOWN_RECIPIENT', await b.next(), error(8, 19));
  b.send(frame(0x06, u64(12), Buffer.from([4, 0, 0xde, 0xad, 0xbe, 0xef])));
  expect('KEY_PUBLISH → ACK', await b.next(), frame(0x83, u64(12)));
  a.send(frame(0x07, u64(13), u64(43)));
  expect('KEY_FETCH → KEY', await a.next(), frame(0x84, u64(13), u64(43), Buffer.from([4, 0, 0xde, 0xad, 0xbe, 0xef])));
  a.send(frame(0x07, u64(14), u64(44)));
  expect('KEY_FETCH of no key → NO_SUCH_KEY', await a.next(), error(14, 13));
  a.send('text');
  expect('text message → TEXT_FRAME', await a.next(), error(0, 14));
  a.send(Buffer.from([2, 1]));
  expect('version 2 → UNSUPPORTED_VERSION', await a.next(), error(0, 2));
  const c = await open();
  c.send(hello(42));
  expect('HELLO of a live id → DUPLICATE_ID', await c.next(), error(0, 7));
  for (const ws of [a, b, c]) ws.terminate();
  console.log(failed ? `${failed} answer(s) did not match` : 'every answer matched');
  process.exit(failed ? 1 : 0);
}

main().catch((e) => {
  console.error(`check.js: ${e.message}`);
  process.exit(1);
});
