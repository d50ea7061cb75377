//! The streaming HTML link extractor.
//!
//! Built on lol_html: the page is fed chunk by chunk as it arrives and never held whole, in
//! constant memory. It collects every URL-bearing attribute the checker follows (links,
//! assets, frames, media, `srcset` candidates, meta refresh), the document's anchors
//! (`id`s and `<a name>`), and the first `<base href>`. Raw values are resolved after the
//! document ends, because `<base>` applies to the whole document, even to links before it.

use crate::normalize::{Resolved, resolve};
use lol_html::html_content::Element as HtmlElement;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, OutputSink, element};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use url::Url;

/// The element and attribute a link was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Element {
    /// `<a href>`
    A,
    /// `<area href>`
    Area,
    /// `<link href>` (stylesheets, icons, preloads, alternates, …)
    Link,
    /// `<img src>`
    Img,
    /// A candidate of `<img srcset>`
    ImgSrcset,
    /// `<script src>`
    Script,
    /// `<iframe src>`
    Iframe,
    /// `<frame src>`
    Frame,
    /// `<source src>`
    Source,
    /// A candidate of `<source srcset>`
    SourceSrcset,
    /// `<video src>`
    Video,
    /// `<video poster>`
    VideoPoster,
    /// `<audio src>`
    Audio,
    /// `<track src>`
    Track,
    /// `<embed src>`
    Embed,
    /// `<object data>`
    Object,
    /// `<meta http-equiv="refresh" content="…; url=…">`
    MetaRefresh,
    /// A `<loc>` of the site's sitemap.
    Sitemap,
}

impl Element {
    /// How reports name it: `a[href]`, `img[srcset]`, …
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::A => "a[href]",
            Self::Area => "area[href]",
            Self::Link => "link[href]",
            Self::Img => "img[src]",
            Self::ImgSrcset => "img[srcset]",
            Self::Script => "script[src]",
            Self::Iframe => "iframe[src]",
            Self::Frame => "frame[src]",
            Self::Source => "source[src]",
            Self::SourceSrcset => "source[srcset]",
            Self::Video => "video[src]",
            Self::VideoPoster => "video[poster]",
            Self::Audio => "audio[src]",
            Self::Track => "track[src]",
            Self::Embed => "embed[src]",
            Self::Object => "object[data]",
            Self::MetaRefresh => "meta[refresh]",
            Self::Sitemap => "sitemap[loc]",
        }
    }

    /// Whether following the link leads to another document a person reads (so a
    /// same-origin target is crawled), rather than to an asset of this one.
    #[must_use]
    pub const fn is_navigation(self) -> bool {
        matches!(
            self,
            Self::A | Self::Area | Self::Iframe | Self::Frame | Self::MetaRefresh | Self::Sitemap
        )
    }
}

impl Serialize for Element {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A URL-bearing attribute value as written in the page.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawLink {
    /// The attribute value (entities decoded, not resolved).
    pub value: String,
    /// Where it was found.
    pub element: Element,
}

/// Everything extracted from one document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// Links in document order.
    pub links: Vec<RawLink>,
    /// Fragment targets: every `id` and every `<a name>`.
    pub anchors: HashSet<String>,
    /// The first `<base href>`, if any.
    pub base: Option<String>,
}

impl Extracted {
    /// Resolves the links against the document URL (and its `<base>`), dropping non-http
    /// links, in document order.
    #[must_use]
    pub fn resolve(&self, document: &Url) -> Vec<(Resolved, Element)> {
        let base = self
            .base
            .as_deref()
            .and_then(|b| document.join(b.trim()).ok())
            .filter(|b| matches!(b.scheme(), "http" | "https"))
            .unwrap_or_else(|| document.clone());
        self.links
            .iter()
            .filter_map(|l| resolve(&base, &l.value).map(|r| (r, l.element)))
            .collect()
    }
}

/// Why extraction stopped.
#[derive(Debug, thiserror::Error)]
#[error("cannot parse the HTML: {0}")]
pub struct ExtractError(String);

struct Discard;

impl OutputSink for Discard {
    fn handle_chunk(&mut self, _: &[u8]) {}
}

