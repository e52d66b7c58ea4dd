// Package redisx connects Patronage to Redis: a real server (single, Sentinel
// or Cluster) from REDIS_URL, or an in-process Redis when none is configured.
// Patronage keeps only rebuildable or expiring data in Redis; this package
// holds none itself.
package redisx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/patronage/patronage/internal/ids"
)

// Redis is a client plus the prefix every key Patronage writes begins with.
type Redis struct {
	Client   redis.UniversalClient
	Prefix   string
	embedded *miniredis.Miniredis
	password string
	closeFn  func()
}

// Embedded returns the in-process server when there is one (tests move its
// clock to make keys expire).
func (r *Redis) Embedded() (*miniredis.Miniredis, bool) { return r.embedded, r.embedded != nil }

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
	password := ids.Secret()
	m.RequireAuth(password)
	if err := m.StartAddr("127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("start in-process Redis: %w", err)
	}
	client := redis.NewClient(&redis.Options{Addr: m.Addr(), Password: password})
	if err := client.Ping(ctx).Err(); err != nil {
		client.Close()
		m.Close()
		return nil, fmt.Errorf("reach in-process Redis: %w", err)
	}
	logger.Info("REDIS_URL is not set: started an in-process Redis; sessions and live tallies last only as long as this process", "addr", m.Addr())
	return &Redis{Client: client, Prefix: prefix, embedded: m, closeFn: m.Close, password: password}, nil
}

// handoff is how a running server shares its in-process Redis with admin
// commands run beside it: the address and password in a file only the
// server's user can read.
type handoff struct {
	Addr     string `json:"addr"`
	Password string `json:"password"`
}

const handoffFile = "embedded-redis.json"

// ShareWith writes the embedded server's address into dir, so admin
// commands on this machine reach it; the returned func removes the file.
func (r *Redis) ShareWith(dir string) (func(), error) {
	if r.embedded == nil {
		return func() {}, nil
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("share in-process Redis: %w", err)
	}
	b, _ := json.Marshal(handoff{Addr: r.embedded.Addr(), Password: r.password})
	path := filepath.Join(dir, handoffFile)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("share in-process Redis: %w", err)
	}
	return func() { os.Remove(path) }, nil
}

// ErrNoSharedRedis says no running server shares an in-process Redis in dir.
var ErrNoSharedRedis = errors.New("no running patronage server shares its in-process Redis in DATA_DIR")

// AttachShared connects to the in-process Redis of a server running on dir.
func AttachShared(ctx context.Context, dir, prefix string) (*Redis, error) {
	b, err := os.ReadFile(filepath.Join(dir, handoffFile))
	if err != nil {
		return nil, ErrNoSharedRedis
	}
	var h handoff
	if err := json.Unmarshal(b, &h); err != nil || h.Addr == "" {
		return nil, ErrNoSharedRedis
	}
	client := redis.NewClient(&redis.Options{Addr: h.Addr, Password: h.Password})
	pingCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if err := client.Ping(pingCtx).Err(); err != nil {
		client.Close()
		return nil, ErrNoSharedRedis
	}
	return &Redis{Client: client, Prefix: prefix}, nil
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
