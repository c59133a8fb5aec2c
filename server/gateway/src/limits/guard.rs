//! Admission that survives being abandoned. Handler futures are dropped whenever a client goes away, including
//! while the limiter's admission is in flight (a Redis round trip): the script may have run, yet no ticket would
//! reach the request's `Inflight`, and its slot and tokens would stay taken. The guard holds the ticket from before
//! the await; dropped before it hands the ticket over, it settles it at zero, which releases the admission if it
//! happened and is ignored by the backend if it did not.

use super::{LimitError, Limiter, Seen, Ticket};
use std::sync::Arc;
use tollgate_domain::grant::Limits;

pub struct AdmitGuard<'a> {
    limiter: &'a Arc<dyn Limiter>,
    ticket: Option<Ticket>,
}

impl<'a> AdmitGuard<'a> {
    pub fn new(limiter: &'a Arc<dyn Limiter>, ticket: Ticket) -> Self {
        Self {
            limiter,
            ticket: Some(ticket),
        }
    }

    /// Admits the ticket: Ok hands it over to be settled by its owner, a refusal needs no settling.
    pub async fn admit(
        mut self,
        limits: &Limits,
        now_ms: i64,
    ) -> Result<(Ticket, Seen), LimitError> {
        // The ticket is held (Some) from `new` until this call hands it over or the refusal drops it.
        let Some(ticket) = self.ticket.as_ref() else {
            return Err(LimitError::Unavailable("admission attempted twice".into()));
        };
        let result = self.limiter.admit(ticket, limits, now_ms).await;
        match (result, self.ticket.take()) {
            (Ok(seen), Some(ticket)) => Ok((ticket, seen)),
            // Refused: nothing was counted, so there is nothing to settle.
            (Err(e @ LimitError::Refused { .. }), _) => Err(e),
            // Unavailable: it may have been counted; putting the ticket back lets the drop settle it to be sure.
            (Err(e), ticket) => {
                self.ticket = ticket;
                Err(e)
            }
            (Ok(_), None) => Err(LimitError::Unavailable("admission attempted twice".into())),
        }
    }
}

impl Drop for AdmitGuard<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.limiter.settle(ticket, 0);
        }
    }
}

// Tested through the whole request path: `tests/abandoned_admission.rs`.
