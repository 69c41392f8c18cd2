-- Every send goes to a recipient not written to before: 13 digits made of
-- the run id, the wrk thread and a per-thread counter.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

function recipient(n)
  return string.format("4%03d%d%08d", run_id, tid, n)
end
