// Command relay is a small relay in Go on gorilla/websocket: the peer "Go gorilla relay"
// of benches/peers/run.py. It speaks the subset of sealbench's relay protocol
// (docs/PROTOCOL.md §4) that `sealbench run` needs for 1:1 conversations:
//
//	HELLO -> WELCOME (no token, nothing stored), SEND -> DELIVER (+ ACK when asked),
//	KEY_PUBLISH -> ACK, KEY_FETCH -> KEY, ERROR for the refusals listed below.
//	WebSocket pings are answered by gorilla's default handler; close frames end the
//	connection.
//
// One reader (the handler's goroutine) and one writer goroutine per connection; the writer
// drains a bounded queue (4096 frames, one WriteMessage each), and a recipient whose queue is full is closed as a
// slow consumer while the sender gets RECIPIENT_OVERLOADED, as the protocol says.
//
// Not implemented (a peer, not a second reference relay): groups, mailboxes for offline
// clients (a SEND to an offline client gets UNKNOWN_RECIPIENT), auth tokens, idle and
// HELLO timeouts.
//
// Build (Debian's packages, no module download):
//
//	apt-get install -y golang-go golang-github-gorilla-websocket-dev
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o relay relay.go
package main

import (
	"encoding/binary"
	"flag"
	"log"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	version      = 1
	maxMessage   = 65536
	routedHeader = 19 // version, type, u64, flags u8, u64
	flagAck      = 0x01
	queueFrames  = 4096

	tHello      = 0x01
	tSend       = 0x02
	tGroupSend  = 0x05
	tKeyPublish = 0x06
	tKeyFetch   = 0x07

	rWelcome = 0x81
	rDeliver = 0x82
	rAck     = 0x83
	rKey     = 0x84
	rError   = 0x85

	eMalformed          = 1
	eUnsupportedVersion = 2
	eUnknownType        = 3
	eNotRegistered      = 4
	eAlreadyRegistered  = 5
	eDuplicateID        = 7
	eNoSuchKey          = 13
	eTextFrame          = 14
	eBadKey             = 15
	eRecipientOverload  = 16
	eInvalidTarget      = 18
	eUnknownRecipient   = 19
)

var le = binary.LittleEndian

// client is one registered connection.
type client struct {
	id   uint64
	conn *websocket.Conn
	// send is the bounded queue the writer goroutine drains.
	send chan []byte
	// done closes when the connection ends, so the writer stops.
	done chan struct{}
	once sync.Once
}

// enqueue queues a frame without blocking; false when the queue is full.
func (c *client) enqueue(b []byte) bool {
	select {
	case c.send <- b:
		return true
	default:
		return false
	}
}

func (c *client) stop() {
	c.once.Do(func() {
		close(c.done)
		c.conn.Close()
	})
}

func (c *client) writeLoop() {
	for {
		select {
		case b := <-c.send:
			if b == nil { // the reader refused the connection: close it after what came before
				msg := websocket.FormatCloseMessage(websocket.ClosePolicyViolation, "")
				_ = c.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
				c.stop()
				return
			}
			if err := c.conn.WriteMessage(websocket.BinaryMessage, b); err != nil {
				c.stop()
				return
			}
		case <-c.done:
			return
		}
	}
}

// hub holds the online clients and the key directory.
type hub struct {
	mu      sync.RWMutex
	clients map[uint64]*client
	keys    map[uint64][]byte
}

func (h *hub) register(c *client) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, taken := h.clients[c.id]; taken {
		return false
	}
	h.clients[c.id] = c
	return true
}

func (h *hub) remove(c *client) {
	h.mu.Lock()
	if h.clients[c.id] == c {
		delete(h.clients, c.id)
	}
	h.mu.Unlock()
}

func (h *hub) lookup(id uint64) *client {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.clients[id]
}

// reply allocates a relay frame of type kind whose first field is the u64 at offset 2
// (a request id or a client id), with n more bytes for the caller to fill.
func reply(kind byte, first uint64, n int) []byte {
	b := make([]byte, 10+n)
	b[0], b[1] = version, kind
	le.PutUint64(b[2:], first)
	return b
}

func ack(requestID uint64) []byte { return reply(rAck, requestID, 0) }

// withBytes writes a u16 length then the bytes at offset at of b.
func withBytes(b []byte, at int, bytes []byte) []byte {
	le.PutUint16(b[at:], uint16(len(bytes)))
	copy(b[at+2:], bytes)
	return b
}

func errorFrame(requestID uint64, code uint16, reason string) []byte {
	b := reply(rError, requestID, 4+len(reason))
	le.PutUint16(b[10:], code)
	return withBytes(b, 12, []byte(reason))
}

func requestIDOf(data []byte) uint64 {
	if len(data) >= 10 {
		return le.Uint64(data[2:])
	}
	return 0
}

var upgrader = websocket.Upgrader{ReadBufferSize: 4096, WriteBufferSize: 4096}

