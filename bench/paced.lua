-- Paced GET: each connection waits BENCH_DELAY_MS (integer ms, wrk's
-- resolution) before sending its next request, so the offered rate is about
-- connections * 1000 / (delay + latency). Used to measure latency at a
-- given rate (≈10k req/s with -c24 and the default 2 ms) rather than at
-- saturation. wrk measures latency from the moment a request is written,
-- so the pause is not counted. This is still a closed loop (a stalled
-- connection sends nothing), so it understates tail latency somewhat
-- compared with a true constant-rate generator.
--   wrk -t2 -c24 -d20s -s bench/paced.lua -H 'Cookie: ...' URL
dofile("bench/report.lua")
local pause = tonumber(os.getenv("BENCH_DELAY_MS") or "2")
function delay()
   return pause
end
