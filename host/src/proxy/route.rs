//! Route tables: `METHOD /repos/{owner}/{repo}/pulls` → operation + params.
//!
//! A request that matches no route of its service is denied: the proxy only
//! forwards what the configuration names.

use crate::config::RouteConfig;

/// One service's routes, matched in order; the first match wins.
#[derive(Debug, Clone, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

#[derive(Debug, Clone)]
struct Route {
    op: String,
    method: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    Param(String),
    /// `{name*}`, last: one or more segments, joined with `/`.
    Rest(String),
}

/// A matched route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteMatch {
    pub operation: String,
    pub params: Vec<(String, String)>,
}

impl RouteTable {
    pub fn new(routes: &[RouteConfig]) -> Self {
        let routes = routes
            .iter()
            .map(|r| Route {
                op: r.op.clone(),
                method: r.method.clone(),
                segments: r
                    .path
                    .split('/')
                    .skip(1)
                    .map(|s| match s.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                        Some(name) => match name.strip_suffix('*') {
                            Some(rest) => Segment::Rest(rest.to_string()),
                            None => Segment::Param(name.to_string()),
                        },
                        None => Segment::Literal(s.to_string()),
                    })
                    .collect(),
            })
            .collect();
        RouteTable { routes }
    }

    /// Match `method path` (path without the service prefix, starting with
    /// `/`). Parameters are percent-decoded; one that decodes to something
    /// containing `/` or is `.`/`..` does not match, so a parameter can never
    /// smuggle extra path segments past the policy. A `{name*}` parameter
    /// takes the remaining segments, each checked the same way, joined with
    /// `/`: so its value is a clean relative path.
    pub fn find(&self, method: &str, path: &str) -> Option<RouteMatch> {
        let parts: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        'routes: for route in &self.routes {
            let rest = matches!(route.segments.last(), Some(Segment::Rest(_)));
            let fits = if rest {
                parts.len() >= route.segments.len()
            } else {
                parts.len() == route.segments.len()
            };
            if route.method != method || !fits {
                continue;
            }
            let mut params = Vec::new();
            for (i, (segment, part)) in route.segments.iter().zip(&parts).enumerate() {
                match segment {
                    Segment::Rest(name) => {
                        let mut joined = Vec::new();
                        for part in &parts[i..] {
                            match clean_segment(part) {
                                Some(value) => joined.push(value),
                                None => continue 'routes,
                            }
                        }
                        params.push((name.clone(), joined.join("/")));
                    }
                    Segment::Literal(lit) => {
                        if lit != part {
                            continue 'routes;
                        }
                    }
                    Segment::Param(name) => match clean_segment(part) {
                        Some(value) => params.push((name.clone(), value)),
                        None => continue 'routes,
                    },
                }
            }
            return Some(RouteMatch {
                operation: route.op.clone(),
                params,
            });
        }
        None
    }
}

/// One path segment, decoded; `None` if empty, `.`, `..` or hiding a `/`.
fn clean_segment(part: &str) -> Option<String> {
    let value = percent_decode(part)?;
    let bad =
        value.is_empty() || value.contains('/') || value.contains('\\') || value == "." || value == "..";
    (!bad).then_some(value)
}

/// Decode `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Parse a query string into decoded pairs (`+` is a space).
pub fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                percent_decode(&k.replace('+', " "))?,
                percent_decode(&v.replace('+', " "))?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> RouteTable {
        let route = |op: &str, method: &str, path: &str| RouteConfig {
            op: op.into(),
            method: method.into(),
            path: path.into(),
        };
        RouteTable::new(&[
            route("issues.read", "GET", "/repos/{owner}/{repo}/issues/{number}"),
            route("pulls.create", "POST", "/repos/{owner}/{repo}/pulls"),
            route("crashes.list", "GET", "/crashes"),
        ])
    }

    #[test]
    fn matches_method_path_and_params() {
        let m = table().find("GET", "/repos/acme/api/issues/7").expect("match");
        assert_eq!(m.operation, "issues.read");
        let expected = [("owner", "acme"), ("repo", "api"), ("number", "7")];
        assert!(
            m.params
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .eq(expected)
        );
        assert_eq!(
            table().find("GET", "/crashes").map(|m| m.operation),
            Some("crashes.list".into())
        );
    }

    #[test]
    fn anything_else_does_not_match() {
        let t = table();
        assert_eq!(t.find("POST", "/repos/acme/api/issues/7"), None, "wrong method");
        assert_eq!(t.find("GET", "/repos/acme/api/issues"), None, "too short");
        assert_eq!(t.find("GET", "/repos/acme/api/issues/7/x"), None, "too long");
        assert_eq!(t.find("GET", "/repos/acme/api/issues/"), None, "empty param");
        assert_eq!(
            t.find("GET", "/repos/acme/a%2Fb/issues/7"),
            None,
            "encoded slash in a param"
        );
        assert_eq!(
            t.find("GET", "/repos/acme/%2e%2e/issues/7"),
            None,
            "dot-dot param"
        );
        assert_eq!(t.find("GET", "/repos/acme/%zz/issues/7"), None, "bad escape");
        assert_eq!(t.find("GET", "crashes"), None, "no leading slash");
    }

    #[test]
    fn a_rest_parameter_takes_a_clean_relative_path() {
        let t = RouteTable::new(&[RouteConfig {
            op: "contents.read".into(),
            method: "GET".into(),
            path: "/repos/{repo}/contents/{path*}".into(),
        }]);
        let m = t
            .find("GET", "/repos/shop/contents/src/auth/session.py")
            .expect("match");
        assert_eq!(
            m.params[1],
            ("path".to_string(), "src/auth/session.py".to_string())
        );
        let m = t
            .find("GET", "/repos/shop/contents/README.md")
            .expect("one segment");
        assert_eq!(m.params[1].1, "README.md");
        for bad in [
            "/repos/shop/contents",
            "/repos/shop/contents/",
            "/repos/shop/contents/src//x",
            "/repos/shop/contents/src/../config/production.env",
            "/repos/shop/contents/src/%2e%2e/x",
            "/repos/shop/contents/src/a%2Fb",
            "/repos/shop/contents/src/a%5Cb",
            "/repos/shop/contents/./x",
        ] {
            assert_eq!(t.find("GET", bad), None, "{bad}");
        }
    }

    #[test]
    fn queries_decode() {
        assert_eq!(
            parse_query("a=1&b=x+y&c=%2F&d").expect("valid"),
            [("a", "1"), ("b", "x y"), ("c", "/"), ("d", "")].map(|(k, v)| (k.to_string(), v.to_string()))
        );
        assert_eq!(parse_query("a=%G0"), None);
    }
}
