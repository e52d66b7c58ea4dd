package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
)

const requestIDHeader = "X-Request-ID"

// A client's request id is kept only when it is short and plain, so it cannot
// inject anything into logs or headers.
var validRequestID = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,128}$`)

type ctxKey string

const requestIDKey ctxKey = "request_id"

func requestID(c *gin.Context) string {
	if v, ok := c.Get(string(requestIDKey)); ok {
		return v.(string)
	}
	return ""
}

// withRequestID keeps an incoming X-Request-ID or makes one, and echoes it.
func withRequestID(c *gin.Context) {
	id := c.GetHeader(requestIDHeader)
	if !validRequestID.MatchString(id) {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	c.Set(string(requestIDKey), id)
	c.Header(requestIDHeader, id)
	c.Next()
}

// account records every request once it is answered: its count and latency
// by route pattern and status for /metrics, and one log line. The line
// holds the path without the query string: sign-in links carry their token
// there. It is built only when the level is logged (LOG_LEVEL=warn skips
// the info lines of successful requests).
func (s *Server) account(c *gin.Context) {
	start := time.Now()
	c.Next()
	elapsed := time.Since(start)
	route := routeLabel(c)
	status := c.Writer.Status()
	code := strconv.Itoa(status)
	s.metrics.requests.WithLabelValues(c.Request.Method, route, code).Inc()
	s.metrics.latency.WithLabelValues(c.Request.Method, route, code).Observe(elapsed.Seconds())

	level := slog.LevelInfo
	if status >= 500 {
		level = slog.LevelError
	}
	ctx := c.Request.Context()
	if !s.logger.Enabled(ctx, level) {
		return
	}
	attrs := []slog.Attr{
		slog.String("request_id", requestID(c)),
		slog.String("method", c.Request.Method),
		slog.String("route", route),
		slog.String("path", c.Request.URL.Path),
		slog.Int("status", status),
		slog.Float64("duration_ms", float64(elapsed.Microseconds())/1000),
		slog.Int("bytes", c.Writer.Size()),
		slog.String("client_ip", c.ClientIP()),
	}
	if id := c.GetString("stripe_event_id"); id != "" {
		attrs = append(attrs, slog.String("stripe_event_id", id))
	}
	s.logger.LogAttrs(ctx, level, "request", attrs...)
}

// routeLabel is the route pattern, never the raw path, so ids in paths do
// not explode metric cardinality.
func routeLabel(c *gin.Context) string {
	if r := c.FullPath(); r != "" {
		return r
	}
	return "unmatched"
}

// recoverPanics turns a panic into a logged stack and a 500 in the API's
// error shape; the client never sees the stack.
func (s *Server) recoverPanics(c *gin.Context) {
	defer func() {
		p := recover()
		if p == nil {
			return
		}
		if p == http.ErrAbortHandler {
			panic(p) // the server's own signal to drop the connection
		}
		s.logger.ErrorContext(c.Request.Context(), "panic serving request",
			"request_id", requestID(c), "route", routeLabel(c),
			"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
		writeError(c, http.StatusInternalServerError, "internal", "Something went wrong on our side. It has been logged; please try again.", nil)
	}()
	c.Next()
}

// limitBody refuses a declared length over limit at once and caps the
// rest, so a handler reading the body gets *http.MaxBytesError past it.
// routes gives each group its limit: MAX_BODY_BYTES for the API and pages,
// Stripe's own 1 MiB for its events.
func limitBody(limit int64) gin.HandlerFunc {
	return func(c *gin.Context) {
		if c.Request.ContentLength > limit {
			writeError(c, http.StatusRequestEntityTooLarge, "body_too_large",
				fmt.Sprintf("The request body is larger than %d bytes.", limit), nil)
			return
		}
		if c.Request.Body != nil && c.Request.Body != http.NoBody {
			c.Request.Body = http.MaxBytesReader(c.Writer, c.Request.Body, limit)
			// A form is read by PostForm, which drops read errors; read it
			// here so a body that outgrows the limit mid-stream is a 413,
			// not a form with missing fields.
			if ct, _, _ := mime.ParseMediaType(c.ContentType()); ct == "application/x-www-form-urlencoded" {
				var tooLarge *http.MaxBytesError
				if err := c.Request.ParseForm(); errors.As(err, &tooLarge) {
					writeError(c, http.StatusRequestEntityTooLarge, "body_too_large",
						fmt.Sprintf("The request body is larger than %d bytes.", limit), nil)
					return
				}
			}
		}
		c.Next()
	}
}
