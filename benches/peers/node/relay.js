// A small relay in Node.js on the `ws` package: the peer "Node ws relay" of
// benches/peers/run.py. It speaks the subset of sealbench's relay protocol
// (docs/PROTOCOL.md §4) that `sealbench run` needs for 1:1 conversations:
//
//   HELLO -> WELCOME (no token, nothing stored), SEND -> DELIVER (+ ACK when asked),
//   KEY_PUBLISH -> ACK, KEY_FETCH -> KEY, ERROR for the refusals listed below.
//   WebSocket pings are answered by `ws` itself; close frames end the connection.
//
// Not implemented (a peer, not a second reference relay): groups, mailboxes for offline
// clients (a SEND to an offline client gets UNKNOWN_RECIPIENT), auth tokens, idle and
// HELLO timeouts, bounded per-connection send queues.
//
// Usage: node relay.js [--listen 127.0.0.1:9000]
'use strict';

const { WebSocketServer } = require('ws');

const VERSION = 1;
const T = { HELLO: 0x01, SEND: 0x02, KEY_PUBLISH: 0x06, KEY_FETCH: 0x07 };
const R = { WELCOME: 0x81, DELIVER: 0x82, ACK: 0x83, KEY: 0x84, ERROR: 0x85 };
const E = {
  MALFORMED: 1, UNSUPPORTED_VERSION: 2, UNKNOWN_TYPE: 3, NOT_REGISTERED: 4,
  ALREADY_REGISTERED: 5, DUPLICATE_ID: 7, NO_SUCH_KEY: 13, TEXT_FRAME: 14,
  BAD_KEY: 15, INVALID_TARGET: 18, UNKNOWN_RECIPIENT: 19,
};
const MAX_MESSAGE = 65536;
const ROUTED_HEADER = 19; // version, type, u64, flags u8, u64
const FLAG_ACK = 0x01;

