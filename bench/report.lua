-- wrk reporting hook: prints p50/p90/p99/p99.9/max latency and a one-line
-- summary that is easy to paste into docs/benchmarks.md.
--   wrk -t2 -c32 -d20s --latency -s bench/report.lua URL
-- Other scripts in this directory load it with dofile("bench/report.lua"),
-- so run wrk from the repository root.
function done(summary, latency, requests)
   local secs = summary.duration / 1e6
   local e = summary.errors
   local errs = e.connect + e.read + e.write + e.timeout
   local function ms(us) return string.format("%.2f ms", us / 1000) end
   io.write("------------------------------\n")
   io.write(string.format("requests      %d in %.1f s\n", summary.requests, secs))
   io.write(string.format("rps           %.0f\n", summary.requests / secs))
   io.write(string.format("p50           %s\n", ms(latency:percentile(50))))
   io.write(string.format("p90           %s\n", ms(latency:percentile(90))))
   io.write(string.format("p95           %s\n", ms(latency:percentile(95))))
   io.write(string.format("p99           %s\n", ms(latency:percentile(99))))
   io.write(string.format("p99.9         %s\n", ms(latency:percentile(99.9))))
   io.write(string.format("max           %s\n", ms(latency.max)))
   io.write(string.format("socket errors %d, non-2xx/3xx %d\n", errs, e.status))
   io.write(string.format("ROW | %.0f | %s | %s | %s | %s | %d |\n", summary.requests / secs,
      ms(latency:percentile(50)), ms(latency:percentile(99)), ms(latency:percentile(99.9)),
      ms(latency.max), errs + e.status))
end
