//! `rotator completions SHELL` and `rotator man`: shell completions and man
//! pages generated from the CLI definition itself, so they can never drift
//! from the flags the binary accepts. Packagers run them at build time (see
//! `config/packaging/`); nothing here reads config or touches Vault.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Command;
use clap_complete::Shell;

/// Write the completion script for `shell` to stdout.
pub fn completions(mut cli: Command, shell: Shell) -> anyhow::Result<ExitCode> {
    let name = cli.get_name().to_owned();
    let mut out = std::io::stdout().lock();
    clap_complete::generate(shell, &mut cli, name, &mut out);
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Write `rotator.1` to stdout, or with `dir`, one page per command
/// (`rotator.1`, `rotator-run.1`, `rotator-plugin-test.1`, …) into `dir`.
pub fn man(cli: Command, dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    match dir {
        None => {
            let mut out = std::io::stdout().lock();
            clap_mangen::Man::new(cli).render(&mut out)?;
            out.flush()?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cli, dir).with_context(|| format!("writing man pages to {}", dir.display()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
