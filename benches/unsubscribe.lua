-- wrk script for benches/unsubscribe.sh: one-click unsubscribe POSTs
-- (RFC 8058: `List-Unsubscribe=One-Click`, urlencoded).
--
--   wrk -s benches/unsubscribe.lua URL                  POST to the URL's token
--   wrk -s benches/unsubscribe.lua URL -- tokens.txt    POST round-robin over the
--                                                       tokens in the file
--   wrk -s benches/unsubscribe.lua URL -- get           plain GETs (reference)
--
-- Ends with one line: RESULT requests/s=... p50=...ms p99=...ms requests=... errors=...
-- (errors counts non-2xx/3xx answers and socket errors).

local threads = {}
local tokens = nil
local i = 0

function setup(thread)
  thread:set("id", #threads)
  table.insert(threads, thread)
end

function init(args)
  if args[1] ~= "get" then
    wrk.method = "POST"
    wrk.body = "List-Unsubscribe=One-Click"
    wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  end
  if args[1] and args[1] ~= "get" then
    tokens = {}
    for line in io.lines(args[1]) do
      tokens[#tokens + 1] = line
    end
    -- Threads start at different tokens, so the first pass writes each once.
    i = math.floor(id * #tokens / 2)
  end
end

function request()
  if tokens then
    i = i % #tokens + 1
    return wrk.format(nil, "/unsubscribe/" .. tokens[i])
  end
  return wrk.format()
end

function done(summary, latency, requests)
  local e = summary.errors
  local errors = e.status + e.connect + e.read + e.write + e.timeout
  io.write(string.format("RESULT requests/s=%.0f p50=%.2fms p99=%.2fms requests=%d errors=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.requests, errors))
end
