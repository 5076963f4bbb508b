//! wasmtime bindings for the policy world, and the host side of its imports
//! (`state`, `log`), implemented on the per-evaluation store data.

use std::collections::HashMap;
use std::sync::Arc;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Result};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use super::limits::bounds;
use super::state_view::WorkflowState;
use super::types::{LogLevel, LogRecord, StateWrite};

/// Contract 0.2.0, the current one (`wit/policy.wit`).
pub(crate) mod v2 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit",
        imports: { default: trappable },
    });
}

/// Contract 0.1.0, kept so that components built against it still load
/// (`wit/archive/0.1.0`).
pub(crate) mod v1 {
    wasmtime::component::bindgen!({
        world: "policy",
        path: "../wit/archive/0.1.0",
        imports: { default: trappable },
    });
}

/// The current contract's types: what the engine converts to and validates.
pub(crate) use self::v2::airlock::policy::types as wit;

/// Everything one instance's store holds. A store serves one instantiation
/// and then exactly one decision ([`begin_decision`](Self::begin_decision)),
/// and is dropped with it, so nothing leaks from one decision into the next.
pub(crate) struct GuestContext {
    pub memory_cap: usize,
    /// Set when the guest asked for more memory than its cap: a trap that
    /// follows is reported as `memory`, not `trap`.
    pub memory_refused: bool,
    /// Set when a host import refused the guest: reported as `host`.
    pub host_error: Option<String>,
    workflow: String,
    state: Arc<dyn WorkflowState>,
    /// This evaluation's view of keys it wrote: reads see their own writes.
    overlay: HashMap<String, Option<String>>,
    /// Values read from the store, for an optimistic commit check.
    pub reads: Vec<(String, Option<String>)>,
    pub writes: Vec<StateWrite>,
    pub logs: Vec<LogRecord>,
    pub logs_dropped: u32,
    /// Only for guests that import WASI; built on first use.
    wasi: Option<(WasiCtx, ResourceTable, MemoryOutputPipe)>,
}

impl GuestContext {
    pub fn new(memory_cap: usize, workflow: String, state: Arc<dyn WorkflowState>) -> Self {
        GuestContext {
            memory_cap,
            memory_refused: false,
            host_error: None,
            workflow,
            state,
            overlay: HashMap::new(),
            reads: Vec::new(),
            writes: Vec::new(),
            logs: Vec::new(),
            logs_dropped: 0,
            wasi: None,
        }
    }

    /// Start the decision this instance was made for: what start-up code
    /// read, wrote or logged belongs to no decision and is forgotten, and
    /// state reads now see `workflow`.
    pub fn begin_decision(&mut self, workflow: String, state: Arc<dyn WorkflowState>) {
        self.workflow = workflow;
        self.state = state;
        self.overlay.clear();
        self.reads.clear();
        self.writes.clear();
        self.logs.clear();
        self.logs_dropped = 0;
    }

    /// What a WASI guest printed, at most `MAX_GUEST_OUTPUT` bytes.
    pub fn guest_output(&self) -> Option<Vec<u8>> {
        self.wasi.as_ref().map(|(_, _, out)| out.contents().to_vec())
    }

    fn refuse<T>(&mut self, message: String) -> Result<T> {
        self.host_error = Some(message.clone());
        Err(wasmtime::Error::msg(message))
    }

    fn current(&mut self, key: &str) -> Result<Option<String>> {
        if let Some(v) = self.overlay.get(key) {
            return Ok(v.clone());
        }
        match self.state.get(&self.workflow, key) {
            Ok(value) => {
                self.reads.push((key.to_string(), value.clone()));
                self.overlay.insert(key.to_string(), value.clone());
                Ok(value)
            }
            Err(e) => self.refuse(format!("state store read failed: {e}")),
        }
    }

    fn check_write(&mut self, key: &str) -> Result<()> {
        if key.is_empty() || key.len() > bounds::MAX_STATE_KEY_LEN {
            return self.refuse(format!(
                "state key must be 1..={} bytes",
                bounds::MAX_STATE_KEY_LEN
            ));
        }
        if self.writes.len() >= bounds::MAX_STATE_WRITES {
            return self.refuse(format!(
                "more than {} state writes in one evaluation",
                bounds::MAX_STATE_WRITES
            ));
        }
        Ok(())
    }
}

