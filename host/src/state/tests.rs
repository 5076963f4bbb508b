use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::memory::{EXPIRED_GRACE_MS, PRUNE_MIN};
use super::*;
use crate::policy::WorkflowState;

const T0: u64 = 1_700_000_000_500; // ms; half-way through a second on purpose
const MINUTE: Duration = Duration::from_secs(60);

fn new_session(workflow: &str, ttl: Duration) -> NewSession {
    NewSession {
        agent: "agent-1".into(),
        role: "crash-tracker".into(),
        workflow: workflow.into(),
        on_behalf_of: Some("alice".into()),
        intent: Some("triage crash 42".into()),
        ttl,
    }
}

/// `commit_allow` without budget or approval: `Ok(true)` when committed,
/// `Ok(false)` when a read changed.
trait CommitSimple {
    fn commit_simple(
        &self,
        workflow: &str,
        session_id: &str,
        operation: &str,
        reads: &[(String, Option<String>)],
        writes: &[StateWrite],
    ) -> Result<bool, StateError>;
}

impl CommitSimple for MemoryStore {
    fn commit_simple(
        &self,
        workflow: &str,
        session_id: &str,
        operation: &str,
        reads: &[(String, Option<String>)],
        writes: &[StateWrite],
    ) -> Result<bool, StateError> {
        let outcome = self.commit_allow(&Commit {
            workflow,
            session_id,
            operation,
            reads,
            writes,
            max_grants: None,
            approval: None,
            token: None,
            now_ms: T0,
        })?;
        match outcome {
            CommitOutcome::Committed => Ok(true),
            CommitOutcome::StateChanged(_) => Ok(false),
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn session(store: &MemoryStore, ttl: Duration) -> (Session, String) {
    store.create_session(new_session("wf-1", ttl), T0).unwrap()
}

fn token(jti: &str, session: &Session, expires_at: u64, single_use: bool) -> TokenRecord {
    TokenRecord {
        jti: jti.into(),
        session: session.id.clone(),
        workflow: session.workflow.clone(),
        agent: session.agent.clone(),
        audience: "code".into(),
        scope: "issues:read".into(),
        issued_at: T0 / 1000,
        expires_at,
        single_use,
        request_binding: "sha256:abc".into(),
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

fn read(key: &str, value: Option<&str>) -> (String, Option<String>) {
    (key.into(), value.map(String::from))
}

// ---------------------------------------------------------------- sessions

#[test]
fn handle_is_256_random_bits_and_stored_only_as_its_digest() {
    let store = MemoryStore::new();
    let mut handles = Vec::new();
    for _ in 0..64 {
        let (s, handle) = session(&store, MINUTE);
        let body = handle.strip_prefix(HANDLE_PREFIX).expect("alh_ prefix");
        let bytes = URL_SAFE_NO_PAD.decode(body).expect("base64url");
        assert_eq!(bytes.len(), 32, "256 bits");
        assert!(s.id.starts_with(SESSION_PREFIX));
        assert_eq!(URL_SAFE_NO_PAD.decode(&s.id[4..]).unwrap().len(), 16);
        handles.push((handle, bytes, s));
    }
    let distinct: HashSet<_> = handles.iter().map(|(h, _, _)| h.clone()).collect();
    assert_eq!(distinct.len(), handles.len());
    // No byte position is stuck (a broken generator, or a counter).
    for i in 0..32 {
        let values: HashSet<u8> = handles.iter().map(|(_, b, _)| b[i]).collect();
        assert!(values.len() > 8, "byte {i} barely varies: {values:?}");
    }

    let inner = store.inner.read().unwrap();
    let dump = format!("{inner:?}");
    for (handle, bytes, s) in &handles {
        let body = &handle[HANDLE_PREFIX.len()..];
        assert!(!dump.contains(body), "the handle is stored in clear");
        assert!(!dump.contains(&hex::encode(bytes)), "the handle is stored in hex");
        let digest: [u8; 32] = Sha256::digest(handle.as_bytes()).into();
        assert_eq!(inner.handles.get(&digest), Some(&s.id));
        // A session never carries its handle.
        assert!(!serde_json::to_string(s).unwrap().contains(body));
    }
    assert_eq!(inner.handles.len(), 64);
}

#[test]
fn lookup_reports_active_expired_revoked_and_unknown() {
    let store = MemoryStore::new();
    let (s, handle) = session(&store, MINUTE);
    assert_eq!(s.created_at_ms, T0);
    assert_eq!(s.expires_at_ms, T0 + 60_000);
    assert_eq!(s.remaining(T0 + 10_000), Duration::from_secs(50));
    assert_eq!(s.remaining(T0 + 90_000), Duration::ZERO);

    assert_eq!(
        store.lookup_handle(&handle, T0).unwrap(),
        SessionLookup::Active(s.clone())
    );
    assert_eq!(
        store.lookup_handle(&handle, T0 + 59_999).unwrap(),
        SessionLookup::Active(s.clone())
    );
    assert_eq!(
        store.lookup_handle(&handle, T0 + 60_000).unwrap(),
        SessionLookup::Expired(s.clone())
    );

    let (other, _) = session(&store, MINUTE);
    for bogus in [
        String::new(),
        "alh_".into(),
        handle[..handle.len() - 1].to_string(),
        format!("{handle}x"),
        other.id.clone(), // an id is not a handle
        s.id.clone(),
        format!("{HANDLE_PREFIX}{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
    ] {
        assert_eq!(
            store.lookup_handle(&bogus, T0).unwrap(),
            SessionLookup::Unknown,
            "{bogus}"
        );
    }

    assert!(store.revoke_session(&s.id).unwrap());
    let revoked = Session {
        revoked: true,
        ..s.clone()
    };
    assert_eq!(
        store.lookup_handle(&handle, T0).unwrap(),
        SessionLookup::Revoked(revoked.clone())
    );
    // Revoked wins over expired.
    assert_eq!(
        store.lookup_handle(&handle, T0 + 120_000).unwrap(),
        SessionLookup::Revoked(revoked.clone())
    );
    assert_eq!(store.get_session(&s.id).unwrap(), Some(revoked));
    assert!(!store.revoke_session("ses_nope").unwrap());
    assert_eq!(store.get_session("ses_nope").unwrap(), None);
}

#[test]
fn list_sessions_holds_active_ones_oldest_first() {
    let store = MemoryStore::new();
    let late = store.create_session(new_session("wf", MINUTE), T0 + 2).unwrap().0;
    let early = store.create_session(new_session("wf", MINUTE), T0).unwrap().0;
    let short = store
        .create_session(new_session("wf", Duration::from_millis(10)), T0 + 1)
        .unwrap()
        .0;
    let revoked = store.create_session(new_session("wf", MINUTE), T0 + 1).unwrap().0;
    store.revoke_session(&revoked.id).unwrap();

    let ids = |v: Vec<Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_sessions(T0 + 5).unwrap()),
        [early.id.clone(), short.id.clone(), late.id.clone()]
    );
    assert_eq!(ids(store.list_sessions(T0 + 11).unwrap()), [early.id, late.id]);
    assert!(store.list_sessions(T0 + 70_000).unwrap().is_empty());
}

#[test]
fn expired_sessions_and_tokens_are_pruned_once_the_maps_grow() {
    let store = MemoryStore::new();
    let (old, old_handle) = session(&store, MINUTE);
    store
        .record_token(token("old", &old, T0 / 1000 + 60, false))
        .unwrap();
    for _ in 1..PRUNE_MIN {
        store
            .create_session(new_session("wf", Duration::from_secs(1)), T0)
            .unwrap();
    }
    // Within the grace period an expired session is kept (and reported).
    let soon = T0 + 61_000;
    let (_, soon_handle) = store.create_session(new_session("wf", MINUTE), soon).unwrap();
    assert_eq!(store.inner.read().unwrap().sessions.len(), PRUNE_MIN + 1);
    assert!(matches!(
        store.lookup_handle(&old_handle, soon).unwrap(),
        SessionLookup::Expired(_)
    ));
    for _ in PRUNE_MIN + 1..2 * PRUNE_MIN {
        store.create_session(new_session("wf", MINUTE), soon).unwrap();
    }
    let later = soon + 60_000 + EXPIRED_GRACE_MS;
    let (live, live_handle) = store.create_session(new_session("wf", MINUTE), later).unwrap();
    {
        let inner = store.inner.read().unwrap();
        assert_eq!(inner.sessions.len(), 1, "only the new session is left");
        assert_eq!(inner.handles.len(), 1);
    }
    assert_eq!(
        store.lookup_handle(&old_handle, later).unwrap(),
        SessionLookup::Unknown
    );
    assert_eq!(
        store.lookup_handle(&soon_handle, later).unwrap(),
        SessionLookup::Unknown
    );
    assert!(matches!(
        store.lookup_handle(&live_handle, later).unwrap(),
        SessionLookup::Active(_)
    ));

    let now_s = later / 1000;
    let live_token = |i: usize| {
        let mut t = token(&format!("t{i}"), &live, now_s + 30, false);
        t.issued_at = now_s;
        t
    };
    for i in 1..PRUNE_MIN {
        store.record_token(live_token(i)).unwrap();
    }
    assert_eq!(store.inner.read().unwrap().tokens.len(), PRUNE_MIN);
    store.record_token(live_token(0)).unwrap();
    assert_eq!(
        store.inner.read().unwrap().tokens.len(),
        PRUNE_MIN,
        "old is dropped, t* are kept"
    );
    assert_eq!(
        store.token_status("old", now_s, false).unwrap(),
        TokenStatus::Inactive
    );
    assert!(store.token_status("t0", now_s, false).unwrap().is_active());
    assert!(store.token_status("t1", now_s, false).unwrap().is_active());
}

// ------------------------------------------------------------------ tokens

#[test]
fn revoking_a_session_makes_its_tokens_inactive() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    let (other, _) = session(&store, MINUTE);
    let exp = T0 / 1000 + 60;
    store.record_token(token("a", &s, exp, false)).unwrap();
    store.record_token(token("b", &s, exp, true)).unwrap();
    store.record_token(token("c", &other, exp, false)).unwrap();
    let now_s = T0 / 1000;
    for jti in ["a", "b", "c"] {
        assert!(
            store.token_status(jti, now_s, false).unwrap().is_active(),
            "{jti}"
        );
    }
    assert!(store.revoke_session(&s.id).unwrap());
    assert_eq!(
        store.token_status("a", now_s, false).unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        store.token_status("b", now_s, true).unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        store.token_status("c", now_s, false).unwrap(),
        TokenStatus::Active(token("c", &other, exp, false))
    );
}

#[test]
fn a_single_use_token_is_active_once() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    let now_s = T0 / 1000;
    let record = token("once", &s, now_s + 30, true);
    store.record_token(record.clone()).unwrap();
    // Peeking does not use it up.
    assert_eq!(
        store.token_status("once", now_s, false).unwrap(),
        TokenStatus::Active(record.clone())
    );
    assert_eq!(
        store.token_status("once", now_s, false).unwrap(),
        TokenStatus::Active(record.clone())
    );
    assert_eq!(
        store.token_status("once", now_s, true).unwrap(),
        TokenStatus::Active(record)
    );
    assert_eq!(
        store.token_status("once", now_s, true).unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        store.token_status("once", now_s, false).unwrap(),
        TokenStatus::Inactive
    );

    // A reusable token stays active when consumed.
    store.record_token(token("many", &s, now_s + 30, false)).unwrap();
    for _ in 0..3 {
        assert!(store.token_status("many", now_s, true).unwrap().is_active());
    }
}

#[test]
fn a_single_use_token_is_consumed_by_exactly_one_of_many_threads() {
    let store = Arc::new(MemoryStore::new());
    let (s, _) = session(&store, MINUTE);
    let now_s = T0 / 1000;
    store.record_token(token("once", &s, now_s + 30, true)).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let actives: usize = (0..8)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..50)
                    .filter(|_| store.token_status("once", now_s, true).unwrap().is_active())
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(actives, 1);
}

#[test]
fn expired_or_unknown_or_revoked_tokens_are_inactive() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, Duration::from_secs(120));
    let now_s = T0 / 1000;
    store.record_token(token("t", &s, now_s + 30, false)).unwrap();
    assert!(store.token_status("t", now_s + 29, false).unwrap().is_active());
    assert_eq!(
        store.token_status("t", now_s + 30, false).unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        store.token_status("t", now_s + 31, true).unwrap(),
        TokenStatus::Inactive
    );
    assert_eq!(
        store.token_status("nope", now_s, true).unwrap(),
        TokenStatus::Inactive
    );

    // A token outliving its session is inactive when the session ends.
    store.record_token(token("long", &s, now_s + 600, false)).unwrap();
    assert!(
        store
            .token_status("long", now_s + 119, false)
            .unwrap()
            .is_active()
    );
    assert_eq!(
        store.token_status("long", now_s + 121, false).unwrap(),
        TokenStatus::Inactive
    );

    // RFC 7009 revocation.
    store.record_token(token("r", &s, now_s + 30, false)).unwrap();
    assert!(store.revoke_token("r").unwrap());
    assert_eq!(
        store.token_status("r", now_s, false).unwrap(),
        TokenStatus::Inactive
    );
    assert!(!store.revoke_token("nope").unwrap());

    // Tokens of a session the store does not know are never active.
    let mut ghost = token("ghost", &s, now_s + 30, false);
    ghost.session = "ses_ghost".into();
    store.record_token(ghost).unwrap();
    assert_eq!(
        store.token_status("ghost", now_s, false).unwrap(),
        TokenStatus::Inactive
    );
}

