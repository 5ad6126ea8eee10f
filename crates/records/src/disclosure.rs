//! Every read of a patient's data leaves a trace the patient sees: what a response is about to
//! show someone other than the patient (records' details, parts of the profile) is gathered
//! here and logged on chain, signed by the reader, in one transaction, before it is returned.

use alloy::{
    primitives::{Address, B256},
    sol_types::SolCall,
};

use crate::{
    accounts::Person, app::App, contracts::Consent, error::Result, ledger::TxInfo, model::Purpose,
    reports::RecordView,
};

/// The parts of a profile: name and date of birth; contact details (as the contract numbers them).
pub const PROFILE_IDENTITY: u8 = 1;
pub const PROFILE_CONTACT: u8 = 2;

/// What one response shows a reader other than the patient.
#[derive(Debug, Default)]
pub(crate) struct Disclosure {
    pub(crate) records: Vec<B256>,
    pub(crate) profiles: Vec<(Address, u8)>,
}

impl Disclosure {
    /// A record's details, if they are shown and the reader is not its patient.
    pub(crate) fn record(&mut self, reader: &Person, view: &RecordView) {
        if view.meta.is_some() && view.patient != reader.address {
            self.records.push(view.id);
        }
    }

    /// Parts of a patient's profile shown to someone else.
    pub(crate) fn profile(&mut self, reader: &Person, patient: Address, fields: u8) {
        if fields != 0 && patient != reader.address {
            self.profiles.push((patient, fields));
        }
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.profiles.is_empty()
    }
}

impl App {
    /// Logs `shown` on chain (`Consent.logViews`, signed by the reader, which refuses anything
    /// the chain does not allow at this moment); nothing when nothing is shown. Only once it is
    /// mined may the response go out.
    pub(crate) async fn disclose(
        &self,
        reader: &Person,
        shown: Disclosure,
        purpose: Purpose,
    ) -> Result<Option<TxInfo>> {
        if shown.is_empty() {
            return Ok(None);
        }
        let (profiles, fields) = shown.profiles.into_iter().unzip();
        let call = Consent::logViewsCall {
            recordIds: shown.records,
            profiles,
            profileFields: fields,
            purpose: u8::from(purpose),
        };
        let consent = self.contracts().consent;
        let (tx, _) = self
            .log_read(&reader.signer, consent, call.abi_encode())
            .await?
            .mined()?;
        Ok(Some(tx))
    }

    /// Which parts of `patient`'s profile the chain lets `reader` see now, and whether only
    /// through an emergency.
    pub async fn profile_access(&self, patient: Address, reader: Address) -> Result<(u8, bool)> {
        let access = self
            .consent()
            .profileAccess(patient, reader)
            .call()
            .await
            .map_err(|e| self.ledger().call_error(e))?;
        Ok((access.fields, access.emergency))
    }
}
