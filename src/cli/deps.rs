//! `sluice deps`: the packages of packages.yml, installed into dbt_packages/.

use super::args::{DepsArgs, SummaryFormat};
use super::Context;
use std::io::Write;

pub async fn run(ctx: &Context, args: DepsArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice deps")?;
    let settings = &ctx.project.settings;
    let specs = &settings.package_specs;
    let outcomes =
        sluice::project::packages::install(&ctx.project.root, specs, &settings.install_path);
    let mut out = super::stdio::stdout();
    match args.format {
        SummaryFormat::Json => {
            writeln!(out, "{}", serde_json::to_string_pretty(&outcomes)?)?;
        }
        SummaryFormat::Table => {
            if outcomes.is_empty() {
                writeln!(
                    out,
                    "no packages: packages.yml (or dependencies.yml) lists none"
                )?;
            }
            for o in &outcomes {
                match (&o.name, &o.path, &o.error) {
                    (Some(name), Some(path), _) => {
                        let shown = path.strip_prefix(&ctx.project.root).unwrap_or(path);
                        writeln!(out, "installed {name} ({}) in {}", o.spec, shown.display())?
                    }
                    (_, _, Some(e)) => writeln!(out, "FAILED    {}: {e}", o.spec)?,
                    _ => {}
                }
            }
        }
    }
    let failed = outcomes.iter().filter(|o| o.error.is_some()).count();
    if failed > 0 {
        anyhow::bail!(sluice::Error::config(
            ctx.project.root.join("packages.yml"),
            format!(
                "{failed} of {} package(s) could not be installed (see above)",
                outcomes.len()
            )
        ));
    }
    Ok(())
}
