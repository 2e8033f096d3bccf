-- wrk: client-credentials grants of one confidential client (HTTP Basic), each answered with a
-- newly signed access token. BENCH_CLIENT_ID and BENCH_CLIENT_SECRET name the client.
local mime = "client_id=" .. os.getenv("BENCH_CLIENT_ID")
local function b64(data)
  local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  return ((data:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#data % 3 + 1])
end
local basic = "Basic " .. b64(os.getenv("BENCH_CLIENT_ID") .. ":" .. os.getenv("BENCH_CLIENT_SECRET"))
wrk.method = "POST"
wrk.path = "/v1/token"
wrk.body = "grant_type=client_credentials"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = basic
mime = nil
