//! A TCP relay that a test can cut and restore: a network partition between two real parts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

/// A relay from a local port to the first of its targets that accepts a connection.
pub struct Relay {
    /// `127.0.0.1:port`.
    pub addr: String,
    cut: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl Relay {
    /// Starts relaying to `targets` (`host:port`), tried in order for each new connection.
    pub async fn start(targets: Vec<String>) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let cut = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (c, k) = (Arc::clone(&cut), Arc::clone(&conns));
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    // Cut: the connection is closed as soon as it is made.
                    drop(inbound);
                    continue;
                }
                let targets = targets.clone();
                let task = tokio::spawn(async move {
                    for t in &targets {
                        if let Ok(mut out) = TcpStream::connect(t).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                            return;
                        }
                    }
                });
                let mut held = k.lock().unwrap();
                held.retain(|h| !h.is_finished());
                held.push(task.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            addr,
            cut,
            conns,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }

    /// Relays new connections again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        for h in self.conns.lock().unwrap().drain(..) {
            h.abort();
        }
    }
}
