//! The access log, read back from the chain: every opening of a record, every view of a
//! record's details or of the profile, and every emergency declared or ended — for the patient
//! (what was done with their data, and by whom) or for a doctor (what they did).

use std::collections::HashMap;

use alloy::{
    primitives::{Address, B256},
    rpc::types::Log,
    sol_types::SolEvent,
};
use serde::Serialize;

use crate::{
    access::Access, index::Indexer, journal::Journal, ledger::Contracts, people::People,
    reports::Reports, research::Research,
};
use crate::{
    contracts::{Consent, Research as ResearchContract},
    disclosure::{PROFILE_CONTACT, PROFILE_IDENTITY},
    error::{Error, Result},
    index::{Cursor, Events},
    model::{Purpose, Role},
    person::Person,
};

/// Which topic names the owner of `person`'s log: every access event has the patient first and
/// the doctor (reader) second.
fn log_owner(person: &Person) -> Result<(usize, B256)> {
    match person.role {
        Role::Patient => Ok((1, person.address.into_word())),
        Role::Doctor => Ok((2, person.address.into_word())),
        _ => Err(Error::forbidden(
            "only patients and doctors have an access log",
        )),
    }
}

/// Where a listing older than `log` starts.
fn log_cursor(log: &Log) -> Cursor {
    Cursor {
        block: log.block_number.unwrap_or_default(),
        position: log.log_index.unwrap_or_default(),
    }
}

/// What an entry of the log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A record's content was opened.
    Opened,
    /// Records' details (titles, notes, dates; prescriptions' lines) were shown.
    Viewed,
    /// Parts of the profile were shown.
    ViewedProfile,
    DeclaredEmergency,
    EndedEmergency,
    /// The patient's de-identified data went into a research export (their opt-in was live).
    IncludedInExport,
}

/// One entry of the access log.
#[derive(Debug, Clone, Serialize)]
pub struct AccessEvent {
    pub action: Action,
    /// The entry in words, for the one asking ("opened Blood panel March").
    pub summary: String,
    pub patient: Address,
    /// Who did it (for an ended emergency: who ended it).
    pub reader: Address,
    /// Their name in the directory, or their user name.
    pub reader_name: Option<String>,
    /// The record opened (`Opened`), or the first of those viewed.
    pub record_id: Option<B256>,
    /// Every record viewed in one go (`Viewed`).
    pub record_ids: Vec<B256>,
    /// The record's title, for its patient only.
    pub record_title: Option<String>,
    pub purpose: Option<&'static str>,
    /// Done under an emergency (or an emergency's own entry).
    pub emergency: bool,
    pub time: u64,
    pub block_number: u64,
    pub tx_hash: B256,
}

/// Entries on one page of the access log.
pub const AUDIT_PAGE: usize = 50;

/// One page of the access log, the most recent first.
#[derive(Debug, Clone, Serialize)]
pub struct AuditPage {
    pub events: Vec<AccessEvent>,
    /// Where the next (older) page starts (`before=`), if there is one.
    pub older: Option<String>,
}

/// The events of the access log, as Consent emits them, and Research's inclusions in exports.
const ACCESS_EVENTS: [B256; 6] = [
    Consent::AccessLogged::SIGNATURE_HASH,
    Consent::RecordViewed::SIGNATURE_HASH,
    Consent::ProfileViewed::SIGNATURE_HASH,
    Consent::EmergencyDeclared::SIGNATURE_HASH,
    Consent::EmergencyEnded::SIGNATURE_HASH,
    ResearchContract::IncludedInExport::SIGNATURE_HASH,
];

#[derive(Clone)]
pub struct Audit {
    contracts: Contracts,
    indexer: Indexer,
    journal: Journal,
    access: Access,
    people: People,
    reports: Reports,
    research: Research,
}

