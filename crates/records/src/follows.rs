//! What follows a chain write, by its kind (`journal::Follow`): the composition root's part of
//! the write path, where the journal hands a mined or failed write back to the use case it
//! belongs to. The journal itself knows none of them.

use alloy::rpc::types::TransactionReceipt;
use medledger_vault::SecretKey;

use crate::{
    app::App,
    error::Result,
    journal::{Follow, Follows},
    store::{invites::Invites, users::Users},
};

impl Follows for App {
    async fn succeeded(
        &self,
        follow: &Follow,
        receipt: &TransactionReceipt,
        secret: Option<&SecretKey>,
    ) -> Result<()> {
        match follow {
            Follow::Nothing | Follow::LoggedRead => {}
            Follow::AnchorRecord { record } => {
                crate::store::records::Records(self.db())
                    .anchored(
                        record,
                        &receipt.transaction_hash,
                        receipt.block_number.unwrap_or_default(),
                    )
                    .await?;
            }
            Follow::Register { account } => {
                Users(self.db()).activate(*account).await?;
                // An enrolment: its link is used up.
                if let Some(accepted) =
                    receipt.decoded_log::<crate::contracts::Registry::InviteAccepted>()
                {
                    Invites(self.db())
                        .used(accepted.data.inviteKey, *account)
                        .await?;
                }
            }
            Follow::Consent { patient } => {
                self.index_grants(receipt).await?;
                self.sync_wraps(*patient, secret).await?;
            }
            Follow::Emergency { object } => self.emergency_mined(object, receipt).await?,
            Follow::Study { details } => self.study_mined(details, receipt).await?,
            Follow::Research { patient } => self.sync_research_wraps(*patient, secret).await?,
            Follow::Invite { key } => {
                Invites(self.db())
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
                Invites(self.db()).forget_unused(*key).await?;
            }
            Follow::Emergency { object } => self.forget_declaration(object).await?,
        }
        Ok(())
    }
}
