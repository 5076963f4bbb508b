//! Spare instances: made ahead of use, each used for exactly one decision.
//!
//! A Python or JavaScript policy carries its language runtime: instantiating
//! one costs ~0.5-1 ms (linking thousands of functions between the runtime's
//! core modules, then page faults on its memory image), where its decision
//! takes tens of µs. An instance is never reused, not even within a session:
//! whatever a guest leaves in its memory or globals could otherwise steer a
//! later decision outside the audited `state` interface. Instead, the
//! instantiation moves off the request path: a background thread keeps a
//! few instances ready per policy, each warmed by a `describe()` call (which
//! takes no input, so every spare is in the same state and none has seen a
//! request), and discards used ones (which unmaps their memory) after their
//! decision.
//!
//! When decisions come faster than the worker makes instances, a decision
//! finds no spare and instantiates inline: slower, never less isolated.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Weak};
use std::thread;

use super::contract::PolicyPre;
use super::engine::{EngineShared, FreshInstance};
use super::limits::Limits;

/// One policy version's spares. Owned by its [`PolicyModule`](super::PolicyModule):
/// when a reload drops the module, its spares go with it.
pub(super) struct Spares {
    engine: Arc<EngineShared>,
    pre: PolicyPre,
    /// The limits spares are made under: those the role loaded the policy
    /// with. A decision under other limits instantiates inline.
    limits: Limits,
    depth: usize,
    ready: Mutex<Vec<FreshInstance>>,
    refill_queued: AtomicBool,
}

impl Spares {
    pub fn new(engine: Arc<EngineShared>, pre: PolicyPre, limits: Limits, depth: usize) -> Arc<Spares> {
        Arc::new(Spares {
            engine,
            pre,
            limits,
            depth,
            ready: Mutex::new(Vec::with_capacity(depth)),
            refill_queued: AtomicBool::new(false),
        })
    }

    /// A never-used instance made under `limits`, if one is ready. Asks the
    /// worker to make another either way.
    pub fn take(self: &Arc<Self>, limits: &Limits) -> Option<FreshInstance> {
        if *limits != self.limits {
            return None;
        }
        let spare = self.ready.lock().ok().and_then(|mut ready| ready.pop());
        self.request_refill();
        spare
    }

    /// Queue a refill unless one is already queued.
    pub fn request_refill(self: &Arc<Self>) {
        if !self.refill_queued.swap(true, Ordering::AcqRel) {
            self.engine.spare_worker().send(Job::Refill(Arc::downgrade(self)));
        }
    }

    /// Hand a used instance to the worker to drop, or drop it here when the
    /// worker is behind: used instances hold pool slots, and a backlog of
    /// them would leave none for new instances.
    pub fn discard(&self, used: FreshInstance) {
        let worker = self.engine.spare_worker();
        if worker.backlog.load(Ordering::Acquire) >= MAX_DISCARD_BACKLOG {
            drop(used);
        } else {
            worker.backlog.fetch_add(1, Ordering::AcqRel);
            worker.send(Job::Discard(Box::new(used)));
        }
    }

    /// Make spares up to the depth, at most `depth` of them per job: when
    /// decisions take spares as fast as they come, the worker must still
    /// get to the discards queued behind this job.
    fn refill(&self) {
        // Cleared first: a take during the refill queues another pass.
        self.refill_queued.store(false, Ordering::Release);
        for _ in 0..self.depth {
            if !self.ready.lock().map(|r| r.len() < self.depth).unwrap_or(false) {
                return;
            }
            // A policy whose start-up fails gets no spares; its decisions
            // instantiate inline and report the failure.
            let Ok(mut instance) = self.engine.instantiate(&self.pre, &self.limits) else {
                return;
            };
            if !instance.warm_up(&self.limits, &self.engine) {
                return;
            }
            match self.ready.lock() {
                Ok(mut ready) => ready.push(instance),
                Err(_) => return,
            }
        }
    }
}

/// Used instances waiting for the worker, past which decisions drop their
/// own instance.
const MAX_DISCARD_BACKLOG: usize = 8;

enum Job {
    Refill(Weak<Spares>),
    Discard(Box<FreshInstance>),
}

/// The engine's one spare-instance thread. It ends when the engine and every
/// policy loaded from it are gone (the channel then disconnects).
pub(super) struct SpareWorker {
    jobs: mpsc::Sender<Job>,
    /// Discard jobs sent and not yet done.
    backlog: Arc<AtomicUsize>,
}

impl SpareWorker {
    pub fn start() -> std::io::Result<SpareWorker> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let backlog = Arc::new(AtomicUsize::new(0));
        let done = backlog.clone();
        thread::Builder::new()
            .name("airlock-spares".into())
            .spawn(move || {
                for job in queue {
                    match job {
                        Job::Refill(spares) => {
                            if let Some(spares) = spares.upgrade() {
                                spares.refill();
                            }
                        }
                        Job::Discard(used) => {
                            drop(used);
                            done.fetch_sub(1, Ordering::AcqRel);
                        }
                    }
                }
            })?;
        Ok(SpareWorker { jobs, backlog })
    }

    fn send(&self, job: Job) {
        // The worker only stops once every sender is gone, so a send cannot
        // fail while `self` exists; a job it could not take is dropped here.
        let _ = self.jobs.send(job);
    }
}
