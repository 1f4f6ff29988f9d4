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
//!
//! Every URL is checked when a limiter or breaker is made, with the `url` crate (the parser
//! redis-rs itself uses) for each host and port: a port outside 1–65535, a missing, malformed
//! or wildcard host, a database that is not a whole number from 0 to [`MAX_DATABASE`], a
//! database other than 0 on a Cluster, and an unknown query parameter are each an error naming
//! the part, with the password hidden ([`redact`]). A Cluster node without a port is 6379, a
//! Sentinel without one 26379.

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

/// The highest database index: Redis's `databases` setting is at most 2^31 − 1.
pub const MAX_DATABASE: i64 = i32::MAX as i64 - 1;

const SCHEMES: &str =
    "must be a redis://, rediss://, unix://, redis+cluster:// or redis+sentinel:// URL";

fn bad(url: &str, why: &str) -> Error {
    Error::invalid(
        "store",
        format!("{SCHEMES}; {why} in {:?}{}", redact(url), hint(url)),
    )
}

/// An error naming the part of the URL that is wrong (`port`, `host`, `database`, …); the URL
/// is quoted with its password hidden, and no part is quoted on its own (a password written
/// without percent-encoding can be mistaken for one).
fn part(url: &str, part: &str, why: &str) -> Error {
    Error::invalid(
        "store",
        format!("{part} {why}, in {:?}{}", redact(url), hint(url)),
    )
}

/// A hint when an `@` lies past the end of the authority: most likely a password holding a
/// character that ends the authority.
fn hint(url: &str) -> &'static str {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    match (rest.find(['/', '?', '#']), rest.rfind('@')) {
        (Some(end), Some(at)) if at > end => {
            " (a password holding '/', '?', '#' or '@' must be percent-encoded)"
        }
        _ => "",
    }
}

const PORT: &str = "must be a number from 1 to 65535";

/// An unknown query parameter (named unless the URL looks like a mis-encoded password).
fn unknown(url: &str, name: &str, takes: &str) -> Error {
    let what = if hint(url).is_empty() {
        format!("parameter {name:?}")
    } else {
        "a parameter".to_owned()
    };
    part(
        url,
        &what,
        &format!("is not understood (this kind of URL takes {takes})"),
    )
}

/// The error for what the `url` crate refused, naming the part.
fn parse_error(url: &str, node: &str, e: ::url::ParseError) -> Error {
    use ::url::ParseError as P;
    match e {
        P::InvalidPort => part(url, &format!("port{node}"), PORT),
        P::EmptyHost => part(url, &format!("host{node}"), "is missing"),
        P::IdnaError
        | P::InvalidIpv4Address
        | P::InvalidIpv6Address
        | P::InvalidDomainCharacter => part(
            url,
            &format!("host{node}"),
            "is not a valid host name or address",
        ),
        other => bad(url, &other.to_string()),
    }
}

/// Checks a parsed URL's host and port; `node` names the node in a list (" of node 2").
fn check_host(url: &str, node: &str, u: &::url::Url) -> Result<(), Error> {
    match u.host_str() {
        None | Some("") => return Err(part(url, &format!("host{node}"), "is missing")),
        Some("0.0.0.0" | "[::]") => {
            return Err(part(
                url,
                &format!("host{node}"),
                "is a wildcard address (0.0.0.0 or ::), not a server",
            ))
        }
        Some(_) => {}
    }
    if u.port() == Some(0) {
        return Err(part(url, &format!("port{node}"), PORT));
    }
    Ok(())
}

/// A database index: decimal digits, at most [`MAX_DATABASE`].
fn database(url: &str, text: &str) -> Result<i64, Error> {
    text.parse::<i64>()
        .ok()
        .filter(|d| text.bytes().all(|b| b.is_ascii_digit()) && *d <= MAX_DATABASE)
        .ok_or_else(|| {
            part(
                url,
                "database",
                &format!("must be a whole number from 0 to {MAX_DATABASE}"),
            )
        })
}

