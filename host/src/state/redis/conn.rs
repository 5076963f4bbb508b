//! One multiplexed connection to Redis, opened on first use and again after
//! any failure, with every operation under a deadline.
//!
//! Nothing here retries: a script whose reply was lost may have run, and
//! running it twice could count a request twice or use an approval for
//! another request. A failed operation is refused (the proxy answers 503,
//! fail closed); the next operation opens a fresh connection, so service
//! resumes by itself once Redis is back.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use redis::aio::MultiplexedConnection;
use redis::{Client, Cmd, Script, Value};

use super::super::StateError;

pub(super) struct Connection {
    client: Client,
    /// The open connection, if any. Cloning one is cheap (it is a handle to
    /// a shared pipeline), so requests never wait on each other here.
    open: ArcSwapOption<MultiplexedConnection>,
    /// Only one connection attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    deadline: Duration,
    /// `host:port` for messages (never the password).
    target: String,
}

impl Connection {
    pub(super) fn new(client: Client, deadline: Duration, target: String) -> Connection {
        Connection {
            client,
            open: ArcSwapOption::empty(),
            connecting: tokio::sync::Mutex::new(()),
            deadline,
            target,
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, redis::RedisError> {
        if let Some(open) = self.open.load_full() {
            return Ok((*open).clone());
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(open) = self.open.load_full() {
            return Ok((*open).clone());
        }
        let fresh = self.client.get_multiplexed_async_connection().await?;
        self.open.store(Some(Arc::new(fresh.clone())));
        Ok(fresh)
    }

    /// Run one script with these arguments (after the key prefix, which the
    /// caller puts first).
    pub(super) async fn script(&self, script: &Script, args: &[String]) -> Result<Value, StateError> {
        self.within_deadline(async {
            let mut conn = self.connection().await?;
            let mut invocation = script.prepare_invoke();
            for arg in args {
                invocation.arg(arg);
            }
            invocation.invoke_async(&mut conn).await
        })
        .await
    }

    /// Run one plain command.
    pub(super) async fn command(&self, cmd: Cmd) -> Result<Value, StateError> {
        self.within_deadline(async {
            let mut conn = self.connection().await?;
            cmd.query_async(&mut conn).await
        })
        .await
    }

    async fn within_deadline(
        &self,
        op: impl Future<Output = Result<Value, redis::RedisError>>,
    ) -> Result<Value, StateError> {
        let failure = match tokio::time::timeout(self.deadline, op).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(e)) => format!("redis at {}: {e}", self.target),
            Err(_) => format!(
                "redis at {}: no answer within {} ms",
                self.target,
                self.deadline.as_millis()
            ),
        };
        // Whatever went wrong, the next operation starts on a new connection.
        self.open.store(None);
        Err(StateError(failure))
    }
}
