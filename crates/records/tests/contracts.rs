//! Contract tests: the compiled Registry, Records and Consent executed by revm (the embedded
//! node, in memory), covering every access rule and every refusal by its named error.

use alloy::{
    consensus::{SignableTransaction, TxEip1559, TxEnvelope},
    eips::Encodable2718,
    primitives::{Address, B256, Bytes, TxKind, U256, keccak256},
    signers::{SignerSync, local::PrivateKeySigner},
    sol_types::{SolCall, SolError, SolEvent},
};
use medledger_chain::{BlockTag, CallRequest, Error, Node, NodeConfig, TxLookup};
use medledger_records::{
    contracts::{self, Consent, Records, Registry},
    model::{Purpose, RecordKind as Kind, Role, Scope},
};

const WINDOW: u64 = 24 * 3600;
const DAY: u64 = 24 * 3600;

/// A fresh chain with the three contracts deployed and wired, and named people.
struct Ledger {
    node: Node,
    registry: Address,
    records: Address,
    consent: Address,
    admin: PrivateKeySigner,
    doctor: PrivateKeySigner,
    patient: PrivateKeySigner,
    other_patient: PrivateKeySigner,
    colleague: PrivateKeySigner,
    outsider: PrivateKeySigner,
}

/// What a successful transaction left behind.
struct Mined {
    logs: Vec<alloy::primitives::Log>,
}

impl Ledger {
    async fn new() -> Ledger {
        let node = Node::spawn(NodeConfig::test()).expect("node starts");
        let s = node.dev_accounts().signers().to_vec();
        let mut ledger = Ledger {
            node,
            registry: Address::ZERO,
            records: Address::ZERO,
            consent: Address::ZERO,
            admin: s[0].clone(),
            doctor: s[1].clone(),
            patient: s[2].clone(),
            other_patient: s[3].clone(),
            colleague: s[4].clone(),
            outsider: s[5].clone(),
        };
        let admin = ledger.admin.clone();
        ledger.registry = ledger.deploy(&admin, Registry::BYTECODE.to_vec()).await;
        let code = contracts::records_init_code(ledger.registry);
        ledger.records = ledger.deploy(&admin, code).await;
        let code = contracts::consent_init_code(ledger.registry, ledger.records, WINDOW, 2);
        ledger.consent = ledger.deploy(&admin, code).await;
        ledger
            .send(
                &admin,
                ledger.records,
                Records::setConsentCall {
                    consent: ledger.consent,
                },
            )
            .await
            .expect("consent wired");
        ledger
    }

    /// The usual cast: one active hospital (id 1) with `doctor` and `colleague`, a second
    /// hospital (id 2), and two registered patients.
    async fn with_cast() -> Ledger {
        let l = Ledger::new().await;
        l.add_hospital("General", "Lyon").await;
        l.add_hospital("Clinic", "Nice").await;
        l.add_doctor(&l.doctor.address(), 1).await;
        l.add_doctor(&l.colleague.address(), 1).await;
        for p in [&l.patient, &l.other_patient] {
            l.send(p, l.registry, Registry::registerPatientCall {})
                .await
                .expect("registers");
        }
        l
    }

    async fn deploy(&self, from: &PrivateKeySigner, code: Vec<u8>) -> Address {
        let hash = self
            .submit(from, TxKind::Create, code.into())
            .await
            .expect("deploys");
        match self.node.transaction(&hash) {
            Some(TxLookup::Mined { block, index }) => {
                assert!(block.block.receipts[index].status(), "deployment succeeded");
                block
                    .block
                    .contract_address(index)
                    .expect("a contract address")
            }
            _ => panic!("deployment not mined"),
        }
    }

    fn request(from: &PrivateKeySigner, to: TxKind, input: Bytes) -> CallRequest {
        CallRequest {
            from: Some(from.address()),
            to: to.to().copied(),
            input: Some(input),
            ..Default::default()
        }
    }

    /// Signs and submits; a transaction that would revert returns its revert data instead.
    async fn submit(
        &self,
        from: &PrivateKeySigner,
        to: TxKind,
        input: Bytes,
    ) -> Result<B256, Bytes> {
        let request = Self::request(from, to, input.clone());
        let gas = match self.node.estimate_gas(&request, BlockTag::Latest) {
            Ok(gas) => gas,
            Err(Error::Reverted { data, .. }) => return Err(data),
            Err(other) => panic!("estimate failed: {other}"),
        };
        let tx = TxEip1559 {
            chain_id: self.node.chain_id(),
            nonce: self.node.nonce(from.address(), BlockTag::Pending).unwrap(),
            gas_limit: gas,
            max_fee_per_gas: 2 * self.node.next_base_fee() as u128 + 1_000_000_000,
            max_priority_fee_per_gas: 1_000_000_000,
            to,
            value: U256::ZERO,
            access_list: Default::default(),
            input,
        };
        let signature = from.sign_hash_sync(&tx.signature_hash()).unwrap();
        let raw = TxEnvelope::Eip1559(tx.into_signed(signature)).encoded_2718();
        Ok(self
            .node
            .send_raw_transaction(&raw)
            .await
            .expect("accepted"))
    }

    async fn send<C: SolCall>(
        &self,
        from: &PrivateKeySigner,
        to: Address,
        call: C,
    ) -> Result<Mined, Bytes> {
        let hash = self
            .submit(from, TxKind::Call(to), call.abi_encode().into())
            .await?;
        match self.node.transaction(&hash) {
            Some(TxLookup::Mined { block, index }) => {
                let receipt = &block.block.receipts[index];
                assert!(
                    receipt.status(),
                    "a transaction that estimated fine must succeed"
                );
                Ok(Mined {
                    logs: receipt.logs().to_vec(),
                })
            }
            _ => panic!("not mined"),
        }
    }

    fn view<C: SolCall>(&self, to: Address, call: C) -> C::Return {
        let request = Self::request(&self.admin, TxKind::Call(to), call.abi_encode().into());
        let out = self
            .node
            .call(&request, BlockTag::Latest)
            .expect("view succeeds");
        C::abi_decode_returns(&out.output).expect("decodes")
    }

