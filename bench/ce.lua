-- SPDX-License-Identifier: MIT
-- wrk script: POSTs CloudEvents with a unique id per event, so Herald's dedup never kicks in.
--   BENCH_BATCH=0 (default)  binary mode: ce-* headers, 1 KiB JSON body (application/json)
--   BENCH_BATCH=N            batched mode: application/cloudevents-batch+json, N structured
--                            events per request, each with 1 KiB of JSON data
--   BENCH_CASE=name          label for the RESULT line
--   BENCH_NONCE=str          prefix of every id (run.sh passes one per run)
--   BENCH_DATA_BYTES=1024    size of each event's JSON data
--   BENCH_SENT=1             binary mode only: add the extension header `ce-sent` = the wall-clock
--                            time (CLOCK_REALTIME, µs since the epoch) at which wrk builds the
--                            request, i.e. just before it writes it (LuaJIT FFI clock_gettime);
--                            bench/delivery.sh compares it with the sink's receive time
--   BENCH_DELAY_MS=N         wait N ms after each response before the connection's next request
--                            (wrk's delay() hook): paces the load at about conns x 1000 / N per s
--   BENCH_RATE=R             open-loop pacing at R requests/s in all (BENCH_WRK_THREADS threads,
--                            default 2, share it): each thread hands out send slots 1/rate apart
--                            and delay() waits for the next one (ms granularity, no drift), so
--                            the rate holds whatever the latency, as long as conns cover it
-- The done() hook prints one parseable line (latencies in µs, per request):
--   RESULT case=… requests=N events=N secs=T ops_per_s=R mb_per_s=M p50_us=A p99_us=B
--          errors=E non2xx=S
-- where ops are events (requests × events per request) and MB/s counts event data only.

local batch = tonumber(os.getenv("BENCH_BATCH") or "0") or 0
local case = os.getenv("BENCH_CASE") or (batch > 0 and "batch" or "binary")
local nonce = os.getenv("BENCH_NONCE") or tostring(os.time())
local data_bytes = tonumber(os.getenv("BENCH_DATA_BYTES") or "1024") or 1024
local sent = os.getenv("BENCH_SENT") == "1" and batch == 0
local delay_ms = tonumber(os.getenv("BENCH_DELAY_MS") or "0") or 0
local rate = tonumber(os.getenv("BENCH_RATE") or "0") or 0
local nthreads = tonumber(os.getenv("BENCH_WRK_THREADS") or "2") or 2

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
   int clock_gettime(int clk, bench_timespec *ts);
]]
local ts = ffi.new("bench_timespec")
local function mono_us()
   ffi.C.clock_gettime(1, ts) -- CLOCK_MONOTONIC
   return tonumber(ts.tv_sec) * 1e6 + tonumber(ts.tv_nsec) / 1000
end

if rate > 0 then
   local period_us = nthreads * 1e6 / rate
   local next_slot = nil
   function delay()
      local now = mono_us()
      if next_slot == nil then
         next_slot = now
      end
      -- the next free slot; after a stall catch up at most 10 ms, never in a burst
      next_slot = math.max(next_slot + period_us, now - 10000)
      local wait = math.floor((next_slot - now) / 1000 + 0.5)
      return wait > 0 and wait or 0
   end
elseif delay_ms > 0 then
   function delay()
      return delay_ms
   end
end

local now_us -- wall-clock µs, only when BENCH_SENT=1
if sent then
   now_us = function()
      ffi.C.clock_gettime(0, ts) -- CLOCK_REALTIME, the clock nginx's $msec reads
      return string.format("%d%06d", tonumber(ts.tv_sec), math.floor(tonumber(ts.tv_nsec) / 1000))
   end
end

-- {"pad":"xxx…"} of exactly data_bytes bytes
local data = '{"pad":"' .. string.rep("x", data_bytes - 10) .. '"}'

local threads = {}
local counter = 0
local head, tail, ev_head, ev_tail -- request pieces, built once per thread in init()

function setup(thread)
   table.insert(threads, thread)
   thread:set("tid", #threads)
end

function init(args)
   local t = tostring(tid or 0)
   nonce = nonce .. "-" .. t .. "-"
   local host = wrk.headers["Host"]
   if batch > 0 then
      head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
             "\r\nContent-Type: application/cloudevents-batch+json\r\nContent-Length: "
      ev_head = '{"specversion":"1.0","id":"'
      ev_tail = '","source":"/bench/wrk","type":"bench.event","datacontenttype":"application/json","data":' ..
                data .. '}'
   else
      head = "POST " .. wrk.path .. " HTTP/1.1\r\nHost: " .. host ..
             "\r\nContent-Type: application/json\r\nce-specversion: 1.0\r\nce-source: /bench/wrk" ..
             "\r\nce-type: bench.event\r\nce-id: "
      tail = "\r\nContent-Length: " .. #data .. "\r\n\r\n" .. data
   end
end

if batch > 0 then
   local parts = {}
   function request()
      for i = 1, batch do
         counter = counter + 1
         parts[i] = ev_head .. nonce .. counter .. ev_tail
      end
      local body = "[" .. table.concat(parts, ",", 1, batch) .. "]"
      return head .. #body .. "\r\n\r\n" .. body
   end
elseif sent then
   function request()
      counter = counter + 1
      return head .. nonce .. counter .. "\r\nce-sent: " .. now_us() .. tail
   end
else
   function request()
      counter = counter + 1
      return head .. nonce .. counter .. tail
   end
end

function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local per = batch > 0 and batch or 1
   local e = summary.errors
   local events = summary.requests * per
   io.write(string.format(
      "RESULT case=%s requests=%d events=%d secs=%.3f ops_per_s=%.1f mb_per_s=%.2f " ..
      "p50_us=%d p99_us=%d errors=%d non2xx=%d\n",
      case, summary.requests, events, secs, events / secs, events * data_bytes / secs / 1e6,
      latency:percentile(50.0), latency:percentile(99.0),
      e.connect + e.read + e.write + e.timeout, e.status))
end
