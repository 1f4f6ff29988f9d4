//! Store URLs: which Redis deployment to reach, and how.
//!
//! - `redis://[user:password@]host:port[/db]`, `rediss://…` (TLS), `unix:///path.sock`: one
//!   server, parsed by redis-rs itself.
//! - `redis+cluster://[user:password@]host:port[,host:port…]` (also `redis-cluster://`,
//!   `rediss+cluster://`): Redis Cluster, seeded by any of its nodes.
//! - `redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]` (also
//!   `sentinel://`, `rediss+sentinel://`): the master that the Sentinels name `service` (default
//!   `mymaster`); the credentials are the Redis nodes'. A `sentinel_password` query parameter
//!   authenticates to the Sentinels themselves.

use crate::error::Error;

/// A parsed store URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One server; the URL as redis-rs reads it.
    Single(String),
    /// A Cluster.
    Cluster {
        /// `redis://host:port` (or `rediss://`) per seed node.
        nodes: Vec<String>,
        /// ACL user.
        username: Option<String>,
        /// Password.
        password: Option<String>,
        /// TLS.
        tls: bool,
    },
    /// A master found through Sentinels.
    Sentinel {
        /// `redis://host:port` per Sentinel.
        sentinels: Vec<String>,
        /// The monitored master's name.
        service: String,
        /// The database on the master.
        db: i64,
        /// ACL user on the master.
        username: Option<String>,
        /// Password on the master.
        password: Option<String>,
        /// Password on the Sentinels.
        sentinel_password: Option<String>,
        /// TLS to the master.
        tls: bool,
    },
}

fn bad(url: &str, why: &str) -> Error {
    Error::invalid(
        "store",
        format!(
            "must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL; \
             {why} in {:?}",
            redact(url)
        ),
    )
}

/// The URL with any password replaced by `***`, for messages and logs.
///
/// ```
/// use seawall::store::redis::url::redact;
///
/// assert_eq!(redact("redis://u:secret@h:6379/0"), "redis://u:***@h:6379/0");
/// assert_eq!(redact("redis://h:6379"), "redis://h:6379");
/// ```
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{scheme}://{user}:***@{hosts}{tail}")
        }
        None => url.to_owned(),
    }
}

fn decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Parses a store URL.
///
/// ```
/// use seawall::store::redis::url::{parse, Target};
///
/// assert_eq!(parse("redis://127.0.0.1:6379/0").unwrap(), Target::Single("redis://127.0.0.1:6379/0".into()));
/// match parse("redis+cluster://:pw@10.0.0.1:7000,10.0.0.2:7000").unwrap() {
///     Target::Cluster { nodes, password, .. } => {
///         assert_eq!(nodes, ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"]);
///         assert_eq!(password.as_deref(), Some("pw"));
///     }
///     other => panic!("{other:?}"),
/// }
/// assert!(parse("http://example.com").is_err());
/// ```
pub fn parse(url: &str) -> Result<Target, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(url, "no scheme"));
    };
    let scheme = scheme.to_ascii_lowercase();
    let (kind, tls) = match scheme.as_str() {
        "redis" | "unix" | "redis+unix" => return Ok(Target::Single(url.to_owned())),
        "rediss" => return Ok(Target::Single(url.to_owned())),
        "redis+cluster" | "redis-cluster" => ("cluster", false),
        "rediss+cluster" | "rediss-cluster" => ("cluster", true),
        "redis+sentinel" | "sentinel" | "redis-sentinel" => ("sentinel", false),
        "rediss+sentinel" | "rediss-sentinel" => ("sentinel", true),
        _ => return Err(bad(url, &format!("unknown scheme {scheme:?}"))),
    };
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (userinfo, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (username, password) = match userinfo.split_once(':') {
        Some((u, p)) => (decode(u), Some(decode(p))),
        None => (decode(userinfo), None),
    };
    let username = Some(username).filter(|u| !u.is_empty());
    let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        return Err(bad(url, "no host"));
    }
    let node_scheme = if tls && kind == "cluster" {
        "rediss"
    } else {
        "redis"
    };
    let nodes = hosts
        .iter()
        .map(|h| format!("{node_scheme}://{h}"))
        .collect();
    if kind == "cluster" {
        return Ok(Target::Cluster {
            nodes,
            username,
            password,
            tls,
        });
    }
    let mut service = "mymaster".to_owned();
    let mut db = 0;
    for (i, part) in path.split('/').filter(|p| !p.is_empty()).enumerate() {
        match part.parse::<i64>() {
            Ok(n) if n >= 0 => db = n,
            _ if i == 0 => service = decode(part),
            _ => return Err(bad(url, &format!("bad database {part:?}"))),
        }
    }
    let mut sentinel_password = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        match k {
            "sentinel_password" => sentinel_password = Some(decode(v)),
            "service_name" => service = decode(v),
            "db" => {
                db = v
                    .parse()
                    .map_err(|_| bad(url, &format!("bad database {v:?}")))?
            }
            _ => return Err(bad(url, &format!("unknown parameter {k:?}"))),
        }
    }
    Ok(Target::Sentinel {
        sentinels: nodes,
        service,
        db,
        username,
        password,
        sentinel_password,
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_name_service_and_db() {
        let t = parse("redis+sentinel://u:p%40ss@s1:26379,s2:26379/cache/3?sentinel_password=x")
            .unwrap();
        assert_eq!(
            t,
            Target::Sentinel {
                sentinels: vec!["redis://s1:26379".into(), "redis://s2:26379".into()],
                service: "cache".into(),
                db: 3,
                username: Some("u".into()),
                password: Some("p@ss".into()),
                sentinel_password: Some("x".into()),
                tls: false,
            }
        );
        // Seed 002's form: a database and no service name.
        match parse("sentinel://localhost:26379/0").unwrap() {
            Target::Sentinel { service, db, .. } => {
                assert_eq!((service.as_str(), db), ("mymaster", 0))
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_urls_say_why_without_the_password() {
        let e = parse("redis+cluster://:hunter2@").unwrap_err().to_string();
        assert!(e.contains("no host"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse("memcached://x").is_err());
        assert!(parse("redis+sentinel://h:1/svc?bogus=1").is_err());
    }
}
