//! Roles → policy versions, with atomic hot reload.
//!
//! The registry holds one immutable map from role to the policy version
//! that decides for it. A reload builds the new version completely (read,
//! validate, compile, `describe()`) before swapping a new map in, so a module
//! that fails never replaces one that works, and evaluations already running
//! finish on the version they started with (they hold an `Arc` to it).
//!
//! Policy files are read through a [`PolicyDir`], a cap-std capability for
//! one directory: no name from config, the watcher or an operator can reach
//! outside it.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use cap_std::ambient_authority;

use super::engine::{Engine, LoadError, PolicyInfo, PolicyModule};
use super::limits::Limits;
use super::trust::{SIGNATURE_SUFFIX, SignatureError, TrustedKeys};

/// A signature file is a few hundred bytes; more is not one.
const MAX_SIGNATURE_BYTES: u64 = 64 * 1024;

/// Why a policy could not be (re)loaded.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("policy directory {path}: {source}")]
    OpenDir { path: PathBuf, source: std::io::Error },
    #[error("policy name {0:?} is not a plain relative path inside the policy directory")]
    BadName(String),
    #[error("policy {name:?} resolves outside the policy directory (symlink or `..`): refused")]
    Escape { name: String },
    #[error("policy {name:?}: {source}")]
    Read { name: String, source: std::io::Error },
    #[error("policy {name:?}: {source}")]
    Load { name: String, source: LoadError },
    #[error("policy {name:?} refused: {source}")]
    Signature { name: String, source: SignatureError },
    #[error("no role {0:?} is configured")]
    UnknownRole(String),
    #[error("role {0:?} has no candidate version (set one with `airlock policy shadow`)")]
    NoCandidate(String),
    #[error("policy {name:?} changed on disk since it became the candidate: shadow it again first")]
    CandidateChanged { name: String },
    #[error("policy {name:?}: writing it in the policy directory: {source}")]
    Write { name: String, source: std::io::Error },
    #[error("watching the policy directory: {0}")]
    Watch(String),
}

/// A directory of policy components, opened as a capability.
pub struct PolicyDir {
    dir: cap_std::fs::Dir,
    path: PathBuf,
    /// When set, a module is read only with a valid signature beside it.
    trusted: Option<TrustedKeys>,
}

impl PolicyDir {
    pub fn open(path: impl AsRef<Path>) -> Result<Self, RegistryError> {
        let path = path.as_ref().to_path_buf();
        let dir = cap_std::fs::Dir::open_ambient_dir(&path, ambient_authority()).map_err(|source| {
            RegistryError::OpenDir {
                path: path.clone(),
                source,
            }
        })?;
        Ok(PolicyDir {
            dir,
            path,
            trusted: None,
        })
    }

    /// Read modules only with a detached minisign signature by one of `keys`
    /// beside them (`NAME.minisig`).
    pub fn trusting(self, keys: Option<TrustedKeys>) -> Self {
        PolicyDir {
            trusted: keys,
            ..self
        }
    }

