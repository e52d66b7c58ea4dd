package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/internal/statustoken"
)

// The newsroom's own site asks who a reader is (docs/patron-status.md):
// its pages, on origins listed in CORS_ALLOWED_ORIGINS, fetch the reader's
// status with their cookie, and its server verifies the signed token
// offline against the published keys.

// cors lets the newsroom's own origins read the answer, with the reader's
// cookie; any other origin gets no CORS headers, so its page cannot read
// it. A preflight is answered here.
func (s *Server) cors(c *gin.Context) {
	c.Writer.Header().Add("Vary", "Origin")
	origin := c.GetHeader("Origin")
	allowed := origin != "" && s.corsOrigins[strings.ToLower(origin)]
	if allowed {
		h := c.Writer.Header()
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.Request.Method == http.MethodOptions {
		if allowed {
			h := c.Writer.Header()
			h.Set("Access-Control-Allow-Methods", "GET")
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			h.Set("Access-Control-Max-Age", "600")
		}
		c.AbortWithStatus(http.StatusNoContent)
		return
	}
	c.Next()
}

// meToken gives the signed-in reader a token stating their access, good
// for 15 minutes, for the newsroom's site to check offline.
func (s *Server) meToken(c *gin.Context) {
	if s.statusTokens == nil {
		s.fail(c, errs.WithCode(errs.Unavailable, "unavailable", "Status tokens are not available on this server."))
		return
	}
	m, err := s.currentMember(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	a, err := s.accessOf(c, m.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	token, expires, err := s.statusTokens.Issue(c.Request.Context(), m.ID, statustoken.Access{Active: a.Active, Tier: a.Tier, Source: a.Source, Until: a.Until})
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"token": token, "expires_at": rfc3339(expires), "jwks_url": s.origin + "/.well-known/jwks.json",
		"member_id": m.ID, "access": toAccessJSON(a)})
}

// jwks publishes the public keys that verify status tokens. Anyone may
// read them, from anywhere.
func (s *Server) jwks(c *gin.Context) {
	if s.statusTokens == nil {
		s.fail(c, errs.WithCode(errs.Unavailable, "unavailable", "Status tokens are not available on this server."))
		return
	}
	set, err := s.statusTokens.JWKS(c.Request.Context())
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "public, max-age="+strconv.Itoa(statustoken.JWKSMaxAge))
	c.Header("Access-Control-Allow-Origin", "*")
	c.Data(http.StatusOK, "application/jwk-set+json", set)
}
