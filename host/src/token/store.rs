//! The key store: the active signing key and the retired keys still
//! published, in memory behind an atomic pointer swap, and on disk in one
//! directory:
//!
//! - `<kid>.der`: the active private key, PKCS#8 DER, mode 0600. A retired
//!   key never signs again, so its private key file is deleted at rotation.
//! - `keys.json`: the manifest, the source of truth: which key is active, and
//!   each retired key's public members and retirement time. Rewritten
//!   atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! A retired key stays in the JWKS until `retired_at + max_token_ttl`: no
//! token it signed can outlive that, since minting refuses longer lifetimes.
//! Several replicas may share one key directory (a shared volume, or a
//! Kubernetes Secret mounted read-only): each polls the manifest
//! ([`KeyStore::reload_if_changed`]) and adopts a key set another replica
//! (or `airlock keys rotate`) wrote. Tokens signed with the previous key
//! during the lag still verify: it stays published as retired.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};

use super::error::TokenError;
use super::jwks::{PublicKey, jwk_set};
use super::keys::{Algorithm, SigningKey};

const MANIFEST: &str = "keys.json";
const MANIFEST_FORMAT: u32 = 1;
const KEY_SUFFIX: &str = ".der";
const DIR_MODE: u32 = 0o700;
const FILE_MODE: u32 = 0o600;

/// Signing keys: one active, plus retired ones still published. Minting
/// reads the current set without locking; rotation swaps in a new set.
pub struct KeyStore {
    algorithm: Algorithm,
    /// `max_token_ttl` rounded up to whole seconds.
    max_ttl_s: u64,
    dir: Option<PathBuf>,
    keys: ArcSwap<KeySet>,
    /// Serialises rotation and pruning (readers never take it).
    changes: Mutex<()>,
}

pub(crate) struct KeySet {
    pub(crate) active: Arc<SigningKey>,
    pub(crate) retired: Vec<Retired>,
}

#[derive(Debug, Clone)]
pub(crate) struct Retired {
    pub(crate) key: PublicKey,
    pub(crate) retired_at: u64,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.keys.load();
        f.debug_struct("KeyStore")
            .field("algorithm", &self.algorithm)
            .field("active_kid", &keys.active.kid())
            .field("retired", &keys.retired.len())
            .field("max_token_ttl_s", &self.max_ttl_s)
            .field("dir", &self.dir)
            .finish()
    }
}

impl KeyStore {
    /// Load the signing keys from `dir` (created with 0700 if absent),
    /// generating a first key (PKCS#8 DER file, mode 0600) if there is none.
    /// `max_token_ttl` bounds how long a retired key stays published, and
    /// the lifetime of every token minted.
    ///
    /// If the stored active key is not of `algorithm`, a key of `algorithm`
    /// replaces it (a rotation: the old key stays published for its window).
    /// The directory and key files must not be accessible by group or others.
    pub fn open(dir: &Path, algorithm: Algorithm, max_token_ttl: Duration) -> Result<KeyStore, TokenError> {
        super::verify::install_crypto_provider();
        prepare_dir(dir)?;
        let now = unix_now();
        let (keys, fresh) = match read_manifest(dir)? {
            Some(manifest) => (load(dir, manifest)?, false),
            None => {
                let (key, der) = SigningKey::generate(algorithm)?;
                let keys = KeySet {
                    active: Arc::new(key),
                    retired: Vec::new(),
                };
                write_private(dir, &key_file(keys.active.kid()), &der)?;
                write_manifest(dir, &keys)?;
                tracing::info!(dir = %dir.display(), kid = keys.active.kid(), %algorithm, "generated a signing key");
                (keys, true)
            }
        };
        let store = KeyStore {
            algorithm,
            max_ttl_s: ceil_secs(max_token_ttl),
            dir: Some(dir.to_path_buf()),
            keys: ArcSwap::from_pointee(keys),
            changes: Mutex::new(()),
        };
        if !fresh {
            store.prune_at(now)?;
            let stored = store.keys.load().active.public().alg;
            if stored != algorithm {
                tracing::info!(%stored, configured = %algorithm, "signing algorithm changed: rotating");
                store.rotate_at(now)?;
            }
        }
        warn_about_strays(dir, store.keys.load().active.kid());
        Ok(store)
    }

    /// Keys only in memory (tests, benchmarks).
    pub fn ephemeral(algorithm: Algorithm, max_token_ttl: Duration) -> Result<KeyStore, TokenError> {
        super::verify::install_crypto_provider();
        let (key, _) = SigningKey::generate(algorithm)?;
        Ok(KeyStore {
            algorithm,
            max_ttl_s: ceil_secs(max_token_ttl),
            dir: None,
            keys: ArcSwap::from_pointee(KeySet {
                active: Arc::new(key),
                retired: Vec::new(),
            }),
            changes: Mutex::new(()),
        })
    }

