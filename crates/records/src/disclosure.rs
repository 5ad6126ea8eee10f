//! Every disclosure of a patient's data to anyone but the patient leaves a trace they see, and
//! the types make it so. Plaintext comes out of the keyring only as an `Unlogged` value, which
//! names what it reveals (records, parts of profiles) and whose contents nothing outside this
//! module can take; whatever is computed from it (a filtered list, a count, a total) stays
//! `Unlogged` and reveals all it was computed from. It leaves this module in two ways only: to
//! the patient whose data it all is (`Unlogged::own`), or as a `Disclosed` value, which only
//! `ReadLog::disclose` makes, once the reader's log entry is mined (signed by the reader:
//! `Consent.logAccess` or `Consent.logViews`) or their wallet's transaction completed.

use std::collections::BTreeMap;

use alloy::{
    primitives::{Address, B256},
    sol_types::SolCall,
};

use crate::{
    access::Participating,
    contracts::Consent,
    error::{Error, Result},
    journal::{Journal, ReadsOnly},
    ledger::TxInfo,
    model::{Purpose, Role},
    person::Person,
};

pub use crate::model::{PROFILE_CONTACT, PROFILE_IDENTITY};

/// What a value reveals of patients' data: records (each with its patient) and parts of profiles.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Reveals {
    records: BTreeMap<B256, Address>,
    profiles: BTreeMap<Address, u8>,
}

impl Reveals {
    fn join(&mut self, other: Reveals) {
        self.records.extend(other.records);
        for (patient, fields) in other.profiles {
            *self.profiles.entry(patient).or_default() |= fields;
        }
    }

    /// Whether all of it is `reader`'s own, as a patient (nothing to log).
    fn all_own(&self, reader: &Person) -> bool {
        let own = |patient: &Address| reader.role == Role::Patient && *patient == reader.address;
        self.records.values().all(own) && self.profiles.keys().all(own)
    }

    fn is_empty(&self) -> bool {
        self.records.is_empty() && self.profiles.is_empty()
    }
}

/// A patient's data, opened and not yet logged for its reader. Its contents leave only through
/// `own` (the patient) or `ReadLog::disclose` (anyone else, once logged).
#[must_use = "opened data is either disclosed (logged) or dropped"]
pub(crate) struct Unlogged<T> {
    value: T,
    reveals: Reveals,
}

impl<T> Unlogged<T> {
    /// Opened bytes of record `id` of `patient` (the keyring makes these).
    pub(crate) fn of_record(patient: Address, id: B256, value: T) -> Unlogged<T> {
        let mut reveals = Reveals::default();
        reveals.records.insert(id, patient);
        Unlogged { value, reveals }
    }

    /// Opened parts `fields` of `patient`'s profile (the keyring makes these).
    pub(crate) fn of_profile(patient: Address, fields: u8, value: T) -> Unlogged<T> {
        let mut reveals = Reveals::default();
        reveals.profiles.insert(patient, fields);
        Unlogged { value, reveals }
    }

    /// A value that reveals nothing of anyone's data (an empty list to add to).
    pub(crate) fn nothing(value: T) -> Unlogged<T> {
        Unlogged {
            value,
            reveals: Reveals::default(),
        }
    }

    /// What is computed from it reveals what it was computed from.
    pub(crate) fn map<U>(self, f: impl FnOnce(T) -> U) -> Unlogged<U> {
        Unlogged {
            value: f(self.value),
            reveals: self.reveals,
        }
    }

    pub(crate) fn and_then<U>(self, f: impl FnOnce(T) -> Result<U>) -> Result<Unlogged<U>> {
        Ok(Unlogged {
            value: f(self.value)?,
            reveals: self.reveals,
        })
    }

    /// Both values, revealing what either does.
    pub(crate) fn zip<U>(self, other: Unlogged<U>) -> Unlogged<(T, U)> {
        let mut reveals = self.reveals;
        reveals.join(other.reveals);
        Unlogged {
            value: (self.value, other.value),
            reveals,
        }
    }

    /// The value, for the patient whose data all of it is; anyone else gets it back.
    pub(crate) fn own(self, reader: &Person) -> Result<T, Unlogged<T>> {
        if self.reveals.all_own(reader) {
            Ok(self.value)
        } else {
            Err(self)
        }
    }

    /// A study participant's data, for the research export `participating` proves their live
    /// opt-in to: the export de-identifies it and records itself on chain
    /// (`Research.recordExport`, which names each included patient in their log) before any of
    /// it is served. Nothing of anyone else's goes this way.
    pub(crate) fn for_export(self, participating: &Participating) -> Result<T> {
        let theirs = |p: &Address| *p == participating.patient();
        if self.reveals.records.values().all(theirs) && self.reveals.profiles.keys().all(theirs) {
            Ok(self.value)
        } else {
            Err(Error::internal(
                "research export",
                "data of someone who is not the participant",
            ))
        }
    }
}

impl<T> Unlogged<Vec<T>> {
    pub(crate) fn push(&mut self, item: Unlogged<T>) {
        self.reveals.join(item.reveals);
        self.value.push(item.value);
    }
}

impl<T> Unlogged<Option<T>> {
    /// `None` reveals nothing; `Some` what it was opened from.
    pub(crate) fn transpose(self) -> Option<Unlogged<T>> {
        let reveals = self.reveals;
        self.value.map(|value| Unlogged { value, reveals })
    }
}