/// Feeds a document in chunks, then [`LinkExtractor::finish`].
pub struct LinkExtractor {
    rewriter: HtmlRewriter<'static, Discard>,
    found: Arc<Mutex<Extracted>>,
}

impl fmt::Debug for LinkExtractor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LinkExtractor").finish_non_exhaustive()
    }
}

/// lol_html buffers only partial tags; this bounds what a hostile page can make it hold.
const MAX_PARSER_MEMORY: usize = 8 * 1024 * 1024;

type Handler = (
    std::borrow::Cow<'static, lol_html::Selector>,
    lol_html::send::ElementContentHandlers<'static>,
);

/// An attribute's value with character references decoded (lol_html leaves `&amp;` as
/// written), by the HTML rules for attributes: a legacy entity without `;` followed by
/// `=` or an alphanumeric stays literal, so `?a=1&copy=2` keeps its `&copy`.
fn attribute(
    el: &HtmlElement<'_, '_, lol_html::send::SendHandlerTypes>,
    name: &str,
) -> Option<String> {
    let raw = el.get_attribute(name)?;
    if raw.contains('&') {
        Some(htmlize::unescape_attribute(raw).into_owned())
    } else {
        Some(raw)
    }
}

fn attr_handler(
    found: &Arc<Mutex<Extracted>>,
    selector: &'static str,
    attr: &'static str,
    element: Element,
) -> Handler {
    let found = Arc::clone(found);
    element!(selector, move |el: &mut HtmlElement<'_, '_, _>| {
        if let Some(value) = attribute(el, attr) {
            found.lock().links.push(RawLink { value, element });
        }
        Ok(())
    })
}

fn srcset_handler(
    found: &Arc<Mutex<Extracted>>,
    selector: &'static str,
    element: Element,
) -> Handler {
    let found = Arc::clone(found);
    element!(selector, move |el: &mut HtmlElement<'_, '_, _>| {
        if let Some(value) = attribute(el, "srcset") {
            let mut found = found.lock();
            for candidate in srcset_urls(&value) {
                found.links.push(RawLink {
                    value: candidate.to_owned(),
                    element,
                });
            }
        }
        Ok(())
    })
}

