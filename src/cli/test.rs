//! `sluice test`: the data tests of the selected models.

use super::args::TestArgs;
use super::Context;
use sluice::models::Steps;

pub async fn run(ctx: &Context, args: TestArgs) -> anyhow::Result<()> {
    ctx.project.require_config("sluice test")?;
    super::run::models(
        ctx,
        &args.into(),
        Steps::Tests,
        "test",
        None,
        std::time::Instant::now(),
    )
    .await
}
