-- wrk: each request presents a refresh token not presented before (signed ones of an earlier
-- version, minted by auth-service/examples/mint_tokens.rs), each once: the transition, where
-- every refresh verifies a signature before it signs the new access token. Thread k of n takes
-- every n-th line from k; a thread that runs out stops sending (counted).
local threads = {}
local counter = 0

setup = function(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

init = function()
  failures = 0
  exhausted = 0
  tokens = {}
  local n = tonumber(os.getenv("BENCH_THREADS"))
  local f = assert(io.open(os.getenv("BENCH_TOKENS"), "r"))
  local k = 0
  for line in f:lines() do
    if k % n == id then table.insert(tokens, line) end
    k = k + 1
  end
  f:close()
  next_token = 1
end

request = function()
  local rt = tokens[next_token]
  if rt == nil then
    exhausted = exhausted + 1
    rt = "exhausted"
  end
  next_token = next_token + 1
  return wrk.format("POST", "/v1/token", {["Content-Type"] = "application/x-www-form-urlencoded"},
    "grant_type=refresh_token&refresh_token=" .. rt)
end

response = function(status, headers, body)
  if status ~= 200 then failures = failures + 1 end
end

done = function(summary, latency, requests)
  local f, e = 0, 0
  for _, t in ipairs(threads) do
    f = f + (t:get("failures") or 0)
    e = e + (t:get("exhausted") or 0)
  end
  io.write(string.format("refresh failures: %d\n", f - e))
  io.write(string.format("tokens exhausted: %d\n", e))
end
