//! `REDIS_URL`: one node, or a Redis Cluster.
//!
//! Accepted forms:
//! - `redis://host:port[/db]` (or `rediss://` for TLS): a single node;
//! - several comma-separated node URLs, `redis://a:7000,redis://b:7001`: a cluster, with
//!   those nodes as seeds (the client discovers the rest);
//! - `redis+cluster://host:port` (or `rediss+cluster://`), alone or in a list: a cluster,
//!   even with one seed node.

use redis::IntoConnectionInfo;

/// Where Redis is.
#[derive(Clone, PartialEq, Eq)]
pub enum RedisTopology {
    /// One server.
    Single(String),
    /// A Redis Cluster, reached through these seed nodes.
    Cluster(Vec<String>),
}

impl std::fmt::Debug for RedisTopology {
    // URLs may carry passwords: show only how many nodes there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Single(_) => f.write_str("Single(<url>)"),
            Self::Cluster(nodes) => write!(f, "Cluster({} seed nodes)", nodes.len()),
        }
    }
}

impl RedisTopology {
    /// The node URLs (one for a single server).
    #[must_use]
    pub fn nodes(&self) -> &[String] {
        match self {
            Self::Single(url) => std::slice::from_ref(url),
            Self::Cluster(nodes) => nodes,
        }
    }

    /// Whether this is a cluster.
    #[must_use]
    pub const fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

/// A `REDIS_URL` that cannot work. Messages name the node by position and never repeat the
/// URL, which may hold a password.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RedisUrlError {
    /// Nothing but commas and spaces.
    #[error("REDIS_URL names no node")]
    Empty,
    /// A node with another scheme.
    #[error(
        "REDIS_URL node {0}: the scheme must be redis://, rediss://, redis+cluster:// or rediss+cluster://"
    )]
    Scheme(usize),
    /// A node the client library cannot parse.
    #[error("REDIS_URL node {index}: {reason}")]
    Invalid {
        /// 1-based position in the list.
        index: usize,
        /// What the client library said.
        reason: String,
    },
}

/// Parses `REDIS_URL` (see the module docs).
///
/// # Errors
/// The first node that cannot work.
pub fn parse_redis_url(url: &str) -> Result<RedisTopology, RedisUrlError> {
    let mut nodes = Vec::new();
    let mut cluster_scheme = false;
    for (i, raw) in url
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .enumerate()
    {
        let index = i + 1;
        let (base, rest, cluster) = if let Some(rest) = raw.strip_prefix("redis+cluster://") {
            ("redis://", rest, true)
        } else if let Some(rest) = raw.strip_prefix("rediss+cluster://") {
            ("rediss://", rest, true)
        } else if let Some(rest) = raw.strip_prefix("redis://") {
            ("redis://", rest, false)
        } else if let Some(rest) = raw.strip_prefix("rediss://") {
            ("rediss://", rest, false)
        } else {
            return Err(RedisUrlError::Scheme(index));
        };
        cluster_scheme |= cluster;
        let node = format!("{base}{rest}");
        if let Err(e) = node.as_str().into_connection_info() {
            // The library's message describes the problem without echoing the URL.
            return Err(RedisUrlError::Invalid {
                index,
                reason: e.to_string(),
            });
        }
        nodes.push(node);
    }
    match nodes.len() {
        0 => Err(RedisUrlError::Empty),
        1 if !cluster_scheme => Ok(RedisTopology::Single(nodes.remove(0))),
        _ => Ok(RedisTopology::Cluster(nodes)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6379"),
            Ok(RedisTopology::Single("redis://127.0.0.1:6379".into()))
        );
        assert_eq!(
            parse_redis_url(" redis://127.0.0.1:7000 , redis://127.0.0.1:7001,"),
            Ok(RedisTopology::Cluster(vec![
                "redis://127.0.0.1:7000".into(),
                "redis://127.0.0.1:7001".into()
            ]))
        );
        assert_eq!(
            parse_redis_url("redis+cluster://127.0.0.1:7000"),
            Ok(RedisTopology::Cluster(vec![
                "redis://127.0.0.1:7000".into()
            ]))
        );
        assert_eq!(parse_redis_url(" , "), Err(RedisUrlError::Empty));
        assert_eq!(
            parse_redis_url("redis://a:1,http://b:2"),
            Err(RedisUrlError::Scheme(2))
        );
        assert!(matches!(
            parse_redis_url("redis://127.0.0.1:notaport"),
            Err(RedisUrlError::Invalid { index: 1, .. })
        ));
    }

    #[test]
    fn debug_output_hides_passwords() {
        let t = parse_redis_url("redis://:hunter2@127.0.0.1:6379").unwrap();
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    fn host() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("127.0.0.1".to_owned()),
            Just("localhost".to_owned()),
            "[a-z][a-z0-9-]{0,20}(\\.[a-z][a-z0-9-]{0,10}){0,3}",
        ]
    }

    proptest! {
        /// Any list of well-formed nodes parses back to the same nodes, in order; more
        /// than one node, or the cluster scheme, means a cluster.
        #[test]
        fn node_lists_round_trip(
            nodes in proptest::collection::vec((host(), 1u16..=65535, any::<bool>()), 1..6),
            cluster_scheme in any::<bool>(),
        ) {
            let rendered: Vec<String> = nodes
                .iter()
                .map(|(h, p, tls)| {
                    let scheme = match (*tls, cluster_scheme) {
                        (false, false) => "redis",
                        (true, false) => "rediss",
                        (false, true) => "redis+cluster",
                        (true, true) => "rediss+cluster",
                    };
                    format!("{scheme}://{h}:{p}")
                })
                .collect();
            let parsed = parse_redis_url(&rendered.join(",")).unwrap();
            let expected: Vec<String> = nodes
                .iter()
                .map(|(h, p, tls)| format!("{}://{h}:{p}", if *tls { "rediss" } else { "redis" }))
                .collect();
            prop_assert_eq!(parsed.nodes(), expected.as_slice());
            prop_assert_eq!(parsed.is_cluster(), nodes.len() > 1 || cluster_scheme);
        }

        /// Arbitrary input never panics, and errors never repeat a secret from the input.
        #[test]
        fn arbitrary_input_is_safe(s in "\\PC{0,80}") {
            let input = format!("redis://user:s3cr3tPW@{s}");
            if let Err(e) = parse_redis_url(&input) {
                prop_assert!(!e.to_string().contains("s3cr3tPW"), "{}", e);
            }
        }
    }
}
