//! `sluice test`: the data tests of the selected models.

use super::args::ModelArgs;
use super::Context;
use sluice::models::Steps;

pub async fn run(ctx: &Context, args: ModelArgs) -> anyhow::Result<()> {
    super::run::models(ctx, &args, Steps::Tests, "test").await
}
