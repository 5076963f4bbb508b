//! The Lua scripts, one per atomic operation, each prefixed with the shared
//! prelude (`lua/prelude.lua`). Redis runs a script as one step: nothing
//! else touches the keys between its first read and its last write.

use redis::Script;

const PRELUDE: &str = include_str!("lua/prelude.lua");

pub(super) struct Scripts {
    pub begin: Script,
    pub lookup: Script,
    pub create_session: Script,
    pub get_session: Script,
    pub list_sessions: Script,
    pub revoke_session: Script,
    pub revoke_workflow: Script,
    pub commit: Script,
    pub record_token: Script,
    pub token_status: Script,
    pub revoke_token: Script,
    pub set_state: Script,
    pub create_approval: Script,
    pub decide_approval: Script,
    pub list_approvals: Script,
}

fn script(body: &str) -> Script {
    Script::new(&format!("{PRELUDE}\n{body}"))
}

impl Scripts {
    pub(super) fn new() -> Scripts {
        Scripts {
            begin: script(include_str!("lua/begin.lua")),
            lookup: script(include_str!("lua/lookup.lua")),
            create_session: script(include_str!("lua/create_session.lua")),
            get_session: script(include_str!("lua/get_session.lua")),
            list_sessions: script(include_str!("lua/list_sessions.lua")),
            revoke_session: script(include_str!("lua/revoke_session.lua")),
            revoke_workflow: script(include_str!("lua/revoke_workflow.lua")),
            commit: script(include_str!("lua/commit.lua")),
            record_token: script(include_str!("lua/record_token.lua")),
            token_status: script(include_str!("lua/token_status.lua")),
            revoke_token: script(include_str!("lua/revoke_token.lua")),
            set_state: script(include_str!("lua/set_state.lua")),
            create_approval: script(include_str!("lua/create_approval.lua")),
            decide_approval: script(include_str!("lua/decide_approval.lua")),
            list_approvals: script(include_str!("lua/list_approvals.lua")),
        }
    }
}
