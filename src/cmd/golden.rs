//! `spikerc golden record SUITE.toml` / `spikerc golden check SUITE.toml [--only NAME] [--shard K/N]`:
//! golden-output regression suites. Argument parsing and printing only; suites, records,
//! tolerances and the localisation of failures live in `spikerc_check::golden`.

use anyhow::Context;
use clap::{Args as ClapArgs, Subcommand};
use spikerc_check::golden;
use std::path::PathBuf;

use crate::io::{read_input, write_atomic};

#[derive(ClapArgs)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Subcommand)]
pub enum Action {
    /// Run every case of the suite and (over)write its golden file.
    Record { suite: PathBuf },
    /// Rerun every case and compare with the golden file under the suite's tolerances; exit
    /// 1 on any difference, with the failure localised.
    Check {
        suite: PathBuf,
        /// Only the cases whose name contains this.
        #[arg(long)]
        only: Option<String>,
        /// Only shard K of N of the cases (every N-th by name, 1 <= K <= N; docs/scale-out.md).
        #[arg(long)]
        shard: Option<spikerc_models::shard::Shard>,
    },
}

pub fn main(a: Args) -> anyhow::Result<()> {
    let read = |p: &std::path::Path| read_input(p);
    let mut print = |l: &str| println!("{l}");
    match a.action {
        Action::Record { suite } => {
            let (path, text, n) = golden::record(&suite, &read, &mut print)?;
            write_atomic(&path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))?;
            println!("wrote {} ({n} cases)", path.display());
            Ok(())
        }
        Action::Check { suite, only, shard } => golden::check_shard(&suite, only.as_deref(), shard, &read, &mut print),
    }
}
