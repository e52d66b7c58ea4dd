package redisx

import "github.com/prometheus/client_golang/prometheus"

// poolCollector reports the go-redis connection pool to Prometheus.
type poolCollector struct {
	r                      *Redis
	hits, misses, timeouts *prometheus.Desc
	total, idle, stale     *prometheus.Desc
}

// Collector returns a Prometheus collector for the client's connection pool.
func (r *Redis) Collector() prometheus.Collector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("patronage_redis_pool_"+name, help, nil, nil)
	}
	return &poolCollector{
		r:        r,
		hits:     d("hits_total", "Times a free connection was found in the pool."),
		misses:   d("misses_total", "Times no free connection was found in the pool."),
		timeouts: d("timeouts_total", "Times a wait for a connection timed out."),
		total:    d("connections", "Connections in the pool."),
		idle:     d("idle_connections", "Idle connections in the pool."),
		stale:    d("stale_connections_total", "Stale connections removed from the pool."),
	}
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{p.hits, p.misses, p.timeouts, p.total, p.idle, p.stale} {
		ch <- d
	}
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	s := p.r.Client.PoolStats()
	ch <- prometheus.MustNewConstMetric(p.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(p.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(p.timeouts, prometheus.CounterValue, float64(s.Timeouts))
	ch <- prometheus.MustNewConstMetric(p.total, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(p.idle, prometheus.GaugeValue, float64(s.IdleConns))
	ch <- prometheus.MustNewConstMetric(p.stale, prometheus.CounterValue, float64(s.StaleConns))
}