    async fn add_hospital(&self, name: &str, city: &str) {
        let call = Registry::addHospitalCall {
            name: name.into(),
            city: city.into(),
            addr: "1 Main St".into(),
            specialties: "cardiology,oncology".into(),
            services: "emergency".into(),
            contact: "+33 1 23 45 67 89".into(),
        };
        self.send(&self.admin, self.registry, call)
            .await
            .expect("hospital added");
    }

    async fn add_doctor(&self, account: &Address, hospital: u64) {
        let call = Registry::addDoctorCall {
            account: *account,
            name: "Dr Who".into(),
            specialty: "cardiology".into(),
            licenceId: "LIC-1".into(),
            hospitalId: hospital,
        };
        self.send(&self.admin, self.registry, call)
            .await
            .expect("doctor added");
    }

    async fn anchor(&self, patient: &PrivateKeySigner, kind: Kind, n: u8) -> B256 {
        let id = keccak256([n, 1]);
        let call = Records::anchorRecordCall {
            id,
            kind: kind.into(),
            contentHash: keccak256([n, 2]),
        };
        self.send(patient, self.records, call)
            .await
            .expect("anchored");
        id
    }

    fn now(&self) -> u64 {
        self.node
            .block(BlockTag::Latest)
            .unwrap()
            .block
            .header
            .timestamp
    }

    async fn grant(
        &self,
        doctor: Address,
        scope: Scope,
        mask: u8,
        ids: Vec<B256>,
        purpose: Purpose,
        ttl: u64,
    ) -> Result<Mined, Bytes> {
        let call = Consent::grantDoctorCall {
            doctor,
            scope: scope.into(),
            kindsMask: mask,
            recordIds: ids,
            purpose: purpose.into(),
            expiresAt: self.now() + ttl,
        };
        self.send(&self.patient, self.consent, call).await
    }

    fn can_access(&self, reader: Address, record: B256, purpose: Purpose) -> bool {
        self.view(
            self.consent,
            Consent::canAccessCall {
                patient: self.patient.address(),
                reader,
                recordId: record,
                purpose: purpose.into(),
            },
        )
    }

    async fn log_access(
        &self,
        reader: &PrivateKeySigner,
        record: B256,
        purpose: Purpose,
    ) -> Result<Mined, Bytes> {
        let call = Consent::logAccessCall {
            patient: self.patient.address(),
            recordId: record,
            purpose: purpose.into(),
        };
        self.send(reader, self.consent, call).await
    }

    async fn pass_time(&self, seconds: u64) {
        self.node.increase_time(seconds);
        self.node.mine(None).await.unwrap();
    }
}

fn error<E: SolError>(result: Result<Mined, Bytes>) -> E {
    match result {
        Ok(_) => panic!("expected the contract to refuse with {}", E::SIGNATURE),
        Err(data) => E::abi_decode(&data)
            .unwrap_or_else(|_| panic!("expected {}, got revert data {data}", E::SIGNATURE)),
    }
}

#[tokio::test]
async fn non_admin_cannot_add_a_hospital_or_doctor_or_suspend() {
    let l = Ledger::with_cast().await;
    let call = Registry::addHospitalCall {
        name: "Rogue".into(),
        city: "x".into(),
        addr: "x".into(),
        specialties: "x".into(),
        services: "x".into(),
        contact: "x".into(),
    };
    let e: Registry::NotAdmin = error(l.send(&l.patient, l.registry, call).await);
    assert_eq!(e.caller, l.patient.address());
    let call = Registry::addDoctorCall {
        account: l.outsider.address(),
        name: "Mallory".into(),
        specialty: "x".into(),
        licenceId: "x".into(),
        hospitalId: 1,
    };
    let _: Registry::NotAdmin = error(l.send(&l.doctor, l.registry, call).await);
    let call = Registry::suspendHospitalCall { id: 1 };
    let _: Registry::NotAdmin = error(l.send(&l.doctor, l.registry, call).await);
    let call = Registry::suspendDoctorCall {
        account: l.doctor.address(),
    };
    let _: Registry::NotAdmin = error(l.send(&l.patient, l.registry, call).await);
    assert_eq!(l.view(l.registry, Registry::hospitalCountCall {}), 2);
}

#[tokio::test]
async fn directory_is_edited_by_admins_and_validated() {
    let l = Ledger::with_cast().await;
    let h = l.view(l.registry, Registry::getHospitalCall { id: 1 });
    assert_eq!(
        (h.name.as_str(), h.city.as_str(), h.active),
        ("General", "Lyon", true)
    );
    let call = Registry::updateHospitalCall {
        id: 1,
        name: "General Hospital".into(),
        city: "Lyon".into(),
        addr: "2 Main St".into(),
        specialties: "cardiology".into(),
        services: "emergency,imaging".into(),
        contact: "desk@general.example".into(),
    };
    let mined = l.send(&l.admin, l.registry, call).await.unwrap();
    assert!(
        mined
            .logs
            .iter()
            .any(|log| Registry::HospitalUpdated::decode_log_data(&log.data).is_ok())
    );
    assert_eq!(
        l.view(l.registry, Registry::getHospitalCall { id: 1 }).name,
        "General Hospital"
    );

    let call = Registry::addHospitalCall {
        name: "".into(),
        city: "x".into(),
        addr: "x".into(),
        specialties: "x".into(),
        services: "x".into(),
        contact: "x".into(),
    };
    let _: Registry::EmptyName = error(l.send(&l.admin, l.registry, call).await);
    let call = Registry::addDoctorCall {
        account: l.outsider.address(),
        name: "Dr X".into(),
        specialty: "x".into(),
        licenceId: "x".into(),
        hospitalId: 9,
    };
    let e: Registry::UnknownHospital = error(l.send(&l.admin, l.registry, call).await);
    assert_eq!(e.id, 9);
    let _: Registry::UnknownHospital = error(
        l.send(
            &l.admin,
            l.registry,
            Registry::suspendHospitalCall { id: 9 },
        )
        .await,
    );
    let _: Registry::UnknownDoctor = error(
        l.send(
            &l.admin,
            l.registry,
            Registry::suspendDoctorCall {
                account: l.outsider.address(),
            },
        )
        .await,
    );
    l.send(
        &l.admin,
        l.registry,
        Registry::suspendHospitalCall { id: 2 },
    )
    .await
    .unwrap();
    let _: Registry::AlreadyInState = error(
        l.send(
            &l.admin,
            l.registry,
            Registry::suspendHospitalCall { id: 2 },
        )
        .await,
    );
    l.send(
        &l.admin,
        l.registry,
        Registry::reactivateHospitalCall { id: 2 },
    )
    .await
    .unwrap();
    assert!(
        l.view(l.registry, Registry::getHospitalCall { id: 2 })
            .active
    );
    assert_eq!(
        l.view(l.registry, Registry::doctorCountCall {}),
        U256::from(2)
    );
    assert_eq!(
        l.view(
            l.registry,
            Registry::roleOfCall {
                account: l.doctor.address()
            }
        ),
        u8::from(Role::Doctor)
    );
    assert_eq!(
        l.view(
            l.registry,
            Registry::roleOfCall {
                account: l.patient.address()
            }
        ),
        u8::from(Role::Patient)
    );
    assert_eq!(
        l.view(
            l.registry,
            Registry::roleOfCall {
                account: l.admin.address()
            }
        ),
        u8::from(Role::Admin)
    );
}

