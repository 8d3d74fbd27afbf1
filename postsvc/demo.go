package postsvc

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"strconv"

	"github.com/valyala/fasthttp"

	"github.com/the-red/zkpost/internal/httpapi"
	"github.com/the-red/zkpost/internal/post"
)

// demoPageSize is how many posts the demo page shows.
const demoPageSize = 20

// demoCard is one post as the demo page shows it. Every field is plain text for html/template to
// escape; the URL fields hold only absolute http(s) URLs (safeURL), so a preview cannot smuggle a
// javascript: or data: link or image.
type demoCard struct {
	ID, Contents, Created           string
	Link                            string
	Title, Description, Site, Image string
}

type demoPage struct {
	UserID  string
	Error   string
	Cards   []demoCard
	NextURL string
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
	work, cancel := requestContext(ctx)
	defer cancel()
	posts, next, err := s.svc.Page(work, q)
	if err != nil {
		page.Error = errorMessage(err)
		s.renderDemo(ctx, statusOf(err), page)
		return
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
	s.renderDemo(ctx, fasthttp.StatusOK, page)
}

func (s *Server) demoWrite(ctx *fasthttp.RequestCtx) {
	args := ctx.PostArgs()
	uid := string(args.Peek("user_id"))
	in, err := s.rules.parseWriteQuery(uid, args.Peek("contents"), args.Peek("url"))
	if err == nil {
		work, cancel := requestContext(ctx)
		_, err = s.svc.Write(work, in)
		cancel()
	}
	if err != nil {
		page := demoPage{Error: errorMessage(err)}
		if id, perr := parseUserID(uid); perr == nil {
			page.UserID = strconv.FormatUint(id, 10)
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
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'none'; img-src http: https:; style-src 'unsafe-inline'; form-action 'self'")
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
		Created: p.CreatedAt.UTC().Format("2006-01-02 15:04:05 MST"), Link: safeURL(p.URL)}
	var sc map[string]any
	if json.Unmarshal(p.Scrap, &sc) != nil {
		return c
	}
	str := func(k string) string { v, _ := sc[k].(string); return v }
	c.Title, c.Description, c.Site = str("title"), str("description"), str("site_name")
	c.Image = safeURL(str("image"))
	if c.Link == "" {
		c.Link = safeURL(str("url"))
	}
	return c
}

// safeURL returns u when it is an absolute http(s) URL with a host, else "".
func safeURL(u string) string {
	if checkURL(u) != nil {
		return ""
	}
	return u
}

const demoHTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>posts{{if .UserID}} of user {{.UserID}}{{end}}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font-family:system-ui,sans-serif;max-width:42rem;margin:2rem auto;padding:0 1rem;color:#222}
form{display:grid;gap:.5rem;margin-bottom:2rem}textarea,input{font:inherit;padding:.4rem}
.err{color:#a00}.post{border:1px solid #ddd;border-radius:8px;padding:1rem;margin:1rem 0}
.meta{color:#777;font-size:.85rem}.card{display:flex;gap:.8rem;border:1px solid #eee;border-radius:6px;
padding:.6rem;margin-top:.6rem;text-decoration:none;color:inherit}.card img{width:96px;height:96px;object-fit:cover}
.site{color:#777;font-size:.8rem}.contents{white-space:pre-wrap;overflow-wrap:anywhere}
</style></head><body>
<h1>posts{{if .UserID}} of user {{.UserID}}{{end}}</h1>
{{if .Error}}<p class="err">{{.Error}}</p>{{end}}
<form method="post" action="/demo">
<label>user id <input name="user_id" value="{{.UserID}}" required inputmode="numeric"></label>
<textarea name="contents" rows="3" placeholder="what's new?" required></textarea>
<input name="url" type="url" placeholder="https://example.com/ (optional)">
<button type="submit">post</button>
</form>
{{range .Cards}}<article class="post">
<div class="contents">{{.Contents}}</div>
<div class="meta">#{{.ID}} · {{.Created}}</div>
{{if or .Title .Description .Image}}{{if .Link}}<a class="card" href="{{.Link}}" rel="noopener noreferrer nofollow">{{else}}<div class="card">{{end}}
{{if .Image}}<img src="{{.Image}}" alt="" loading="lazy" referrerpolicy="no-referrer">{{end}}
<div>{{if .Title}}<strong>{{.Title}}</strong>{{end}}
{{if .Description}}<p>{{.Description}}</p>{{end}}
{{if .Site}}<div class="site">{{.Site}}</div>{{end}}</div>
{{if .Link}}</a>{{else}}</div>{{end}}{{else if .Link}}<a href="{{.Link}}" rel="noopener noreferrer nofollow">{{.Link}}</a>{{end}}
</article>{{else}}{{if .UserID}}<p>No posts yet.</p>{{end}}{{end}}
{{if .NextURL}}<p><a href="{{.NextURL}}">older posts</a></p>{{end}}
</body></html>
`
