package main

import (
	"github.com/prometheus/client_golang/prometheus"
)

// monitorMetrics are redismon's own gauges and counters.
type monitorMetrics struct {
	isLeader      prometheus.Gauge
	shardUp       *prometheus.GaugeVec   // by shard: 1 ALIVE, 0 DOWN, as ZooKeeper says
	shardEpoch    *prometheus.GaugeVec   // by shard
	probeFailures *prometheus.CounterVec // by target: a shard name, or "queue"
	transitions   *prometheus.CounterVec // by shard and status written
	promotions    prometheus.Counter
	repoints      prometheus.Counter
	zkWrites      prometheus.Counter
	refused       prometheus.Counter
}

func newMonitorMetrics(reg prometheus.Registerer) *monitorMetrics {
	m := &monitorMetrics{
		isLeader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "redismon_is_leader", Help: "1 while this instance leads (and acts), else 0.",
		}),
		shardUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redismon_cache_shard_up", Help: "Cache shard status in ZooKeeper: 1 ALIVE, 0 DOWN.",
		}, []string{"shard"}),
		shardEpoch: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "redismon_cache_shard_epoch", Help: "Cache shard epoch: bumped each time the shard is flushed and revived.",
		}, []string{"shard"}),
		probeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redismon_probe_failures_total", Help: "Failed probes by target (shard name, or queue).",
		}, []string{"target"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "redismon_cache_transitions_total", Help: "Cache shard statuses written to ZooKeeper.",
		}, []string{"shard", "status"}),
		promotions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redismon_queue_promotions_total", Help: "Queue secondaries promoted to primary.",
		}),
		repoints: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redismon_queue_repoints_total", Help: "Queue servers made replicas of the current primary.",
		}),
		zkWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redismon_zk_writes_total", Help: "Successful writes to ZooKeeper node data (status marks, queue rewrites).",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "redismon_refused_actions_total", Help: "Actions not taken on a server that is both a cache shard and a queue server.",
		}),
	}
	reg.MustRegister(m.isLeader, m.shardUp, m.shardEpoch, m.probeFailures, m.transitions, m.promotions, m.repoints,
		m.zkWrites, m.refused)
	return m
}
