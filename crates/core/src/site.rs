//! Registered sites and their URLs.

use crate::EpochMillis;
use crate::ids::SiteId;
use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

/// A site's base URL: absolute `http` or `https`, with a host, without credentials or a
/// fragment. Scans are only accepted for URLs of the same origin.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SiteUrl(Url);

/// Why a string is not a usable site or scan URL.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// Not a URL at all.
    #[error("is not a valid absolute URL")]
    Invalid,
    /// A scheme other than http(s).
    #[error("must use http or https")]
    Scheme,
    /// No host part.
    #[error("must have a host")]
    NoHost,
    /// `user:pass@` in the URL.
    #[error("must not contain credentials")]
    Credentials,
    /// Longer than [`MAX_URL_LEN`].
    #[error("is longer than 2048 characters")]
    TooLong,
}

/// The longest URL accepted anywhere in the API.
pub const MAX_URL_LEN: usize = 2048;

/// Parses an absolute http(s) URL as the API accepts it (for sites and scans).
pub fn parse_http_url(s: &str) -> Result<Url, UrlError> {
    if s.len() > MAX_URL_LEN {
        return Err(UrlError::TooLong);
    }
    let url = Url::parse(s).map_err(|_| UrlError::Invalid)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlError::Scheme);
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlError::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlError::Credentials);
    }
    Ok(url)
}

impl SiteUrl {
    /// Parses and normalises a base URL (the fragment is dropped).
    pub fn parse(s: &str) -> Result<Self, UrlError> {
        let mut url = parse_http_url(s)?;
        url.set_fragment(None);
        Ok(Self(url))
    }

    /// The URL.
    #[must_use]
    pub fn as_url(&self) -> &Url {
        &self.0
    }

    /// The normalised text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// Whether `url` has this site's origin (scheme, host and port, default ports folded).
    #[must_use]
    pub fn same_origin(&self, url: &Url) -> bool {
        self.0.origin() == url.origin()
    }
}

impl TryFrom<String> for SiteUrl {
    type Error = UrlError;
    fn try_from(s: String) -> Result<Self, UrlError> {
        Self::parse(&s)
    }
}

impl From<SiteUrl> for String {
    fn from(u: SiteUrl) -> Self {
        u.0.into()
    }
}

impl fmt::Display for SiteUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// A registered site.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Site {
    /// Its id.
    pub id: SiteId,
    /// A display name.
    pub name: String,
    /// Its base URL: scans must stay within this origin.
    pub base_url: SiteUrl,
    /// When it was registered.
    pub created_at: EpochMillis,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn site_urls_are_http_with_host() {
        assert!(SiteUrl::parse("https://example.test/").is_ok());
        assert_eq!(SiteUrl::parse("ftp://example.test/"), Err(UrlError::Scheme));
        assert_eq!(SiteUrl::parse("not a url"), Err(UrlError::Invalid));
        assert_eq!(
            SiteUrl::parse("https://u:p@example.test/"),
            Err(UrlError::Credentials)
        );
        assert_eq!(
            SiteUrl::parse("mailto:x@example.test"),
            Err(UrlError::Scheme)
        );
        let long = format!("https://example.test/{}", "a".repeat(3000));
        assert_eq!(SiteUrl::parse(&long), Err(UrlError::TooLong));
    }

    #[test]
    fn same_origin_is_exact() {
        let s = SiteUrl::parse("https://example.test/app/").unwrap();
        let ok = |u: &str| s.same_origin(&Url::parse(u).unwrap());
        assert!(ok("https://example.test/other"));
        assert!(ok("https://EXAMPLE.test:443/x"));
        assert!(!ok("http://example.test/"));
        assert!(!ok("https://example.test:8443/"));
        assert!(!ok("https://example.test.evil.net/"));
        assert!(!ok("https://sub.example.test/"));
    }
}