function parseListen(argv) {
  let listen = '127.0.0.1:9000';
  for (let i = 2; i < argv.length; i++) {
    if (argv[i] === '--listen' && i + 1 < argv.length) listen = argv[++i];
    else {
      console.error(`usage: node relay.js [--listen HOST:PORT] (unknown argument ${argv[i]})`);
      process.exit(2);
    }
  }
  const at = listen.lastIndexOf(':');
  const port = Number(listen.slice(at + 1));
  if (at < 0 || !Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--listen wants HOST:PORT, got ${listen}`);
    process.exit(2);
  }
  return { host: listen.slice(0, at), port };
}

/** Online clients by id (BigInt) and the key directory. */
const clients = new Map();
const keys = new Map();

/** A relay frame of type `kind` whose first field is the u64 `first` (a request or client
 * id), with `n` more bytes for the caller to fill. */
function reply(kind, first, n) {
  const b = Buffer.alloc(10 + n);
  b[0] = VERSION;
  b[1] = kind;
  b.writeBigUInt64LE(first, 2);
  return b;
}

/** Writes a u16 length then `bytes` at offset `at` of `b`. */
function withBytes(b, at, bytes) {
  b.writeUInt16LE(bytes.length, at);
  bytes.copy(b, at + 2);
  return b;
}

const ack = (requestId) => reply(R.ACK, requestId, 0);

function error(requestId, code, reason) {
  const text = Buffer.from(reason, 'utf8');
  const b = reply(R.ERROR, requestId, 4 + text.length);
  b.writeUInt16LE(code, 10);
  return withBytes(b, 12, text);
}

function welcome(id) {
  const b = reply(R.WELCOME, id, 8);
  b.writeUInt32LE(0, 10); // nothing stored: this relay keeps no mailboxes
  b.writeUInt32LE(MAX_MESSAGE, 14);
  return b;
}

function keyAnswer(requestId, client, key) {
  const b = reply(R.KEY, requestId, 10 + key.length);
  b.writeBigUInt64LE(client, 10);
  return withBytes(b, 18, key);
}

function requestIdOf(data) {
  return data.length >= 10 ? data.readBigUInt64LE(2) : 0n;
}

/** Handles one binary message of a connection; `conn.id` is null until HELLO. */
function onFrame(ws, conn, data) {
  if (data.length < 2 || data[0] !== VERSION) {
    return ws.send(error(0n, E.UNSUPPORTED_VERSION, 'version must be 1'));
  }
  const type = data[1];
  if (type < T.HELLO || type > T.KEY_FETCH) {
    return ws.send(error(requestIdOf(data), E.UNKNOWN_TYPE, 'not a client frame type'));
  }
  if (conn.id === null && type !== T.HELLO) {
    return ws.send(error(requestIdOf(data), E.NOT_REGISTERED, 'HELLO first'));
  }
  switch (type) {
    case T.HELLO: {
      if (conn.id !== null) return ws.send(error(0n, E.ALREADY_REGISTERED, 'already registered'));
      if (data.length < 11 || data.length !== 11 + data[10]) {
        return ws.send(error(0n, E.MALFORMED, 'HELLO does not decode'));
      }
      const id = data.readBigUInt64LE(2);
      if (id === 0n) {
        ws.send(error(0n, E.INVALID_TARGET, 'client id 0 is reserved'));
        return ws.close(1008);
      }
      if (clients.has(id)) {
        ws.send(error(0n, E.DUPLICATE_ID, 'another connection holds this id'));
        return ws.close(1008);
      }
      conn.id = id;
      clients.set(id, ws);
      return ws.send(welcome(id));
    }
    case T.SEND: {
      if (data.length < ROUTED_HEADER) return ws.send(error(requestIdOf(data), E.MALFORMED, 'SEND too short'));
      const requestId = data.readBigUInt64LE(2);
      const wantAck = (data[10] & FLAG_ACK) !== 0;
      const to = data.readBigUInt64LE(11);
      const peer = clients.get(to);
      if (to === 0n || to === conn.id) return ws.send(error(requestId, E.INVALID_TARGET, 'bad recipient'));
      if (peer === undefined) return ws.send(error(requestId, E.UNKNOWN_RECIPIENT, 'recipient not online'));
      // SEND becomes DELIVER by rewriting the shared 19-byte header in place.
      data[1] = R.DELIVER;
      data.writeBigUInt64LE(conn.id, 2);
      data[10] = 0;
      data.writeBigUInt64LE(0n, 11);
      peer.send(data);
      if (wantAck) ws.send(ack(requestId));
      return undefined;
    }
    case T.KEY_PUBLISH: {
      const requestId = requestIdOf(data);
      if (data.length < 12 || data.length !== 12 + data.readUInt16LE(10)) {
        return ws.send(error(requestId, E.MALFORMED, 'KEY_PUBLISH does not decode'));
      }
      const len = data.readUInt16LE(10);
      if (len < 1 || len > 256) return ws.send(error(requestId, E.BAD_KEY, 'key length out of range'));
      keys.set(conn.id, Buffer.from(data.subarray(12)));
      return ws.send(ack(requestId));
    }
    case T.KEY_FETCH: {
      const requestId = requestIdOf(data);
      if (data.length !== 18) return ws.send(error(requestId, E.MALFORMED, 'KEY_FETCH does not decode'));
      const who = data.readBigUInt64LE(10);
      const key = keys.get(who);
      if (key === undefined) return ws.send(error(requestId, E.NO_SUCH_KEY, 'no key published'));
      return ws.send(keyAnswer(requestId, who, key));
    }
    default:
      // GROUP_JOIN, GROUP_LEAVE, GROUP_SEND: valid types this peer does not serve.
      return ws.send(error(requestIdOf(data), E.UNKNOWN_TYPE, 'groups are not implemented by this peer'));
  }
}

function main() {
  const { host, port } = parseListen(process.argv);
  const wss = new WebSocketServer({ host, port, maxPayload: MAX_MESSAGE, perMessageDeflate: false });
  wss.on('connection', (ws) => {
    const conn = { id: null };
    ws.on('message', (data, isBinary) => {
      if (!isBinary) return ws.send(error(0n, E.TEXT_FRAME, 'binary frames only'));
      return onFrame(ws, conn, data);
    });
    ws.on('close', () => {
      if (conn.id !== null && clients.get(conn.id) === ws) clients.delete(conn.id);
    });
    ws.on('error', () => ws.terminate());
  });
  wss.on('listening', () => {
    const a = wss.address();
    console.log(`node ws relay listening on ${a.address}:${a.port}`);
  });
  wss.on('error', (e) => {
    console.error(`node ws relay: ${e.message}`);
    process.exit(1);
  });
  const stop = () => {
    for (const ws of wss.clients) ws.terminate();
    wss.close(() => process.exit(0));
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
}

main();