impl LinkExtractor {
    /// An extractor for a document in `charset` (a label from `Content-Type`; UTF-8 when
    /// absent, unknown, or not ASCII-compatible, which lol_html cannot stream).
    #[must_use]
    pub fn new(charset: Option<&str>) -> Self {
        let found = Arc::new(Mutex::new(Extracted::default()));
        let encoding = charset
            .and_then(|label| encoding_rs::Encoding::for_label(label.trim().as_bytes()))
            .and_then(AsciiCompatibleEncoding::new)
            .unwrap_or_else(AsciiCompatibleEncoding::utf_8);
        let mut handlers = vec![
            attr_handler(&found, "a[href]", "href", Element::A),
            attr_handler(&found, "area[href]", "href", Element::Area),
            attr_handler(&found, "img[src]", "src", Element::Img),
            srcset_handler(&found, "img[srcset]", Element::ImgSrcset),
            attr_handler(&found, "script[src]", "src", Element::Script),
            attr_handler(&found, "iframe[src]", "src", Element::Iframe),
            attr_handler(&found, "frame[src]", "src", Element::Frame),
            attr_handler(&found, "source[src]", "src", Element::Source),
            srcset_handler(&found, "source[srcset]", Element::SourceSrcset),
            attr_handler(&found, "video[src]", "src", Element::Video),
            attr_handler(&found, "video[poster]", "poster", Element::VideoPoster),
            attr_handler(&found, "audio[src]", "src", Element::Audio),
            attr_handler(&found, "track[src]", "src", Element::Track),
            attr_handler(&found, "embed[src]", "src", Element::Embed),
            attr_handler(&found, "object[data]", "data", Element::Object),
        ];
        let links = Arc::clone(&found);
        handlers.push(element!("link[href]", move |el: &mut HtmlElement<
            '_,
            '_,
            _,
        >| {
            // preconnect/dns-prefetch name an origin to warm up, not a resource.
            let rel = attribute(el, "rel")
                .unwrap_or_default()
                .to_ascii_lowercase();
            let origin_hint = rel
                .split_ascii_whitespace()
                .all(|r| r == "preconnect" || r == "dns-prefetch");
            if (rel.is_empty() || !origin_hint)
                && let Some(value) = attribute(el, "href")
            {
                links.lock().links.push(RawLink {
                    value,
                    element: Element::Link,
                });
            }
            Ok(())
        }));
        let refresh = Arc::clone(&found);
        handlers.push(element!(
            "meta[http-equiv][content]",
            move |el: &mut HtmlElement<'_, '_, _>| {
                let is_refresh = attribute(el, "http-equiv")
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("refresh"));
                if is_refresh
                    && let Some(target) = attribute(el, "content").as_deref().and_then(refresh_url)
                {
                    refresh.lock().links.push(RawLink {
                        value: target.to_owned(),
                        element: Element::MetaRefresh,
                    });
                }
                Ok(())
            }
        ));
        let base = Arc::clone(&found);
        handlers.push(element!("base[href]", move |el: &mut HtmlElement<
            '_,
            '_,
            _,
        >| {
            let mut found = base.lock();
            if found.base.is_none() {
                found.base = attribute(el, "href");
            }
            Ok(())
        }));
        let ids = Arc::clone(&found);
        handlers.push(element!("[id]", move |el: &mut HtmlElement<'_, '_, _>| {
            if let Some(id) = attribute(el, "id").filter(|id| !id.is_empty()) {
                ids.lock().anchors.insert(id);
            }
            Ok(())
        }));
        let names = Arc::clone(&found);
        handlers.push(element!("a[name]", move |el: &mut HtmlElement<
            '_,
            '_,
            _,
        >| {
            if let Some(name) = attribute(el, "name").filter(|n| !n.is_empty()) {
                names.lock().anchors.insert(name);
            }
            Ok(())
        }));
        let settings = Settings::new_send()
            .with_encoding(encoding)
            .with_strict(false)
            .with_memory_settings(
                MemorySettings::new().with_max_allowed_memory_usage(MAX_PARSER_MEMORY),
            );
        let mut settings = settings;
        for (selector, handler) in handlers {
            settings = settings.append_element_content_handler((selector, handler));
        }
        Self {
            rewriter: HtmlRewriter::new(settings, Discard),
            found,
        }
    }

    /// Feeds the next chunk of the document.
    pub fn write(&mut self, chunk: &[u8]) -> Result<(), ExtractError> {
        self.rewriter
            .write(chunk)
            .map_err(|e| ExtractError(e.to_string()))
    }

    /// Ends the document and returns what was found.
    pub fn finish(self) -> Result<Extracted, ExtractError> {
        self.rewriter
            .end()
            .map_err(|e| ExtractError(e.to_string()))?;
        Ok(std::mem::take(&mut *self.found.lock()))
    }
}

/// Extracts from a whole document at once (UTF-8).
pub fn extract(html: &[u8]) -> Result<Extracted, ExtractError> {
    let mut x = LinkExtractor::new(None);
    x.write(html)?;
    x.finish()
}

/// The URL of a meta refresh `content` (`"5; url=/next"`, `"0;URL='x.html'"`, `"3, next"`),
/// following the HTML "shared declarative refresh steps".
#[must_use]
pub fn refresh_url(content: &str) -> Option<&str> {
    let s = content.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_prefix([';', ','])?;
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = match s.get(..3) {
        Some(p) if p.eq_ignore_ascii_case("url") => {
            let rest = s[3..].trim_start_matches(|c: char| c.is_ascii_whitespace());
            match rest.strip_prefix('=') {
                Some(r) => r.trim_start_matches(|c: char| c.is_ascii_whitespace()),
                None => s,
            }
        }
        _ => s,
    };
    let s = match s.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &s[1..];
            inner.find(q).map_or(inner, |end| &inner[..end])
        }
        _ => s.trim_end_matches(|c: char| c.is_ascii_whitespace()),
    };
    (!s.is_empty()).then_some(s)
}

