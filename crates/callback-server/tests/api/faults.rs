//! Several instances on MariaDB and Redis under real faults: the scenarios
//! of `callback_testkit::chaos`, at a size the suite can afford
//! (`scripts/chaos` runs them larger). Nothing accepted may be missing;
//! duplicates are allowed only for attempts in flight at a crash.

use callback_testkit::chaos::{self, Report, INSTANCE_CONCURRENCY};
use std::path::Path;

fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_callback-center"))
}

fn show(report: &Report) {
    eprintln!("{}\n{report}", Report::HEADER);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_on_mariadb_and_redis_deliver_10000_tasks_exactly_once() {
    let report = chaos::three_instances(binary(), 10_000).await;
    show(&report);
    assert_eq!(report.accepted, 10_000);
    assert_eq!(report.missing, 0);
    assert_eq!(report.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_one_of_three_instances_loses_no_accepted_task() {
    let report = chaos::sigkill_one_of_three(binary(), 3_000).await;
    show(&report);
    assert!(report.accepted > 1_000, "{report}");
    assert_eq!(report.missing, 0);
    // Only attempts in flight on the killed instance may be repeated.
    assert!(report.duplicates <= INSTANCE_CONCURRENCY, "{report}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_flushall_with_retries_pending_loses_no_task() {
    let report = chaos::redis_flushall(binary(), 1_000).await;
    show(&report);
    assert_eq!(report.accepted, 1_000);
    assert_eq!(report.missing, 0);
    assert_eq!(report.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_falls_back_to_the_store_and_redis_is_used_again_after() {
    let report = chaos::redis_outage(binary(), 1_000).await;
    show(&report);
    assert_eq!(report.accepted, 1_000);
    assert_eq!(report.missing, 0);
    assert_eq!(report.duplicates, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_outage_refuses_intake_with_503_and_loses_nothing_accepted() {
    let report = chaos::mariadb_outage(binary(), 2_000).await;
    show(&report);
    assert!(
        report.refused > 0,
        "the outage was seen by intake: {report}"
    );
    assert_eq!(report.missing, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordered_keys_arrive_in_order_across_three_instances_and_a_sigkill() {
    let ordered = chaos::ordered_sigkill_one_of_three(binary(), 10_000, 100).await;
    let report = &ordered.report;
    show(report);
    eprintln!(
        "keys {}, failures injected {}, out of order {}",
        ordered.keys, ordered.failures_injected, ordered.out_of_order
    );
    assert_eq!(report.accepted, 10_000, "{report}");
    assert_eq!(report.missing, 0, "{report}");
    assert!(ordered.failures_injected > 500, "failures were injected");
    assert_eq!(ordered.out_of_order, 0, "{report}");
    // Only attempts in flight on the killed instance may be repeated.
    assert!(report.duplicates <= INSTANCE_CONCURRENCY, "{report}");
}
