-- seawall: decisions for the limits of keys, each all or nothing, run atomically in Redis.
--
-- The same transitions as src/algorithm/, in integer microseconds (Lua numbers are doubles, exact
-- up to 2^53; the Rust side refuses limits whose arithmetic would go past that). Time is the
-- server's TIME unless the caller passes its own (a test's manual clock), so hosts with skewed
-- clocks agree. One call may carry several decisions (a client's pipeline of concurrent
-- requests): they are made in order, as separate calls would be, for the cost of one.
--
-- ARGV: number of decisions, now in µs ("" for TIME), then per decision: commit ("1" hit, "0"
--       test), cost, number of limits, then four values per limit: kind ("b" bucket, "f" fixed
--       window, "l" sliding log, "c" sliding counter) and its parameters:
--         b: capacity, num, unit   (a token is `unit` units; one µs refills `num` units)
--         f, l, c: limit, window in µs, unused
-- KEYS: per decision, one per limit, in order; a sliding log has a second key (its running
--       total) right after its own. The keys of one decision share a hash tag (Redis Cluster).
-- Returns per decision: allowed (0/1), limit, remaining, reset_after µs, retry_after µs (-1:
--          never), index of the binding limit (from 0), its reset_after µs, now µs.
-- Every key written expires when its state is back to fresh.

-- This file only defines `decide_batch(keys, argv)`; the Rust side appends what calls it:
-- `return decide_batch(KEYS, ARGV)` for EVAL / EVALSHA (src/store/redis/script.rs), or its
-- registration as a Redis 7 function (src/store/redis/invoke.rs: FUNCTION LOAD once, then
-- FCALL), so that the local functions below are made once per load rather than on every call.
-- Nothing here touches a global before a call (a library is loaded without `math` or `struct`
-- in reach); the first call sets the library functions below, and each call the rest of the
-- upvalues before they are read.

-- The call's KEYS and ARGV, and the time it decides at.
local keys, argv, now
-- The decision being made: its first ARGV and KEYS, and what it asks.
local a0, k0 = 3, 1
local commit, cost, count = false, 0, 0
local NEVER = -1