impl Audit {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        contracts: Contracts,
        indexer: Indexer,
        journal: Journal,
        access: Access,
        people: People,
        reports: Reports,
        research: Research,
    ) -> Audit {
        Audit {
            contracts,
            indexer,
            journal,
            access,
            people,
            reports,
            research,
        }
    }
}

impl Audit {
    /// A page of the access log of a patient's data (for the patient), or of what a doctor did
    /// (for the doctor), the most recent first, older than `before`, as the chain logged it
    /// (read from the chain index, brought up to the chain first).
    pub async fn audit(&self, person: &Person, before: Option<Cursor>) -> Result<AuditPage> {
        log_owner(person)?;
        self.indexer.index_chain().await?;
        let mut logs = self
            .access_logs(person, 0, before, Some(AUDIT_PAGE + 1))
            .await?;
        let more = logs.len() > AUDIT_PAGE;
        logs.truncate(AUDIT_PAGE);
        // Views of several records in one transaction are one entry: a page ends with all of
        // its last transaction's logs.
        if more && let Some(last) = logs.last().cloned() {
            let rest = self
                .access_logs(person, 0, Some(log_cursor(&last)), Some(AUDIT_PAGE))
                .await?;
            logs.extend(
                rest.into_iter()
                    .take_while(|l| l.transaction_hash == last.transaction_hash),
            );
        }
        let older = logs.last().map(|l| log_cursor(l).to_string());
        let full = logs.len();
        logs.reverse();
        let mut events = self.entries(person, &logs).await?;
        events.reverse();
        Ok(AuditPage {
            events,
            older: older.filter(|_| more && full > 0),
        })
    }

    /// Every entry of the access log from block `since` on, oldest first.
    pub(crate) async fn audit_since(
        &self,
        person: &Person,
        since: u64,
    ) -> Result<Vec<AccessEvent>> {
        self.indexer.index_chain().await?;
        let mut logs = self.access_logs(person, since, None, None).await?;
        logs.reverse();
        self.entries(person, &logs).await
    }

    /// The access log's events that concern `person`, newest first.
    async fn access_logs(
        &self,
        person: &Person,
        since: u64,
        before: Option<Cursor>,
        limit: Option<usize>,
    ) -> Result<Vec<Log>> {
        self.indexer
            .indexed_events(Events {
                addresses: vec![self.contracts.consent, self.contracts.research],
                topics0: &ACCESS_EVENTS,
                topic: Some(log_owner(person)?),
                since,
                before,
                limit,
            })
            .await
    }

    /// The entries `logs` (oldest first) make.
    async fn entries(&self, person: &Person, logs: &[Log]) -> Result<Vec<AccessEvent>> {
        let mut context = Context {
            asker: (person.role == Role::Patient).then_some(person),
            ..Context::default()
        };
        let mut out: Vec<AccessEvent> = Vec::new();
        for log in logs {
            let Some(event) = self.entry(person, log, &mut context).await? else {
                continue;
            };
            // Views of several records in one transaction are one entry.
            if let Some(last) = out.last_mut()
                && last.action == Action::Viewed
                && event.action == Action::Viewed
                && last.tx_hash == event.tx_hash
                && last.patient == event.patient
            {
                last.record_ids.extend(event.record_ids);
                continue;
            }
            out.push(event);
        }
        for event in &mut out {
            if event.action == Action::Viewed {
                event.summary = self.viewed_summary(person, event).await?;
            }
        }
        Ok(out)
    }

