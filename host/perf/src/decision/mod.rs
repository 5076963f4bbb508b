//! Decision timing: every Rust example policy in a fresh instance, beside
//! the same rules in Cedar and Rego; growth with diff size and roles loaded.
//!
//! Before anything is timed, every case of each policy's `cases.toml` is
//! decided by each engine, and the run fails unless all of them give the
//! case's verdict kind (allow, deny or escalate): the engines are compared
//! on rules shown to decide alike. Each policy is then timed on the allowed
//! case of its table with the most to read (the largest request).
//!
//! Cedar and Rego rules exist for crash-tracker, analytics-agent,
//! code-reviewer, pr-creator and github-mcp (host/perf/rules/). The five
//! bug-fix workflow policies (business-agent, developer, senior-reviewer,
//! qa, release) are timed in Wasm only: their state could be passed as
//! context, but their rules read and write it as they go (budgets counted
//! up per request, stages advanced, approvals dismissed), and most of what
//! they check is string work on bodies, paths and task comments that Cedar
//! cannot do; a translation would move nearly all of each policy into the
//! request conversion and measure that, not the engines.

mod cases;
mod cedar;
mod facts;
mod rego;
mod wasm;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::{Deserialize, Serialize};

use airlock::policy::{Engine, EngineConfig, Limits, MemoryState, NoState, PolicyModule, PolicyRequest};

use cases::Case;
use cedar::CedarRules;
use rego::RegoRules;

