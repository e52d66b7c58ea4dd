package web

import (
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/webhooks"
)

// stripeWebhook verifies a delivery before reading it as anything, stores
// it with its processing job, and only then answers 200. Anything that
// stops it being stored answers non-2xx, so Stripe delivers it again.
func (s *Server) stripeWebhook(c *gin.Context) {
	if s.intake == nil || len(s.webhookSecrets) == 0 {
		s.fail(c, errs.WithCode(errs.Unavailable, "webhooks_not_configured", "Stripe webhooks are not configured: set STRIPE_WEBHOOK_SECRET."))
		return
	}
	body, err := io.ReadAll(c.Request.Body) // capped at webhooks.MaxBody by the route
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		s.fail(c, errBodyTooLarge(webhooks.MaxBody))
		return
	}
	if err != nil {
		s.fail(c, errs.WithCode(errs.BadRequest, "bad_request", "The request body could not be read."))
		return
	}
	ev, err := webhooks.Verify(body, c.GetHeader("Stripe-Signature"), s.webhookSecrets)
	if err != nil {
		// Worth an operator's eye at any log level: a wrong secret after a
		// rotation refuses every delivery until it is fixed.
		s.logger.WarnContext(c.Request.Context(), "stripe webhook refused", "request_id", requestID(c), "code", errs.From(err).Code)
		s.fail(c, err)
		return
	}
	c.Set("stripe_event_id", ev.ID)
	fresh, err := s.intake.Accept(c.Request.Context(), ev, body)
	if err != nil {
		s.fail(c, &errs.Error{Kind: errs.Unavailable, Code: "unavailable", Message: "The event could not be stored; Stripe will deliver it again.", Err: err})
		return
	}
	c.JSON(http.StatusOK, gin.H{"received": true, "duplicate": !fresh})
}

type storedEventJSON struct {
	ID          string  `json:"id"`
	Type        string  `json:"type"`
	APIVersion  string  `json:"api_version"`
	ObjectID    string  `json:"object_id"`
	Created     string  `json:"created"`
	ReceivedAt  string  `json:"received_at"`
	Status      string  `json:"status"`
	Attempts    int     `json:"attempts"`
	LastError   *string `json:"last_error"`
	ProcessedAt *string `json:"processed_at"`
}

// staffWebhookEvents lists stored Stripe events, newest first.
func (s *Server) staffWebhookEvents(c *gin.Context) {
	limit := 100
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			s.fail(c, errs.InvalidFields(map[string]string{"limit": "must be a whole number from 1 to 500"}))
			return
		}
		limit = n
	}
	list, err := s.intake.ListEvents(c.Request.Context(), c.Query("status"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]storedEventJSON, 0, len(list))
	for _, e := range list {
		j := storedEventJSON{ID: e.ID, Type: e.Type, APIVersion: e.APIVersion, ObjectID: e.ObjectID, Created: rfc3339(e.Created),
			ReceivedAt: rfc3339(e.ReceivedAt), Status: string(e.Status), Attempts: e.Attempts, LastError: optional(e.LastError)}
		if e.ProcessedAt != nil {
			at := rfc3339(*e.ProcessedAt)
			j.ProcessedAt = &at
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, gin.H{"events": out})
}

// staffRetryWebhookEvent queues a stored event again (dead letters included).
func (s *Server) staffRetryWebhookEvent(c *gin.Context) {
	if err := s.intake.Retry(c.Request.Context(), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"status": "queued"})
}
