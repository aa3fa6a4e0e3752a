//! `sluice test`: the data tests of the selected models.

use super::args::ModelArgs;
use super::Context;
use sluice::models::Steps;

pub async fn run(ctx: &Context, args: ModelArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice test")?;
    super::run::models(ctx, &args, Steps::Tests, "test").await
}
