//! The result of every entry point: messages to send, outputs, faults and keystore requests.

use beat_types::NodeId;

use crate::{fault::Fault, request::Request};

/// Where a message goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every replica except the sender. The sender has already applied the message to itself.
    All,
    /// One replica.
    Node(NodeId),
}

/// A message and its destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outgoing<M> {
    /// Destination.
    pub target: Target,
    /// The message.
    pub message: M,
}

/// What a call into the protocol produced.
///
/// * `messages` must all be sent (the network may reorder and delay them, but must eventually
///   deliver each one to each honest target);
/// * `outputs` are the protocol's results, in order;
/// * `faults` attribute observed misbehaviour to a replica — a remote replica can only ever
///   cause a fault, never an `Err` or a panic;
/// * `requests` are secret-key operations for the keystore; their replies come back through
///   `handle_reply`.
#[must_use = "a step carries messages that must be sent and requests that must be served"]
#[derive(Debug, PartialEq, Eq)]
pub struct Step<M, O> {
    /// Messages to send.
    pub messages: Vec<Outgoing<M>>,
    /// Protocol outputs.
    pub outputs: Vec<O>,
    /// Observed misbehaviour.
    pub faults: Vec<Fault>,
    /// Keystore requests.
    pub requests: Vec<Request>,
}

impl<M, O> Default for Step<M, O> {
    fn default() -> Self {
        Self {
            messages: Vec::new(),
            outputs: Vec::new(),
            faults: Vec::new(),
            requests: Vec::new(),
        }
    }
}

impl<M, O> Step<M, O> {
    /// Sends `message` to every other replica.
    pub fn broadcast(&mut self, message: M) {
        self.messages.push(Outgoing {
            target: Target::All,
            message,
        });
    }

    /// Sends `message` to `to`.
    pub fn send(&mut self, to: NodeId, message: M) {
        self.messages.push(Outgoing {
            target: Target::Node(to),
            message,
        });
    }

    /// Records an output.
    pub fn output(&mut self, output: O) {
        self.outputs.push(output);
    }

    /// Attributes a fault.
    pub fn fault(&mut self, fault: Fault) {
        self.faults.push(fault);
    }

    /// Asks the keystore for a secret-key operation.
    pub fn request(&mut self, request: Request) {
        self.requests.push(request);
    }

    /// Appends `other`, which has the same message and output types.
    pub fn extend(&mut self, other: Self) {
        self.messages.extend(other.messages);
        self.outputs.extend(other.outputs);
        self.faults.extend(other.faults);
        self.requests.extend(other.requests);
    }

    /// Moves a sub-protocol's messages (wrapped by `wrap`), faults and requests into `parent`
    /// and returns its outputs for the caller to act on.
    pub fn absorb_into<PM, PO>(self, parent: &mut Step<PM, PO>, wrap: impl Fn(M) -> PM) -> Vec<O> {
        parent
            .messages
            .extend(self.messages.into_iter().map(|o| Outgoing {
                target: o.target,
                message: wrap(o.message),
            }));
        parent.faults.extend(self.faults);
        parent.requests.extend(self.requests);
        self.outputs
    }

    /// Returns `true` if the step carries nothing at all.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
            && self.outputs.is_empty()
            && self.faults.is_empty()
            && self.requests.is_empty()
    }
}
