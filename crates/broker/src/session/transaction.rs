//! Transactions of one session: BEGIN opens one, SEND / ACK / NACK frames naming it are held
//! back, COMMIT hands them back in order to be applied, ABORT (or the session ending) drops
//! them. Bounded by `config.transactions`.

use std::collections::HashMap;

use stompbox_codec::{ByteString, Command, Frame};

use super::{Action, Session};
use crate::error::ProtocolError;
use crate::router::Outcome;
use crate::{Principal, TransactionConfig};

/// The open transactions of one session. Empty maps do not allocate.
#[derive(Debug, Default)]
pub(crate) struct Transactions {
    open: HashMap<ByteString, Vec<Frame>>,
    /// Body bytes held in all open transactions.
    bytes: usize,
}

fn unknown(id: &str) -> ProtocolError {
    ProtocolError::UnknownTransaction { id: id.to_owned() }
}

impl Transactions {
    pub(crate) fn begin(
        &mut self,
        id: ByteString,
        config: &TransactionConfig,
    ) -> Result<(), ProtocolError> {
        if self.open.contains_key(&id) {
            return Err(ProtocolError::DuplicateTransaction { id: id.to_string() });
        }
        if self.open.len() >= config.max_open {
            let max = config.max_open;
            return Err(ProtocolError::TooManyTransactions { max });
        }
        self.open.insert(id, Vec::new());
        Ok(())
    }

    /// Holds back a frame until COMMIT, copied out of the read buffer
    /// ([`stompbox_codec::detach`]) so that `max_bytes` counts what is held.
    pub(crate) fn buffer(
        &mut self,
        id: &str,
        mut frame: Frame,
        config: &TransactionConfig,
    ) -> Result<(), ProtocolError> {
        let frames = self.open.get_mut(id).ok_or_else(|| unknown(id))?;
        if frames.len() >= config.max_frames || self.bytes + frame.body.len() > config.max_bytes {
            return Err(ProtocolError::TransactionTooLarge {
                id: id.to_owned(),
                max_frames: config.max_frames,
                max_bytes: config.max_bytes,
            });
        }
        self.bytes += frame.body.len();
        frame.detach();
        frames.push(frame);
        Ok(())
    }

    /// Closes the transaction and returns its frames, in the order received.
    pub(crate) fn commit(&mut self, id: &str) -> Result<Vec<Frame>, ProtocolError> {
        let frames = self.open.remove(id).ok_or_else(|| unknown(id))?;
        self.bytes -= frames.iter().map(|f| f.body.len()).sum::<usize>();
        if self.open.is_empty() {
            self.open = HashMap::new();
        }
        Ok(frames)
    }

    /// Drops the transaction's frames.
    pub(crate) fn abort(&mut self, id: &str) -> Result<(), ProtocolError> {
        self.commit(id).map(drop)
    }
}

/// BEGIN, COMMIT, ABORT, and frames naming a transaction.
impl Session<'_> {
    fn transaction_id(frame: &Frame) -> Result<&ByteString, ProtocolError> {
        frame
            .headers
            .get_shared("transaction")
            .ok_or(ProtocolError::MissingHeader {
                command: frame.command,
                header: "transaction",
            })
    }

    /// A SEND, ACK or NACK inside a transaction: checked now as far as it can be (destination,
    /// required headers), applied at COMMIT.
    pub(super) fn hold(
        &mut self,
        tx: &str,
        frame: Frame,
        principal: Option<&Principal>,
    ) -> Result<(), ProtocolError> {
        match frame.command {
            Command::Send => {
                self.client_send(&frame, principal)?;
            }
            _ => {
                self.ack_key(&frame)?;
            }
        }
        self.transactions
            .buffer(tx, frame, &self.config.transactions)
    }

    pub(super) fn begin(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        let tx = Self::transaction_id(frame)?;
        self.transactions
            .begin(tx.clone(), &self.config.transactions)
    }

    /// Applies the held frames in order. Every effect is an action pushed before the receipt
    /// `on_frame` adds, so COMMIT's RECEIPT follows all of them.
    pub(super) fn commit(
        &mut self,
        frame: &Frame,
        principal: Option<&Principal>,
        out: &mut Vec<Action>,
    ) -> Result<(), ProtocolError> {
        let tx = Self::transaction_id(frame)?;
        for held in self.transactions.commit(tx)? {
            match held.command {
                Command::Send => self.send(held, principal, out)?,
                Command::Ack => self.ack(&held, Outcome::Ack, out)?,
                _ => self.ack(&held, Outcome::Nack, out)?,
            }
        }
        Ok(())
    }

    pub(super) fn abort(&mut self, frame: &Frame) -> Result<(), ProtocolError> {
        let tx = Self::transaction_id(frame)?;
        self.transactions.abort(tx)
    }
}

#[cfg(test)]
mod tests {
    use stompbox_codec::Command;

    use super::*;

    fn send(body: &'static str) -> Frame {
        Frame::new(Command::Send).with_body(body)
    }

    #[test]
    fn begin_buffer_commit_abort() {
        let config = TransactionConfig::default();
        let mut t = Transactions::default();
        t.begin("a".into(), &config).unwrap();
        assert!(matches!(
            t.begin("a".into(), &config),
            Err(ProtocolError::DuplicateTransaction { .. })
        ));
        t.buffer("a", send("1"), &config).unwrap();
        t.buffer("a", send("22"), &config).unwrap();
        assert!(matches!(
            t.buffer("b", send("x"), &config),
            Err(ProtocolError::UnknownTransaction { .. })
        ));
        assert_eq!(t.bytes, 3);
        let frames = t.commit("a").unwrap();
        assert_eq!(&frames[1].body[..], b"22");
        assert_eq!(t.bytes, 0);
        assert!(t.commit("a").is_err(), "committed transactions are closed");
        t.begin("a".into(), &config).unwrap();
        t.abort("a").unwrap();
        assert!(t.abort("a").is_err());
    }

    #[test]
    fn bounds() {
        let config = TransactionConfig {
            max_open: 1,
            max_frames: 2,
            max_bytes: 4,
        };
        let mut t = Transactions::default();
        t.begin("a".into(), &config).unwrap();
        assert!(matches!(
            t.begin("b".into(), &config),
            Err(ProtocolError::TooManyTransactions { max: 1 })
        ));
        t.buffer("a", send("abc"), &config).unwrap();
        assert!(t.buffer("a", send("de"), &config).is_err(), "bytes");
        t.buffer("a", send("d"), &config).unwrap();
        assert!(t.buffer("a", send(""), &config).is_err(), "frames");
    }
}
