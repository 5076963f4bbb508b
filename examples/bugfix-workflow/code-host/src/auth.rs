//! Trusting Airlock's tokens, and nothing else: the JWK Set (fetched lazily,
//! refetched on an unknown key at most once per second), signature and
//! claims, scope, the request binding, and introspection.

use std::fmt::Write as _;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Body;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::CodeHostConfig;

/// Clock skew tolerated on `exp` and `nbf`.
const LEEWAY_S: u64 = 30;
/// The JWK Set is fetched again (on an unknown `kid`) at most this often.
const JWKS_MIN_INTERVAL: Duration = Duration::from_secs(1);
/// Time allowed for each call to Airlock.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWK Set or introspection answer read.
const MAX_ANSWER: usize = 256 * 1024;

/// Why a request was refused before it could act.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    #[error("the request carries no `Authorization: Bearer` token")]
    MissingToken,
    #[error("{0}")]
    InvalidToken(String),
    #[error("the token's scope does not grant `{0}`")]
    InsufficientScope(String),
    #[error("the token's request binding (`req`) does not match this request; it was minted for another one")]
    BindingMismatch,
    #[error("{0}")]
    BadRequest(String),
    #[error(
        "Airlock's introspection says the token is not active (expired, revoked, or single-use and already used)"
    )]
    Inactive,
    #[error("Airlock's JWK Set is unavailable: {0}")]
    JwksUnavailable(String),
    #[error("Airlock's introspection is unavailable: {0}")]
    IntrospectionUnavailable(String),
}

impl AuthError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            AuthError::MissingToken | AuthError::InvalidToken(_) | AuthError::Inactive => {
                StatusCode::UNAUTHORIZED
            }
            AuthError::InsufficientScope(_) | AuthError::BindingMismatch => StatusCode::FORBIDDEN,
            AuthError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AuthError::JwksUnavailable(_) | AuthError::IntrospectionUnavailable(_) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    pub(crate) fn code(&self) -> &'static str {
        match self {
            AuthError::MissingToken => "missing_token",
            AuthError::InvalidToken(_) => "invalid_token",
            AuthError::InsufficientScope(_) => "insufficient_scope",
            AuthError::BindingMismatch => "binding_mismatch",
            AuthError::BadRequest(_) => "invalid_request",
            AuthError::Inactive => "token_inactive",
            AuthError::JwksUnavailable(_) => "jwks_unavailable",
            AuthError::IntrospectionUnavailable(_) => "introspection_unavailable",
        }
    }
}

/// A token whose signature and claims were verified.
#[derive(Debug)]
pub(crate) struct Verified {
    pub sub: String,
    pub jti: String,
    claims: Value,
}

/// The bearer token of an `Authorization` header value.
pub(crate) fn bearer(authorization: Option<&str>) -> Result<&str, AuthError> {
    let value = authorization.ok_or(AuthError::MissingToken)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::MissingToken)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() {
        return Err(AuthError::MissingToken);
    }
    Ok(token)
}

/// The scope and binding checks (steps 4 and 5): `scope` must be one of the
/// token's space-separated scopes, and its `req` claim must be `binding`.
pub(crate) fn authorize(verified: &Verified, scope: &str, binding: &str) -> Result<(), AuthError> {
    let granted = verified.claims.get("scope").and_then(Value::as_str).unwrap_or("");
    if !granted.split(' ').any(|s| s == scope) {
        return Err(AuthError::InsufficientScope(scope.to_owned()));
    }
    if verified.claims.get("req").and_then(Value::as_str) != Some(binding) {
        return Err(AuthError::BindingMismatch);
    }
    Ok(())
}

