-- POST /v1/checkout/sessions straight to stripe-mock with the form body the
-- server sends for a subscription checkout, to measure stripe-mock's own
-- latency at a given concurrency (the "subtract Stripe's time" method).
--   wrk -t2 -c16 -d20s --latency -s bench/stripe-session.lua http://127.0.0.1:12301
dofile("bench/report.lua")
wrk.method = "POST"
wrk.path = "/v1/checkout/sessions"
wrk.headers["Authorization"] = "Bearer sk_test_123"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Stripe-Version"] = "2023-10-16"
wrk.body = table.concat({
   "cancel_url=http%3A%2F%2F127.0.0.1%3A18080%2Fcheckout%2Fcancel",
   "client_reference_id=mem_weoxcc74krdcqxdxhsszhpw5eq",
   "customer=cus_RlgsDOWWUvVRpFR",
   "line_items[0][price]=price_Rlgqp857vXB0YZg",
   "line_items[0][quantity]=1",
   "metadata[interval]=month",
   "metadata[member_id]=mem_weoxcc74krdcqxdxhsszhpw5eq",
   "metadata[tier]=coffee",
   "mode=subscription",
   "subscription_data[metadata][interval]=month",
   "subscription_data[metadata][member_id]=mem_weoxcc74krdcqxdxhsszhpw5eq",
   "subscription_data[metadata][tier]=coffee",
   "success_url=http%3A%2F%2F127.0.0.1%3A18080%2Fcheckout%2Fsuccess%3Fsession_id%3D%7BCHECKOUT_SESSION_ID%7D",
}, "&")
