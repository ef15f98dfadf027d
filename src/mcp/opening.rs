//! A transport that drops what cannot open a session.
//!
//! Before a session exists, rmcp ends the whole server when the first
//! message that is not a request arrives (a notification such as
//! `notifications/initialized` sent too early, or a stray response). One
//! confused or hostile line must not kill the server, so until a request
//! opens the session (`initialize`, or a stateless request with complete
//! `_meta`), other messages are dropped and reported on stderr. After
//! that every message passes through untouched. When the input ends, it
//! says so at once (rmcp would first finish the requests in hand).

use std::future::Future;

use rmcp::model::{ClientRequest, GetMeta as _, JsonRpcMessage, ProtocolVersion};
use rmcp::service::{RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::RoleServer;
use tokio_util::sync::CancellationToken;

/// Wraps a server transport until its session opens.
pub struct OpensWithRequest<T> {
    inner: T,
    opened: bool,
    /// Fired when the input ends: the host is gone, and nothing may wait
    /// for rmcp to finish the requests still being handled.
    closed: CancellationToken,
}

impl<T> OpensWithRequest<T> {
    pub fn new(inner: T, closed: CancellationToken) -> OpensWithRequest<T> {
        OpensWithRequest {
            inner,
            opened: false,
            closed,
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
            let Some(message) = self.inner.receive().await else {
                self.closed.cancel();
                return None;
            };
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