/// Verifies tokens against one Airlock.
pub(crate) struct Verifier {
    config: CodeHostConfig,
    client: Client<HttpConnector, Full<Bytes>>,
    jwks: RwLock<Option<Arc<JwkSet>>>,
    /// When the JWK Set was last fetched; held while fetching, so that
    /// concurrent requests with an unknown key fetch it once.
    last_fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Verifier {
    pub(crate) fn new(config: CodeHostConfig) -> Verifier {
        install_crypto_provider();
        Verifier {
            config,
            client: Client::builder(TokioExecutor::new()).build_http(),
            jwks: RwLock::new(None),
            last_fetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Steps 2 and 3: the header names ES256 or EdDSA and a key of the JWK
    /// Set, the signature is valid, and `iss`, `aud`, `exp`, `nbf`, `sub`
    /// and `jti` hold.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Verified, AuthError> {
        let invalid = |reason: String| AuthError::InvalidToken(reason);
        let header = decode_header(token).map_err(|e| invalid(format!("malformed token: {e}")))?;
        let alg = match header.alg {
            Algorithm::ES256 | Algorithm::EdDSA => header.alg,
            other => {
                return Err(invalid(format!(
                    "algorithm {other:?} is refused: only ES256 and EdDSA"
                )));
            }
        };
        if header.crit.is_some() {
            return Err(invalid("unsupported `crit` header".into()));
        }
        if header
            .typ
            .as_deref()
            .is_some_and(|t| !t.eq_ignore_ascii_case("JWT"))
        {
            return Err(invalid("header `typ` is not JWT".into()));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or_else(|| invalid("the token names no key (`kid`)".into()))?;
        let jwk = self.key(kid).await?;
        if !key_fits(&jwk, alg) {
            return Err(invalid(format!("key `{kid}` is not a {alg:?} key")));
        }
        let key =
            DecodingKey::from_jwk(&jwk).map_err(|e| invalid(format!("key `{kid}` is unusable: {e}")))?;

        // Signature only; the claims are checked below, against our clock.
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        let claims = decode::<Value>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature".into()),
                _ => invalid(format!("token refused: {e}")),
            })?
            .claims;
        self.check_claims(claims, unix_now())
    }

    fn check_claims(&self, claims: Value, now: u64) -> Result<Verified, AuthError> {
        let invalid = |reason: String| AuthError::InvalidToken(reason);
        let string = |name: &str| claims.get(name).and_then(Value::as_str);
        if string("iss") != Some(self.config.issuer.as_str()) {
            return Err(invalid(format!("the issuer is not `{}`", self.config.issuer)));
        }
        if string("aud") != Some(self.config.audience.as_str()) {
            return Err(invalid(format!(
                "the token is not for audience `{}`",
                self.config.audience
            )));
        }
        let exp = claims
            .get("exp")
            .and_then(Value::as_u64)
            .ok_or_else(|| invalid("`exp` is missing or not a timestamp".into()))?;
        if now >= exp.saturating_add(LEEWAY_S) {
            return Err(invalid(format!("the token expired at {exp} (now {now})")));
        }
        if let Some(nbf) = claims.get("nbf") {
            let nbf = nbf
                .as_u64()
                .ok_or_else(|| invalid("`nbf` is not a timestamp".into()))?;
            if nbf > now.saturating_add(LEEWAY_S) {
                return Err(invalid(format!(
                    "the token is not valid before {nbf} (now {now})"
                )));
            }
        }
        let required = |name: &str| {
            string(name)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| invalid(format!("`{name}` is missing")))
        };
        let sub = required("sub")?;
        let jti = required("jti")?;
        Ok(Verified { sub, jti, claims })
    }

