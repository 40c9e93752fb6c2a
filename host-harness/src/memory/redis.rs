//! The memory store in Redis or Valkey (`--memory-store redis://…`), shared by a fleet behind
//! a load balancer, through the `redis` crate's [`ConnectionManager`]: one multiplexed
//! connection, made when first needed and made again by the manager when it is lost.
//!
//! An error in a reply (`OOM` from a server at `maxmemory`, `WRONGTYPE` for a key of another
//! type) fails that one operation: the connection stays, and every other caller's lookups and
//! writes go on. Only a lost connection (an I/O error) makes the manager reconnect, in the
//! background, with a short exponential backoff; operations meanwhile wait for the new
//! connection, each within its own limit (the caller bounds a lookup and a write).

use super::codec::MAX_VALUE_BYTES;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ErrorKind, RedisError, RedisResult};
use std::sync::OnceLock;
use std::time::Duration;

/// How many times a lost connection is tried again before the attempt fails (the next
/// operation then starts another).
const RECONNECT_RETRIES: usize = 4;
/// The first pause between connection attempts; each next pause doubles it, with jitter.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);
/// The longest pause between connection attempts.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);

/// The Redis store: a client, and its connection manager once an operation needs one.
pub(super) struct RedisStore {
    client: redis::Client,
    /// How long a connection attempt, and a reply, may take.
    timeout: Duration,
    /// Made on first use, inside the async runtime the manager's tasks run on: the store
    /// itself is made before any runtime runs, and a store that is down at start must not
    /// fail start-up.
    manager: OnceLock<ConnectionManager>,
}

impl RedisStore {
    /// A store at `url`, each connection attempt and each reply bounded by `timeout`.
    /// Nothing is connected yet; only a URL the client cannot use is an error.
    pub(super) fn open(url: &str, timeout: Duration) -> RedisResult<RedisStore> {
        Ok(RedisStore {
            client: redis::Client::open(url)?,
            timeout,
            manager: OnceLock::new(),
        })
    }

