//! The write journal's state machine, each way a write can go, on an in-memory chain and a
//! SQLite file: intent → pending → mined (done), refused by the node, mined and reverted, lost
//! before it reached the node (sent again), its nonce taken by another transaction, left as an
//! intent by a crash, and prepared for a wallet (completed by the wallet's transaction, found on
//! chain, or given up); and only a logged read is ever stood in for by an earlier transaction.

use alloy::{
    network::TransactionBuilder,
    primitives::{Address, B256, U256},
    rpc::types::TransactionRequest,
    signers::local::PrivateKeySigner,
    sol_types::SolCall,
};

use super::{Follow, Sent, WALLET_WINDOW_SECS};
use crate::{
    contracts::{Consent, Registry},
    model::Role,
    person::Signer,
    store::{
        invites::{Invites, NewInviteRow},
        journal::ChainWrites,
    },
    testing::{TestApp, app, person},
};

/// Something stored before a write whose fate it follows: an invitation row (kept with its
/// transaction when the write is mined, removed when it fails).
async fn invite(t: &TestApp, key: Address) -> crate::Result<()> {
    Invites(t.app.db())
        .insert(&NewInviteRow {
            key,
            token_hash: format!("token of {key}"),
            role: Role::Doctor,
            name: "Dr. Test",
            hospital_id: None,
            created_by: Address::ZERO,
            expires_at: u64::MAX / 2,
        })
        .await
}

/// Whether the invitation `key` is still stored, and whether it has its transaction.
async fn invite_state(t: &TestApp, key: Address) -> (bool, bool) {
    let invites = Invites(t.app.db());
    let stored = invites
        .by_token_hash(&format!("token of {key}"))
        .await
        .unwrap()
        .is_some();
    let mined = invites.unused().await.unwrap().contains(&key);
    (stored, mined)
}

async fn state_of(t: &TestApp, id: i64) -> String {
    ChainWrites(t.app.db())
        .get(id)
        .await
        .unwrap()
        .expect("the write is journalled")
        .state
}

/// The newest write's id.
async fn last_write(t: &TestApp) -> i64 {
    sqlx::query_scalar("SELECT MAX(id) FROM chain_writes")
        .fetch_one(t.app.db())
        .await
        .unwrap()
}

fn register() -> Vec<u8> {
    Registry::registerPatientCall {}.abi_encode()
}

/// A read anyone may log (nothing viewed).
fn empty_read() -> Vec<u8> {
    Consent::logViewsCall {
        recordIds: Vec::new(),
        profiles: Vec::new(),
        profileFields: Vec::new(),
        purpose: 0,
    }
    .abi_encode()
}

