//! `airlock approvals …` and `airlock workflow …`: a person deciding on
//! escalated requests, and operators reading, setting and revoking a
//! workflow (through the admin API).

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::ops::print;
use super::remote::AdminArgs;

#[derive(Subcommand, Debug)]
pub enum ApprovalsCommand {
    /// List approvals, newest first (pending ones only with --pending).
    List {
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Show one approval: the request it is bound to and the policy's reason.
    Show {
        id: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Approve: the agent may send the identical request once more, with the id.
    Approve(Decision),
    /// Deny: the request will not go through.
    Deny(Decision),
}

/// A person's decision on one approval.
#[derive(Args, Debug)]
pub struct Decision {
    id: String,
    /// Who decides (default: $USER).
    #[arg(long = "as", env = "USER")]
    approver: String,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    admin: AdminArgs,
}

#[derive(Subcommand, Debug)]
pub enum WorkflowCommand {
    /// Print a workflow's state.
    State {
        workflow: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Set (`key=value`) or remove (`key=`, with --unset) keys of a workflow's state.
    Set {
        workflow: String,
        /// `key=value` pairs to set.
        #[arg(value_name = "KEY=VALUE")]
        pairs: Vec<String>,
        /// Keys to remove.
        #[arg(long)]
        unset: Vec<String>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Revoke a workflow: every session, handle and token in it, at once.
    Revoke {
        workflow: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
}

pub fn approvals(cmd: ApprovalsCommand) -> ExitCode {
    match cmd {
        ApprovalsCommand::List { pending, admin } => {
            let filter = if pending { "?status=pending" } else { "" };
            print(admin.call("GET", &format!("/v1/approvals{filter}"), None))
        }
        ApprovalsCommand::Show { id, admin } => {
            print(admin.call("GET", &format!("/v1/approvals/{id}"), None))
        }
        ApprovalsCommand::Approve(d) => decide(d, "approve"),
        ApprovalsCommand::Deny(d) => decide(d, "deny"),
    }
}

fn decide(d: Decision, verb: &str) -> ExitCode {
    print(d.admin.call(
        "POST",
        &format!("/v1/approvals/{}/{verb}", d.id),
        Some(json!({ "approver": d.approver, "note": d.note })),
    ))
}

pub fn workflow(cmd: WorkflowCommand) -> ExitCode {
    match cmd {
        WorkflowCommand::State { workflow, admin } => {
            print(admin.call("GET", &format!("/v1/workflows/{workflow}/state"), None))
        }
        WorkflowCommand::Set {
            workflow,
            pairs,
            unset,
            admin,
        } => {
            let mut changes = Map::new();
            for pair in &pairs {
                let Some((k, v)) = pair.split_once('=') else {
                    eprintln!("error: {pair:?} is not KEY=VALUE");
                    return ExitCode::FAILURE;
                };
                changes.insert(k.to_string(), Value::String(v.to_string()));
            }
            for key in unset {
                changes.insert(key, Value::Null);
            }
            if changes.is_empty() {
                eprintln!("error: nothing to change; give KEY=VALUE pairs or --unset KEY");
                return ExitCode::FAILURE;
            }
            print(admin.call(
                "PATCH",
                &format!("/v1/workflows/{workflow}/state"),
                Some(Value::Object(changes)),
            ))
        }
        WorkflowCommand::Revoke { workflow, admin } => {
            print(admin.call("DELETE", &format!("/v1/workflows/{workflow}"), None))
        }
    }
}