// serve runs one connection: registration on this goroutine, then reads and routes
// until the connection ends.
func (h *hub) serve(w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered the request
	}
	conn.SetReadLimit(maxMessage)
	c := &client{conn: conn, send: make(chan []byte, queueFrames), done: make(chan struct{})}
	go c.writeLoop()
	defer c.stop()
	registered := false
	defer func() {
		if registered {
			h.remove(c)
		}
	}()
	for {
		kind, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if kind != websocket.BinaryMessage {
			c.enqueue(errorFrame(0, eTextFrame, "binary frames only"))
			continue
		}
		if len(data) < 2 || data[0] != version {
			c.enqueue(errorFrame(0, eUnsupportedVersion, "version must be 1"))
			continue
		}
		typ := data[1]
		switch {
		case typ < tHello || typ > tKeyFetch:
			c.enqueue(errorFrame(requestIDOf(data), eUnknownType, "not a client frame type"))
		case !registered && typ != tHello:
			c.enqueue(errorFrame(requestIDOf(data), eNotRegistered, "HELLO first"))
		case typ == tHello:
			if registered {
				c.enqueue(errorFrame(0, eAlreadyRegistered, "already registered"))
				continue
			}
			if len(data) < 11 || len(data) != 11+int(data[10]) {
				c.enqueue(errorFrame(0, eMalformed, "HELLO does not decode"))
				continue
			}
			c.id = le.Uint64(data[2:])
			if c.id == 0 || !h.register(c) {
				code, why := uint16(eDuplicateID), "another connection holds this id"
				if c.id == 0 {
					code, why = eInvalidTarget, "client id 0 is reserved"
				}
				c.enqueue(errorFrame(0, code, why))
				if c.enqueue(nil) { // then the writer closes with 1008
					<-c.done
				}
				return
			}
			registered = true
			b := reply(rWelcome, c.id, 8)
			le.PutUint32(b[10:], 0) // nothing stored: this relay keeps no mailboxes
			le.PutUint32(b[14:], maxMessage)
			c.enqueue(b)
		case typ == tSend:
			h.route(c, data)
		case typ == tKeyPublish:
			h.publish(c, data)
		case typ == tKeyFetch:
			h.fetch(c, data)
		default: // GROUP_JOIN, GROUP_LEAVE, GROUP_SEND
			c.enqueue(errorFrame(requestIDOf(data), eUnknownType, "groups are not implemented by this peer"))
		}
	}
}

// route turns a SEND into a DELIVER by rewriting the shared 19-byte header in place.
func (h *hub) route(c *client, data []byte) {
	if len(data) < routedHeader {
		c.enqueue(errorFrame(requestIDOf(data), eMalformed, "SEND too short"))
		return
	}
	requestID := le.Uint64(data[2:])
	wantAck := data[10]&flagAck != 0
	to := le.Uint64(data[11:])
	if to == 0 || to == c.id {
		c.enqueue(errorFrame(requestID, eInvalidTarget, "bad recipient"))
		return
	}
	peer := h.lookup(to)
	if peer == nil {
		c.enqueue(errorFrame(requestID, eUnknownRecipient, "recipient not online"))
		return
	}
	data[1] = rDeliver
	le.PutUint64(data[2:], c.id)
	data[10] = 0
	le.PutUint64(data[11:], 0)
	if !peer.enqueue(data) {
		peer.stop() // a slow consumer: closed, this frame not delivered
		c.enqueue(errorFrame(requestID, eRecipientOverload, "recipient's queue is full"))
		return
	}
	if wantAck {
		c.enqueue(ack(requestID))
	}
}

func (h *hub) publish(c *client, data []byte) {
	requestID := requestIDOf(data)
	if len(data) < 12 || len(data) != 12+int(le.Uint16(data[10:])) {
		c.enqueue(errorFrame(requestID, eMalformed, "KEY_PUBLISH does not decode"))
		return
	}
	if n := len(data) - 12; n < 1 || n > 256 {
		c.enqueue(errorFrame(requestID, eBadKey, "key length out of range"))
		return
	}
	key := append([]byte(nil), data[12:]...)
	h.mu.Lock()
	h.keys[c.id] = key
	h.mu.Unlock()
	c.enqueue(ack(requestID))
}

func (h *hub) fetch(c *client, data []byte) {
	requestID := requestIDOf(data)
	if len(data) != 18 {
		c.enqueue(errorFrame(requestID, eMalformed, "KEY_FETCH does not decode"))
		return
	}
	who := le.Uint64(data[10:])
	h.mu.RLock()
	key, ok := h.keys[who]
	h.mu.RUnlock()
	if !ok {
		c.enqueue(errorFrame(requestID, eNoSuchKey, "no key published"))
		return
	}
	b := reply(rKey, requestID, 10+len(key))
	le.PutUint64(b[10:], who)
	c.enqueue(withBytes(b, 18, key))
}

func main() {
	listen := flag.String("listen", "127.0.0.1:9000", "address to listen on (HOST:PORT)")
	flag.Parse()
	h := &hub{clients: make(map[uint64]*client), keys: make(map[uint64][]byte)}
	http.HandleFunc("/", h.serve)
	log.Printf("go gorilla relay listening on %s", *listen)
	log.Fatal(http.ListenAndServe(*listen, nil))
}
