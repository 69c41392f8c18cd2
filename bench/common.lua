-- Shared by new.lua and chat.lua (wrk scripts).
--
-- Every request is a Cloud API text send:
--   POST /v23.0/{phone_number_id}/messages  Authorization: Bearer <key>
-- The senders come from BENCH_TENANTS ("key:phone_number_id,key:phone_number_id,...")
-- and are taken round robin, one per request. The including script defines
-- recipient(n), the n-th recipient of this wrk thread. BENCH_RUN numbers the
-- wrk invocation so that recipients stay unique across invocations.
--
-- done() prints one line, "BENCH_RESULT {json}", with the request count,
-- duration, latency percentiles, the count of each HTTP status and wrk's
-- socket errors.

local senders = {}
for key, number in string.gmatch(os.getenv("BENCH_TENANTS") or "", "([^,:]+):([^,]+)") do
  senders[#senders + 1] = {
    path = "/v23.0/" .. number .. "/messages",
    headers = {["Authorization"] = "Bearer " .. key, ["Content-Type"] = "application/json"},
  }
end
if #senders == 0 then
  error("BENCH_TENANTS names no key:phone_number_id pair")
end

run_id = tonumber(os.getenv("BENCH_RUN") or "0") % 1000
tid = 0            -- set per thread by setup()
statuses = {}      -- HTTP status -> count, per thread

local threads = {}
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  threads[#threads + 1] = thread
end

local sent = 0

function request()
  local sender = senders[sent % #senders + 1]
  local to = recipient(math.floor(sent / #senders))
  sent = sent + 1
  local body = '{"messaging_product":"whatsapp","to":"' .. to ..
               '","type":"text","text":{"body":"bench"}}'
  return wrk.format("POST", sender.path, sender.headers, body)
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local merged = {}
  for _, thread in ipairs(threads) do
    for code, n in pairs(thread:get("statuses") or {}) do
      merged[code] = (merged[code] or 0) + n
    end
  end
  local parts = {}
  for code, n in pairs(merged) do
    parts[#parts + 1] = string.format('"%d":%d', code, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,' ..
    '"statuses":{%s},"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, summary.duration,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max,
    table.concat(parts, ","), e.connect, e.read, e.write, e.timeout, e.status))
end
