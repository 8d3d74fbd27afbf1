package httpapi

import (
	"bytes"
	"net"
	"strconv"
)

// BareLFListener wraps ln so that a request whose head ends its lines with a bare LF is answered
// like one that uses CRLF. RFC 9112 §2.2 lets a recipient take a single LF as a line terminator;
// fasthttp does not, and worse, it keeps waiting for a CRLF CRLF that never comes until the read
// timeout closes the connection (docs/api.md, input rules). Every fasthttp daemon serves through
// this listener.
//
// Each connection follows the message framing: in a request head a bare LF becomes CRLF; a body
// of Content-Length bytes passes untouched; a head with Transfer-Encoding, a malformed or repeated
// Content-Length or a folded line switches the connection to pass-through for good, leaving the
// judgement to fasthttp, so the framing here can never disagree with fasthttp's and rewrite a body.
func BareLFListener(ln net.Listener) net.Listener { return lfListener{ln} }

type lfListener struct{ net.Listener }

func (l lfListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lfConn{Conn: c, contentLength: -1}, nil
}

type lfMode int

const (
	modeHead lfMode = iota
	modeBody
	modePass
)

// lineKeep is how much of a head line is kept to recognise Content-Length and Transfer-Encoding.
const lineKeep = 64

type lfConn struct {
	net.Conn
	pending []byte // transformed bytes not yet handed to the reader
	readErr error  // the error that came with them, returned once they are delivered

	mode          lfMode
	bodyLeft      int64
	prevCR        bool // the last head byte was a CR not yet known to end a line
	line          []byte
	lineLen       int
	sawStart      bool // the request line of this head has been read
	contentLength int64
	bad           bool // framing this wrapper will not judge: pass through
}

// NetConn returns the wrapped connection (the name crypto/tls uses), so code that tunes the
// socket, such as a stream limiting its send buffer, reaches the TCP connection underneath.
func (c *lfConn) NetConn() net.Conn { return c.Conn }

func (c *lfConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		if len(c.pending) > 0 {
			return n, nil
		}
		err := c.readErr
		c.readErr = nil
		return n, err
	}
	n, err := c.Conn.Read(p)
	if n == 0 || c.mode == modePass {
		return n, err
	}
	out := c.transform(p[:n])
	if out == nil {
		return n, err
	}
	m := copy(p, out)
	c.pending = append(c.pending[:0], out[m:]...)
	if len(c.pending) > 0 {
		c.readErr = err
		return m, nil
	}
	return m, err
}

// transform advances the framing over b. It returns nil when b needs no change, else the bytes
// to deliver instead.
func (c *lfConn) transform(b []byte) []byte {
	var out []byte
	for i := 0; i < len(b); i++ {
		switch c.mode {
		case modePass:
			if out != nil {
				out = append(out, b[i:]...)
			}
			return out
		case modeBody:
			skip := int64(len(b) - i)
			if skip > c.bodyLeft {
				skip = c.bodyLeft
			}
			if out != nil {
				out = append(out, b[i:i+int(skip)]...)
			}
			i += int(skip) - 1
			if c.bodyLeft -= skip; c.bodyLeft == 0 {
				c.mode = modeHead
			}
			continue
		}
		if b[i] == '\n' && !c.prevCR && out == nil {
			out = append(make([]byte, 0, len(b)+16), b[:i]...)
		}
		if b[i] == '\n' && !c.prevCR {
			out = append(out, '\r')
		}
		if out != nil {
			out = append(out, b[i])
		}
		c.headByte(b[i])
	}
	return out
}

// headByte advances the head parser by one byte.
func (c *lfConn) headByte(ch byte) {
	if ch == '\n' {
		c.prevCR = false
		c.endLine()
		return
	}
	if c.prevCR {
		c.addToLine('\r') // a bare CR is line content; fasthttp judges it
	}
	c.prevCR = ch == '\r'
	if !c.prevCR {
		c.addToLine(ch)
	}
}

func (c *lfConn) addToLine(ch byte) {
	if c.lineLen < lineKeep {
		c.line = append(c.line, ch)
	}
	c.lineLen++
}

// endLine handles one complete head line.
func (c *lfConn) endLine() {
	line, full := c.line, c.lineLen <= lineKeep
	c.line, c.lineLen = c.line[:0], 0
	switch {
	case len(line) == 0 && !c.sawStart:
		// empty lines before a request line (RFC 9112 §2.2)
	case len(line) == 0:
		c.endHead()
	case !c.sawStart:
		c.sawStart = true
	case line[0] == ' ' || line[0] == '\t':
		c.bad = true // obsolete line folding
	default:
		c.headerLine(line, full)
	}
}

func (c *lfConn) headerLine(line []byte, full bool) {
	name, value, ok := bytes.Cut(line, []byte(":"))
	if !ok {
		return
	}
	switch {
	case bytes.EqualFold(name, []byte("transfer-encoding")):
		c.bad = true
	case bytes.EqualFold(name, []byte("content-length")):
		digits := bytes.Trim(value, " \t")
		n, err := strconv.ParseInt(string(digits), 10, 64)
		if !full || err != nil || !allDigits(digits) || (c.contentLength >= 0 && c.contentLength != n) {
			c.bad = true
		}
		c.contentLength = n
	}
}

func (c *lfConn) endHead() {
	switch {
	case c.bad:
		c.mode = modePass
	case c.contentLength > 0:
		c.mode, c.bodyLeft = modeBody, c.contentLength
	}
	c.sawStart, c.contentLength = false, -1
}

func allDigits(b []byte) bool {
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return len(b) > 0
}
