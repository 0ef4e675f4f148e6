//! The Lua scripts: each check-and-write of the protocol is one script, so
//! it is atomic on the server. Every script's keys belong to one connection
//! and share a hash tag, so they live in one slot (Redis Cluster).
//!
//! A lease is the string `owner#fence` in the lease key, with a PX expiry;
//! comparing the whole string makes a lease unique even when one owner
//! takes the key's lease twice.

use std::sync::LazyLock;

use redis::Script;

/// KEYS: lease, fence counter, state. ARGV: owner, ttl in ms.
/// Returns `{1, fence}` (taken) or `{0, pttl}` (held).
pub(crate) static TRY_LEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local pttl = redis.call('PTTL', KEYS[1])
if pttl ~= -2 then return {0, pttl} end
local fence = redis.call('INCR', KEYS[2])
-- The counter may have been evicted while a published state survived: a
-- new fence must still be above that state's version.
local version = tonumber(redis.call('HGET', KEYS[3], 'v') or '0') or 0
if fence <= version then
  fence = version + 1
  redis.call('SET', KEYS[2], fence)
end
redis.call('SET', KEYS[1], ARGV[1] .. '#' .. fence, 'NX', 'PX', ARGV[2])
return {1, fence}
",
    )
});

/// KEYS: lease. ARGV: lease value, ttl in ms. Returns 1 when extended.
pub(crate) static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// KEYS: lease. ARGV: lease value, channel. Returns 1 when released.
pub(crate) static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', ARGV[2], 'released')
  return 1
end
return 0
",
    )
});

/// KEYS: lease, state. ARGV: lease value, fence, sealed state, ttl in ms,
/// channel. Returns 1 when written.
pub(crate) static PUBLISH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local version = tonumber(redis.call('HGET', KEYS[2], 'v') or '0') or 0
if version >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[2], 'v', ARGV[2], 'd', ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PUBLISH', ARGV[5], ARGV[2])
return 1
",
    )
});

/// KEYS: refresh token. ARGV: the generation read, the sealed new token
/// ('' removes it). Returns 1 when written, 0 when the generation moved on.
///
/// Values are encrypted with random nonces, so the server cannot compare
/// tokens: the client compares the plaintext it read, and the script
/// checks that nothing was written since (the generation `g` grows with
/// every write, and survives a removal).
pub(crate) static CAS_REFRESH: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local gen = tonumber(redis.call('HGET', KEYS[1], 'g') or '0') or 0
if gen ~= tonumber(ARGV[1]) then return 0 end
if ARGV[2] == '' then
  redis.call('HDEL', KEYS[1], 'd')
else
  redis.call('HSET', KEYS[1], 'd', ARGV[2])
end
redis.call('HSET', KEYS[1], 'g', gen + 1)
return 1
",
    )
});
