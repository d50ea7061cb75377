//! sitemap.xml: `<urlset>` page lists and `<sitemapindex>` lists of sitemaps.

use quick_xml::Reader;
use quick_xml::events::Event;

/// What a sitemap file lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sitemap {
    /// Page URLs (`<urlset><url><loc>`).
    pub pages: Vec<String>,
    /// Further sitemaps (`<sitemapindex><sitemap><loc>`).
    pub sitemaps: Vec<String>,
}

/// Parses a sitemap, keeping at most `max_urls` locations. Malformed XML ends the parse
/// with what was read so far: a sitemap only seeds the crawl, it is not checked itself.
#[must_use]
pub fn parse(xml: &[u8], max_urls: usize) -> Sitemap {
    let mut reader = Reader::from_reader(xml);
    reader.config_mut().trim_text(true);
    let mut out = Sitemap::default();
    let mut in_loc = false;
    let mut index = false;
    let mut text = String::new();
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => match e.local_name().as_ref() {
                b"sitemapindex" => index = true,
                b"loc" => {
                    in_loc = true;
                    text.clear();
                }
                _ => {}
            },
            Ok(Event::Text(t)) if in_loc => {
                if let Ok(s) = t.decode() {
                    text.push_str(&s);
                }
            }
            Ok(Event::GeneralRef(r)) if in_loc => {
                // Entities such as &amp; arrive as references.
                let name = String::from_utf8_lossy(r.as_ref()).into_owned();
                match name.as_str() {
                    "amp" => text.push('&'),
                    "lt" => text.push('<'),
                    "gt" => text.push('>'),
                    "quot" => text.push('"'),
                    "apos" => text.push('\''),
                    _ => {}
                }
            }
            Ok(Event::CData(c)) if in_loc => {
                text.push_str(&String::from_utf8_lossy(c.as_ref()));
            }
            Ok(Event::End(e)) if e.local_name().as_ref() == b"loc" => {
                in_loc = false;
                let loc = text.trim();
                if !loc.is_empty() {
                    let list = if index {
                        &mut out.sitemaps
                    } else {
                        &mut out.pages
                    };
                    list.push(loc.to_owned());
                    if out.pages.len() + out.sitemaps.len() >= max_urls {
                        break;
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
        buf.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_sets_and_indexes_are_read() {
        let set = br#"<?xml version="1.0" encoding="UTF-8"?>
            <urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
              <url><loc> http://a.test/ </loc><lastmod>2024-01-01</lastmod></url>
              <url><loc>http://a.test/q?x=1&amp;y=2</loc></url>
              <url><loc><![CDATA[http://a.test/cdata]]></loc></url>
            </urlset>"#;
        let s = parse(set, 100);
        assert_eq!(
            s.pages,
            vec![
                "http://a.test/",
                "http://a.test/q?x=1&y=2",
                "http://a.test/cdata"
            ]
        );
        let index =
            br#"<sitemapindex><sitemap><loc>http://a.test/s1.xml</loc></sitemap></sitemapindex>"#;
        assert_eq!(parse(index, 100).sitemaps, vec!["http://a.test/s1.xml"]);
        assert_eq!(parse(set, 2).pages.len(), 2);
        assert_eq!(
            parse(b"<urlset><url><loc>http://a.test/x", 10),
            Sitemap::default()
        );
        assert_eq!(parse(b"\xff\xfe garbage", 10), Sitemap::default());
    }
}