/// The URL with any password replaced by `***`, for messages and logs: the user information
/// (up to the last `@`; only a plain user name is kept) and the values of the `password`,
/// `pass` and `sentinel_password` query parameters.
///
/// ```
/// use seawall::store::redis::url::redact;
///
/// assert_eq!(redact("redis://u:secret@h:6379/0"), "redis://u:***@h:6379/0");
/// assert_eq!(redact("redis://h:6379"), "redis://h:6379");
/// // A password that should have been percent-encoded is hidden all the same.
/// assert_eq!(redact("redis://u:se/cr?et@h:6379/0"), "redis://u:***@h:6379/0");
/// assert_eq!(
///     redact("redis+sentinel://h:26379/m?sentinel_password=secret&db=1"),
///     "redis+sentinel://h:26379/m?sentinel_password=***&db=1"
/// );
/// ```
pub fn redact(url: &str) -> String {
    let (head, rest) = match url.find("://") {
        Some(i) => url.split_at(i + 3),
        None => ("", url),
    };
    let mut out = match rest.rfind('@') {
        Some(at) => {
            let user = rest[..at].split_once(':').map_or("", |(u, _)| u);
            let user = if user.contains(['/', '?', '#', '&', '=', '@']) {
                ""
            } else {
                user
            };
            format!("{head}{user}:***{}", &rest[at..])
        }
        None => url.to_owned(),
    };
    if let Some(q) = out.find('?') {
        let query: Vec<String> = out[q + 1..]
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, _))
                    if ["password", "pass", "sentinel_password"]
                        .contains(&k.to_ascii_lowercase().as_str()) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_owned(),
            })
            .collect();
        out = format!("{}?{}", &out[..q], query.join("&"));
    }
    out
}

fn decode(url: &str, what: &str, s: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| part(url, what, "is not UTF-8 once percent-decoded"))
}

/// Checks a one-server URL (`redis://`, `rediss://`) the way redis-rs will read it.
fn check_single(url: &str) -> Result<(), Error> {
    let u = ::url::Url::parse(url).map_err(|e| parse_error(url, "", e))?;
    check_host(url, "", &u)?;
    database_path(url, u.path())?;
    for (k, _) in u.query_pairs() {
        match &*k {
            "protocol" => {}
            "db" => {
                return Err(part(
                    url,
                    "database",
                    "goes in the path (redis://host:port/<database>), not in ?db=",
                ))
            }
            other => return Err(unknown(url, other, "protocol")),
        }
    }
    match u.fragment() {
        None => Ok(()),
        Some("insecure") if u.scheme() == "rediss" => Ok(()),
        Some(_) => Err(bad(url, "a fragment ('#…') other than rediss://…#insecure")),
    }
}

/// The database a URL path names (`/3`, `/` or none: 0).
fn database_path(url: &str, path: &str) -> Result<i64, Error> {
    match path.trim_matches('/') {
        "" => Ok(0),
        db => database(url, db),
    }
}

/// Checks a Unix socket URL (`unix:///path.sock?db=3`) the way redis-rs will read it.
fn check_unix(url: &str) -> Result<(), Error> {
    let u = ::url::Url::parse(url).map_err(|e| parse_error(url, "", e))?;
    if u.to_file_path().is_err() || u.path().trim_matches('/').is_empty() {
        return Err(part(
            url,
            "path",
            "must be the socket's absolute path (unix:///path/to/redis.sock)",
        ));
    }
    for (k, v) in u.query_pairs() {
        match &*k {
            "db" => {
                database(url, &v)?;
            }
            "user" | "pass" | "protocol" => {}
            other => return Err(unknown(url, other, "db, user, pass, protocol")),
        }
    }
    Ok(())
}

/// `n` as an ordinal node number in messages (" of node 2"), or nothing for a lone node.
fn node_name(i: usize, count: usize) -> String {
    if count == 1 {
        String::new()
    } else {
        format!(" of node {}", i + 1)
    }
}