#[test]
fn a_jti_is_recorded_once() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    store
        .record_token(token("dup", &s, T0 / 1000 + 30, false))
        .unwrap();
    let err = store
        .record_token(token("dup", &s, T0 / 1000 + 30, true))
        .unwrap_err();
    assert!(err.0.contains("dup"), "{err}");
    // The first record stands.
    match store.token_status("dup", T0 / 1000, false).unwrap() {
        TokenStatus::Active(r) => assert!(!r.single_use),
        TokenStatus::Inactive => panic!("first record lost"),
    }
}

// -------------------------------------------------------------- rate window

#[test]
fn the_fourth_request_in_a_minute_is_refused_until_the_window_moves() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, Duration::from_secs(3600));
    for i in 0..3 {
        let check = store.take_request(&s, 3, T0 + i * 100).unwrap();
        assert!(check.allowed, "request {i}");
        assert_eq!(check.retry_after, None);
    }
    let refused = store.take_request(&s, 3, T0 + 300).unwrap();
    assert!(!refused.allowed);
    let retry = refused.retry_after.expect("retry_after on refusal");
    assert!(retry <= MINUTE && retry > Duration::ZERO, "{retry:?}");
    // The first request leaves the window 60 s after it was made.
    assert_eq!(retry, Duration::from_millis(60_000 - 300));

    let at = T0 + 300 + u64::try_from(retry.as_millis()).unwrap();
    assert!(!store.take_request(&s, 3, at - 1).unwrap().allowed, "just before");
    assert!(store.take_request(&s, 3, at).unwrap().allowed, "room again");
    assert!(!store.take_request(&s, 3, at).unwrap().allowed, "full again");

    // A minute after the burst, the window is clear of it.
    let later = T0 + 200 + 60_000 + 60_000;
    for _ in 0..3 {
        assert!(store.take_request(&s, 3, later).unwrap().allowed);
    }
    assert!(!store.take_request(&s, 3, later).unwrap().allowed);
}

