//! Two nodes sharing one PostgreSQL ledger and claim table (each with its own pool, as two
//! processes would have), through the gate a server uses: one payment presented to both at once
//! is admitted and settled once. Skipped without the PostgreSQL test server
//! (`tests/services/postgres.sh`), unless `VOUCH_REQUIRE_POSTGRES=1`.
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use common::*;
use std::sync::Arc;
use vouch_pay::{Reason, U256};

const FUNDS: u64 = 10_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_payment_presented_to_two_nodes_at_once_is_served_once() {
    let Some(url) = fresh_postgres("cluster").await else {
        return;
    };
    let nodes = [
        Arc::new(Node::on_database("cluster_a", &url).await),
        Arc::new(Node::on_database("cluster_b", &url).await),
    ];
    let who = payer();
    nodes[0].fund(who.address(), FUNDS).await;
    let offer = Arc::new(nodes[0].offer("A", PRICE));
    let header = Arc::new(Forge::honest(&who, &offer).header());
    let gates: Vec<_> = nodes.iter().map(|n| n.gate.clone()).collect();
    let wins = race_one_payment(&gates, &offer, &header).await;
    assert_eq!(wins, 1);
    for node in &nodes {
        assert_eq!(node.balance(who.address()).await, U256::from(FUNDS - PRICE));
        assert_eq!(node.balance(node.terms.pay_to).await, U256::from(PRICE));
    }
    // Later, on either node: a replay is refused.
    let r = nodes[1]
        .gate
        .admit(Some(&header), None, &offer, "late")
        .await
        .unwrap_err();
    assert_eq!(r.reason, Reason::NonceAlreadyUsed.as_str());
}
