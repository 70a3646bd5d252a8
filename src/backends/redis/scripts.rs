//! The Lua scripts every write, conditional delete and scan of a partition runs: each one
//! atomic on the server, checking the partition's copy of the layout as it goes.

use redis::Script;

/// The server-side scripts, each loaded once per server and then run by its SHA-1.
pub(super) struct Scripts {
    pub(super) write: Script,
    pub(super) delete_if: Script,
    pub(super) scan: Script,
}

impl Scripts {
    pub(super) fn new() -> Self {
        Self {
            write: Script::new(&[CHECK_LAYOUT, CHECK_TYPES, WRITE].concat()),
            delete_if: Script::new(&[CHECK_LAYOUT, CHECK_TYPES, DELETE_IF].concat()),
            scan: Script::new(&[CHECK_LAYOUT, SCAN].concat()),
        }
    }
}

/// Checks that `KEYS[1]` to `KEYS[count]`, copies of the layout in the partitions a script
/// touches, hold `ARGV[1]`, the layout the caller used to find its keys: otherwise the
/// caller's keys may not be where it looks, and the script must stop before it acts.
pub(super) const CHECK_LAYOUT: &str = r"
local function check_layout(count)
  for j = 1, count do
    if redis.call('GET', KEYS[j]) ~= ARGV[1] then
      return redis.error_reply('KVLAYOUT ' .. KEYS[j] .. ' does not hold the layout used')
    end
  end
end
";

/// Checks, before anything is written, that the index and list-record keys of each entry
/// hold what they should (or nothing): Redis does not undo a script's earlier writes when a
/// later command fails, so a type clash must stop the script before its first write.
/// `KEYS[first]`, `KEYS[first + step]`... up to `last` are index keys, each followed by its
/// meta key.
pub(super) const CHECK_TYPES: &str = r"
local function check_types(first, last, step)
  for j = first, last, step do
    local index, meta = redis.call('TYPE', KEYS[j]).ok, redis.call('TYPE', KEYS[j + 1]).ok
    if (index ~= 'zset' and index ~= 'none') or (meta ~= 'hash' and meta ~= 'none') then
      return redis.error_reply('WRONGTYPE ' .. KEYS[j] .. ' or ' .. KEYS[j + 1] ..
        ' holds something other than a kv-binding index')
    end
  end
end
";

/// Clears the partitions named first, then writes entries, all in one atomic step, unless
/// the partitions hold more keys than the budget: then it removes that many and returns 1
/// without writing, and the caller calls again (see [`RedisBackend::write`]).
/// KEYS: the layout copy of each partition touched, the index and meta key of each partition
/// to clear, then index, meta and value key of each entry. ARGV: the layout, how many layout
/// copies, how many partitions to clear, how many keys one call may remove, the value-key
/// prefix of each partition to clear, then key, list record and value record of each entry.
pub(super) const WRITE: &str = r"
local copies, cleared, budget = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local bad = check_layout(copies)
if bad then return bad end
local k, a = copies + 2 * cleared, 4 + cleared
local clash = check_types(copies + 1, k, 2) or check_types(k + 1, #KEYS, 3)
if clash then return clash end
local more = 0
for p = 1, cleared do
  local index, meta = KEYS[copies + 2 * p - 1], KEYS[copies + 2 * p]
  local keys = {}
  if budget > 0 then
    keys = redis.call('ZRANGE', index, 0, budget - 1)
  end
  for _, key in ipairs(keys) do
    redis.call('DEL', ARGV[4 + p] .. key)
  end
  budget = budget - #keys
  if redis.call('ZCARD', index) == #keys then
    redis.call('DEL', index, meta)
  else
    if #keys > 0 then
      redis.call('ZREM', index, unpack(keys))
      redis.call('HDEL', meta, unpack(keys))
    end
    more = 1
  end
end
if more == 1 then
  return 1
end
for j = 1, (#ARGV - a) / 3 do
  local key = ARGV[a + 3 * j - 2]
  redis.call('ZADD', KEYS[k + 3 * j - 2], 0, key)
  redis.call('HSET', KEYS[k + 3 * j - 1], key, ARGV[a + 3 * j - 1])
  redis.call('SET', KEYS[k + 3 * j], ARGV[a + 3 * j])
end
return 0
";

/// Deletes each entry whose list record is still the one given (empty: delete whatever is
/// there). KEYS: the layout copy of each partition touched, then index, meta and value key
/// of each entry. ARGV: the layout, how many layout copies, then key and record of each.
pub(super) const DELETE_IF: &str = r"
local copies = tonumber(ARGV[2])
local bad = check_layout(copies)
if bad then return bad end
local clash = check_types(copies + 1, #KEYS, 3)
if clash then return clash end
for j = 1, (#ARGV - 2) / 2 do
  local key, seen = ARGV[2 * j + 1], ARGV[2 * j + 2]
  local index, meta, value = KEYS[copies + 3 * j - 2], KEYS[copies + 3 * j - 1], KEYS[copies + 3 * j]
  if seen == '' or redis.call('HGET', meta, key) == seen then
    redis.call('ZREM', index, key)
    redis.call('HDEL', meta, key)
    redis.call('DEL', value)
  end
end
return 0
";

/// Up to ARGV[4] keys of a partition from ARGV[3] (a ZRANGEBYLEX bound) on, with their list
/// records. KEYS: the partition's layout copy, index and meta key. ARGV: the layout, 1.
pub(super) const SCAN: &str = r"
local bad = check_layout(1)
if bad then return bad end
local keys = redis.call('ZRANGEBYLEX', KEYS[2], ARGV[3], '+', 'LIMIT', 0, tonumber(ARGV[4]))
if #keys == 0 then return {} end
local records = redis.call('HMGET', KEYS[3], unpack(keys))
local out = {}
for i = 1, #keys do
  out[2 * i - 1] = keys[i]
  out[2 * i] = records[i]
end
return out
";
