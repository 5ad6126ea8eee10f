//! The node driven over JSON-RPC by alloy's own client (provider, wallet, `sol!` contract
//! bindings), as Rust software elsewhere would: deploy, calls, custom-error reverts, receipts,
//! logs and exact fee accounting.

use alloy::{
    network::{EthereumWallet, TransactionBuilder},
    primitives::{Address, U256},
    providers::{Provider, ProviderBuilder},
    rpc::types::{Filter, TransactionRequest},
    signers::local::PrivateKeySigner,
    sol_types::SolEvent,
};
use medledger_chain::{Node, NodeConfig};
use medledger_rpc::Rpc;

// The generated `addHospital` builder takes the contract's six strings plus the provider.
#[allow(clippy::too_many_arguments)]
mod bindings {
    alloy::sol!(
        #[sol(rpc, all_derives)]
        Registry,
        "../../contracts/artifacts/Registry.json"
    );
}
use bindings::Registry;

/// Starts an in-memory node with JSON-RPC on a free loopback port.
async fn start() -> (Node, String, Vec<PrivateKeySigner>) {
    let node = Node::spawn(NodeConfig::test()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let rpc = Rpc::new(node.clone());
    tokio::spawn(medledger_rpc::serve(listener, rpc, std::future::pending()));
    let signers = node.dev_accounts().signers().to_vec();
    (node, url, signers)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_deploys_calls_and_reads_events_and_reverts() {
    let (_node, url, signers) = start().await;
    let admin = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signers[0].clone()))
        .connect_http(url.parse().unwrap());
    assert_eq!(admin.get_chain_id().await.unwrap(), 1337);
    assert_eq!(admin.get_block_number().await.unwrap(), 0);
    let ether = U256::from(10u64).pow(U256::from(18u64));
    assert_eq!(
        admin.get_balance(signers[0].address()).await.unwrap(),
        U256::from(1000) * ether
    );

    let registry = Registry::deploy(&admin)
        .await
        .expect("deploys through alloy");
    assert!(
        !admin
            .get_code_at(*registry.address())
            .await
            .unwrap()
            .is_empty()
    );

    let receipt = registry
        .addHospital(
            "General".into(),
            "Lyon".into(),
            "1 Main St".into(),
            "cardiology".into(),
            "".into(),
            "".into(),
        )
        .send()
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    let added = receipt
        .inner
        .logs()
        .iter()
        .find_map(|log| Registry::HospitalAdded::decode_log_data(log.data()).ok())
        .expect("a HospitalAdded event");
    assert_eq!(added.id, 1);
    assert_eq!(registry.hospitalCount().call().await.unwrap(), 1);
    let hospital = registry.getHospital(1).call().await.unwrap();
    assert_eq!((hospital.name.as_str(), hospital.active), ("General", true));

    // Custom errors come back decodable, for the admin and for an outsider.
    let err = registry
        .addHospital(
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
            "".into(),
        )
        .call()
        .await
        .unwrap_err();
    let decoded = err
        .as_decoded_interface_error::<Registry::RegistryErrors>()
        .expect("a Registry error");
    assert!(
        matches!(decoded, Registry::RegistryErrors::EmptyName(_)),
        "{decoded:?}"
    );
    let outsider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signers[1].clone()))
        .connect_http(url.parse().unwrap());
    let as_outsider = Registry::new(*registry.address(), &outsider);
    let err = as_outsider
        .suspendHospital(1)
        .send()
        .await
        .expect_err("the node refuses to estimate a reverting transaction");
    let decoded = err
        .as_decoded_interface_error::<Registry::RegistryErrors>()
        .expect("a Registry error");
    match decoded {
        Registry::RegistryErrors::NotAdmin(e) => assert_eq!(e.caller, signers[1].address()),
        other => panic!("{other:?}"),
    }

    // Logs by address and topic.
    let filter = Filter::new()
        .address(*registry.address())
        .event_signature(Registry::HospitalAdded::SIGNATURE_HASH)
        .from_block(0);
    assert_eq!(admin.get_logs(&filter).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alloy_sees_exact_fee_accounting() {
    let (_node, url, signers) = start().await;
    let provider = ProviderBuilder::new()
        .wallet(EthereumWallet::from(signers[2].clone()))
        .connect_http(url.parse().unwrap());
    let (from, to) = (signers[2].address(), Address::repeat_byte(0x77));
    let before = provider.get_balance(from).await.unwrap();
    let value = U256::from(123_456_789u64);
    let tx = TransactionRequest::default().with_to(to).with_value(value);
    let receipt = provider
        .send_transaction(tx)
        .await
        .unwrap()
        .get_receipt()
        .await
        .unwrap();
    assert!(receipt.status());
    assert_eq!(receipt.gas_used, 21_000);
    let after = provider.get_balance(from).await.unwrap();
    let fee = U256::from(receipt.gas_used) * U256::from(receipt.effective_gas_price);
    assert_eq!(before - after, value + fee);
    assert_eq!(provider.get_balance(to).await.unwrap(), value);
    let mined = provider
        .get_transaction_by_hash(receipt.transaction_hash)
        .await
        .unwrap()
        .expect("found");
    assert_eq!(mined.block_number, receipt.block_number);
}
