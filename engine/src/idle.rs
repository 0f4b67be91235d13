//! Connections that go silent are closed. A connection that moves no byte
//! in either direction for the idle timeout fails its next read, and the
//! server (hyper, under tonic and axum) drops it: a client that opened a
//! connection and never spoke, half an HTTP/2 preface, an HTTP/1.1
//! keep-alive connection nobody uses. Live HTTP/2 connections are pinged
//! by the gRPC ports every 30 s, so their answers keep them open; a peer
//! that stops answering pings is closed by the keepalive sooner.
//!
//! The hot path pays a counter increment per read and write; the clock is
//! read only when the connection's timer fires, at most once per timeout,
//! so a connection is closed between one and two timeouts after its last
//! byte.
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The default idle timeout of every port.
pub const DEFAULT_IDLE: Duration = Duration::from_secs(300);

/// `IO` closed after `timeout` without a byte read or written.
pub struct Idle<IO> {
    io: IO,
    timeout: Duration,
    /// Reads and writes that moved bytes, ever.
    moved: u64,
    /// `moved` when the timer last fired.
    seen: u64,
    timer: Pin<Box<tokio::time::Sleep>>,
}

impl<IO> Idle<IO> {
    pub fn new(io: IO, timeout: Duration) -> Idle<IO> {
        Idle {
            io,
            timeout,
            moved: 0,
            seen: 0,
            timer: Box::pin(tokio::time::sleep(timeout)),
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// Ready with an error once the connection has been idle a whole
    /// timer period.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        while self.timer.as_mut().poll(cx).is_ready() {
            if self.moved == self.seen {
                return Poll::Ready(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("idle for {} s", self.timeout.as_secs()),
                ));
            }
            self.seen = self.moved;
            let next = tokio::time::Instant::now() + self.timeout;
            self.timer.as_mut().reset(next);
        }
        Poll::Pending
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Idle<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.moved += 1;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.poll_idle(cx).map(Err),
            other => other,
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Idle<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.moved += 1;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r
            && n > 0
        {
            self.moved += 1;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl<IO: tonic::transport::server::Connected> tonic::transport::server::Connected for Idle<IO> {
    type ConnectInfo = IO::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_connection_fails_and_a_talking_one_does_not() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut idle = Idle::new(a, Duration::from_secs(10));
        let mut buf = [0u8; 8];
        // Bytes every 6 s keep it open well past the timeout.
        for _ in 0..5 {
            b.write_all(b"x").await.unwrap();
            let n = tokio::time::timeout(Duration::from_secs(6), idle.read(&mut buf))
                .await
                .unwrap()
                .unwrap();
            assert_eq!(n, 1);
            tokio::time::sleep(Duration::from_secs(6)).await;
        }
        // Then silence: the read fails within two timeouts.
        let started = tokio::time::Instant::now();
        let e = idle.read(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() <= Duration::from_secs(20));
    }
}