pub struct Options {
    /// The repository root (policies/ is under it).
    pub root: PathBuf,
    /// A handful of samples per measurement: checks the code, measures nothing.
    pub smoke: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// Timed decisions per measurement.
    pub samples: usize,
    /// One per Rust example policy.
    pub policies: Vec<PolicyDecision>,
    /// pr-creator, `x` = request body bytes (1 KiB → 1 MiB), a diff it
    /// allows. Points whose decisions are slow take fewer samples (at least
    /// [`MIN_SCALE_SAMPLES`]), so that no point runs much over
    /// [`SCALE_POINT_BUDGET`].
    pub diff_size: Vec<ScalePoint>,
    /// crash-tracker, `x` = roles loaded (1 → 100).
    pub roles: Vec<ScalePoint>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PolicyDecision {
    pub policy: String,
    /// Requests whose verdicts were checked equal across the engines (the
    /// policy's whole case table; 0 when it has no Cedar or Rego rules,
    /// though its Wasm verdicts are still checked against the table).
    pub cases_checked: usize,
    /// The Wasm component, a fresh instance per decision.
    pub wasm: Percentiles,
    /// The same rules in Cedar (`cedar-policy`), request conversion included.
    pub cedar: Option<Percentiles>,
    /// The same rules in Rego (`regorus`), request conversion included.
    pub rego: Option<Percentiles>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScalePoint {
    pub x: u64,
    pub wasm: Percentiles,
}

const FULL_SAMPLES: usize = 20_000;
const SMOKE_SAMPLES: usize = 20;
const DIFF_SIZES: [usize; 6] = [1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20];
const ROLES: [usize; 4] = [1, 10, 50, 100];
/// Roughly how long one scale point may take in a full run.
pub const SCALE_POINT_BUDGET: Duration = Duration::from_secs(5);
/// The fewest samples a scale point takes in a full run.
pub const MIN_SCALE_SAMPLES: usize = 500;

/// A decision's verdict kind, the one thing every engine must agree on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Allow,
    Deny,
    Escalate,
}

pub fn run(options: &Options) -> anyhow::Result<Results> {
    let samples = if options.smoke {
        SMOKE_SAMPLES
    } else {
        FULL_SAMPLES
    };
    let engine = Engine::new(EngineConfig::default())?;
    let mut policies = Vec::new();
    for name in crate::EXAMPLE_POLICIES {
        policies.push(policy(options, &engine, name, samples)?);
    }
    let pr_creator = wasm::build(&options.root, "pr-creator")?;
    let crash_tracker = wasm::build(&options.root, "crash-tracker")?;
    Ok(Results {
        samples,
        policies,
        diff_size: diff_size(&engine, &pr_creator, options.smoke, samples)?,
        roles: roles(&crash_tracker, samples)?,
    })
}

/// The other engines a policy's rules are written for.
struct Rules {
    cedar: CedarRules,
    rego: RegoRules,
}

impl Rules {
    fn load(options: &Options, name: &str) -> anyhow::Result<Option<Rules>> {
        let Some(extract) = facts::extractor(name) else {
            return Ok(None);
        };
        let dir = options.root.join("host/perf/rules");
        Ok(Some(Rules {
            cedar: CedarRules::load(&dir.join(format!("{name}.cedar")), extract)?,
            rego: RegoRules::load(&dir.join(format!("{name}.rego")), name, extract)?,
        }))
    }
}

fn policy(options: &Options, engine: &Engine, name: &str, samples: usize) -> anyhow::Result<PolicyDecision> {
    let module = wasm::load(engine, &wasm::build(&options.root, name)?, name)?;
    let table = options.root.join("policies").join(name).join("cases.toml");
    let cases = cases::load(&table)?;
    let mut rules = Rules::load(options, name)?;
    let limits = Limits::default();
    for case in &cases {
        check(name, case, &module, rules.as_mut(), &limits)?;
    }
    // The allowed request with the most to read: for pr-creator a pull
    // request, not a read, so that its diff is part of what is timed.
    let representative = cases
        .iter()
        .filter(|c| c.expect == Outcome::Allow)
        .rev()
        .max_by_key(|c| request_size(&c.request));
    let Some(representative) = representative else {
        bail!("{name}: no case in {} is allowed", table.display());
    };
    let request = &representative.request;
    let state = representative.state();
    let wasm = time(samples, || {
        wasm::decide(&module, request, state.clone(), &limits);
        Ok(())
    })?;
    let (cedar, rego) = match &mut rules {
        Some(rules) => (
            Some(time(samples, || rules.cedar.decide(request).map(drop))?),
            Some(time(samples, || rules.rego.decide(request).map(drop))?),
        ),
        None => (None, None),
    };
    Ok(PolicyDecision {
        policy: name.to_string(),
        cases_checked: if rules.is_some() { cases.len() } else { 0 },
        wasm,
        cedar,
        rego,
    })
}

/// A request's size in its JSON form, body included.
fn request_size(request: &PolicyRequest) -> usize {
    serde_json::to_string(request).map_or(0, |json| json.len()) + request.action.body.len()
}

/// Every engine must give the case's verdict kind.
fn check(
    name: &str,
    case: &Case,
    module: &PolicyModule,
    rules: Option<&mut Rules>,
    limits: &Limits,
) -> anyhow::Result<()> {
    let context = || format!("{name}: case {:?}", case.name);
    let mut got = vec![("wasm", wasm::decide(module, &case.request, case.state(), limits))];
    if let Some(rules) = rules {
        got.push(("cedar", rules.cedar.decide(&case.request).with_context(context)?));
        got.push(("rego", rules.rego.decide(&case.request).with_context(context)?));
    }
    if got.iter().any(|(_, outcome)| *outcome != case.expect) {
        let got: Vec<String> = got.iter().map(|(engine, o)| format!("{engine} {o:?}")).collect();
        bail!(
            "{}: verdicts differ: expected {:?}, got {}",
            context(),
            case.expect,
            got.join(", ")
        );
    }
    Ok(())
}

/// pr-creator on ever larger diffs, with limits that let it read 1 MiB
/// (the defaults' fuel would run out first; a host would raise the role's
/// `policy_body_bytes` and limits the same way to judge diffs this large).
fn diff_size(
    engine: &Engine,
    component: &[u8],
    smoke: bool,
    samples: usize,
) -> anyhow::Result<Vec<ScalePoint>> {
    let module = wasm::load(engine, component, "pr-creator")?;
    let limits = Limits {
        fuel: 20_000_000_000,
        memory_bytes: 128 << 20,
        deadline: Duration::from_secs(10),
    };
    DIFF_SIZES
        .into_iter()
        .map(|size| {
            let request = wasm::pull_request_of_size(size)?;
            let evaluation = module.evaluate(&request, Arc::new(NoState), &limits);
            if evaluation.verdict.grant().is_none() {
                bail!(
                    "pr-creator: the {size}-byte pull request is not allowed: {:?}",
                    evaluation.verdict
                );
            }
            let n = scale_samples(evaluation.elapsed, smoke, samples);
            let wasm = time(n, || {
                module.evaluate(&request, Arc::new(NoState), &limits);
                Ok(())
            })?;
            Ok(ScalePoint { x: size as u64, wasm })
        })
        .collect()
}

/// crash-tracker with 1 to 100 roles' policies loaded in one engine, each
/// its own compiled module (see [`wasm::tagged`]); decisions are timed on
/// the first one loaded while all are resident.
fn roles(component: &[u8], samples: usize) -> anyhow::Result<Vec<ScalePoint>> {
    let engine = Engine::new(EngineConfig::default())?;
    let limits = Limits::default();
    let request: PolicyRequest = serde_json::from_value(serde_json::json!({
        "principal": {"agent": "crash-bot-1", "role": "crash-tracker", "session": "s-1", "workflow": "wf-1"},
        "action": {"service": "crash-reporting", "operation": "crashes.read", "method": "GET", "path": "/crashes/8f3a2c"},
    }))?;
    let state = Arc::new(MemoryState::default());
    let mut modules: Vec<PolicyModule> = Vec::new();
    let mut points = Vec::new();
    for count in ROLES {
        while modules.len() < count {
            let tag = format!("role-{}", modules.len());
            modules.push(wasm::load(
                &engine,
                &wasm::tagged(component, &tag),
                "crash-tracker",
            )?);
        }
        let first = &modules[0];
        if wasm::decide(first, &request, state.clone(), &limits) != Outcome::Allow {
            bail!("crash-tracker does not allow its read with {count} roles loaded");
        }
        let wasm = time(samples, || {
            wasm::decide(first, &request, state.clone(), &limits);
            Ok(())
        })?;
        points.push(ScalePoint {
            x: count as u64,
            wasm,
        });
    }
    Ok(points)
}

/// Samples for a scale point whose one decision took `once`.
fn scale_samples(once: Duration, smoke: bool, samples: usize) -> usize {
    if smoke {
        return samples;
    }
    let affordable = SCALE_POINT_BUDGET.as_nanos() / once.as_nanos().max(1);
    usize::try_from(affordable)
        .unwrap_or(usize::MAX)
        .clamp(MIN_SCALE_SAMPLES, samples)
}

/// p50 and p99 of `samples` timed calls, after a tenth as many untimed
/// ones to warm caches and allocators.
fn time(samples: usize, mut decide: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Percentiles> {
    for _ in 0..(samples / 10).max(1) {
        decide()?;
    }
    let mut took = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        decide()?;
        took.push(started.elapsed());
    }
    took.sort_unstable();
    let at = |p: f64| {
        let index = ((took.len().saturating_sub(1)) as f64 * p).round() as usize;
        took.get(index).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    Ok(Percentiles {
        p50_us: at(0.50),
        p99_us: at(0.99),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .ancestors()
            .find(|p| p.join("policies").is_dir())
            .expect("repository root")
            .to_path_buf()
    }

    /// The whole part in smoke mode: builds, checks every case, times.
    #[test]
    fn decision_smoke() {
        let results = run(&Options {
            root: root(),
            smoke: true,
        })
        .expect("decision part runs");
        assert_eq!(results.policies.len(), crate::EXAMPLE_POLICIES.len());
        assert_eq!(results.diff_size.len(), DIFF_SIZES.len());
        assert_eq!(results.roles.len(), ROLES.len());
    }

    /// Requests the case tables do not cover, on the edges of the rules.
    #[test]
    fn engines_agree_on_edges() {
        let engine = Engine::new(EngineConfig::default()).expect("engine");
        let options = Options {
            root: root(),
            smoke: true,
        };
        let principal = serde_json::json!({"agent": "a", "role": "r", "session": "s", "workflow": "w"});
        let edges = [
            (
                "github-mcp",
                Outcome::Deny,
                serde_json::json!({"service": "github-mcp", "method": "POST", "path": "/mcp",
                "mcp": {"method": "tools/call", "name": "get_file_contents", "arguments": {"owner": "acme", "repo": "shop", "path": "src\\x.rs"}}}),
            ),
            (
                "github-mcp",
                Outcome::Deny,
                serde_json::json!({"service": "github-mcp", "method": "POST", "path": "/mcp",
                "mcp": {"method": "tools/call", "name": "create_pull_request", "arguments": {"owner": "acme", "repo": "billing", "head": "agent/x", "base": "release"}}}),
            ),
            (
                "code-reviewer",
                Outcome::Allow,
                serde_json::json!({"service": "code", "operation": "pulls.comment", "method": "GET", "path": "/x",
                "body": "{\"body\": \"/merge\"}"}),
            ),
            (
                "code-reviewer",
                Outcome::Deny,
                serde_json::json!({"service": "code", "operation": "issues.comment", "method": "POST", "path": "/x",
                "body": "{\"body\": \"ok\\n  @Bors   R+ now\"}"}),
            ),
            (
                "pr-creator",
                Outcome::Deny,
                serde_json::json!({"service": "code", "operation": "branches.create", "method": "POST", "path": "/x",
                "body": "{\"name\": \"Refs/Heads/Release-1\", \"from\": \"main\"}"}),
            ),
            (
                "pr-creator",
                Outcome::Allow,
                serde_json::json!({"service": "code", "operation": "branches.create", "method": "POST", "path": "/x",
                "body": "{\"name\": \"refs/heads/mainline\", \"from\": \"main\"}"}),
            ),
        ];
        let rates = [
            (30, 9, Outcome::Allow),
            (30, 10, Outcome::Deny),
            (0, 19, Outcome::Allow),
            (0, 20, Outcome::Deny),
            (1, 0, Outcome::Allow),
            (1, 1, Outcome::Deny),
            (7, 1, Outcome::Allow),
            (7, 2, Outcome::Deny),
        ];
        let rates = rates.into_iter().map(|(window, used, expect)| {
            (
                "analytics-agent",
                expect,
                serde_json::json!({"service": "analytics", "method": "GET", "path": "/d",
                "usage": {"window_seconds": window, "requests_in_window": used}}),
            )
        });
        for (name, expect, action) in edges.into_iter().chain(rates) {
            let module =
                wasm::load(&engine, &wasm::build(&options.root, name).expect("build"), name).expect("load");
            let mut rules = Rules::load(&options, name).expect("rules");
            let mut request = serde_json::json!({"principal": principal, "action": action});
            if let Some(usage) = request["action"].as_object_mut().and_then(|a| a.remove("usage")) {
                request["usage"] = usage;
            }
            let case = Case {
                name: format!("{action}"),
                expect,
                request: serde_json::from_value(request).expect("request"),
                state: Default::default(),
            };
            check(name, &case, &module, rules.as_mut(), &Limits::default()).expect("engines agree");
        }
    }

    /// A full run, for figures: `cargo test --release -p airlock-perf
    /// decision -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn decision_full() {
        let results = run(&Options {
            root: root(),
            smoke: false,
        })
        .expect("decision part runs");
        println!("{}", serde_json::to_string_pretty(&results).expect("json"));
    }
}
