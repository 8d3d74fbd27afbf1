package postsvc

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/post"
)

// demoPageSize is how many posts the demo page shows.
const demoPageSize = 20

// demoCard is one post as the demo page shows it. Every field is plain text for html/template to
// escape; the URL fields hold only absolute http(s) URLs (safeURL), so a preview cannot smuggle a
// javascript: or data: link or image. Link is shown as it is linked (visibleURL).
type demoCard struct {
	ID, Contents, Created           string
	Link                            string
	Title, Description, Site, Image string
}

type demoPage struct {
	UserID   string
	Error    string
	Contents string // the form's text, kept after a refused post
	URL      string
	Cards    []demoCard
	NextURL  string // older posts
	TopURL   string // the newest posts, shown on an older page
	// Since is the stream's resume position: the newest post shown, else the id of the moment the
	// page was read. Set only on the newest page, which then follows the stream.
	Since string
}

// handleDemo serves the timeline as link-preview cards (GET) and takes the form's posts (POST,
// answered with a redirect back to the timeline).
func (s *Server) handleDemo(ctx *fasthttp.RequestCtx) {
	if ctx.IsPost() {
		s.demoWrite(ctx)
		return
	}
	raw := string(ctx.QueryArgs().Peek("user_id"))
	if raw == "" {
		s.renderDemo(ctx, fasthttp.StatusOK, demoPage{})
		return
	}
	q, err := parseListQuery(raw, ctx.QueryArgs().Peek("f"), []byte(strconv.Itoa(demoPageSize)))
	if err != nil {
		s.renderDemo(ctx, fasthttp.StatusBadRequest, demoPage{Error: errorMessage(err)})
		return
	}
	page := demoPage{UserID: strconv.FormatUint(q.UserID, 10)}
	if err := s.fillTimeline(ctx, &page, q); err != nil {
		page.Error = errorMessage(err)
		s.renderDemo(ctx, statusOf(err), page)
		return
	}
	s.renderDemo(ctx, fasthttp.StatusOK, page)
}

// fillTimeline adds page q of the timeline to the page, with its links to older and newest posts.
func (s *Server) fillTimeline(ctx *fasthttp.RequestCtx, page *demoPage, q listQuery) error {
	work, cancel := requestContext(ctx)
	defer cancel()
	read := time.Now()
	posts, next, err := s.svc.Page(work, q)
	if err != nil {
		return err
	}
	for _, raw := range posts {
		var p post.Post
		if json.Unmarshal(raw, &p) == nil {
			page.Cards = append(page.Cards, cardOf(p))
		}
	}
	if next != 0 {
		page.NextURL = "/demo?" + url.Values{"user_id": {page.UserID}, "f": {strconv.FormatUint(next, 10)}}.Encode()
	}
	switch {
	case q.MaxID != 0:
		page.TopURL = "/demo?" + url.Values{"user_id": {page.UserID}}.Encode()
	case len(page.Cards) > 0:
		page.Since = page.Cards[0].ID
	default:
		page.Since = strconv.FormatUint(idAt(read), 10)
	}
	return nil
}

// demoWrite takes the form's post. A refused post shows the form again with what was typed, above
// the user's timeline.
func (s *Server) demoWrite(ctx *fasthttp.RequestCtx) {
	args := ctx.PostArgs()
	uid := string(args.Peek("user_id"))
	in, err := s.rules.parseWriteQuery(uid, args.Peek("contents"), args.Peek("url"))
	if err == nil {
		work, cancel := requestContext(ctx)
		_, _, err = s.svc.Write(work, in)
		cancel()
	}
	if err != nil {
		page := demoPage{Error: errorMessage(err), Contents: string(args.Peek("contents")), URL: string(args.Peek("url"))}
		if id, perr := parseUserID(uid); perr == nil {
			page.UserID = strconv.FormatUint(id, 10)
			// The timeline is shown when it can be read; the refusal is what the page reports.
			_ = s.fillTimeline(ctx, &page, listQuery{UserID: id, Limit: demoPageSize})
		}
		s.renderDemo(ctx, statusOf(err), page)
		return
	}
	ctx.Redirect("/demo?user_id="+strconv.FormatUint(in.UserID, 10), fasthttp.StatusSeeOther)
}

