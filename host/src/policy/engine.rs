//! The policy engine: compiles components once, checks them against the
//! policy world, and evaluates each request in a fresh, limited instance.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest as _, Sha256};
use wasmtime::component::{Component, HasSelf, Linker, types::ComponentItem};
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig, Store, Trap};

use super::bindings::{GuestContext, v1, v2};
use super::contract::{ALLOWED_IMPORTS, Policy, PolicyPre};
use super::limits::Limits;
use super::spares::{SpareWorker, Spares};
use super::state_view::WorkflowState;
use super::types::{
    Failure, FailureClass, Listing, LogRecord, PolicyRequest, Principal, StateWrite, Verdict,
};
use super::verdict::validate_verdict;

/// How often the deadline clock ticks.
const EPOCH_TICK: Duration = Duration::from_millis(1);
/// The ticker sleeps after this many ticks without an evaluation starting,
/// so an idle host costs no wake-ups.
const IDLE_TICKS_BEFORE_PARK: u64 = 1000;

/// Engine-wide settings (per-role limits are [`Limits`]).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The largest memory cap any role may have; sizes the instance pool.
    pub max_memory_bytes: usize,
    /// Instances that may exist at the same time (instance pool slots):
    /// evaluations in flight, spares, and used instances not yet discarded.
    pub max_concurrent: u32,
    /// Largest component file accepted, in bytes.
    pub max_module_bytes: u64,
    /// Where compiled artifacts are cached by digest; `None` keeps them in
    /// memory only. The directory must be private to Airlock: its files are
    /// loaded as native code.
    pub cache_dir: Option<PathBuf>,
    /// Instances kept ready per policy whose component is at least
    /// [`LARGE_COMPONENT_BYTES`] (Python and JavaScript runtimes); 0 makes
    /// every decision instantiate inline. Each spare serves one decision.
    pub spare_instances: usize,
}

/// Components this large carry a language runtime (Python, JavaScript):
/// their instantiation and first call cost ~0.5-2 ms where a Rust policy's
/// cost a few µs. They get their own instance pool and spares (for a Rust
/// policy, a hand-off to another thread would cost more than it saves).
pub const LARGE_COMPONENT_BYTES: u64 = 1 << 20;

/// The most fuel a decision may burn on an async worker before its policy
/// version is moved to the blocking pool: about a millisecond of guest code.
/// Fuel, not wall-clock time: under load the OS preempts a worker mid-decision
/// and a 10 µs decision can measure milliseconds.
pub const INLINE_FUEL: u64 = 2_000_000;

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            max_memory_bytes: 256 << 20,
            max_concurrent: 256,
            max_module_bytes: 64 << 20,
            cache_dir: None,
            spare_instances: 2,
        }
    }
}

/// A component that cannot be used as a policy.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("module is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: u64, limit: u64 },
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("invalid component: {0}")]
    Invalid(String),
    #[error(
        "imports `{0}`, which the policy world does not offer (allowed: airlock:policy/state, airlock:policy/log, and WASI with nothing granted)"
    )]
    ForbiddenImport(String),
    #[error("does not implement the policy world airlock:policy/policy@0.2.0 (nor the older 0.1.0): {0}")]
    WrongWorld(String),
    #[error("describe() failed: {0}")]
    Describe(String),
}

/// A policy version ready to evaluate: compiled, checked and
/// pre-instantiated. Cheap to share; evaluations in flight keep it alive.
pub struct PolicyModule {
    engine: Arc<EngineShared>,
    pre: PolicyPre,
    info: PolicyInfo,
    /// Instances made ahead of use, for components slow to instantiate.
    spares: Option<Arc<Spares>>,
    /// Whether decisions may run on the caller's (async) thread; see
    /// [`evaluate_async`](Self::evaluate_async).
    inline: AtomicBool,
}

/// What identifies a loaded policy version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyInfo {
    /// From the policy's `describe()`.
    pub name: String,
    pub version: String,
    /// `sha256:<hex>` of the component file.
    pub digest: String,
    pub size: u64,
    pub imports: Vec<String>,
    pub exports: Vec<String>,
    /// True when the component imports WASI (linked with nothing granted).
    pub uses_wasi: bool,
    /// The contract version it implements, e.g. `airlock:policy@0.2.0`.
    pub contract: &'static str,
}

