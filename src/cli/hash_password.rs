//! `sluice hash-password [PASSWORD]`: a `password_hash` for `[[server.users]]`.

use super::args::HashPasswordArgs;
use super::stdio::stdout;
use anyhow::Context as _;
use std::io::Write;

pub fn run(args: HashPasswordArgs) -> anyhow::Result<()> {
    let password = match args.password {
        Some(p) => p,
        None => {
            // Standard input keeps the password out of the shell history.
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("cannot read the password from standard input")?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    if password.is_empty() {
        return Err(sluice::Error::Usage("the password is empty".into()).into());
    }
    let mut out = stdout();
    writeln!(out, "{}", sluice::server::hash_password(&password))?;
    out.flush()?;
    Ok(())
}