func (s *Server) renderDemo(ctx *fasthttp.RequestCtx, status int, page demoPage) {
	var buf bytes.Buffer
	if err := s.demo.Execute(&buf, page); err != nil {
		s.log.Error("demo template", "err", err)
		httpapi.WriteError(ctx, httpapi.ErrInternal)
		return
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("text/html; charset=utf-8")
	// No script runs on this page; forbid any that markup might still sneak in.
	ctx.Response.Header.Set("Content-Security-Policy", demoCSP)
	ctx.Response.Header.Set("X-Content-Type-Options", "nosniff")
	ctx.SetBody(buf.Bytes())
}

func errorMessage(err error) string {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "internal error"
}

func statusOf(err error) int {
	var e *httpapi.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return fasthttp.StatusInternalServerError
}

// cardOf reads the preview fields the card shows; anything not a string is ignored.
func cardOf(p post.Post) demoCard {
	c := demoCard{ID: strconv.FormatUint(p.ID, 10), Contents: p.Contents,
		Created: p.CreatedAt.UTC().Format("2006-01-02 15:04:05 MST"), Link: visibleURL(safeURL(p.URL))}
	var sc map[string]any
	if json.Unmarshal(p.Scrap, &sc) != nil {
		return c
	}
	str := func(k string) string { v, _ := sc[k].(string); return v }
	c.Title, c.Description, c.Site = str("title"), str("description"), str("site_name")
	c.Image = safeURL(str("image"))
	if c.Link == "" {
		c.Link = visibleURL(safeURL(str("url")))
	}
	return c
}

// safeURL returns u when it parses as an absolute http(s) URL with a host and no credentials,
// else "". It does not judge the characters: visibleURL shows whatever is there.
func safeURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || p.User != nil || len(u) > MaxURLBytes {
		return ""
	}
	if s := strings.ToLower(p.Scheme); s != "http" && s != "https" {
		return ""
	}
	return u
}