#[test]
fn zero_means_unlimited_but_still_counted() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    for i in 0..500 {
        let check = store.take_request(&s, 0, T0 + i).unwrap();
        assert!(check.allowed);
        assert_eq!(u64::from(check.usage.requests_in_window), i);
    }
}

#[test]
fn usage_counts_grow() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, Duration::from_secs(3600));
    let first = store.take_request(&s, 2, T0 + 5).unwrap();
    assert_eq!(
        first.usage,
        Usage {
            requests_total: 0,
            requests_in_window: 0,
            window_seconds: 60,
            grants: BTreeMap::new(),
            session_started_ms: T0,
            now_ms: T0 + 5,
        }
    );
    assert!(
        store
            .commit_simple("wf-1", &s.id, "issues.read", &[], &[])
            .unwrap()
    );
    let second = store.take_request(&s, 2, T0 + 10).unwrap();
    assert!(second.allowed);
    assert_eq!(second.usage.requests_total, 1);
    assert_eq!(second.usage.requests_in_window, 1);
    assert_eq!(
        second.usage.grants,
        BTreeMap::from([("issues.read".to_string(), 1)])
    );
    assert!(
        store
            .commit_simple("wf-1", &s.id, "issues.read", &[], &[])
            .unwrap()
    );
    assert!(
        store
            .commit_simple("wf-1", &s.id, "pulls.create", &[], &[])
            .unwrap()
    );

    // Refused: counted in the total, not in the window.
    let refused = store.take_request(&s, 2, T0 + 20).unwrap();
    assert!(!refused.allowed);
    assert_eq!(refused.usage.requests_total, 2);
    assert_eq!(refused.usage.requests_in_window, 2);

    let later = store.take_request(&s, 2, T0 + 70_000).unwrap();
    assert!(later.allowed);
    assert_eq!(later.usage.requests_total, 3);
    assert_eq!(later.usage.requests_in_window, 0);
    assert_eq!(
        later.usage.grants,
        BTreeMap::from([("issues.read".to_string(), 2), ("pulls.create".to_string(), 1)])
    );
    assert_eq!(later.usage.now_ms, T0 + 70_000);
}

