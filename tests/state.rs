//! The state stores keep one contract. Every scenario here runs against
//! the in-memory store, the embedded SQLite store and a real Redis, through
//! `Arc<dyn Store>`: what the proxy sees must not depend on the backend.
//! Then what only Redis has: several handles on one server (two replicas),
//! keys that expire with their sessions, a password, and a server that
//! dies, stalls and comes back.

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use airlock::policy::StateWrite;
use airlock::state::{
    ApprovalError, Begin, Commit, CommitOutcome, EscalatedRequest, MemoryStore, NewSession, RedisOptions,
    RedisStore, Session, SessionLookup, Store, TokenRecord, TokenStatus,
};
use support::redis::RedisServer;

const MINUTE: Duration = Duration::from_secs(60);

fn now_ms() -> u64 {
    // Redis expires keys by its own clock, so scenarios run at real time.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64
}

/// Two handles on one store: the same object for a process-local store,
/// two independent connections (two replicas) for Redis.
struct Stores {
    a: Arc<dyn Store>,
    b: Arc<dyn Store>,
    _keep: Option<tempfile::TempDir>,
}

fn memory() -> Stores {
    let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
    Stores {
        a: store.clone(),
        b: store,
        _keep: None,
    }
}

fn sqlite() -> Stores {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: Arc<dyn Store> =
        Arc::new(MemoryStore::durable(&dir.path().join("state.db"), false, now_ms()).expect("open"));
    Stores {
        a: store.clone(),
        b: store,
        _keep: Some(dir),
    }
}

fn shared_redis() -> &'static RedisServer {
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SERVER.get_or_init(|| RedisServer::start(None))
}

fn redis_store(url: String, prefix: &str, password: Option<&str>, deadline_ms: u64) -> RedisStore {
    RedisStore::new(RedisOptions {
        url,
        password: password.map(String::from),
        key_prefix: prefix.into(),
        deadline: Duration::from_millis(deadline_ms),
    })
    .expect("redis store")
}

/// Two stores on one Redis, under a prefix of their own (scenarios run in
/// parallel on one server).
fn redis(test: &str) -> Stores {
    let url = shared_redis().url();
    let prefix = format!("test:{test}:");
    Stores {
        a: Arc::new(redis_store(url.clone(), &prefix, None, 2000)),
        b: Arc::new(redis_store(url, &prefix, None, 2000)),
        _keep: None,
    }
}

macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod memory_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::memory()).await } )* }
        mod sqlite_store { $( #[tokio::test] async fn $scenario() { super::$scenario(super::sqlite()).await } )* }
        mod redis_store {
            $( #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
               async fn $scenario() { super::$scenario(super::redis(stringify!($scenario))).await } )*
        }
    };
}

on_every_backend!(
    sessions_are_looked_up_listed_and_revoked,
    the_rate_window_is_exact_and_refused_requests_count_only_in_the_total,
    commits_apply_writes_in_order_and_refuse_on_a_changed_read,
    increments_treat_non_integers_as_zero_and_saturate,
    a_budget_is_never_exceeded_by_parallel_commits_on_two_handles,
    an_approval_is_decided_once_and_used_once_across_handles,
    a_single_use_token_is_accepted_once_across_handles,
    tokens_die_with_revocation_expiry_and_their_session,
    revoking_a_workflow_revokes_its_sessions_for_good,
    commits_on_a_gone_revoked_or_foreign_session_fail,
    operators_set_and_unset_workflow_state,
);

fn new_session(role: &str, workflow: &str, ttl: Duration) -> NewSession {
    NewSession {
        agent: "agent-1".into(),
        role: role.into(),
        workflow: workflow.into(),
        on_behalf_of: Some("alice".into()),
        intent: Some("triage crash 42".into()),
        ttl,
    }
}

fn limits(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect()
}

async fn begin(
    store: &dyn Store,
    handle: &str,
    approval: Option<&str>,
    limits: &BTreeMap<String, u32>,
    now_ms: u64,
) -> airlock::state::Started {
    store
        .begin(&Begin {
            handle,
            approval,
            rate_limits: limits,
            now_ms,
        })
        .await
        .expect("begin")
}

