//! The wrapped keys follow the chain: a grantee's key to a record or a profile part exists
//! exactly while a live grant covers it (`sync_wraps`), the research key's exactly while the
//! patient takes part in a study (`sync_research_wraps`). Run after every grant, revocation,
//! opt-in and share, and by the journal when it settles one of them after a crash.

use std::collections::{BTreeMap, HashMap};

use alloy::primitives::{Address, B256};
use medledger_vault::SecretKey;
use serde::Serialize;

use crate::{
    access::Access,
    contracts::Consent,
    db::Db,
    disclosure::{PROFILE_CONTACT, PROFILE_IDENTITY},
    error::{Error, Result},
    keyring::Keyring,
    ledger::{Contracts, Ledger},
    model::{Purpose, RecordKind, Scope},
    people::People,
    store::{
        records::{RecordRow, Records, Whose},
        wraps::{ObjectId, Reader},
    },
};

/// A grant as the chain holds it.
#[derive(Debug, Clone, Serialize)]
pub struct GrantView {
    pub id: u64,
    pub patient: Address,
    pub doctor: Option<Address>,
    pub hospital_id: Option<u64>,
    pub scope: Scope,
    pub kinds: Vec<RecordKind>,
    pub record_ids: Vec<B256>,
    pub purpose: Purpose,
    pub expires_at: u64,
    pub revoked: bool,
    /// Neither revoked nor expired.
    pub active: bool,
}

const KINDS: [RecordKind; 3] = [
    RecordKind::Report,
    RecordKind::Prescription,
    RecordKind::Other,
];

/// A grant as the chain says it is now.
pub(crate) fn view_from(g: Consent::Grant, now: u64) -> Result<GrantView> {
    let scope = Scope::try_from(g.scope).map_err(|_| Error::internal("grant", "bad scope"))?;
    let purpose =
        Purpose::try_from(g.purpose).map_err(|_| Error::internal("grant", "bad purpose"))?;
    let id: u64 = g.id.try_into().unwrap_or(u64::MAX);
    Ok(GrantView {
        id,
        patient: g.patient,
        doctor: (g.doctor != Address::ZERO).then_some(g.doctor),
        hospital_id: (g.hospitalId != 0).then_some(g.hospitalId),
        scope,
        kinds: KINDS
            .into_iter()
            .filter(|k| scope == Scope::Kinds && g.kindsMask & k.mask_bit() != 0)
            .collect(),
        record_ids: g.recordIds,
        purpose,
        expires_at: g.expiresAt,
        revoked: g.revoked,
        active: !g.revoked && g.expiresAt > now,
    })
}

/// What a wrapped key opens: a record, or a part of the profile.
#[derive(Debug, Clone, Copy)]
enum Part {
    Record(B256, RecordKind),
    Profile(u8),
}

impl GrantView {
    /// Whether the grant reveals that part of the profile, as `Consent.profileAccess` rules: a
    /// treatment grant shows who the patient is; their contact only if it covers more than
    /// single records; a research grant, nothing.
    fn reveals(&self, field: u8) -> bool {
        self.purpose == Purpose::Treatment
            && (field == PROFILE_IDENTITY || self.scope != Scope::Records)
    }

    fn covers(&self, record: &B256, kind: RecordKind) -> bool {
        match self.scope {
            Scope::All => true,
            Scope::Kinds => self.kinds.contains(&kind),
            Scope::Records => self.record_ids.contains(record),
        }
    }
}

/// The wrapped keys, kept in step with the grants and opt-ins on chain.
#[derive(Clone)]
pub(crate) struct Wrapping {
    db: Db,
    ledger: Ledger,
    contracts: Contracts,
    keyring: std::sync::Arc<Keyring>,
    access: Access,
    people: People,
}

impl Wrapping {
    pub(crate) fn new(
        db: Db,
        ledger: Ledger,
        contracts: Contracts,
        keyring: std::sync::Arc<Keyring>,
        access: Access,
        people: People,
    ) -> Wrapping {
        Wrapping {
            db,
            ledger,
            contracts,
            keyring,
            access,
            people,
        }
    }

    pub(crate) async fn grants_of(&self, patient: Address) -> Result<Vec<GrantView>> {
        let ids = self
            .contracts
            .consent_on(&self.ledger)
            .grantsOf(patient)
            .call()
            .await
            .map_err(|e| self.ledger.call_error(e))?;
        let now = self.ledger.now().await?;
        let mut out = Vec::new();
        for id in ids {
            let g = self
                .contracts
                .consent_on(&self.ledger)
                .getGrant(id)
                .call()
                .await
                .map_err(|e| self.ledger.call_error(e))?;
            out.push(view_from(g, now)?);
        }
        Ok(out)
    }

