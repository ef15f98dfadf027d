//! A transport that drops what cannot open a session.
//!
//! Before a session exists, rmcp ends the whole server when the first
//! message that is not a request arrives (a notification such as
//! `notifications/initialized` sent too early, or a stray response). One
//! confused or hostile line must not kill the server, so until a request
//! opens the session (`initialize`, or a stateless request with complete
//! `_meta`), other messages are dropped and reported on stderr. After
//! that every message passes through untouched.

use std::future::Future;

use rmcp::model::{ClientRequest, GetMeta as _, JsonRpcMessage, ProtocolVersion};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;

/// Wraps a server transport until its session opens.
pub struct OpensWithRequest<T> {
    inner: T,
    opened: bool,
}

impl<T> OpensWithRequest<T> {
    pub fn new(inner: T) -> OpensWithRequest<T> {
        OpensWithRequest {
            inner,
            opened: false,
        }
    }
}

/// Whether `request` opens a session, as rmcp judges it: `initialize`, or
/// a request other than ping and discover with complete stateless `_meta`.
fn opens(request: &ClientRequest) -> bool {
    match request {
        ClientRequest::InitializeRequest(_) => true,
        ClientRequest::PingRequest(_) | ClientRequest::DiscoverRequest(_) => false,
        other => {
            let meta = other.get_meta();
            meta.protocol_version().is_some()
                && meta
                    .missing_required_keys(&ProtocolVersion::V_2026_07_28)
                    .is_empty()
        }
    }
}

impl<T: Transport<RoleServer>> Transport<RoleServer> for OpensWithRequest<T> {
    type Error = T::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        self.inner.send(item)
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        loop {
            let message = self.inner.receive().await?;
            if self.opened {
                return Some(message);
            }
            match &message {
                JsonRpcMessage::Request(r) => {
                    self.opened = opens(&r.request);
                    return Some(message);
                }
                _ => eprintln!(
                    "loadctl serve-mcp: ignored a message that is not a request before the session opened"
                ),
            }
        }
    }

    fn close(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        self.inner.close()
    }
}