fn commit<'a>(
    s: &'a Session,
    reads: &'a [(String, Option<String>)],
    writes: &'a [StateWrite],
    now_ms: u64,
) -> Commit<'a> {
    Commit {
        workflow: &s.workflow,
        session_id: &s.id,
        operation: "tasks.create",
        reads,
        writes,
        max_grants: None,
        approval: None,
        token: None,
        now_ms,
    }
}

fn set(key: &str, value: &str) -> StateWrite {
    StateWrite::Set {
        key: key.into(),
        value: value.into(),
    }
}

fn incr(key: &str, delta: i64) -> StateWrite {
    StateWrite::Incr {
        key: key.into(),
        delta,
    }
}

fn token(jti: &str, s: &Session, expires_at: u64, single_use: bool) -> TokenRecord {
    TokenRecord {
        jti: jti.into(),
        session: s.id.clone(),
        workflow: s.workflow.clone(),
        agent: s.agent.clone(),
        audience: "code".into(),
        scope: "issues:read".into(),
        issued_at: now_ms() / 1000,
        expires_at,
        single_use,
        request_binding: "sha256:abc".into(),
    }
}

fn escalation(s: &Session) -> EscalatedRequest {
    EscalatedRequest {
        request_hash: "sha256:req".into(),
        session: s.id.clone(),
        agent: s.agent.clone(),
        role: s.role.clone(),
        workflow: s.workflow.clone(),
        service: "code".into(),
        operation: "pulls.merge".into(),
        method: "PUT".into(),
        path: "/repos/acme/shop/pulls/7/merge".into(),
        reason: "needs a human".into(),
        decision_id: "dec_1".into(),
    }
}

// ------------------------------------------------------------- scenarios

async fn sessions_are_looked_up_listed_and_revoked(stores: Stores) {
    let t0 = now_ms();
    let (first, handle) = stores
        .a
        .create_session(new_session("dev", "wf-1", MINUTE), t0)
        .await
        .unwrap();
    let (second, _) = stores
        .a
        .create_session(new_session("dev", "wf-1", MINUTE), t0 + 1)
        .await
        .unwrap();
    assert!(handle.starts_with("alh_") && first.id.starts_with("ses_"));
    assert_eq!(first.expires_at_ms, t0 + 60_000);
    // Created through one handle, seen through the other, whole.
    assert_eq!(
        stores.b.lookup_handle(&handle, t0 + 5).await.unwrap(),
        SessionLookup::Active(first.clone())
    );
    assert_eq!(
        stores.b.get_session(&first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        stores.b.lookup_handle("alh_not-a-handle", t0).await.unwrap(),
        SessionLookup::Unknown
    );
    assert_eq!(stores.b.get_session("ses_unknown").await.unwrap(), None);
    let ids: Vec<String> = stores
        .b
        .list_sessions(t0 + 5)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![first.id.clone(), second.id.clone()], "oldest first");
    // Expired: still reported as such (an actionable error), not listed.
    assert!(matches!(
        stores.b.lookup_handle(&handle, t0 + 60_000).await.unwrap(),
        SessionLookup::Expired(_)
    ));
    assert_eq!(stores.b.list_sessions(t0 + 60_001).await.unwrap(), vec![]);
    // Revoked on A: B sees it at once, and it wins over expiry.
    assert!(stores.a.revoke_session(&first.id).await.unwrap());
    assert!(!stores.a.revoke_session("ses_unknown").await.unwrap());
    let SessionLookup::Revoked(revoked) = stores.b.lookup_handle(&handle, t0 + 120_000).await.unwrap() else {
        panic!("revoked session not reported revoked");
    };
    assert!(revoked.revoked);
    let started = begin(&*stores.b, &handle, None, &limits(&[]), t0 + 6).await;
    assert!(matches!(started.lookup, SessionLookup::Revoked(_)));
    assert_eq!(started.rate, None, "a revoked session is not counted");
    let ids: Vec<String> = stores
        .b
        .list_sessions(t0 + 5)
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(ids, vec![second.id]);
}

