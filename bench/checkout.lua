-- POST /api/v1/checkout/subscription with a distinct request id per request.
--   wrk -t2 -c16 -d20s -s bench/checkout.lua http://127.0.0.1:18080/api/v1/checkout/subscription
-- Environment:
--   BENCH_RUN    a tag making this run's ids unique (default: the time)
--   BENCH_EMAILS unique (default) — a new reader per request: member insert,
--                Stripe customer create, link, then Checkout Session create;
--                pool:N — N readers reused round-robin (warm them first so
--                they have a Stripe customer: one Stripe call per request)
-- Each request carries X-Request-ID and Idempotency-Key = its id, and with
-- BENCH_EMAILS=unique the email is reader-<id>@example.org, so owntime.go
-- can join the server log, the Stripe call log and the request.
-- For a signed-in member add -H 'Cookie: patronage_session=…' and
-- -H 'Origin: <BASE_URL>' (cookie writes are origin-checked).
dofile("bench/report.lua")

local threads = {}
function setup(thread)
   thread:set("tid", #threads + 1)
   table.insert(threads, thread)
end

local run, mode, pool, n
function init(args)
   run = os.getenv("BENCH_RUN") or tostring(os.time())
   mode = os.getenv("BENCH_EMAILS") or "unique"
   pool = tonumber(mode:match("^pool:(%d+)$") or "0")
   n = 0
end

function request()
   n = n + 1
   local id = string.format("%s-%d-%d", run, tid, n)
   local email
   if pool > 0 then
      email = string.format("reader-pool-%d@example.org", (n * 7 + tid) % pool)
   else
      email = "reader-" .. id .. "@example.org"
   end
   local body = string.format('{"tier":"coffee","interval":"month","currency":"EUR","email":"%s"}', email)
   -- wrk.format ignores wrk.headers (the -H ones) when given a table.
   local h = {}
   for k, v in pairs(wrk.headers) do h[k] = v end
   h["Content-Type"] = "application/json"
   h["X-Request-ID"] = id
   h["Idempotency-Key"] = id
   return wrk.format("POST", nil, h, body)
end
