-- wrk: a light latency probe (about 100 requests/s per connection), so measuring /healthz does
-- not itself load the service.
delay = function()
  return 10
end