async fn the_rate_window_is_exact_and_refused_requests_count_only_in_the_total(stores: Stores) {
    let t0 = now_ms();
    let (s, h) = stores
        .a
        .create_session(new_session("dev", "wf-rate", 10 * MINUTE), t0)
        .await
        .unwrap();
    let limits = limits(&[("dev", 3), ("other", 1)]);
    for (i, store) in [&stores.a, &stores.b, &stores.a].into_iter().enumerate() {
        let started = begin(&**store, &h, None, &limits, t0 + i as u64 * 1000).await;
        let rate = started.rate.expect("active");
        assert!(rate.allowed, "request {i} is within the limit");
        assert_eq!(rate.usage.requests_total, i as u64);
        assert_eq!(rate.usage.requests_in_window, i as u32);
        assert_eq!(rate.usage.window_seconds, 60);
        assert_eq!(rate.usage.session_started_ms, s.created_at_ms);
    }
    // The fourth in the minute is refused until the first leaves, 60 s after it.
    let refused = begin(&*stores.b, &h, None, &limits, t0 + 10_000)
        .await
        .rate
        .unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.retry_after, Some(Duration::from_millis(50_000)));
    assert_eq!(
        (refused.usage.requests_total, refused.usage.requests_in_window),
        (3, 3)
    );
    // A refused request counts in the total, never in the window.
    let again = begin(&*stores.a, &h, None, &limits, t0 + 59_999)
        .await
        .rate
        .unwrap();
    assert!(!again.allowed);
    assert_eq!(again.retry_after, Some(Duration::from_millis(1)));
    assert_eq!(
        (again.usage.requests_total, again.usage.requests_in_window),
        (4, 3)
    );
    let moved = begin(&*stores.b, &h, None, &limits, t0 + 60_000)
        .await
        .rate
        .unwrap();
    assert!(moved.allowed, "the first request left the window");
    assert_eq!(
        (moved.usage.requests_total, moved.usage.requests_in_window),
        (5, 2)
    );
    // A role without a limit (or 0) is unlimited, and still counted.
    let (_, free) = stores
        .a
        .create_session(new_session("free", "wf-rate", MINUTE), t0)
        .await
        .unwrap();
    for i in 0..20 {
        let rate = begin(&*stores.a, &free, None, &limits, t0).await.rate.unwrap();
        assert!(rate.allowed);
        assert_eq!(rate.usage.requests_in_window, i);
    }
}

