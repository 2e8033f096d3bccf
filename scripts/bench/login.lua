-- wrk: logins cycling through the benchmark's users (bench-0 … bench-N).
local n = tonumber(os.getenv("BENCH_USERS") or "64")
local i = 0
request = function()
  i = i + 1
  local body = "username=bench-" .. (i % n) .. "&password=correct+horse+battery+staple"
  return wrk.format("POST", "/v1/login", {["Content-Type"] = "application/x-www-form-urlencoded"}, body)
end
