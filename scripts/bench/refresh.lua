-- wrk: a closed refresh loop per thread (one connection each): every response's new refresh
-- token is used for the next request, as a real client must (rotation).
local threads = {}
local counter = 0

setup = function(thread)
  counter = counter + 1
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
  local k = 0
  for line in f:lines() do
    k = k + 1
    if k == counter then thread:set("rt", line) end
  end
  f:close()
  table.insert(threads, thread)
end

init = function()
  failures = 0
end

request = function()
  return wrk.format("POST", "/v1/token", {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. rt)
end

response = function(status, headers, body)
  if status == 200 then
    rt = string.match(body, '"refresh_token":"([^"]+)"')
  else
    failures = failures + 1
  end
end

done = function(summary, latency, requests)
  local f = 0
  for _, t in ipairs(threads) do f = f + (t:get("failures") or 0) end
  io.write(string.format("refresh failures: %d\n", f))
end
