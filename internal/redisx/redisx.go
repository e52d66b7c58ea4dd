// Package redisx connects Patronage to Redis: a real server (single, Sentinel
// or Cluster) from REDIS_URL, or an in-process Redis when none is configured.
// Patronage keeps only rebuildable or expiring data in Redis; this package
// holds none itself.
package redisx

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

// Redis is a client plus the prefix every key Patronage writes begins with.
type Redis struct {
	Client   redis.UniversalClient
	Prefix   string
	Embedded bool
	closeFn  func()
}

// Key joins the prefix and the parts into one key.
func (r *Redis) Key(parts ...string) string {
	k := r.Prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

// Close closes the client and stops the embedded server, if any.
func (r *Redis) Close() error {
	err := r.Client.Close()
	if r.closeFn != nil {
		r.closeFn()
	}
	return err
}

// Open connects to rawURL, or starts an in-process Redis when rawURL is
// empty. A URL with master_name= selects Sentinel (its hosts are the
// sentinels); one with extra addr= hosts selects Cluster.
func Open(ctx context.Context, rawURL, prefix string, logger *slog.Logger) (*Redis, error) {
	if rawURL == "" {
		return openEmbedded(ctx, prefix, logger)
	}
	client, err := newClient(rawURL)
	if err != nil {
		return nil, err
	}
	r := &Redis{Client: client, Prefix: prefix}
	pingCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, fmt.Errorf("connect to Redis at %s: %w", redactedHost(rawURL), err)
	}
	return r, nil
}

func newClient(rawURL string) (redis.UniversalClient, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: not a valid URL")
	}
	q := u.Query()
	switch {
	case q.Has("master_name"):
		opts, err := redis.ParseFailoverURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return redis.NewFailoverClient(opts), nil
	case q.Has("addr"):
		opts, err := redis.ParseClusterURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return redis.NewClusterClient(opts), nil
	default:
		opts, err := redis.ParseURL(rawURL)
		if err != nil {
			return nil, fmt.Errorf("REDIS_URL: %w", err)
		}
		return redis.NewClient(opts), nil
	}
}

func openEmbedded(ctx context.Context, prefix string, logger *slog.Logger) (*Redis, error) {
	m := miniredis.NewMiniRedis()
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start in-process Redis: %w", err)
	}
	client := redis.NewClient(&redis.Options{Addr: m.Addr()})
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		m.Close()
		return nil, fmt.Errorf("reach in-process Redis: %w", err)
	}
	logger.Info("REDIS_URL is not set: started an in-process Redis; sessions and live tallies last only as long as this process", "addr", m.Addr())
	return &Redis{Client: client, Prefix: prefix, Embedded: true, closeFn: m.Close}, nil
}

func redactedHost(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(unparseable URL)"
	}
	return u.Host
}

// DeleteByPrefix deletes every key under the client's prefix. It is for
// tests and maintenance; it walks the keyspace with SCAN, never KEYS.
func (r *Redis) DeleteByPrefix(ctx context.Context) error {
	if r.Prefix == "" {
		return fmt.Errorf("refusing to delete every key: the prefix is empty")
	}
	del := func(ctx context.Context, c redis.UniversalClient) error {
		iter := c.Scan(ctx, 0, r.Prefix+"*", 500).Iterator()
		pipe := c.Pipeline()
		for iter.Next(ctx) {
			// One key per DEL: in a cluster keys may live on different slots.
			pipe.Del(ctx, iter.Val())
			if pipe.Len() == 500 {
				if _, err := pipe.Exec(ctx); err != nil {
					return err
				}
			}
		}
		if err := iter.Err(); err != nil {
			return err
		}
		if pipe.Len() > 0 {
			_, err := pipe.Exec(ctx)
			return err
		}
		return nil
	}
	if cc, ok := r.Client.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	}
	return del(ctx, r.Client)
}
