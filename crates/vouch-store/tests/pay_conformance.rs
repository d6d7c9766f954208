//! The payment ledger and claims, one suite on both backends (SQLite: one owning process, its
//! handles clones of one store; PostgreSQL: each handle a pool of its own, as separate nodes
//! are): the same answers, and under concurrency an authorization settles once, balances never
//! go negative and the journal numbers every change without a gap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use vouch_pay::store::{
    Account, AuthorizationKey, ClaimEnd, ClaimOutcome, Ledger, NonceClaim, NonceStore,
    RefundOutcome, SettleOutcome, SettlementRecord,
};
use vouch_pay::{Address, B256, U256};
use vouch_store::pay_store::SettleDurability;
use vouch_store::pg::pay::PayBackend;

/// `n` handles on one ledger: clones of one store on SQLite (one process owns the file),
/// separately opened stores (own pools, as nodes have) on PostgreSQL.
async fn handles(b: &common::Backend, n: usize) -> Vec<PayBackend> {
    let first = PayBackend::open(&b.open().await, SettleDurability::Own)
        .await
        .unwrap();
    let mut out = vec![first.clone()];
    for _ in 1..n {
        out.push(match &first {
            PayBackend::Sqlite(_) => first.clone(),
            PayBackend::Postgres(_) => PayBackend::open(&b.open().await, SettleDurability::Own)
                .await
                .unwrap(),
        });
    }
    out
}

const CHAIN: u64 = 84532;

fn address(n: u8) -> Address {
    Address::repeat_byte(n)
}

fn account(owner: u8) -> Account {
    Account {
        chain_id: CHAIN,
        asset: address(0xaa),
        owner: address(owner),
    }
}

fn key(payer: u8, nonce: u8) -> AuthorizationKey {
    AuthorizationKey {
        chain_id: CHAIN,
        asset: address(0xaa),
        payer: address(payer),
        nonce: B256::repeat_byte(nonce),
    }
}