impl GuestContext {
    fn state_get(&mut self, key: String) -> Result<Option<String>> {
        if key.len() > bounds::MAX_STATE_KEY_LEN {
            return self.refuse(format!(
                "state key longer than {} bytes",
                bounds::MAX_STATE_KEY_LEN
            ));
        }
        self.current(&key)
    }

    fn state_set(&mut self, key: String, value: String) -> Result<()> {
        self.check_write(&key)?;
        if value.len() > bounds::MAX_STATE_VALUE_LEN {
            return self.refuse(format!(
                "state value longer than {} bytes",
                bounds::MAX_STATE_VALUE_LEN
            ));
        }
        self.overlay.insert(key.clone(), Some(value.clone()));
        self.writes.push(StateWrite::Set { key, value });
        Ok(())
    }

    fn state_incr(&mut self, key: String, delta: i64) -> Result<i64> {
        self.check_write(&key)?;
        let current = self
            .current(&key)?
            .and_then(|v| v.parse::<i64>().ok())
            .unwrap_or(0);
        let next = current.saturating_add(delta);
        self.overlay.insert(key.clone(), Some(next.to_string()));
        self.writes.push(StateWrite::Incr { key, delta });
        Ok(next)
    }

    fn record_log(&mut self, level: LogLevel, message: String, fields: Vec<(String, String)>) {
        // Logging never fails the guest: past the bounds, records are
        // counted and dropped.
        if self.logs.len() >= bounds::MAX_LOG_RECORDS {
            self.logs_dropped = self.logs_dropped.saturating_add(1);
            return;
        }
        let mut budget = bounds::MAX_LOG_RECORD_BYTES;
        let message = truncate(message, budget);
        budget -= message.len();
        let mut kept = Vec::new();
        for (k, v) in fields.into_iter().take(bounds::MAX_LOG_FIELDS) {
            if k.len() + v.len() > budget {
                break;
            }
            budget -= k.len() + v.len();
            kept.push((k, v));
        }
        self.logs.push(LogRecord {
            level,
            message,
            fields: kept,
        });
    }
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// The imports are the same in every contract version: each version's
/// generated traits forward to the one implementation above.
macro_rules! host_imports {
    ($version:ident) => {
        impl $version::airlock::policy::types::Host for GuestContext {}

        impl $version::airlock::policy::state::Host for GuestContext {
            fn get(&mut self, key: String) -> Result<Option<String>> {
                self.state_get(key)
            }
            fn set(&mut self, key: String, value: String) -> Result<()> {
                self.state_set(key, value)
            }
            fn incr(&mut self, key: String, delta: i64) -> Result<i64> {
                self.state_incr(key, delta)
            }
        }

        impl $version::airlock::policy::log::Host for GuestContext {
            fn log(
                &mut self,
                level: $version::airlock::policy::log::Level,
                message: String,
                fields: Vec<(String, String)>,
            ) -> Result<()> {
                use $version::airlock::policy::log::Level as L;
                let level = match level {
                    L::Debug => LogLevel::Debug,
                    L::Info => LogLevel::Info,
                    L::Warn => LogLevel::Warn,
                    L::Error => LogLevel::Error,
                };
                self.record_log(level, message, fields);
                Ok(())
            }
        }
    };
}

host_imports!(v1);
host_imports!(v2);

impl ResourceLimiter for GuestContext {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        if desired > self.memory_cap {
            self.memory_refused = true;
            return Ok(false);
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> Result<bool> {
        Ok(desired <= 100_000)
    }
}

impl WasiView for GuestContext {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        // Nothing is granted: no preopened directories, no environment, no
        // arguments, no stdin, no sockets. Output is captured and bounded.
        let (ctx, table, _) = self.wasi.get_or_insert_with(|| {
            let output = MemoryOutputPipe::new(bounds::MAX_GUEST_OUTPUT);
            let ctx = wasmtime_wasi::WasiCtxBuilder::new()
                .stdout(output.clone())
                .stderr(output.clone())
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .build();
            (ctx, ResourceTable::new(), output)
        });
        WasiCtxView { ctx, table }
    }
}
