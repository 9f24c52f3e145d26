package client_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"sync"
	"testing"
)

// proxy is a TCP proxy in front of a gateway. It records the WebSocket
// frames clients send, and can freeze the connections it carries: they stay
// open, but nothing passes either way any more (a half-open connection, as a
// dead NAT or a suspended laptop leaves).
type proxy struct {
	t      *testing.T
	ln     net.Listener
	target string

	mu     sync.Mutex
	conns  []*proxied
	frames []frame
	wg     sync.WaitGroup
}

// frame is the header of one frame a client sent.
type frame struct {
	fin    bool
	opcode byte
	length int
}

type proxied struct {
	client, server net.Conn
	mu             sync.Mutex
	frozen         bool
}

func (c *proxied) isFrozen() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.frozen
}

// newProxy listens on a free port and forwards to target (host:port). It
// stops when the test ends.
func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, ln: ln, target: target}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

// url returns the WebSocket URL of the gateway behind the proxy.
func (p *proxy) url(gatewayURL string) string {
	return strings.Replace(gatewayURL, p.target, p.ln.Addr().String(), 1)
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", p.target)
		if err != nil {
			cc.Close()
			continue
		}
		c := &proxied{client: cc, server: sc}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(c, cc, sc, true)
		go p.pump(c, sc, cc, false)
	}
}

// pump copies src to dst until either ends, dropping what comes while the
// connection is frozen; from the client, it records the frames.
func (p *proxy) pump(c *proxied, src, dst net.Conn, fromClient bool) {
	defer p.wg.Done()
	defer dst.Close()
	defer src.Close()
	var parser frameParser
	buf := make([]byte, 64<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !c.isFrozen() {
			if fromClient {
				if fs := parser.feed(buf[:n]); len(fs) > 0 {
					p.mu.Lock()
					p.frames = append(p.frames, fs...)
					p.mu.Unlock()
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// freeze stops everything on the connections open now; new ones pass.
func (p *proxy) freeze() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.mu.Lock()
		c.frozen = true
		c.mu.Unlock()
	}
}

// sent returns the frames clients have sent, and forgets them.
func (p *proxy) sent() []frame {
	p.mu.Lock()
	defer p.mu.Unlock()
	fs := p.frames
	p.frames = nil
	return fs
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		c.client.Close()
		c.server.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

// frameParser reads the frame headers of a client's byte stream, after its
// HTTP handshake.
type frameParser struct {
	buf       bytes.Buffer
	handshake bool // the handshake is behind
	skip      int  // payload bytes of the current frame still to skip
}

func (fp *frameParser) feed(b []byte) []frame {
	var out []frame
	for len(b) > 0 {
		if fp.skip > 0 {
			n := min(fp.skip, len(b))
			fp.skip -= n
			b = b[n:]
			continue
		}
		fp.buf.Write(b)
		b = nil
		if !fp.handshake {
			i := bytes.Index(fp.buf.Bytes(), []byte("\r\n\r\n"))
			if i < 0 {
				return out
			}
			fp.buf.Next(i + 4)
			fp.handshake = true
		}
		for {
			h := fp.buf.Bytes()
			if len(h) < 2 {
				break
			}
			length, at := int(h[1]&0x7f), 2
			switch length {
			case 126:
				if len(h) < 4 {
					return out
				}
				length, at = int(binary.BigEndian.Uint16(h[2:4])), 4
			case 127:
				if len(h) < 10 {
					return out
				}
				length, at = int(binary.BigEndian.Uint64(h[2:10])), 10
			}
			if h[1]&0x80 != 0 {
				at += 4 // masking key
			}
			if len(h) < at {
				break
			}
			out = append(out, frame{fin: h[0]&0x80 != 0, opcode: h[0] & 0x0f, length: length})
			fp.buf.Next(at)
			n := min(length, fp.buf.Len())
			fp.buf.Next(n)
			if length > n { // the buffer is empty: skip the rest as it comes
				fp.skip = length - n
				break
			}
		}
	}
	return out
}
