//! Which policy modules may load: detached minisign signatures checked
//! against the operator's trusted public keys.
//!
//! With `[policies] trusted_keys` set, `NAME.wasm` loads only beside a
//! `NAME.wasm.minisig` that one of those keys made over exactly its bytes.
//! The bytes verified are the bytes compiled (one read), so the digest the
//! audit log records is that of the module the signature covers.

use std::fmt;
use std::io::Cursor;

/// The file beside a module that holds its signature.
pub const SIGNATURE_SUFFIX: &str = ".minisig";

/// The operator's trusted minisign public keys.
#[derive(Clone)]
pub struct TrustedKeys {
    keys: Vec<minisign::PublicKey>,
}

/// Why a trusted key from the configuration could not be read.
#[derive(Debug, thiserror::Error)]
#[error("trusted key {index} ({key:?}) is not a minisign public key: {reason}")]
pub struct BadTrustedKey {
    pub index: usize,
    pub key: String,
    pub reason: String,
}

/// Why a module's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("no signature: trusted keys are configured, so the module needs {0:?} beside it")]
    Missing(String),
    #[error("the signature file is not a minisign signature: {0}")]
    Malformed(String),
    #[error("signed by key {key_id}, which is not one of the trusted keys ({trusted})")]
    UntrustedKey { key_id: String, trusted: String },
    #[error(
        "the signature by key {key_id} does not match the module: it was changed after signing ({reason})"
    )]
    Mismatch { key_id: String, reason: String },
}

impl fmt::Debug for TrustedKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter().map(key_id)).finish()
    }
}

impl TrustedKeys {
    /// Parse keys as minisign prints them: the base64 line of a `.pub` file,
    /// or the whole file (its comment line is ignored).
    pub fn parse(keys: &[String]) -> Result<TrustedKeys, BadTrustedKey> {
        let keys = keys
            .iter()
            .enumerate()
            .map(|(index, key)| {
                let line = key
                    .lines()
                    .map(str::trim)
                    .rfind(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
                    .unwrap_or("");
                minisign::PublicKey::from_base64(line).map_err(|e| BadTrustedKey {
                    index,
                    key: key.clone(),
                    reason: e.to_string(),
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(TrustedKeys { keys })
    }

    /// The key ids (as minisign prints them), for messages.
    pub fn ids(&self) -> Vec<String> {
        self.keys.iter().map(key_id).collect()
    }

    /// Check `signature` (the `.minisig` file's text, if there is one) over
    /// `module`; on success, the id of the key that signed it.
    pub fn check(
        &self,
        module_name: &str,
        module: &[u8],
        signature: Option<&str>,
    ) -> Result<String, SignatureError> {
        let Some(signature) = signature else {
            return Err(SignatureError::Missing(format!(
                "{module_name}{SIGNATURE_SUFFIX}"
            )));
        };
        let signature = minisign::SignatureBox::from_string(signature)
            .map_err(|e| SignatureError::Malformed(e.to_string()))?;
        let signer = hex_id(signature.keynum());
        let Some(key) = self.keys.iter().find(|k| k.keynum() == signature.keynum()) else {
            return Err(SignatureError::UntrustedKey {
                key_id: signer,
                trusted: self.ids().join(", "),
            });
        };
        // Legacy (not prehashed) signatures are refused: minisign has made
        // prehashed ones by default since 0.10.
        minisign::verify(key, &signature, Cursor::new(module), true, false, false).map_err(|e| {
            SignatureError::Mismatch {
                key_id: signer.clone(),
                reason: e.to_string(),
            }
        })?;
        Ok(signer)
    }
}

fn key_id(key: &minisign::PublicKey) -> String {
    hex_id(key.keynum())
}

/// minisign prints a key id as the 8 bytes little-endian, in upper-case hex.
fn hex_id(keynum: &[u8]) -> String {
    keynum.iter().rev().map(|b| format!("{b:02X}")).collect()
}

/// Sign `module` with a minisign secret key (the text of its file), as
/// `minisign -S` would; `password` for an encrypted key. Returns the
/// `.minisig` file's text.
pub fn sign_module(
    module: &[u8],
    secret_key: &str,
    password: Option<String>,
    file_name: &str,
) -> Result<String, String> {
    let sk = match password {
        Some(password) => minisign::SecretKeyBox::from_string(secret_key)
            .and_then(|sk_box| minisign::SecretKey::from_box(sk_box, Some(password)))
            .map_err(|e| format!("cannot use the secret key: {e}"))?,
        None => unencrypted_secret_key(secret_key)?,
    };
    let trusted_comment = format!("timestamp:{}\tfile:{file_name}\thashed", unix_now());
    let signature = minisign::sign(None, &sk, Cursor::new(module), Some(&trusted_comment), None)
        .map_err(|e| format!("signing failed: {e}"))?;
    Ok(signature.into_string())
}

/// The minisign C tool (0.11, Debian's) writes a key made with `-W` with an
/// all-zero checksum and does not check it for unencrypted keys, which the
/// crate's `from_unencrypted_box` then refuses as corrupted. So an
/// unencrypted key is read field by field, as the tool reads it.
fn unencrypted_secret_key(text: &str) -> Result<minisign::SecretKey, String> {
    use base64::Engine as _;
    const KDF_NONE: [u8; 2] = [0, 0];
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
        .ok_or("not a minisign secret key: no key line")?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(line)
        .map_err(|e| format!("not a minisign secret key: {e}"))?;
    if bytes.get(2..4) != Some(&KDF_NONE[..]) {
        return Err("the secret key is encrypted: pass its password with --password-file".into());
    }
    minisign::SecretKey::from_bytes(&bytes).map_err(|e| format!("not a minisign secret key: {e}"))
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