#[tokio::test]
async fn double_registration_is_refused() {
    let l = Ledger::with_cast().await;
    let e: Registry::AlreadyRegistered = error(
        l.send(&l.patient, l.registry, Registry::registerPatientCall {})
            .await,
    );
    assert_eq!(e.account, l.patient.address());
    // A doctor cannot also become a patient, nor a patient a doctor, nor anyone an admin twice.
    let _: Registry::AlreadyRegistered = error(
        l.send(&l.doctor, l.registry, Registry::registerPatientCall {})
            .await,
    );
    let call = Registry::addDoctorCall {
        account: l.patient.address(),
        name: "Dr P".into(),
        specialty: "x".into(),
        licenceId: "x".into(),
        hospitalId: 1,
    };
    let _: Registry::AlreadyRegistered = error(l.send(&l.admin, l.registry, call).await);
    let call = Registry::addAdminCall {
        account: l.admin.address(),
    };
    let _: Registry::AlreadyRegistered = error(l.send(&l.admin, l.registry, call).await);
    assert_eq!(
        l.view(l.registry, Registry::patientCountCall {}),
        U256::from(2)
    );
}

#[tokio::test]
async fn patient_registration_and_anchors_carry_no_personal_data() {
    let l = Ledger::with_cast().await;
    // Registering sends nothing but the function selector.
    assert_eq!(Registry::registerPatientCall {}.abi_encode().len(), 4);
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    let anchor = l.view(l.records, Records::getRecordCall { id: record });
    assert_eq!(anchor.patient, l.patient.address());
    assert_eq!(anchor.author, l.patient.address());
    assert_eq!(anchor.contentHash, keccak256([1u8, 2]));
    assert_eq!(
        l.view(
            l.records,
            Records::recordsOfCall {
                patient: l.patient.address()
            }
        ),
        vec![record]
    );
}

#[tokio::test]
async fn anchoring_is_refused_for_non_patients_duplicates_zero_hashes_and_prescription_kind() {
    let l = Ledger::with_cast().await;
    let id = keccak256(b"r");
    let call = |kind: Kind| Records::anchorRecordCall {
        id,
        kind: kind.into(),
        contentHash: keccak256(b"c"),
    };
    let e: Records::NotPatient = error(l.send(&l.doctor, l.records, call(Kind::Report)).await);
    assert_eq!(e.account, l.doctor.address());
    let _: Records::InvalidKind = error(
        l.send(&l.patient, l.records, call(Kind::Prescription))
            .await,
    );
    let zero = Records::anchorRecordCall {
        id,
        kind: Kind::Report.into(),
        contentHash: B256::ZERO,
    };
    let _: Records::ZeroHash = error(l.send(&l.patient, l.records, zero).await);
    l.send(&l.patient, l.records, call(Kind::Report))
        .await
        .unwrap();
    let e: Records::RecordExists = error(l.send(&l.patient, l.records, call(Kind::Other)).await);
    assert_eq!(e.id, id);
    let _: Records::UnknownRecord = error(
        l.node
            .call(
                &Ledger::request(
                    &l.admin,
                    TxKind::Call(l.records),
                    Records::getRecordCall {
                        id: keccak256(b"none"),
                    }
                    .abi_encode()
                    .into(),
                ),
                BlockTag::Latest,
            )
            .map(|_| Mined { logs: vec![] })
            .map_err(|e| match e {
                Error::Reverted { data, .. } => data,
                other => panic!("{other}"),
            }),
    );
}

#[tokio::test]
async fn a_grant_opens_access_and_log_access_records_it() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    assert!(
        l.can_access(l.patient.address(), record, Purpose::Treatment),
        "the patient always may"
    );
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let e: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    assert_eq!(
        (e.patient, e.reader, e.recordId),
        (l.patient.address(), l.doctor.address(), record)
    );

    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
    assert!(
        !l.can_access(l.colleague.address(), record, Purpose::Treatment),
        "grants are personal"
    );
    let mined = l
        .log_access(&l.doctor, record, Purpose::Treatment)
        .await
        .unwrap();
    let event = mined
        .logs
        .iter()
        .find_map(|log| Consent::AccessLogged::decode_log_data(&log.data).ok())
        .expect("an AccessLogged event");
    assert_eq!(
        (event.patient, event.reader, event.recordId),
        (l.patient.address(), l.doctor.address(), record)
    );
    assert!(!event.emergency);
    // A record of another patient is never covered by this patient's grant.
    let theirs = l.anchor(&l.other_patient, Kind::Report, 2).await;
    let other = Consent::canAccessCall {
        patient: l.other_patient.address(),
        reader: l.doctor.address(),
        recordId: theirs,
        purpose: Purpose::Treatment.into(),
    };
    assert!(!l.view(l.consent, other));
    let mismatched = Consent::canAccessCall {
        patient: l.patient.address(),
        reader: l.patient.address(),
        recordId: theirs,
        purpose: Purpose::Treatment.into(),
    };
    assert!(
        !l.view(l.consent, mismatched),
        "a record must belong to the patient named"
    );
}