    async fn entry(
        &self,
        person: &Person,
        log: &Log,
        context: &mut Context<'_>,
    ) -> Result<Option<AccessEvent>> {
        let time = log.block_timestamp.unwrap_or_default();
        let decode = |e| Error::internal("access log", e);
        let topic = log.topic0().copied().unwrap_or_default();
        // What the entry says beyond who, what and when.
        enum Detail {
            Plain,
            Profile(u8),
            Declared(u64, B256),
            Ended(Address),
            Exported(u64, u64),
        }
        let (action, patient, reader, record, purpose, emergency, detail) = match topic {
            Consent::AccessLogged::SIGNATURE_HASH => {
                let e = Consent::AccessLogged::decode_log_data(log.data()).map_err(decode)?;
                let purpose = Purpose::try_from(e.purpose).ok();
                let record = Some(e.recordId);
                (
                    Action::Opened,
                    e.patient,
                    e.reader,
                    record,
                    purpose,
                    e.emergency,
                    Detail::Plain,
                )
            }
            Consent::RecordViewed::SIGNATURE_HASH => {
                let e = Consent::RecordViewed::decode_log_data(log.data()).map_err(decode)?;
                let purpose = Purpose::try_from(e.purpose).ok();
                let record = Some(e.recordId);
                (
                    Action::Viewed,
                    e.patient,
                    e.reader,
                    record,
                    purpose,
                    e.emergency,
                    Detail::Plain,
                )
            }
            Consent::ProfileViewed::SIGNATURE_HASH => {
                let e = Consent::ProfileViewed::decode_log_data(log.data()).map_err(decode)?;
                let detail = Detail::Profile(e.fields);
                (
                    Action::ViewedProfile,
                    e.patient,
                    e.reader,
                    None,
                    None,
                    e.emergency,
                    detail,
                )
            }
            Consent::EmergencyDeclared::SIGNATURE_HASH => {
                let e = Consent::EmergencyDeclared::decode_log_data(log.data()).map_err(decode)?;
                let detail = Detail::Declared(e.until, e.reasonHash);
                (
                    Action::DeclaredEmergency,
                    e.patient,
                    e.doctor,
                    None,
                    None,
                    true,
                    detail,
                )
            }
            Consent::EmergencyEnded::SIGNATURE_HASH => {
                let e = Consent::EmergencyEnded::decode_log_data(log.data()).map_err(decode)?;
                let detail = Detail::Ended(e.doctor);
                (
                    Action::EndedEmergency,
                    e.patient,
                    e.endedBy,
                    None,
                    None,
                    true,
                    detail,
                )
            }
            ResearchContract::IncludedInExport::SIGNATURE_HASH if person.role == Role::Patient => {
                // Every field is a topic: patient, study, export.
                let word = |i: usize| log.topics().get(i).copied().unwrap_or_default();
                let patient = Address::from_word(word(1));
                let study = u64::try_from(alloy::primitives::U256::from_be_bytes(word(2).0))
                    .unwrap_or_default();
                let export = u64::try_from(alloy::primitives::U256::from_be_bytes(word(3).0))
                    .unwrap_or_default();
                let researcher = self
                    .research
                    .study_researcher(study)
                    .await?
                    .unwrap_or_default();
                (
                    Action::IncludedInExport,
                    patient,
                    researcher,
                    None,
                    Some(Purpose::Research),
                    false,
                    Detail::Exported(study, export),
                )
            }
            _ => return Ok(None),
        };
        let mut event = self
            .event(
                action, patient, reader, record, purpose, emergency, time, log, context,
            )
            .await?;
        event.summary = match detail {
            Detail::Plain => match &event.record_title {
                Some(title) => format!("opened {title}"),
                None => "opened a record".into(),
            },
            Detail::Profile(fields) if fields & PROFILE_CONTACT != 0 => {
                "viewed the profile: name, date of birth and contact".into()
            }
            Detail::Profile(fields) if fields & PROFILE_IDENTITY != 0 => {
                "viewed the profile: name and date of birth".into()
            }
            Detail::Profile(_) => "viewed the profile".into(),
            Detail::Declared(until, reason_hash) => {
                let (reason, outside) = self
                    .access
                    .declared_reason(person, &event.tx_hash, reason_hash)
                    .await?;
                let reason = match reason {
                    Some(r) => format!(": \u{201c}{r}\u{201d}"),
                    None if outside => ": declared outside medledger, no reason given".into(),
                    None => String::new(),
                };
                format!(
                    "declared an emergency (break-glass access until {}){reason}",
                    crate::model::utc_datetime(until as i64)
                )
            }
            Detail::Exported(study, export) => {
                let title = self
                    .research
                    .study_title(study)
                    .await?
                    .map(|t| format!(" \u{201c}{t}\u{201d}"))
                    .unwrap_or_default();
                format!(
                    "included in an export for study {study}{title} (export {export}, de-identified)"
                )
            }
            Detail::Ended(doctor) => {
                let name = context.name(self, doctor).await?;
                format!(
                    "ended the emergency access of {}",
                    name.unwrap_or_else(|| doctor.to_string())
                )
            }
        };
        Ok(Some(event))
    }

