-- wrk script: POST Alertmanager webhook messages with one alert each.
--
-- Environment, set by bench/ingest.py:
--   BENCH_TEMPLATE     file holding one message with @SERVICE@, @INSTANCE@
--                      and @FREE@ where the disk and its free_percent go
--   BENCH_PATH         request path
--   BENCH_TOKEN_FILE   optional file holding a bearer token
--   BENCH_NEW_PERCENT  share of messages for a disk not seen before; the
--                      rest repeat a random earlier disk of the same thread
--   BENCH_OUT          file that receives the figures as one JSON object
--
-- A repeat carries free_percent 15.00 or 15.10 at random, so about half of
-- the repeats change the annotations the bridge stores and the other half
-- change nothing.

local next_thread = 1

function setup(thread)
  thread:set("thread_id", next_thread)
  next_thread = next_thread + 1
end

local function read_file(path)
  local handle = assert(io.open(path, "r"))
  local text = handle:read("*a")
  handle:close()
  return text
end

function init(args)
  template = read_file(os.getenv("BENCH_TEMPLATE"))
  path = os.getenv("BENCH_PATH")
  new_percent = tonumber(os.getenv("BENCH_NEW_PERCENT"))
  headers = { ["Content-Type"] = "application/json" }
  local token_file = os.getenv("BENCH_TOKEN_FILE")
  if token_file and token_file ~= "" then
    headers["Authorization"] = "Bearer " .. read_file(token_file)
  end
  disks = 0
  math.randomseed(thread_id * 7919)
end

function request()
  local index
  local free = "15.00"
  if disks == 0 or math.random(100) <= new_percent then
    disks = disks + 1
    index = disks
  else
    index = math.random(disks)
    if math.random(2) == 1 then
      free = "15.10"
    end
  end
  local values = {
    SERVICE = "svc-" .. thread_id .. "-" .. index,
    INSTANCE = "host-" .. (index % 1000) .. ":9847",
    FREE = free,
  }
  local body = string.gsub(template, "@(%u+)@", values)
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local out = assert(io.open(os.getenv("BENCH_OUT"), "w"))
  out:write(string.format(
    '{"requests":%d,"duration_us":%d,"non_2xx":%d,"connect_errors":%d,' ..
    '"read_errors":%d,"write_errors":%d,"timeouts":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d}',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max))
  out:close()
end
