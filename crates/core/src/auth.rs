//! Users, roles, site grants and API keys.
//!
//! API keys are 192 random bits (`qas_` + 48 hex digits). Because they are machine-generated
//! and high-entropy, a single SHA-256 is the right storage hash: a slow password hash (argon2,
//! bcrypt) protects low-entropy secrets and would cost tens of milliseconds of CPU on every
//! request, a denial-of-service lever. Keys are looked up by their digest and the digest is
//! compared again in constant time.

use crate::ids::UserId;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;
use std::str::FromStr;
use subtle::ConstantTimeEq;

/// A user's global role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May do everything, on every site.
    Admin,
    /// May act only on the sites it holds a grant on.
    Member,
}

impl Role {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Member => "member",
        }
    }
}

impl FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "admin" => Ok(Self::Admin),
            "member" => Ok(Self::Member),
            _ => Err(()),
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user's grant on one site. Ordered by power: `Viewer < Editor < Owner`.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum SiteRole {
    /// May read the site, its scans and findings.
    Viewer,
    /// May also start scans, approve baselines and drop cached results.
    Editor,
    /// May also manage the site's members.
    Owner,
}

impl SiteRole {
    /// The wire and storage name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Owner => "owner",
        }
    }
}

impl FromStr for SiteRole {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        match s {
            "viewer" => Ok(Self::Viewer),
            "editor" => Ok(Self::Editor),
            "owner" => Ok(Self::Owner),
            _ => Err(()),
        }
    }
}

/// What an authenticated caller is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// The user behind the key.
    pub user_id: UserId,
    /// The user's name.
    pub name: String,
    /// The user's global role.
    pub role: Role,
}

/// The permission a request needs on a site.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read the site and its results.
    Read,
    /// Start scans, approve baselines, drop caches.
    Write,
    /// Manage members.
    Manage,
}

impl Access {
    /// The least grant that allows this access.
    #[must_use]
    pub const fn min_grant(self) -> SiteRole {
        match self {
            Self::Read => SiteRole::Viewer,
            Self::Write => SiteRole::Editor,
            Self::Manage => SiteRole::Owner,
        }
    }
}

impl Principal {
    /// Whether this principal, holding `grant` on a site (or none), may do `access` there.
    #[must_use]
    pub fn may(&self, grant: Option<SiteRole>, access: Access) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Member => grant.is_some_and(|g| g >= access.min_grant()),
        }
    }
}

/// A plaintext API key. Shown to its owner once, never stored, never logged.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

/// The prefix every key qa-sentinel issues starts with (lets secret scanners recognise them).
pub const API_KEY_PREFIX: &str = "qas_";

impl ApiKey {
    /// A new random key: `qas_` followed by 48 hex digits (192 bits from the OS CSPRNG).
    #[must_use]
    pub fn generate() -> Self {
        let bytes: [u8; 24] = rand::random();
        Self(format!("{API_KEY_PREFIX}{}", hex::encode(bytes)))
    }

    /// Wraps a key presented by a client (or imported), without checking its form: the
    /// lookup by digest is what decides whether it is known.
    #[must_use]
    pub fn from_presented(s: &str) -> Self {
        Self(s.to_owned())
    }

    /// The plaintext, for showing it once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The digest stored in place of the key.
    #[must_use]
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash::of(self.0.as_bytes())
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// SHA-256 of an API key: what the store keeps. Stored and compared as 32 raw bytes;
/// [`ApiKeyHash::to_hex`] gives the lowercase hex form (which is what `sha256_hex(key)` in the
/// load harness's seed format means).
#[derive(Clone, Copy, Eq)]
pub struct ApiKeyHash(pub [u8; 32]);

impl ApiKeyHash {
    /// The digest of a presented key.
    #[must_use]
    pub fn of(key: &[u8]) -> Self {
        Self(Sha256::digest(key).into())
    }

    /// Parses 64 hex digits.
    pub fn from_hex(s: &str) -> Result<Self, hex::FromHexError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out)?;
        Ok(Self(out))
    }

    /// Lowercase hex.
    #[must_use]
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl PartialEq for ApiKeyHash {
    /// Constant-time, so that comparing a stored digest with a presented one leaks nothing
    /// through timing (the lookup itself is by digest, which tells an attacker only about
    /// SHA-256 of their own guess).
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for ApiKeyHash {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl fmt::Debug for ApiKeyHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeyHash({}…)", &self.to_hex()[..8])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_have_192_bits_and_prefix() {
        let k = ApiKey::generate();
        assert!(k.expose().starts_with("qas_"));
        assert_eq!(k.expose().len(), 4 + 48);
        assert_ne!(k.expose(), ApiKey::generate().expose());
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
    }

    #[test]
    fn hash_is_sha256_hex() {
        let h = ApiKey::from_presented("abc").hash();
        assert_eq!(
            h.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ApiKeyHash::from_hex(&h.to_hex()).unwrap(), h);
    }

    #[test]
    fn member_access_follows_grant_order() {
        let p = Principal {
            user_id: UserId::new(),
            name: "m".into(),
            role: Role::Member,
        };
        assert!(!p.may(None, Access::Read));
        assert!(p.may(Some(SiteRole::Viewer), Access::Read));
        assert!(!p.may(Some(SiteRole::Viewer), Access::Write));
        assert!(p.may(Some(SiteRole::Editor), Access::Write));
        assert!(!p.may(Some(SiteRole::Editor), Access::Manage));
        assert!(p.may(Some(SiteRole::Owner), Access::Manage));
        let a = Principal {
            role: Role::Admin,
            ..p
        };
        assert!(a.may(None, Access::Manage));
    }
}