#[tokio::test]
async fn an_expired_grant_gives_no_access() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Treatment,
        3600,
    )
    .await
    .unwrap();
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
    l.pass_time(3601).await;
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    let call = Consent::grantDoctorCall {
        doctor: l.doctor.address(),
        scope: Scope::All.into(),
        kindsMask: 0,
        recordIds: vec![],
        purpose: Purpose::Treatment.into(),
        expiresAt: l.now(),
    };
    let e: Consent::ExpiryInPast = error(l.send(&l.patient, l.consent, call).await);
    assert_eq!(e.expiresAt, l.now());
}

#[tokio::test]
async fn a_revoked_grant_gives_no_access_and_only_its_patient_revokes_once() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    let id = l.view(
        l.consent,
        Consent::grantsOfCall {
            patient: l.patient.address(),
        },
    )[0];
    let e: Consent::NotGrantOwner = error(
        l.send(&l.doctor, l.consent, Consent::revokeCall { id })
            .await,
    );
    assert_eq!(e.id, id);
    l.send(&l.patient, l.consent, Consent::revokeCall { id })
        .await
        .unwrap();
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    let _: Consent::AlreadyRevoked = error(
        l.send(&l.patient, l.consent, Consent::revokeCall { id })
            .await,
    );
    let _: Consent::UnknownGrant = error(
        l.send(
            &l.patient,
            l.consent,
            Consent::revokeCall { id: U256::from(99) },
        )
        .await,
    );
    assert!(l.view(l.consent, Consent::getGrantCall { id }).revoked);
}

#[tokio::test]
async fn a_scope_that_does_not_cover_the_record_gives_no_access() {
    let l = Ledger::with_cast().await;
    let report = l.anchor(&l.patient, Kind::Report, 1).await;
    let other = l.anchor(&l.patient, Kind::Other, 2).await;
    // Kinds: reports only (bit 0).
    l.grant(
        l.doctor.address(),
        Scope::Kinds,
        1,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    assert!(l.can_access(l.doctor.address(), report, Purpose::Treatment));
    assert!(!l.can_access(l.doctor.address(), other, Purpose::Treatment));
    // Records: just `other`, for the colleague.
    l.grant(
        l.colleague.address(),
        Scope::Records,
        0,
        vec![other],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    assert!(l.can_access(l.colleague.address(), other, Purpose::Treatment));
    assert!(!l.can_access(l.colleague.address(), report, Purpose::Treatment));
    let _: Consent::AccessDenied =
        error(l.log_access(&l.colleague, report, Purpose::Treatment).await);
    // Empty or invalid scopes, and listing someone else's record, are refused.
    let _: Consent::EmptyScope = error(
        l.grant(
            l.doctor.address(),
            Scope::Kinds,
            0,
            vec![],
            Purpose::Treatment,
            DAY,
        )
        .await,
    );
    let _: Consent::EmptyScope = error(
        l.grant(
            l.doctor.address(),
            Scope::Records,
            0,
            vec![],
            Purpose::Treatment,
            DAY,
        )
        .await,
    );
    let _: Consent::InvalidKindsMask = error(
        l.grant(
            l.doctor.address(),
            Scope::Kinds,
            8,
            vec![],
            Purpose::Treatment,
            DAY,
        )
        .await,
    );
    let theirs = l.anchor(&l.other_patient, Kind::Report, 3).await;
    let e: Consent::UnknownRecord = error(
        l.grant(
            l.doctor.address(),
            Scope::Records,
            0,
            vec![theirs],
            Purpose::Treatment,
            DAY,
        )
        .await,
    );
    assert_eq!(e.id, theirs);
    let e: Consent::UnknownDoctor = error(
        l.grant(
            l.outsider.address(),
            Scope::All,
            0,
            vec![],
            Purpose::Treatment,
            DAY,
        )
        .await,
    );
    assert_eq!(e.account, l.outsider.address());
}

#[tokio::test]
async fn the_wrong_purpose_gives_no_access() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Research,
        DAY,
    )
    .await
    .unwrap();
    assert!(l.can_access(l.doctor.address(), record, Purpose::Research));
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    l.log_access(&l.doctor, record, Purpose::Research)
        .await
        .unwrap();
    // A research grant does not let the doctor treat (prescribe).
    assert!(!l.view(
        l.consent,
        Consent::canTreatCall {
            patient: l.patient.address(),
            doctor: l.doctor.address()
        }
    ));
}

#[tokio::test]
async fn a_suspended_doctor_loses_access_at_once_and_regains_it_when_reactivated() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    l.send(
        &l.admin,
        l.registry,
        Registry::suspendDoctorCall {
            account: l.doctor.address(),
        },
    )
    .await
    .unwrap();
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    let e: Consent::NotActiveDoctor = error(
        l.send(
            &l.doctor,
            l.consent,
            Consent::declareEmergencyCall {
                patient: l.patient.address(),
                reasonHash: keccak256(b"why"),
            },
        )
        .await,
    );
    assert_eq!(e.account, l.doctor.address());
    l.send(
        &l.admin,
        l.registry,
        Registry::reactivateDoctorCall {
            account: l.doctor.address(),
        },
    )
    .await
    .unwrap();
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
}