#[test]
fn requests_of_a_revoked_expired_or_unknown_session_fail_closed() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    assert!(store.take_request(&s, 0, T0 + 60_000).is_err(), "expired");
    store.revoke_session(&s.id).unwrap();
    assert!(store.take_request(&s, 0, T0).is_err(), "revoked");
    assert!(
        store
            .commit_simple("wf-1", &s.id, "op", &[], &[set("k", "v")])
            .is_err()
    );
    let ghost = Session {
        id: "ses_ghost".into(),
        ..s
    };
    assert!(store.take_request(&ghost, 0, T0).is_err(), "unknown");
    assert!(store.commit_simple("wf-1", &ghost.id, "op", &[], &[]).is_err());
    assert!(store.workflow_state("wf-1").unwrap().is_empty());
}

#[test]
fn eight_threads_share_one_rate_window_exactly() {
    let store = Arc::new(MemoryStore::new());
    let (s, _) = session(&store, MINUTE);
    let barrier = Arc::new(Barrier::new(8));
    let allowed: usize = (0..8)
        .map(|_| {
            let (store, barrier, s) = (store.clone(), barrier.clone(), s.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..100)
                    .filter(|_| store.take_request(&s, 50, T0 + 1).unwrap().allowed)
                    .count()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|h| h.join().unwrap())
        .sum();
    assert_eq!(allowed, 50);
    let after = store.take_request(&s, 50, T0 + 2).unwrap();
    assert_eq!(after.usage.requests_total, 800);
    assert_eq!(after.usage.requests_in_window, 50);
}

// ---------------------------------------------------------- workflow state

#[test]
fn commit_allow_applies_writes_and_counts_the_grant() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    let writes = [
        set("reviewer", "bot-2"),
        incr("approvals", 2),
        incr("approvals", 1),
        set("junk", "not a number"),
        incr("junk", 5),
        set("big", &i64::MAX.to_string()),
        incr("big", 1),
    ];
    let reads = [read("approvals", None), read("reviewer", None)];
    assert!(
        store
            .commit_simple("wf-1", &s.id, "pulls.create", &reads, &writes)
            .unwrap()
    );
    let expected = BTreeMap::from([
        ("approvals".to_string(), "3".to_string()),
        ("big".to_string(), i64::MAX.to_string()),
        ("junk".to_string(), "5".to_string()),
        ("reviewer".to_string(), "bot-2".to_string()),
    ]);
    assert_eq!(store.workflow_state("wf-1").unwrap(), expected);
    assert_eq!(store.get("wf-1", "approvals").unwrap().as_deref(), Some("3"));
    assert_eq!(store.get("wf-1", "absent").unwrap(), None);
    assert_eq!(
        store.get("wf-2", "approvals").unwrap(),
        None,
        "workflows are separate"
    );
    assert!(store.workflow_state("wf-2").unwrap().is_empty());

    // The read the policy saw is still current: commits.
    assert!(
        store
            .commit_simple(
                "wf-1",
                &s.id,
                "pulls.create",
                &[read("approvals", Some("3"))],
                &[incr("approvals", -1)]
            )
            .unwrap()
    );
    assert_eq!(store.get("wf-1", "approvals").unwrap().as_deref(), Some("2"));
    let usage = store.take_request(&s, 0, T0).unwrap().usage;
    assert_eq!(usage.grants, BTreeMap::from([("pulls.create".to_string(), 2)]));
}

