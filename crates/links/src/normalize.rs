//! Canonical URLs, so that one resource is checked once however it is spelled.
//!
//! The WHATWG parser (the `url` crate) already lower-cases scheme and host, applies IDNA,
//! drops default ports, resolves `.`/`..` segments (also spelled `%2e`), and percent-encodes
//! what must be encoded. On top of that this module applies RFC 3986 §6.2.2 normalisation:
//! percent-escapes of unreserved characters are decoded (`%7E` → `~`), the hex digits of
//! the remaining escapes are upper-cased (`%c3%a9` → `%C3%A9`), and an empty query (`?`)
//! is dropped. The fragment is split off: it names a place in a document, not a document,
//! so it is checked against the target's anchors instead of being fetched.
//! Query parameters are not reordered: servers may treat `?a=1&b=2` and `?b=2&a=1`
//! differently.

use url::Url;

/// A link resolved against its document and normalised, with its fragment apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    /// The canonical URL, without fragment.
    pub url: Url,
    /// The fragment, if the link had a non-empty one (raw, still percent-encoded).
    pub fragment: Option<String>,
}

/// Resolves `raw` (an attribute value) against `base` and normalises it. `None` for values
/// that are not http(s) links (`mailto:`, `javascript:`, `data:`, empty, unparsable).
#[must_use]
pub fn resolve(base: &Url, raw: &str) -> Option<Resolved> {
    let raw = raw.trim_matches(|c: char| c.is_ascii_whitespace());
    if raw.is_empty() {
        return None;
    }
    let mut url = base.join(raw).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return None;
    }
    let fragment = url.fragment().filter(|f| !f.is_empty()).map(str::to_owned);
    url.set_fragment(None);
    normalize_in_place(&mut url);
    Some(Resolved { url, fragment })
}

/// Normalises an absolute URL (see the module docs), dropping its fragment.
#[must_use]
pub fn normalize(url: &Url) -> Url {
    let mut url = url.clone();
    url.set_fragment(None);
    normalize_in_place(&mut url);
    url
}

fn normalize_in_place(url: &mut Url) {
    if url.cannot_be_a_base() {
        return;
    }
    if let Some(path) = normalize_escapes(url.path()) {
        url.set_path(&path);
    }
    match url.query() {
        Some("") => url.set_query(None),
        Some(q) => {
            if let Some(q) = normalize_escapes(q) {
                url.set_query(Some(&q));
            }
        }
        None => {}
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes escaped unreserved characters and upper-cases the other escapes; `None` if
/// nothing changes (the common case, which then costs no allocation).
fn normalize_escapes(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let needs_work = bytes.windows(3).any(|w| {
        w[0] == b'%'
            && match (hex(w[1]), hex(w[2])) {
                (Some(h), Some(l)) => {
                    is_unreserved(h * 16 + l)
                        || w[1].is_ascii_lowercase()
                        || w[2].is_ascii_lowercase()
                }
                _ => false,
            }
    });
    if !needs_work {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            let decoded = h * 16 + l;
            if is_unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push('%');
                out.push(char::from(bytes[i + 1].to_ascii_uppercase()));
                out.push(char::from(bytes[i + 2].to_ascii_uppercase()));
            }
            i += 3;
            continue;
        }
        // Only ASCII is ever special here; copy everything else through unchanged, a whole
        // UTF-8 sequence at a time.
        let ch_len = s[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&s[i..i + ch_len]);
        i += ch_len;
    }
    Some(out)
}

