//! Reading and writing peer frames on a TCP stream, with the deadlines that
//! keep a hostile or broken peer from holding a connection: an idle limit
//! between frames, and a whole-frame deadline once a frame has started (so
//! bytes dribbled slowly do not keep it open).

use std::time::Duration;

use center_proto::peer_frame::{FrameDecoder, FrameError, encode_frame};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::tcp::{OwnedReadHalf, OwnedWriteHalf},
    time::Instant,
};

/// How long a new connection may take to say hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one frame may take from its first byte to its last.
pub const FRAME_DEADLINE: Duration = Duration::from_secs(10);
/// How long a write may block before the peer counts as stuck.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(10);

/// Why reading or writing stopped.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("idle for {0:?}")]
    Idle(Duration),
    #[error("a frame took longer than {0:?} to arrive")]
    Slow(Duration),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The reading half of a peer connection.
pub struct FrameReader {
    stream: OwnedReadHalf,
    decoder: FrameDecoder,
    /// When the frame being read began, if one has begun.
    started: Option<Instant>,
    idle: Duration,
}

impl FrameReader {
    pub fn new(stream: OwnedReadHalf, idle: Duration) -> FrameReader {
        FrameReader {
            stream,
            decoder: FrameDecoder::new(),
            started: None,
            idle,
        }
    }

    /// The next frame body, or `Closed` at a clean end between frames.
    pub async fn next(&mut self) -> Result<Vec<u8>, WireError> {
        let mut buf = [0u8; 16 * 1024];
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                self.started = (self.decoder.buffered() > 0).then(Instant::now);
                return Ok(frame);
            }
            let deadline = match self.started {
                Some(started) => started + FRAME_DEADLINE,
                None => Instant::now() + self.idle,
            };
            let room = self.decoder.remaining_capacity().min(buf.len()).max(1);
            let read = tokio::time::timeout_at(deadline, self.stream.read(&mut buf[..room])).await;
            let n = match read {
                Err(_) if self.started.is_some() => return Err(WireError::Slow(FRAME_DEADLINE)),
                Err(_) => return Err(WireError::Idle(self.idle)),
                Ok(read) => read?,
            };
            if n == 0 {
                self.decoder.finish()?;
                return Err(WireError::Closed);
            }
            self.decoder.push(buf.get(..n).unwrap_or_default())?;
            if self.started.is_none() {
                self.started = Some(Instant::now());
            }
        }
    }

    /// Changes the silence allowed between frames.
    pub fn set_idle(&mut self, idle: Duration) {
        self.idle = idle;
    }

    /// Whether a complete frame is already buffered (so a reply can wait).
    pub fn has_buffered(&self) -> bool {
        self.decoder.buffered() > 0
    }
}

/// Writes one frame within the write deadline.
pub async fn write_frame(stream: &mut OwnedWriteHalf, body: &[u8]) -> Result<(), WireError> {
    let frame = encode_frame(body)?;
    match tokio::time::timeout(WRITE_DEADLINE, stream.write_all(&frame)).await {
        Err(_) => Err(WireError::Slow(WRITE_DEADLINE)),
        Ok(result) => Ok(result?),
    }
}
