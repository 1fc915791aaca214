-- wrk script for the read benchmark: POSTs GraphQL bodies, rotating through the lines of the
-- file named by $BODIES (one JSON request body per line), counts answers that are not a clean
-- GraphQL success (HTTP status other than 200, or an "errors" member), and prints one JSON line
-- with the totals and latency percentiles when done.
--
--   BODIES=bodies.jsonl wrk -t1 -c32 -d10s -s post.lua http://127.0.0.1:PORT/graphql

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

local bodies = {}
local next_body = 1
bad = 0

function init(args)
  local path = os.getenv("BODIES")
  local file = assert(io.open(path, "r"), "cannot open BODIES file " .. tostring(path))
  for line in file:lines() do
    if #line > 0 then
      table.insert(bodies, line)
    end
  end
  file:close()
  assert(#bodies > 0, "BODIES file is empty")
  -- Threads start at different places in the list.
  next_body = (math.random(#bodies) - 1) % #bodies + 1
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["Accept"] = "application/json"
end

function request()
  local body = bodies[next_body]
  next_body = next_body % #bodies + 1
  return wrk.format(nil, nil, nil, body)
end

function response(status, headers, body)
  if status ~= 200 or string.find(body, '"errors"', 1, true) then
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local bad_total = 0
  for _, thread in ipairs(threads) do
    bad_total = bad_total + (thread:get("bad") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests":%d,"duration_us":%d,"bytes":%d,"bad":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},' ..
    '"latency_us":{"mean":%.1f,"stdev":%.1f,"max":%d,"p50":%d,"p90":%d,"p99":%d,"p999":%d}}\n',
    summary.requests, summary.duration, summary.bytes, bad_total,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.stdev, latency.max,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency:percentile(99.9)))
end
