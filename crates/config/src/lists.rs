//! List values that may come from a TOML array or a comma-separated environment string.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, de::Error as _};

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrSeq {
    One(String),
    Many(Vec<String>),
}

impl StringOrSeq {
    fn into_items(self) -> Vec<String> {
        match self {
            Self::One(s) => s
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
            Self::Many(v) => v
                .into_iter()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
        }
    }
}

/// A list of strings.
pub(crate) fn strings<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(StringOrSeq::deserialize(d)?.into_items())
}

/// A list of CIDR networks; a bare address is a /32 (or /128).
pub(crate) fn cidrs<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    StringOrSeq::deserialize(d)?
        .into_items()
        .into_iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    D::Error::custom(format!("`{s}` is not a CIDR network (like 10.0.0.0/8)"))
                })
        })
        .collect()
}
