//! Keyset (cursor) pagination.
//!
//! Cursors are opaque to clients: the id of the last item of a page, which for v7 ids also
//! encodes its creation order. Keyset pages stay fast however deep a client pages, unlike
//! `OFFSET`, and do not skip or repeat rows when new ones arrive meanwhile.

use serde::Serialize;
use uuid::Uuid;

/// Default and largest page sizes.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page a client may ask for.
pub const MAX_LIMIT: u32 = 500;

/// Where a page starts: after this id (exclusive), in the listing's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor(pub Uuid);

impl Cursor {
    /// Encodes for the wire (the simple hex form of the id).
    #[must_use]
    pub fn encode(&self) -> String {
        self.0.simple().to_string()
    }

    /// Decodes what [`Cursor::encode`] produced.
    #[must_use]
    pub fn decode(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        Uuid::try_parse(s).ok().map(Self)
    }
}

/// One page of a listing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Where the next page starts, if there is one.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only proves there is more.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u32, id_of: impl Fn(&T) -> Uuid) -> Self {
        let limit = limit as usize;
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| Cursor(id_of(r)).encode())
        } else {
            None
        };
        Self {
            items: rows,
            next_cursor,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trips() {
        let c = Cursor(Uuid::now_v7());
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("zz"), None);
    }

    #[test]
    fn overfetch_sets_cursor_only_when_more() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let p = Page::from_overfetch(ids.clone(), 2, |u| *u);
        assert_eq!(p.items.len(), 2);
        assert_eq!(p.next_cursor, Some(Cursor(ids[1]).encode()));
        let p = Page::from_overfetch(ids, 3, |u| *u);
        assert_eq!(p.next_cursor, None);
    }
}
