//! `spikerc`: the command-line front of the spikerc toolchain.
//!
//! Argument parsing, files and human-readable output only; the logic lives in the library
//! crates (`spikerc-compiler`, `spikerc-models`, ...). Every failure is reported as one
//! message on stderr with a non-zero exit, and no output file is left behind.

/// `println!` for the whole CLI: a closed stdout (`spikerc inspect x.spk | head -1`) ends the
/// command quietly instead of panicking. Shadows `std::println!` in every module below.
macro_rules! println {
    () => { $crate::stdout_write(format_args!("\n")) };
    ($($t:tt)*) => { $crate::stdout_write(format_args!("{}\n", format_args!($($t)*))) };
}

/// `print!` with the same broken-pipe handling as [`println!`].
macro_rules! print {
    ($($t:tt)*) => { $crate::stdout_write(format_args!($($t)*)) };
}

/// Writes to stdout; a reader that went away (broken pipe) ends the process with status 0,
/// as when the reader is done (nothing is left half-written: commands print after their files
/// are in place).
pub(crate) fn stdout_write(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
    }
}

mod cmd;
mod io;
mod outputs;
mod progress;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "spikerc",
    version,
    about = "Compile spiking image-restoration networks for neuromorphic hardware"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a SpikerIR checkpoint (.safetensors or .pt) into an artifact.
    #[command(after_help = "Examples:\n  spikerc compile model.safetensors --config meta.json --precision f16 -o model.spk\n  spikerc compile model.safetensors --target lynxi:ka200-like --input-size 256x256 -o deploy/")]
    Compile(cmd::compile::Args),
    /// Describe a checkpoint or an artifact.
    #[command(after_help = "Examples:\n  spikerc inspect model.spk\n  spikerc inspect model.safetensors --json")]
    Inspect(cmd::inspect::Args),
    /// Run an artifact on an image or tensor file.
    #[command(after_help = "Examples:\n  spikerc run model.spk --input noisy.png --output restored.png --stats stats.json\n  spikerc run model.spk --input clean.png --sigma 25 --seed 0 --output restored.png\n  spikerc run model.spk --input images/ --output restored/ --shard 1/4")]
    Run(cmd::run::Args),
    /// The main job end to end: compile, run and check a shipped model on a shipped image.
    #[command(after_help = "Example:\n  spikerc demo --out out/demo")]
    Demo(cmd::demo::Args),
    /// Simulate an accelerator deployment: outputs, latency, energy report.
    #[command(after_help = "Example:\n  spikerc simulate deploy/ --input image.png --output out.png --report report.json --report-html report.html")]
    Simulate(cmd::simulate::Args),
    /// Benchmark the event-driven runtime (vs the interpreter and libtorch).
    #[command(after_help = "Example:\n  spikerc bench paper.spk --size 256 --threads 2")]
    Bench(cmd::bench::Args),
    /// Generate a calibrated random SpikerIR benchmark checkpoint.
    #[command(after_help = "Example:\n  spikerc gen-model --levels 4 --dim 48 --blocks 2 --seed 1 -o paper.safetensors")]
    GenModel(cmd::gen_model::Args),
    /// Check an artifact against the libtorch reference of its checkpoint (feature `torch`).
    #[cfg(feature = "torch")]
    #[command(after_help = "Example:\n  spikerc verify model.safetensors --config meta.json --artifact model.spk --json verify.json")]
    Verify(cmd::verify::Args),
    /// Record or check a golden-output regression suite (feature `torch`).
    #[cfg(feature = "torch")]
    #[command(after_help = "Examples:\n  spikerc golden record tests/golden/suite.toml\n  spikerc golden check tests/golden/suite.toml")]
    Golden(cmd::golden::Args),
    /// PSNR/SSIM of a model or artifact on a restoration test set.
    Eval(cmd::eval::Args),
    /// Train a SpikerIR student with H-KD (feature `torch`).
    #[cfg(feature = "torch")]
    #[command(after_help = "Example:\n  spikerc train --out runs/denoise --data ../shared/data/train --steps 700")]
    Train(cmd::train::Args),
    /// Check an artifact against libtorch: needs a build with feature `torch`.
    #[cfg(not(feature = "torch"))]
    Verify(cmd::Missing),
    /// Golden-output suites: needs a build with feature `torch`.
    #[cfg(not(feature = "torch"))]
    Golden(cmd::Missing),
    /// Train with H-KD: needs a build with feature `torch`.
    #[cfg(not(feature = "torch"))]
    Train(cmd::Missing),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Compile(a) => cmd::compile::main(a),
        Command::Inspect(a) => cmd::inspect::main(a),
        Command::Run(a) => cmd::run::main(a),
        Command::Demo(a) => cmd::demo::main(a),
        Command::Simulate(a) => cmd::simulate::main(a),
        Command::Bench(a) => cmd::bench::main(a),
        Command::GenModel(a) => cmd::gen_model::main(a),
        #[cfg(feature = "torch")]
        Command::Verify(a) => cmd::verify::main(a),
        #[cfg(feature = "torch")]
        Command::Golden(a) => cmd::golden::main(a),
        Command::Eval(a) => cmd::eval::main(a),
        #[cfg(feature = "torch")]
        Command::Train(a) => cmd::train::main(a),
        #[cfg(not(feature = "torch"))]
        Command::Verify(_) => cmd::missing("verify"),
        #[cfg(not(feature = "torch"))]
        Command::Golden(_) => cmd::missing("golden"),
        #[cfg(not(feature = "torch"))]
        Command::Train(_) => cmd::missing("train"),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