// visibleURL returns u as it is shown and linked on the page: every byte outside the printable
// ASCII that a URL keeps as it is (the set html/template leaves alone when it normalizes an href)
// is percent-encoded. Bidi controls, zero-width and other invisible or look-alike characters
// therefore show as %XX, and the text shown is exactly the href: nothing stored can make a link
// read as something other than where it goes.
func visibleURL(u string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		if c == '%' && i+2 < len(u) && isHexDigit(u[i+1]) && isHexDigit(u[i+2]) || urlKeeps(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// urlKeeps reports whether html/template's URL normalizer keeps c as it is.
func urlKeeps(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("-._~!#$&*+,/:;=?@[]", c) >= 0
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// demoScript follows the author's stream (GET /api/v1/posts/<uid>/stream) on the newest page and
// puts each new post on top without a reload, built with textContent only and deduplicated by
// id (a resumed stream repeats ids). Links are shown as visibleURL shows them.
const demoScript = `(function () {
  var list = document.getElementById('posts');
  if (!list || !list.dataset.uid || !list.dataset.since || !window.EventSource) return;
  var keep = /[A-Za-z0-9\-._~!#$&*+,\/:;=?@\[\]]/;
  function visible(u) {
    var b = new TextEncoder().encode(u), out = '';
    for (var i = 0; i < b.length; i++) {
      var c = String.fromCharCode(b[i]);
      if (b[i] < 128 && (keep.test(c) || (c === '%' && /^[0-9A-Fa-f]{2}$/.test(u.substr(i + 1, 2))))) { out += c; continue; }
      out += '%' + (b[i] < 16 ? '0' : '') + b[i].toString(16).toUpperCase();
    }
    return out;
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text) e.textContent = text;
    return e;
  }
  var es = new EventSource('/api/v1/posts/' + encodeURIComponent(list.dataset.uid) + '/stream?last_event_id=' + encodeURIComponent(list.dataset.since));
  es.onopen = function () { list.dataset.stream = 'open'; };
  es.onerror = function () { list.dataset.stream = 'reconnecting'; };
  es.onmessage = function (e) {
    var p;
    try { p = JSON.parse(e.data); } catch (_) { return; }
    if (!p || typeof p.post_id_str !== 'string' || document.getElementById('post-' + p.post_id_str)) return;
    var a = el('article', 'post');
    a.id = 'post-' + p.post_id_str;
    a.appendChild(el('div', 'contents', String(p.contents)));
    a.appendChild(el('div', 'meta', '#' + p.post_id_str + ' \u00b7 ' + String(p.created_at).replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC')));
    if (p.scrap && typeof p.scrap.title === 'string') a.appendChild(el('div', 'card', p.scrap.title));
    if (typeof p.url === 'string' && /^https?:\/\//i.test(p.url)) {
      var v = visible(p.url), l = el('a', 'link', v);
      l.href = v;
      l.rel = 'noopener noreferrer nofollow';
      a.appendChild(l);
    }
    var empty = document.getElementById('empty');
    if (empty) empty.remove();
    list.insertBefore(a, list.firstChild);
  };
})();`

// demoCSP lets no script run on the page but demoScript (by its hash), and lets it reach only
// this server.
var demoCSP = func() string {
	sum := sha256.Sum256([]byte(demoScript))
	return "default-src 'none'; script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'; connect-src 'self'; " +
		"img-src http: https:; style-src 'unsafe-inline'; form-action 'self'"
}()

const demoHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>posts{{if .UserID}} of user {{.UserID}}{{end}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
form{display:grid;gap:.5rem;margin-bottom:2rem}textarea,input{font:inherit;padding:.4rem}
.err{color:#a00}.post{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.meta{color:#777;font-size:.85rem}.card{display:flex;gap:.8rem;border:1px solid #eee;border-radius:6px;
padding:.6rem;margin-top:.6rem}.card img{width:96px;height:96px;object-fit:cover}
.site{color:#777;font-size:.8rem}.contents{white-space:pre-wrap;overflow-wrap:anywhere}
.link{display:block;margin-top:.4rem;font-family:monospace;font-size:.85rem;overflow-wrap:anywhere}
</style></head><body>
<h1>posts{{if .UserID}} of user {{.UserID}}{{end}}</h1>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="/demo">
<label>user id <input name="user_id" value="{{.UserID}}" required inputmode="numeric"></label>
<textarea name="contents" rows="3" placeholder="what's new?" required>{{.Contents}}</textarea>
<input name="url" type="url" value="{{.URL}}" placeholder="https://example.com/ (optional)">
<button type="submit">post</button>
</form>
{{if .TopURL}}<p><a href="{{.TopURL}}">&larr; newest posts</a></p>{{end}}
<section id="posts" data-uid="{{.UserID}}" data-since="{{.Since}}">
{{range .Cards}}<article class="post" id="post-{{.ID}}">
<div class="contents">{{.Contents}}</div>
<div class="meta">#{{.ID}} · {{.Created}}</div>
{{if or .Title .Description .Image}}<div class="card">
{{if .Image}}<img src="{{.Image}}" alt="" loading="lazy" referrerpolicy="no-referrer">{{end}}
<div>{{if .Title}}<strong>{{.Title}}</strong>{{end}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Site}}<div class="site">{{.Site}}</div>{{end}}</div>
</div>{{end}}
{{if .Link}}<a class="link" href="{{.Link}}" rel="noopener noreferrer nofollow">{{.Link}}</a>{{end}}
</article>
{{else}}{{if .UserID}}<p id="empty">No posts yet.</p>{{end}}{{end}}
</section>
{{if .NextURL}}<p><a href="{{.NextURL}}">older posts</a></p>{{end}}
{{if .TopURL}}<p><a href="{{.TopURL}}">&larr; newest posts</a></p>{{end}}
{{if .Since}}<script>` + demoScript + `</script>{{end}}
</body></html>
`