    #[allow(clippy::too_many_arguments)]
    async fn event(
        &self,
        action: Action,
        patient: Address,
        reader: Address,
        record: Option<B256>,
        purpose: Option<Purpose>,
        emergency: bool,
        time: u64,
        log: &Log,
        context: &mut Context<'_>,
    ) -> Result<AccessEvent> {
        let record_title = match (record, context.asker) {
            (Some(id), Some(_)) => context.title(self, id).await?,
            _ => None,
        };
        Ok(AccessEvent {
            action,
            summary: String::new(),
            patient,
            reader,
            reader_name: context.name(self, reader).await?,
            record_id: record,
            record_ids: record.into_iter().collect(),
            record_title,
            purpose: purpose.map(|p| p.as_str()),
            emergency,
            time,
            block_number: log.block_number.unwrap_or_default(),
            tx_hash: log.transaction_hash.unwrap_or_default(),
        })
    }

    async fn viewed_summary(&self, person: &Person, event: &AccessEvent) -> Result<String> {
        let mut titles = Vec::new();
        if person.role == Role::Patient {
            for id in &event.record_ids {
                if let Some(t) = self.reports.record_title(person, id).await? {
                    titles.push(t);
                }
            }
        }
        let n = event.record_ids.len();
        if let Some(what) = self.journal.read_note(&event.tx_hash).await? {
            let whose = if person.role == Role::Patient {
                "your"
            } else {
                "the patient's"
            };
            let records = if n == 1 { "report" } else { "reports" };
            return Ok(match titles.as_slice() {
                [] => format!("searched {whose} {what} (in {n} {records})"),
                _ => format!(
                    "searched {whose} {what} (in {n} {records}: {})",
                    titles.join(", ")
                ),
            });
        }
        Ok(match (n, titles.as_slice()) {
            (1, [title]) => format!("viewed the details of {title}"),
            (1, _) => "viewed the details of a record".into(),
            (_, []) => format!("viewed a list of {n} records"),
            _ => format!("viewed the list of records ({n}: {})", titles.join(", ")),
        })
    }
}

/// What reading one log asks the chain and the database again and again, asked once.
#[derive(Default)]
struct Context<'a> {
    names: HashMap<Address, Option<String>>,
    titles: HashMap<B256, Option<String>>,
    /// The patient asking (titles are theirs alone).
    asker: Option<&'a Person>,
}

impl Context<'_> {
    async fn name(&mut self, app: &Audit, account: Address) -> Result<Option<String>> {
        if let Some(n) = self.names.get(&account) {
            return Ok(n.clone());
        }
        let n = app.people.display_name(account).await?;
        self.names.insert(account, n.clone());
        Ok(n)
    }

    async fn title(&mut self, app: &Audit, id: B256) -> Result<Option<String>> {
        if let Some(t) = self.titles.get(&id) {
            return Ok(t.clone());
        }
        let t = match self.asker {
            Some(patient) => app.reports.record_title(patient, &id).await?,
            None => None,
        };
        self.titles.insert(id, t.clone());
        Ok(t)
    }
}
