//! What follows a chain write, by its kind (`journal::Follow`): `Followups` is where the journal
//! hands a mined or failed write back (a record's row anchored, an account activated, the wraps
//! synced to a grant, an emergency's or a study's row completed, or what a failed write stored
//! removed). `Writer` is the write path as the use cases hold it: the journal, with these.
//! The journal itself knows none of them.

use alloy::{
    primitives::{Address, B256},
    rpc::types::TransactionReceipt,
};
use medledger_vault::{BlobStore, SecretKey};

use crate::{
    access::Access,
    contracts::{Consent, Research},
    db::Db,
    error::{Error, Result},
    journal::{Follow, Follows, Journal, Resolved, Sent},
    ledger::{Contracts, TxInfo},
    person::{Person, Signer},
    store::{
        emergencies::Emergencies,
        grants::Grants,
        invites::Invites,
        records::{Records, blob_key, object_id},
        studies::Studies,
        users::Users,
        wraps::ObjectId,
    },
    wrapping::Wrapping,
};

/// What follows each kind of write, over the parts it touches.
#[derive(Clone)]
pub(crate) struct Followups {
    db: Db,
    blobs: BlobStore,
    contracts: Contracts,
    access: Access,
    wrapping: Wrapping,
}

impl Followups {
    pub(crate) fn new(
        db: Db,
        blobs: BlobStore,
        contracts: Contracts,
        access: Access,
        wrapping: Wrapping,
    ) -> Followups {
        Followups {
            db,
            blobs,
            contracts,
            access,
            wrapping,
        }
    }

