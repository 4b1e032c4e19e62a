//! Length-delimited framing: a 4-byte big-endian length, then that many bytes
//! of JSON. The reader enforces the size cap before allocating anything, so a
//! hostile length costs nothing.
//!
//! This module knows bytes only; what the JSON means is in `wire`.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What went wrong reading or writing a frame.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended cleanly between frames.
    #[error("connection closed")]
    Closed,
    /// The stream ended inside a frame.
    #[error("connection closed in the middle of a frame ({got} of {want} bytes)")]
    Truncated { got: usize, want: usize },
    /// The length prefix is over the cap; the body was not read.
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    Oversize { len: u32, max: u32 },
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame body. Cancel-safe only between frames: callers that race it
/// against other futures must not drop it mid-frame (the broker and client
/// read from one dedicated task each, so they never do).
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u32,
) -> Result<Vec<u8>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        let n = reader.read(&mut prefix[got..]).await?;
        if n == 0 {
            return Err(if got == 0 {
                FrameError::Closed
            } else {
                FrameError::Truncated { got, want: 4 }
            });
        }
        got += n;
    }
    let len = u32::from_be_bytes(prefix);
    if len > max {
        return Err(FrameError::Oversize { len, max });
    }
    let want = len as usize;
    let mut body = vec![0u8; want];
    let mut got = 0;
    while got < want {
        let n = reader.read(&mut body[got..]).await?;
        if n == 0 {
            return Err(FrameError::Truncated { got, want });
        }
        got += n;
    }
    Ok(body)
}

/// Encodes `body` as one frame (prefix and body in one buffer, one write).
pub fn encode_frame(body: &[u8]) -> Result<Vec<u8>, FrameError> {
    let len = u32::try_from(body.len()).map_err(|_| FrameError::Oversize {
        len: u32::MAX,
        max: u32::MAX,
    })?;
    let mut out = Vec::with_capacity(body.len() + 4);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// Writes one frame, refusing bodies over `max`.
pub async fn write_frame<W: AsyncWrite + Unpin>(
    writer: &mut W,
    body: &[u8],
    max: u32,
) -> Result<(), FrameError> {
    let len = u32::try_from(body.len()).unwrap_or(u32::MAX);
    if len > max {
        return Err(FrameError::Oversize { len, max });
    }
    writer.write_all(&encode_frame(body)?).await?;
    Ok(())
}