/// Signs (without sending) `data` to `to` from `signer`, with a fixed gas limit so the node
/// does not run it first; journalled as pending, as a write is just before it is sent.
async fn signed_pending(
    t: &TestApp,
    signer: &PrivateKeySigner,
    to: Address,
    data: Vec<u8>,
    follow: &Follow,
) -> (i64, B256, Vec<u8>) {
    let request = TransactionRequest::default()
        .with_to(to)
        .with_input(data)
        .with_gas_limit(300_000);
    let signed = t.app.ledger().prepare(signer, request).await.unwrap();
    let writes = ChainWrites(t.app.db());
    let id = writes
        .intent(&serde_json::to_string(follow).unwrap(), None)
        .await
        .unwrap();
    writes
        .signed(
            id,
            signer.address(),
            signed.nonce,
            &signed.hash,
            &signed.raw,
        )
        .await
        .unwrap();
    (id, signed.hash, signed.raw)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_goes_from_its_intent_to_done_and_does_what_follows() {
    let t = app().await;
    let key = Address::repeat_byte(1);
    let signer = Signer::Custodial(t.accounts[0].clone());
    let registry = t.app.contracts().registry;
    let sent = t
        .app
        .writer()
        .write_after(
            &signer,
            registry,
            register(),
            Follow::Invite { key },
            None,
            invite(&t, key),
        )
        .await
        .unwrap();
    let Sent::Mined(tx, receipt) = sent else {
        panic!("a custodial write is mined");
    };
    assert!(receipt.status());
    let row = ChainWrites(t.app.db())
        .get(last_write(&t).await)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.state.as_str(), row.tx_hash), ("done", Some(tx.hash)));
    assert!(row.raw.is_none(), "its signed bytes are dropped once done");
    assert_eq!(invite_state(&t, key).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_node_refuses_undoes_what_was_stored() {
    let t = app().await;
    let key = Address::repeat_byte(2);
    let signer = Signer::Custodial(t.accounts[0].clone());
    let registry = t.app.contracts().registry;
    // Registered once; the second registration is refused by the contract.
    t.app
        .writer()
        .write(&signer, registry, register(), Follow::Nothing)
        .await
        .unwrap()
        .mined()
        .unwrap();
    let refused = t
        .app
        .writer()
        .write_after(
            &signer,
            registry,
            register(),
            Follow::Invite { key },
            None,
            invite(&t, key),
        )
        .await;
    assert!(
        refused.is_err(),
        "the contract refuses a second registration"
    );
    assert_eq!(state_of(&t, last_write(&t).await).await, "failed");
    assert_eq!(invite_state(&t, key).await, (false, false), "undone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_mined_and_reverted_is_failed_and_undone() {
    let t = app().await;
    let key = Address::repeat_byte(3);
    invite(&t, key).await.unwrap();
    let signer = &t.accounts[0];
    let registry = t.app.contracts().registry;
    // Registered first, so the journalled registration reverts when mined.
    t.app
        .writer()
        .write(
            &Signer::Custodial(signer.clone()),
            registry,
            register(),
            Follow::Nothing,
        )
        .await
        .unwrap()
        .mined()
        .unwrap();
    let follow = Follow::Invite { key };
    let (id, _, raw) = signed_pending(&t, signer, registry, register(), &follow).await;
    t.app.ledger().broadcast(&raw).await.unwrap();
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (0, 1), "{resolved:?}");
    assert_eq!(state_of(&t, id).await, "failed");
    assert_eq!(invite_state(&t, key).await, (false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lost_before_the_node_had_it_is_sent_again_and_completed() {
    let t = app().await;
    let key = Address::repeat_byte(4);
    invite(&t, key).await.unwrap();
    let follow = Follow::Invite { key };
    let registry = t.app.contracts().registry;
    let (id, hash, _) = signed_pending(&t, &t.accounts[0], registry, register(), &follow).await;
    assert!(t.app.ledger().receipt(hash).await.unwrap().is_none());
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (1, 0), "{resolved:?}");
    assert_eq!(state_of(&t, id).await, "done");
    assert_eq!(invite_state(&t, key).await, (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_nonce_went_to_another_transaction_is_failed() {
    let t = app().await;
    let key = Address::repeat_byte(5);
    invite(&t, key).await.unwrap();
    let signer = &t.accounts[0];
    let registry = t.app.contracts().registry;
    let (id, _, _) =
        signed_pending(&t, signer, registry, register(), &Follow::Invite { key }).await;
    // Another transaction of the same sender takes that nonce.
    let other = t
        .app
        .ledger()
        .prepare(
            signer,
            TransactionRequest::default()
                .with_to(signer.address())
                .with_value(U256::ZERO),
        )
        .await
        .unwrap();
    t.app.ledger().broadcast(&other.raw).await.unwrap();
    t.app.ledger().wait_for_receipt(other.hash).await.unwrap();
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (0, 1), "{resolved:?}");
    assert_eq!(state_of(&t, id).await, "failed");
    assert_eq!(invite_state(&t, key).await, (false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intent_a_crash_left_is_failed_and_undone() {
    let t = app().await;
    let key = Address::repeat_byte(6);
    invite(&t, key).await.unwrap();
    let id = ChainWrites(t.app.db())
        .intent(
            &serde_json::to_string(&Follow::Invite { key }).unwrap(),
            None,
        )
        .await
        .unwrap();
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!(resolved.failed, 1, "{resolved:?}");
    assert_eq!(state_of(&t, id).await, "failed");
    assert_eq!(invite_state(&t, key).await, (false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_write_waits_for_its_wallet_and_is_found_on_chain_or_given_up() {
    let t = app().await;
    let wallet = &t.accounts[0];
    let registry = t.app.contracts().registry;
    let (sent_key, lost_key) = (Address::repeat_byte(7), Address::repeat_byte(8));
    let mut ids = Vec::new();
    for key in [sent_key, lost_key] {
        let sent = t
            .app
            .writer()
            .write_after(
                &Signer::Wallet(wallet.address()),
                registry,
                register(),
                Follow::Invite { key },
                None,
                invite(&t, key),
            )
            .await
            .unwrap();
        let Sent::AwaitingWallet(prepared) = sent else {
            panic!("a wallet's write waits for the wallet");
        };
        assert_eq!((prepared.from, prepared.to), (wallet.address(), registry));
        assert_eq!(state_of(&t, prepared.id).await, "prepared");
        assert_eq!(
            invite_state(&t, key).await,
            (true, false),
            "what it stored waits with it"
        );
        ids.push(prepared.id);
    }
    // The wallet sends the first call and its page never says so.
    let first = t
        .app
        .ledger()
        .prepare(
            wallet,
            TransactionRequest::default()
                .with_to(registry)
                .with_input(register()),
        )
        .await
        .unwrap();
    t.app.ledger().broadcast(&first.raw).await.unwrap();
    t.app.ledger().wait_for_receipt(first.hash).await.unwrap();
    // Too soon to look: both wait.
    t.app.resolve_journal(0).await.unwrap();
    assert_eq!(state_of(&t, ids[0]).await, "prepared");
    sqlx::query("UPDATE chain_writes SET created_at = created_at - $1")
        .bind(WALLET_WINDOW_SECS + 1)
        .execute(t.app.db())
        .await
        .unwrap();
    let resolved = t.app.resolve_journal(0).await.unwrap();
    assert_eq!((resolved.done, resolved.failed), (1, 1), "{resolved:?}");
    assert_eq!(state_of(&t, ids[0]).await, "done", "found on chain");
    assert_eq!(invite_state(&t, sent_key).await, (true, true));
    assert_eq!(state_of(&t, ids[1]).await, "failed", "the same call, taken");
    assert_eq!(invite_state(&t, lost_key).await, (false, false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_logged_read_is_stood_in_for_by_its_earlier_transaction() {
    let t = app().await;
    let wallet = &t.accounts[0];
    let person = person(Role::Patient, wallet.address());
    let consent = t.app.contracts().consent;
    let signer = Signer::Wallet(wallet.address());
    let Sent::AwaitingWallet(prepared) = t
        .app
        .journal()
        .log_read(
            &crate::journal::ReadsOnly,
            &signer,
            consent,
            empty_read(),
            None,
        )
        .await
        .unwrap()
    else {
        panic!("a wallet's read is logged by the wallet");
    };
    let sent = t
        .app
        .ledger()
        .prepare(
            wallet,
            TransactionRequest::default()
                .with_to(consent)
                .with_input(empty_read()),
        )
        .await
        .unwrap();
    t.app.ledger().broadcast(&sent.raw).await.unwrap();
    let done = t
        .app
        .complete_write(&person, prepared.id, sent.hash)
        .await
        .unwrap();
    assert_eq!(done.hash, sent.hash);
    // The same read asked again: the logged one stands in for it.
    let Sent::Mined(again, _) = t
        .app
        .journal()
        .log_read(
            &crate::journal::ReadsOnly,
            &signer,
            consent,
            empty_read(),
            None,
        )
        .await
        .unwrap()
    else {
        panic!("the same read within the window is not asked for again");
    };
    assert_eq!(again.hash, sent.hash);
    // Another search over the same records is another request.
    assert!(matches!(
        t.app
            .journal()
            .log_read(
                &crate::journal::ReadsOnly,
                &signer,
                consent,
                empty_read(),
                Some("conditions")
            )
            .await
            .unwrap(),
        Sent::AwaitingWallet(_)
    ));
    // The same call as a state change is always sent anew.
    assert!(matches!(
        t.app
            .writer()
            .write(&signer, consent, empty_read(), Follow::Nothing)
            .await
            .unwrap(),
        Sent::AwaitingWallet(_)
    ));
}