#[tokio::test]
async fn a_doctor_at_a_suspended_hospital_loses_access_including_hospital_grants() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    let call = Consent::grantHospitalCall {
        hospitalId: 1,
        scope: Scope::All.into(),
        kindsMask: 0,
        recordIds: vec![],
        purpose: Purpose::Treatment.into(),
        expiresAt: l.now() + DAY,
    };
    l.send(&l.patient, l.consent, call).await.unwrap();
    // A hospital grant covers every active doctor of that hospital, and no one else.
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
    assert!(l.can_access(l.colleague.address(), record, Purpose::Treatment));
    l.add_doctor(&l.outsider.address(), 2).await;
    assert!(!l.can_access(l.outsider.address(), record, Purpose::Treatment));
    l.send(
        &l.admin,
        l.registry,
        Registry::suspendHospitalCall { id: 1 },
    )
    .await
    .unwrap();
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    assert!(!l.can_access(l.colleague.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied =
        error(l.log_access(&l.colleague, record, Purpose::Treatment).await);
    let _: Consent::NotActiveDoctor = error(
        l.send(
            &l.doctor,
            l.consent,
            Consent::declareEmergencyCall {
                patient: l.patient.address(),
                reasonHash: keccak256(b"why"),
            },
        )
        .await,
    );
    let call = Consent::grantHospitalCall {
        hospitalId: 7,
        scope: Scope::All.into(),
        kindsMask: 0,
        recordIds: vec![],
        purpose: Purpose::Treatment.into(),
        expiresAt: l.now() + DAY,
    };
    let _: Consent::UnknownHospital = error(l.send(&l.patient, l.consent, call).await);
}

#[tokio::test]
async fn an_emergency_opens_treatment_access_for_its_window_only() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    let declare = Consent::declareEmergencyCall {
        patient: l.patient.address(),
        reasonHash: keccak256(b"unconscious"),
    };
    let zero = Consent::declareEmergencyCall {
        patient: l.patient.address(),
        reasonHash: B256::ZERO,
    };
    let _: Consent::ZeroHash = error(l.send(&l.doctor, l.consent, zero).await);
    let not_patient = Consent::declareEmergencyCall {
        patient: l.outsider.address(),
        reasonHash: keccak256(b"x"),
    };
    let _: Consent::NotPatient = error(l.send(&l.doctor, l.consent, not_patient).await);
    let _: Consent::NotActiveDoctor = error(l.send(&l.patient, l.consent, declare.clone()).await);
    let mined = l.send(&l.doctor, l.consent, declare).await.unwrap();
    let event = mined
        .logs
        .iter()
        .find_map(|log| Consent::EmergencyDeclared::decode_log_data(&log.data).ok())
        .unwrap();
    assert_eq!(event.until, l.now() + WINDOW);
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
    assert!(
        !l.can_access(l.doctor.address(), record, Purpose::Research),
        "emergencies are for treatment"
    );
    let mined = l
        .log_access(&l.doctor, record, Purpose::Treatment)
        .await
        .unwrap();
    let event = mined
        .logs
        .iter()
        .find_map(|log| Consent::AccessLogged::decode_log_data(&log.data).ok())
        .unwrap();
    assert!(event.emergency, "openings under an emergency are flagged");
    l.pass_time(WINDOW + 1).await;
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
}

