-- seawall: the time a script decides at, shared by every seawall script (prepended to each at
-- build time, so that each script's SHA is fixed per build). `now_us(arg)`: the caller's time in
-- µs, or the server's TIME when the caller passes "" (so hosts with skewed clocks agree).
local function now_us(arg)
    if arg == '' then
        local t = redis.call('TIME')
        return tonumber(t[1]) * 1000000 + tonumber(t[2])
    end
    return tonumber(arg)
end