    /// Make a new key the signing key; the old one is retired: still
    /// published in the JWKS until `retired_at + max_token_ttl` has passed,
    /// then dropped. Returns the new kid. Persisted (new key file and
    /// manifest) before it takes effect; the old private key file is deleted.
    /// Safe while other threads mint: they finish with the key they started on.
    pub fn rotate(&self) -> Result<String, TokenError> {
        self.rotate_at(unix_now())
    }

    /// Drop retired keys whose window has passed, from memory and from the
    /// manifest; returns how many. [`KeyStore::jwks`] already leaves them
    /// out, so this only tidies up; `open` and `rotate` call it too.
    pub fn prune(&self) -> Result<usize, TokenError> {
        self.prune_at(unix_now())
    }

    /// Adopt the key set in the directory if another process changed it
    /// (rotated, pruned): `Ok(true)` when the set in use was replaced. A
    /// manifest that cannot be read or loaded leaves the current set in use.
    pub fn reload_if_changed(&self) -> Result<bool, TokenError> {
        let Some(dir) = &self.dir else {
            return Ok(false);
        };
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(manifest) = read_manifest(dir)? else {
            return Ok(false);
        };
        let current = self.keys.load();
        let same = manifest.active.kid == current.active.kid()
            && manifest.retired.len() == current.retired.len()
            && manifest
                .retired
                .iter()
                .zip(&current.retired)
                .all(|(entry, r)| entry.kid == r.key.kid && entry.retired_at == r.retired_at);
        if same {
            return Ok(false);
        }
        let next = load(dir, manifest)?;
        tracing::info!(
            kid = next.active.kid(),
            previous = current.active.kid(),
            "adopted the signing keys written by another process"
        );
        self.keys.store(Arc::new(next));
        Ok(true)
    }

    /// The kid of the key new tokens are signed with.
    pub fn active_kid(&self) -> String {
        self.keys.load().active.kid().to_owned()
    }

    /// The configured signing algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The longest token lifetime this store mints, in whole seconds.
    pub fn max_token_ttl(&self) -> Duration {
        Duration::from_secs(self.max_ttl_s)
    }

    /// RFC 7517 JWK Set of every published key: the active key first, then
    /// retired keys still inside their window.
    pub fn jwks(&self) -> serde_json::Value {
        self.jwks_at(unix_now())
    }

    pub(super) fn current(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.keys.load()
    }

    pub(super) fn jwks_at(&self, now: u64) -> serde_json::Value {
        let keys = self.keys.load();
        let retired = keys
            .retired
            .iter()
            .filter(|r| self.published(r, now))
            .map(|r| &r.key);
        jwk_set(std::iter::once(keys.active.public()).chain(retired))
    }

    fn published(&self, retired: &Retired, now: u64) -> bool {
        now <= retired.retired_at.saturating_add(self.max_ttl_s)
    }

    pub(super) fn rotate_at(&self, now: u64) -> Result<String, TokenError> {
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load_full();
        let (key, der) = SigningKey::generate(self.algorithm)?;
        let mut retired: Vec<Retired> = current
            .retired
            .iter()
            .filter(|r| self.published(r, now))
            .cloned()
            .collect();
        retired.push(Retired {
            key: current.active.public().clone(),
            retired_at: now,
        });
        let next = KeySet {
            active: Arc::new(key),
            retired,
        };
        let kid = next.active.kid().to_owned();
        if let Some(dir) = &self.dir {
            let new_file = key_file(&kid);
            write_private(dir, &new_file, &der)?;
            if let Err(e) = write_manifest(dir, &next) {
                let _ = fs::remove_file(dir.join(&new_file));
                return Err(e);
            }
            let old_file = dir.join(key_file(current.active.kid()));
            if let Err(e) = fs::remove_file(&old_file) {
                tracing::warn!(path = %old_file.display(), error = %e, "cannot delete a retired private key");
            }
        }
        self.keys.store(Arc::new(next));
        tracing::info!(kid, retired = current.active.kid(), "rotated the signing key");
        Ok(kid)
    }

