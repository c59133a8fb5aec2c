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
        let result = match &self.ticket {
            Some(t) => self.limiter.admit(t, limits, now_ms).await,
            None => unreachable!("the ticket is only taken below"),
        };
        match result {
            Ok(seen) => Ok((self.ticket.take().expect("held until here"), seen)),
            Err(e) => {
                // Refused: nothing was counted. Unavailable: it may have been; the drop settles it to be sure.
                if matches!(e, LimitError::Refused { .. }) {
                    self.ticket = None;
                }
                Err(e)
            }
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
