//! The AS OF plans on the wire: a [`PhysicalExtensionCodec`] for
//! [`AsOfMergeExec`], [`AsOfProbeExec`] and [`AsOfStreamExec`], so that a
//! distributed plan can send them to workers. Expressions and the schema go
//! through DataFusion's own protobuf forms; the rest is a small message of
//! ours, tagged with a version so that a worker of another release refuses it
//! by name instead of misreading it.

use super::join::{AsOfCondition, AsOfJoin};
use super::node::{AsOfKind, AsOfOp};
use super::{AsOfMergeExec, AsOfProbeExec, AsOfStreamExec};
use datafusion::arrow::datatypes::Schema;
use datafusion::common::{exec_datafusion_err, internal_err, DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExprRef;
use datafusion::physical_plan::ExecutionPlan;
use datafusion_proto::physical_plan::{
    PhysicalExtensionCodec, PhysicalPlanDecodeContext, PhysicalProtoConverterExtension,
};
use datafusion_proto::protobuf::{PhysicalExprNode, Schema as SchemaProto};
use prost::Message;
use std::sync::Arc;

/// The version of [`AsOfNodeProto`] this build writes and reads.
const VERSION: u32 = 1;

#[derive(Clone, PartialEq, prost::Message)]
struct AsOfNodeProto {
    #[prost(uint32, tag = "1")]
    version: u32,
    /// 0 merge, 1 probe, 2 stream.
    #[prost(uint32, tag = "2")]
    strategy: u32,
    #[prost(message, repeated, tag = "3")]
    on_left: Vec<PhysicalExprNode>,
    #[prost(message, repeated, tag = "4")]
    on_right: Vec<PhysicalExprNode>,
    #[prost(message, optional, tag = "5")]
    match_left: Option<PhysicalExprNode>,
    #[prost(message, optional, tag = "6")]
    match_right: Option<PhysicalExprNode>,
    /// 0 `>=`, 1 `>`, 2 `<=`, 3 `<`.
    #[prost(uint32, tag = "7")]
    op: u32,
    /// 0 inner, 1 left.
    #[prost(uint32, tag = "8")]
    kind: u32,
    #[prost(int64, optional, tag = "9")]
    tolerance: Option<i64>,
    #[prost(message, repeated, tag = "10")]
    tiebreak: Vec<PhysicalExprNode>,
    #[prost(bool, tag = "11")]
    implicit_tiebreak: bool,
    #[prost(message, optional, tag = "12")]
    schema: Option<SchemaProto>,
}

/// Encodes and decodes the AS OF plans (register it on the coordinator and on
/// every worker).
#[derive(Debug, Default, Clone, Copy)]
pub struct AsOfCodec;

fn op_code(op: AsOfOp) -> u32 {
    match op {
        AsOfOp::GtEq => 0,
        AsOfOp::Gt => 1,
        AsOfOp::LtEq => 2,
        AsOfOp::Lt => 3,
    }
}

fn op_of(code: u32) -> Result<AsOfOp> {
    Ok(match code {
        0 => AsOfOp::GtEq,
        1 => AsOfOp::Gt,
        2 => AsOfOp::LtEq,
        3 => AsOfOp::Lt,
        other => return Err(exec_datafusion_err!("AS OF plan: unknown operator {other}")),
    })
}

impl AsOfCodec {
    fn join_of(node: &dyn ExecutionPlan) -> Option<(u32, &AsOfJoin)> {
        let any: &dyn std::any::Any = node;
        if let Some(p) = any.downcast_ref::<AsOfMergeExec>() {
            return Some((0, p.join()));
        }
        if let Some(p) = any.downcast_ref::<AsOfProbeExec>() {
            return Some((1, p.join()));
        }
        any.downcast_ref::<AsOfStreamExec>().map(|p| (2, p.join()))
    }
}

impl PhysicalExtensionCodec for AsOfCodec {
    fn try_decode(
        &self,
        buf: &[u8],
        inputs: &[Arc<dyn ExecutionPlan>],
        ctx: &TaskContext,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let msg = AsOfNodeProto::decode(buf)
            .map_err(|e| exec_datafusion_err!("AS OF plan from the coordinator: {e}"))?;
        if msg.version != VERSION {
            return Err(exec_datafusion_err!(
                "AS OF plan of format {} from the coordinator, this worker reads format {VERSION}: run the same sluice release on the coordinator and the workers",
                msg.version
            ));
        }
        let [left, right] = inputs else {
            return internal_err!("AS OF plan with {} inputs", inputs.len());
        };
        let (ls, rs) = (left.schema(), right.schema());
        let decode = PhysicalPlanDecodeContext::new(ctx, self);
        let expr = |node: &PhysicalExprNode, schema: &Schema| -> Result<PhysicalExprRef> {
            proto_converter.proto_to_physical_expr(node, schema, &decode)
        };
        let missing = || exec_datafusion_err!("AS OF plan from the coordinator is incomplete");
        if msg.on_left.len() != msg.on_right.len() {
            return Err(missing());
        }
        let on = msg
            .on_left
            .iter()
            .zip(&msg.on_right)
            .map(|(l, r)| Ok((expr(l, &ls)?, expr(r, &rs)?)))
            .collect::<Result<Vec<_>>>()?;
        let condition = AsOfCondition {
            on,
            match_left: expr(msg.match_left.as_ref().ok_or_else(missing)?, &ls)?,
            match_right: expr(msg.match_right.as_ref().ok_or_else(missing)?, &rs)?,
            op: op_of(msg.op)?,
            kind: if msg.kind == 0 {
                AsOfKind::Inner
            } else {
                AsOfKind::Left
            },
            tolerance: msg.tolerance,
            tiebreak: msg
                .tiebreak
                .iter()
                .map(|t| expr(t, &rs))
                .collect::<Result<_>>()?,
            implicit_tiebreak: msg.implicit_tiebreak,
        };
        let schema: Schema = msg
            .schema
            .as_ref()
            .ok_or_else(missing)?
            .try_into()
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let (l, r, s) = (left.clone(), right.clone(), Arc::new(schema));
        Ok(match msg.strategy {
            0 => Arc::new(AsOfMergeExec::try_new(l, r, condition, s)?),
            1 => Arc::new(AsOfProbeExec::try_new(l, r, condition, s)?),
            2 => Arc::new(AsOfStreamExec::try_new(l, r, condition, s)?),
            other => {
                return Err(exec_datafusion_err!(
                    "AS OF plan of unknown strategy {other}: run the same sluice release on the coordinator and the workers"
                ))
            }
        })
    }

    fn try_encode(
        &self,
        node: Arc<dyn ExecutionPlan>,
        buf: &mut Vec<u8>,
        proto_converter: &dyn PhysicalProtoConverterExtension,
    ) -> Result<()> {
        let Some((strategy, join)) = Self::join_of(node.as_ref()) else {
            return Err(exec_datafusion_err!(
                "{} cannot run on a worker (no codec for it)",
                node.name()
            ));
        };
        let c = &join.condition;
        let enc = |e: &PhysicalExprRef| proto_converter.physical_expr_to_proto(e, self);
        let msg = AsOfNodeProto {
            version: VERSION,
            strategy,
            on_left: c.on.iter().map(|(l, _)| enc(l)).collect::<Result<_>>()?,
            on_right: c.on.iter().map(|(_, r)| enc(r)).collect::<Result<_>>()?,
            match_left: Some(enc(&c.match_left)?),
            match_right: Some(enc(&c.match_right)?),
            op: op_code(c.op),
            kind: match c.kind {
                AsOfKind::Inner => 0,
                AsOfKind::Left => 1,
            },
            tolerance: c.tolerance,
            tiebreak: c.tiebreak.iter().map(enc).collect::<Result<_>>()?,
            implicit_tiebreak: c.implicit_tiebreak,
            schema: Some(
                join.schema
                    .as_ref()
                    .try_into()
                    .map_err(|e| DataFusionError::External(Box::new(e)))?,
            ),
        };
        msg.encode(buf)
            .map_err(|e| DataFusionError::External(Box::new(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asof::physical_planner::AsOfMode;
    use crate::sql::{Engine, EngineOptions};
    use datafusion::physical_plan::displayable;

    /// Every strategy, with keys, a tolerance and a tie-break, survives the
    /// round trip with the same `EXPLAIN` text and the same rows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn asof_plans_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let wh =
            crate::warehouse::Warehouse::open(dir.path().to_str().unwrap(), &Default::default())
                .unwrap();
        for mode in [AsOfMode::Merge, AsOfMode::Probe, AsOfMode::Stream] {
            let options = EngineOptions {
                asof_mode: Some(mode),
                ..Default::default()
            };
            let engine = Engine::with_options(wh.clone(), "main", &options)
                .await
                .unwrap();
            let ctx = engine.context();
            ctx.sql("CREATE VIEW l AS SELECT * FROM (VALUES (1, 10, 'a'), (1, 20, 'b'), (2, 7, 'c'), (3, 1, 'd')) AS t(k, t, s)")
                .await
                .unwrap();
            ctx.sql("CREATE VIEW r AS SELECT * FROM (VALUES (1, 9, 100), (1, 9, 101), (1, 18, 102), (2, 1, 103), (3, 5, 104)) AS t(k, t, v)")
                .await
                .unwrap();
            let sql = "SELECT l.k, l.t, l.s, r.v FROM l ASOF LEFT JOIN r \
                       MATCH_CONDITION (l.t >= r.t) ON l.k = r.k TOLERANCE 5 TIEBREAK BY r.v \
                       ORDER BY l.k, l.t";
            let df = engine.sql(sql).await.unwrap();
            let plan = df.create_physical_plan().await.unwrap();
            let text = displayable(plan.as_ref()).indent(true).to_string();
            assert!(text.contains("AsOf"), "{mode:?}: {text}");
            let bytes = datafusion_proto::bytes::physical_plan_to_bytes_with_extension_codec(
                plan.clone(),
                &AsOfCodec,
            )
            .unwrap();
            let back = datafusion_proto::bytes::physical_plan_from_bytes_with_extension_codec(
                &bytes,
                &ctx.task_ctx(),
                &AsOfCodec,
            )
            .unwrap();
            assert_eq!(
                text,
                displayable(back.as_ref()).indent(true).to_string(),
                "{mode:?}"
            );
            let show = |rows: &[datafusion::arrow::array::RecordBatch]| {
                arrow::util::pretty::pretty_format_batches(rows)
                    .unwrap()
                    .to_string()
            };
            let expected = datafusion::physical_plan::collect(plan, ctx.task_ctx())
                .await
                .unwrap();
            let got = datafusion::physical_plan::collect(back, ctx.task_ctx())
                .await
                .unwrap();
            assert_eq!(show(&got), show(&expected), "{mode:?}");
            // 1@10 -> 101 (tie at 9 broken by the highest v), 1@20 -> 102,
            // 2@7 -> none (6 apart, beyond the tolerance), 3@1 -> none.
            let text = show(&got);
            for needle in [
                "| 1 | 10 | a | 101 |",
                "| 1 | 20 | b | 102 |",
                "| 2 | 7  | c |     |",
            ] {
                assert!(text.contains(needle), "{mode:?}: {needle} in\n{text}");
            }
        }
    }

    #[test]
    fn foreign_nodes_and_formats_are_refused_by_name() {
        let empty: Arc<dyn ExecutionPlan> = Arc::new(
            datafusion::physical_plan::empty::EmptyExec::new(Arc::new(Schema::empty())),
        );
        let conv = datafusion_proto::physical_plan::DefaultPhysicalProtoConverter {};
        let err = AsOfCodec
            .try_encode(empty, &mut Vec::new(), &conv)
            .unwrap_err();
        assert!(
            err.to_string().contains("EmptyExec cannot run on a worker"),
            "{err}"
        );
        let msg = AsOfNodeProto {
            version: 99,
            ..Default::default()
        };
        let ctx = TaskContext::default();
        let err = AsOfCodec
            .try_decode(&msg.encode_to_vec(), &[], &ctx, &conv)
            .unwrap_err();
        assert!(err.to_string().contains("same sluice release"), "{err}");
        let err = AsOfCodec
            .try_decode(&[0xff, 0xff], &[], &ctx, &conv)
            .unwrap_err();
        assert!(
            err.to_string().contains("AS OF plan from the coordinator"),
            "{err}"
        );
    }
}
