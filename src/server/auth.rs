//! Who may call the server: users with salted PBKDF2-SHA256 password hashes
//! (`sluice hash-password`), bearer tokens that expire, and two roles.
//!
//! Clients log in with HTTP Basic credentials in Handshake (ADBC sends them
//! unpadded, pyarrow padded; old clients put a `BasicAuth` message in the
//! payload) and get a bearer token back in the `authorization` response header.
//! Every later call carries `authorization: Bearer <token>`. With no user
//! configured the server is open (and binds only to loopback, see `serve`).
//!
//! A refused login or call (wrong password, unknown user, a bad or expired
//! token) is logged at warn with the user it claimed to be, the client's
//! address and the reason; never a password or a token.

use super::stream::BoxStream;
use arrow_flight::{HandshakeRequest, HandshakeResponse};
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::Engine as _;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

/// PBKDF2 rounds for new hashes (OWASP's 2023 advice for PBKDF2-HMAC-SHA256).
const ROUNDS: u32 = 600_000;
const PREFIX: &str = "pbkdf2-sha256";

/// Base64 that accepts padded and unpadded input.
const B64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Queries and writes (DDL, DML, ingest).
    ReadWrite,
    /// Queries of warehouse tables only.
    ReadOnly,
}

impl Role {
    pub fn parse(s: Option<&str>) -> crate::Result<Role> {
        match s
            .map(|r| r.to_ascii_lowercase().replace('-', "_"))
            .as_deref()
        {
            None | Some("read_write") | Some("readwrite") | Some("admin") => Ok(Role::ReadWrite),
            Some("read_only") | Some("readonly") | Some("reader") => Ok(Role::ReadOnly),
            Some(other) => Err(crate::Error::invalid(format!(
                "unknown role `{other}`; use read_write or read_only"
            ))),
        }
    }
}

/// The caller of one request.
#[derive(Debug, Clone)]
pub struct Principal {
    pub user: String,
    pub role: Role,
    /// The bearer token the call carried (keys the session's options).
    pub token: Option<String>,
}

impl Principal {
    /// Refuses a write by a read-only user.
    pub fn require_write(&self, what: &str) -> Result<(), Status> {
        match self.role {
            Role::ReadWrite => Ok(()),
            Role::ReadOnly => Err(Status::permission_denied(format!(
                "user `{}` is read-only and cannot run {what}; ask for a read_write user",
                self.user
            ))),
        }
    }
}

/// A salted PBKDF2-SHA256 hash: `pbkdf2-sha256$<rounds>$<salt>$<hash>` (base64).
#[derive(Debug, Clone)]
pub struct PasswordHash {
    rounds: u32,
    salt: Vec<u8>,
    hash: Vec<u8>,
}

impl PasswordHash {
    pub fn parse(s: &str) -> crate::Result<Self> {
        let parts: Vec<&str> = s.trim().split('$').collect();
        let bad = || {
            crate::Error::invalid(format!("not a sluice password hash (expected `{PREFIX}$rounds$salt$hash`; create one with `sluice hash-password`)"))
        };
        let [prefix, rounds, salt, hash] = parts.as_slice() else {
            return Err(bad());
        };
        if *prefix != PREFIX {
            return Err(bad());
        }
        let rounds: u32 = rounds.parse().map_err(|_| bad())?;
        let salt = B64.decode(salt).map_err(|_| bad())?;
        let hash = B64.decode(hash).map_err(|_| bad())?;
        if rounds == 0 || hash.len() != 32 || salt.is_empty() {
            return Err(bad());
        }
        Ok(PasswordHash { rounds, salt, hash })
    }

    pub fn verify(&self, password: &str) -> bool {
        let mut out = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), &self.salt, self.rounds, &mut out);
        constant_time_eq(&out, &self.hash)
    }
}

/// A new hash of `password` with a random salt.
pub fn hash_password(password: &str) -> String {
    let salt = &random_bytes()[..16];
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, ROUNDS, &mut out);
    format!("{PREFIX}${ROUNDS}${}${}", B64.encode(salt), B64.encode(out))
}

