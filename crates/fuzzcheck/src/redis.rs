//! Replies from the rate limits' Redis store (`limit::resp`, `limit::redis::verdict`).

use gatehouse_proxy::limit::redis::verdict;
use gatehouse_proxy::limit::resp::parse;

/// The input is bytes received on the Redis connection.
///
/// Checked: parsing never panics; a reply takes at least one byte and no more than were given;
/// it parses the same from exactly its own bytes; every shorter prefix asks for more bytes
/// (never an error, never another reply), so a reply split across reads is read whole; reading
/// the script's verdict from any reply never panics.
pub fn redis_reply(data: &[u8]) {
    let Ok(Some((reply, used))) = parse(data) else {
        return;
    };
    assert!(used > 0 && used <= data.len(), "{used} of {}", data.len());
    assert_eq!(parse(&data[..used]), Ok(Some((reply.clone(), used))));
    if used <= 4096 {
        for cut in 0..used {
            assert_eq!(parse(&data[..cut]), Ok(None), "prefix of {cut} bytes");
        }
    }
    let _ = verdict(&reply);
}
