//! The shared store for several replicas: every operation of [`Store`] is
//! one Lua script run by Redis as a single step, so two replicas can never
//! both take the last unit of a budget, both use one approval or both
//! accept one single-use token.
//!
//! Keys (all under the configured prefix, default `airlock:`):
//!
//! | key                | holds                                              | expires                   |
//! |--------------------|----------------------------------------------------|---------------------------|
//! | `h:<sha256 hex>`   | session id of a handle                             | session end + 15 min      |
//! | `s:<session>`      | hash: the session, `revoked`, request `total`      | session end + 15 min      |
//! | `w:<session>`      | sorted set: times of the requests in the window    | one minute after the last |
//! | `g:<session>`      | hash: grants per operation                         | with the session          |
//! | `ws:<workflow>`    | hash: workflow state                               | with its last session     |
//! | `wsess:<workflow>` | set: the workflow's session ids                    | with its last session     |
//! | `wr:<workflow>`    | the workflow is revoked                            | never                     |
//! | `t:<jti>`          | hash: token record, `used`, `revoked`              | with the token            |
//! | `a:<approval>`     | hash: the escalated request and its decision       | approval end + 15 min     |
//! | `idx:sessions`, `idx:approvals` | sorted sets for listing (swept)       |                           |
//!
//! The host's clock gives `now`, as for the other stores: replicas need
//! synchronised clocks (NTP), as they do for token expiry anyway.
//! Scripts build keys from ids, so they need one Redis (a primary, with or
//! without replicas or Sentinel), not Redis Cluster.

mod conn;
mod reply;
mod scripts;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use redis::{IntoConnectionInfo as _, Value};

use self::conn::Connection;
use self::reply::{Items, field, num};
use self::scripts::Scripts;
use super::memory::EXPIRED_GRACE_MS;
use super::sessions::{expiry, handle_digest, new_approval_id, new_handle, new_session_id};
use super::{
    Approval, ApprovalDecision, ApprovalError, Begin, Commit, CommitOutcome, EscalatedRequest, NewSession,
    RateCheck, Session, SessionLookup, Started, StateError, StateSnapshot, Store, TokenRecord, TokenStatus,
    WINDOW_SECONDS,
};
use crate::policy::{StateWrite, Usage};

/// Where Redis is and how long an operation may take.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://host:port/db` or `rediss://…` (TLS), without credentials.
    pub url: String,
    pub password: Option<String>,
    /// Prefix of every key.
    pub key_prefix: String,
    /// Past this an operation fails (and the request is refused).
    pub deadline: Duration,
}

/// State in Redis, shared by every replica pointed at it.
pub struct RedisStore {
    conn: Connection,
    prefix: String,
    scripts: Scripts,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// A store on the Redis at `options.url`. Connects lazily: the process
    /// starts (and reports not-ready) while Redis is down.
    pub fn new(options: RedisOptions) -> Result<RedisStore, StateError> {
        let invalid = |e: redis::RedisError| StateError(format!("redis url {:?}: {e}", options.url));
        let mut info = options.url.as_str().into_connection_info().map_err(invalid)?;
        if let Some(password) = &options.password {
            let settings = info.redis_settings().clone().set_password(password);
            info = info.set_redis_settings(settings);
        }
        let target = info.addr().to_string();
        let client = redis::Client::open(info).map_err(invalid)?;
        Ok(RedisStore {
            conn: Connection::new(client, options.deadline, target),
            prefix: options.key_prefix,
            scripts: Scripts::new(),
        })
    }

    /// Run `script` with the key prefix and then `args`.
    async fn run(&self, script: &redis::Script, args: Vec<String>) -> Result<Value, StateError> {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(self.prefix.clone());
        all.extend(args);
        self.conn.script(script, &all).await
    }

    fn key(&self, kind: &str, id: &str) -> String {
        format!("{}{kind}:{id}", self.prefix)
    }
}

