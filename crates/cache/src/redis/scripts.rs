//! The Lua scripts. Each touches exactly one key, so each is atomic on a single node and
//! valid in a Redis Cluster whatever the key (a script's keys must share a slot).
//!
//! Redis runs Lua 5.1, whose numbers are doubles: counts and milliseconds stay far below
//! 2^53, so nothing here loses precision.

use redis::Script;
use std::sync::LazyLock;

/// Atomic increment with expiry, the guide's `atomicIncrement` done right: `INCR`, and
/// `PEXPIRE` when the key has no expiry yet (its first hit, or a key that somehow lost its
/// TTL, which would otherwise count forever). Returns `{count, milliseconds left}`.
///
/// KEYS[1] counter · ARGV[1] window in ms.
pub(crate) static INCR_WITH_EXPIRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local n = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {n, ttl}
",
    )
});

/// Extends a lock only if it is still held with our token. Returns 1 or 0.
///
/// KEYS[1] lock · ARGV[1] token · ARGV[2] ttl in ms.
pub(crate) static RENEW_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
",
    )
});

/// Compare-and-delete: releases a lock only if it is still held with our token. Returns 1
/// or 0.
///
/// KEYS[1] lock · ARGV[1] token.
pub(crate) static RELEASE_LOCK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
",
    )
});

/// Registers this process in the fleet of API processes and counts the live ones: a sorted
/// set scored by last heartbeat, trimmed of members silent for longer than the horizon.
/// Returns the number of live members.
///
/// KEYS[1] fleet set · ARGV[1] member · ARGV[2] now in ms · ARGV[3] horizon in ms.
pub(crate) static FLEET_HEARTBEAT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local now = tonumber(ARGV[2])
local horizon = tonumber(ARGV[3])
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - horizon)
redis.call('PEXPIRE', KEYS[1], horizon * 2)
return redis.call('ZCARD', KEYS[1])
",
    )
});