/// The outcome of one evaluation.
#[derive(Debug, Clone)]
pub struct Evaluation {
    /// The verdict; a deny with the failure as reason when `failure` is set.
    pub verdict: Verdict,
    /// Set when the engine, not the policy, decided (fail closed).
    pub failure: Option<Failure>,
    pub fuel_used: u64,
    pub elapsed: Duration,
    pub logs: Vec<LogRecord>,
    pub logs_dropped: u32,
    /// State writes to commit atomically, only present for an allow.
    pub state_writes: Vec<StateWrite>,
    /// What the writes were based on: `(key, value read)`. A store that
    /// commits optimistically checks these are unchanged.
    pub state_reads: Vec<(String, Option<String>)>,
    /// What a WASI guest printed (bounded).
    pub guest_output: Option<Vec<u8>>,
}

pub(super) struct EngineShared {
    /// For Rust-sized components.
    small: Runtime,
    /// For components of at least [`LARGE_COMPONENT_BYTES`].
    large: Runtime,
    config: EngineConfig,
    compiled: Mutex<HashMap<String, Component>>,
    ticker: Ticker,
    /// The background thread that makes and discards spare instances.
    spare_worker: SpareWorker,
}

/// A wasmtime engine and its linkers, with an instance pool tuned for one
/// size class of components.
struct Runtime {
    engine: wasmtime::Engine,
    plain_linker: Linker<GuestContext>,
    wasi_linker: Linker<GuestContext>,
}

