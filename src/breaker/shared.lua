-- seawall: one circuit breaker's state shared by every process that names it.
--
-- Each process sends what its own breaker saw since its last call; this script adds it to the
-- shared counts and decides whether the breaker is open for everyone, on the server's clock.
-- KEYS[1]: a hash: "consec" (failures in a row across processes), "until" (µs, open until),
--          and one field per second of the window, "b<second>" = "calls failures slow".
-- ARGV: now µs ("" for TIME), calls, failures, slow, trailing failures, success seen (0/1),
--       opened for µs (0: did not open), closed by its probes (0/1), failure_threshold,
--       failure rate threshold (-1: none), slow rate threshold (-1: none), minimum calls,
--       window µs, recovery µs.
-- Returns: µs it stays open for everyone (0: closed), failures in a row, calls and failures in
--          the window.

local key = KEYS[1]
local now = now_us(ARGV[1]) -- src/store/redis/now.lua, prepended
local calls, failures, slow = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local trailing, success = tonumber(ARGV[5]), ARGV[6] == '1'
local opened_for, closed = tonumber(ARGV[7]), ARGV[8] == '1'
local threshold, fail_rate, slow_rate = tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])
local minimum, window, recovery = tonumber(ARGV[12]), tonumber(ARGV[13]), tonumber(ARGV[14])

local function fmt(x) return string.format('%.0f', x) end

local function clear_buckets()
    for _, f in ipairs(redis.call('HKEYS', key)) do
        if string.sub(f, 1, 1) == 'b' then redis.call('HDEL', key, f) end
    end
end

local consec = tonumber(redis.call('HGET', key, 'consec') or '0')
local open_until = tonumber(redis.call('HGET', key, 'until') or '0')
local second = math.floor(now / 1000000)
local oldest = second - math.floor(window / 1000000) + 1

if closed and open_until <= now then
    -- A process's probes closed it: everyone starts afresh, as a closed breaker does.
    clear_buckets()
    consec = 0
end

if success then consec = trailing else consec = consec + failures end

if calls > 0 then
    local field = 'b' .. fmt(second)
    local c, f, s = 0, 0, 0
    local raw = redis.call('HGET', key, field)
    if raw then
        local a, b, d = string.match(raw, '^(%d+) (%d+) (%d+)$')
        c, f, s = tonumber(a), tonumber(b), tonumber(d)
    end
    redis.call('HSET', key, field, fmt(c + calls) .. ' ' .. fmt(f + failures) .. ' ' .. fmt(s + slow))
end

local total, failed, slowed = 0, 0, 0
for _, f in ipairs(redis.call('HKEYS', key)) do
    if string.sub(f, 1, 1) == 'b' then
        local sec = tonumber(string.sub(f, 2))
        if sec < oldest then
            redis.call('HDEL', key, f)
        else
            local a, b, d = string.match(redis.call('HGET', key, f), '^(%d+) (%d+) (%d+)$')
            total, failed, slowed = total + tonumber(a), failed + tonumber(b), slowed + tonumber(d)
        end
    end
end

if opened_for > 0 then
    -- A process's breaker opened on its own: open for everyone, and the counts start afresh.
    open_until = math.max(open_until, now + opened_for)
    consec = 0
    clear_buckets()
    total, failed = 0, 0
end
if open_until <= now then
    local trip = consec >= threshold
    if not trip and total >= minimum then
        trip = (fail_rate >= 0 and failed >= fail_rate * total)
            or (slow_rate >= 0 and slowed >= slow_rate * total)
    end
    if trip then
        open_until = now + recovery
        consec = 0
        clear_buckets()
        total, failed = 0, 0
    end
end

redis.call('HSET', key, 'consec', fmt(consec), 'until', fmt(open_until))
local keep = math.max(window, open_until - now) + 1000000
redis.call('PEXPIRE', key, math.ceil(keep / 1000))
return { math.max(open_until - now, 0), consec, total, failed }