    /// The key `kid` of Airlock's JWK Set: from the cached set, or from a
    /// fresh one if it is unknown and the last fetch was over a second ago.
    async fn key(&self, kid: &str) -> Result<Jwk, AuthError> {
        if let Some(found) = self.cached(kid) {
            return found;
        }
        let mut last_fetch = self.last_fetch.lock().await;
        // Someone else may have fetched it while this waited.
        if let Some(found) = self.cached(kid) {
            return found;
        }
        if last_fetch.is_none_or(|at| at.elapsed() >= JWKS_MIN_INTERVAL) {
            *last_fetch = Some(Instant::now());
            match self.fetch_jwks().await {
                Ok(set) => {
                    tracing::debug!(keys = set.keys.len(), "code host: fetched Airlock's JWK Set");
                    *self.jwks.write().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(set));
                }
                Err(reason) => {
                    tracing::warn!(%reason, "code host: could not fetch Airlock's JWK Set");
                    if self.set().is_none() {
                        return Err(AuthError::JwksUnavailable(reason));
                    }
                }
            }
        } else if self.set().is_none() {
            return Err(AuthError::JwksUnavailable(
                "the last fetch failed; retry in a second".into(),
            ));
        }
        self.cached(kid)
            .unwrap_or_else(|| Err(AuthError::InvalidToken(format!("unknown key `{kid}`"))))
    }

    fn set(&self) -> Option<Arc<JwkSet>> {
        self.jwks.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// `None` if the cached set (if any) has no key `kid`.
    fn cached(&self, kid: &str) -> Option<Result<Jwk, AuthError>> {
        let set = self.set()?;
        let mut matching = set
            .keys
            .iter()
            .filter(|k| k.common.key_id.as_deref() == Some(kid));
        let first = matching.next()?;
        if matching.next().is_some() {
            return Some(Err(AuthError::InvalidToken(format!(
                "two keys of the JWK Set have kid `{kid}`"
            ))));
        }
        Some(Ok(first.clone()))
    }

    async fn fetch_jwks(&self) -> Result<JwkSet, String> {
        let uri: Uri = self
            .config
            .jwks_url
            .parse()
            .map_err(|e| format!("bad JWKS URL: {e}"))?;
        let request = Request::get(uri)
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| e.to_string())?;
        let (status, body) = self.call(request).await?;
        if status != StatusCode::OK {
            return Err(format!("the JWKS endpoint answered {status}"));
        }
        serde_json::from_slice(&body).map_err(|e| format!("not a JWK Set: {e}"))
    }

    /// Step 6, RFC 7662: Airlock marks a single-use token used on its first
    /// introspection, so this is what makes a token single use.
    pub(crate) async fn introspect(&self, token: &str) -> Result<(), AuthError> {
        let unavailable = AuthError::IntrospectionUnavailable;
        let uri: Uri = self
            .config
            .introspect_url
            .parse()
            .map_err(|e| unavailable(format!("bad introspection URL: {e}")))?;
        let request = Request::post(uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .header(
                AUTHORIZATION,
                format!("Bearer {}", self.config.introspection_token),
            )
            .body(Full::new(Bytes::from(format!("token={}", percent_encode(token)))))
            .map_err(|e| unavailable(e.to_string()))?;
        let (status, body) = self.call(request).await.map_err(unavailable)?;
        if status != StatusCode::OK {
            return Err(unavailable(format!("it answered {status}")));
        }
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| unavailable(format!("not JSON: {e}")))?;
        match answer.get("active").and_then(Value::as_bool) {
            Some(true) => Ok(()),
            Some(false) => Err(AuthError::Inactive),
            None => Err(unavailable("the answer has no boolean `active`".into())),
        }
    }

    async fn call(&self, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes), String> {
        let uri = request.uri().clone();
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| format!("{uri}: {e}"))?;
            let status = response.status();
            let body = read_limited(response.into_body(), MAX_ANSWER)
                .await
                .map_err(|e| format!("{uri}: reading the answer: {e}"))?;
            Ok((status, body))
        };
        tokio::time::timeout(UPSTREAM_TIMEOUT, exchange)
            .await
            .map_err(|_| format!("{uri}: no answer within {UPSTREAM_TIMEOUT:?}"))?
    }
}

/// Why a body could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error("longer than {0} bytes")]
    TooLong(usize),
    #[error("{0}")]
    Failed(String),
}

/// Read at most `limit` bytes of `body`.
pub(crate) async fn read_limited<B>(body: B, limit: usize) -> Result<Bytes, BodyError>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|e| {
            if e.is::<http_body_util::LengthLimitError>() {
                BodyError::TooLong(limit)
            } else {
                BodyError::Failed(e.to_string())
            }
        })
}

/// Whether `jwk` is a key for `alg`: P-256 for ES256, Ed25519 for EdDSA;
/// its `alg`, if it names one, must agree.
fn key_fits(jwk: &Jwk, alg: Algorithm) -> bool {
    let declared = match jwk.common.key_algorithm {
        None => true,
        Some(KeyAlgorithm::ES256) => alg == Algorithm::ES256,
        Some(KeyAlgorithm::EdDSA) => alg == Algorithm::EdDSA,
        Some(_) => false,
    };
    let curve = match (&jwk.algorithm, alg) {
        (AlgorithmParameters::EllipticCurve(p), Algorithm::ES256) => p.curve == EllipticCurve::P256,
        (AlgorithmParameters::OctetKeyPair(p), Algorithm::EdDSA) => p.curve == EllipticCurve::Ed25519,
        _ => false,
    };
    declared && curve
}