/// 32 bytes from the operating system's CSPRNG (two v4 UUIDs).
fn random_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    b[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    b[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    b
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A configured user.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub hash: PasswordHash,
    pub role: Role,
}

struct TokenState {
    principal: Principal,
    expires: Instant,
    /// `SetSessionOptions` values of this session (`schema`, ...).
    options: HashMap<String, String>,
}

/// Users, tokens and sessions.
pub struct Auth {
    users: HashMap<String, User>,
    ttl: Duration,
    tokens: Mutex<HashMap<String, TokenState>>,
    /// Recently verified (user, password) pairs, as salted digests: a client
    /// that reconnects does not pay for PBKDF2 again.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    secret: [u8; 32],
    /// Verified against when the user name is unknown, so that an unknown user
    /// costs what a known one does (no user enumeration by timing).
    decoy: PasswordHash,
    /// Bounds the PBKDF2 computations running at once (on the blocking pool):
    /// a burst of logins queues here instead of taking every CPU.
    hashing: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth")
            .field("users", &self.users.keys().collect::<Vec<_>>())
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl Auth {
    pub fn new(users: Vec<User>, ttl: Duration) -> Self {
        // The decoy costs what the most expensive configured hash costs.
        let rounds = users.iter().map(|u| u.hash.rounds).max().unwrap_or(ROUNDS);
        let decoy = PasswordHash {
            rounds,
            salt: random_bytes()[..16].to_vec(),
            hash: random_bytes().to_vec(),
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Auth {
            users: users.into_iter().map(|u| (u.name.clone(), u)).collect(),
            ttl,
            tokens: Mutex::new(HashMap::new()),
            verified: Mutex::new(HashMap::new()),
            secret: random_bytes(),
            decoy,
            hashing: Arc::new(tokio::sync::Semaphore::new(cores.div_ceil(2))),
        }
    }

    /// No users: every call is allowed.
    pub fn is_open(&self) -> bool {
        self.users.is_empty()
    }

    /// Checks Basic credentials (`authorization: Basic ...` or a `BasicAuth`
    /// payload) and issues a token.
    ///
    /// PBKDF2 runs on the blocking pool, at most half the cores at once, so a
    /// burst of logins (or of wrong passwords) does not stall other clients'
    /// queries; an unknown user name is checked against a decoy hash of the same
    /// cost, so it is refused no faster than a wrong password.
    pub async fn login(&self, user: &str, password: &str) -> Result<(Principal, String), Status> {
        let principal = if self.is_open() {
            Principal {
                user: if user.is_empty() {
                    "anonymous".into()
                } else {
                    user.to_string()
                },
                role: Role::ReadWrite,
                token: None,
            }
        } else {
            let denied = || {
                Status::unauthenticated(format!(
                    "authentication failed for user `{user}`: wrong user name or password"
                ))
            };
            let Some(u) = self.users.get(user) else {
                self.verify_slow(&self.decoy, password).await?;
                return Err(denied());
            };
            if !self.verify_cached(u, password).await? {
                return Err(denied());
            }
            Principal {
                user: u.name.clone(),
                role: u.role,
                token: None,
            }
        };
        let token = hex(&random_bytes());
        let mut tokens = self.lock_tokens();
        let now = Instant::now();
        tokens.retain(|_, t| t.expires > now);
        tokens.insert(
            token.clone(),
            TokenState {
                principal: principal.clone(),
                expires: now + self.ttl,
                options: HashMap::new(),
            },
        );
        Ok((
            Principal {
                token: Some(token.clone()),
                ..principal
            },
            token,
        ))
    }

    async fn verify_cached(&self, u: &User, password: &str) -> Result<bool, Status> {
        let mut d = Sha256::new();
        d.update(self.secret);
        d.update(u.name.as_bytes());
        d.update([0]);
        d.update(password.as_bytes());
        d.update([0]);
        d.update(&u.hash.hash);
        let key: [u8; 32] = d.finalize().into();
        let now = Instant::now();
        if let Ok(v) = self.verified.lock() {
            if v.get(&key).is_some_and(|until| *until > now) {
                return Ok(true);
            }
        }
        let ok = self.verify_slow(&u.hash, password).await?;
        if ok {
            if let Ok(mut v) = self.verified.lock() {
                v.retain(|_, until| *until > now);
                v.insert(key, now + self.ttl);
            }
        }
        Ok(ok)
    }

    /// PBKDF2 on the blocking pool, bounded by `hashing`.
    async fn verify_slow(&self, hash: &PasswordHash, password: &str) -> Result<bool, Status> {
        let busy = || Status::unavailable("the server is shutting down; log in again later");
        let _permit = self.hashing.acquire().await.map_err(|_| busy())?;
        let hash = hash.clone();
        let password = password.to_string();
        tokio::task::spawn_blocking(move || hash.verify(&password))
            .await
            .map_err(|_| busy())
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<String, TokenState>> {
        self.tokens.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The caller of a request from its bearer token.
    pub async fn check(&self, metadata: &MetadataMap) -> Result<Principal, Status> {
        self.check_header(authorization(metadata).as_deref()).await
    }

    /// [`Auth::check`] of an `authorization` header's value.
    pub async fn check_header(&self, header: Option<&str>) -> Result<Principal, Status> {
        let header = header.map(str::trim);
        let bearer = header.and_then(|h| strip_scheme(h, "bearer"));
        if let Some(token) = bearer {
            let tokens = self.lock_tokens();
            match tokens.get(token) {
                Some(t) if t.expires > Instant::now() => {
                    return Ok(Principal {
                        token: Some(token.to_string()),
                        ..t.principal.clone()
                    })
                }
                Some(_) if !self.is_open() => {
                    return Err(Status::unauthenticated(
                        "the bearer token has expired; log in again (Handshake)",
                    ))
                }
                None if !self.is_open() => {
                    return Err(Status::unauthenticated(
                        "unknown bearer token; log in again (Handshake)",
                    ))
                }
                _ => {}
            }
        }
        if let Some((user, password)) = header.and_then(parse_basic) {
            // Some clients send Basic credentials on every call instead of a token.
            let (p, _) = self.login(&user, &password).await?;
            return Ok(p);
        }
        if self.is_open() {
            return Ok(Principal {
                user: "anonymous".into(),
                role: Role::ReadWrite,
                token: bearer.map(str::to_string),
            });
        }
        Err(Status::unauthenticated(
            "authentication required: log in with a user name and password (Handshake with Basic credentials), then send `authorization: Bearer <token>`",
        ))
    }

    /// Who an `authorization` header claims to be, for the log: the user of
    /// Basic credentials or of a known (maybe expired) bearer token, else `-`.
    pub fn claimed_user(&self, header: Option<&str>) -> String {
        let header = header.map(str::trim);
        if let Some((user, _)) = header.and_then(parse_basic) {
            return user;
        }
        header
            .and_then(|h| strip_scheme(h, "bearer"))
            .and_then(|token| {
                self.lock_tokens()
                    .get(token)
                    .map(|t| t.principal.user.clone())
            })
            .unwrap_or_else(|| "-".into())
    }

    /// A session's option (`SetSessionOptions`), e.g. `schema`.
    pub fn session_option(&self, token: Option<&str>, name: &str) -> Option<String> {
        let tokens = self.lock_tokens();
        tokens.get(token?)?.options.get(name).cloned()
    }

    /// All options of a session.
    pub fn session_options(&self, token: Option<&str>) -> HashMap<String, String> {
        let tokens = self.lock_tokens();
        token
            .and_then(|t| tokens.get(t))
            .map(|t| t.options.clone())
            .unwrap_or_default()
    }

    /// Sets a session option; fails without a session (no token).
    pub fn set_session_option(
        &self,
        token: Option<&str>,
        name: &str,
        value: Option<String>,
    ) -> Result<(), Status> {
        let mut tokens = self.lock_tokens();
        let state = token.and_then(|t| tokens.get_mut(t)).ok_or_else(|| {
            Status::failed_precondition(
                "session options need a session: log in first (Handshake returns a bearer token)",
            )
        })?;
        match value {
            Some(v) => state.options.insert(name.to_string(), v),
            None => state.options.remove(name),
        };
        Ok(())
    }

    /// Ends a session (`CloseSession`): its token stops working.
    pub fn close_session(&self, token: Option<&str>) {
        if let Some(t) = token {
            self.lock_tokens().remove(t);
        }
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

/// `Basic base64(user:password)`, padded or not.
pub fn parse_basic(header: &str) -> Option<(String, String)> {
    let encoded = strip_scheme(header, "basic")?;
    let decoded = B64.decode(encoded.trim_end_matches('=')).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The `authorization` header of a request, owned (so that no borrow of the
/// request is held while a password is checked).
pub fn authorization(metadata: &MetadataMap) -> Option<String> {
    metadata
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// The address of a request's client (`ip:port`), for the log; `-` when
/// the transport does not say.
pub fn peer<T>(request: &Request<T>) -> String {
    request
        .remote_addr()
        .map_or_else(|| "-".to_string(), |a| a.to_string())
}

/// Logs a refused login or call (warn): the user it claimed to be, the
/// client's address and the reason. Never the password or the token.
pub fn log_refused(user: &str, peer: &str, refusal: &Status) {
    tracing::warn!(
        user = %user,
        peer = %peer,
        reason = %refusal.message(),
        "authentication failed"
    );
}

/// Handshake: logs in with Basic credentials (in the `authorization` header,
/// or as a `BasicAuth` payload) or checks a bearer token (JDBC sends its token
/// through Handshake again), and answers with the session's token, both as the
/// payload and in the `authorization` response header (which ADBC requires).
/// A refusal is logged.
pub(super) async fn handshake(
    auth: &Auth,
    request: Request<Streaming<HandshakeRequest>>,
) -> Result<Response<BoxStream<HandshakeResponse>>, Status> {
    let header = authorization(request.metadata());
    let peer = peer(&request);
    let mut user = auth.claimed_user(header.as_deref());
    let token = if let Some((name, password)) = header.as_deref().and_then(parse_basic) {
        auth.login(&name, &password).await.map(|(_, t)| t)
    } else if header.is_some() {
        match auth.check_header(header.as_deref()).await {
            Ok(Principal { token: Some(t), .. }) => Ok(t),
            Ok(p) => auth.login(&p.user, "").await.map(|(_, t)| t),
            Err(e) => Err(e),
        }
    } else {
        match request.into_inner().message().await {
            Ok(first) => {
                let basic = first
                    .and_then(|m| arrow_flight::BasicAuth::decode(m.payload).ok())
                    .unwrap_or_default();
                user.clone_from(&basic.username);
                auth.login(&basic.username, &basic.password)
                    .await
                    .map(|(_, t)| t)
            }
            Err(e) => Err(e),
        }
    };
    let token = match token {
        Ok(t) => t,
        Err(e) => {
            log_refused(&user, &peer, &e);
            return Err(e);
        }
    };
    tracing::debug!(user = %user, peer = %peer, "logged in");
    let reply = HandshakeResponse {
        protocol_version: 0,
        payload: token.clone().into_bytes().into(),
    };
    let mut response: Response<BoxStream<HandshakeResponse>> =
        Response::new(Box::pin(futures::stream::iter([Ok(reply)])));
    let value = format!("Bearer {token}")
        .parse()
        .map_err(|_| Status::internal("cannot encode the token"))?;
    response.metadata_mut().insert("authorization", value);
    Ok(response)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trip_and_rejects_wrong_password() {
        let h = hash_password("s3cret");
        let parsed = PasswordHash::parse(&h).unwrap();
        assert!(parsed.verify("s3cret"));
        assert!(!parsed.verify("s3cret "));
        assert!(PasswordHash::parse("s3cret").is_err());
        assert!(PasswordHash::parse("pbkdf2-sha256$x$y$z").is_err());
    }

    #[test]
    fn basic_header_padded_and_unpadded() {
        // "alice:pw" -> YWxpY2U6cHc= ; "bob:pw1" -> Ym9iOnB3MQ== ; "ab:c" -> YWI6Yw==
        assert_eq!(
            parse_basic("Basic YWxpY2U6cHc="),
            Some(("alice".into(), "pw".into()))
        );
        assert_eq!(
            parse_basic("Basic YWxpY2U6cHc"),
            Some(("alice".into(), "pw".into()))
        );
        assert_eq!(parse_basic("basic YWI6Yw"), Some(("ab".into(), "c".into())));
        assert_eq!(parse_basic("Bearer abc"), None);
    }

    #[tokio::test]
    async fn tokens_expire_and_roles_apply() {
        let user = User {
            name: "r".into(),
            hash: PasswordHash::parse(&hash_password("pw")).unwrap(),
            role: Role::ReadOnly,
        };
        let auth = Auth::new(vec![user], Duration::from_millis(50));
        assert!(auth.login("r", "bad").await.is_err());
        assert!(auth.login("nobody", "pw").await.is_err());
        let (p, token) = auth.login("r", "pw").await.unwrap();
        assert!(p.require_write("INSERT").is_err());
        let mut md = MetadataMap::new();
        md.insert("authorization", format!("Bearer {token}").parse().unwrap());
        assert_eq!(auth.check(&md).await.unwrap().user, "r");
        assert!(auth.check(&MetadataMap::new()).await.is_err());
        std::thread::sleep(Duration::from_millis(80));
        let err = auth.check(&md).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::Unauthenticated);
        assert!(err.message().contains("expired"));
    }
}