    pub(super) fn prune_at(&self, now: u64) -> Result<usize, TokenError> {
        let _changing = self.changes.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.keys.load_full();
        let kept: Vec<Retired> = current
            .retired
            .iter()
            .filter(|r| self.published(r, now))
            .cloned()
            .collect();
        let dropped = current.retired.len() - kept.len();
        if dropped == 0 {
            return Ok(0);
        }
        let next = KeySet {
            active: Arc::clone(&current.active),
            retired: kept,
        };
        if let Some(dir) = &self.dir {
            write_manifest(dir, &next)?;
        }
        self.keys.store(Arc::new(next));
        tracing::info!(dropped, "dropped retired signing keys past their window");
        Ok(dropped)
    }
}

pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn key_file(kid: &str) -> String {
    format!("{kid}{KEY_SUFFIX}")
}

/// A kid we generate: 43 base64url characters (also safe as a file name).
fn is_kid(s: &str) -> bool {
    s.len() == 43
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

// --- the manifest ---

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    format: u32,
    active: ActiveEntry,
    #[serde(default)]
    retired: Vec<RetiredEntry>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActiveEntry {
    kid: String,
    alg: Algorithm,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetiredEntry {
    kid: String,
    alg: Algorithm,
    x: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y: Option<String>,
    retired_at: u64,
}

fn read_manifest(dir: &Path) -> Result<Option<Manifest>, TokenError> {
    let path = dir.join(MANIFEST);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(TokenError::io("read", path, e)),
    };
    let manifest: Manifest = serde_json::from_str(&text).map_err(|e| TokenError::BadManifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    if manifest.format != MANIFEST_FORMAT {
        return Err(TokenError::BadManifest {
            path,
            reason: format!(
                "format {} is not supported (expected {MANIFEST_FORMAT})",
                manifest.format
            ),
        });
    }
    Ok(Some(manifest))
}

fn load(dir: &Path, manifest: Manifest) -> Result<KeySet, TokenError> {
    let manifest_path = dir.join(MANIFEST);
    let bad = |reason: String| TokenError::BadManifest {
        path: manifest_path.clone(),
        reason,
    };
    let kid = &manifest.active.kid;
    if !is_kid(kid) {
        return Err(bad(format!("active kid {kid:?} is not a key thumbprint")));
    }
    let path = dir.join(key_file(kid));
    let der = read_private(&path)?;
    let alg = manifest.active.alg;
    let active = SigningKey::from_pkcs8(alg, &der).map_err(|e| TokenError::BadKeyFile {
        path: path.clone(),
        algorithm: alg.as_str(),
        detail: format!(": {e}"),
    })?;
    if active.kid() != kid {
        return Err(TokenError::BadKeyFile {
            path,
            algorithm: alg.as_str(),
            detail: format!(" with kid `{kid}` (it holds key `{}`)", active.kid()),
        });
    }
    let mut retired = Vec::with_capacity(manifest.retired.len());
    for entry in manifest.retired {
        let key = PublicKey::from_members(entry.alg, &entry.x, entry.y.as_deref())
            .map_err(|e| bad(format!("retired key `{}`: {e}", entry.kid)))?;
        if key.kid != entry.kid {
            return Err(bad(format!(
                "retired key `{}` has the thumbprint `{}`",
                entry.kid, key.kid
            )));
        }
        retired.push(Retired {
            key,
            retired_at: entry.retired_at,
        });
    }
    Ok(KeySet {
        active: Arc::new(active),
        retired,
    })
}

fn write_manifest(dir: &Path, keys: &KeySet) -> Result<(), TokenError> {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        active: ActiveEntry {
            kid: keys.active.kid().to_owned(),
            alg: keys.active.public().alg,
        },
        retired: keys
            .retired
            .iter()
            .map(|r| RetiredEntry {
                kid: r.key.kid.clone(),
                alg: r.key.alg,
                x: r.key.x.clone(),
                y: r.key.y.clone(),
                retired_at: r.retired_at,
            })
            .collect(),
    };
    let mut text = serde_json::to_vec_pretty(&manifest).map_err(|e| TokenError::BadManifest {
        path: dir.join(MANIFEST),
        reason: format!("cannot encode: {e}"),
    })?;
    text.push(b'\n');
    write_private(dir, MANIFEST, &text)
}

// --- files ---

/// Create `dir` (0700) if absent; refuse one that group or others can use.
fn prepare_dir(dir: &Path) -> Result<(), TokenError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder
        .create(dir)
        .map_err(|e| TokenError::io("create the key directory", dir, e))?;
    let meta = fs::metadata(dir).map_err(|e| TokenError::io("inspect the key directory", dir, e))?;
    check_private(dir, &meta, DIR_MODE)
}

