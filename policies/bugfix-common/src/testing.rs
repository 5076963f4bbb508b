//! Requests for the roles' unit tests, built from the operation name: the
//! method and path come from the code host's route table, the repository is
//! `acme/shop`, the agent is `agent-1` and the session `s-1` unless a test
//! says otherwise.
//!
//! ```ignore
//! let read = Req::new("tasks.read").param("key", "task-1042").build();
//! ```

use airlock_sdk::serde_json::Value;
use airlock_sdk::{Approval, Request};

use crate::OPERATIONS;

/// A request to the code host, under construction.
#[derive(Debug, Clone)]
pub struct Req(Request);

impl Req {
    /// A request for `op` with its documented method, on `acme/shop`.
    pub fn new(op: &str) -> Req {
        let method = OPERATIONS
            .iter()
            .find(|(name, _, _)| *name == op)
            .map_or("GET", |(_, method, _)| *method);
        let mut request = Request::builder(crate::SERVICE, method, "/")
            .operation(op)
            .build();
        request.principal.agent = "agent-1".into();
        request.principal.session = "s-1".into();
        request.principal.workflow = "wf-1".into();
        Req(request)
            .param("owner", crate::OWNER)
            .param("repo", crate::REPO)
    }

    /// Set a route parameter (replacing an earlier value).
    pub fn param(mut self, name: &str, value: &str) -> Req {
        let params = &mut self.0.action.params;
        params.retain(|(k, _)| k != name);
        params.push((name.into(), value.into()));
        self
    }

    pub fn query(mut self, name: &str, value: &str) -> Req {
        self.0.action.query.push((name.into(), value.into()));
        self
    }

    pub fn method(mut self, method: &str) -> Req {
        self.0.action.method = method.into();
        self
    }

    pub fn service(mut self, service: &str) -> Req {
        self.0.action.service = service.into();
        self
    }

    pub fn agent(mut self, agent: &str) -> Req {
        self.0.principal.agent = agent.into();
        self
    }

    pub fn session(mut self, session: &str) -> Req {
        self.0.principal.session = session.into();
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Req {
        self.0.action.body = body.into();
        self
    }

    pub fn json(self, value: &Value) -> Req {
        self.body(value.to_string())
    }

    pub fn truncated(mut self) -> Req {
        self.0.action.body_truncated = true;
        self
    }

    /// Carry a human approval of this request.
    pub fn approved_by(mut self, approver: &str) -> Req {
        self.0.approval = Some(Approval {
            id: "apr_test".into(),
            approver: approver.into(),
            approved_at_ms: 1,
        });
        self
    }

    /// The request, with its path filled in from the route parameters.
    pub fn build(mut self) -> Request {
        self.0.action.path = path_of(&self.0);
        self.0
    }
}

fn path_of(request: &Request) -> String {
    let action = &request.action;
    let p = |name| action.param(name).unwrap_or("_");
    let repo = format!("/repos/{}/{}", p("owner"), p("repo"));
    let rest = match action.op() {
        "issues.list" => "/issues".to_string(),
        "issues.read" => format!("/issues/{}", p("number")),
        "tasks.create" => "/tasks".to_string(),
        "tasks.read" => format!("/tasks/{}", p("key")),
        "tasks.comment" => format!("/tasks/{}/comments", p("key")),
        "contents.read" | "contents.write" => format!("/contents/{}", p("path")),
        "code.search" => "/search".to_string(),
        "branches.create" => "/branches".to_string(),
        "pulls.create" => "/pulls".to_string(),
        "pulls.read" => format!("/pulls/{}", p("head")),
        "pulls.comment" => format!("/pulls/{}/comments", p("head")),
        "pulls.review" => format!("/pulls/{}/reviews", p("head")),
        "pulls.merge" => format!("/pulls/{}/merge", p("head")),
        other => format!("/{other}"),
    };
    repo + &rest
}

/// The rule a deny reason names: `role: … (rule: NAME)` → `NAME`, after
/// checking the reason starts with the role.
pub fn rule_of<'a>(role: &str, reason: &'a str) -> &'a str {
    assert!(reason.starts_with(&format!("{role}: ")), "{reason}");
    let at = reason.rfind("(rule: ").expect("names a rule");
    &reason[at + 7..reason.len() - 1]
}
