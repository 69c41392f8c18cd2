-- WhatsApp's webhook at /webhooks/whatsapp: pre-signed notifications, 100 statuses each.
--
-- BENCH_BODIES names a file written by run.py, one notification a line:
-- "<X-Hub-Signature-256 value>\t<JSON body>". Signing happens in Python
-- beforehand; each wrk thread cycles through the bodies from its own offset.
-- Results are printed by common.lua's done().
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "common.lua")

local bodies = {}
for line in io.lines(os.getenv("BENCH_BODIES")) do
  local signature, body = line:match("^([^\t]+)\t(.*)$")
  bodies[#bodies + 1] = {signature = signature, body = body}
end
if #bodies == 0 then
  error("BENCH_BODIES holds no signed notification")
end

local posted = 0

function request()
  local item = bodies[(posted + tid * 97) % #bodies + 1]
  posted = posted + 1
  return wrk.format("POST", "/webhooks/whatsapp",
                    {["Content-Type"] = "application/json", ["X-Hub-Signature-256"] = item.signature}, item.body)
end

-- BENCH_DELAY_MS paces each connection (a steady rate rather than as fast as the server answers).
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "0")
if pause > 0 then
  function delay()
    return pause
  end
end
