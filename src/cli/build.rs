//! `sluice build`: the selected models, each followed by its tests.

use super::args::ModelArgs;
use super::Context;
use sluice::models::Steps;

pub async fn run(ctx: &Context, args: ModelArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice build")?;
    super::run::models(
        ctx,
        &args,
        Steps::Build,
        "build",
        None,
        std::time::Instant::now(),
    )
    .await
}