#[tokio::test]
async fn a_doctor_anchors_a_prescription_only_for_a_patient_they_may_treat() {
    let l = Ledger::with_cast().await;
    let id = keccak256(b"rx");
    let call = Records::anchorPrescriptionCall {
        id,
        patient: l.patient.address(),
        contentHash: keccak256(b"rx body"),
    };
    let e: Records::NoTreatmentAccess = error(l.send(&l.doctor, l.records, call.clone()).await);
    assert_eq!(
        (e.patient, e.doctor),
        (l.patient.address(), l.doctor.address())
    );
    let _: Records::NotActiveDoctor = error(l.send(&l.outsider, l.records, call.clone()).await);
    l.grant(
        l.doctor.address(),
        Scope::Kinds,
        1,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    l.send(&l.doctor, l.records, call.clone()).await.unwrap();
    let anchor = l.view(l.records, Records::getRecordCall { id });
    assert_eq!(
        (anchor.patient, anchor.author, anchor.kind),
        (
            l.patient.address(),
            l.doctor.address(),
            u8::from(Kind::Prescription)
        )
    );
    let _: Records::RecordExists = error(l.send(&l.doctor, l.records, call).await);
    // The consent wiring is set once, by an admin.
    let again = Records::setConsentCall { consent: l.consent };
    let _: Records::NotAdmin = error(l.send(&l.patient, l.records, again.clone()).await);
    let _: Records::ConsentAlreadySet = error(l.send(&l.admin, l.records, again).await);
}

#[tokio::test]
async fn an_emergency_is_bounded_one_open_at_a_time_and_capped_per_day() {
    let l = Ledger::with_cast().await;
    // Start just after a midnight (UTC), so the test stays within one day of the cap.
    l.pass_time(DAY - l.now() % DAY + 60).await;
    let declare = |patient: &PrivateKeySigner| Consent::declareEmergencyCall {
        patient: patient.address(),
        reasonHash: keccak256(b"collapsed in the waiting room"),
    };
    l.send(&l.doctor, l.consent, declare(&l.patient))
        .await
        .unwrap();
    // No silent extension while it is open.
    let e: Consent::EmergencyOpen = error(l.send(&l.doctor, l.consent, declare(&l.patient)).await);
    assert_eq!(
        (e.patient, e.doctor),
        (l.patient.address(), l.doctor.address())
    );
    assert_eq!(e.until, l.now() + WINDOW);
    // A second patient is the second (and, with a cap of two, last) declaration today: even
    // once the first is ended, a third is refused.
    l.send(&l.doctor, l.consent, declare(&l.other_patient))
        .await
        .unwrap();
    let end = Consent::endEmergencyCall {
        patient: l.patient.address(),
        doctor: l.doctor.address(),
    };
    l.send(&l.patient, l.consent, end).await.unwrap();
    let cap: Consent::EmergencyCapReached =
        error(l.send(&l.doctor, l.consent, declare(&l.patient)).await);
    assert_eq!((cap.doctor, cap.cap), (l.doctor.address(), 2));
    // Another doctor has a cap of their own; and a new day starts a new count.
    l.send(&l.colleague, l.consent, declare(&l.patient))
        .await
        .unwrap();
    l.pass_time(DAY).await;
    l.send(&l.doctor, l.consent, declare(&l.patient))
        .await
        .unwrap();
    assert_eq!(
        l.view(l.consent, Consent::emergencyCountCall {}),
        U256::from(4)
    );
}

#[tokio::test]
async fn the_patient_or_an_admin_ends_an_emergency_and_access_stops_at_once() {
    let l = Ledger::with_cast().await;
    let record = l.anchor(&l.patient, Kind::Report, 1).await;
    let declare = Consent::declareEmergencyCall {
        patient: l.patient.address(),
        reasonHash: keccak256(b"chest pain"),
    };
    let end = Consent::endEmergencyCall {
        patient: l.patient.address(),
        doctor: l.doctor.address(),
    };
    let _: Consent::NoOpenEmergency = error(l.send(&l.patient, l.consent, end.clone()).await);
    let mined = l.send(&l.doctor, l.consent, declare.clone()).await.unwrap();
    let declared = mined
        .logs
        .iter()
        .find_map(|log| Consent::EmergencyDeclared::decode_log_data(&log.data).ok())
        .unwrap();
    assert!(l.can_access(l.doctor.address(), record, Purpose::Treatment));
    // Nobody else ends it: not the doctor, another patient, or another doctor.
    for who in [&l.doctor, &l.other_patient, &l.colleague] {
        let e: Consent::NotPatientOrAdmin = error(l.send(who, l.consent, end.clone()).await);
        assert_eq!(e.caller, who.address());
    }
    let mined = l.send(&l.patient, l.consent, end.clone()).await.unwrap();
    let ended = mined
        .logs
        .iter()
        .find_map(|log| Consent::EmergencyEnded::decode_log_data(&log.data).ok())
        .unwrap();
    assert_eq!(
        (ended.id, ended.endedBy),
        (declared.id, l.patient.address())
    );
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
    let _: Consent::AccessDenied = error(l.log_access(&l.doctor, record, Purpose::Treatment).await);
    let e = l.view(l.consent, Consent::getEmergencyCall { id: declared.id });
    assert_eq!((e.until, e.endedBy), (l.now(), l.patient.address()));
    let _: Consent::NoOpenEmergency = error(l.send(&l.patient, l.consent, end.clone()).await);
    // Once ended it may be declared again (within the cap); an admin ends this one.
    l.send(&l.doctor, l.consent, declare).await.unwrap();
    l.send(&l.admin, l.consent, end).await.unwrap();
    assert!(!l.can_access(l.doctor.address(), record, Purpose::Treatment));
}

fn profile_access(l: &Ledger, reader: Address) -> (u8, bool) {
    let r = l.view(
        l.consent,
        Consent::profileAccessCall {
            patient: l.patient.address(),
            reader,
        },
    );
    (r.fields, r.emergency)
}

async fn log_views(
    l: &Ledger,
    reader: &PrivateKeySigner,
    records: Vec<B256>,
    profile_fields: Option<u8>,
) -> Result<Mined, Bytes> {
    let call = Consent::logViewsCall {
        recordIds: records,
        profiles: profile_fields
            .map(|_| vec![l.patient.address()])
            .unwrap_or_default(),
        profileFields: profile_fields.map(|f| vec![f]).unwrap_or_default(),
        purpose: Purpose::Treatment.into(),
    };
    l.send(reader, l.consent, call).await
}

#[tokio::test]
async fn views_are_logged_only_when_allowed_and_a_grant_reveals_only_what_its_purpose_needs() {
    let l = Ledger::with_cast().await;
    let report = l.anchor(&l.patient, Kind::Report, 1).await;
    let other = l.anchor(&l.patient, Kind::Other, 2).await;
    const ID: u8 = 1;
    const ALL: u8 = 3;
    // Nothing without a grant.
    assert_eq!(profile_access(&l, l.doctor.address()), (0, false));
    let e: Consent::ProfileDenied = error(log_views(&l, &l.doctor, vec![], Some(ID)).await);
    assert_eq!(
        (e.patient, e.reader),
        (l.patient.address(), l.doctor.address())
    );
    let _: Consent::AccessDenied = error(log_views(&l, &l.doctor, vec![report], None).await);
    // A research grant of everything: no profile at all.
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Research,
        DAY,
    )
    .await
    .unwrap();
    assert_eq!(profile_access(&l, l.doctor.address()), (0, false));
    // A treatment grant of one record: that record's details, the identity, not the contact.
    l.grant(
        l.doctor.address(),
        Scope::Records,
        0,
        vec![report],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    assert_eq!(profile_access(&l, l.doctor.address()), (ID, false));
    let _: Consent::ProfileDenied = error(log_views(&l, &l.doctor, vec![], Some(ALL)).await);
    let _: Consent::AccessDenied =
        error(log_views(&l, &l.doctor, vec![report, other], Some(ID)).await);
    let mined = log_views(&l, &l.doctor, vec![report], Some(ID))
        .await
        .unwrap();
    let viewed: Vec<_> = mined
        .logs
        .iter()
        .filter_map(|log| Consent::RecordViewed::decode_log_data(&log.data).ok())
        .collect();
    assert_eq!(viewed.len(), 1);
    assert_eq!(
        (
            viewed[0].patient,
            viewed[0].reader,
            viewed[0].recordId,
            viewed[0].emergency
        ),
        (l.patient.address(), l.doctor.address(), report, false)
    );
    let profile = mined
        .logs
        .iter()
        .find_map(|log| Consent::ProfileViewed::decode_log_data(&log.data).ok())
        .unwrap();
    assert_eq!((profile.patient, profile.fields), (l.patient.address(), ID));
    // A treatment grant of a kind: the whole profile.
    l.grant(
        l.doctor.address(),
        Scope::Kinds,
        1 << 2,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    assert_eq!(profile_access(&l, l.doctor.address()), (ALL, false));
    log_views(&l, &l.doctor, vec![report, other], Some(ALL))
        .await
        .unwrap();
    // An emergency shows everything, flagged; the patient always sees their own.
    let declare = Consent::declareEmergencyCall {
        patient: l.patient.address(),
        reasonHash: keccak256(b"x"),
    };
    l.send(&l.colleague, l.consent, declare).await.unwrap();
    assert_eq!(profile_access(&l, l.colleague.address()), (ALL, true));
    assert_eq!(profile_access(&l, l.patient.address()), (ALL, false));
    // Expired grants reveal nothing.
    l.pass_time(DAY + 1).await;
    assert_eq!(profile_access(&l, l.doctor.address()), (0, false));
    let mismatch = Consent::logViewsCall {
        recordIds: vec![],
        profiles: vec![l.patient.address()],
        profileFields: vec![],
        purpose: 0,
    };
    let _: Consent::LengthMismatch = error(l.send(&l.doctor, l.consent, mismatch).await);
}

/// The patient decides who reads everything of theirs, the prescriptions a doctor wrote included:
/// once the grant ends, so does the author's access.
#[tokio::test]
async fn a_prescription_is_the_patients_too_its_author_reads_it_only_while_allowed() {
    let l = Ledger::with_cast().await;
    l.grant(
        l.doctor.address(),
        Scope::All,
        0,
        vec![],
        Purpose::Treatment,
        DAY,
    )
    .await
    .unwrap();
    let id = keccak256(b"rx");
    let call = Records::anchorPrescriptionCall {
        id,
        patient: l.patient.address(),
        contentHash: keccak256(b"rx body"),
    };
    l.send(&l.doctor, l.records, call).await.unwrap();
    assert!(l.can_access(l.doctor.address(), id, Purpose::Treatment));
    l.pass_time(DAY + 1).await;
    assert!(!l.can_access(l.doctor.address(), id, Purpose::Treatment));
}

/// The acceptance an invitation link's key signs for `account`.
fn invite_signature(l: &Ledger, key: &PrivateKeySigner, account: Address) -> (B256, B256, u8) {
    use alloy::sol_types::SolValue;
    let inner = keccak256(
        (
            "medledger invite",
            l.registry,
            U256::from(l.node.chain_id()),
            account,
        )
            .abi_encode_params(),
    );
    let signature = key.sign_message_sync(inner.as_slice()).unwrap();
    (
        signature.r().into(),
        signature.s().into(),
        27 + signature.v() as u8,
    )
}

#[tokio::test]
async fn an_invitation_is_taken_up_once_by_the_account_its_key_signed_for() {
    let l = Ledger::with_cast().await;
    let key = PrivateKeySigner::random();
    let invite = Registry::inviteDoctorCall {
        inviteKey: key.address(),
        name: "Dr Enrol".into(),
        specialty: "oncology".into(),
        licenceId: "LIC-9".into(),
        hospitalId: 2,
        expiresAt: l.now() + DAY,
    };
    let _: Registry::NotAdmin = error(l.send(&l.doctor, l.registry, invite.clone()).await);
    l.send(&l.admin, l.registry, invite.clone()).await.unwrap();
    let _: Registry::InviteExists = error(l.send(&l.admin, l.registry, invite).await);
    let newcomer = PrivateKeySigner::random();
    // Fund the newcomer so it can pay for its acceptance.
    let fund = l
        .submit(&l.admin, TxKind::Call(newcomer.address()), Bytes::new())
        .await;
    assert!(fund.is_ok());
    let transfer = TxEip1559 {
        chain_id: l.node.chain_id(),
        nonce: l.node.nonce(l.admin.address(), BlockTag::Pending).unwrap(),
        gas_limit: 21_000,
        max_fee_per_gas: 100_000_000_000,
        max_priority_fee_per_gas: 1_000_000_000,
        to: TxKind::Call(newcomer.address()),
        value: U256::from(10u64).pow(U256::from(18u64)),
        access_list: Default::default(),
        input: Bytes::new(),
    };
    let signature = l.admin.sign_hash_sync(&transfer.signature_hash()).unwrap();
    l.node
        .send_raw_transaction(&TxEnvelope::Eip1559(transfer.into_signed(signature)).encoded_2718())
        .await
        .unwrap();
    // A signature made for someone else (as a watcher of the chain would replay) is refused.
    let (r, s, v) = invite_signature(&l, &key, l.outsider.address());
    let accept = |r, s, v| Registry::acceptInviteCall {
        inviteKey: key.address(),
        r,
        s,
        v,
    };
    let _: Registry::BadInviteSignature =
        error(l.send(&newcomer, l.registry, accept(r, s, v)).await);
    let (r, s, v) = invite_signature(&l, &PrivateKeySigner::random(), newcomer.address());
    let _: Registry::BadInviteSignature =
        error(l.send(&newcomer, l.registry, accept(r, s, v)).await);
    let (r, s, v) = invite_signature(&l, &key, newcomer.address());
    l.send(&newcomer, l.registry, accept(r, s, v))
        .await
        .unwrap();
    let doctor = l.view(
        l.registry,
        Registry::getDoctorCall {
            account: newcomer.address(),
        },
    );
    assert_eq!((doctor.name.as_str(), doctor.hospitalId), ("Dr Enrol", 2));
    let _: Registry::InviteUsed = error(l.send(&l.outsider, l.registry, accept(r, s, v)).await);
    // An admin invitation, left to expire; another revoked.
    let admin_key = PrivateKeySigner::random();
    let call = Registry::inviteAdminCall {
        inviteKey: admin_key.address(),
        expiresAt: l.now() + 60,
    };
    l.send(&l.admin, l.registry, call).await.unwrap();
    l.pass_time(120).await;
    let (r, s, v) = invite_signature(&l, &admin_key, l.outsider.address());
    let _: Registry::InviteExpired = error(
        l.send(
            &l.outsider,
            l.registry,
            accept_key(admin_key.address(), r, s, v),
        )
        .await,
    );
    let revoked = PrivateKeySigner::random();
    let call = Registry::inviteAdminCall {
        inviteKey: revoked.address(),
        expiresAt: l.now() + DAY,
    };
    l.send(&l.admin, l.registry, call).await.unwrap();
    let call = Registry::revokeInviteCall {
        inviteKey: revoked.address(),
    };
    l.send(&l.admin, l.registry, call).await.unwrap();
    let (r, s, v) = invite_signature(&l, &revoked, l.outsider.address());
    let _: Registry::InviteUsed = error(
        l.send(
            &l.outsider,
            l.registry,
            accept_key(revoked.address(), r, s, v),
        )
        .await,
    );
}

fn accept_key(key: Address, r: B256, s: B256, v: u8) -> Registry::acceptInviteCall {
    Registry::acceptInviteCall {
        inviteKey: key,
        r,
        s,
        v,
    }
}

/// A researcher invited and accepted (the outsider's account), and Research deployed.
async fn with_research(l: &Ledger) -> Address {
    let research = l
        .deploy(&l.admin, contracts::research_init_code(l.registry))
        .await;
    let key = PrivateKeySigner::random();
    let invite = Registry::inviteResearcherCall {
        inviteKey: key.address(),
        expiresAt: l.now() + DAY,
    };
    let _: Registry::NotAdmin = error(l.send(&l.doctor, l.registry, invite.clone()).await);
    l.send(&l.admin, l.registry, invite).await.unwrap();
    let (r, s, v) = invite_signature(l, &key, l.outsider.address());
    l.send(&l.outsider, l.registry, accept_key(key.address(), r, s, v))
        .await
        .unwrap();
    research
}

#[tokio::test]
async fn studies_opt_ins_and_exports_are_decided_by_the_research_contract() {
    use contracts::Research;
    let l = Ledger::with_cast().await;
    let research = with_research(&l).await;
    let researcher = l.outsider.address();
    let role = l.view(
        l.registry,
        Registry::roleOfCall {
            account: researcher,
        },
    );
    assert_eq!(role, Role::Researcher as u8);
    assert!(l.view(
        l.registry,
        Registry::isResearcherCall {
            account: researcher
        }
    ));

    // Only an admin registers a study, only for a researcher, only to end in the future.
    let details = keccak256(b"{\"title\":\"Anaemia in CKD\"}");
    let study = |who: Address, ends: u64| Research::registerStudyCall {
        researcher: who,
        detailsHash: details,
        endsAt: ends,
    };
    let ends = l.now() + 30 * DAY;
    let _: Research::NotAdmin = error(l.send(&l.doctor, research, study(researcher, ends)).await);
    let _: Research::NotResearcher = error(
        l.send(&l.admin, research, study(l.doctor.address(), ends))
            .await,
    );
    let _: Research::EndInPast = error(
        l.send(&l.admin, research, study(researcher, l.now() - 1))
            .await,
    );
    let mined = l
        .send(&l.admin, research, study(researcher, ends))
        .await
        .unwrap();
    let registered = mined
        .logs
        .iter()
        .find_map(|log| Research::StudyRegistered::decode_log(log).ok())
        .expect("StudyRegistered");
    assert_eq!(
        (registered.id, registered.researcher, registered.detailsHash),
        (1, researcher, details),
        "only a hash of the study's details goes on chain"
    );
    let _: Research::UnknownStudy = error(
        l.send(&l.patient, research, Research::optInCall { studyId: 2 })
            .await,
    );

    // Patients opt in by their own transactions; nobody else can.
    let _: Research::NotPatient = error(
        l.send(&l.doctor, research, Research::optInCall { studyId: 1 })
            .await,
    );
    l.send(&l.patient, research, Research::optInCall { studyId: 1 })
        .await
        .unwrap();
    let _: Research::AlreadyOptedIn = error(
        l.send(&l.patient, research, Research::optInCall { studyId: 1 })
            .await,
    );
    let opted = |who: Address| {
        l.view(
            research,
            Research::isOptedInCall {
                patient: who,
                studyId: 1,
            },
        )
    };
    assert!(opted(l.patient.address()) && !opted(l.other_patient.address()));

    // An export: by the study's researcher, of patients with a live opt-in only.
    let export = |patients: Vec<Address>| Research::recordExportCall {
        studyId: 1,
        filesHash: keccak256(b"files"),
        resources: 40,
        patients,
    };
    let _: Research::NotStudyResearcher = error(
        l.send(&l.admin, research, export(vec![l.patient.address()]))
            .await,
    );
    let _: Research::NotOptedIn = error(
        l.send(
            &l.outsider,
            research,
            export(vec![l.patient.address(), l.other_patient.address()]),
        )
        .await,
    );
    let _: Research::EmptyExport = error(l.send(&l.outsider, research, export(vec![])).await);
    let mined = l
        .send(&l.outsider, research, export(vec![l.patient.address()]))
        .await
        .unwrap();
    let included: Vec<_> = mined
        .logs
        .iter()
        .filter_map(|log| Research::IncludedInExport::decode_log(log).ok())
        .collect();
    assert_eq!(included.len(), 1);
    assert_eq!(
        (
            included[0].patient,
            included[0].studyId,
            included[0].exportId
        ),
        (l.patient.address(), 1, 1)
    );
    let recorded = mined
        .logs
        .iter()
        .find_map(|log| Research::ExportRecorded::decode_log(log).ok())
        .expect("ExportRecorded");
    assert_eq!((recorded.resources, recorded.patients), (40, 1));

    // Withdrawn, a patient can be in no further export; the withdrawal is theirs alone.
    let _: Research::NotOptedIn = error(
        l.send(
            &l.other_patient,
            research,
            Research::withdrawCall { studyId: 1 },
        )
        .await,
    );
    l.send(&l.patient, research, Research::withdrawCall { studyId: 1 })
        .await
        .unwrap();
    assert!(!opted(l.patient.address()));
    let _: Research::NotOptedIn = error(
        l.send(&l.outsider, research, export(vec![l.patient.address()]))
            .await,
    );

    // Once the study has ended, no opt-in is live and none can be given.
    l.send(
        &l.other_patient,
        research,
        Research::optInCall { studyId: 1 },
    )
    .await
    .unwrap();
    assert!(opted(l.other_patient.address()));
    l.pass_time(31 * DAY).await;
    assert!(!opted(l.other_patient.address()));
    let _: Research::StudyEnded = error(
        l.send(&l.patient, research, Research::optInCall { studyId: 1 })
            .await,
    );
    let _: Research::StudyEnded = error(
        l.send(
            &l.outsider,
            research,
            export(vec![l.other_patient.address()]),
        )
        .await,
    );
    assert_eq!(l.view(research, Research::exportCountCall {}), 1);
}