    /// Makes the wrapped keys of a patient's records and profile match their live grants: keys
    /// for every grantee a live grant covers, none for anyone else (besides the patient, a
    /// prescription's author and the escrow). Re-wraps with the patient's own key when they are
    /// the one acting (`secret`); the journal, settling a grant after a crash, uses the escrow's.
    pub(crate) async fn sync_wraps(
        &self,
        patient: Address,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        let grants: Vec<GrantView> = self
            .grants_of(patient)
            .await?
            .into_iter()
            .filter(|g| g.active)
            .collect();
        let mut hospital_doctors: HashMap<u64, Vec<Address>> = HashMap::new();
        let mut grantees_of = Vec::new();
        for g in &grants {
            let grantees = match (g.doctor, g.hospital_id) {
                (Some(d), _) => vec![d],
                (None, Some(h)) => {
                    if let std::collections::hash_map::Entry::Vacant(slot) =
                        hospital_doctors.entry(h)
                    {
                        let ds = self.people.doctors(Some(h)).await?;
                        slot.insert(ds.into_iter().map(|d| d.address).collect());
                    }
                    hospital_doctors[&h].clone()
                }
                (None, None) => Vec::new(),
            };
            grantees_of.push(grantees);
        }
        let me = Reader::Account(patient);
        let mut objects: Vec<(ObjectId, Part, Address)> = vec![
            (
                ObjectId::Profile(patient),
                Part::Profile(PROFILE_IDENTITY),
                patient,
            ),
            (
                ObjectId::Contact(patient),
                Part::Profile(PROFILE_CONTACT),
                patient,
            ),
        ];
        for row in Records(&self.db).of(Whose::Patient, patient).await? {
            objects.push((
                ObjectId::Record(row.id),
                Part::Record(row.id, row.kind),
                row.author,
            ));
        }
        let wraps = crate::store::wraps::Wraps(&self.db);
        for (object, part, author) in objects {
            // Each reader a live grant covers, with the grant's purpose.
            let mut wanted: BTreeMap<Reader, Purpose> = BTreeMap::new();
            for (g, grantees) in grants.iter().zip(&grantees_of) {
                let covered = match part {
                    Part::Record(id, kind) => g.covers(&id, kind),
                    Part::Profile(field) => g.reveals(field),
                };
                if covered {
                    for a in grantees {
                        wanted.entry(Reader::Account(*a)).or_insert(g.purpose);
                    }
                }
            }
            // The patient, the escrow and a prescription's author always keep theirs; the
            // research key's follow the patient's studies (`sync_research_wraps`).
            let keep = |reader: Reader| {
                reader == me
                    || reader == Reader::Escrow
                    || reader == Reader::Research
                    || reader == Reader::Account(author)
            };
            let existing = wraps.readers_of(&object).await?;
            for reader in &existing {
                if !keep(*reader) && !wanted.contains_key(reader) {
                    wraps.drop_one(&object, *reader).await?;
                }
            }
            for (reader, purpose) in wanted {
                let Reader::Account(address) = reader else {
                    continue;
                };
                if existing.contains(&reader) {
                    continue;
                }
                // The chain must let the grantee see it now: only then is their key made.
                let Some(allowed) = self
                    .access
                    .grantee_allowed(patient, address, object, purpose)
                    .await?
                else {
                    continue;
                };
                if let Some(account) = self.people.account_by_address(address).await? {
                    self.keyring
                        .as_ref()
                        .share(wraps, &allowed, secret, &account.enc_public)
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// The research key holds a wrap of each of `patient`'s bundles exactly while one of their
    /// opt-ins is live: added when they join (from their own key, or the escrow's when a write
    /// is settled without them), taken away when they leave their last study.
    pub(crate) async fn sync_research_wraps(
        &self,
        patient: Address,
        secret: Option<&medledger_vault::SecretKey>,
    ) -> Result<()> {
        let participating = self.access.participating(patient).await?;
        let wraps = crate::store::wraps::Wraps(&self.db);
        for row in self.bundle_rows(patient).await? {
            let object = crate::store::wraps::ObjectId::Record(row.id);
            let Some(participating) = &participating else {
                wraps.drop_one(&object, Reader::Research).await?;
                continue;
            };
            if wraps.readers_of(&object).await?.contains(&Reader::Research) {
                continue;
            }
            self.keyring
                .as_ref()
                .share_with_research(wraps, participating, &row, secret)
                .await?;
        }
        Ok(())
    }

    /// `patient`'s bundles (the reports with structured content).
    pub(crate) async fn bundle_rows(&self, patient: Address) -> Result<Vec<RecordRow>> {
        Ok(Records(&self.db)
            .of(Whose::Patient, patient)
            .await?
            .into_iter()
            .filter(|r| r.resources.is_some() && r.kind != RecordKind::Prescription)
            .collect())
    }
}
