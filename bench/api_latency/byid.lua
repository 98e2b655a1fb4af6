-- wrk script for `GET /api/v1/runs/{id}`: each request asks for a run picked at random
-- from the ids in $IDS_FILE (one a line), with the bearer token in $TOKEN.
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do
  ids[#ids + 1] = line
end
local headers = { ["Authorization"] = "Bearer " .. os.getenv("TOKEN") }

function init(args)
  math.randomseed(os.time() + #tostring({}))
end

function request()
  return wrk.format("GET", "/api/v1/runs/" .. ids[math.random(#ids)], headers)
end
