//! A TCP proxy in front of a node's peer port that can cut traffic from
//! chosen source addresses: a network partition between real processes on
//! loopback. Each node sends from its own 127.0.0.x address, so a proxy
//! knows which node a connection comes from.
use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub addr: SocketAddr,
    blocked: Arc<Mutex<HashSet<IpAddr>>>,
    /// Bumped on every cut: open connections from blocked sources close.
    generation: watch::Sender<u64>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let blocked: Arc<Mutex<HashSet<IpAddr>>> = Arc::default();
        let (generation, _) = watch::channel(0u64);
        let (b, g) = (blocked.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, from)) = listener.accept().await else {
                    return;
                };
                if b.lock().unwrap().contains(&from.ip()) {
                    drop(inbound);
                    continue;
                }
                let (b, mut gen_rx) = (b.clone(), g.subscribe());
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let copy = copy_bidirectional(&mut inbound, &mut outbound);
                    tokio::pin!(copy);
                    loop {
                        tokio::select! {
                            _ = &mut copy => return,
                            changed = gen_rx.changed() => {
                                if changed.is_err() || b.lock().unwrap().contains(&from.ip()) {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
        Proxy {
            addr,
            blocked,
            generation,
        }
    }

    /// Refuse (and drop) connections from `sources`.
    pub fn block(&self, sources: &[IpAddr]) {
        self.blocked.lock().unwrap().extend(sources.iter().copied());
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn heal(&self) {
        self.blocked.lock().unwrap().clear();
        self.generation.send_modify(|g| *g += 1);
    }
}
