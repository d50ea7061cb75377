//! robots.txt (RFC 9309), parsed by the `robotxt` crate.

use robotxt::{AccessResult, Agent, Robots};
use std::time::Duration;
use url::Url;

/// The rules of one site for this crawler.
#[derive(Clone, Debug)]
pub struct RobotsRules {
    robots: Robots,
}

impl RobotsRules {
    /// Everything allowed (no robots.txt, or robots ignored).
    #[must_use]
    pub fn allow_all() -> Self {
        Self {
            robots: Robots::allow_all(),
        }
    }

    /// Parses a robots.txt body for the crawler named `agent` (matched case-insensitively
    /// as a prefix: a `qa-sentinel` group applies to `qa-sentinel/0.1`).
    #[must_use]
    pub fn parse(body: &[u8], agent: &str) -> Self {
        Self {
            robots: Robots::from_access(AccessResult::Successful(body), Agent::Prefix(agent)),
        }
    }

    /// Whether the crawler may fetch `url` (path and query are matched).
    #[must_use]
    pub fn allows(&self, url: &Url) -> bool {
        self.robots.is_url_allowed(url)
    }

    /// The site's requested delay between requests.
    #[must_use]
    pub fn crawl_delay(&self) -> Option<Duration> {
        self.robots.crawl_delay()
    }

    /// The `Sitemap:` URLs listed in the file.
    #[must_use]
    pub fn sitemaps(&self) -> &[Url] {
        self.robots.sitemaps()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_for_this_crawler_win_over_the_wildcard() {
        let txt = b"User-agent: *\nDisallow: /private/\n\nUser-agent: qa-sentinel\nDisallow: /no-sentinel/\nCrawl-delay: 2\n\nSitemap: http://a.test/map.xml\n";
        let r = RobotsRules::parse(txt, "qa-sentinel");
        let u = |p: &str| Url::parse(&format!("http://a.test{p}")).unwrap();
        assert!(!r.allows(&u("/no-sentinel/x")));
        assert!(
            r.allows(&u("/private/x")),
            "the specific group replaces the * group"
        );
        assert_eq!(r.crawl_delay(), Some(Duration::from_secs(2)));
        assert_eq!(r.sitemaps()[0].as_str(), "http://a.test/map.xml");
        let other = RobotsRules::parse(txt, "otherbot");
        assert!(!other.allows(&u("/private/x")));
        assert!(RobotsRules::allow_all().allows(&u("/private/x")));
    }
}
