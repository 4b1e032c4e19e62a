//! Standard base64 (RFC 4648 section 4: `A-Z a-z 0-9 + /`, `=` padding),
//! strict: every input has exactly one spelling. The decoder refuses a
//! length that is not a multiple of 4, any other byte (white space, line
//! breaks, the URL-safe `-` and `_`), padding anywhere but at the end, more
//! than two `=`, and non-zero bits in the last character before the
//! padding (so `QQ==` is `A`, and `QR==` is refused).

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Why a string is not canonical base64. Indexes count bytes from 0.
#[derive(Clone, Copy, PartialEq, Eq, Debug, thiserror::Error)]
pub enum Base64Error {
    #[error("its length {len} is not a multiple of 4")]
    Length { len: usize },
    #[error("byte {index} is not in the standard base64 alphabet")]
    Char { index: usize },
    #[error("padding at byte {index} is not at the end")]
    Padding { index: usize },
    #[error("the unused low bits of byte {index} are not zero")]
    NonCanonical { index: usize },
}

/// The length of the encoding of `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3).saturating_mul(4)
}

pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    for chunk in bytes.chunks(3) {
        let mut group = 0u32;
        for (i, &b) in chunk.iter().enumerate() {
            group |= u32::from(b) << (16 - 8 * i);
        }
        for i in 0..4 {
            if i <= chunk.len() {
                let sextet = (group >> (18 - 6 * i)) & 0x3f;
                out.push(char::from(ALPHABET[sextet as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn decode(text: &str) -> Result<Vec<u8>, Base64Error> {
    let s = text.as_bytes();
    let rest = s.len() % 4;
    if rest != 0 {
        return Err(Base64Error::Length { len: s.len() });
    }
    let pad = s.iter().rev().take_while(|&&b| b == b'=').count();
    if pad > 2 {
        return Err(Base64Error::Padding {
            index: s.len() - pad,
        });
    }
    let data = s.get(..s.len() - pad).unwrap_or_default();
    let mut out = Vec::with_capacity(s.len() / 4 * 3);
    // Bits read and not yet output, `bits` of them, in the low end of `acc`.
    let (mut acc, mut bits) = (0u32, 0u32);
    for (index, &c) in data.iter().enumerate() {
        let Some(v) = value(c) else {
            return Err(if c == b'=' {
                Base64Error::Padding { index }
            } else {
                Base64Error::Char { index }
            });
        };
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((acc >> bits) & 0xff) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if acc != 0 {
        return Err(Base64Error::NonCanonical {
            index: data.len().saturating_sub(1),
        });
    }
    Ok(out)
}

fn value(c: u8) -> Option<u32> {
    let v = match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => return None,
    };
    Some(u32::from(v))
}