    /// Read the module `name` and, when keys are trusted, check its signature
    /// over exactly the bytes returned (the bytes that will be compiled).
    pub fn read_module(&self, name: &str, max_bytes: u64) -> Result<Vec<u8>, RegistryError> {
        let bytes = self.read(name, max_bytes)?;
        let Some(keys) = &self.trusted else {
            return Ok(bytes);
        };
        let signature_name = format!("{name}{SIGNATURE_SUFFIX}");
        let signature = match self.read(&signature_name, MAX_SIGNATURE_BYTES) {
            Ok(text) => Some(String::from_utf8_lossy(&text).into_owned()),
            Err(RegistryError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        let signer =
            keys.check(name, &bytes, signature.as_deref())
                .map_err(|source| RegistryError::Signature {
                    name: name.to_string(),
                    source,
                })?;
        tracing::info!(file = name, key = %signer, "policy signature verified");
        Ok(bytes)
    }

    /// Write `bytes` as `name`, atomically: a reader sees the old file or
    /// the new one, never a part.
    fn replace(&self, name: &str, bytes: &[u8]) -> Result<(), RegistryError> {
        let write_err = |source| RegistryError::Write {
            name: name.to_string(),
            source,
        };
        let temporary = format!("{name}.promoting");
        self.dir.write(&temporary, bytes).map_err(write_err)?;
        self.dir.rename(&temporary, &self.dir, name).map_err(write_err)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read `name`, refusing anything that is not a plain relative path
    /// below this directory and anything over `max_bytes`.
    pub fn read(&self, name: &str, max_bytes: u64) -> Result<Vec<u8>, RegistryError> {
        let relative = Path::new(name);
        let plain = !name.is_empty()
            && !name.contains('\0')
            && !name.contains('\\')
            && relative
                .components()
                .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
        if !plain {
            return Err(RegistryError::BadName(name.to_string()));
        }
        let read_err = |source: std::io::Error| {
            // cap-std reports a path that would leave the directory (through
            // a symlink) as PermissionDenied with this message.
            if source.kind() == std::io::ErrorKind::PermissionDenied && source.to_string().contains("outside")
            {
                RegistryError::Escape {
                    name: name.to_string(),
                }
            } else {
                RegistryError::Read {
                    name: name.to_string(),
                    source,
                }
            }
        };
        let file = self.dir.open(relative).map_err(read_err)?;
        let size = file.metadata().map_err(read_err)?.len();
        if size > max_bytes {
            return Err(RegistryError::Load {
                name: name.to_string(),
                source: LoadError::TooLarge {
                    size,
                    limit: max_bytes,
                },
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(max_bytes + 1)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        if bytes.len() as u64 > max_bytes {
            return Err(RegistryError::Load {
                name: name.to_string(),
                source: LoadError::TooLarge {
                    size: bytes.len() as u64,
                    limit: max_bytes,
                },
            });
        }
        Ok(bytes)
    }
}

/// Which policy file decides for a role, and under which limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleBinding {
    pub role: String,
    /// File name relative to the policy directory.
    pub module: String,
    pub limits: Limits,
}

/// The policy version serving one role, and the candidate it is shadowed by.
pub struct RolePolicy {
    pub module: Arc<PolicyModule>,
    pub binding: RoleBinding,
    pub shadow: Option<Arc<Candidate>>,
}

impl RolePolicy {
    /// The same enforced version, with `shadow` as its candidate.
    fn shadowed_by(&self, shadow: Option<Arc<Candidate>>) -> RolePolicy {
        RolePolicy {
            module: self.module.clone(),
            binding: self.binding.clone(),
            shadow,
        }
    }
}

/// A version every decision of a role is also evaluated by, without
/// effect, until it is promoted or cleared.
pub struct Candidate {
    pub module: Arc<PolicyModule>,
    /// Its file in the policy directory.
    pub file: String,
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// The file has the digest already loaded.
    Unchanged {
        digest: String,
    },
    Replaced {
        from: String,
        to: String,
    },
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("dir", &self.dir.path)
            .field("roles", &self.list())
            .finish()
    }
}

pub struct Registry {
    engine: Engine,
    dir: PolicyDir,
    roles: ArcSwap<HashMap<String, Arc<RolePolicy>>>,
    /// Serialises reloads; readers never take it.
    reloading: Mutex<()>,
    metrics: Option<Arc<crate::metrics::Metrics>>,
}

impl Registry {
    /// Load every role's policy. Fails if any does not load: a host must not
    /// start with a role it cannot decide for.
    pub fn new(engine: Engine, dir: PolicyDir, bindings: Vec<RoleBinding>) -> Result<Self, RegistryError> {
        let mut roles = HashMap::new();
        for binding in bindings {
            let module = load(&engine, &dir, &binding)?;
            tracing::info!(role = %binding.role, file = %binding.module, digest = %module.info().digest, "policy loaded");
            roles.insert(
                binding.role.clone(),
                Arc::new(RolePolicy {
                    module: Arc::new(module),
                    binding,
                    shadow: None,
                }),
            );
        }
        Ok(Registry {
            engine,
            dir,
            roles: ArcSwap::from_pointee(roles),
            reloading: Mutex::new(()),
            metrics: None,
        })
    }

    /// The version deciding for `role`, or why there is none.
    fn configured(&self, role: &str) -> Result<Arc<RolePolicy>, RegistryError> {
        self.get(role)
            .ok_or_else(|| RegistryError::UnknownRole(role.to_string()))
    }

    /// The version deciding for `role` right now.
    pub fn get(&self, role: &str) -> Option<Arc<RolePolicy>> {
        self.roles.load().get(role).cloned()
    }

    /// The candidate version of `role`, if it has one.
    pub fn candidate(&self, role: &str) -> Option<PolicyInfo> {
        let policy = self.get(role)?;
        policy.shadow.as_ref().map(|c| c.module.info().clone())
    }

    /// Every role with the version serving it, sorted by role.
    pub fn list(&self) -> Vec<(String, PolicyInfo)> {
        let mut all: Vec<_> = self
            .roles
            .load()
            .iter()
            .map(|(r, p)| (r.clone(), p.module.info().clone()))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Count each reload's result into `metrics`.
    pub fn observed(self, metrics: Arc<crate::metrics::Metrics>) -> Registry {
        Registry {
            metrics: Some(metrics),
            ..self
        }
    }

    /// Reload one role's policy from its file.
    pub fn reload_role(&self, role: &str) -> Result<ReloadOutcome, RegistryError> {
        let result = self.reload_role_unobserved(role);
        if let Some(metrics) = &self.metrics {
            metrics.reload(match &result {
                Ok(ReloadOutcome::Replaced { .. }) => "replaced",
                Ok(ReloadOutcome::Unchanged { .. }) => "unchanged",
                Err(_) => "rejected",
            });
        }
        result
    }

    fn reload_role_unobserved(&self, role: &str) -> Result<ReloadOutcome, RegistryError> {
        let _serial = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.configured(role)?;
        let binding = current.binding.clone();
        let old_digest = current.module.info().digest.clone();
        let module = match load(&self.engine, &self.dir, &binding) {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(role, file = %binding.module, error = %e, "policy rejected; the loaded version keeps serving");
                return Err(e);
            }
        };
        let new_digest = module.info().digest.clone();
        if new_digest == old_digest {
            return Ok(ReloadOutcome::Unchanged { digest: new_digest });
        }
        self.swap(
            role,
            RolePolicy {
                module: Arc::new(module),
                binding,
                shadow: current.shadow.clone(),
            },
        );
        tracing::info!(role, from = %old_digest, to = %new_digest, "policy replaced");
        Ok(ReloadOutcome::Replaced {
            from: old_digest,
            to: new_digest,
        })
    }

    fn swap(&self, role: &str, policy: RolePolicy) {
        let replacement = Arc::new(policy);
        self.roles.rcu(|roles| {
            let mut next = HashMap::clone(roles);
            next.insert(role.to_string(), replacement.clone());
            next
        });
    }

    /// Make the module `file` (in the policy directory, signed when keys
    /// are trusted) the candidate of `role`, replacing any other.
    pub fn shadow(&self, role: &str, file: &str) -> Result<PolicyInfo, RegistryError> {
        let _serial = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.configured(role)?;
        let binding = RoleBinding {
            module: file.to_string(),
            ..current.binding.clone()
        };
        let module = load(&self.engine, &self.dir, &binding)?;
        let info = module.info().clone();
        tracing::info!(role, file, digest = %info.digest, "candidate set");
        self.swap(
            role,
            current.shadowed_by(Some(Arc::new(Candidate {
                module: Arc::new(module),
                file: file.to_string(),
            }))),
        );
        Ok(info)
    }

    /// Drop `role`'s candidate; the one dropped, if any.
    pub fn clear_shadow(&self, role: &str) -> Result<Option<PolicyInfo>, RegistryError> {
        let _serial = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.configured(role)?;
        let Some(candidate) = &current.shadow else {
            return Ok(None);
        };
        let info = candidate.module.info().clone();
        self.swap(role, current.shadowed_by(None));
        Ok(Some(info))
    }

    /// Make `role`'s candidate the enforced version: its file (and
    /// signature) is written over the role's own, atomically, so a restart
    /// or reload keeps it, then it replaces the serving version in one swap.
    pub fn promote(&self, role: &str) -> Result<ReloadOutcome, RegistryError> {
        let _serial = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.configured(role)?;
        let candidate = current
            .shadow
            .clone()
            .ok_or_else(|| RegistryError::NoCandidate(role.to_string()))?;
        let from = current.module.info().digest.clone();
        let to = candidate.module.info().digest.clone();
        if candidate.file != current.binding.module {
            let max = self.engine.config().max_module_bytes;
            let bytes = self.dir.read_module(&candidate.file, max)?;
            if super::engine::digest_of(&bytes) != to {
                return Err(RegistryError::CandidateChanged {
                    name: candidate.file.clone(),
                });
            }
            let signature = format!("{}{SIGNATURE_SUFFIX}", candidate.file);
            if self.trusts_signatures() {
                let text = self.dir.read(&signature, MAX_SIGNATURE_BYTES)?;
                self.dir
                    .replace(&format!("{}{SIGNATURE_SUFFIX}", current.binding.module), &text)?;
            }
            self.dir.replace(&current.binding.module, &bytes)?;
        }
        self.swap(
            role,
            RolePolicy {
                module: candidate.module.clone(),
                binding: current.binding.clone(),
                shadow: None,
            },
        );
        tracing::info!(role, from = %from, to = %to, "candidate promoted");
        Ok(if from == to {
            ReloadOutcome::Unchanged { digest: to }
        } else {
            ReloadOutcome::Replaced { from, to }
        })
    }

    fn trusts_signatures(&self) -> bool {
        self.dir.trusted.is_some()
    }

    /// Reload every role; one result per role, sorted by role.
    pub fn reload_all(&self) -> Vec<(String, Result<ReloadOutcome, RegistryError>)> {
        self.reload_where(|_| true)
    }

    /// Reload the roles whose policy is the file `name`, or whose
    /// signature it is.
    pub fn reload_file(&self, name: &str) -> Vec<(String, Result<ReloadOutcome, RegistryError>)> {
        let module = name.strip_suffix(SIGNATURE_SUFFIX).unwrap_or(name);
        self.reload_where(|p| Path::new(&p.binding.module) == Path::new(module))
    }

    fn reload_where(
        &self,
        selected: impl Fn(&RolePolicy) -> bool,
    ) -> Vec<(String, Result<ReloadOutcome, RegistryError>)> {
        let mut roles: Vec<String> = self
            .roles
            .load()
            .values()
            .filter(|p| selected(p))
            .map(|p| p.binding.role.clone())
            .collect();
        roles.sort();
        roles
            .into_iter()
            .map(|r| {
                let outcome = self.reload_role(&r);
                (r, outcome)
            })
            .collect()
    }

    /// Watch the policy directory and reload a role whenever its module (or
    /// signature) changes; `on_reload` hears every outcome (the server
    /// audits them). Stops when the returned [`Watcher`] is dropped.
    pub fn watch(
        self: &Arc<Self>,
        on_reload: impl Fn(&str, &Result<ReloadOutcome, RegistryError>) + Send + 'static,
    ) -> Result<Watcher, RegistryError> {
        use notify::Watcher as _;
        let (tx, rx) = mpsc::channel::<notify::Result<notify::Event>>();
        let mut inner = notify::recommended_watcher(tx).map_err(|e| RegistryError::Watch(e.to_string()))?;
        inner
            .watch(self.dir.path(), notify::RecursiveMode::NonRecursive)
            .map_err(|e| RegistryError::Watch(e.to_string()))?;
        let registry = Arc::downgrade(self);
        let root = self
            .dir
            .path()
            .canonicalize()
            .unwrap_or_else(|_| self.dir.path().to_path_buf());
        std::thread::Builder::new()
            .name("airlock-policy-watch".into())
            .spawn(move || {
                // Ends when the notify watcher (the sender) is dropped.
                while let Ok(first) = rx.recv() {
                    let mut changed = Vec::new();
                    collect(&root, first, &mut changed);
                    // Writers touch a file several times; settle first.
                    while let Ok(more) = rx.recv_timeout(Duration::from_millis(50)) {
                        collect(&root, more, &mut changed);
                    }
                    let Some(registry) = registry.upgrade() else {
                        return;
                    };
                    changed.sort();
                    changed.dedup();
                    for name in changed {
                        for (role, outcome) in registry.reload_file(&name) {
                            match &outcome {
                                Ok(ReloadOutcome::Replaced { to, .. }) => {
                                    tracing::info!(role, file = %name, digest = %to, "hot reload")
                                }
                                Ok(ReloadOutcome::Unchanged { .. }) => {}
                                Err(e) => {
                                    tracing::warn!(role, file = %name, error = %e, "hot reload refused")
                                }
                            }
                            on_reload(&role, &outcome);
                        }
                    }
                }
            })
            .map_err(|e| RegistryError::Watch(e.to_string()))?;
        Ok(Watcher {
            _inner: Box::new(inner),
        })
    }
}

fn collect(root: &Path, event: notify::Result<notify::Event>, changed: &mut Vec<String>) {
    let Ok(event) = event else { return };
    if event.kind.is_access() {
        return;
    }
    for path in event.paths {
        let path = path.canonicalize().unwrap_or(path);
        if let Ok(rel) = path.strip_prefix(root) {
            if let Some(name) = rel.to_str() {
                changed.push(name.to_string());
            }
        } else if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
            changed.push(name.to_string());
        }
    }
}

/// Keeps the policy directory watched while alive.
pub struct Watcher {
    _inner: Box<dyn notify::Watcher + Send>,
}

fn load(engine: &Engine, dir: &PolicyDir, binding: &RoleBinding) -> Result<PolicyModule, RegistryError> {
    let bytes = dir.read_module(&binding.module, engine.config().max_module_bytes)?;
    engine
        .load(&bytes, &binding.limits)
        .map_err(|source| RegistryError::Load {
            name: binding.module.clone(),
            source,
        })
}