-- State is kept as packed doubles (Redis's bundled `struct` library): exact for these integers,
-- and cheaper than decimal text both ways.
local pack, unpack
-- The library functions the script calls, as upvalues: a function loaded once then finds them
-- without a global lookup on every use (0.2 µs of 5.3 per decision).
local floor, max, min, fmod, rcall, tonum

-- Exact floor(a / b) and ceil(a / b) for integers 0 <= a < 2^53, b >= 1.
local function floordiv(a, b)
    local q = floor(a / b)
    if q * b > a then
        q = q - 1
    elseif (q + 1) * b <= a then
        q = q + 1
    end
    return q
end

local function ceildiv(a, b)
    local q = floordiv(a, b)
    if q * b < a then
        q = q + 1
    end
    return q
end

local function expire_in(key, us)
    -- PEXPIRE takes whole milliseconds: round up, so a key never outlives its state by less.
    rcall('PEXPIRE', key, max(1, ceildiv(us, 1000)))
end

local function window_start(w)
    return now - fmod(now, w)
end

-- GCRA, token bucket, leaky bucket (src/algorithm/token_bucket.rs). State "deficit at": units
-- missing from a full bucket at µs `at`.
local function bucket(key, cap, num, unit, write)
    local d = 0
    local raw = rcall('GET', key)
    if raw then
        local at
        d, at = unpack('dd', raw)
        local elapsed = now - at
        if elapsed < 0 then
            d = d - elapsed * num -- time went backwards: nothing extra is granted
        elseif elapsed >= d or elapsed * num >= d then
            d = 0
        else
            d = d - elapsed * num
        end
    end
    local capu = cap * unit
    local need = cost * unit
    local allowed = d + need <= capu
    if allowed and write then
        d = d + need
        local full_in = ceildiv(d, num)
        rcall('SET', key, pack('dd', d, now), 'PX', max(1, ceildiv(full_in, 1000)))
    end
    local retry = 0
    if not allowed then
        if need > capu then
            retry = NEVER
        else
            retry = ceildiv(d + need - capu, num)
        end
    end
    return allowed, cap, floordiv(capu - min(d, capu), unit), ceildiv(d, num), retry
end

-- Fixed window (src/algorithm/fixed_window.rs). State "start count".
local function fixed(key, limit, w, write)
    local start = window_start(w)
    local n = 0
    local raw = rcall('GET', key)
    if raw then
        local ss, sn = unpack('dd', raw)
        if not (start > ss) then
            start, n = ss, sn
        end
    end
    local allowed = cost <= limit - min(n, limit)
    local ends = start + w
    if allowed and write then
        n = n + cost
        rcall('SET', key, pack('dd', start, n), 'PX', max(1, ceildiv(max(ends - now, 1), 1000)))
    end
    local retry = 0
    if not allowed then
        if cost > limit then retry = NEVER else retry = max(ends - now, 0) end
    end
    local reset = 0
    if n > 0 then reset = max(ends - now, 0) end
    return allowed, limit, limit - min(n, limit), reset, retry
end

-- Sliding window counter (src/algorithm/sliding_counter.rs). State "start current previous".
local function counter(key, limit, w, write)
    local start = window_start(w)
    local s, cur, prev = start, 0, 0
    local raw = rcall('GET', key)
    if raw then
        local ss, sc, sp = unpack('ddd', raw)
        if start <= ss then
            s, cur, prev = ss, sc, sp
        elseif start == ss + w then
            prev = sc
        end
    end
    local elapsed = min(max(now - s, 0), w - 1)
    local capacity = limit * w
    local function weighted(p, c)
        return p * (w - elapsed) + c * w
    end
    local allowed = weighted(prev, cur + cost) <= capacity
    if allowed and write then
        cur = cur + cost
    end
    local fresh_at = now
    if cur > 0 then
        fresh_at = s + 2 * w
    elseif prev > 0 then
        fresh_at = s + w
    end
    if allowed and write then
        rcall('SET', key, pack('ddd', s, cur, prev), 'PX',
            max(1, ceildiv(max(fresh_at - now, 1), 1000)))
    end
    local retry = 0
    if not allowed then
        if cost > limit then
            retry = NEVER
        else
            local function at(st, p, c)
                local room = limit - c - cost
                if room < 0 then return nil end
                if p == 0 then return st end
                local keep = floordiv(room * w, p)
                if keep >= w then return st end
                return st + (w - keep)
            end
            local when = at(s, prev, cur) or at(s + w, cur, 0) or (s + 2 * w)
            retry = max(when - now, 0)
        end
    end
    local remaining = floordiv(max(capacity - weighted(prev, cur), 0), w)
    return allowed, limit, remaining, max(fresh_at - now, 0), retry
end

-- Sliding window log (src/algorithm/sliding_log.rs). A list of "at cost" entries, oldest first,
-- and its running total in a second key.
-- It decides at `at`: now, or the newest entry's time if the clock has gone back since, so that
-- entries stay in time order and a clock that goes back grants nothing; waits count from now.
local function log(key, total_key, limit, w, write)
    local raw_total = rcall('GET', total_key)
    local total = 0
    if raw_total then total = unpack('d', raw_total) end
    local at = now
    local newest_entry = rcall('LINDEX', key, -1)
    if newest_entry then at = max(unpack('dd', newest_entry), now) end
    -- Expired entries leave from the front; without `write` (a test, or the first pass of an
    -- all-or-nothing decision) they are only skipped, so that asking changes nothing.
    local expired, skip = false, 0
    while true do
        local e = rcall('LINDEX', key, skip)
        if not e then break end
        local sat, sc = unpack('dd', e)
        if sat + w > at then break end
        if write then rcall('LPOP', key) else skip = skip + 1 end
        total = total - sc
        expired = true
    end
    local allowed = cost <= limit - min(total, limit)
    local changed = expired and write
    if allowed and write then
        local last = rcall('LINDEX', key, -1)
        local lat, lc = nil, nil
        if last then lat, lc = unpack('dd', last) end
        if lat == at then
            rcall('LSET', key, -1, pack('dd', at, lc + cost))
        else
            rcall('RPUSH', key, pack('dd', at, cost))
        end
        total = total + cost
        changed = true
    end
    local newest = rcall('LINDEX', key, -1)
    local fresh_at = now
    if newest then
        fresh_at = max(unpack('dd', newest) + w, now)
    end
    if changed then
        if total > 0 then
            rcall('SET', total_key, pack('d', total))
            expire_in(key, max(fresh_at - now, 1))
            expire_in(total_key, max(fresh_at - now, 1))
        else
            rcall('DEL', key, total_key)
        end
    end
    local retry = 0
    if not allowed then
        if cost > limit then
            retry = NEVER
        else
            local need = total + cost - limit
            local freed, leave, i = 0, now, skip
            while freed < need do
                local chunk = rcall('LRANGE', key, i, i + 63)
                if #chunk == 0 then break end
                for _, e in ipairs(chunk) do
                    local sat, sc = unpack('dd', e)
                    freed = freed + sc
                    leave = sat + w
                    if freed >= need then break end
                end
                i = i + 64
            end
            retry = max(leave - now, 0)
        end
    end
    return allowed, limit, limit - min(total, limit), max(fresh_at - now, 0), retry
end

-- The limit at ARGV `base` on the keys from `k`: its five values, then the key after its keys.
local function limit_at(base, k, write)
    local kind = argv[base]
    local a, b, c = tonum(argv[base + 1]), tonum(argv[base + 2]), tonum(argv[base + 3])
    if kind == 'b' then
        local ok, lim, rem, reset, retry = bucket(keys[k], a, b, c, write)
        return ok, lim, rem, reset, retry, k + 1
    elseif kind == 'f' then
        local ok, lim, rem, reset, retry = fixed(keys[k], a, b, write)
        return ok, lim, rem, reset, retry, k + 1
    elseif kind == 'c' then
        local ok, lim, rem, reset, retry = counter(keys[k], a, b, write)
        return ok, lim, rem, reset, retry, k + 1
    elseif kind == 'l' then
        local ok, lim, rem, reset, retry = log(keys[k], keys[k + 1], a, b, write)
        return ok, lim, rem, reset, retry, k + 2
    end
    return nil, 'seawall: unknown limit kind ' .. tostring(kind)
end

local function run(write)
    local out = {}
    local k = k0
    for i = 0, count - 1 do
        local ok, lim, rem, reset, retry, next_k = limit_at(a0 + 3 + i * 4, k, write)
        if ok == nil then return nil, lim end
        out[i + 1] = { ok, lim, rem, reset, retry }
        k = next_k
    end
    return out, k - k0
end

-- The binding limit's wait: a limit that never admits waits longest.
local function wait(d)
    if d[5] == NEVER then return math.huge end
    return d[5]
end

local function decide()
    if count == 1 then
        -- One limit (the common case): it counts the request only if it admits it, and binds.
        local ok, lim, rem, reset, retry, next_k = limit_at(a0 + 3, k0, commit)
        if ok == nil then return nil, lim end
        if ok then retry = 0 end
        return { ok and 1 or 0, lim, rem, max(reset, 0), retry, 0, reset, now }, next_k - k0
    end
    -- First ask every limit; only if all admit does any of them count it
    -- (src/limiter/tiered.rs). One limit needs no asking first: it counts the request only if
    -- it admits it.
    local decisions, used = run(commit and count == 1)
    if not decisions then return nil, used end
    local all = true
    for _, d in ipairs(decisions) do
        all = all and d[1]
    end
    if all and commit and count > 1 then
        decisions = run(true)
    end
    -- The binding limit: when admitted, the first with the fewest left; when denied, the last
    -- of the denying limits with the longest wait (as Rust's min_by_key / max_by_key choose).
    local binding = nil
    for i, d in ipairs(decisions) do
        if all then
            if binding == nil or d[3] < decisions[binding][3] then binding = i end
        elseif not d[1] then
            if binding == nil or wait(d) >= wait(decisions[binding]) then binding = i end
        end
    end
    local b = decisions[binding]
    local remaining = b[3]
    local reset = 0
    for _, d in ipairs(decisions) do
        if not all then remaining = min(remaining, d[3]) end
        reset = max(reset, d[4])
    end
    local retry = 0
    if not all then retry = b[5] end
    local allowed = 0
    if all then allowed = 1 end
    return { allowed, b[2], remaining, reset, retry, binding - 1, b[4], now }, used
end

-- Every decision of one call, in order.
local function decide_batch(call_keys, call_argv)
    keys, argv = call_keys, call_argv
    if not pack then
        pack, unpack = struct.pack, struct.unpack
        floor, max, min, fmod = math.floor, math.max, math.min, math.fmod
        rcall, tonum = redis.call, tonumber
    end
    local batch = tonum(argv[1])
    now = now_us(argv[2]) -- now.lua, prepended
    a0, k0 = 3, 1
    local replies = {}
    for j = 1, batch do
        commit = argv[a0] == '1'
        cost = tonum(argv[a0 + 1])
        count = tonum(argv[a0 + 2])
        local reply, used = decide()
        if not reply then return redis.error_reply(used) end
        replies[j] = reply
        k0 = k0 + used
        a0 = a0 + 3 + 4 * count
    end
    return replies
end
