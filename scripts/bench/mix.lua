-- wrk: a token mix. Every request is formatted once, in init(), before anything is measured:
-- request() only hands out the next prepared string, so the load generator does the same small
-- work per request in every mix and for every contender.
-- args: <tokens file> <how many tokens> <rr | zipf>
--   rr:   the tokens in turn (each thread from its own offset)
--   zipf: ranks drawn from a Zipf distribution with exponent 1.0 over the tokens (token i has
--         rank i), a sequence of 2^20 draws prepared per thread with a fixed seed
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local file, want, mode = args[1], tonumber(args[2]), args[3]
  local reqs, n = {}, 0
  for line in io.lines(file) do
    if n >= want then break end
    n = n + 1
    reqs[n] = wrk.format("GET", "/x", { ["Authorization"] = "Bearer " .. line })
  end
  if n < want then error("mix.lua: " .. file .. " holds " .. n .. " tokens, " .. want .. " wanted") end
  local id = tid or 0
  if mode == "zipf" then
    local cdf, total = {}, 0
    for r = 1, n do
      total = total + 1 / r
      cdf[r] = total
    end
    math.randomseed(1000 + id)
    seq = {}
    for k = 1, 1048576 do
      local u = math.random() * total
      local lo, hi = 1, n
      while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] < u then lo = mid + 1 else hi = mid end
      end
      seq[k] = reqs[lo]
    end
  else
    seq = reqs
  end
  len = #seq
  pos = (id * 7919) % len
end

function request()
  pos = pos + 1
  if pos > len then pos = 1 end
  return seq[pos]
end
