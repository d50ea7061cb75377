//! Distributed mode end to end: two `--role api` and two `--role worker` processes of the
//! real binary on PostgreSQL (a server of the test's own, so it may be stopped) and a
//! three-master Redis Cluster started by the test on its own ports.
//!
//! One fleet serves every scenario, in order, because each scenario needs all of it and
//! starting it takes longer than most scenarios do. `TEST_LOG=1` echoes every process's
//! logs.

#![allow(clippy::unwrap_used, clippy::expect_used, unreachable_pub)]

mod fleet;
mod scenarios;
mod site;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn distributed_mode() {
    let (mut fleet, mut infra) = fleet::Fleet::start().await;
    let (site, hits) = site::serve();
    let ctx = scenarios::setup(&fleet, &site).await;
    scenarios::scan_is_shared_and_run_once(&fleet, &ctx, &site, &hits).await;
    scenarios::cache_invalidation_is_seen_at_once(&fleet, &ctx, &site).await;
    scenarios::one_rate_limit_budget_across_apis(&fleet, &ctx).await;
    scenarios::killed_worker_scan_is_finished_by_the_other(&mut fleet, &ctx, &site, &hits).await;
    scenarios::sigterm_stops_a_worker_gracefully(&mut fleet, &ctx, &site, &hits).await;
    scenarios::redis_outage_keeps_the_api_answering(&fleet, &mut infra, &ctx, &site).await;
    scenarios::postgres_outage_is_fast_503_and_loses_nothing(&fleet, &mut infra, &ctx, &site).await;
}