#[test]
fn commit_allow_commits_nothing_when_a_read_changed() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, MINUTE);
    let (other, _) = session(&store, MINUTE);
    assert!(
        store
            .commit_simple("wf-1", &s.id, "op", &[], &[set("n", "1")])
            .unwrap()
    );
    let before = store.workflow_state("wf-1").unwrap();

    // Stale value, stale absence, and one fresh read among stale ones.
    for reads in [
        vec![read("n", Some("0"))],
        vec![read("n", None)],
        vec![read("m", None), read("n", Some("7"))],
        vec![read("m", Some("x"))],
    ] {
        let committed = store
            .commit_simple("wf-1", &other.id, "op", &reads, &[incr("n", 1), set("m", "x")])
            .unwrap();
        assert!(!committed, "{reads:?}");
        assert_eq!(store.workflow_state("wf-1").unwrap(), before);
    }
    let usage = store.take_request(&other, 0, T0).unwrap().usage;
    assert!(usage.grants.is_empty(), "no grant counted for a refused commit");

    // A session may only write its own workflow.
    assert!(
        store
            .commit_simple("wf-2", &s.id, "op", &[], &[set("n", "9")])
            .is_err()
    );
    assert!(store.workflow_state("wf-2").unwrap().is_empty());
}

/// Each thread reads the counter, then commits `incr` guarded by that read,
/// retrying on conflict. No update may be lost, and no two commits may have
/// been based on the same value (each policy decision saw a distinct count).
#[test]
fn concurrent_guarded_increments_lose_nothing() {
    let store = Arc::new(MemoryStore::new());
    let (s, _) = store.create_session(new_session("wf", MINUTE), T0).unwrap();
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let (store, barrier, id) = (store.clone(), barrier.clone(), s.id.clone());
            thread::spawn(move || {
                barrier.wait();
                let mut based_on = Vec::new();
                let mut conflicts = 0;
                for _ in 0..200 {
                    let seen = store.get("wf", "n").unwrap();
                    thread::yield_now(); // the policy runs here; let others commit meanwhile
                    let (write, guard) = if i % 2 == 0 {
                        (incr("n", 1), seen.clone())
                    } else {
                        // A policy computing the next value itself.
                        let next = seen.as_deref().map_or(0, |v| v.parse::<i64>().unwrap()) + 1;
                        (set("n", &next.to_string()), seen.clone())
                    };
                    if store
                        .commit_simple("wf", &id, "op", &[("n".into(), guard)], &[write])
                        .unwrap()
                    {
                        based_on.push(seen);
                    } else {
                        conflicts += 1;
                    }
                }
                (based_on, conflicts)
            })
        })
        .collect();
    let mut based_on = Vec::new();
    for h in handles {
        based_on.extend(h.join().unwrap().0);
    }
    let commits = based_on.len();
    let final_value: usize = store.get("wf", "n").unwrap().unwrap().parse().unwrap();
    assert_eq!(final_value, commits, "lost update");
    let distinct: HashSet<_> = based_on.iter().collect();
    assert_eq!(distinct.len(), commits, "two commits based on the same read");
    let grants = store.take_request(&s, 0, T0).unwrap().usage.grants;
    assert_eq!(grants.get("op").copied(), Some(u32::try_from(commits).unwrap()));
}

// -------------------------------------------------------------- robustness

#[test]
fn a_poisoned_lock_is_a_state_error_not_a_panic() {
    let store = Arc::new(MemoryStore::new());
    let (s, handle) = session(&store, MINUTE);
    let poisoner = store.clone();
    let result = thread::spawn(move || {
        let _guard = poisoner.inner.write().unwrap();
        panic!("poison the lock");
    })
    .join();
    assert!(result.is_err());

    assert!(store.lookup_handle(&handle, T0).is_err());
    assert!(store.get("wf-1", "k").is_err());
    assert!(store.take_request(&s, 0, T0).is_err());
    assert!(store.commit_simple("wf-1", &s.id, "op", &[], &[]).is_err());
    assert!(store.create_session(new_session("wf", MINUTE), T0).is_err());
    assert!(store.token_status("x", 0, true).is_err());
    assert!(store.token_status("x", 0, false).is_err());
    assert!(store.revoke_session(&s.id).is_err());
    assert!(store.list_sessions(T0).is_err());
    assert!(format!("{store:?}").contains("poisoned"));
}

#[test]
fn a_store_is_usable_as_the_engines_workflow_state() {
    let store = Arc::new(MemoryStore::default());
    let (s, _) = store.create_session(new_session("wf", MINUTE), T0).unwrap();
    assert!(
        store
            .commit_simple("wf", &s.id, "op", &[], &[set("k", "v")])
            .unwrap()
    );
    let view: Arc<dyn WorkflowState> = store.clone();
    assert_eq!(view.get("wf", "k").unwrap().as_deref(), Some("v"));
}