#[cfg(unix)]
fn check_private(path: &Path, meta: &fs::Metadata, expected: u32) -> Result<(), TokenError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(TokenError::InsecurePermissions {
            path: path.to_path_buf(),
            mode,
            expected,
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_private(_: &Path, _: &fs::Metadata, _: u32) -> Result<(), TokenError> {
    Ok(())
}

fn read_private(path: &Path) -> Result<Vec<u8>, TokenError> {
    let mut file = File::open(path).map_err(|e| TokenError::io("open the key file", path, e))?;
    let meta = file
        .metadata()
        .map_err(|e| TokenError::io("inspect the key file", path, e))?;
    check_private(path, &meta, FILE_MODE)?;
    let mut der = Vec::with_capacity(256);
    file.read_to_end(&mut der)
        .map_err(|e| TokenError::io("read the key file", path, e))?;
    Ok(der)
}

/// Atomically replace `dir/name` with `bytes`, readable by the owner only.
fn write_private(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), TokenError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dest = dir.join(name);
    // A leftover of a crash mid-write: ours, and never referenced.
    let _ = fs::remove_file(&tmp);
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    let mut file = options
        .open(&tmp)
        .map_err(|e| TokenError::io("create", &tmp, e))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| TokenError::io("write", &tmp, e))?;
    drop(file);
    fs::rename(&tmp, &dest).map_err(|e| TokenError::io("rename into place", &dest, e))?;
    // Make the rename itself durable.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| TokenError::io("sync the key directory", dir, e))
}