impl Runtime {
    fn new(config: &EngineConfig, keep_resident: usize) -> anyhow::Result<Runtime> {
        let mut pool = PoolingAllocationConfig::default();
        pool.total_component_instances(config.max_concurrent)
            // A Python or JavaScript component links its language runtime out
            // of several core modules, each a core instance; a Rust policy is
            // one or two. Pool slots are reserved address space, committed
            // only when used.
            .total_core_instances(config.max_concurrent * 16)
            .total_memories(config.max_concurrent * 2)
            .total_tables(config.max_concurrent * 4)
            .max_memories_per_component(4)
            .max_tables_per_component(8)
            .max_core_instances_per_component(64)
            .max_memory_size(config.max_memory_bytes)
            .max_component_instance_size(1 << 20)
            .max_core_instance_size(1 << 20)
            // Pages of a freed slot kept resident and reset in place (only
            // the dirty ones) rather than unmapped and faulted back in.
            .linear_memory_keep_resident(keep_resident)
            .table_keep_resident(16 << 10)
            .decommit_batch_size(32);

        let mut wasm = Config::new();
        wasm.wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .max_wasm_stack(512 << 10)
            .parallel_compilation(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = wasmtime::Engine::new(&wasm)?;

        let mut plain_linker = Linker::new(&engine);
        // Both contract versions' imports: their interface names differ by
        // version, and each component links to the one it was built for.
        v2::Policy::add_to_linker::<GuestContext, HasSelf<GuestContext>>(&mut plain_linker, |c| c)?;
        v1::Policy::add_to_linker::<GuestContext, HasSelf<GuestContext>>(&mut plain_linker, |c| c)?;
        let mut wasi_linker = plain_linker.clone();
        wasmtime_wasi::p2::add_to_linker_sync(&mut wasi_linker)?;
        Ok(Runtime {
            engine,
            plain_linker,
            wasi_linker,
        })
    }
}

/// The policy engine. Clone freely: clones share the wasmtime engines,
/// compile cache and deadline clock.
#[derive(Clone)]
pub struct Engine {
    shared: Arc<EngineShared>,
}

impl Engine {
    pub fn new(config: EngineConfig) -> anyhow::Result<Self> {
        // Measured (benches decision and polyglot): a Rust policy's stack,
        // data and early heap fit in 128 KiB, and zeroing more than that
        // costs it (256 KiB: 4.4 → 5.7 µs; 64 KiB re-faults pages: 7.8 µs).
        // A Python or JavaScript decision dirties megabytes of its runtime's
        // memory image: keeping 64 MiB resident lets the pool restore those
        // pages (only the dirty ones) when the used instance is discarded,
        // off the request path, instead of the next decision taking a copy-on-
        // write fault per page (Python pr-creator, spares: 2.1 → 0.6 ms).
        let small = Runtime::new(&config, 128 << 10)?;
        let large = Runtime::new(&config, 64 << 20)?;
        if let Some(dir) = &config.cache_dir {
            // Private: its files are loaded as native code.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)?;
        }
        let ticker = Ticker::start([small.engine.clone(), large.engine.clone()]);
        let spare_worker = SpareWorker::start()?;
        Ok(Engine {
            shared: Arc::new(EngineShared {
                small,
                large,
                config,
                compiled: Mutex::new(HashMap::new()),
                ticker,
                spare_worker,
            }),
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.shared.config
    }

    /// Load a policy from the bytes of its component file.
    ///
    /// `limits` bound the `describe()` call made to check the policy works.
    pub fn load(&self, bytes: &[u8], limits: &Limits) -> Result<PolicyModule, LoadError> {
        let config = &self.shared.config;
        if bytes.len() as u64 > config.max_module_bytes {
            return Err(LoadError::TooLarge {
                size: bytes.len() as u64,
                limit: config.max_module_bytes,
            });
        }
        check_is_component(bytes)?;
        let digest = digest_of(bytes);
        let runtime = self.shared.runtime_for(bytes.len() as u64);
        let component = self.compile(&digest, bytes, runtime)?;

        let engine = &runtime.engine;
        let ty = component.component_type();
        let mut imports = Vec::new();
        let mut uses_wasi = false;
        for (name, _) in ty.imports(engine) {
            if name.starts_with("wasi:") {
                uses_wasi = true;
            } else if !ALLOWED_IMPORTS.contains(&name) {
                return Err(LoadError::ForbiddenImport(name.to_string()));
            }
            imports.push(name.to_string());
        }
        let exports: Vec<String> = ty
            .exports(engine)
            .map(|(name, item)| match item.ty {
                ComponentItem::ComponentFunc(_) => format!("func {name}"),
                _ => name.to_string(),
            })
            .collect();

        let linker = if uses_wasi {
            &runtime.wasi_linker
        } else {
            &runtime.plain_linker
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            let msg = format!("{e:#}");
            if uses_wasi && msg.contains("wasi:") {
                LoadError::ForbiddenImport(msg)
            } else {
                LoadError::WrongWorld(msg)
            }
        })?;
        let pre = PolicyPre::new(instance_pre).map_err(|e| LoadError::WrongWorld(format!("{e:#}")))?;

        let mut module = PolicyModule {
            engine: self.shared.clone(),
            pre: pre.clone(),
            spares: None,
            // A language runtime (Python, JavaScript) instantiates in ~1 ms
            // when no spare is ready: such a policy decides off the runtime.
            inline: AtomicBool::new((bytes.len() as u64) < LARGE_COMPONENT_BYTES),
            info: PolicyInfo {
                name: String::new(),
                version: String::new(),
                digest,
                size: bytes.len() as u64,
                imports,
                exports,
                uses_wasi,
                contract: pre.contract().as_str(),
            },
        };
        let (name, version) = module
            .describe(limits)
            .map_err(|f| LoadError::Describe(f.to_string()))?;
        module.info.name = name;
        module.info.version = version;
        if config.spare_instances > 0 && module.info.size >= LARGE_COMPONENT_BYTES {
            let spares = Spares::new(self.shared.clone(), pre, *limits, config.spare_instances);
            spares.request_refill();
            module.spares = Some(spares);
        }
        Ok(module)
    }

    /// Compile, or fetch the compiled artifact by digest from memory or disk.
    fn compile(&self, digest: &str, bytes: &[u8], runtime: &Runtime) -> Result<Component, LoadError> {
        let shared = &self.shared;
        if let Some(c) = shared.compiled.lock().ok().and_then(|m| m.get(digest).cloned()) {
            return Ok(c);
        }
        let cache_file = shared.config.cache_dir.as_ref().map(|dir| {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            runtime.engine.precompile_compatibility_hash().hash(&mut h);
            let hex = digest.trim_start_matches("sha256:");
            dir.join(format!("{hex}-{:016x}.cwasm", h.finish()))
        });
        let cached = cache_file.as_ref().and_then(|path| std::fs::read(path).ok().map(|b| (path, b))).and_then(|(path, bytes)| {
            // Read into memory rather than mmap the file: a cache file
            // truncated while mapped would crash the process (SIGBUS).
            //
            // SAFETY: the cache directory is private to Airlock and its files
            // are written only by `write_artifact`, for an engine with the
            // same compatibility hash (part of the file name). wasmtime still
            // checks the header and refuses an artifact from another config.
            #[allow(unsafe_code)]
            let loaded = unsafe { Component::deserialize(&runtime.engine, &bytes) };
            match loaded {
                Ok(c) => Some(c),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable compiled policy");
                    let _ = std::fs::remove_file(path);
                    None
                }
            }
        });
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(&runtime.engine, bytes)
                    .map_err(|e| LoadError::Invalid(format!("{e:#}")))?;
                if let Some(path) = &cache_file
                    && let Err(e) = write_artifact(path, &c)
                {
                    tracing::warn!(path = %path.display(), error = %e, "could not cache compiled policy");
                }
                c
            }
        };
        if let Ok(mut m) = shared.compiled.lock() {
            m.insert(digest.to_string(), component.clone());
        }
        Ok(component)
    }
}

