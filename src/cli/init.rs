//! `sluice init DIR`: a project skeleton that loads, builds and answers a query.

use super::args::InitArgs;
use super::stdio::stdout;
use std::io::Write;

pub fn run(args: InitArgs) -> anyhow::Result<()> {
    let dir = &args.dir;
    let written = sluice::project::init(dir)?;
    let mut out = stdout();
    writeln!(out, "created a sluice project in {}:", dir.display())?;
    for f in written {
        writeln!(out, "  {}", f.display())?;
    }
    writeln!(
        out,
        "next: cd {} && sluice run && sluice sql \"SELECT * FROM marts.events_by_kind\"",
        dir.display()
    )?;
    out.flush()?;
    Ok(())
}