/// jsonwebtoken 11 verifies through a process-wide crypto provider; with
/// only its `aws_lc_rs` feature it picks that one itself, but installing it
/// explicitly (as the host does) keeps a feature unified in by another crate
/// from turning that into a panic. A provider already installed stays.
fn install_crypto_provider() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The request binding, exactly as Airlock computes it (the `req` claim):
/// `base64url_nopad(sha256(METHOD "\n" PATH "\n" QUERY "\n" hex(sha256(BODY))))`
/// where PATH is the path as sent (without the query) and QUERY the
/// canonical query: every decoded (name, value) pair percent-encoded
/// (RFC 3986: all bytes but `A-Z a-z 0-9 - . _ ~`, as upper-case `%XX`),
/// sorted by (name, value), joined as `name=value` with `&`.
pub fn request_binding(method: &str, path: &str, query: &[(String, String)], body: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(method.as_bytes());
    hasher.update(b"\n");
    hasher.update(path.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical_query(query).as_bytes());
    hasher.update(b"\n");
    hasher.update(hex::encode(Sha256::digest(body)).as_bytes());
    URL_SAFE_NO_PAD.encode(hasher.finalize())
}

fn canonical_query(query: &[(String, String)]) -> String {
    let mut pairs: Vec<(String, String)> = query
        .iter()
        .map(|(name, value)| (percent_encode(name), percent_encode(value)))
        .collect();
    pairs.sort_unstable();
    let pairs: Vec<String> = pairs.into_iter().map(|(n, v)| format!("{n}={v}")).collect();
    pairs.join("&")
}

fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decode `%XX` escapes; `None` for a malformed escape or a non-UTF-8 result.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The decoded (name, value) pairs of a query string (`+` is a space);
/// `None` if an escape is malformed.
pub(crate) fn parse_query(query: &str) -> Option<Vec<(String, String)>> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Some((
                percent_decode(&name.replace('+', " "))?,
                percent_decode(&value.replace('+', " "))?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// The same vector as Airlock's own test of the construction.
    #[test]
    fn binding_matches_the_documented_construction() {
        let body = b"{\"title\":\"fix\"}";
        let input = format!(
            "POST\n/repos/acme/api/pulls\na=1&a=2&sp%20ace=%C3%A9%26%3D\n{}",
            hex::encode(Sha256::digest(body))
        );
        let expected = URL_SAFE_NO_PAD.encode(Sha256::digest(input.as_bytes()));
        let query = q(&[("sp ace", "é&="), ("a", "2"), ("a", "1")]);
        assert_eq!(
            request_binding("POST", "/repos/acme/api/pulls", &query, body),
            expected
        );
        let empty = format!("GET\n/x\n\n{}", hex::encode(Sha256::digest(b"")));
        assert_eq!(
            request_binding("GET", "/x", &[], b""),
            URL_SAFE_NO_PAD.encode(Sha256::digest(empty.as_bytes()))
        );
    }

    #[test]
    fn queries_decode_before_canonicalising() {
        let a = parse_query("labels=bug%2Cpriority%3Ahigh&state=open").unwrap();
        let b = parse_query("state=open&labels=bug,priority:high").unwrap();
        assert_eq!(
            request_binding("GET", "/i", &a, b""),
            request_binding("GET", "/i", &b, b"")
        );
        assert_eq!(parse_query("q=a+b%20c").unwrap(), q(&[("q", "a b c")]));
        assert_eq!(parse_query("flag&&x=").unwrap(), q(&[("flag", ""), ("x", "")]));
        assert_eq!(parse_query(""), Some(vec![]));
        assert_eq!(parse_query("a=%zz"), None);
        assert_eq!(parse_query("a=%+1"), None);
        assert_eq!(parse_query("a=%C3"), None);
        assert_eq!(
            canonical_query(&q(&[("b", "é"), ("a", "x y")])),
            "a=x%20y&b=%C3%A9"
        );
    }

    #[test]
    fn bearer_tokens_are_found() {
        assert_eq!(bearer(Some("Bearer abc")).unwrap(), "abc");
        assert_eq!(bearer(Some("bearer  abc ")).unwrap(), "abc");
        for bad in [None, Some(""), Some("Bearer"), Some("Bearer "), Some("Basic abc")] {
            assert!(matches!(bearer(bad), Err(AuthError::MissingToken)), "{bad:?}");
        }
    }
}
