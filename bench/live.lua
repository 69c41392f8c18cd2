-- Sends from a live number: every send to a contact not written to before in
-- this run whose customer-service window run.py opened beforehand.
--
-- The contact is 13 digits: "48", the run id, the wrk thread and a per-thread
-- counter below BENCH_CONTACTS (run.py seeds that many windows per thread and
-- run; a thread that sends more starts over, joining the conversations it opened).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local contacts = tonumber(os.getenv("BENCH_CONTACTS") or "0")
if contacts < 1 or contacts > 9999999 then
  error("BENCH_CONTACTS must be between 1 and 9999999")
end

function recipient(n)
  return string.format("48%03d%d%07d", run_id, tid, n % contacts)
end
