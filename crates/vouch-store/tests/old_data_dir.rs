//! A data dir written by the last release that migrated with sqlx (`tests/data/sqlx-0.9-data-dir`:
//! made by that `vouch` binary — a credit through `vouch facilitator`, then `vouch serve` with a
//! model registered as mlp@1, a policy, a configuration and three inferences — with the WAL
//! checkpointed into the files) opens with the rusqlite store: no migration re-runs, every
//! owner's rows read back, and it takes new writes.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use vouch_core::{ModelDigest, Tier};
use vouch_log::store::LogStore;
use vouch_pay::store::{Account, Ledger};
use vouch_store::Store;
use vouch_store::log_store::SqliteLogStore;
use vouch_store::pay_store::SqlitePayStore;

const MLP: &str = "sha256:2c8c993ea3323c3867326408094d630cb03251219ee59bc33b663e768cf4789d";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

async fn history_rows(store: &Store) -> i64 {
    store
        .pool()
        .unwrap()
        .run(|c| c.query_row("SELECT COUNT(*) FROM _sqlx_migrations", [], |r| r.get(0)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_migrated_by_sqlx_opens_and_reads_back() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/sqlx-0.9-data-dir");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    copy_dir(&fixture, &dir);

    let store = Store::open(&dir).await.unwrap();
    vouch_store::proof_store::migrate(&store).await.unwrap();
    let log = SqliteLogStore::new(store.pool().unwrap().clone())
        .await
        .unwrap();
    let pay = SqlitePayStore::new(store.pool().unwrap().clone())
        .await
        .unwrap();
    // Core 1-4, log 100 and zk 300, as sqlx recorded them (nothing applied a second time),
    // plus core 5 and zk 301, added since (the models' `llm_facts` column, proof-job leases).
    assert_eq!(history_rows(&store).await, 8);

    let mlp: ModelDigest = MLP.parse().unwrap();
    let p = store.resolve_name("mlp", Some("1")).await.unwrap().unwrap();
    assert_eq!(p.digest, mlp);
    let rec = store.model(&mlp).await.unwrap().unwrap();
    assert_eq!(rec.signature.inputs[0].name, "x");
    assert_eq!(rec.llm_facts, None);
    assert_eq!(rec.names.len(), 1);
    assert_eq!(store.blobs.get_model(&mlp).await.unwrap().len(), 7426);
    let policies = store.policies_for(&["mlp".into()]).await.unwrap();
    assert_eq!(policies[0].min_tier, Tier::Signed);
    let cfg = store.model_config(&mlp).await.unwrap().unwrap();
    assert_eq!(cfg.config["system_prompt"], "be brief");
    assert_eq!(store.zk_models().await.unwrap()[0].status, "available");

    // The log: registration, pointer moves, policy, config and three receipts; the tree checks.
    assert_eq!(log.size().await.unwrap(), 8);
    assert_eq!(log.latest_checkpoint().await.unwrap().unwrap().size, 8);
    assert_eq!(log.read_entries(0, 8).await.unwrap().len(), 8);

    // The ledger sidecar: the credit made through `vouch facilitator`.
    let payer = Account {
        chain_id: 84532,
        asset: "0x036cbd53842c5426634e7929541ec2318f3dcf7e"
            .parse()
            .unwrap(),
        owner: "0x0101010101010101010101010101010101010101"
            .parse()
            .unwrap(),
    };
    assert_eq!(
        pay.balance(&payer).await.unwrap(),
        vouch_pay::U256::from(1234u64)
    );
    assert_eq!(pay.entries(&payer, 10).await.unwrap().len(), 1);

    // It takes writes, and a reopen finds nothing left to migrate.
    let c = store
        .set_policy("mlp", Some(Tier::Tee))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.previous, Some(Tier::Signed));
    drop((log, pay, store));
    let store = Store::open(&dir).await.unwrap();
    assert_eq!(history_rows(&store).await, 8);
    assert_eq!(
        store.policies_for(&["mlp".into()]).await.unwrap()[0].min_tier,
        Tier::Tee
    );
}