    /// Completes a mined emergency declaration's row with its transaction and end.
    pub(crate) async fn emergency_mined(
        &self,
        object: &str,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<()> {
        let Some(declared) = receipt.decoded_log::<Consent::EmergencyDeclared>() else {
            return Err(Error::internal("emergency", "no EmergencyDeclared event"));
        };
        Emergencies(&self.db)
            .mined(
                object,
                declared.data.until,
                &receipt.transaction_hash,
                declared.data.id.try_into().unwrap_or(u64::MAX),
            )
            .await
    }

    /// Removes the stored reason of a declaration that will never be mined. A declaration
    /// whose reason's hash is on chain all the same (a wallet sent it after giving it up) keeps
    /// its reason, which is completed with its transaction instead: a mined declaration's
    /// reason is never deleted.
    pub(crate) async fn forget_declaration(&self, object: &str) -> Result<()> {
        let id = ObjectId::parse(object)?;
        let table = Emergencies(&self.db);
        if let (Some(stored), Some((_, doctor))) =
            (table.get(&id).await?, table.parties(&id).await?)
            && let Some(hash) = stored.reason_hash
            && let Some((tx, declared)) = self.declaration_with(doctor, hash).await?
        {
            return table
                .mined(
                    object,
                    declared.until,
                    &tx,
                    declared.id.try_into().unwrap_or(u64::MAX),
                )
                .await;
        }
        crate::store::wraps::Wraps(&self.db).drop_all(&id).await?;
        table.delete(object).await
    }

    /// `doctor`'s declaration on chain whose reason hash is `hash`, and its transaction.
    async fn declaration_with(
        &self,
        doctor: Address,
        hash: B256,
    ) -> Result<Option<(B256, Consent::EmergencyDeclared)>> {
        Ok(self
            .access
            .declarations_of(doctor)
            .await?
            .into_iter()
            .find(|(_, d)| d.reasonHash == hash))
    }

    /// A registration mined: the study gets the chain's id and its transaction.
    pub(crate) async fn study_mined(
        &self,
        details: &B256,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<()> {
        let Some(registered) = receipt.decoded_log::<Research::StudyRegistered>() else {
            return Err(Error::internal("study", "no StudyRegistered event"));
        };
        Studies(&self.db)
            .mined(details, registered.data.id, &receipt.transaction_hash)
            .await
    }

    /// A registration that never landed: its details go.
    pub(crate) async fn forget_study(&self, details: &B256) -> Result<()> {
        Studies(&self.db).forget_unregistered(details).await
    }

    /// Removes a record whose anchor will never be mined: its wrapped keys, row and blob.
    pub(crate) async fn forget_record(&self, id: &B256) -> Result<()> {
        crate::store::wraps::Wraps(&self.db)
            .drop_all(&object_id(id))
            .await?;
        Records(&self.db).delete(id).await?;
        self.blobs.delete(&blob_key(id)).await?;
        Ok(())
    }
    /// Removes an account whose on-chain registration will never be mined (and its profile's
    /// wrapped keys), so the name can be used again. Safe to repeat.
    pub(crate) async fn forget_account(&self, account: Address) -> Result<()> {
        for object in [ObjectId::Profile(account), ObjectId::Contact(account)] {
            crate::store::wraps::Wraps(&self.db)
                .drop_all(&object)
                .await?;
        }
        Users(&self.db).forget_pending(account).await
    }

    /// Keeps the grants a mined transaction made, to find them by grantee (their truth stays on
    /// chain). Safe to repeat.
    pub(crate) async fn index_grants(
        &self,
        receipt: &alloy::rpc::types::TransactionReceipt,
    ) -> Result<()> {
        for log in receipt.inner.logs() {
            let Ok(granted) = log.log_decode::<Consent::Granted>() else {
                continue;
            };
            if log.address() != self.contracts.consent {
                continue;
            }
            let g = granted.inner.data;
            Grants(&self.db)
                .seen(
                    g.id.try_into().unwrap_or(u64::MAX),
                    g.patient,
                    (g.doctor != Address::ZERO).then_some(g.doctor),
                    (g.hospitalId != 0).then_some(g.hospitalId),
                    &receipt.transaction_hash,
                )
                .await?;
        }
        Ok(())
    }
}

impl Follows for Followups {
    async fn succeeded(
        &self,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        match follow {
            Follow::Nothing | Follow::LoggedRead => {}
            Follow::AnchorRecord { record } => {
                crate::store::records::Records(&self.db)
                    .anchored(
                        record,
                        &receipt.transaction_hash,
                        receipt.block_number.unwrap_or_default(),
                    )
                    .await?;
            }
            Follow::Register { account } => {
                Users(&self.db).activate(*account).await?;
                // An enrolment: its link is used up.
                if let Some(accepted) =
                    receipt.decoded_log::<crate::contracts::Registry::InviteAccepted>()
                {
                    Invites(&self.db)
                        .used(accepted.data.inviteKey, *account)
                        .await?;
                }
            }
            Follow::Consent { patient } => {
                self.index_grants(receipt).await?;
                self.wrapping.sync_wraps(*patient, secret).await?;
            }
            Follow::Emergency { object } => self.emergency_mined(object, receipt).await?,
            Follow::Study { details } => self.study_mined(details, receipt).await?,
            Follow::Research { patient } => {
                self.wrapping.sync_research_wraps(*patient, secret).await?
            }
            Follow::Invite { key } => {
                Invites(&self.db)
                    .mined(*key, &receipt.transaction_hash)
                    .await?;
            }
        }
        Ok(())
    }

    async fn failed(&self, follow: &Follow) -> Result<()> {
        match follow {
            Follow::Nothing
            | Follow::LoggedRead
            | Follow::Consent { .. }
            | Follow::Research { .. } => {}
            Follow::AnchorRecord { record } => self.forget_record(record).await?,
            Follow::Register { account } => self.forget_account(*account).await?,
            Follow::Study { details } => self.forget_study(details).await?,
            Follow::Invite { key } => {
                Invites(&self.db).forget_unused(*key).await?;
            }
            Follow::Emergency { object } => self.forget_declaration(object).await?,
        }
        Ok(())
    }
}

/// The write path as a use case holds it: the journal, and what follows each write.
#[derive(Clone)]
pub(crate) struct Writer {
    journal: Journal,
    follows: Followups,
}

impl Writer {
    pub(crate) fn new(journal: Journal, follows: Followups) -> Writer {
        Writer { journal, follows }
    }

    /// A state change signed by `signer` (`Journal::write`).
    pub(crate) async fn write(
        &self,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
    ) -> Result<Sent> {
        self.journal
            .write(&self.follows, signer, to, input, follow)
            .await
    }

    /// `Journal::write_after`: what must be stored first, then the write.
    pub(crate) async fn write_after(
        &self,
        signer: &Signer,
        to: Address,
        input: Vec<u8>,
        follow: Follow,
        secret: Option<&SecretKey>,
        stored: impl std::future::Future<Output = Result<()>>,
    ) -> Result<Sent> {
        self.journal
            .write_after(&self.follows, signer, to, input, follow, secret, stored)
            .await
    }

    /// Completes `person`'s prepared write `id` with the transaction `hash` their wallet sent.
    pub(crate) async fn complete_write(
        &self,
        person: &Person,
        id: i64,
        hash: B256,
    ) -> Result<TxInfo> {
        self.journal
            .complete_write(&self.follows, person, id, hash)
            .await
    }

    /// Gives up `person`'s prepared write `id`.
    pub(crate) async fn cancel_write(&self, person: &Person, id: i64) -> Result<()> {
        self.journal.cancel_write(&self.follows, person, id).await
    }

    /// Resolves the writes left open at least `min_age_secs` ago.
    pub(crate) async fn resolve(&self, min_age_secs: i64) -> Result<Resolved> {
        self.journal.resolve(&self.follows, min_age_secs).await
    }

    /// The wrapped keys' part, for a use case that syncs them itself (a share, a grant).
    pub(crate) fn wrapping(&self) -> &Wrapping {
        &self.follows.wrapping
    }
}