/// The text a fragment names, percent-decoded (as browsers compare it with `id`s).
#[must_use]
pub fn decode_fragment(fragment: &str) -> String {
    let bytes = fragment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(base: &str, raw: &str) -> Option<(String, Option<String>)> {
        resolve(&Url::parse(base).unwrap(), raw).map(|x| (x.url.to_string(), x.fragment))
    }

    #[test]
    fn relative_links_resolve_against_the_document() {
        let base = "http://a.test/docs/guide/index.html?x=1";
        assert_eq!(
            r(base, "intro.html").unwrap().0,
            "http://a.test/docs/guide/intro.html"
        );
        assert_eq!(r(base, "../api/").unwrap().0, "http://a.test/docs/api/");
        assert_eq!(r(base, "/top").unwrap().0, "http://a.test/top");
        assert_eq!(r(base, "//b.test/x").unwrap().0, "http://b.test/x");
        assert_eq!(
            r(base, "?y=2").unwrap().0,
            "http://a.test/docs/guide/index.html?y=2"
        );
        assert_eq!(
            r(base, "#sec").unwrap(),
            (
                "http://a.test/docs/guide/index.html?x=1".into(),
                Some("sec".into())
            )
        );
        assert_eq!(
            r(base, "  spaced.html \n").unwrap().0,
            "http://a.test/docs/guide/spaced.html"
        );
    }

    #[test]
    fn equivalent_spellings_normalise_to_one_url() {
        let base = "http://a.test/";
        let canonical = "http://a.test/~user/caf%C3%A9.html";
        for spelling in [
            "http://A.TEST:80/~user/caf%C3%A9.html",
            "http://a.test/%7Euser/caf%c3%a9.html",
            "http://a.test/%7euser/café.html",
            "http://a.test/x/../~user/./caf%C3%A9.html",
            "http://a.test/%2e%2e/~user/caf%C3%A9.html",
            "/~user/caf%C3%A9.html#frag",
        ] {
            assert_eq!(r(base, spelling).unwrap().0, canonical, "{spelling}");
        }
        assert_eq!(r(base, "http://a.test/p?").unwrap().0, "http://a.test/p");
        assert_eq!(
            r(base, "http://a.test/p?q=%7e%2f").unwrap().0,
            "http://a.test/p?q=~%2F"
        );
        assert_eq!(r(base, "http://a.test").unwrap().0, "http://a.test/");
        assert_eq!(r(base, "https://a.test:443/").unwrap().0, "https://a.test/");
        assert_ne!(
            r(base, "/a?x=1&y=2").unwrap().0,
            r(base, "/a?y=2&x=1").unwrap().0
        );
        assert_eq!(
            r(base, "/p#").unwrap().1,
            None,
            "an empty fragment is no fragment"
        );
    }

    #[test]
    fn non_http_links_are_not_links() {
        let base = "http://a.test/";
        for raw in [
            "mailto:x@a.test",
            "javascript:void(0)",
            "tel:+123",
            "data:text/plain,hi",
            "ftp://a.test/f",
            "",
            "   ",
            "http://",
            "http://[::1",
        ] {
            assert_eq!(r(base, raw), None, "{raw:?}");
        }
    }

    #[test]
    fn fragments_decode_like_browsers() {
        assert_eq!(decode_fragment("caf%C3%A9"), "café");
        assert_eq!(decode_fragment("a%20b"), "a b");
        assert_eq!(decode_fragment("100%"), "100%");
        assert_eq!(decode_fragment("%zz"), "%zz");
        assert_eq!(decode_fragment("x%4"), "x%4");
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn link() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            "[a-zA-Z0-9._~-]{0,8}",
            Just("%7e".to_owned()),
            Just("%7E".to_owned()),
            Just("%2f".to_owned()),
            Just("%c3%a9".to_owned()),
            Just("%".to_owned()),
            Just("%4".to_owned()),
            Just("..".to_owned()),
            Just(".".to_owned()),
            Just("é".to_owned()),
            Just(" ".to_owned()),
            Just("?".to_owned()),
            Just("#".to_owned()),
            Just("&".to_owned()),
            Just("=".to_owned()),
            Just("//".to_owned()),
            Just("\\".to_owned()),
        ];
        let prefix = prop_oneof![
            Just(String::new()),
            Just("/".to_owned()),
            Just("http://A.test:80/".to_owned()),
            Just("https://b.test:8443/".to_owned()),
            Just("//c.test/".to_owned()),
            Just("../".to_owned()),
        ];
        (prefix, prop::collection::vec(part, 0..8)).prop_map(|(p, parts)| {
            let mut s = p;
            for (i, part) in parts.iter().enumerate() {
                if i > 0 && i % 2 == 0 {
                    s.push('/');
                }
                s.push_str(part);
            }
            s
        })
    }

    proptest! {
        /// Resolution never panics, and normalisation is idempotent: normalising a
        /// normalised URL, or resolving its own text again, gives the same URL.
        #[test]
        fn normalisation_is_idempotent(raw in link(), any_text in "\\PC{0,40}") {
            let base = Url::parse("http://a.test/dir/page.html").unwrap();
            let _ = resolve(&base, &any_text);
            if let Some(first) = resolve(&base, &raw) {
                prop_assert_eq!(normalize(&first.url), first.url.clone());
                let again = resolve(&base, first.url.as_str()).unwrap();
                prop_assert_eq!(&again.url, &first.url);
                prop_assert!(matches!(first.url.scheme(), "http" | "https"));
                prop_assert!(first.url.fragment().is_none());
            }
        }
    }
}