fn settlement(payer: u8, nonce: u8, digest: u8, amount: u64) -> SettlementRecord {
    SettlementRecord {
        key: key(payer, nonce),
        digest: B256::repeat_byte(digest),
        pay_to: address(0xee),
        amount: U256::from(amount),
        reference: format!("ref-{payer}-{nonce}-{digest}"),
        settled_at: 1_700_000_000,
        refund: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settlements_refunds_and_the_journal() {
    for b in common::backends("pay_ledger").await {
        let l = handles(&b, 1).await.remove(0);
        let (payer, payee) = (account(1), account(0xee));
        assert_eq!(l.balance(&payer).await.unwrap(), U256::ZERO);
        assert_eq!(
            l.credit(&payer, U256::from(100u64), "top-up")
                .await
                .unwrap(),
            U256::from(100u64)
        );
        // A uint256 far past 64 bits keeps every digit.
        let whale = account(9);
        let big = U256::MAX - U256::from(5u64);
        assert_eq!(l.credit(&whale, big, "whale").await.unwrap(), big);
        assert_eq!(l.balance(&whale).await.unwrap(), big, "{}", b.name);

        let s = settlement(1, 1, 7, 30);
        assert_eq!(
            l.settle(&s).await.unwrap(),
            SettleOutcome::Settled(s.clone())
        );
        assert_eq!(
            l.settle(&s).await.unwrap(),
            SettleOutcome::AlreadySettled(s.clone()),
            "{}",
            b.name
        );
        let other = settlement(1, 1, 8, 30);
        assert_eq!(l.settle(&other).await.unwrap(), SettleOutcome::NonceUsed);
        let too_much = settlement(1, 2, 7, 71);
        assert_eq!(
            l.settle(&too_much).await.unwrap(),
            SettleOutcome::InsufficientBalance {
                balance: U256::from(70u64)
            }
        );
        // Refused for want of funds: the key is still free.
        assert!(l.settlement(&too_much.key).await.unwrap().is_none());
        assert_eq!(
            l.standing(&s.key, &payer).await.unwrap(),
            (true, U256::from(70u64))
        );
        assert_eq!(l.balance(&payee).await.unwrap(), U256::from(30u64));
        assert_eq!(l.settlement(&s.key).await.unwrap(), Some(s.clone()));

        let RefundOutcome::Refunded(r) = l.refund(&s.reference, "no proof", 5).await.unwrap()
        else {
            panic!("{}: not refunded", b.name);
        };
        assert_eq!(r.refund.as_ref().unwrap().reason, "no proof");
        assert!(matches!(
            l.refund(&s.reference, "again", 6).await.unwrap(),
            RefundOutcome::AlreadyRefunded(_)
        ));
        assert_eq!(
            l.refund("no-such", "x", 7).await.unwrap(),
            RefundOutcome::NotFound
        );
        assert_eq!(l.balance(&payer).await.unwrap(), U256::from(100u64));
        assert_eq!(l.balance(&payee).await.unwrap(), U256::ZERO);

        let journal = l.entries(&payer, 10).await.unwrap();
        let got: Vec<(&str, &str)> = journal
            .iter()
            .map(|e| (e.2.as_str(), e.3.as_str()))
            .collect();
        assert_eq!(
            got,
            [("+30", "refund"), ("-30", "settle"), ("+100", "credit")],
            "{}",
            b.name
        );
        l.sync().await.unwrap();
    }
}

fn claim(request: &str, digest: u8, now: u64) -> NonceClaim {
    NonceClaim {
        key: key(1, 1),
        digest: B256::repeat_byte(digest),
        request_id: request.into(),
        payment_json: "{}".into(),
        requirements_json: "{}".into(),
        now,
        lease_until: now + 30,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_move_through_their_states() {
    for b in common::backends("pay_claims").await {
        let c = handles(&b, 1).await.remove(0);
        let k = key(1, 1);
        assert_eq!(
            c.claim(&claim("r1", 7, 100)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert_eq!(
            c.claim(&claim("r2", 7, 101)).await.unwrap(),
            ClaimOutcome::Taken
        );
        c.release(&k, "r1").await.unwrap();
        assert_eq!(
            c.claim(&claim("r2", 7, 102)).await.unwrap(),
            ClaimOutcome::Won
        );
        assert!(!c.begin_settle(&k, "r1", 103).await.unwrap(), "not r1's");
        assert!(c.begin_settle(&k, "r2", 103).await.unwrap());
        assert_eq!(c.pending(104, 10).await.unwrap().len(), 1, "{}", b.name);
        assert!(c.pending(103, 10).await.unwrap().is_empty());
        c.finish(&k, "r2", ClaimEnd::Unserved, "{\"s\":1}", 105)
            .await
            .unwrap();
        // The same authorization again collects the settled output once; another is refused.
        assert_eq!(
            c.claim(&claim("r4", 8, 106)).await.unwrap(),
            ClaimOutcome::Taken
        );
        assert_eq!(
            c.claim(&claim("r3", 7, 106)).await.unwrap(),
            ClaimOutcome::Resumed {
                settlement_json: "{\"s\":1}".into()
            }
        );
        c.finish(&k, "r3", ClaimEnd::Served, "{\"s\":1}", 107)
            .await
            .unwrap();
        assert_eq!(
            c.claim(&claim("r5", 7, 108)).await.unwrap(),
            ClaimOutcome::Taken,
            "{}: served is final",
            b.name
        );
        // A held claim whose lease ran out is taken over.
        let mut held = claim("h1", 7, 200);
        held.key = key(2, 2);
        assert_eq!(c.claim(&held).await.unwrap(), ClaimOutcome::Won);
        let mut late = claim("h2", 7, 231);
        late.key = key(2, 2);
        assert_eq!(
            c.claim(&late).await.unwrap(),
            ClaimOutcome::Won,
            "{}",
            b.name
        );
    }
}

/// One authorization presented to every node at once settles exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_presented_to_many_nodes_at_once_settles_once() {
    for b in common::backends("pay_race").await {
        let nodes = handles(&b, 6).await;
        nodes[0]
            .credit(&account(1), U256::from(1000u64), "top-up")
            .await
            .unwrap();
        for round in 0..5u8 {
            let s = settlement(1, round, 7, 10);
            let tasks: Vec<_> = nodes
                .iter()
                .map(|n| {
                    let (n, s) = (n.clone(), s.clone());
                    tokio::spawn(async move { n.settle(&s).await.unwrap() })
                })
                .collect();
            let mut settled = 0;
            for t in tasks {
                match t.await.unwrap() {
                    SettleOutcome::Settled(_) => settled += 1,
                    SettleOutcome::AlreadySettled(_) => {}
                    other => panic!("{}: {other:?}", b.name),
                }
            }
            assert_eq!(settled, 1, "{}: round {round}", b.name);
        }
        assert_eq!(
            nodes[1].balance(&account(1)).await.unwrap(),
            U256::from(950u64)
        );
        // Claims raced from every node: one winner.
        let tasks: Vec<_> = nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let n = n.clone();
                tokio::spawn(
                    async move { n.claim(&claim(&format!("r{i}"), 7, 100)).await.unwrap() },
                )
            })
            .collect();
        let mut won = 0;
        for t in tasks {
            if t.await.unwrap() == ClaimOutcome::Won {
                won += 1;
            }
        }
        assert_eq!(won, 1, "{}", b.name);
    }
}

/// Many payers paying and being refunded through many nodes at once: no balance goes
/// negative, money is conserved, and the journal numbers 1..n with no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_settlements_and_refunds_conserve_money_and_keep_the_journal_gap_free() {
    for b in common::backends("pay_load").await {
        let nodes = handles(&b, 4).await;
        let payers: Vec<u8> = (1..=8).collect();
        for p in &payers {
            nodes[0]
                .credit(&account(*p), U256::from(50u64), "top-up")
                .await
                .unwrap();
        }
        // Each payer tries 8 payments of 10 (only 5 fit), half of them refunded right after.
        let mut tasks = Vec::new();
        for (i, p) in payers.iter().enumerate() {
            for nonce in 0..8u8 {
                let n = nodes[(i + nonce as usize) % nodes.len()].clone();
                let s = settlement(*p, nonce, 7, 10);
                tasks.push(tokio::spawn(async move {
                    let out = n.settle(&s).await.unwrap();
                    if matches!(out, SettleOutcome::Settled(_)) && nonce % 2 == 0 {
                        n.refund(&s.reference, "test", 9).await.unwrap();
                    }
                    out
                }));
            }
        }
        for t in tasks {
            let out = t.await.unwrap();
            assert!(
                matches!(
                    out,
                    SettleOutcome::Settled(_) | SettleOutcome::InsufficientBalance { .. }
                ),
                "{}: {out:?}",
                b.name
            );
        }
        let mut total = U256::ZERO;
        for p in payers.iter().chain([&0xee]) {
            total += nodes[1].balance(&account(*p)).await.unwrap();
        }
        assert_eq!(total, U256::from(400u64), "{}: money conserved", b.name);
        // Gap-free: every account's journal entries together number 1..n.
        let mut seqs: Vec<i64> = Vec::new();
        for p in payers.iter().chain([&0xee]) {
            seqs.extend(
                nodes[2]
                    .entries(&account(*p), 10_000)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.0),
            );
        }
        seqs.sort_unstable();
        let n = seqs.len() as i64;
        assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "{}", b.name);
    }
}

