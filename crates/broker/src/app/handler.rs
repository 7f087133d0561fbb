//! [`Handler`]: any `async fn` (or closure returning a future) whose arguments are all
//! [`FromMessage`] and whose output is [`IntoReply`], after axum's `Handler`. Implemented for
//! up to eight arguments.

use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use super::extract::{AppMessage, FromMessage};
use super::reply::{IntoReply, Reply};

/// An application handler. Extractors run in argument order; the first rejection is the reply
/// and the handler is not called.
pub trait Handler<T>: Clone + Send + Sync + 'static {
    /// Runs the extractors, then the handler, and converts its output.
    fn call(self, message: AppMessage) -> BoxFuture<'static, Vec<Reply>>;
}

/// A type-erased handler, as stored in the routing table.
pub(crate) type BoxedHandler =
    Arc<dyn Fn(AppMessage) -> BoxFuture<'static, Vec<Reply>> + Send + Sync>;

pub(crate) fn boxed<H: Handler<T>, T: 'static>(handler: H) -> BoxedHandler {
    Arc::new(move |message| handler.clone().call(message))
}

macro_rules! impl_handler {
    ($($t:ident),*) => {
        impl<F, Fut, R, $($t,)*> Handler<($($t,)*)> for F
        where
            F: FnOnce($($t),*) -> Fut + Clone + Send + Sync + 'static,
            Fut: Future<Output = R> + Send,
            R: IntoReply,
            $($t: FromMessage + Send,)*
        {
            #[allow(non_snake_case, unused_variables, unused_mut)]
            fn call(self, message: AppMessage) -> BoxFuture<'static, Vec<Reply>> {
                Box::pin(async move {
                    let mut out = Vec::new();
                    $(
                        let $t = match $t::from_message(&message).await {
                            Ok(value) => value,
                            Err(rejection) => {
                                rejection.into_reply(&mut out);
                                return out;
                            }
                        };
                    )*
                    self($($t),*).await.into_reply(&mut out);
                    out
                })
            }
        }
    };
}

impl_handler!();
impl_handler!(T1);
impl_handler!(T1, T2);
impl_handler!(T1, T2, T3);
impl_handler!(T1, T2, T3, T4);
impl_handler!(T1, T2, T3, T4, T5);
impl_handler!(T1, T2, T3, T4, T5, T6);
impl_handler!(T1, T2, T3, T4, T5, T6, T7);
impl_handler!(T1, T2, T3, T4, T5, T6, T7, T8);