/// Key files the manifest does not reference are leftovers of a crash in
/// the middle of a rotation: never published, never used. Say so.
fn warn_about_strays(dir: &Path, active_kid: &str) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(KEY_SUFFIX) && name != key_file(active_kid) {
            tracing::warn!(
                path = %entry.path().display(),
                "private key file not referenced by keys.json (never used to sign); delete it"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(300);

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn kids(jwks: &serde_json::Value) -> Vec<String> {
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn open_persists_the_key_and_reopens_it() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let kid = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap().active_kid();
        let again = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        assert_eq!(again.active_kid(), kid);
        assert_eq!(kids(&again.jwks()), vec![kid.clone()]);
        assert!(dir.join(format!("{kid}.der")).is_file());
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir), 0o700);
            assert_eq!(mode(&dir.join(format!("{kid}.der"))), 0o600);
            assert_eq!(mode(&dir.join(MANIFEST)), 0o600);
        }
    }

    #[test]
    fn the_key_file_is_pkcs8_der_of_the_active_key() {
        let tmp = tempfile::tempdir().unwrap();
        for alg in [Algorithm::Es256, Algorithm::EdDsa] {
            let dir = tmp.path().join(alg.as_str());
            let store = KeyStore::open(&dir, alg, TTL).unwrap();
            let der = fs::read(dir.join(key_file(&store.active_kid()))).unwrap();
            assert_eq!(
                SigningKey::from_pkcs8(alg, &der).unwrap().kid(),
                store.active_kid()
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_directory_or_key_file_open_to_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let kid = KeyStore::open(&dir, Algorithm::EdDsa, TTL).unwrap().active_kid();

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        let err = KeyStore::open(&dir, Algorithm::EdDsa, TTL).unwrap_err();
        assert!(
            matches!(err, TokenError::InsecurePermissions { mode: 0o755, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 700"), "{err}");
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700)).unwrap();

        let file = dir.join(key_file(&kid));
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        let err = KeyStore::open(&dir, Algorithm::EdDsa, TTL).unwrap_err();
        assert!(
            matches!(err, TokenError::InsecurePermissions { mode: 0o644, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("chmod 600"), "{err}");
    }

    #[test]
    fn rotation_is_persisted_with_its_retirement_time() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let store = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        let old = store.active_kid();
        // Reopening prunes by the real clock: retire "now".
        let t = unix_now();
        let new = store.rotate_at(t).unwrap();
        assert_ne!(old, new);
        assert_eq!(store.active_kid(), new);
        // The retired private key is gone at once; its public key is published.
        assert!(!dir.join(key_file(&old)).exists());
        assert!(dir.join(key_file(&new)).is_file());
        assert_eq!(kids(&store.jwks_at(t + 300)), vec![new.clone(), old.clone()]);
        drop(store);

        let reopened = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        assert_eq!(reopened.active_kid(), new);
        // The retirement time survived the restart: the window is the same.
        assert_eq!(kids(&reopened.jwks_at(t + 300)), vec![new.clone(), old]);
        assert_eq!(kids(&reopened.jwks_at(t + 301)), vec![new]);
    }

    #[test]
    fn a_replica_sharing_the_directory_adopts_another_replicas_rotation() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let a = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        let b = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        let first = a.active_kid();
        assert_eq!(
            b.active_kid(),
            first,
            "the second replica uses the first key, not one of its own"
        );
        assert!(!b.reload_if_changed().unwrap(), "nothing changed yet");
        let second = a.rotate().unwrap();
        assert_eq!(b.active_kid(), first, "not seen before the poll");
        assert!(b.reload_if_changed().unwrap());
        assert_eq!(b.active_kid(), second);
        assert_eq!(
            kids(&b.jwks()),
            vec![second.clone(), first],
            "the old key stays published"
        );
        assert!(!b.reload_if_changed().unwrap());
        // A damaged manifest is an error and leaves the keys in use.
        fs::write(dir.join(MANIFEST), "{").unwrap();
        assert!(b.reload_if_changed().is_err());
        assert_eq!(b.active_kid(), second);
    }

    #[test]
    fn a_retired_key_is_published_for_exactly_its_window_then_dropped_from_disk() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let store = KeyStore::open(&dir, Algorithm::EdDsa, Duration::from_secs(1)).unwrap();
        let old = store.active_kid();
        let new = store.rotate_at(5_000).unwrap();
        assert_eq!(kids(&store.jwks_at(5_000)), vec![new.clone(), old.clone()]);
        assert_eq!(kids(&store.jwks_at(5_001)), vec![new.clone(), old.clone()]);
        assert_eq!(kids(&store.jwks_at(5_002)), vec![new.clone()]);

        let manifest = fs::read_to_string(dir.join(MANIFEST)).unwrap();
        assert!(manifest.contains(&old));
        assert_eq!(store.prune_at(5_001).unwrap(), 0);
        assert_eq!(store.prune_at(5_002).unwrap(), 1);
        let manifest = fs::read_to_string(dir.join(MANIFEST)).unwrap();
        assert!(!manifest.contains(&old), "{manifest}");
        assert!(
            fs::read_dir(&dir)
                .unwrap()
                .all(|e| !e.unwrap().file_name().to_string_lossy().contains(&old))
        );
    }

    #[test]
    fn a_sub_second_window_rounds_up() {
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_millis(1500)).unwrap();
        assert_eq!(store.max_token_ttl(), Duration::from_secs(2));
    }

    #[test]
    fn rotation_prunes_keys_past_their_window() {
        let store = KeyStore::ephemeral(Algorithm::Es256, Duration::from_secs(10)).unwrap();
        let first = store.active_kid();
        let second = store.rotate_at(100).unwrap();
        let third = store.rotate_at(200).unwrap();
        let jwks = store.jwks_at(200);
        assert_eq!(kids(&jwks), vec![third, second]);
        assert!(!jwks.to_string().contains(&first));
        assert_eq!(store.current().retired.len(), 1);
    }

    #[test]
    fn changing_the_algorithm_rotates_and_keeps_the_old_key_published() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let old = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap().active_kid();
        let store = KeyStore::open(&dir, Algorithm::EdDsa, TTL).unwrap();
        assert_ne!(store.active_kid(), old);
        let jwks = store.jwks();
        assert_eq!(kids(&jwks), vec![store.active_kid(), old]);
        assert_eq!(jwks["keys"][0]["alg"], "EdDSA");
        assert_eq!(jwks["keys"][1]["alg"], "ES256");
    }

    #[test]
    fn a_tampered_manifest_is_refused_with_its_path() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap();
        let manifest = dir.join(MANIFEST);
        let text = fs::read_to_string(&manifest).unwrap();

        let mut doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        doc["active"]["kid"] = "../../../etc/passwd".into();
        fs::write(&manifest, doc.to_string()).unwrap();
        let err = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap_err();
        assert!(matches!(err, TokenError::BadManifest { .. }), "{err}");
        assert!(err.to_string().contains("keys.json"), "{err}");

        fs::write(&manifest, "{").unwrap();
        let err = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap_err();
        assert!(matches!(err, TokenError::BadManifest { .. }), "{err}");
    }

    #[test]
    fn a_key_file_that_does_not_match_its_kid_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("keys");
        let kid = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap().active_kid();
        let (_, other) = SigningKey::generate(Algorithm::Es256).unwrap();
        write_private(&dir, &key_file(&kid), &other).unwrap();
        let err = KeyStore::open(&dir, Algorithm::Es256, TTL).unwrap_err();
        assert!(matches!(err, TokenError::BadKeyFile { .. }), "{err}");
        assert!(err.to_string().contains(&kid), "{err}");
    }

    #[test]
    fn keystore_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<KeyStore>();
    }
}
