//! A TCP proxy in front of a node's peer port that can cut traffic from
//! chosen source addresses: a network partition between real processes on
//! loopback. Each node sends from its own 127.0.0.x address, so a proxy
//! knows which node a connection comes from.
//!
//! A cut is either a block (connections closed and refused: the sender
//! learns at once) or a black hole (connections accepted and held, no byte
//! passed either way, nothing closed: the sender learns only from its own
//! deadlines, as behind a network that drops packets).
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Block,
    BlackHole,
}

type Cuts = Arc<Mutex<HashMap<IpAddr, Cut>>>;

pub struct Proxy {
    pub addr: SocketAddr,
    cuts: Cuts,
    /// Bumped on every change: open connections from cut sources close or
    /// freeze.
    generation: watch::Sender<u64>,
}

fn cut_of(cuts: &Cuts, ip: IpAddr) -> Option<Cut> {
    cuts.lock().unwrap().get(&ip).copied()
}

/// Hold `sockets` open, passing nothing, until `from` is no longer black
/// holed; then close them.
async fn hold<T>(_sockets: T, cuts: &Cuts, from: IpAddr, gen_rx: &mut watch::Receiver<u64>) {
    while cut_of(cuts, from) == Some(Cut::BlackHole) {
        if gen_rx.changed().await.is_err() {
            return;
        }
    }
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().unwrap();
        let cuts: Cuts = Arc::default();
        let (generation, _) = watch::channel(0u64);
        let (c, g) = (cuts.clone(), generation.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, from)) = listener.accept().await else {
                    return;
                };
                let (c, mut gen_rx) = (c.clone(), g.subscribe());
                match cut_of(&c, from.ip()) {
                    Some(Cut::Block) => {
                        drop(inbound);
                        continue;
                    }
                    Some(Cut::BlackHole) => {
                        tokio::spawn(async move {
                            hold(inbound, &c, from.ip(), &mut gen_rx).await;
                        });
                        continue;
                    }
                    None => {}
                }
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
                                if changed.is_err() {
                                    return;
                                }
                                match cut_of(&c, from.ip()) {
                                    None => {}
                                    Some(Cut::Block) => return,
                                    Some(Cut::BlackHole) => break,
                                }
                            }
                        }
                    }
                    // Frozen: the copy is no longer polled, both sockets
                    // stay open.
                    hold(copy, &c, from.ip(), &mut gen_rx).await;
                });
            }
        });
        Proxy {
            addr,
            cuts,
            generation,
        }
    }

    fn cut(&self, sources: &[IpAddr], how: Cut) {
        self.cuts
            .lock()
            .unwrap()
            .extend(sources.iter().map(|s| (*s, how)));
        self.generation.send_modify(|g| *g += 1);
    }

    /// Refuse (and drop) connections from `sources`.
    pub fn block(&self, sources: &[IpAddr]) {
        self.cut(sources, Cut::Block);
    }

    /// Stop passing bytes from and to `sources`, on open connections and
    /// new ones, without closing any until healed.
    pub fn black_hole(&self, sources: &[IpAddr]) {
        self.cut(sources, Cut::BlackHole);
    }

    /// Pass everything again; connections frozen by a black hole close.
    pub fn heal(&self) {
        self.cuts.lock().unwrap().clear();
        self.generation.send_modify(|g| *g += 1);
    }
}
