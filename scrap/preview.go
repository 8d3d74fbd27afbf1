// Package scrap builds link previews: it fetches a page safely (SSRF guard at dial time, limits,
// robots.txt), decodes its charset, and extracts Open Graph, Twitter card and HTML metadata.
package scrap

// Preview is a page's link preview, the "scrap" object of docs/api.md#scrapd
// (docs/glossary.md#preview). The first six fields are the reference's; absent values are null in
// JSON.
type Preview struct {
	Title       *string `json:"title"`
	URL         *string `json:"url"`
	Type        *string `json:"type"`
	Image       *string `json:"image"`
	Description *string `json:"description"`
	Author      *string `json:"author"`
	SiteName    *string `json:"site_name"`
	Locale      *string `json:"locale"`
	Icon        *string `json:"icon"`
	Images      []Image `json:"images"`
}

// Image is one og:image with its structured properties.
type Image struct {
	URL    string  `json:"url"`
	Width  *int    `json:"width"`
	Height *int    `json:"height"`
	Alt    *string `json:"alt"`
}
