//! Who is at the counter: argon2 password hashes, sessions that expire, a CSRF token per
//! session, and the role check every handler that changes something goes through.
//!
//! Sessions live in the console's memory (a restart logs everyone out). The session id is 32
//! random bytes from the OS; the cookie is `HttpOnly; SameSite=Strict`, so scripts cannot read
//! it and other sites cannot send it. Every POST carries the session's CSRF token as a form field
//! (the login form a pre-session token, double-submitted in a cookie).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use host_lib::registry::operators::Role;
use subtle::ConstantTimeEq;

/// The session cookie.
pub const SESSION_COOKIE: &str = "cc_session";
/// The login form's double-submit cookie.
pub const LOGIN_COOKIE: &str = "cc_login";

/// Random bytes as hex (session ids, CSRF tokens).
pub fn random_token() -> anyhow::Result<String> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    Ok(hex::encode(b))
}

/// The argon2id hash (PHC string) of `password`, with a fresh random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("the OS random source failed: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?
        .to_string())
}

/// Whether `password` matches the stored PHC hash.
pub fn password_matches(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Whether two tokens are equal, in constant time.
pub fn tokens_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    /// The login (what the audit log records).
    pub login: String,
    /// The name shown.
    pub display_name: String,
    /// The role.
    pub role: Role,
    /// The token every POST of this session carries.
    pub csrf: String,
    /// This session's issuance station id (its leases in the registry).
    pub station: host_lib::registry::Station,
    expires: Instant,
}

impl Session {
    /// Whether the operator is a supervisor.
    pub fn is_supervisor(&self) -> bool {
        self.role == Role::Supervisor
    }
}

/// The sessions of this console.
pub struct Sessions {
    idle: Duration,
    map: Mutex<HashMap<String, Session>>,
}

impl Sessions {
    /// Sessions that expire after `idle` without a request.
    pub fn new(idle: Duration) -> Sessions {
        Sessions {
            idle,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Opens a session; returns its id.
    pub fn open(&self, login: &str, display_name: &str, role: Role) -> anyhow::Result<String> {
        let id = random_token()?;
        let s = Session {
            login: login.to_owned(),
            display_name: display_name.to_owned(),
            role,
            csrf: random_token()?,
            station: host_lib::registry::Station::this_process(),
            expires: Instant::now() + self.idle,
        };
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        map.insert(id.clone(), s);
        Ok(id)
    }

    /// The live session `id`, its expiry pushed on (`None`: unknown or expired, and forgotten).
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match map.get_mut(id) {
            Some(s) if s.expires > now => {
                s.expires = now + self.idle;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(id);
                None
            }
            None => None,
        }
    }

    /// Ends session `id`.
    pub fn close(&self, id: &str) -> Option<Session> {
        self.map
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
    }
}

/// The value of cookie `name` in a `Cookie` header.
pub fn cookie<'h>(header: Option<&'h str>, name: &str) -> Option<&'h str> {
    header?.split(';').find_map(|kv| {
        let (k, v) = kv.trim().split_once('=')?;
        (k == name).then_some(v)
    })
}

/// A `Set-Cookie` value: HttpOnly, SameSite=Strict, path `/`; `max_age` 0 deletes it.
pub fn set_cookie(name: &str, value: &str, max_age: Option<u64>) -> String {
    let age = max_age
        .map(|a| format!("; Max-Age={a}"))
        .unwrap_or_default();
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict{age}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_salt_and_check() {
        let a = hash_password("s3cret").unwrap();
        let b = hash_password("s3cret").unwrap();
        assert!(a.starts_with("$argon2id$"));
        assert_ne!(a, b, "a fresh salt each time");
        assert!(password_matches("s3cret", &a));
        assert!(!password_matches("s3cret ", &a));
        assert!(!password_matches("s3cret", "not a hash"));
    }

    #[test]
    fn sessions_expire_and_close() {
        let s = Sessions::new(Duration::from_millis(50));
        let id = s.open("li", "李", Role::Operator).unwrap();
        assert_eq!(id.len(), 64);
        let got = s.get(&id).unwrap();
        assert_eq!(got.login, "li");
        assert_eq!(got.csrf.len(), 64);
        assert!(s.get("nope").is_none());
        std::thread::sleep(Duration::from_millis(80));
        assert!(s.get(&id).is_none(), "expired");
        let id = s.open("li", "李", Role::Operator).unwrap();
        assert!(s.close(&id).is_some());
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn cookies_and_tokens() {
        let h = Some("a=1; cc_session=abc; cc_lang=en");
        assert_eq!(cookie(h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(h, "cc_lang"), Some("en"));
        assert_eq!(cookie(h, "x"), None);
        assert!(set_cookie("k", "v", None).contains("HttpOnly; SameSite=Strict"));
        assert!(tokens_equal("abc", "abc"));
        assert!(!tokens_equal("abc", "abd"));
        assert!(!tokens_equal("abc", "ab"));
    }
}