    /// The connection manager (a handle on the shared connection), made the first time.
    fn connection(&self) -> RedisResult<ConnectionManager> {
        if let Some(manager) = self.manager.get() {
            return Ok(manager.clone());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_exponent_base(2.0)
            .set_max_delay(RECONNECT_MAX_DELAY);
        // Lazy: connects on the first command. Two first uses at once may each make one; the
        // one not kept is dropped before it connects.
        let made = ConnectionManager::new_lazy_with_config(self.client.clone(), config)?;
        Ok(self.manager.get_or_init(|| made).clone())
    }

    /// The value under `key`, `None` when there is none (or it is empty).
    pub(super) async fn get(&self, key: &str) -> RedisResult<Option<Vec<u8>>> {
        let mut connection = self.connection()?;
        // At most what a routing can take (a store is not trusted to send little).
        redis::cmd("GETRANGE")
            .arg(key)
            .arg(0)
            .arg(MAX_VALUE_BYTES - 1)
            .query_async::<Vec<u8>>(&mut connection)
            .await
            .map(|value| (!value.is_empty()).then_some(value))
    }

    /// Keep `value` under `key` for `for_`.
    pub(super) async fn set(&self, key: &str, value: &[u8], for_: Duration) -> RedisResult<()> {
        let mut connection = self.connection()?;
        let millis = u64::try_from(for_.as_millis()).unwrap_or(u64::MAX).max(1);
        redis::cmd("SET")
            .arg(key)
            .arg(value)
            .arg("PX")
            .arg(millis)
            .query_async::<()>(&mut connection)
            .await
    }
}

/// Whether `error` is the server's answer to one command (`OOM`, `WRONGTYPE`, `ERR …`),
/// which fails that command only, rather than a connection that failed.
pub(super) fn is_reply_error(error: &RedisError) -> bool {
    matches!(error.kind(), ErrorKind::Server(_) | ErrorKind::Extension)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    type Values = Arc<Mutex<HashMap<Vec<u8>, Vec<u8>>>>;

    /// A stand-in for Redis on `127.0.0.1:port` (any free port for 0): `SET` and `GETRANGE`
    /// on a map, except that a key ending in `:oom` is refused as by a server at `maxmemory`
    /// and one ending in `:wrongtype` as a key of another type; anything else is `+OK`.
    /// Returns its URL and the number of connections it accepted.
    async fn fake_redis(port: u16) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("redis://{}/0", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let values = Values::default();
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(BufReader::new(socket), values.clone()));
            }
        });
        (url, accepted)
    }

    async fn answer(mut socket: BufReader<TcpStream>, values: Values) {
        while let Some(command) = read_command(&mut socket).await {
            let name = command
                .first()
                .map(|name| name.to_ascii_uppercase())
                .unwrap_or_default();
            let key = command.get(1).cloned().unwrap_or_default();
            let reply = match name.as_slice() {
                b"GETRANGE" if key.ends_with(b":wrongtype") => {
                    b"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
                        .to_vec()
                }
                b"GETRANGE" => {
                    let value = values.lock().unwrap().get(&key).cloned();
                    let value = value.unwrap_or_default();
                    let mut reply = format!("${}\r\n", value.len()).into_bytes();
                    reply.extend_from_slice(&value);
                    reply.extend_from_slice(b"\r\n");
                    reply
                }
                b"SET" if key.ends_with(b":oom") => {
                    b"-OOM command not allowed when used memory > 'maxmemory'.\r\n".to_vec()
                }
                b"SET" => {
                    let value = command.get(2).cloned().unwrap_or_default();
                    values.lock().unwrap().insert(key, value);
                    b"+OK\r\n".to_vec()
                }
                _ => b"+OK\r\n".to_vec(),
            };
            if socket.get_mut().write_all(&reply).await.is_err() {
                return;
            }
        }
    }

    /// One command as a client sends it: an array of bulk strings.
    async fn read_command(socket: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
        let mut line = String::new();
        socket.read_line(&mut line).await.ok()?;
        let count: usize = line.trim_end().strip_prefix('*')?.parse().ok()?;
        let mut command = Vec::with_capacity(count);
        for _ in 0..count {
            line.clear();
            socket.read_line(&mut line).await.ok()?;
            let len: usize = line.trim_end().strip_prefix('$')?.parse().ok()?;
            let mut arg = vec![0; len + 2];
            socket.read_exact(&mut arg).await.ok()?;
            arg.truncate(len);
            command.push(arg);
        }
        Some(command)
    }

    #[tokio::test]
    async fn a_reply_error_fails_that_operation_only_and_keeps_the_connection() {
        let (url, accepted) = fake_redis(0).await;
        // Generous limits: this test is about replies, not time.
        let store = RedisStore::open(&url, Duration::from_secs(5)).unwrap();
        let hour = Duration::from_secs(3600);
        store.set("t:good", b"remembered", hour).await.unwrap();
        for _ in 0..3 {
            let oom = store.set("t:oom", b"x", hour).await.unwrap_err();
            assert!(is_reply_error(&oom), "{oom}");
            let wrong_type = store.get("t:wrongtype").await.unwrap_err();
            assert!(is_reply_error(&wrong_type), "{wrong_type}");
            // The very next operations, another caller's, go through at once.
            assert_eq!(
                store.get("t:good").await.unwrap(),
                Some(b"remembered".to_vec())
            );
            store.set("t:other", b"too", hour).await.unwrap();
        }
        assert_eq!(store.get("t:missing").await.unwrap(), None);
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one connection throughout"
        );
    }

    #[tokio::test]
    async fn a_store_down_at_start_is_used_once_it_is_up() {
        // A port nothing listens on (yet).
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let store = RedisStore::open(
            &format!("redis://127.0.0.1:{port}/0"),
            Duration::from_secs(1),
        )
        .unwrap();
        // As a lookup does: bounded by the caller; a failure is not a reply error.
        match tokio::time::timeout(Duration::from_millis(200), store.get("t:good")).await {
            Err(_) => {}
            Ok(result) => {
                let error = result.unwrap_err();
                assert!(!is_reply_error(&error), "{error}");
            }
        }
        let (_, accepted) = fake_redis(port).await;
        let start = std::time::Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_millis(200), store.get("t:good")).await {
                Ok(Ok(value)) => {
                    assert_eq!(value, None);
                    break;
                }
                Ok(Err(error)) => assert!(!is_reply_error(&error), "{error}"),
                Err(_) => {}
            }
            assert!(start.elapsed() < Duration::from_secs(15), "never connected");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(accepted.load(Ordering::SeqCst) >= 1);
    }
}