/// The URLs of a `srcset` attribute, per the HTML "parse a srcset attribute" algorithm:
/// candidates are separated by commas, but a URL may itself contain commas, and a
/// descriptor list may contain commas inside parentheses.
#[must_use]
pub fn srcset_urls(srcset: &str) -> Vec<&str> {
    let mut urls = Vec::new();
    let bytes = srcset.as_bytes();
    let mut i = 0;
    loop {
        while i < bytes.len() && (bytes[i].is_ascii_whitespace() || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let mut url = &srcset[start..i];
        if url.ends_with(',') {
            // A trailing comma ends the candidate: no descriptors.
            url = url.trim_end_matches(',');
        } else {
            let mut in_parens = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'(' => in_parens = true,
                    b')' => in_parens = false,
                    b',' if !in_parens => break,
                    _ => {}
                }
                i += 1;
            }
        }
        if !url.is_empty() {
            urls.push(url);
        }
    }
    urls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(html: &str) -> Vec<(String, Element)> {
        extract(html.as_bytes())
            .unwrap()
            .links
            .into_iter()
            .map(|l| (l.value, l.element))
            .collect()
    }

    #[test]
    fn every_url_bearing_element_is_found() {
        let html = r#"<!doctype html><html><head>
            <link rel="stylesheet" href="/s.css"><link rel="preconnect" href="https://cdn.test">
            <link rel="icon" href="/favicon.ico"><script src="/app.js"></script>
            <meta http-equiv="Refresh" content="5; URL='/next.html'">
            </head><body>
            <a href="/a.html">a</a><a>no href</a><area href="/map.html">
            <img src="/i.png" srcset="/i-1x.png 1x, /i-2x.png 2x">
            <picture><source srcset="/s.webp" type="image/webp"><source src="/m.mp4"></picture>
            <iframe src="/frame.html"></iframe><frame src="/f2.html">
            <video src="/v.mp4" poster="/p.jpg"><track src="/t.vtt"></video>
            <audio src="/a.mp3"></audio><embed src="/e.swf"><object data="/o.pdf"></object>
            <a href="mailto:x@a.test">mail</a><a href="/q?x=1&amp;y=2">amp</a><a href="/legacy?a=1&copy=2&lt">legacy</a>
            </body></html>"#;
        let found = links(html);
        let expected = [
            ("/s.css", Element::Link),
            ("/favicon.ico", Element::Link),
            ("/app.js", Element::Script),
            ("/next.html", Element::MetaRefresh),
            ("/a.html", Element::A),
            ("/map.html", Element::Area),
            ("/i.png", Element::Img),
            ("/i-1x.png", Element::ImgSrcset),
            ("/i-2x.png", Element::ImgSrcset),
            ("/s.webp", Element::SourceSrcset),
            ("/m.mp4", Element::Source),
            ("/frame.html", Element::Iframe),
            ("/f2.html", Element::Frame),
            ("/v.mp4", Element::Video),
            ("/p.jpg", Element::VideoPoster),
            ("/t.vtt", Element::Track),
            ("/a.mp3", Element::Audio),
            ("/e.swf", Element::Embed),
            ("/o.pdf", Element::Object),
            ("mailto:x@a.test", Element::A),
            ("/q?x=1&y=2", Element::A),
            ("/legacy?a=1&copy=2<", Element::A),
        ];
        for (value, element) in expected {
            assert!(
                found.contains(&(value.to_owned(), element)),
                "{value} {element} missing from {found:?}"
            );
        }
        assert_eq!(found.len(), expected.len(), "{found:?}");
    }

    #[test]
    fn anchors_and_base_are_collected_and_base_applies_to_the_whole_document() {
        let html = r#"<a href="rel.html">before base</a><base href="/sub/"><base href="/other/">
            <h2 id="intro">x</h2><a name="legacy"></a><div id="">empty</div>"#;
        let x = extract(html.as_bytes()).unwrap();
        assert_eq!(x.base.as_deref(), Some("/sub/"));
        assert_eq!(
            x.anchors,
            HashSet::from(["intro".to_owned(), "legacy".to_owned()])
        );
        let doc = Url::parse("http://a.test/dir/page.html").unwrap();
        let resolved = x.resolve(&doc);
        assert_eq!(resolved[0].0.url.as_str(), "http://a.test/sub/rel.html");
    }

    #[test]
    fn chunk_boundaries_do_not_matter() {
        let html =
            r#"<html><body><a href="/one.html">1</a><img srcset="/a.png 1x, /b.png 2x"><p id="x">"#;
        let whole = extract(html.as_bytes()).unwrap();
        for size in 1..8 {
            let mut x = LinkExtractor::new(Some("utf-8"));
            for chunk in html.as_bytes().chunks(size) {
                x.write(chunk).unwrap();
            }
            assert_eq!(x.finish().unwrap(), whole, "chunk size {size}");
        }
    }

    #[test]
    fn legacy_encodings_are_decoded() {
        // "é" in windows-1252 is 0xE9.
        let html = b"<a href=\"/caf\xe9.html\">x</a>";
        let mut x = LinkExtractor::new(Some("windows-1252"));
        x.write(html).unwrap();
        assert_eq!(x.finish().unwrap().links[0].value, "/caf\u{e9}.html");
    }

    #[test]
    fn srcset_candidates_are_split_like_browsers() {
        assert_eq!(srcset_urls("a.png"), vec!["a.png"]);
        assert_eq!(srcset_urls("a.png 1x, b.png 2x"), vec!["a.png", "b.png"]);
        assert_eq!(srcset_urls("a.png 100w,b.png 200w"), vec!["a.png", "b.png"]);
        assert_eq!(
            srcset_urls("/img,v=1.png 1x, /img,v=2.png 2x"),
            vec!["/img,v=1.png", "/img,v=2.png"]
        );
        assert_eq!(srcset_urls("a.png,, b.png"), vec!["a.png", "b.png"]);
        assert_eq!(
            srcset_urls("a.png (x, y) 1x, b.png"),
            vec!["a.png", "b.png"]
        );
        assert_eq!(srcset_urls("  ,  "), Vec::<&str>::new());
    }

    #[test]
    fn meta_refresh_content_is_parsed() {
        assert_eq!(refresh_url("0; url=/next"), Some("/next"));
        assert_eq!(refresh_url("5;URL='/q x.html' trailing"), Some("/q x.html"));
        assert_eq!(refresh_url("3, \"/dq\""), Some("/dq"));
        assert_eq!(refresh_url("1; /plain"), Some("/plain"));
        assert_eq!(refresh_url("2.5 ; url = /spaced "), Some("/spaced"));
        assert_eq!(refresh_url("5"), None);
        assert_eq!(refresh_url("url=/x"), None);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn html() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("<a href=\"/x.html\">".to_owned()),
            Just("<a href='".to_owned()),
            Just("<img srcset=\"a.png 1x, b,c.png 2x\">".to_owned()),
            Just("<base href=\"/b/\">".to_owned()),
            Just("<meta http-equiv=refresh content=\"0;url=/r\">".to_owned()),
            Just("<p id=\"frag\">".to_owned()),
            Just("<script>var a = '<a href=\"/no\">';</script>".to_owned()),
            Just("<!-- <a href=\"/c\"> -->".to_owned()),
            Just("<svg><a href=\"/svg\"></a></svg>".to_owned()),
            Just("</".to_owned()),
            Just("<".to_owned()),
            Just("&amp;".to_owned()),
            "[a-z <>=\"'/#&;]{0,12}",
            "\\PC{0,12}",
        ];
        prop::collection::vec(piece, 0..20).prop_map(|p| p.concat())
    }

    proptest! {
        /// The extractor never panics or fails on any input, gives the same result
        /// whatever the chunking, and extracting is deterministic.
        #[test]
        fn extraction_is_total_and_chunking_independent(doc in html(), split in 1usize..64) {
            let whole = extract(doc.as_bytes());
            prop_assert!(whole.is_ok());
            let whole = whole.unwrap();
            let mut x = LinkExtractor::new(None);
            for chunk in doc.as_bytes().chunks(split) {
                prop_assert!(x.write(chunk).is_ok());
            }
            prop_assert_eq!(x.finish().unwrap(), whole.clone());
            let base = Url::parse("http://a.test/d/p.html").unwrap();
            for (r, _) in whole.resolve(&base) {
                prop_assert!(matches!(r.url.scheme(), "http" | "https"));
                prop_assert_eq!(crate::normalize::normalize(&r.url), r.url);
            }
        }
    }
}
