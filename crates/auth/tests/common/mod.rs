//! Helpers for the authenticator tests: CONNECT requests, tokens, keys, files.

#![allow(dead_code, unreachable_pub)]

use std::{
    path::Path,
    process::Command,
    time::{SystemTime, UNIX_EPOCH},
};

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use stompbox_broker::{
    AuthError, Authenticator, ConnectRequest, ConnectionInfo, Handshake, Principal, TransportKind,
};
use stompbox_codec::Headers;

/// The parts of a CONNECT request, owned, so that a [`ConnectRequest`] can borrow them.
#[derive(Debug)]
pub struct Connect {
    pub login: Option<String>,
    pub passcode: Option<String>,
    pub headers: Headers,
    pub connection: ConnectionInfo,
}

impl Connect {
    /// No login, no passcode, no headers, an in-memory connection.
    pub fn new() -> Self {
        Connect {
            login: None,
            passcode: None,
            headers: Headers::new(),
            connection: ConnectionInfo::memory(),
        }
    }

    /// With `login` and `passcode` headers.
    pub fn credentials(login: &str, passcode: &str) -> Self {
        Connect::new().login(login).passcode(passcode)
    }

    pub fn login(mut self, login: &str) -> Self {
        self.login = Some(login.into());
        self
    }

    pub fn passcode(mut self, passcode: &str) -> Self {
        self.passcode = Some(passcode.into());
        self
    }

    /// With one more CONNECT header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push(name.to_owned(), value.to_owned());
        self
    }

    /// Over WebSocket, upgraded by a request for `uri` with these HTTP headers.
    pub fn websocket(mut self, uri: &str, headers: &[(&'static str, &str)]) -> Self {
        let mut handshake = Handshake {
            uri: uri.parse().unwrap(),
            ..Handshake::default()
        };
        for (name, value) in headers {
            handshake.headers.append(*name, value.parse().unwrap());
        }
        self.connection = ConnectionInfo {
            peer: Some("127.0.0.1:50000".parse().unwrap()),
            transport: TransportKind::WebSocket,
            handshake: Some(handshake),
            tls: None,
            accepted: None,
        };
        self
    }

    pub fn request(&self) -> ConnectRequest<'_> {
        ConnectRequest {
            login: self.login.as_deref(),
            passcode: self.passcode.as_deref(),
            host: Some("/"),
            headers: &self.headers,
            connection: &self.connection,
        }
    }

    /// Runs `auth` on this request.
    pub async fn run(&self, auth: &impl Authenticator) -> Result<Option<Principal>, AuthError> {
        auth.authenticate(self.request()).await
    }

    /// Runs `auth` and expects a principal.
    pub async fn admit(&self, auth: &impl Authenticator) -> Principal {
        match self.run(auth).await {
            Ok(Some(p)) => p,
            other => panic!("expected a principal, got {other:?}"),
        }
    }

    /// Runs `auth` and expects a refusal; returns its message.
    pub async fn refuse(&self, auth: &impl Authenticator) -> String {
        match self.run(auth).await {
            Err(e) => e.message,
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Claims for `sub`, expiring in an hour.
pub fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600})
}

/// `claims` signed with HS256 and `secret`.
pub fn hs256(claims: &Value, secret: &str) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), claims, &key).unwrap()
}

/// `claims` signed with `alg`, `key`, and `kid` in the header.
pub fn signed(alg: Algorithm, key: &EncodingKey, kid: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, key).unwrap()
}

/// base64url without padding, for hand-made tokens.
pub fn b64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A key pair as PEM: (private, public).
pub struct KeyPair {
    pub private_pem: String,
    pub public_pem: String,
}

/// A fresh RSA 2048 key pair, made by `openssl` (fast, and no RSA key generation of our own).
pub fn rsa_key_pair(dir: &Path) -> KeyPair {
    let private = dir.join("rsa-private.pem");
    let public = dir.join("rsa-public.pem");
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .output()
            .expect("the RSA tests need the `openssl` command");
        assert!(status.status.success(), "openssl {args:?}: {status:?}");
    };
    let private_path = private.to_str().unwrap();
    let public_path = public.to_str().unwrap();
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        private_path,
    ]);
    run(&["pkey", "-in", private_path, "-pubout", "-out", public_path]);
    KeyPair {
        private_pem: std::fs::read_to_string(private).unwrap(),
        public_pem: std::fs::read_to_string(public).unwrap(),
    }
}

/// A fresh ECDSA P-256 key pair.
pub fn ec_key_pair() -> KeyPair {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    KeyPair {
        private_pem: pair.serialize_pem(),
        public_pem: pair.public_key_pem(),
    }
}

/// A fresh Ed25519 key pair.
pub fn ed_key_pair() -> KeyPair {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    KeyPair {
        private_pem: pair.serialize_pem(),
        public_pem: pair.public_key_pem(),
    }
}