async fn commits_apply_writes_in_order_and_refuse_on_a_changed_read(stores: Stores) {
    let t0 = now_ms();
    let (s, h) = stores
        .a
        .create_session(new_session("dev", "wf-c", MINUTE), t0)
        .await
        .unwrap();
    let writes = [
        set("stage", "triaged"),
        incr("fixes", 2),
        incr("fixes", 1),
        set("stage", "fixing"),
    ];
    let reads = [("stage".to_string(), None)];
    assert_eq!(
        stores
            .a
            .commit_allow(&commit(&s, &reads, &writes, t0))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    let state = stores.b.workflow_state("wf-c").await.unwrap();
    assert_eq!(
        state,
        BTreeMap::from([("fixes".into(), "3".into()), ("stage".into(), "fixing".into())])
    );
    // The snapshot begin hands the policy, and the grants it counted.
    let started = begin(&*stores.b, &h, None, &limits(&[]), t0 + 1).await;
    assert_eq!(started.state.workflow(), "wf-c");
    assert_eq!(started.state.values(), &state);
    assert_eq!(
        started.rate.unwrap().usage.grants,
        BTreeMap::from([("tasks.create".into(), 1)])
    );
    // A read that no longer holds commits nothing, and hands a fresh snapshot.
    let stale = [("stage".to_string(), Some("triaged".to_string()))];
    let outcome = stores
        .b
        .commit_allow(&commit(&s, &stale, &[set("stage", "merged")], t0 + 2))
        .await
        .unwrap();
    let CommitOutcome::StateChanged(fresh) = outcome else {
        panic!("stale read committed: {outcome:?}");
    };
    assert_eq!(fresh.values(), &state);
    assert_eq!(stores.a.workflow_state("wf-c").await.unwrap(), state);
    let grants = begin(&*stores.a, &h, None, &limits(&[]), t0 + 3)
        .await
        .rate
        .unwrap()
        .usage
        .grants;
    assert_eq!(
        grants.get("tasks.create"),
        Some(&1),
        "a refused commit counts no grant"
    );
    // Reads that hold (a value, an absent key) commit.
    let holding = [
        ("stage".to_string(), Some("fixing".to_string())),
        ("absent".to_string(), None),
    ];
    assert_eq!(
        stores
            .b
            .commit_allow(&commit(&s, &holding, &[], t0 + 4))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
}

async fn increments_treat_non_integers_as_zero_and_saturate(stores: Stores) {
    let t0 = now_ms();
    let (s, _) = stores
        .a
        .create_session(new_session("dev", "wf-i", MINUTE), t0)
        .await
        .unwrap();
    let seed: Vec<(String, Option<String>)> = [
        ("text", "abc"),
        ("plus", "+7"),
        ("zeros", "007"),
        ("minus_zero", "-0"),
        ("near_max", "9223372036854775800"),
        ("near_min", "-9223372036854775800"),
        ("too_long", "99999999999999999999"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), Some(v.to_string())))
    .collect();
    stores.a.set_workflow_state("wf-i", &seed).await.unwrap();
    let writes = [
        incr("text", 5),
        incr("plus", 1),
        incr("zeros", 1),
        incr("minus_zero", -1),
        incr("near_max", 100),
        incr("near_min", -100),
        incr("too_long", 2),
        incr("absent", -4),
    ];
    assert_eq!(
        stores
            .b
            .commit_allow(&commit(&s, &[], &writes, t0))
            .await
            .unwrap(),
        CommitOutcome::Committed
    );
    let state = stores.a.workflow_state("wf-i").await.unwrap();
    let expect = [
        ("text", "5"),
        ("plus", "8"),
        ("zeros", "8"),
        ("minus_zero", "-1"),
        ("near_max", "9223372036854775807"),
        ("near_min", "-9223372036854775808"),
        ("too_long", "2"),
        ("absent", "-4"),
    ];
    for (key, value) in expect {
        assert_eq!(state.get(key).map(String::as_str), Some(value), "{key}");
    }
}

async fn a_budget_is_never_exceeded_by_parallel_commits_on_two_handles(stores: Stores) {
    let t0 = now_ms();
    let (s, _) = stores
        .a
        .create_session(new_session("dev", "wf-b", MINUTE), t0)
        .await
        .unwrap();
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let store = if i % 2 == 0 {
                stores.a.clone()
            } else {
                stores.b.clone()
            };
            let s = s.clone();
            tokio::spawn(async move {
                let writes = [incr("tickets", 1)];
                let c = Commit {
                    max_grants: Some(7),
                    ..commit(&s, &[], &writes, t0)
                };
                store.commit_allow(&c).await.unwrap()
            })
        })
        .collect();
    let mut committed = 0;
    for task in tasks {
        match task.await.unwrap() {
            CommitOutcome::Committed => committed += 1,
            CommitOutcome::BudgetExhausted { limit: 7 } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(committed, 7);
    let state = stores.a.workflow_state("wf-b").await.unwrap();
    assert_eq!(
        state.get("tickets").map(String::as_str),
        Some("7"),
        "refused commits wrote nothing"
    );
}

async fn an_approval_is_decided_once_and_used_once_across_handles(stores: Stores) {
    let t0 = now_ms();
    let (s, h) = stores
        .a
        .create_session(new_session("dev", "wf-a", 10 * MINUTE), t0)
        .await
        .unwrap();
    let (other, _) = stores
        .a
        .create_session(new_session("dev", "wf-a", 10 * MINUTE), t0)
        .await
        .unwrap();
    let approval = stores
        .a
        .create_approval(escalation(&s), 60_000, t0)
        .await
        .unwrap();
    assert!(approval.id.starts_with("apr_"));
    assert_eq!(
        stores.b.get_approval(&approval.id).await.unwrap(),
        Some(approval.clone())
    );
    assert_eq!(approval.status(t0), "pending");
    let pending: Vec<String> = stores
        .b
        .list_approvals(t0, true)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(pending, vec![approval.id.clone()]);
    // Not yet approved: unusable, and nothing committed.
    let use_it = |session: &Session| {
        let s = session.clone();
        let id = approval.id.clone();
        move |store: Arc<dyn Store>, at: u64| async move {
            let c = Commit {
                approval: Some(&id),
                operation: "pulls.merge",
                ..commit(&s, &[], &[], at)
            };
            store.commit_allow(&c).await.unwrap()
        }
    };
    let outcome = use_it(&s)(stores.b.clone(), t0 + 1).await;
    assert_eq!(
        outcome,
        CommitOutcome::ApprovalUnusable(format!("approval {} is pending", approval.id))
    );
    // Decided through B, once.
    let decided = stores
        .b
        .decide_approval(&approval.id, true, "carol", Some("ok".into()), t0 + 2)
        .await
        .unwrap();
    assert_eq!(decided.status(t0 + 2), "approved");
    assert!(matches!(
        stores
            .a
            .decide_approval(&approval.id, false, "dave", None, t0 + 3)
            .await,
        Err(ApprovalError::NotPending {
            status: "approved",
            ..
        })
    ));
    assert!(matches!(
        stores
            .a
            .decide_approval("apr_unknown", true, "dave", None, t0)
            .await,
        Err(ApprovalError::NotFound(_))
    ));
    assert_eq!(stores.a.list_approvals(t0 + 3, true).await.unwrap(), vec![]);
    // Another session cannot use it.
    let outcome = use_it(&other)(stores.a.clone(), t0 + 4).await;
    assert_eq!(
        outcome,
        CommitOutcome::ApprovalUnusable(format!("approval {} was given to another session", approval.id))
    );
    // The session's begin shows it; used once, racing on both handles.
    let started = begin(&*stores.a, &h, Some(&approval.id), &limits(&[]), t0 + 5).await;
    assert_eq!(
        started.approval.as_ref().map(|a| a.status(t0 + 5)),
        Some("approved")
    );
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = if i % 2 == 0 {
                stores.a.clone()
            } else {
                stores.b.clone()
            };
            tokio::spawn(use_it(&s)(store, t0 + 6))
        })
        .collect();
    let mut used = 0;
    for r in racers {
        match r.await.unwrap() {
            CommitOutcome::Committed => used += 1,
            CommitOutcome::ApprovalUnusable(why) => {
                assert_eq!(why, format!("approval {} is used", approval.id))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(used, 1, "an approval goes through exactly once");
    let after = stores.a.get_approval(&approval.id).await.unwrap().unwrap();
    assert_eq!(after.status(t0 + 7), "used");
    assert_eq!(after.to_json(t0)["approver"], "carol");
    // Expiry, decided or not; denied ones are never usable.
    let late = stores
        .a
        .create_approval(escalation(&s), 999, t0 + 1)
        .await
        .unwrap();
    assert!(matches!(
        stores
            .b
            .decide_approval(&late.id, true, "carol", None, t0 + 1_000)
            .await,
        Err(ApprovalError::NotPending {
            status: "expired",
            ..
        })
    ));
    let denied = stores
        .a
        .create_approval(escalation(&s), 60_000, t0 + 10)
        .await
        .unwrap();
    stores
        .b
        .decide_approval(&denied.id, false, "carol", None, t0 + 11)
        .await
        .unwrap();
    let all: Vec<String> = stores
        .a
        .list_approvals(t0 + 12, false)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(
        all,
        vec![denied.id.clone(), late.id, approval.id.clone()],
        "newest first"
    );
    let c = Commit {
        approval: Some(&denied.id),
        ..commit(&s, &[], &[], t0 + 12)
    };
    assert_eq!(
        stores.a.commit_allow(&c).await.unwrap(),
        CommitOutcome::ApprovalUnusable(format!("approval {} is denied", denied.id))
    );
    let c = Commit {
        approval: Some("apr_gone"),
        ..commit(&s, &[], &[], t0)
    };
    assert_eq!(
        stores.a.commit_allow(&c).await.unwrap(),
        CommitOutcome::ApprovalUnusable("no approval \"apr_gone\"".into())
    );
}

async fn a_single_use_token_is_accepted_once_across_handles(stores: Stores) {
    let t0 = now_ms();
    let (s, _) = stores
        .a
        .create_session(new_session("dev", "wf-t", MINUTE), t0)
        .await
        .unwrap();
    let record = token("jti-once", &s, t0 / 1000 + 60, true);
    let c = Commit {
        token: Some(&record),
        ..commit(&s, &[], &[], t0)
    };
    assert_eq!(stores.a.commit_allow(&c).await.unwrap(), CommitOutcome::Committed);
    // A peek does not consume.
    assert_eq!(
        stores.b.token_status("jti-once", t0 / 1000, false).await.unwrap(),
        TokenStatus::Active(record.clone())
    );
    let racers: Vec<_> = (0..10)
        .map(|i| {
            let store = if i % 2 == 0 {
                stores.a.clone()
            } else {
                stores.b.clone()
            };
            tokio::spawn(async move { store.token_status("jti-once", t0 / 1000, true).await.unwrap() })
        })
        .collect();
    let mut accepted = 0;
    for r in racers {
        if r.await.unwrap().is_active() {
            accepted += 1;
        }
    }
    assert_eq!(accepted, 1);
    // A jti is recorded once, through either path.
    assert!(stores.b.commit_allow(&c).await.is_err());
    assert!(stores.b.record_token(record).await.is_err());
    // A reusable token stays active when introspected with consume.
    let reusable = token("jti-many", &s, t0 / 1000 + 60, false);
    stores.b.record_token(reusable.clone()).await.unwrap();
    for _ in 0..3 {
        assert!(
            stores
                .a
                .token_status("jti-many", t0 / 1000, true)
                .await
                .unwrap()
                .is_active()
        );
    }
}

async fn tokens_die_with_revocation_expiry_and_their_session(stores: Stores) {
    let t0 = now_ms();
    let now_s = t0 / 1000;
    let (s, _) = stores
        .a
        .create_session(new_session("dev", "wf-d", MINUTE), t0)
        .await
        .unwrap();
    stores
        .a
        .record_token(token("jti-r", &s, now_s + 60, false))
        .await
        .unwrap();
    stores
        .a
        .record_token(token("jti-e", &s, now_s + 10, false))
        .await
        .unwrap();
    stores
        .a
        .record_token(token("jti-s", &s, now_s + 60, false))
        .await
        .unwrap();
    assert!(stores.b.revoke_token("jti-r").await.unwrap());
    assert!(!stores.b.revoke_token("jti-unknown").await.unwrap());
    assert_eq!(
        stores.a.token_status("jti-r", now_s, false).await.unwrap(),
        TokenStatus::Inactive
    );
    assert!(
        stores
            .a
            .token_status("jti-e", now_s + 9, false)
            .await
            .unwrap()
            .is_active()
    );
    assert_eq!(
        stores.a.token_status("jti-e", now_s + 10, false).await.unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        stores.a.token_status("jti-unknown", now_s, true).await.unwrap(),
        TokenStatus::Inactive
    );
    assert!(
        stores
            .a
            .token_status("jti-s", now_s, false)
            .await
            .unwrap()
            .is_active()
    );
    stores.b.revoke_session(&s.id).await.unwrap();
    assert_eq!(
        stores.a.token_status("jti-s", now_s, false).await.unwrap(),
        TokenStatus::Inactive
    );
    // A token outliving its session's expiry is inactive with it.
    let (short, _) = stores
        .a
        .create_session(new_session("dev", "wf-d", Duration::from_secs(5)), t0)
        .await
        .unwrap();
    stores
        .a
        .record_token(token("jti-x", &short, now_s + 60, false))
        .await
        .unwrap();
    assert_eq!(
        stores.b.token_status("jti-x", now_s + 6, false).await.unwrap(),
        TokenStatus::Inactive
    );
}

async fn revoking_a_workflow_revokes_its_sessions_for_good(stores: Stores) {
    let t0 = now_ms();
    let (one, h1) = stores
        .a
        .create_session(new_session("dev", "wf-x", MINUTE), t0)
        .await
        .unwrap();
    let (two, _) = stores
        .a
        .create_session(new_session("qa", "wf-x", MINUTE), t0)
        .await
        .unwrap();
    let (elsewhere, h3) = stores
        .a
        .create_session(new_session("dev", "wf-y", MINUTE), t0)
        .await
        .unwrap();
    stores
        .a
        .record_token(token("jti-w", &two, t0 / 1000 + 60, false))
        .await
        .unwrap();
    assert!(!stores.a.workflow_revoked("wf-x").await.unwrap());
    let mut expect = vec![one.id.clone(), two.id.clone()];
    expect.sort();
    assert_eq!(stores.b.revoke_workflow("wf-x").await.unwrap(), expect);
    assert!(stores.a.workflow_revoked("wf-x").await.unwrap());
    assert!(matches!(
        stores.a.lookup_handle(&h1, t0).await.unwrap(),
        SessionLookup::Revoked(_)
    ));
    assert_eq!(
        stores.a.token_status("jti-w", t0 / 1000, false).await.unwrap(),
        TokenStatus::Inactive
    );
    assert!(matches!(
        stores.a.lookup_handle(&h3, t0).await.unwrap(),
        SessionLookup::Active(_)
    ));
    let refused = stores
        .a
        .create_session(new_session("dev", "wf-x", MINUTE), t0)
        .await
        .unwrap_err();
    assert!(refused.0.contains("\"wf-x\" is revoked"), "{refused}");
    // Again: nothing left to revoke, still revoked.
    assert_eq!(
        stores.b.revoke_workflow("wf-x").await.unwrap(),
        Vec::<String>::new()
    );
    assert_eq!(
        stores
            .a
            .get_session(&elsewhere.id)
            .await
            .unwrap()
            .map(|s| s.revoked),
        Some(false)
    );
}

async fn commits_on_a_gone_revoked_or_foreign_session_fail(stores: Stores) {
    let t0 = now_ms();
    let (s, _) = stores
        .a
        .create_session(new_session("dev", "wf-e", MINUTE), t0)
        .await
        .unwrap();
    let ghost = Session {
        id: "ses_ghost".into(),
        ..s.clone()
    };
    let e = stores
        .a
        .commit_allow(&commit(&ghost, &[], &[], t0))
        .await
        .unwrap_err();
    assert_eq!(e.0, "unknown session ses_ghost");
    let foreign = Session {
        workflow: "wf-other".into(),
        ..s.clone()
    };
    let e = stores
        .b
        .commit_allow(&commit(&foreign, &[], &[set("k", "v")], t0))
        .await
        .unwrap_err();
    assert_eq!(
        e.0,
        format!("session {} belongs to workflow \"wf-e\", not \"wf-other\"", s.id)
    );
    stores.a.revoke_session(&s.id).await.unwrap();
    let e = stores
        .b
        .commit_allow(&commit(&s, &[], &[set("k", "v")], t0))
        .await
        .unwrap_err();
    assert_eq!(e.0, format!("session {} is revoked", s.id));
    assert_eq!(stores.a.workflow_state("wf-e").await.unwrap(), BTreeMap::new());
    assert_eq!(
        stores.a.workflow_state("wf-other").await.unwrap(),
        BTreeMap::new()
    );
}

async fn operators_set_and_unset_workflow_state(stores: Stores) {
    let after = stores
        .a
        .set_workflow_state(
            "wf-o",
            &[
                ("stage".into(), Some("review".into())),
                ("lock".into(), Some("1".into())),
            ],
        )
        .await
        .unwrap();
    assert_eq!(after.len(), 2);
    let after = stores
        .b
        .set_workflow_state("wf-o", &[("lock".into(), None)])
        .await
        .unwrap();
    assert_eq!(after, BTreeMap::from([("stage".into(), "review".into())]));
    assert_eq!(stores.a.workflow_state("wf-o").await.unwrap(), after);
    assert_eq!(stores.a.workflow_state("wf-none").await.unwrap(), BTreeMap::new());
}

// ------------------------------------------------------------ Redis only

fn redis_command(url: &str, password: Option<&str>, args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url).expect("client");
    let mut conn = client.get_connection().expect("connect");
    if let Some(password) = password {
        redis::cmd("AUTH")
            .arg(password)
            .query::<()>(&mut conn)
            .expect("auth");
    }
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn).expect("command")
}

