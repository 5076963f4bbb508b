//! `airlock demo`: the multi-agent bug-fix workflow, end to end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use airlock::demo::{DemoOptions, run_bugfix};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Repository root: the policies are built from <root>/policies/<role>.
    #[arg(long, default_value = ".")]
    root: PathBuf,
    /// Scratch directory for built policies, keys, tokens and the audit log.
    #[arg(long, default_value = ".airlock/bugfix")]
    dir: PathBuf,
    /// Directory of prebuilt `<role>.wasm` components (skips building).
    #[arg(long)]
    policies: Option<PathBuf>,
}

pub fn run(args: DemoArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = DemoOptions {
        root: args.root,
        dir: args.dir,
        policies: args.policies,
    };
    let mut out = std::io::stdout();
    match runtime.block_on(run_bugfix(&options, &mut out)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: the workflow did not go as expected (see the steps marked ✗)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