// ------------------------------------------------- budgets and approvals

fn commit_with(
    store: &MemoryStore,
    s: &Session,
    max_grants: Option<u32>,
    approval: Option<&str>,
    now_ms: u64,
) -> CommitOutcome {
    store
        .commit_allow(&Commit {
            workflow: &s.workflow,
            session_id: &s.id,
            operation: "tasks.create",
            reads: &[],
            writes: &[incr("tickets", 1)],
            max_grants,
            approval,
            token: None,
            now_ms,
        })
        .unwrap()
}

#[test]
fn a_grant_budget_is_exact_under_eight_threads() {
    let store = Arc::new(MemoryStore::new());
    let (s, _) = session(&store, MINUTE);
    let barrier = Arc::new(Barrier::new(8));
    let outcomes: Vec<CommitOutcome> = (0..8)
        .map(|_| {
            let (store, barrier, s) = (store.clone(), barrier.clone(), s.clone());
            thread::spawn(move || {
                barrier.wait();
                (0..50)
                    .map(|_| commit_with(&store, &s, Some(7), None, T0))
                    .collect::<Vec<_>>()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let committed = outcomes
        .iter()
        .filter(|o| **o == CommitOutcome::Committed)
        .count();
    assert_eq!(committed, 7);
    assert!(outcomes.iter().all(|o| matches!(
        o,
        CommitOutcome::Committed | CommitOutcome::BudgetExhausted { limit: 7 }
    )));
    // A refused commit applied none of its writes.
    assert_eq!(store.get("wf-1", "tickets").unwrap().as_deref(), Some("7"));
    let grants = store.take_request(&s, 0, T0).unwrap().usage.grants;
    assert_eq!(grants.get("tasks.create").copied(), Some(7));
    // The budget is per session: another session of the workflow has its own.
    let (other, _) = session(&store, MINUTE);
    assert_eq!(
        commit_with(&store, &other, Some(7), None, T0),
        CommitOutcome::Committed
    );
}

fn escalation(s: &Session, hash: &str) -> EscalatedRequest {
    EscalatedRequest {
        request_hash: hash.into(),
        session: s.id.clone(),
        agent: s.agent.clone(),
        role: s.role.clone(),
        workflow: s.workflow.clone(),
        service: "code".into(),
        operation: "pulls.merge".into(),
        method: "PUT".into(),
        path: "/repos/acme/shop/pulls/fix-1/merge".into(),
        reason: "needs a human".into(),
        decision_id: "dec_1".into(),
    }
}

#[test]
fn an_approval_is_decided_once_and_used_once() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, Duration::from_secs(3600));
    let a = store.create_approval(escalation(&s, "h1"), 60_000, T0).unwrap();
    assert!(a.id.starts_with(APPROVAL_PREFIX));
    assert_eq!(a.status(T0), "pending");
    assert_eq!(store.list_approvals(T0, true).unwrap().len(), 1);

    // Pending: not usable, and a refused commit changes nothing.
    assert_eq!(
        commit_with(&store, &s, None, Some(&a.id), T0 + 1),
        CommitOutcome::ApprovalUnusable(format!("approval {} is pending", a.id))
    );
    assert_eq!(store.get("wf-1", "tickets").unwrap(), None);

    let approved = store
        .decide_approval(&a.id, true, "alice", Some("ok".into()), T0 + 2)
        .unwrap();
    assert_eq!(approved.status(T0 + 2), "approved");
    assert_eq!(approved.usable(T0 + 2), Some(("alice", T0 + 2)));
    // Decided once: a second decision is refused.
    assert!(matches!(
        store.decide_approval(&a.id, false, "mallory", None, T0 + 3),
        Err(ApprovalError::NotPending {
            status: "approved",
            ..
        })
    ));
    // Another session cannot use it.
    let (other, _) = session(&store, Duration::from_secs(3600));
    assert!(matches!(
        commit_with(&store, &other, None, Some(&a.id), T0 + 4),
        CommitOutcome::ApprovalUnusable(_)
    ));
    // Used once.
    assert_eq!(
        commit_with(&store, &s, None, Some(&a.id), T0 + 5),
        CommitOutcome::Committed
    );
    assert_eq!(store.get_approval(&a.id).unwrap().unwrap().status(T0 + 6), "used");
    assert_eq!(
        commit_with(&store, &s, None, Some(&a.id), T0 + 6),
        CommitOutcome::ApprovalUnusable(format!("approval {} is used", a.id))
    );
    assert_eq!(store.get("wf-1", "tickets").unwrap().as_deref(), Some("1"));
    assert!(store.list_approvals(T0 + 6, true).unwrap().is_empty());
    assert_eq!(store.list_approvals(T0 + 6, false).unwrap().len(), 1);
    assert!(matches!(
        store.decide_approval("apr_nope", true, "alice", None, T0),
        Err(ApprovalError::NotFound(_))
    ));
}

#[test]
fn approvals_expire_decided_or_not_and_denied_ones_are_never_usable() {
    let store = MemoryStore::new();
    let (s, _) = session(&store, Duration::from_secs(3600));
    let late = store.create_approval(escalation(&s, "h1"), 60_000, T0).unwrap();
    assert!(matches!(
        store.decide_approval(&late.id, true, "alice", None, T0 + 60_000),
        Err(ApprovalError::NotPending {
            status: "expired",
            ..
        })
    ));
    let unused = store.create_approval(escalation(&s, "h2"), 60_000, T0).unwrap();
    store
        .decide_approval(&unused.id, true, "alice", None, T0 + 1)
        .unwrap();
    assert!(matches!(
        commit_with(&store, &s, None, Some(&unused.id), T0 + 60_000),
        CommitOutcome::ApprovalUnusable(_)
    ));
    let denied = store.create_approval(escalation(&s, "h3"), 60_000, T0).unwrap();
    let d = store
        .decide_approval(&denied.id, false, "bob", Some("not today".into()), T0 + 1)
        .unwrap();
    assert_eq!(d.status(T0 + 1), "denied");
    assert!(matches!(
        commit_with(&store, &s, None, Some(&denied.id), T0 + 2),
        CommitOutcome::ApprovalUnusable(_)
    ));
    assert_eq!(store.get("wf-1", "tickets").unwrap(), None);
}

#[test]
fn revoking_a_workflow_revokes_its_sessions_and_tokens_at_once() {
    let store = MemoryStore::new();
    let (a, handle_a) = session(&store, MINUTE);
    let (b, _) = session(&store, MINUTE);
    let (outside, handle_out) = store.create_session(new_session("wf-2", MINUTE), T0).unwrap();
    store
        .record_token(token("j-a", &a, T0 / 1000 + 60, false))
        .unwrap();
    store
        .record_token(token("j-out", &outside, T0 / 1000 + 60, false))
        .unwrap();

    let mut revoked = store.revoke_workflow("wf-1").unwrap();
    revoked.sort();
    let mut expected = vec![a.id.clone(), b.id.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    assert!(matches!(
        store.lookup_handle(&handle_a, T0).unwrap(),
        SessionLookup::Revoked(_)
    ));
    assert!(!store.token_status("j-a", T0 / 1000, false).unwrap().is_active());
    // Nothing outside the workflow is touched.
    assert!(matches!(
        store.lookup_handle(&handle_out, T0).unwrap(),
        SessionLookup::Active(_)
    ));
    assert!(store.token_status("j-out", T0 / 1000, false).unwrap().is_active());
    // And the workflow stays closed.
    assert!(store.workflow_revoked("wf-1").unwrap());
    assert!(!store.workflow_revoked("wf-2").unwrap());
    assert!(store.create_session(new_session("wf-1", MINUTE), T0).is_err());
}

#[test]
fn operators_set_and_unset_workflow_state() {
    let store = MemoryStore::new();
    let after = store
        .set_workflow_state(
            "wf-1",
            &[
                ("stage".into(), Some("ticket".into())),
                ("x".into(), Some("1".into())),
            ],
        )
        .unwrap();
    assert_eq!(after.len(), 2);
    let after = store.set_workflow_state("wf-1", &[("x".into(), None)]).unwrap();
    assert_eq!(
        after,
        BTreeMap::from([("stage".to_string(), "ticket".to_string())])
    );
    assert_eq!(store.get("wf-1", "stage").unwrap().as_deref(), Some("ticket"));
}

// ------------------------------------------------------- the durable store

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
        .block_on(f)
}

#[test]
fn the_durable_store_restores_everything_it_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let limits = BTreeMap::from([("crash-tracker".to_string(), 5u32)]);
    let (session, handle, approval_id) = block_on(async {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::durable(&path, false, T0).unwrap());
        assert_eq!(store.backend(), "sqlite");
        let (s, handle) = store
            .create_session(new_session("wf-1", MINUTE), T0)
            .await
            .unwrap();
        let (revoked, _) = store
            .create_session(new_session("wf-1", MINUTE), T0)
            .await
            .unwrap();
        assert!(store.revoke_session(&revoked.id).await.unwrap());
        store.revoke_workflow("wf-gone").await.unwrap();
        for i in 0..3 {
            let begin = Begin {
                handle: &handle,
                approval: None,
                rate_limits: &limits,
                now_ms: T0 + i,
            };
            assert!(store.begin(&begin).await.unwrap().rate.unwrap().allowed);
        }
        let record = token("once", &s, T0 / 1000 + 60, true);
        let outcome = store
            .commit_allow(&Commit {
                workflow: "wf-1",
                session_id: &s.id,
                operation: "tasks.create",
                reads: &[],
                writes: &[set("stage", "review"), incr("n", 2)],
                max_grants: Some(1),
                approval: None,
                token: Some(&record),
                now_ms: T0 + 3,
            })
            .await
            .unwrap();
        assert_eq!(outcome, CommitOutcome::Committed);
        assert!(
            store
                .token_status("once", T0 / 1000, true)
                .await
                .unwrap()
                .is_active()
        );
        store
            .record_token(token("many", &s, T0 / 1000 + 60, false))
            .await
            .unwrap();
        store.revoke_token("many").await.unwrap();
        let pending = store
            .create_approval(escalation(&s, "h"), 60_000, T0)
            .await
            .unwrap();
        let approved = store
            .create_approval(escalation(&s, "h"), 60_000, T0)
            .await
            .unwrap();
        store
            .decide_approval(&approved.id, true, "alice", None, T0 + 5)
            .await
            .unwrap();
        store
            .set_workflow_state("wf-1", &[("owner".into(), Some("bob".into()))])
            .await
            .unwrap();
        let _ = pending;
        (s, handle, approved.id)
    });
    // A second process may not open a database in use: checked while open.
    let reopened: Arc<dyn Store> = Arc::new(MemoryStore::durable(&path, false, T0 + 10).unwrap());
    let busy = MemoryStore::durable(&path, false, T0 + 10).unwrap_err();
    assert!(busy.0.contains("in use by another process"), "{busy}");
    block_on(async {
        let store = reopened;
        let begin = Begin {
            handle: &handle,
            approval: Some(&approval_id),
            rate_limits: &limits,
            now_ms: T0 + 10,
        };
        let started = store.begin(&begin).await.unwrap();
        assert_eq!(started.lookup, SessionLookup::Active(session.clone()));
        let rate = started.rate.unwrap();
        assert_eq!(
            rate.usage.requests_total, 3,
            "requests counted before the restart"
        );
        assert_eq!(rate.usage.requests_in_window, 3, "the rate window continues");
        assert_eq!(
            rate.usage.grants.get("tasks.create"),
            Some(&1),
            "the grant budget continues"
        );
        assert_eq!(
            started.state.values().get("stage").map(String::as_str),
            Some("review")
        );
        assert_eq!(started.state.values().get("n").map(String::as_str), Some("2"));
        assert_eq!(
            started.state.values().get("owner").map(String::as_str),
            Some("bob")
        );
        assert_eq!(
            started.approval.as_ref().map(|a| a.status(T0 + 10)),
            Some("approved")
        );
        assert!(
            !store
                .token_status("once", T0 / 1000, true)
                .await
                .unwrap()
                .is_active(),
            "consumed stays consumed"
        );
        assert!(
            !store
                .token_status("many", T0 / 1000, false)
                .await
                .unwrap()
                .is_active(),
            "revoked stays revoked"
        );
        assert!(store.workflow_revoked("wf-gone").await.unwrap());
        assert_eq!(store.list_sessions(T0 + 10).await.unwrap(), vec![session.clone()]);
        assert_eq!(
            store.list_approvals(T0 + 10, true).await.unwrap().len(),
            1,
            "the pending approval"
        );
        let budget = store
            .commit_allow(&Commit {
                workflow: "wf-1",
                session_id: &session.id,
                operation: "tasks.create",
                reads: &[],
                writes: &[],
                max_grants: Some(1),
                approval: None,
                token: None,
                now_ms: T0 + 11,
            })
            .await
            .unwrap();
        assert_eq!(budget, CommitOutcome::BudgetExhausted { limit: 1 });
    });
}