/// How a disclosure is logged: an opening of one record's content (`Consent.logAccess`, shown
/// as "opened", logged for its own patient too), or a view of details, lists, profiles and what a search found or counted
/// (`Consent.logViews`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Logged {
    Opened,
    Viewed,
    /// A search over sealed content: every record it looked into is logged as viewed, and the
    /// patient's log says what was searched ("searched your conditions").
    Searched(&'static str),
}

/// A patient's data that may now be shown to its reader: logged on chain first when the reader
/// is anyone but the patient. Only `ReadLog::disclose` makes one.
pub struct Disclosed<T> {
    value: T,
    /// The reader's log entry (`None` for the patient's own data).
    pub tx: Option<TxInfo>,
    /// For an opening: whether only an emergency allowed it.
    pub emergency: bool,
}

impl<T> Disclosed<T> {
    pub fn into_inner(self) -> T {
        self.value
    }

    pub fn value(&self) -> &T {
        &self.value
    }
}

/// The read log: what is disclosed is first logged on chain, signed by its reader, through the
/// write journal, in the Consent contract.
#[derive(Clone)]
pub(crate) struct ReadLog {
    journal: Journal,
    consent: Address,
}

impl ReadLog {
    pub(crate) fn new(journal: Journal, consent: Address) -> ReadLog {
        ReadLog { journal, consent }
    }

    /// Logs what `shown` reveals to `reader` (unless it is all their own, as a patient) on
    /// chain, signed by the reader, and only then lets it be shown. The contract refuses
    /// anything the chain does not allow at this moment, and then nothing is shown. A wallet
    /// reader's entry is prepared for their wallet (the caller answers 202 with it) and, once
    /// it completed, the same request finds it and is answered.
    pub(crate) async fn disclose<T>(
        &self,
        reader: &Person,
        shown: Unlogged<T>,
        purpose: Purpose,
        how: Logged,
    ) -> Result<Disclosed<T>> {
        let Unlogged { value, reveals } = shown;
        // An opening of a record's content is logged even for its own patient (their log shows
        // every opening); anything else of their own is not.
        let logged_anyway = how == Logged::Opened && !reveals.is_empty();
        if !logged_anyway && (reveals.is_empty() || reveals.all_own(reader)) {
            return Ok(Disclosed {
                value,
                tx: None,
                emergency: false,
            });
        }
        let consent = self.consent;
        // The reader's own records (a patient's) are not theirs to log, but for an opening.
        let own = |patient: &Address| {
            how != Logged::Opened && reader.role == Role::Patient && *patient == reader.address
        };
        let records: Vec<B256> = reveals
            .records
            .iter()
            .filter(|(_, p)| !own(p))
            .map(|(id, _)| *id)
            .collect();
        let (profiles, fields): (Vec<Address>, Vec<u8>) = reveals
            .profiles
            .iter()
            .filter(|(p, _)| !own(p))
            .map(|(p, f)| (*p, *f))
            .unzip();
        let (input, note) = match how {
            Logged::Opened => {
                let (&[id], true) = (records.as_slice(), profiles.is_empty()) else {
                    return Err(Error::internal(
                        "disclosure",
                        "an opening reveals exactly one record",
                    ));
                };
                let call = Consent::logAccessCall {
                    patient: reveals.records[&id],
                    recordId: id,
                    purpose: u8::from(purpose),
                };
                (call.abi_encode(), None)
            }
            Logged::Viewed | Logged::Searched(_) => {
                let call = Consent::logViewsCall {
                    recordIds: records,
                    profiles,
                    profileFields: fields,
                    purpose: u8::from(purpose),
                };
                let note = match how {
                    Logged::Searched(what) => Some(what),
                    _ => None,
                };
                (call.abi_encode(), note)
            }
        };
        let (tx, receipt) = self
            .journal
            .log_read(&ReadsOnly, &reader.signer, consent, input, note)
            .await?
            .mined()?;
        let emergency = receipt
            .decoded_log::<Consent::AccessLogged>()
            .is_some_and(|l| l.data.emergency);
        Ok(Disclosed {
            value,
            tx: Some(tx),
            emergency,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::person;

    #[test]
    fn what_is_computed_from_opened_data_reveals_all_it_was_computed_from() {
        let patient = Address::repeat_byte(1);
        let doctor = Address::repeat_byte(2);
        let a = Unlogged::of_record(patient, B256::repeat_byte(0xa), 3);
        let b = Unlogged::of_record(patient, B256::repeat_byte(0xb), 4);
        // A total over two records: zero of them "match", and still both are revealed.
        let total = a.zip(b).map(|(x, y)| usize::from(x + y > 100));
        assert_eq!(total.reveals.records.len(), 2);
        let total = match total.own(&person(Role::Doctor, doctor)) {
            Ok(_) => panic!("a doctor takes no patient's data unlogged"),
            Err(total) => total,
        };
        assert_eq!(total.own(&person(Role::Patient, patient)).ok(), Some(0));
        let mut list = Unlogged::nothing(Vec::new());
        list.push(Unlogged::of_record(patient, B256::repeat_byte(1), "x"));
        list.push(Unlogged::of_profile(
            Address::repeat_byte(3),
            PROFILE_CONTACT,
            "y",
        ));
        assert!(
            list.own(&person(Role::Patient, patient)).is_err(),
            "another patient's profile is in it"
        );
        assert_eq!(
            Unlogged::nothing(5)
                .own(&person(Role::Researcher, doctor))
                .ok(),
            Some(5)
        );
    }
}
