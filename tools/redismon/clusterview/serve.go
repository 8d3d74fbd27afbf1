package clusterview

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
)

const (
	heartbeat    = 15 * time.Second
	writeTimeout = 10 * time.Second
)

// viewers are the open event streams, bounded, and closed together on shutdown.
type viewers struct {
	n       atomic.Int64
	closing chan struct{}
	once    sync.Once
	conns   sync.Map // net.Conn → struct{}
	wg      sync.WaitGroup
}

func newViewers() viewers { return viewers{closing: make(chan struct{})} }

func (vs *viewers) close(ctx context.Context) error {
	vs.once.Do(func() { close(vs.closing) })
	vs.conns.Range(func(k, _ any) bool {
		_ = k.(net.Conn).SetWriteDeadline(time.Now())
		return true
	})
	done := make(chan struct{})
	go func() { vs.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return errors.New("cluster view streams still open")
	}
}

// ServePage answers GET /cluster: the page, which follows /cluster/events.
func (v *View) ServePage(ctx *fasthttp.RequestCtx) {
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.Response.Header.Set("Content-Security-Policy", pageCSP)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBodyString(pageHTML)
}

// ServeState answers GET /cluster/state: the latest state as JSON.
func (v *View) ServeState(ctx *fasthttp.RequestCtx) {
	b, _, _ := v.Current()
	ctx.SetStatusCode(fasthttp.StatusOK)
	ctx.SetContentType("application/json; charset=utf-8")
	ctx.SetBody(b)
}

// ServeEvents answers GET /cluster/events: the full state now and after every change, as
// server-sent events whose id is the state's version.
func (v *View) ServeEvents(ctx *fasthttp.RequestCtx) {
	if v.viewers.n.Add(1) > maxViewers {
		v.viewers.n.Add(-1)
		ctx.Response.Header.Set("Retry-After", "5")
		httpapi.WriteError(ctx, httpapi.ErrUnavailable.WithMessage("too many cluster view streams open; retry"))
		return
	}
	v.viewers.wg.Add(1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer v.viewers.wg.Done()
		defer v.viewers.n.Add(-1)
		v.viewers.conns.Store(c, struct{}{})
		defer v.viewers.conns.Delete(c)
		v.stream(c)
	})
}

func (v *View) stream(c net.Conn) {
	select {
	case <-v.viewers.closing:
		return
	default:
	}
	gone := make(chan struct{})
	_ = c.SetReadDeadline(time.Time{})
	go func() {
		defer close(gone)
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 1))
	}()
	w := bufio.NewWriter(c)
	_, _ = w.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n" +
		"Cache-Control: no-cache, no-store\r\nX-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 1000\n\n")
	tick := time.NewTicker(heartbeat)
	defer tick.Stop()
	var sent uint64
	for {
		b, version, changed := v.Current()
		if version != sent {
			_, _ = w.WriteString("id: " + strconv.FormatUint(version, 10) + "\ndata: ")
			_, _ = w.Write(b)
			_, _ = w.WriteString("\n\n")
			sent = version
		}
		_ = c.SetWriteDeadline(time.Now().Add(writeTimeout))
		if w.Flush() != nil {
			return
		}
		select {
		case <-v.viewers.closing:
			return
		case <-gone:
			return
		case <-changed:
		case <-tick.C:
			_, _ = w.WriteString(": heartbeat\n\n")
		}
	}
}

// pageScript renders each state it receives with textContent only.
const pageScript = `(function () {
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function table(id, head, rows) {
    var t = document.getElementById(id);
    t.replaceChildren();
    var tr = el('tr');
    head.forEach(function (h) { tr.appendChild(el('th', h)); });
    t.appendChild(tr);
    rows.forEach(function (r) {
      var row = el('tr');
      if (r.key) row.dataset.key = r.key;
      if (r.cls) row.className = r.cls;
      r.cells.forEach(function (c) { row.appendChild(el('td', c)); });
      t.appendChild(row);
    });
  }
  function rateOf(st, addr) {
    var r = (st.rates || []).find(function (x) { return x.addr === addr; });
    if (!r) return ['', ''];
    if (!r.up) return ['down', ''];
    return [r.per_second.toFixed(1) + '/s', r.errors_per_second.toFixed(2) + '/s'];
  }
  function render(st) {
    var rows = [];
    (st.services || []).forEach(function (s) {
      if (!s.nodes || !s.nodes.length) rows.push({cls: 'none', cells: [s.name, '(none)', '', '', '']});
      (s.nodes || []).forEach(function (n) {
        var r = rateOf(st, n.addr);
        rows.push({key: s.name + ' ' + n.addr, cells: [s.name, n.addr, n.role || '', r[0], r[1]]});
      });
    });
    table('nodes', ['service', 'node', 'role', 'requests', '5xx'], rows);
    table('cache', ['shard', 'address', 'state', 'epoch'], (st.cache || []).map(function (c) {
      return {key: c.name, cls: c.status === 'ALIVE' ? '' : 'bad', cells: [c.name, c.addr, c.status, c.epoch]};
    }));
    var q = st.queue || {}, d = st.db || {};
    var ep = [{cells: ['queue primary', q.primary || '(none)', '']}];
    (q.secondaries || []).forEach(function (a) { ep.push({cells: ['queue secondary', a, '']}); });
    ep.push({cells: ['db primary', d.primary || '(none)', '']});
    (d.replicas || []).forEach(function (r) { ep.push({cells: ['db replica', r.addr, r.lag_seconds < 0 ? 'lag unknown' : 'lag ' + r.lag_seconds + ' s']}); });
    table('endpoints', ['role', 'address', ''], ep);
    table('changes', ['time', 'change'], (st.changes || []).map(function (c) {
      return {cells: [new Date(c.at).toISOString().replace('T', ' ').replace('Z', ' UTC'), c.what]};
    }));
    document.getElementById('problems').textContent = (st.problems || []).join('; ');
    document.getElementById('updated').textContent = 'updated ' + new Date(st.updated).toISOString();
  }
  var es = new EventSource('/cluster/events');
  es.onopen = function () { document.body.dataset.stream = 'open'; };
  es.onerror = function () { document.body.dataset.stream = 'reconnecting'; };
  es.onmessage = function (e) {
    try { render(JSON.parse(e.data)); } catch (_) { return; }
    document.body.dataset.version = e.lastEventId;
  };
})();`

var pageCSP = func() string {
	sum := sha256.Sum256([]byte(pageScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; connect-src 'self'; style-src 'unsafe-inline'"
}()

const pageHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zkpost cluster</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:60rem;margin:1.5rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%;margin-bottom:1.5rem;font-size:.9rem}
th,td{text-align:left;padding:.25rem .5rem;border-bottom:1px solid #eee}th{color:#555}
tr.bad td{color:#a00}tr.none td{color:#999}#problems{color:#a00}#updated{color:#777;font-size:.8rem}
</style></head><body>
<h1>zkpost cluster</h1>
<p id="updated">connecting…</p><p id="problems"></p>
<h2>Nodes</h2><table id="nodes"></table>
<h2>Cache ring</h2><table id="cache"></table>
<h2>Queue and database</h2><table id="endpoints"></table>
<h2>Latest changes</h2><table id="changes"></table>
<script>` + pageScript + `</script>
</body></html>
`
