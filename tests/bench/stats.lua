-- wrk script for tests/bench/bench.py: one machine-readable summary line.
-- Latencies are in microseconds. "status" counts responses with a status of
-- 400 or more (wrk's own count, kept without a per-response Lua hook, which
-- would slow wrk down); bench.py checks that each target answers exactly 200
-- with the expected body before and after the measurements.
done = function(summary, latency, requests)
   local e = summary.errors
   local secs = summary.duration / 1e6
   io.write(string.format(
      "BENCH requests=%d duration_s=%.3f rps=%.1f p50_us=%d p99_us=%d max_us=%d " ..
      "status=%d connect=%d read=%d write=%d timeout=%d\n",
      summary.requests, secs, summary.requests / secs,
      latency:percentile(50), latency:percentile(99), latency.max,
      e.status, e.connect, e.read, e.write, e.timeout))
end