fn write_artifact(path: &std::path::Path, component: &Component) -> anyhow::Result<()> {
    let bytes = component.serialize()?;
    // Unique per writer (process and call), so two threads compiling the
    // same policy never write into one temporary file.
    static WRITES: AtomicU64 = AtomicU64::new(0);
    let n = WRITES.fetch_add(1, Ordering::Relaxed);
    let tmp = path.with_extension(format!("tmp{}-{n}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Tell a core module, a truncated file and random bytes apart before
/// handing the bytes to the compiler, for a precise error.
fn check_is_component(bytes: &[u8]) -> Result<(), LoadError> {
    if bytes.len() < 8 || &bytes[0..4] != b"\0asm" {
        return Err(LoadError::NotAComponent(
            "no WebAssembly header (`\\0asm`)".into(),
        ));
    }
    if wasmparser::Parser::is_core_wasm(bytes) {
        return Err(LoadError::NotAComponent(
            "this is a core module; build it into a component (`airlock policy build`)".into(),
        ));
    }
    if !wasmparser::Parser::is_component(bytes) {
        return Err(LoadError::NotAComponent(
            "unknown WebAssembly encoding version".into(),
        ));
    }
    Ok(())
}

impl std::fmt::Debug for PolicyModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyModule")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl PolicyModule {
    pub fn info(&self) -> &PolicyInfo {
        &self.info
    }

    /// Whether [`evaluate_async`](Self::evaluate_async) decides on the
    /// caller's thread (false once a decision of this version was slow).
    pub fn decides_inline(&self) -> bool {
        self.inline.load(Ordering::Relaxed)
    }

    fn describe(&self, limits: &Limits) -> Result<(String, String), Failure> {
        let mut fresh = self.engine.instantiate(&self.pre, limits).map_err(|(f, _)| f)?;
        fresh.describe(limits, &self.engine)
    }

    /// Decide one request in an instance no other decision has used: a
    /// spare made ahead of time when this policy has them, otherwise one
    /// made now. Blocks the calling thread for at most the instantiation and
    /// the deadline; from async code use [`evaluate_async`](Self::evaluate_async).
    pub fn evaluate(
        &self,
        request: &PolicyRequest,
        state: Arc<dyn WorkflowState>,
        limits: &Limits,
    ) -> Evaluation {
        let started = Instant::now();
        let spare = self.spares.as_ref().and_then(|s| s.take(limits));
        let mut fresh = match spare.map_or_else(|| self.engine.instantiate(&self.pre, limits), Ok) {
            Ok(fresh) => fresh,
            Err((failure, fuel_used)) => return Evaluation::failed(failure, fuel_used, started.elapsed()),
        };
        fresh
            .store
            .data_mut()
            .begin_decision(request.principal.workflow.clone(), state);
        arm(&mut fresh.store, limits);
        let result = {
            let _active = self.engine.ticker.activate();
            fresh.policy.call_evaluate(&mut fresh.store, request)
        };
        let fuel_used = limits.fuel.saturating_sub(fresh.store.get_fuel().unwrap_or(0));
        let outcome = match result {
            Ok(verdict) => validate_verdict(verdict),
            Err(e) => Err(classify(&e, fresh.store.data())),
        };
        let guest_output = fresh.store.data().guest_output();
        let ctx = fresh.store.data_mut();
        let (logs, logs_dropped) = (std::mem::take(&mut ctx.logs), ctx.logs_dropped);
        let (writes, reads) = (std::mem::take(&mut ctx.writes), std::mem::take(&mut ctx.reads));
        // Used once, never again: unmapping its memory is left to the spare
        // worker when there is one, off this decision's path.
        match &self.spares {
            Some(spares) => spares.discard(fresh),
            None => drop(fresh),
        }
        let (verdict, failure) = match outcome {
            Ok(v) => (v, None),
            Err(f) => (Verdict::Deny(f.to_string()), Some(f)),
        };
        let allowed = matches!(verdict, Verdict::Allow(_));
        Evaluation {
            verdict,
            failure,
            fuel_used,
            elapsed: started.elapsed(),
            logs,
            logs_dropped,
            state_writes: if allowed { writes } else { Vec::new() },
            state_reads: reads,
            guest_output,
        }
    }

    /// [`evaluate`](Self::evaluate) from async code.
    ///
    /// A small component's decision (a Rust policy: 3-15 µs, instantiation
    /// included) runs right here on the async worker: handing it to tokio's
    /// blocking pool and back cost more than the decision itself (two thread
    /// wake-ups, ~27 µs of CPU per request under load). The first decision
    /// of a module version that burns more than [`INLINE_FUEL`], or fails on
    /// fuel or the deadline, moves every later one of that version to the
    /// blocking pool: a slow or hostile policy can hold a worker at most
    /// once, for at most its deadline.
    pub async fn evaluate_async(
        self: Arc<Self>,
        request: Arc<PolicyRequest>,
        state: Arc<dyn WorkflowState>,
        limits: Limits,
    ) -> Evaluation {
        if self.inline.load(Ordering::Relaxed) {
            let evaluation = self.evaluate(&request, state, &limits);
            let exhausted = matches!(
                evaluation.failure,
                Some(Failure {
                    class: FailureClass::Fuel | FailureClass::Deadline,
                    ..
                })
            );
            if (evaluation.fuel_used > INLINE_FUEL || exhausted) && self.inline.swap(false, Ordering::Relaxed)
            {
                tracing::warn!(
                    policy = %self.info.name,
                    digest = %self.info.digest,
                    fuel = evaluation.fuel_used,
                    "slow decision: this policy version now decides on the blocking pool"
                );
            }
            return evaluation;
        }
        let started = Instant::now();
        let joined = tokio::task::spawn_blocking(move || self.evaluate(&request, state, &limits)).await;
        joined.unwrap_or_else(|e| {
            let failure = Failure {
                class: FailureClass::Host,
                detail: format!("evaluation task failed: {e}"),
            };
            Evaluation::failed(failure, 0, started.elapsed())
        })
    }
}

/// The answer to a `visible` question: one bool per name asked about.
#[derive(Debug, Clone)]
pub struct Visibility {
    /// Same length as the names asked about; all false when `failure` is set
    /// (a failing or pre-0.2.0 policy hides everything).
    pub visible: Vec<bool>,
    pub failure: Option<Failure>,
    pub fuel_used: u64,
    pub elapsed: Duration,
}

impl PolicyModule {
    /// Which of `names` (of `kind`, from MCP service `service`) `principal`
    /// may see, asked of the policy's `visible` export in an instance of
    /// its own. Blocks like [`evaluate`](Self::evaluate).
    pub fn visible(
        &self,
        principal: &Principal,
        service: &str,
        kind: Listing,
        names: &[String],
        state: Arc<dyn WorkflowState>,
        limits: &Limits,
    ) -> Visibility {
        let started = Instant::now();
        let hide_all = |failure: Failure, fuel_used: u64| Visibility {
            visible: vec![false; names.len()],
            failure: Some(failure),
            fuel_used,
            elapsed: started.elapsed(),
        };
        // Never a spare: spares are kept for decisions, and a listing is rare.
        let mut fresh = match self.engine.instantiate(&self.pre, limits) {
            Ok(fresh) => fresh,
            Err((failure, fuel_used)) => return hide_all(failure, fuel_used),
        };
        // Reads see the session's workflow; the writes are dropped with the
        // instance, never committed: a listing changes nothing.
        fresh
            .store
            .data_mut()
            .begin_decision(principal.workflow.clone(), state);
        arm(&mut fresh.store, limits);
        let result = {
            let _active = self.engine.ticker.activate();
            fresh
                .policy
                .call_visible(&mut fresh.store, principal, service, kind, names)
        };
        let fuel_used = limits.fuel.saturating_sub(fresh.store.get_fuel().unwrap_or(0));
        match result {
            Ok(Some(visible)) if visible.len() == names.len() => Visibility {
                visible,
                failure: None,
                fuel_used,
                elapsed: started.elapsed(),
            },
            Ok(Some(visible)) => hide_all(
                Failure {
                    class: FailureClass::InvalidVerdict,
                    detail: format!(
                        "visible() answered {} bools for {} names: every listed item is hidden",
                        visible.len(),
                        names.len()
                    ),
                },
                fuel_used,
            ),
            Ok(None) => hide_all(
                Failure {
                    class: FailureClass::Host,
                    detail: format!(
                        "{} policies have no `visible` export: every listed item is hidden",
                        self.info.contract
                    ),
                },
                fuel_used,
            ),
            Err(e) => hide_all(classify(&e, fresh.store.data()), fuel_used),
        }
    }

    /// [`visible`](Self::visible) on tokio's blocking pool.
    pub async fn visible_async(
        self: Arc<Self>,
        principal: Principal,
        service: String,
        kind: Listing,
        names: Vec<String>,
        state: Arc<dyn WorkflowState>,
        limits: Limits,
    ) -> Visibility {
        let count = names.len();
        let started = Instant::now();
        tokio::task::spawn_blocking(move || self.visible(&principal, &service, kind, &names, state, &limits))
            .await
            .unwrap_or_else(|e| Visibility {
                visible: vec![false; count],
                failure: Some(Failure {
                    class: FailureClass::Host,
                    detail: format!("visibility task failed: {e}"),
                }),
                fuel_used: 0,
                elapsed: started.elapsed(),
            })
    }
}

impl Evaluation {
    /// A deny decided by the engine before the policy could answer.
    fn failed(failure: Failure, fuel_used: u64, elapsed: Duration) -> Evaluation {
        Evaluation {
            verdict: Verdict::Deny(failure.to_string()),
            failure: Some(failure),
            fuel_used,
            elapsed,
            logs: Vec::new(),
            logs_dropped: 0,
            state_writes: Vec::new(),
            state_reads: Vec::new(),
            guest_output: None,
        }
    }
}

/// An instance made and started but not yet used for a decision.
pub(super) struct FreshInstance {
    store: Store<GuestContext>,
    policy: Policy,
}

impl FreshInstance {
    /// Call `describe()` under its own `limits`: `(name, version)`.
    fn describe(&mut self, limits: &Limits, engine: &EngineShared) -> Result<(String, String), Failure> {
        arm(&mut self.store, limits);
        let _active = engine.ticker.activate();
        self.policy
            .call_describe(&mut self.store)
            .map_err(|e| classify(&e, self.store.data()))
    }

    /// Run the guest's lazy start-up (a language runtime links and pages in
    /// much of itself on its first call) by calling `describe()`, which takes
    /// no input: every warmed instance is in the same state, and no request
    /// has been near it. Returns false if the call failed.
    pub(super) fn warm_up(&mut self, limits: &Limits, engine: &EngineShared) -> bool {
        self.describe(limits, engine).is_ok()
    }
}

/// Give the coming call (instantiation or export) its own full fuel budget
/// and deadline: limits bound the instantiation and each call, whenever the
/// instance was made.
fn arm(store: &mut Store<GuestContext>, limits: &Limits) {
    let _ = store.set_fuel(limits.fuel);
    let ticks = limits.deadline.as_micros().div_ceil(EPOCH_TICK.as_micros()) as u64 + 1;
    store.set_epoch_deadline(ticks);
}

impl EngineShared {
    fn runtime_for(&self, component_bytes: u64) -> &Runtime {
        if component_bytes >= LARGE_COMPONENT_BYTES {
            &self.large
        } else {
            &self.small
        }
    }

    pub(super) fn spare_worker(&self) -> &SpareWorker {
        &self.spare_worker
    }

    /// Make an instance of `pre` under `limits`. Start-up code runs with no
    /// workflow state and is metered (fuel, deadline, memory) like a call.
    /// On failure: why, and the fuel start-up used.
    pub(super) fn instantiate(
        &self,
        pre: &PolicyPre,
        limits: &Limits,
    ) -> Result<FreshInstance, (Failure, u64)> {
        let ctx = GuestContext::new(limits.memory_bytes, String::new(), Arc::new(super::NoState));
        let mut store = Store::new(pre.engine(), ctx);
        store.limiter(|c| c);
        store.epoch_deadline_trap();
        let _active = self.ticker.activate();
        arm(&mut store, limits);
        match pre.instantiate(&mut store) {
            Ok(policy) => Ok(FreshInstance { store, policy }),
            Err(e) => {
                let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
                Err((classify(&e, store.data()), fuel_used))
            }
        }
    }
}

/// Name the class of a failed call. Order matters: a memory refusal or a
/// host refusal surfaces as a trap in the guest, so they are checked first.
fn classify(error: &wasmtime::Error, ctx: &GuestContext) -> Failure {
    let trap = error.downcast_ref::<Trap>().copied();
    let (class, detail) = match trap {
        Some(Trap::OutOfFuel) => (FailureClass::Fuel, "fuel exhausted".to_string()),
        Some(Trap::Interrupt) => (FailureClass::Deadline, "wall-clock deadline exceeded".to_string()),
        _ if ctx.memory_refused => (
            FailureClass::Memory,
            format!("linear memory would exceed the {}-byte cap", ctx.memory_cap),
        ),
        _ if ctx.host_error.is_some() => (FailureClass::Host, ctx.host_error.clone().unwrap_or_default()),
        Some(Trap::StackOverflow) => (FailureClass::Trap, "stack overflow".to_string()),
        Some(t) => (FailureClass::Trap, t.to_string()),
        None => (FailureClass::Trap, format!("{error:#}")),
    };
    Failure { class, detail }
}

/// Advances the engine's epoch every [`EPOCH_TICK`] while evaluations run,
/// and parks when none has started for a while, so an idle host takes no
/// wake-ups and a busy one pays one relaxed atomic add per evaluation.
struct Ticker {
    thread: thread::Thread,
    shared: Arc<TickerState>,
}

#[derive(Default)]
struct TickerState {
    started: AtomicU64,
    in_flight: AtomicU64,
    parked: AtomicBool,
}

/// Held while an evaluation runs; the ticker never parks under one.
struct TickerGuard(Arc<TickerState>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticker {
    fn start(engines: [wasmtime::Engine; 2]) -> Ticker {
        let shared = Arc::new(TickerState::default());
        let weak = engines.map(|e| e.weak());
        let state = shared.clone();
        let handle = thread::Builder::new()
            .name("airlock-epoch".into())
            .spawn(move || {
                let mut seen = 0;
                let mut idle_ticks = 0;
                loop {
                    thread::sleep(EPOCH_TICK);
                    for engine in &weak {
                        let Some(engine) = engine.upgrade() else { return };
                        engine.increment_epoch();
                    }
                    let started = state.started.load(Ordering::SeqCst);
                    if started != seen || state.in_flight.load(Ordering::SeqCst) > 0 {
                        seen = started;
                        idle_ticks = 0;
                        continue;
                    }
                    idle_ticks += 1;
                    if idle_ticks < IDLE_TICKS_BEFORE_PARK {
                        continue;
                    }
                    // Publish `parked` before the last look, and `activate`
                    // counts before it reads `parked`: one of the two sees
                    // the other, so no wake-up is lost.
                    state.parked.store(true, Ordering::SeqCst);
                    if state.started.load(Ordering::SeqCst) == seen {
                        // The timeout lets the thread notice a dropped engine.
                        thread::park_timeout(Duration::from_secs(5));
                    }
                    state.parked.store(false, Ordering::SeqCst);
                    idle_ticks = 0;
                }
            })
            .expect("spawning the epoch ticker thread");
        Ticker {
            thread: handle.thread().clone(),
            shared,
        }
    }

    /// Mark an evaluation as running; wakes the ticker if it was parked.
    fn activate(&self) -> TickerGuard {
        self.shared.in_flight.fetch_add(1, Ordering::SeqCst);
        self.shared.started.fetch_add(1, Ordering::SeqCst);
        if self.shared.parked.load(Ordering::SeqCst) {
            self.thread.unpark();
        }
        TickerGuard(self.shared.clone())
    }
}

/// The digest a module is known by: `sha256:<hex>` of its file.
pub(super) fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}
