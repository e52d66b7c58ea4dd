package web

import (
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/patronage/patronage/internal/errs"
	"github.com/patronage/patronage/members"
)

type accessJSON struct {
	Active bool    `json:"active"`
	Source *string `json:"source"`
	Tier   *string `json:"tier"`
	Until  *string `json:"until"`
}

type meJSON struct {
	ID     string     `json:"id"`
	Email  string     `json:"email"`
	Name   *string    `json:"name"`
	Role   string     `json:"role"`
	Access accessJSON `json:"access"`
}

type staffMemberJSON struct {
	ID               string  `json:"id"`
	Email            string  `json:"email"`
	Name             *string `json:"name"`
	Role             string  `json:"role"`
	StripeCustomerID *string `json:"stripe_customer_id"`
	CreatedAt        string  `json:"created_at"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func toAccessJSON(a members.Access) accessJSON {
	out := accessJSON{Active: a.Active, Source: optional(a.Source), Tier: optional(a.Tier)}
	if a.Until != nil {
		until := rfc3339(*a.Until)
		out.Until = &until
	}
	return out
}

func toStaffMemberJSON(m members.Member) staffMemberJSON {
	return staffMemberJSON{ID: m.ID, Email: m.Email, Name: optional(m.Name), Role: string(m.Role),
		StripeCustomerID: optional(m.StripeCustomerID), CreatedAt: rfc3339(m.CreatedAt)}
}

func (s *Server) accessOf(c *gin.Context, memberID string) (members.Access, error) {
	if s.access == nil {
		return members.Access{}, nil
	}
	return s.access.AccessOf(c.Request.Context(), memberID)
}

// me answers who the signed-in reader is and whether they have access.
func (s *Server) me(c *gin.Context) {
	m, err := s.currentMember(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	access, err := s.accessOf(c, m.ID)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusOK, gin.H{"member": meJSON{ID: m.ID, Email: m.Email, Name: optional(m.Name), Role: string(m.Role), Access: toAccessJSON(access)}})
}

type createMemberRequest struct {
	Email string `json:"email"`
	Name  string `json:"name"`
}

func (s *Server) staffCreateMember(c *gin.Context) {
	var req createMemberRequest
	if err := s.decodeJSON(c, &req); err != nil {
		s.fail(c, err)
		return
	}
	m, err := s.members.CreateMember(c.Request.Context(), s.staffActor(c), req.Email, req.Name)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusCreated, gin.H{"member": toStaffMemberJSON(m)})
}

func (s *Server) staffGetMember(c *gin.Context) {
	m, err := s.members.FindMemberByID(c.Request.Context(), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"member": toStaffMemberJSON(m)})
}

// staffFindMembers is an exact lookup by email; it answers a list (of zero
// or one) so it can grow into search without changing shape.
func (s *Server) staffFindMembers(c *gin.Context) {
	email, ok := c.GetQuery("email")
	if !ok {
		s.fail(c, errs.InvalidFields(map[string]string{"email": "is required: look members up by exact email"}))
		return
	}
	list := []staffMemberJSON{}
	m, err := s.members.FindMemberByEmail(c.Request.Context(), email)
	switch {
	case err == nil:
		list = append(list, toStaffMemberJSON(m))
	case !errs.Is(err, errs.NotFound):
		s.fail(c, err)
		return
	}
	c.JSON(http.StatusOK, gin.H{"members": list})
}

// staffSignInLink gives an admin a sign-in link for a reader who cannot
// receive mail; the members service records it in the audit log.
func (s *Server) staffSignInLink(c *gin.Context) {
	url, err := s.members.StaffSignInLink(c.Request.Context(), s.staffActor(c), c.Param("id"))
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Cache-Control", "no-store")
	c.JSON(http.StatusCreated, gin.H{"url": url})
}