fn expire_time(url: &str, key: &str) -> i64 {
    match redis_command(url, None, &["PEXPIRETIME", key]) {
        redis::Value::Int(n) => n,
        other => panic!("PEXPIRETIME {key}: {other:?}"),
    }
}

#[tokio::test]
async fn redis_keys_expire_with_their_session_and_token() {
    let server = shared_redis();
    let store = redis_store(server.url(), "test:expiry:", None, 2000);
    let t0 = now_ms();
    let grace = 15 * 60 * 1000;
    let (s, h) = store
        .create_session(new_session("dev", "wf-exp", MINUTE), t0)
        .await
        .unwrap();
    let record = token("jti-exp", &s, t0 / 1000 + 30, true);
    let writes = [set("stage", "fixing")];
    let c = Commit {
        token: Some(&record),
        ..commit(&s, &[], &writes, t0)
    };
    assert_eq!(store.commit_allow(&c).await.unwrap(), CommitOutcome::Committed);
    begin(&store, &h, None, &limits(&[]), t0).await;
    let session_end = (s.expires_at_ms + grace) as i64;
    let digest = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(h.as_bytes()))
    };
    for key in [
        format!("s:{}", s.id),
        format!("h:{digest}"),
        format!("g:{}", s.id),
        "ws:wf-exp".into(),
        "wsess:wf-exp".into(),
    ] {
        assert_eq!(
            expire_time(&server.url(), &format!("test:expiry:{key}")),
            session_end,
            "{key}"
        );
    }
    assert_eq!(
        expire_time(&server.url(), "test:expiry:t:jti-exp"),
        ((t0 / 1000 + 30) * 1000) as i64
    );
    let window = expire_time(&server.url(), &format!("test:expiry:w:{}", s.id));
    assert!(
        window > t0 as i64 && window <= (t0 + 60_000) as i64 + 1_000,
        "{window}"
    );
    // The handle is stored only as its digest.
    let keys = redis_command(&server.url(), None, &["KEYS", "test:expiry:*"]);
    assert!(
        !format!("{keys:?}").contains(&h[4..]),
        "a handle reached Redis: {keys:?}"
    );
    store.revoke_workflow("wf-exp").await.unwrap();
    assert_eq!(
        expire_time(&server.url(), "test:expiry:wr:wf-exp"),
        -1,
        "a workflow stays revoked"
    );
}