#[test]
fn the_durable_store_sweeps_what_expired() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    block_on(async {
        let store = MemoryStore::durable(&path, true, T0).unwrap();
        let (s, _) = Store::create_session(&store, new_session("wf-1", MINUTE), T0)
            .await
            .unwrap();
        Store::record_token(&store, token("t", &s, T0 / 1000 + 30, false))
            .await
            .unwrap();
        Store::create_approval(&store, escalation(&s, "h"), 1_000, T0)
            .await
            .unwrap();
    });
    let later = T0 + 60_000 + EXPIRED_GRACE_MS;
    let store = MemoryStore::durable(&path, false, later).unwrap();
    let inner = store.inner.read().unwrap();
    assert!(inner.sessions.is_empty() && inner.handles.is_empty());
    assert!(inner.tokens.is_empty() && inner.approvals.is_empty());
}

#[test]
fn a_state_database_that_cannot_be_written_fails_closed_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state.db");
    let acknowledged = block_on(async {
        // Room for the schema and a few sessions, then the disk is "full".
        let store: Arc<dyn Store> = Arc::new(MemoryStore::durable_capped(&path, T0, 16).unwrap());
        let mut acknowledged = Vec::new();
        let mut failure = None;
        for i in 0..2_000 {
            let mut new = new_session("wf-1", MINUTE);
            new.intent = Some(format!("{i:0>3000}"));
            match store.create_session(new, T0).await {
                Ok((s, _)) => acknowledged.push(s.id),
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        let failure = failure.expect("the capped database filled up");
        assert!(failure.0.contains("state database"), "{failure}");
        assert!(!acknowledged.is_empty());
        // From now on every operation is refused, reads included.
        assert!(store.ping().await.is_err());
        assert!(store.list_sessions(T0).await.is_err());
        let begin = Begin {
            handle: "alh_x",
            approval: None,
            rate_limits: &BTreeMap::new(),
            now_ms: T0,
        };
        assert!(store.begin(&begin).await.is_err());
        acknowledged
    });
    let store = MemoryStore::durable(&path, false, T0).unwrap();
    let restored: Vec<String> = store
        .list_sessions(T0)
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    let mut expected = acknowledged.clone();
    expected.sort();
    let mut got = restored.clone();
    got.sort();
    assert_eq!(got, expected, "exactly the acknowledged sessions survive");
}
