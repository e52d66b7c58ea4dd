package web

import (
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/outgoing"
)

// The newsroom's own webhook endpoints (docs/outgoing-webhooks.md): admins
// only, since an endpoint receives patrons' names and addresses.

type endpointJSON struct {
	ID             string   `json:"id"`
	URL            string   `json:"url"`
	Description    string   `json:"description"`
	Events         []string `json:"events"`
	Status         string   `json:"status"` // enabled, disabled
	DisabledAt     *string  `json:"disabled_at"`
	DisabledReason *string  `json:"disabled_reason"`
	FailingSince   *string  `json:"failing_since"`
	CreatedAt      string   `json:"created_at"`
	UpdatedAt      string   `json:"updated_at"`
}

func toEndpointJSON(e outgoing.Endpoint) endpointJSON {
	j := endpointJSON{ID: e.ID, URL: e.URL, Description: e.Description, Events: e.Events, Status: "enabled", DisabledAt: optionalTime(e.DisabledAt),
		DisabledReason: optional(e.DisabledReason), FailingSince: optionalTime(e.FailingSince), CreatedAt: rfc3339(e.CreatedAt), UpdatedAt: rfc3339(e.UpdatedAt)}
	if e.DisabledAt != nil {
		j.Status = "disabled"
	}
	return j
}

type endpointRequest struct {
	URL         *string   `json:"url"`
	Events      *[]string `json:"events"`
	Description *string   `json:"description"`
	Disabled    *bool     `json:"disabled"`
}

func (r endpointRequest) input() outgoing.EndpointInput {
	return outgoing.EndpointInput{URL: r.URL, Events: r.Events, Description: r.Description, Disabled: r.Disabled}
}

func (s *Server) outgoingService(c *gin.Context) (*outgoing.Service, bool) {
	if s.outgoing == nil {
		s.fail(c, errs.WithCode(errs.Unavailable, "unavailable", "Outgoing webhooks are not running on this server."))
		return nil, false
	}
	return s.outgoing, true
}

func (s *Server) staffListEndpoints(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	list, err := o.Endpoints(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]endpointJSON, 0, len(list))
	for _, e := range list {
		out = append(out, toEndpointJSON(e))
	}
	c.JSON(http.StatusOK, gin.H{"endpoints": out, "event_types": outgoing.EventTypes})
}

// staffCreateEndpoint registers an endpoint; the answer carries its
// signing secret, which is never shown again.
func (s *Server) staffCreateEndpoint(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	var req endpointRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	e, secret, err := o.CreateEndpoint(c.Request.Context(), s.staffActor(c), req.input())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"endpoint": toEndpointJSON(e), "secret": secret})
}

func (s *Server) staffGetEndpoint(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	e, err := o.Endpoint(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"endpoint": toEndpointJSON(e)})
}

func (s *Server) staffUpdateEndpoint(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	var req endpointRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	e, err := o.UpdateEndpoint(c.Request.Context(), s.staffActor(c), c.Param("id"), req.input())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"endpoint": toEndpointJSON(e)})
}

func (s *Server) staffDeleteEndpoint(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	if err := o.DeleteEndpoint(c.Request.Context(), s.staffActor(c), c.Param("id")); err != nil {
		s.fail(c, err)
		return
	}
	c.Status(http.StatusNoContent)
}

// staffRotateEndpointSecret answers the new secret, once; the previous
// one keeps signing beside it until previous_secret_expires_at.
func (s *Server) staffRotateEndpointSecret(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	secret, expires, err := o.RotateSecret(c.Request.Context(), s.staffActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"secret": secret, "previous_secret_expires_at": rfc3339(expires)})
}

type attemptJSON struct {
	ID              string  `json:"id"`
	AttemptedAt     string  `json:"attempted_at"`
	DurationMS      int64   `json:"duration_ms"`
	ResponseStatus  *int    `json:"response_status"`
	ResponseExcerpt string  `json:"response_excerpt"`
	Error           *string `json:"error"`
}

type deliveryJSON struct {
	ID            string        `json:"id"`
	EventID       string        `json:"event_id"`
	EventType     string        `json:"event_type"`
	Status        string        `json:"status"`
	CreatedAt     string        `json:"created_at"`
	NextAttemptAt *string       `json:"next_attempt_at"`
	Attempts      []attemptJSON `json:"attempts"`
}

// staffEndpointDeliveries lists an endpoint's latest deliveries with every
// attempt: what was answered, how fast, or why nothing was.
func (s *Server) staffEndpointDeliveries(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	limit := 20
	if v := c.Query("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			s.fail(c, errs.InvalidFields(map[string]string{"limit": "must be a whole number from 1 to 100"}))
			return
		}
		limit = n
	}
	list, err := o.Deliveries(c.Request.Context(), c.Param("id"), c.Query("status"), limit)
	if err != nil {
		s.fail(c, err)
		return
	}
	out := make([]deliveryJSON, 0, len(list))
	for _, d := range list {
		j := deliveryJSON{ID: d.ID, EventID: d.EventID, EventType: d.EventType, Status: d.Status, CreatedAt: rfc3339(d.CreatedAt),
			NextAttemptAt: optionalTime(d.NextAttemptAt), Attempts: make([]attemptJSON, 0, len(d.Attempts))}
		for _, a := range d.Attempts {
			aj := attemptJSON{ID: a.ID, AttemptedAt: rfc3339(a.At), DurationMS: a.Duration.Milliseconds(), ResponseExcerpt: a.ResponseExcerpt, Error: optional(a.Error)}
			if a.ResponseStatus != 0 {
				status := a.ResponseStatus
				aj.ResponseStatus = &status
			}
			j.Attempts = append(j.Attempts, aj)
		}
		out = append(out, j)
	}
	c.JSON(http.StatusOK, gin.H{"deliveries": out})
}

func (s *Server) staffRedeliver(c *gin.Context) {
	o, ok := s.outgoingService(c)
	if !ok {
		return
	}
	if err := o.Redeliver(c.Request.Context(), s.staffActor(c), c.Param("id"), c.Param("delivery_id")); err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusAccepted, gin.H{"status": "queued"})
}