#[tokio::test]
async fn redis_needs_its_password_and_the_password_never_shows_in_errors() {
    let server = RedisServer::start(Some("s3cret-redis-password"));
    let none = redis_store(server.url(), "test:pw:", None, 1000);
    let e = none.ping().await.unwrap_err();
    assert!(e.0.contains("NOAUTH") || e.0.contains("uthentication"), "{e}");
    let wrong = redis_store(server.url(), "test:pw:", Some("wrong-password"), 1000);
    let e = wrong.ping().await.unwrap_err();
    assert!(!e.0.contains("wrong-password"), "{e}");
    let right = redis_store(server.url(), "test:pw:", Some("s3cret-redis-password"), 1000);
    right.ping().await.unwrap();
    right
        .create_session(new_session("dev", "wf-pw", MINUTE), now_ms())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_or_stalled_redis_fails_within_the_deadline_and_service_resumes_with_nothing_lost() {
    let mut server = RedisServer::start(None);
    let store = redis_store(server.url(), "test:down:", None, 200);
    let t0 = now_ms();
    let (s, h) = store
        .create_session(new_session("dev", "wf-down", 10 * MINUTE), t0)
        .await
        .unwrap();
    let writes = [set("stage", "review")];
    store.commit_allow(&commit(&s, &[], &writes, t0)).await.unwrap();

    server.kill();
    let started = std::time::Instant::now();
    let e = store
        .begin(&Begin {
            handle: &h,
            approval: None,
            rate_limits: &limits(&[]),
            now_ms: t0,
        })
        .await
        .unwrap_err();
    assert!(
        e.0.starts_with(&format!("redis at 127.0.0.1:{}", server.port)),
        "{e}"
    );
    assert!(store.ping().await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    // Back (same port, its append-only file): no restart of ours needed,
    // and everything answered before the crash is there.
    server.restart();
    store.ping().await.expect("reconnects by itself");
    assert!(matches!(
        store.lookup_handle(&h, t0 + 1).await.unwrap(),
        SessionLookup::Active(_)
    ));
    assert_eq!(
        store.workflow_state("wf-down").await.unwrap(),
        BTreeMap::from([("stage".into(), "review".into())])
    );

    // Stalled past the deadline: refused in time, then served again.
    let url = server.url();
    let stall = std::thread::spawn(move || redis_command(&url, None, &["DEBUG", "SLEEP", "1.5"]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let e = store.lookup_handle(&h, t0 + 2).await.unwrap_err();
    assert!(e.0.ends_with("no answer within 200 ms"), "{e}");
    assert!(started.elapsed() < Duration::from_millis(1_000));
    stall.join().expect("stall");
    assert!(matches!(
        store.lookup_handle(&h, t0 + 3).await.unwrap(),
        SessionLookup::Active(_)
    ));

    // A store made while Redis is down starts, and serves once it is up.
    server.kill();
    let late = redis_store(server.url(), "test:down:", None, 200);
    assert!(late.ping().await.is_err());
    server.restart();
    assert!(matches!(
        late.lookup_handle(&h, t0 + 4).await.unwrap(),
        SessionLookup::Active(_)
    ));
}
