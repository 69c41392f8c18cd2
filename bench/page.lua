-- A portal page for a logged-in user: GET BENCH_PATH with the session cookie BENCH_COOKIE.
-- Results are printed by common.lua's done() (BENCH_TENANTS names the user's tenant, as for the sends).
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local path = os.getenv("BENCH_PATH") or "/"
local headers = {["Cookie"] = os.getenv("BENCH_COOKIE") or ""}

function request()
  return wrk.format("GET", path, headers)
end