/// Parses a store URL; every host, port and database is checked here, so a URL that could
/// never work is refused at construction (a `ValueError` naming the part) rather than failing
/// every decision.
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
/// let e = parse("redis+cluster://10.0.0.1:7000,10.0.0.2:99999").unwrap_err().to_string();
/// assert!(e.starts_with("store port of node 2 must be a number from 1 to 65535"), "{e}");
/// ```
pub fn parse(url: &str) -> Result<Target, Error> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(bad(url, "no scheme"));
    };
    let scheme = scheme.to_ascii_lowercase();
    let (cluster, tls) = match scheme.as_str() {
        "redis" | "rediss" => {
            check_single(url)?;
            return Ok(Target::Single(url.to_owned()));
        }
        "unix" | "redis+unix" => {
            check_unix(url)?;
            return Ok(Target::Single(url.to_owned()));
        }
        "redis+cluster" | "redis-cluster" => (true, false),
        "rediss+cluster" | "rediss-cluster" => (true, true),
        "redis+sentinel" | "sentinel" | "redis-sentinel" => (false, false),
        "rediss+sentinel" | "rediss-sentinel" => (false, true),
        _ => return Err(bad(url, &format!("unknown scheme {scheme:?}"))),
    };
    // The authority ends at the first '/', '?' or '#' (as in every URL); the user information
    // at its last '@'.
    let (authority, tail) = rest.split_at(rest.find(['/', '?', '#']).unwrap_or(rest.len()));
    if tail.contains('#') {
        return Err(bad(url, "a fragment ('#…')"));
    }
    let (path, query) = tail.split_once('?').unwrap_or((tail, ""));
    let (userinfo, hosts) = authority.rsplit_once('@').unwrap_or(("", authority));
    let (username, password) = match userinfo.split_once(':') {
        Some((u, p)) => (
            decode(url, "user name", u)?,
            Some(decode(url, "password", p)?),
        ),
        None => (decode(url, "user name", userinfo)?, None),
    };
    let username = Some(username).filter(|u| !u.is_empty());
    let hosts: Vec<&str> = hosts.split(',').filter(|h| !h.is_empty()).collect();
    if hosts.is_empty() {
        return Err(part(url, "host", "is missing"));
    }
    // Each node is read by the `url` crate as `redis://host:port`, and written back the same
    // way, with the default port made explicit (6379 for Cluster nodes, 26379 for Sentinels).
    let node_scheme = if tls && cluster { "rediss" } else { "redis" };
    let default_port = if cluster { 6379 } else { 26379 };
    let mut nodes = Vec::with_capacity(hosts.len());
    for (i, h) in hosts.iter().enumerate() {
        let node = node_name(i, hosts.len());
        let u =
            ::url::Url::parse(&format!("redis://{h}")).map_err(|e| parse_error(url, &node, e))?;
        check_host(url, &node, &u)?;
        let host = u.host_str().unwrap_or_default();
        nodes.push(format!(
            "{node_scheme}://{host}:{}",
            u.port().unwrap_or(default_port)
        ));
    }
    // Percent-decoded, with '+' kept as it is (a password may hold one).
    let pairs = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Ok((decode(url, "parameter", k)?, decode(url, "parameter", v)?))
        })
        .collect::<Result<Vec<(String, String)>, Error>>()?;
    if cluster {
        let mut db = database_path(url, path)?;
        for (k, v) in &pairs {
            match k.as_str() {
                "db" => db = database(url, v)?,
                other => return Err(unknown(url, other, "db")),
            }
        }
        if db != 0 {
            return Err(part(
                url,
                "database",
                "must be 0 on a Cluster (a Redis Cluster has only database 0)",
            ));
        }
        return Ok(Target::Cluster {
            nodes,
            username,
            password,
            tls,
        });
    }
    // `/service[/database]`; a lone number is the database (`sentinel://h:26379/0`).
    let mut service = "mymaster".to_owned();
    let mut db = 0;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    let numeric = |p: &str| {
        let digits = p.strip_prefix('-').unwrap_or(p);
        !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
    };
    match parts[..] {
        [] => {}
        [only] if numeric(only) => db = database(url, only)?,
        [name] => service = decode(url, "service name", name)?,
        [name, d] => {
            service = decode(url, "service name", name)?;
            db = database(url, d)?;
        }
        _ => {
            return Err(part(
                url,
                "path",
                "must be /<service>[/<database>] on a Sentinel URL",
            ))
        }
    }
    let mut sentinel_password = None;
    for (k, v) in pairs {
        match k.as_str() {
            "sentinel_password" => sentinel_password = Some(v),
            "service_name" => service = v,
            "db" => db = database(url, &v)?,
            other => return Err(unknown(url, other, "sentinel_password, service_name, db")),
        }
    }
    if service.is_empty() {
        return Err(part(url, "service name", "is empty"));
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
        assert!(e.contains("host is missing"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");
        assert!(parse("memcached://x").is_err());
        assert!(parse("redis+sentinel://h:1/svc?bogus=1").is_err());
    }

    #[test]
    fn each_bad_part_is_named() {
        for (url, part) in [
            ("redis://h:6379/-1", "database"),
            ("redis://h:6379/1x", "database"),
            ("redis://h:6379/2147483647", "database"),
            ("redis://h:6379?db=2", "database"),
            ("redis://h:65536/0", "port"),
            ("redis://h:0", "port"),
            ("redis://:6379", "host"),
            ("redis://[::]:6379", "host"),
            ("unix:///tmp/r.sock?db=x", "database"),
            ("unix://", "path"),
            ("redis+cluster://h:7000,h:99999", "port of node 2"),
            ("redis+cluster://h:7000,:7001", "host of node 2"),
            ("redis+cluster://h:7000/1", "database"),
            ("redis+cluster://h:7000?db=1", "database"),
            ("redis+sentinel://h:notaport/mymaster/0", "port"),
            ("redis+sentinel://h:26379/mymaster/-1", "database"),
            ("redis+sentinel://h:26379/-1", "database"),
            ("redis+sentinel://h:26379/m/0/1", "path"),
        ] {
            let with_pw = if url.starts_with("unix:") {
                let sep = if url.contains('?') { '&' } else { '?' };
                format!("{url}{sep}pass=hunter2")
            } else {
                url.replacen("://", "://u:hunter2@", 1)
            };
            for u in [url, with_pw.as_str()] {
                let e = parse(u).expect_err(u).to_string();
                assert!(e.starts_with(&format!("store {part} ")), "{u}: {e}");
                assert!(!e.contains("hunter2"), "{e}");
            }
        }
    }

    #[test]
    fn good_urls_are_kept() {
        for url in [
            "redis://h",
            "redis://h:6379/",
            "redis://h:6379/2147483646",
            "REDIS://H:6379/0",
            "rediss://h:6380/0#insecure",
            "redis://[::1]:6379/0?protocol=resp3",
            "unix:///tmp/r.sock?db=3&pass=x",
        ] {
            assert_eq!(parse(url).unwrap(), Target::Single(url.into()));
        }
        match parse("rediss+cluster://[::1]:7000,h/0").unwrap() {
            Target::Cluster { nodes, tls, .. } => {
                assert_eq!(nodes, ["rediss://[::1]:7000", "rediss://h:6379"]);
                assert!(tls);
            }
            other => panic!("{other:?}"),
        }
        match parse("sentinel://h?sentinel_password=a+b%21").unwrap() {
            Target::Sentinel {
                sentinels,
                sentinel_password,
                ..
            } => {
                assert_eq!(sentinels, ["redis://h:26379"]);
                assert_eq!(sentinel_password.as_deref(), Some("a+b!"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn redact_hides_misencoded_and_query_passwords() {
        for url in [
            "redis://u:zq/9@h:6379/0",
            "redis://u:zq?9@h:6379/0",
            "redis://u:zq@9@h:6379/0",
            "redis://u:zq#9@h:6379/0",
            "redis+sentinel://h:1/m?x=1&sentinel_password=zq9",
            "unix:///r.sock?pass=zq9",
        ] {
            let r = redact(url);
            assert!(!r.contains("zq"), "{url} -> {r}");
            if let Err(e) = parse(url) {
                assert!(!e.to_string().contains("zq"), "{e}");
            }
        }
    }
}