/// The millisecond deadline of a record's keys: its end plus the grace
/// during which it is still reported (expired) rather than unknown.
fn keep_until(end_ms: u64) -> String {
    end_ms.saturating_add(EXPIRED_GRACE_MS).to_string()
}

fn flag(b: bool) -> String {
    if b { "1" } else { "0" }.to_string()
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, StateError> {
    serde_json::to_string(value).map_err(|e| StateError(format!("encoding a record: {e}")))
}

fn session_from(json: &str, revoked: &str) -> Result<Session, StateError> {
    let mut session: Session =
        serde_json::from_str(json).map_err(|e| StateError(format!("redis: damaged session record: {e}")))?;
    session.revoked = revoked == "1";
    Ok(session)
}

fn lookup_from(status: &str, items: &mut Items) -> Result<SessionLookup, StateError> {
    if status == "unknown" {
        return Ok(SessionLookup::Unknown);
    }
    let session = session_from(&items.text()?, &items.text()?)?;
    Ok(match status {
        "active" => SessionLookup::Active(session),
        "expired" => SessionLookup::Expired(session),
        "revoked" => SessionLookup::Revoked(session),
        other => return Err(StateError(format!("redis: unknown session status {other:?}"))),
    })
}

fn approval_from(h: &BTreeMap<String, String>) -> Result<Option<Approval>, StateError> {
    if h.is_empty() {
        return Ok(None);
    }
    let request: EscalatedRequest = serde_json::from_str(field(h, "request")?)
        .map_err(|e| StateError(format!("redis: damaged approval record: {e}")))?;
    let approver = || field(h, "approver").map(str::to_string);
    let note = h.get("note").cloned();
    let decision = match field(h, "decision")? {
        "pending" => ApprovalDecision::Pending,
        "approved" => ApprovalDecision::Approved {
            approver: approver()?,
            decided_at_ms: num(h, "decided_at")?,
            note,
        },
        "denied" => ApprovalDecision::Denied {
            approver: approver()?,
            decided_at_ms: num(h, "decided_at")?,
            note,
        },
        "used" => ApprovalDecision::Used {
            approver: approver()?,
            decided_at_ms: num(h, "decided_at")?,
            used_at_ms: num(h, "used_at")?,
        },
        other => return Err(StateError(format!("redis: unknown approval decision {other:?}"))),
    };
    Ok(Some(Approval {
        id: field(h, "id")?.to_string(),
        request,
        created_at_ms: num(h, "created")?,
        expires_at_ms: num(h, "expires")?,
        decision,
    }))
}

fn snapshot(workflow: &str, values: BTreeMap<String, String>) -> StateSnapshot {
    StateSnapshot::new(workflow, Arc::new(values))
}

#[async_trait::async_trait]
impl Store for RedisStore {
    fn backend(&self) -> &'static str {
        "redis"
    }

    async fn ping(&self) -> Result<(), StateError> {
        self.conn.command(redis::cmd("PING")).await.map(drop)
    }

    async fn create_session(&self, new: NewSession, now_ms: u64) -> Result<(Session, String), StateError> {
        let handle = new_handle()?;
        let digest = hex::encode(handle_digest(&handle));
        let session = Session {
            id: new_session_id()?,
            agent: new.agent,
            role: new.role,
            workflow: new.workflow,
            on_behalf_of: new.on_behalf_of,
            intent: new.intent,
            created_at_ms: now_ms,
            expires_at_ms: expiry(now_ms, new.ttl),
            revoked: false,
        };
        let reply = self
            .run(
                &self.scripts.create_session,
                vec![
                    session.id.clone(),
                    digest,
                    json(&session)?,
                    session.role.clone(),
                    session.workflow.clone(),
                    now_ms.to_string(),
                    session.expires_at_ms.to_string(),
                    keep_until(session.expires_at_ms),
                ],
            )
            .await?;
        let mut items = Items::of(reply)?;
        match items.text()?.as_str() {
            "ok" => Ok((session, handle)),
            _ => Err(match items.text()?.as_str() {
                "workflow_revoked" => StateError(format!(
                    "workflow {:?} is revoked; no session can be created in it",
                    session.workflow
                )),
                _ => StateError("session id or handle collision; not created".into()),
            }),
        }
    }

    async fn lookup_handle(&self, handle: &str, now_ms: u64) -> Result<SessionLookup, StateError> {
        let args = vec![hex::encode(handle_digest(handle)), now_ms.to_string()];
        let mut items = Items::of(self.run(&self.scripts.lookup, args).await?)?;
        let status = items.text()?;
        lookup_from(&status, &mut items)
    }

    async fn begin(&self, b: &Begin<'_>) -> Result<Started, StateError> {
        let mut args = vec![
            hex::encode(handle_digest(b.handle)),
            b.now_ms.to_string(),
            b.approval.unwrap_or("").to_string(),
        ];
        for (role, limit) in b.rate_limits {
            args.push(role.clone());
            args.push(limit.to_string());
        }
        let mut items = Items::of(self.run(&self.scripts.begin, args).await?)?;
        let status = items.text()?;
        let approval = approval_from(&items.map()?)?;
        let lookup = lookup_from(&status, &mut items)?;
        let SessionLookup::Active(session) = &lookup else {
            return Ok(Started {
                lookup,
                rate: None,
                state: StateSnapshot::default(),
                approval,
            });
        };
        let requests_total = u64::try_from(items.int()?).unwrap_or(0);
        let requests_in_window = u32::try_from(items.int()?).unwrap_or(u32::MAX);
        let allowed = items.int()? == 1;
        let retry_ms = u64::try_from(items.int()?).unwrap_or(0);
        let grants = items
            .map()?
            .into_iter()
            .map(|(op, n)| (op, n.parse().unwrap_or(u32::MAX)))
            .collect();
        let state = snapshot(&session.workflow, items.map()?);
        let rate = RateCheck {
            allowed,
            usage: Usage {
                requests_total,
                requests_in_window,
                window_seconds: WINDOW_SECONDS,
                grants,
                session_started_ms: session.created_at_ms,
                now_ms: b.now_ms,
            },
            retry_after: (!allowed).then(|| Duration::from_millis(retry_ms)),
        };
        Ok(Started {
            lookup,
            rate: Some(rate),
            state,
            approval,
        })
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>, StateError> {
        let mut items = Items::of(self.run(&self.scripts.get_session, vec![id.to_string()]).await?)?;
        match (reply::opt_text(items.next()?)?, reply::opt_text(items.next()?)?) {
            (Some(json), Some(revoked)) => session_from(&json, &revoked).map(Some),
            _ => Ok(None),
        }
    }

    async fn list_sessions(&self, now_ms: u64) -> Result<Vec<Session>, StateError> {
        let reply = self
            .run(&self.scripts.list_sessions, vec![now_ms.to_string()])
            .await?;
        let mut list = reply::array(reply)?
            .into_iter()
            .map(|v| session_from(&reply::text(v)?, "0"))
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by(|a, b| (a.created_at_ms, &a.id).cmp(&(b.created_at_ms, &b.id)));
        Ok(list)
    }

    async fn revoke_session(&self, id: &str) -> Result<bool, StateError> {
        let reply = self
            .run(&self.scripts.revoke_session, vec![id.to_string()])
            .await?;
        Ok(reply::int(reply)? == 1)
    }

    async fn revoke_workflow(&self, workflow: &str) -> Result<Vec<String>, StateError> {
        let reply = self
            .run(&self.scripts.revoke_workflow, vec![workflow.to_string()])
            .await?;
        let mut ids = reply::array(reply)?
            .into_iter()
            .map(reply::text)
            .collect::<Result<Vec<_>, _>>()?;
        ids.sort();
        Ok(ids)
    }

    async fn workflow_revoked(&self, workflow: &str) -> Result<bool, StateError> {
        let reply = self
            .conn
            .command(redis::cmd("EXISTS").arg(self.key("wr", workflow)).to_owned())
            .await?;
        Ok(reply::int(reply)? == 1)
    }

    async fn commit_allow(&self, c: &Commit<'_>) -> Result<CommitOutcome, StateError> {
        let mut args = vec![
            c.session_id.to_string(),
            c.workflow.to_string(),
            c.operation.to_string(),
            c.max_grants.map(|n| n.to_string()).unwrap_or_default(),
            c.approval.unwrap_or("").to_string(),
            c.now_ms.to_string(),
        ];
        match c.token {
            Some(t) => args.extend([
                t.jti.clone(),
                json(t)?,
                t.expires_at.to_string(),
                flag(t.single_use),
                t.expires_at.saturating_mul(1000).to_string(),
            ]),
            None => args.extend(["", "", "", "", ""].map(String::from)),
        }
        args.push(c.reads.len().to_string());
        for (key, seen) in c.reads {
            args.extend([
                key.clone(),
                flag(seen.is_some()),
                seen.clone().unwrap_or_default(),
            ]);
        }
        for write in c.writes {
            match write {
                StateWrite::Set { key, value } => args.extend(["s".into(), key.clone(), value.clone()]),
                StateWrite::Incr { key, delta } => args.extend(["i".into(), key.clone(), delta.to_string()]),
            }
        }
        let mut items = Items::of(self.run(&self.scripts.commit, args).await?)?;
        match items.text()?.as_str() {
            "ok" => Ok(CommitOutcome::Committed),
            "changed" => Ok(CommitOutcome::StateChanged(snapshot(c.workflow, items.map()?))),
            "budget" => Ok(CommitOutcome::BudgetExhausted {
                limit: c.max_grants.unwrap_or(0),
            }),
            "approval" => {
                let id = c.approval.unwrap_or("");
                Ok(CommitOutcome::ApprovalUnusable(match items.text()?.as_str() {
                    "missing" => format!("no approval {id:?}"),
                    "other_session" => format!("approval {id} was given to another session"),
                    _ => format!("approval {id} is {}", items.text()?),
                }))
            }
            _ => Err(match items.text()?.as_str() {
                "unknown_session" => StateError(format!("unknown session {}", c.session_id)),
                "revoked" => StateError(format!("session {} is revoked", c.session_id)),
                "wrong_workflow" => StateError(format!(
                    "session {} belongs to workflow {:?}, not {:?}",
                    c.session_id,
                    items.text()?,
                    c.workflow
                )),
                _ => StateError(format!(
                    "token id {} already recorded",
                    c.token.map(|t| t.jti.as_str()).unwrap_or("")
                )),
            }),
        }
    }

    async fn record_token(&self, record: TokenRecord) -> Result<(), StateError> {
        let args = vec![
            record.jti.clone(),
            json(&record)?,
            record.session.clone(),
            record.expires_at.to_string(),
            flag(record.single_use),
            record.expires_at.saturating_mul(1000).to_string(),
        ];
        let mut items = Items::of(self.run(&self.scripts.record_token, args).await?)?;
        match items.text()?.as_str() {
            "ok" => Ok(()),
            _ => Err(StateError(format!("token id {} already recorded", record.jti))),
        }
    }

    async fn token_status(&self, jti: &str, now_s: u64, consume: bool) -> Result<TokenStatus, StateError> {
        let args = vec![jti.to_string(), now_s.to_string(), flag(consume)];
        let items = reply::array(self.run(&self.scripts.token_status, args).await?)?;
        match items.into_iter().next() {
            None => Ok(TokenStatus::Inactive),
            Some(record) => serde_json::from_str(&reply::text(record)?)
                .map(TokenStatus::Active)
                .map_err(|e| StateError(format!("redis: damaged token record: {e}"))),
        }
    }

    async fn revoke_token(&self, jti: &str) -> Result<bool, StateError> {
        let reply = self
            .run(&self.scripts.revoke_token, vec![jti.to_string()])
            .await?;
        Ok(reply::int(reply)? == 1)
    }

    async fn workflow_state(&self, workflow: &str) -> Result<BTreeMap<String, String>, StateError> {
        let cmd = redis::cmd("HGETALL").arg(self.key("ws", workflow)).to_owned();
        reply::map(self.conn.command(cmd).await?)
    }

    async fn set_workflow_state(
        &self,
        workflow: &str,
        changes: &[(String, Option<String>)],
    ) -> Result<BTreeMap<String, String>, StateError> {
        let mut args = vec![workflow.to_string()];
        for (key, value) in changes {
            args.extend([
                key.clone(),
                flag(value.is_some()),
                value.clone().unwrap_or_default(),
            ]);
        }
        reply::map(self.run(&self.scripts.set_state, args).await?)
    }

    async fn create_approval(
        &self,
        request: EscalatedRequest,
        ttl_ms: u64,
        now_ms: u64,
    ) -> Result<Approval, StateError> {
        let approval = Approval {
            id: new_approval_id()?,
            request,
            created_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_ms),
            decision: ApprovalDecision::Pending,
        };
        let args = vec![
            approval.id.clone(),
            approval.request.session.clone(),
            json(&approval.request)?,
            now_ms.to_string(),
            approval.expires_at_ms.to_string(),
            keep_until(approval.expires_at_ms),
        ];
        let mut items = Items::of(self.run(&self.scripts.create_approval, args).await?)?;
        match items.text()?.as_str() {
            "ok" => Ok(approval),
            _ => Err(StateError("approval id collision; not created".into())),
        }
    }

    async fn get_approval(&self, id: &str) -> Result<Option<Approval>, StateError> {
        let cmd = redis::cmd("HGETALL").arg(self.key("a", id)).to_owned();
        approval_from(&reply::map(self.conn.command(cmd).await?)?)
    }

    async fn list_approvals(&self, now_ms: u64, pending_only: bool) -> Result<Vec<Approval>, StateError> {
        let reply = self.run(&self.scripts.list_approvals, Vec::new()).await?;
        let mut list = Vec::new();
        for flat in reply::array(reply)? {
            if let Some(a) = approval_from(&reply::map(flat)?)?
                && (!pending_only || a.status(now_ms) == "pending")
            {
                list.push(a);
            }
        }
        list.sort_by(|a, b| (b.created_at_ms, &b.id).cmp(&(a.created_at_ms, &a.id)));
        Ok(list)
    }

    async fn decide_approval(
        &self,
        id: &str,
        approve: bool,
        approver: &str,
        note: Option<String>,
        now_ms: u64,
    ) -> Result<Approval, ApprovalError> {
        let args = vec![
            id.to_string(),
            if approve { "approved" } else { "denied" }.to_string(),
            approver.to_string(),
            flag(note.is_some()),
            note.unwrap_or_default(),
            now_ms.to_string(),
        ];
        let mut items = Items::of(self.run(&self.scripts.decide_approval, args).await?)?;
        match items.text()?.as_str() {
            "ok" => approval_from(&items.map()?)?.ok_or_else(|| ApprovalError::NotFound(id.to_string())),
            "not_pending" => Err(ApprovalError::NotPending {
                id: id.to_string(),
                status: status_name(&items.text()?),
            }),
            _ => Err(ApprovalError::NotFound(id.to_string())),
        }
    }
}

/// The static name of an approval status the script reported.
fn status_name(status: &str) -> &'static str {
    match status {
        "pending" => "pending",
        "approved" => "approved",
        "denied" => "denied",
        "used" => "used",
        _ => "expired",
    }
}
