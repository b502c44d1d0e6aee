-- wrk / wrk2 script: replays pre-generated requests (`accessbot loadgen payloads`), each thread
-- its own contiguous slice of the file, so no request is sent twice unless a thread runs past
-- the end of its slice (then it starts its slice again and `wrapped` says so: new events turn
-- into repeats, and the figure is no longer "new events only").
--
-- File: one request per line, tab-separated: path-and-query, body, header name, header value, ...
-- Set PAYLOADS to the file and THREADS to wrk's -t. Requests are formatted once at thread
-- start, not per request; wrk itself counts non-2xx answers (a `response` hook would slow it).
local file = os.getenv("PAYLOADS") or error("set PAYLOADS to a payload file")
local nthreads = tonumber(os.getenv("THREADS") or "1")
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local function split(line)
  local out = {}
  for field in (line .. "\t"):gmatch("([^\t]*)\t") do
    table.insert(out, field)
  end
  return out
end

local reqs, n, i = {}, 0, 0
wraps = 0

function init(args)
  local total = 0
  for _ in io.lines(file) do total = total + 1 end
  local per = math.floor(total / nthreads)
  local first, last = tid * per + 1, (tid + 1) * per
  local k = 0
  for line in io.lines(file) do
    k = k + 1
    if k >= first and k <= last then
      local f = split(line)
      local headers = {}
      for h = 3, #f - 1, 2 do headers[f[h]] = f[h + 1] end
      n = n + 1
      reqs[n] = wrk.format("POST", f[1], headers, f[2])
    elseif k > last then
      break
    end
  end
  if n == 0 then error("no requests for thread " .. tid) end
end

function request()
  i = i + 1
  if i > n then
    i = 1
    wraps = wraps + 1
  end
  return reqs[i]
end

function done(summary, latency, requests)
  local w = 0
  for _, t in ipairs(threads) do
    w = w + (t:get("wraps") or 0)
  end
  io.write(string.format("replay: slice restarts %d\n", w))
end