/// A database whose default isolation is SERIALIZABLE answers as at READ COMMITTED: the node's
/// sessions pin their own level, so racing settlements and claims never fail with
/// serialization errors (the guards rely on READ COMMITTED's re-check of a waited-for row).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_defaulting_to_serializable_gives_the_same_answers() {
    let Some(url) = common::fresh_postgres("pay_serializable").await else {
        return;
    };
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let db = url.rsplit_once('/').unwrap().1.to_owned();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {db} SET default_transaction_isolation = 'serializable'"
    )))
    .execute(&admin)
    .await
    .unwrap();
    admin.close().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = vouch_store::StoreConfig::local(dir.path());
    config.database = vouch_store::Database::Postgres(url);
    let mut nodes = Vec::new();
    for _ in 0..4 {
        let store = vouch_store::Store::open_with(&config).await.unwrap();
        nodes.push(
            PayBackend::open(&store, SettleDurability::Own)
                .await
                .unwrap(),
        );
    }
    nodes[0]
        .credit(&account(1), U256::from(55u64), "top-up")
        .await
        .unwrap();
    let tasks: Vec<_> = (0..24u8)
        .map(|i| {
            let n = nodes[usize::from(i) % nodes.len()].clone();
            // Eight copies of one authorization, then sixteen others against what is left.
            let s = if i < 8 {
                settlement(1, 0, 7, 10)
            } else {
                settlement(1, i, 7, 10)
            };
            tokio::spawn(async move { n.settle(&s).await.unwrap() })
        })
        .collect();
    let mut settled = 0;
    for t in tasks {
        match t.await.unwrap() {
            SettleOutcome::Settled(_) => settled += 1,
            SettleOutcome::AlreadySettled(_) | SettleOutcome::InsufficientBalance { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    // 55 pays for five settlements of 10, whichever won.
    assert_eq!(settled, 5);
    assert_eq!(
        nodes[3].balance(&account(1)).await.unwrap(),
        U256::from(5u64)
    );
    let tasks: Vec<_> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let n = n.clone();
            tokio::spawn(async move { n.claim(&claim(&format!("r{i}"), 7, 100)).await.unwrap() })
        })
        .collect();
    let mut won = 0;
    for t in tasks {
        if t.await.unwrap() == ClaimOutcome::Won {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}

/// One settlement refunded from every node at once (a zk proof failing while the sweeper also
/// hands it over, say): the money moves back once, the others see it already refunded.
/// (Ported from the `pgpay` branch's suite.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refund_requested_on_every_node_at_once_moves_money_once() {
    for b in common::backends("pay_refund_race").await {
        let nodes = handles(&b, 4).await;
        nodes[0]
            .credit(&account(1), U256::from(100u64), "top-up")
            .await
            .unwrap();
        let s = settlement(1, 1, 0x11, 30);
        assert!(matches!(
            nodes[1].settle(&s).await.unwrap(),
            SettleOutcome::Settled(_)
        ));
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let n = nodes[i % nodes.len()].clone();
                let reference = s.reference.clone();
                tokio::spawn(
                    async move { n.refund(&reference, &format!("try {i}"), 9).await.unwrap() },
                )
            })
            .collect();
        let (mut refunded, mut already) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                RefundOutcome::Refunded(_) => refunded += 1,
                RefundOutcome::AlreadyRefunded(_) => already += 1,
                other => panic!("{}: {other:?}", b.name),
            }
        }
        assert_eq!((refunded, already), (1, 15), "{}", b.name);
        nodes[0].sync().await.unwrap();
        assert_eq!(
            nodes[2].balance(&account(1)).await.unwrap(),
            U256::from(100u64),
            "{}",
            b.name
        );
        assert_eq!(nodes[3].balance(&account(0xee)).await.unwrap(), U256::ZERO);
        // Top-up, settle (two moves), refund (two moves): 1..=5, no gap, nothing twice.
        let mut seqs: Vec<i64> = Vec::new();
        for p in [1, 0xee] {
            seqs.extend(
                nodes[2]
                    .entries(&account(p), 100)
                    .await
                    .unwrap()
                    .iter()
                    .map(|e| e.0),
            );
        }
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2, 3, 4, 5], "{}", b.name);
    }
}
