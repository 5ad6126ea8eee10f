//! The share form, read once for the API and the page alike: a multipart body with the file
//! and its fields, turned into the domain's `NewReport` and `ShareWith` (each word becoming its
//! enum here, each failure naming its field).

use axum::{
    extract::{Multipart, multipart::MultipartError},
    http::StatusCode,
};
use medledger_records::primitives::Address;
use medledger_records::{
    Error, Kind,
    model::{Purpose, RecordKind},
    reports::NewReport,
    sharing::ShareWith,
};

/// Longest text field of the form.
const MAX_FIELD: usize = 20_000;

/// A share form as it came: the file and every text field (repeated names kept).
pub(crate) struct ShareForm {
    pub(crate) fields: Vec<(String, String)>,
    pub(crate) file: Option<Vec<u8>>,
    /// Set when the file was over the limit (and dropped).
    too_large: Option<Error>,
}

fn multipart_error(e: MultipartError) -> Error {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Error::new(Kind::TooLarge, "the upload is larger than the limit").on("file")
    } else {
        Error::invalid(format!("bad multipart form: {}", e.body_text()))
    }
}

impl ShareForm {
    /// Reads the whole form. A file over `limit` bytes is dropped and the rest of the form is
    /// still read (so a page can show the other fields again, and a client still sending gets
    /// an answer, not a reset connection); `request` then refuses it.
    pub(crate) async fn read(mut form: Multipart, limit: usize) -> Result<ShareForm, Error> {
        let mut fields = Vec::new();
        let mut file = None;
        let mut too_large = None;
        while let Some(mut field) = form.next_field().await.map_err(multipart_error)? {
            let name = field.name().unwrap_or_default().to_string();
            if name == "file" {
                let mut bytes = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    if too_large.is_none() && bytes.len() + chunk.len() > limit {
                        bytes = Vec::new();
                        too_large = Some(
                            Error::new(
                                Kind::TooLarge,
                                format!(
                                    "the file is larger than the {} MiB limit",
                                    limit / (1024 * 1024)
                                ),
                            )
                            .on("file"),
                        );
                    }
                    if too_large.is_none() {
                        bytes.extend_from_slice(&chunk);
                    }
                }
                file = Some(bytes);
            } else {
                let text = field.text().await.map_err(multipart_error)?;
                if text.len() > MAX_FIELD {
                    return Err(Error::invalid(format!("field {name} is too long")));
                }
                fields.push((name, text));
            }
        }
        Ok(ShareForm {
            fields,
            file,
            too_large,
        })
    }

    /// The value of text field `name` ("" when absent).
    pub(crate) fn field(&self, name: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    /// The report and whom to share it with, or the first field that is wrong.
    pub(crate) fn request(mut self) -> Result<(NewReport, ShareWith), Error> {
        if let Some(e) = self.too_large.take() {
            return Err(e);
        }
        let kind = match self.field("kind") {
            "" => RecordKind::Report,
            k => k.parse().map_err(|e: Error| e.on("kind"))?,
        };
        let purpose = match self.field("purpose") {
            "" => Purpose::Treatment,
            p => p.parse().map_err(|e: Error| e.on("purpose"))?,
        };
        let days = match self.field("expires_in_days").trim() {
            "" => 30,
            d => d.parse().map_err(|_| {
                Error::invalid("expires_in_days must be a number of days").on("expires_in_days")
            })?,
        };
        let mut doctors = Vec::new();
        for (_, v) in self
            .fields
            .iter()
            .filter(|(k, v)| k == "share_with" && !v.trim().is_empty())
        {
            let doctor: Address = v.trim().parse().map_err(|_| {
                Error::invalid("share_with must be a doctor's account address").on("share_with")
            })?;
            doctors.push(doctor);
        }
        let hospital = match self.field("hospital_id").trim() {
            "" => None,
            h => Some(h.parse::<u64>().map_err(|_| {
                Error::invalid("hospital_id must be a hospital's number").on("hospital_id")
            })?),
        };
        let file = self
            .file
            .take()
            .ok_or_else(|| Error::invalid("the form needs a file field").on("file"))?;
        let report = NewReport {
            title: self.field("title").to_string(),
            kind,
            date: self.field("date").to_string(),
            notes: self.field("notes").to_string(),
            bytes: file,
        };
        let with = ShareWith {
            doctors,
            hospital,
            purpose,
            days,
        };
        Ok((report, with))
    }
}
