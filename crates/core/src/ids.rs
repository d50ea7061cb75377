//! Typed identifiers. All are UUIDs on the wire; new ones are v7 (time-ordered), so that a
//! scan id also orders scans by creation, which keyset pagination relies on.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new, time-ordered (UUID v7) identifier.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }

            /// The underlying UUID.
            #[must_use]
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.as_hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                parse_uuid(s).map(Self)
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

/// Parses only the canonical hyphenated form (`8-4-4-4-12` hex), as JSON Schema's `uuid`
/// format does; `Uuid::parse_str` would also take braces, `urn:uuid:` and the simple form.
pub fn parse_uuid(s: &str) -> Result<Uuid, uuid::Error> {
    if s.len() == 36 {
        Uuid::try_parse(s)
    } else {
        // Any other length is one of the non-canonical forms (or garbage): let the uuid
        // crate describe the error of an empty input rather than accept the form.
        Uuid::try_parse("")
    }
}

id_type!(
    /// A user (a holder of API keys).
    UserId
);
id_type!(
    /// A registered website.
    SiteId
);
id_type!(
    /// One scan: a check of one URL of a site.
    ScanId
);
id_type!(
    /// One finding of a scan.
    FindingId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_only_hyphenated() {
        assert!(
            "0190a5d2-3b4c-7def-8123-456789abcdef"
                .parse::<ScanId>()
                .is_ok()
        );
        assert!(
            "0190a5d23b4c7def8123456789abcdef"
                .parse::<ScanId>()
                .is_err()
        );
        assert!(
            "{0190a5d2-3b4c-7def-8123-456789abcdef}"
                .parse::<ScanId>()
                .is_err()
        );
        assert!("not-a-uuid".parse::<ScanId>().is_err());
    }

    #[test]
    fn new_ids_are_time_ordered() {
        let a = ScanId::new();
        let b = ScanId::new();
        assert!(a < b);
    }
}
