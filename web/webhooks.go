package web

import (
	"errors"
	"io"
	"net/http"

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
	body, err := io.ReadAll(io.LimitReader(c.Request.Body, webhooks.MaxBody+1))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) || len(body) > webhooks.MaxBody {
		s.fail(c, errBodyTooLarge(webhooks.MaxBody))
		return
	}
	if err != nil {
		s.fail(c, errs.WithCode(errs.BadRequest, "bad_request", "The request body could not be read."))
		return
	}
	ev, err := webhooks.Verify(body, c.GetHeader("Stripe-Signature"), s.webhookSecrets)
	if err != nil {
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
