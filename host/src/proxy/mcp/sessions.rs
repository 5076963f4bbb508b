//! MCP sessions as Airlock keeps them: the id Airlock gave the agent, bound
//! to the Airlock session that opened it, mapped to the upstream's own id.
//! An agent never sees the upstream's id and cannot use another session's.
//!
//! Kept in this process's memory, bounded, expiring with their Airlock
//! session. After a restart (or on another replica) an id is unknown: the
//! agent gets 404 and, as the MCP transport requires, initializes again;
//! nothing of value is lost (the Airlock session, its budgets and state
//! live in the state store).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::state::Session;

/// How many MCP sessions one process keeps at most.
const MAX_SESSIONS: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct McpSession {
    /// The Airlock session that opened it.
    pub session_id: String,
    /// The service it talks to.
    pub service: String,
    /// The upstream's `Mcp-Session-Id`, when it issued one.
    pub upstream_id: Option<String>,
    /// The revision negotiated at `initialize`.
    pub protocol_version: String,
    pub expires_at_ms: u64,
}

/// The MCP sessions of this process.
#[derive(Default)]
pub struct McpSessions {
    open: Mutex<HashMap<String, McpSession>>,
}

#[derive(Debug, thiserror::Error)]
#[error("too many open MCP sessions ({MAX_SESSIONS}); try again when some have ended")]
pub struct TooMany;

impl McpSessions {
    /// Record a new session; returns the id to give the agent.
    pub fn open(
        &self,
        session: &Session,
        service: &str,
        upstream_id: Option<String>,
        protocol_version: String,
        now_ms: u64,
    ) -> Result<String, TooMany> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_SESSIONS {
            open.retain(|_, s| s.expires_at_ms > now_ms);
            if open.len() >= MAX_SESSIONS {
                return Err(TooMany);
            }
        }
        let id = crate::proxy::random_id("mcp");
        open.insert(
            id.clone(),
            McpSession {
                session_id: session.id.clone(),
                service: service.to_string(),
                upstream_id,
                protocol_version,
                expires_at_ms: session.expires_at_ms,
            },
        );
        Ok(id)
    }

    /// The session behind `id`, only for the Airlock session and service
    /// that opened it.
    pub fn get(&self, id: &str, session: &Session, service: &str, now_ms: u64) -> Option<McpSession> {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        open.get(id)
            .filter(|s| s.session_id == session.id && s.service == service && s.expires_at_ms > now_ms)
            .cloned()
    }

    /// Forget `id` (the upstream ended it).
    pub fn close(&self, id: &str) {
        self.open.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(id: &str) -> Session {
        Session {
            id: id.into(),
            agent: "a".into(),
            role: "r".into(),
            workflow: "w".into(),
            on_behalf_of: None,
            intent: None,
            created_at_ms: 0,
            expires_at_ms: 1_000,
            revoked: false,
        }
    }

    #[test]
    fn an_id_serves_only_the_session_and_service_that_opened_it() {
        let sessions = McpSessions::default();
        let (mine, theirs) = (session("ses_a"), session("ses_b"));
        let id = sessions
            .open(&mine, "github", Some("up-1".into()), "2025-06-18".into(), 0)
            .expect("room");
        assert_eq!(
            sessions
                .get(&id, &mine, "github", 10)
                .and_then(|s| s.upstream_id)
                .as_deref(),
            Some("up-1")
        );
        assert!(sessions.get(&id, &theirs, "github", 10).is_none());
        assert!(sessions.get(&id, &mine, "other", 10).is_none());
        assert!(
            sessions.get(&id, &mine, "github", 1_000).is_none(),
            "expired with its session"
        );
        assert!(!id.contains("up-1"));
        sessions.close(&id);
        assert!(sessions.get(&id, &mine, "github", 10).is_none());
    }
}
